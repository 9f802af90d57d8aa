#!/bin/sh
# The command-line faces of the configuration and the policy: psyncd -t,
# psyncctl import-sso and psyncctl policy, run as an administrator would,
# against files in a temporary directory. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
PSYNCD=$top_builddir/psyncd/psyncd
PSYNCCTL=$top_builddir/psyncctl/psyncctl
tmp=$(mktemp -d /tmp/psync-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
n=0
failed=0

ok() { # ok DESCRIPTION COMMAND... : passes when the command succeeds
	desc=$1
	shift
	n=$((n + 1))
	if "$@" >"$tmp/out" 2>&1; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"
		sed 's/^/# /' "$tmp/out"
		failed=$((failed + 1))
	fi
}

# run CMD... : keep stdout+stderr in $tmp/run and the status in $rc
run() { "$@" >"$tmp/run" 2>&1; rc=$?; }
has() { grep -qF -- "$1" "$tmp/run" || { echo "expected: $1"; cat "$tmp/run"; return 1; }; }
hasnt() { ! grep -qF -- "$1" "$tmp/run" || { echo "unexpected: $1"; cat "$tmp/run"; return 1; }; }
status() { [ "$rc" -eq "$1" ] || { echo "expected exit $1, got $rc"; cat "$tmp/run"; return 1; }; }

echo "1..19"

t_example() {
	cp "$top_srcdir/conf/psync.conf.example" "$tmp/example.conf"
	chmod 644 "$tmp/example.conf"
	run "$PSYNCD" -t -c "$tmp/example.conf" && status 0 && has "configuration OK"
}
ok "psyncd -t accepts the example configuration" t_example

t_bad() {
	printf 'store {\n\ttype = files\n\tlock-timeout = soon\n}\n' >"$tmp/bad.conf"
	run "$PSYNCD" -t -c "$tmp/bad.conf"
	status 1 && has "$tmp/bad.conf:3: option 'lock-timeout': expected a duration" &&
	    hasnt "configuration OK"
}
ok "psyncd -t names file, line and option of an error and exits 1" t_bad

t_writable() {
	cp "$tmp/example.conf" "$tmp/w.conf"
	chmod 666 "$tmp/w.conf"
	run "$PSYNCD" -t -c "$tmp/w.conf"
	status 1 && has "refused: group- or world-writable"
}
ok "psyncd -t refuses a world-writable configuration" t_writable

t_missing() {
	run "$PSYNCD" -t -c "$tmp/none.conf"
	status 1 && has "$tmp/none.conf: cannot open: No such file or directory"
}
ok "psyncd -t reports a missing file" t_missing

t_import() {
	"$PSYNCCTL" import-sso "$top_srcdir/tests/data/sso.conf" >"$tmp/imported.conf" || return 1
	chmod 600 "$tmp/imported.conf"
	run "$PSYNCD" -t -c "$tmp/imported.conf" && status 0 && has "configuration OK"
}
ok "psyncctl import-sso output passes psyncd -t" t_import

t_import_legacy() {
	"$PSYNCCTL" import-sso "$top_srcdir/tests/data/sso-legacy.conf" \
	    >"$tmp/legacy.conf" 2>"$tmp/legacy.err" || { cat "$tmp/legacy.err"; return 1; }
	chmod 600 "$tmp/legacy.conf"
	run "$PSYNCD" -t -c "$tmp/legacy.conf" && status 0 && has "configuration OK" &&
	    run cat "$tmp/legacy.conf" && has 'shadow-file = "/etc/shadow"' &&
	    ! grep -q 'shadow-file = "/etc"$' "$tmp/legacy.conf" && has "NIS_UPDATE_PATH: expected an absolute path, got 'bidon'; ignored: USE_NIS is off"
}
ok "psyncctl import-sso maps a real legacy file (FILE_PATH=/etc, NIS placeholder) to one that passes psyncd -t" t_import_legacy

t_import_bad() {
	printf 'SYNC_HOSTS=(192.0.2.1)\nPORT_NUMBER=6677\nnonsense\n' >"$tmp/sso.conf"
	run "$PSYNCCTL" import-sso "$tmp/sso.conf"
	status 1 && has "$tmp/sso.conf:3: expected KEY=VALUE"
}
ok "psyncctl import-sso refuses a malformed line with its number" t_import_bad

# A host of our own for the policy: passwd, shadow and group in $tmp.
cat >"$tmp/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
alice:x:1001:1001::/home/alice:/bin/sh
bob:x:1002:1002::/home/bob:/bin/sh
P
cat >"$tmp/shadow" <<'S'
root:$y$j9T$abc$def:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
alice:$y$j9T$abc$def:19000:0:99999:7:::
bob:!$y$j9T$abc$def:19000:0:99999:7:::
S
cat >"$tmp/group" <<'G'
root:x:0:
alice:x:1001:
bob:x:1002:
G
cat >"$tmp/policy.conf" <<C
node-name = "unix1"
store {
	shadow-file = "$tmp/shadow"
	passwd-file = "$tmp/passwd"
	group-file = "$tmp/group"
}
peer "win" {
	protocol = mepp
	address = "192.0.2.10"
	key = "Abcdef123456789!"
	direction = send
	min-length = 10
	min-classes = 3
}
C
chmod 600 "$tmp/policy.conf"

t_policy_ok() {
	run "$PSYNCCTL" -c "$tmp/policy.conf" policy alice --peer win
	status 0 && has "result: sync" && has "min-uid        pass"
}
ok "psyncctl policy: an ordinary user syncs (exit 0)" t_policy_ok

t_policy_root() {
	run "$PSYNCCTL" -c "$tmp/policy.conf" policy root --peer win
	status 1 && has "root           FAIL  uid 0 never syncs" && has "log 12294"
}
ok "psyncctl policy: root never syncs (exit 1, 12294)" t_policy_root

t_policy_system() {
	run "$PSYNCCTL" -c "$tmp/policy.conf" policy daemon
	status 1 && has "below min-uid 1000"
}
ok "psyncctl policy: a system account does not sync" t_policy_system

t_policy_locked() {
	run "$PSYNCCTL" policy bob -c "$tmp/policy.conf"
	status 1 && has "the account is locked" && has "code 13"
}
ok "psyncctl policy: a locked account does not sync" t_policy_locked

t_policy_password() {
	printf 'weakpassword1\n' | "$PSYNCCTL" -c "$tmp/policy.conf" policy alice \
	    --peer win --password-stdin >"$tmp/run" 2>&1
	rc=$?
	status 1 && has "peer win needs at least 3 of these" && hasnt "weakpassword1"
}
ok "psyncctl policy --password-stdin names the rule, never the password" t_policy_password

t_policy_inbound() {
	run "$PSYNCCTL" -c "$tmp/policy.conf" policy 'CORP\ALICE' --from win
	status 1 && has "peer win is configured with direction send"
}
ok "psyncctl policy --from reduces DOMAIN\\user and checks the direction" t_policy_inbound

t_policy_nouser() {
	run "$PSYNCCTL" -c "$tmp/policy.conf" policy carol
	status 1 && has "user carol does not exist on this host" && has "log 8201"
}
ok "psyncctl policy: a missing user is code 12, log 8201" t_policy_nouser

t_usage() {
	run "$PSYNCCTL" -c "$tmp/policy.conf" policy
	status 2 && has "usage: psyncctl policy USER" &&
	run "$PSYNCCTL" frobnicate && status 2 && has "unknown command 'frobnicate'"
}
ok "psyncctl: usage errors exit 2 and say what is expected" t_usage

# psyncctl apply: a batch through the policy into the store files.
store_conf() {
	cat >"$tmp/apply.conf" <<C
node-name = "unix1"
store {
	shadow-file = "$tmp/shadow"
	passwd-file = "$tmp/passwd"
	group-file = "$tmp/group"
	hash-method = sha512
}
policy {
	min-length = 6
}
queue {
	directory = "$tmp/state"
	host-key-file = "$tmp/host.key"
}
log {
	level = debug
}
C
	chmod 600 "$tmp/apply.conf"
}
store_conf
verify() { # verify USER PASSWORD: the shadow hash of USER checks PASSWORD
	perl -e '
		my ($user, $pw, $file) = @ARGV;
		open(my $f, "<", $file) or die;
		while (<$f>) {
			my @x = split /:/;
			if ($x[0] eq $user) { exit(crypt($pw, $x[1]) eq $x[1] ? 0 : 1); }
		}
		exit 2;' "$1" "$2" "$tmp/shadow"
}

t_apply() {
	cp "$tmp/shadow" "$tmp/shadow.before"
	printf 'alice:N3w-Passw0rd\nroot:R00t-Passw0rd\nbob:B0b-Passw0rd\nghost:Gh0st-Pass\ndaemon:D-Passw0rd\nALICE:x\n' |
	    "$PSYNCCTL" -c "$tmp/apply.conf" apply >"$tmp/run" 2>&1
	rc=$?
	status 1 &&
	has "alice: 0 applied" &&
	has "root: 14 refused: uid 0 never syncs" &&
	has "bob: 13 refused: the account is locked" &&
	has "ghost: 12 refused: user ghost does not exist on this host" &&
	has "daemon: 14 refused: uid 1 is below min-uid 1000" &&
	has "ALICE: 24 refused: the password policy needs passwords of at least 6" &&
	verify alice N3w-Passw0rd &&
	[ "$(grep '^root:' "$tmp/shadow")" = "$(grep '^root:' "$tmp/shadow.before")" ] &&
	[ "$(grep '^bob:' "$tmp/shadow")" = "$(grep '^bob:' "$tmp/shadow.before")" ] &&
	hasnt "N3w-Passw0rd"
}
ok "psyncctl apply: one line per user, policy refusals by code, only accepted users changed" t_apply

t_apply_again() {
	printf 'alice:N3w-Passw0rd\n' | "$PSYNCCTL" -c "$tmp/apply.conf" apply >"$tmp/run" 2>&1
	rc=$?
	status 0 && has "alice: 0 unchanged"
}
ok "psyncctl apply: the same password again is 'unchanged' (exit 0)" t_apply_again

t_apply_bad() {
	printf 'no-colon-here\n' | "$PSYNCCTL" -c "$tmp/apply.conf" apply >"$tmp/run" 2>&1
	rc=$?
	status 1 && has "standard input: input line 1: expected user:password"
}
ok "psyncctl apply: a malformed line is refused with its number" t_apply_bad

# With a host key, the store keeps fingerprints (lib/store_fp.c): a second
# new password for alice is known to differ without a verify.
t_apply_fingerprints() {
	"$PSYNCCTL" keygen "$tmp/host.key" >/dev/null 2>&1 || return 1
	printf 'alice:N3w-Passw0rd\n' | "$PSYNCCTL" -c "$tmp/apply.conf" apply >"$tmp/run" 2>&1
	rc=$?
	status 0 && has "alice: 0 unchanged" &&
	has "1 verified against the stored hash, 0 known to differ" || return 1
	for pw in Sec0nd-Pass-A Sec0nd-Pass-B; do
		printf 'alice:%s\n' "$pw" | "$PSYNCCTL" -c "$tmp/apply.conf" apply >"$tmp/run" 2>&1
		rc=$?
		status 0 && has "alice: 0 applied" && verify alice "$pw" || return 1
		# One in 16 new passwords shares the fingerprint and is verified.
		grep -q "0 verified against the stored hash, 1 known to differ" "$tmp/run" &&
			break
	done
	grep -q "0 verified against the stored hash, 1 known to differ" "$tmp/run" &&
	[ "$(stat -c %a "$tmp/state/fingerprints.db")" = 600 ] &&
	[ "$(stat -c %a "$tmp/state")" = 700 ] &&
	! grep -qaF -e Sec0nd-Pass -e N3w-Passw0rd "$tmp"/state/*
}
ok "psyncctl apply: with a host key, a known password's successor skips the verify; fingerprints 0600, no password" t_apply_fingerprints

[ "$failed" -eq 0 ]
