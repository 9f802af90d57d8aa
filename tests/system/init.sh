#!/bin/sh
# psyncctl init, run as an administrator would: from flags (--yes), from
# answers on standard input, and the refusals (an existing configuration,
# a bad peer, a legacy peer that cannot be told apart). Every configuration
# it writes must pass psyncd -t. Files go to a temporary directory. Prints
# TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
PSYNCD=$top_builddir/psyncd/psyncd
PSYNCCTL=$top_builddir/psyncctl/psyncctl
if [ "$(id -u)" -ne 0 ]; then
	echo "1..0 # SKIP needs root (psync.conf must be root-owned)"
	exit 0
fi
tmp=$(mktemp -d /tmp/psync-init-XXXXXX)
trap 'rm -rf "$tmp"' EXIT INT TERM
n=0
failed=0

ok() { # ok DESCRIPTION FUNCTION : passes when the function succeeds
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

run() { "$@" >"$tmp/run" 2>&1; rc=$?; }
has() { grep -qF -- "$1" "$tmp/run" || { echo "expected: $1"; cat "$tmp/run"; return 1; }; }
status() { [ "$rc" -eq "$1" ] || { echo "expected exit $1, got $rc"; cat "$tmp/run"; return 1; }; }
mode() { # mode EXPECTED FILE
	m=$(stat -c %a "$2")
	[ "$m" = "$1" ] || { echo "$2: expected mode $1, got $m"; return 1; }
}
fhas() { grep -qF -- "$2" "$1" || { echo "$1: expected: $2"; cat "$1"; return 1; }; }
fhasnt() { ! grep -qF -- "$2" "$1" || { echo "$1: unexpected: $2"; cat "$1"; return 1; }; }
checked() { # checked FILE : psyncd -t passes
	"$PSYNCD" -t -c "$1" >"$tmp/check" 2>&1 && grep -q "configuration OK" "$tmp/check" ||
	    { echo "psyncd -t $1:"; cat "$tmp/check"; return 1; }
}

echo "1..12"

A=$tmp/a
t_flags() {
	mkdir -p "$A"
	run "$PSYNCCTL" init --node unix1 --peer unix2:psync:192.0.2.20:both \
	    --peer winsrv1:mepp:192.0.2.10:send --config "$A/psync.conf" --yes
	status 0 && checked "$A/psync.conf" && fhas "$A/psync.conf" 'node-name = "unix1"' &&
	    fhas "$A/psync.conf" 'peer "unix2"' && fhas "$A/psync.conf" 'peer "winsrv1"' &&
	    fhas "$A/psync.conf" "key-file = \"$A/keys/unix2.key\""
}
ok "init --yes writes a configuration from the flags that passes psyncd -t" t_flags

t_modes() {
	mode 600 "$A/psync.conf" && mode 700 "$A/keys" &&
	    mode 600 "$A/keys/unix2.key" && mode 600 "$A/keys/winsrv1.key"
}
ok "the configuration and key files are 0600, the key directory 0700" t_modes

t_keys() {
	grep -Eqx '[0-9a-f]{64}' "$A/keys/unix2.key" ||
	    { echo "psync key is not 64 hex digits"; return 1; }
	k=$(cat "$A/keys/winsrv1.key")
	[ ${#k} -ge 16 ] && [ ${#k} -le 21 ] ||
	    { echo "MEPP key has ${#k} characters, expected 16 to 21"; return 1; }
	case $k in *'('* | *')'* | *','*) echo "MEPP key has ( ) or ,"; return 1 ;; esac
	# Two runs never make the same key.
	mkdir -p "$tmp/a2"
	"$PSYNCCTL" init --node unix1 --peer unix2:psync:192.0.2.20 \
	    --config "$tmp/a2/psync.conf" --yes >/dev/null 2>&1 &&
	    ! cmp -s "$A/keys/unix2.key" "$tmp/a2/keys/unix2.key"
}
ok "keys: 32 random bytes in hex for psync, legacy rules for mepp, new each time" t_keys

t_listeners() {
	# Only peers that connect to this host need a listener.
	awk '/^listen psync/{p=1} p&&/enabled/{print; exit}' "$A/psync.conf" | grep -q true &&
	    awk '/^listen mepp/{p=1} p&&/enabled/{print; exit}' "$A/psync.conf" | grep -q false ||
	    { echo "expected psync listener on, mepp listener off"; cat "$A/psync.conf"; return 1; }
}
ok "a listener is enabled only for a protocol whose peers send to this host" t_listeners

t_next() {
	has "pam-auth-update --enable psync psync-check" &&
	    has "systemctl enable --now psyncd" && has "psyncctl set-key unix1" &&
	    has "psyncd -t -c $A/psync.conf"
}
ok "init prints the next steps (keys to the peers, PAM stack, service)" t_next

t_refuse() {
	sum=$(cksum <"$A/psync.conf")
	run "$PSYNCCTL" init --node other --config "$A/psync.conf" --yes
	status 1 && has "$A/psync.conf exists; --force replaces it" &&
	    [ "$(cksum <"$A/psync.conf")" = "$sum" ]
}
ok "init refuses to overwrite an existing configuration without --force" t_refuse

t_force() {
	key=$(cat "$A/keys/unix2.key")
	run "$PSYNCCTL" init --node unix1b --peer unix2:psync:192.0.2.21 \
	    --config "$A/psync.conf" --yes --force
	status 0 && checked "$A/psync.conf" && fhas "$A/psync.conf" 'node-name = "unix1b"' &&
	    fhasnt "$A/psync.conf" winsrv1 && has "existing key $A/keys/unix2.key" &&
	    [ "$(cat "$A/keys/unix2.key")" = "$key" ] && mode 600 "$A/psync.conf"
}
ok "--force replaces the configuration and keeps a peer's existing key" t_force

t_dialogue() {
	mkdir -p "$tmp/d"
	printf '%s\n' hosta peerb '' 198.51.100.7 receive peerc mepp 198.51.100.8 \
	    both '' | "$PSYNCCTL" init --config "$tmp/d/psync.conf" >"$tmp/run" 2>&1
	rc=$?
	status 0 && checked "$tmp/d/psync.conf" &&
	    fhas "$tmp/d/psync.conf" 'node-name = "hosta"' &&
	    awk '/^peer "peerb"/{p=1} p&&/direction/{print; exit}' "$tmp/d/psync.conf" | grep -q receive &&
	    awk '/^peer "peerb"/{p=1} p&&/protocol/{print; exit}' "$tmp/d/psync.conf" | grep -q psync &&
	    awk '/^peer "peerc"/{p=1} p&&/protocol/{print; exit}' "$tmp/d/psync.conf" | grep -q mepp &&
	    has "Peer name (empty: no more peers)" && [ -f "$tmp/d/keys/peerc.key" ]
}
ok "without --yes init asks node name and peers (defaults: psync, both)" t_dialogue

t_eof() {
	mkdir -p "$tmp/e"
	printf 'hoste\npeerx\n' | "$PSYNCCTL" init --config "$tmp/e/psync.conf" >"$tmp/run" 2>&1
	rc=$?
	status 1 && has "nothing written" && [ ! -e "$tmp/e/psync.conf" ] && [ ! -e "$tmp/e/keys/peerx.key" ]
}
ok "input that ends mid-dialogue writes nothing" t_eof

t_badpeer() {
	mkdir -p "$tmp/b"
	run "$PSYNCCTL" init --node n1 --peer 'p1:tls:192.0.2.1' --config "$tmp/b/psync.conf" --yes
	status 2 && has "protocol 'tls': expected psync or mepp" || return 1
	run "$PSYNCCTL" init --node n1 --peer 'p1' --config "$tmp/b/psync.conf" --yes
	status 2 && has "expected NAME:PROTOCOL:ADDRESS[:DIRECTION]" || return 1
	run "$PSYNCCTL" init --node n1 --peer 'bad/name:psync:192.0.2.1' --config "$tmp/b/psync.conf" --yes
	status 1 && has "peer 'bad/name': expected a name" || return 1
	run "$PSYNCCTL" init --node n1 --peer 'win:mepp:win.example.com:both' \
	    --config "$tmp/b/psync.conf" --yes
	status 1 && has "must be given by its IP address" &&
	    [ ! -e "$tmp/b/psync.conf" ] && [ ! -e "$tmp/b/keys/win.key" ]
}
ok "init refuses a bad protocol, spec, name, or a MEPP sender by host name" t_badpeer

t_v6() {
	mkdir -p "$tmp/v"
	run "$PSYNCCTL" init --node n1 --peer 'p6:psync:[2001:db8::7]:send' \
	    --peer 'q6:psync:2001:db8::8' --config "$tmp/v/psync.conf" --yes
	status 0 && checked "$tmp/v/psync.conf" &&
	    fhas "$tmp/v/psync.conf" 'address = "2001:db8::7"' &&
	    fhas "$tmp/v/psync.conf" 'address = "2001:db8::8"' &&
	    awk '/^peer "p6"/{p=1} p&&/direction/{print; exit}' "$tmp/v/psync.conf" | grep -q send
}
ok "IPv6 peer addresses, bracketed with a direction or bare" t_v6

# The configurations psync.conf(5) shows for the three usual sites are ones
# psyncd accepts (key files missing is only a warning).
t_man() {
	awk -v dir="$tmp/man" '
		/^\.SH EXAMPLES/ { ex = 1 }
		/^\.SH SEE ALSO/ { ex = 0 }
		ex && /^\.nf/ { n++; inblk = 1; next }
		ex && /^\.fi/ { inblk = 0; next }
		inblk { gsub(/\\-/, "-"); print > (dir "/ex" n ".conf") }
	' "$top_srcdir/man/psync.conf.5" 2>/dev/null
	count=0
	for f in "$tmp"/man/ex*.conf; do
		chmod 600 "$f"
		checked "$f" || return 1
		count=$((count + 1))
	done
	[ "$count" -eq 3 ] || { echo "expected 3 examples, found $count"; return 1; }
}
mkdir -p "$tmp/man"
ok "the three example configurations in psync.conf(5) pass psyncd -t" t_man

[ "$failed" -eq 0 ]
