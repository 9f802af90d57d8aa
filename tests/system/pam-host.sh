#!/bin/sh
# pam_psync in a sandboxed test host (a private copy of /etc bind-mounted
# over /etc in a mount namespace; see tests/lib/sandbox.sh) with the real
# passwd, su, chpasswd and pam_unix: each kind of change leaves exactly one
# sealed spool entry for the right user, a password a peer would refuse is
# refused before pam_unix changes anything, excluded users leave nothing,
# and no password reaches the spool or the logs. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/lib/sandbox.sh"

if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
	echo "1..0 # SKIP needs root and unshare"
	exit 0
fi
module=$top_builddir/pam_psync/.libs/pam_psync.so
dump=$top_builddir/tests/spool-dump
work=$(mktemp -d /tmp/psync-pamhost-XXXXXX)
trap 'sandbox_destroy "$work"' EXIT
trap 'exit 1' INT TERM HUP
real_before=$(cat /etc/shadow /etc/passwd | sha256sum)

sandbox_create "$work/host" || { echo "1..0 # SKIP cannot copy /etc"; exit 0; }
cat >"$work/host/etc/pam.d/common-password" <<PAM
# psync test host: check role, pam_unix, forwarding role
password	requisite			$module check config=/etc/psync/psync.conf
password	[success=1 default=ignore]	pam_unix.so obscure use_authtok try_first_pass yescrypt nodelay
password	requisite			pam_deny.so
password	required			pam_permit.so
password	optional			$module config=/etc/psync/psync.conf
PAM
mkdir -p "$work/host/etc/psync"
cat >"$work/host/etc/psync/psync.conf" <<CONF
node-name = "hosta"
policy {
	deny-groups = { "nosync" }
}
peer "win" {
	protocol = mepp
	address = "198.51.100.9"
	key = "Abcdef123456789!"
	direction = send
	min-length = 8
	min-classes = 3
}
queue {
	spool-directory = "$work/spool"
	host-key-file = "$work/host.key"
}
CONF
chmod 600 "$work/host/etc/psync/psync.conf"

# Everything below runs in one namespace: /etc is the copy, and /dev is an
# overlay whose /dev/log is our own syslog collector.
cat >"$work/inside.sh" <<'INSIDE'
set -u
mkdir -p "$W/devup" "$W/devwork"
mount -t overlay overlay -o "lowerdir=/dev,upperdir=$W/devup,workdir=$W/devwork" /dev || exit 3
perl -MIO::Socket::UNIX -e '
	my $s = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => "/dev/log") or die "$!";
	open(my $out, ">>", $ARGV[0]) or die "$!";
	$out->autoflush(1);
	while (1) { my $m; $s->recv($m, 8192); print $out "$m\n"; }' "$W/syslog" &
collector=$!
sleep 0.3

n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
entries() { "$DUMP" "$W/spool" "$W/host.key" 2>/dev/null | wc -l; }
last_user() { "$DUMP" "$W/spool" "$W/host.key" | tail -n 1 | cut -d' ' -f2; }
shadow_of() { grep "^$1:" /etc/shadow; }

hash() { perl -e 'print crypt($ARGV[0], "\$6\$" . $ARGV[1] . "\$")' "$1" "$2"; }
groupadd -g 3000 nosync
useradd -M -d /nonexistent -s /bin/sh -u 2001 alice
useradd -M -d /nonexistent -s /bin/sh -u 2002 -G nosync carol
useradd -M -d /nonexistent -s /bin/sh -u 999 -r svc
usermod -p "$(hash 'Old-Alice-Pw1' s1)" alice
usermod -p "$(hash 'Old-Carol-Pw1' s2)" carol
usermod -p "$(hash 'Old-Svc-Pw1' s3)" svc

# 1: passwd run by root
out=$(printf 'Root-Set-Pw1!\nRoot-Set-Pw1!\n' | passwd alice 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(entries)" -eq 1 ] && [ "$(last_user)" = alice ]; then
	ok "passwd run by root leaves one sealed spool entry for alice"
else nok "passwd run by root leaves one sealed spool entry for alice" "rc=$rc" "$out" "entries=$(entries)"; fi

# 2: the entry is readable by root only
f=$(ls "$W/spool"/*.chg | head -n 1)
perms="$(stat -c '%a %U' "$f") $(stat -c '%a %U' "$W/spool")"
if [ "$perms" = "600 root 700 root" ]; then
	ok "spool entry is 0600 root in a 0700 root directory"
else nok "spool entry is 0600 root in a 0700 root directory" "$perms"; fi

# 3: passwd run by the user through su (old, new, new)
out=$(printf 'Root-Set-Pw1!\nUser-Chose-9x#\nUser-Chose-9x#\n' | su alice -c passwd 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(entries)" -eq 2 ] && [ "$(last_user)" = alice ]; then
	ok "passwd run by the user through su leaves one more entry"
else nok "passwd run by the user through su leaves one more entry" "rc=$rc" "$out" "entries=$(entries)"; fi

# 4: chpasswd
out=$(echo 'alice:Chpasswd-Set-7q!' | chpasswd 2>&1); rc=$?
if [ $rc -eq 0 ] && [ "$(entries)" -eq 3 ] && [ "$(last_user)" = alice ]; then
	ok "chpasswd leaves one more entry"
else nok "chpasswd leaves one more entry" "rc=$rc" "$out" "entries=$(entries)"; fi

# 5: a password the Windows peer would refuse never reaches pam_unix
before=$(shadow_of alice)
out=$(printf 'alllowercase1\nalllowercase1\nalllowercase1\nalllowercase1\nalllowercase1\nalllowercase1\n' | passwd alice 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(shadow_of alice)" = "$before" ] && [ "$(entries)" -eq 3 ] &&
    echo "$out" | grep -q "BAD PASSWORD: peer win needs at least 3 of these: upper case, lower case, digits, symbols"; then
	ok "passwd refuses a password the peer would refuse, naming the rule; shadow unchanged"
else nok "passwd refuses a password the peer would refuse, naming the rule; shadow unchanged" "rc=$rc" "$out"; fi

# 6-8: root, a denied group and a system account leave no entry
for u in root carol svc; do
	out=$(printf 'Excluded-Pw-42!\nExcluded-Pw-42!\n' | passwd "$u" 2>&1); rc=$?
	if [ $rc -eq 0 ] && [ "$(entries)" -eq 3 ]; then
		ok "a change of $u leaves no spool entry"
	else nok "a change of $u leaves no spool entry" "rc=$rc" "$out" "entries=$(entries)"; fi
done

kill "$collector" 2>/dev/null
wait "$collector" 2>/dev/null
INSIDE

echo "1..11"
W=$work DUMP=$dump sandbox_run "$work/host" sh "$work/inside.sh"
n=8

t() { n=$((n + 1)); if eval "$2"; then echo "ok $n - $1"; else echo "not ok $n - $1"; fi; }
t "syslog shows the forwarding role queued alice's changes" \
    "[ \"\$(grep -c 'password change of alice queued' \"$work/syslog\")\" -eq 3 ]"
t "no test password in the spool, the host key or the logs" \
    "! grep -rqaF -e Root-Set-Pw1 -e User-Chose-9x -e Chpasswd-Set-7q -e alllowercase1 -e Excluded-Pw-42 \"$work/spool\" \"$work/syslog\" \"$work/host.key\""
t "the machine's own /etc/passwd and /etc/shadow are untouched" \
    "[ \"\$(cat /etc/shadow /etc/passwd | sha256sum)\" = \"$real_before\" ]"
