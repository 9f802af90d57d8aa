#!/bin/sh
# The Debian packages, end to end: builds them with dpkg-buildpackage from a
# clean copy of the tree, checks lintian and the systemd unit, installs them
# into a fresh Debian 12 root (debootstrap, minbase), and there checks the
# PAM stack pam-auth-update wrote, runs passwd through it, then removes and
# purges them and checks the stack is back as it was. Prints TAP.
#
# The root runs in its own mount, network, UTS and IPC namespaces: /proc is
# mounted only there (gone with the namespace; a trap unmounts it too), and
# nothing inside can reach the network or touch this machine's /etc.
#
# Environment: PSYNC_DEB_CACHE (default /var/cache/psync-tests) keeps the
# debootstrapped root between runs (bookworm-minbase/, about 220 MB; delete
# it to start afresh); PSYNC_DEB_MIRROR (default http://deb.debian.org/debian);
# PSYNC_DEB_VERBOSE=1 shows what each test in the root printed.
# Needs root, dpkg-buildpackage, debhelper, lintian, and debootstrap with the
# mirror the first time; prints "1..0 # SKIP ..." when one is missing.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
top_srcdir=$(cd "$top_srcdir" && pwd)
cache=${PSYNC_DEB_CACHE:-/var/cache/psync-tests}
mirror=${PSYNC_DEB_MIRROR:-http://deb.debian.org/debian}
# What the root needs beyond minbase: the packages' run-time dependencies
# (so dpkg -i works offline) and adduser for the postinst. The cached root
# is named after this list, so that a new dependency makes a new root.
include=adduser,libconfuse2,libsqlite3-0,libssl3,libcrypt1,libpam-runtime,libselinux1,libldap-2.5-0
base=$cache/bookworm-minbase-$(printf '%s' "$include" | md5sum | cut -c1-8)

skip() { echo "1..0 # SKIP $*"; exit 0; }
[ "$(id -u)" -eq 0 ] || skip "needs root (chroot, namespaces)"
for t in dpkg-buildpackage dh lintian unshare chroot; do
	command -v "$t" >/dev/null 2>&1 ||
	    skip "$t is not installed (CHECK_DEB=1 tools/check installs the packaging tools)"
done
[ -f "$top_srcdir/debian/control" ] || skip "no debian/ in $top_srcdir (a dist tarball has none)"

if [ ! -x "$base/usr/bin/dpkg" ]; then
	command -v debootstrap >/dev/null 2>&1 || skip "debootstrap is not installed"
	mkdir -p "$cache" || skip "cannot create $cache"
	rm -rf "$base.tmp"
	if ! debootstrap --variant=minbase --include="$include" bookworm \
	    "$base.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
		rm -rf "$base.tmp"
		skip "debootstrap bookworm from $mirror failed (see $cache/debootstrap.log)"
	fi
	mv "$base.tmp" "$base" || skip "cannot move the new root to $base"
fi

work=$(mktemp -d /tmp/psync-deb-XXXXXX)
root=$work/root
cleanup() {
	# The namespace takes its mounts with it; this is for an interrupted run.
	if [ -d "$root/proc" ] && mountpoint -q "$root/proc" 2>/dev/null; then
		umount -l "$root/proc"
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

n=0
failed=0
pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); echo "not ok $n - $1"; failed=$((failed + 1)); }
show() { sed 's/^/# /' "$1" | tail -n "${2:-40}"; }

echo "1..15"

# 1. Build from the files git knows (or the whole tree without builds), so
# that the work tree's own build directories stay out of it.
mkdir -p "$work/src"
if git -C "$top_srcdir" rev-parse --git-dir >/dev/null 2>&1; then
	(cd "$top_srcdir" && git ls-files -co --exclude-standard | tar -cf - -T -) |
	    tar -xf - -C "$work/src"
else
	(cd "$top_srcdir" && tar -cf - --exclude='./_build*' .) | tar -xf - -C "$work/src"
fi
if (cd "$work/src" && DEB_BUILD_OPTIONS="nocheck parallel=2" \
    dpkg-buildpackage -us -uc -b) >"$work/build.log" 2>&1 &&
    ls "$work"/libpam-psync_*.deb "$work"/psyncd_*.deb >/dev/null 2>&1; then
	pass "dpkg-buildpackage -us -uc -b builds libpam-psync and psyncd"
else
	fail "dpkg-buildpackage -us -uc -b builds libpam-psync and psyncd"
	show "$work/build.log"
	echo "Bail out! no packages to test"
	exit 1
fi

# 2. lintian: errors and warnings fail; overrides and info are shown.
lintian --allow-root --show-overrides "$work"/psync_*.changes \
    >"$work/lintian.log" 2>&1
show "$work/lintian.log"
if grep -Eq '^[EW]: ' "$work/lintian.log"; then
	fail "lintian: no errors and no warnings"
else
	pass "lintian: no errors and no warnings"
fi

# 3. The unit, from the package, against its own files.
mkdir -p "$work/pkg"
for d in "$work"/*.deb; do dpkg-deb -x "$d" "$work/pkg"; done
unit=$work/pkg/lib/systemd/system/psyncd.service
if command -v systemd-analyze >/dev/null 2>&1; then
	# This machine's systemd checks the packaged unit with the packaged
	# programs and man pages (the minbase root has no systemd).
	sed "s|/usr/sbin/|$work/pkg/usr/sbin/|g" "$unit" >"$work/psyncd.service"
	if MANPATH=$work/pkg/usr/share/man systemd-analyze verify \
	    "$work/psyncd.service" >"$work/verify.log" 2>&1 &&
	    ! grep -q . "$work/verify.log"; then
		pass "systemd-analyze verify psyncd.service"
	else
		fail "systemd-analyze verify psyncd.service"
		show "$work/verify.log"
	fi
	systemd-analyze security --offline=yes "$work/psyncd.service" \
	    >"$work/security.log" 2>&1
	grep 'Overall exposure' "$work/security.log" | sed 's/^/# /'
else
	pass "systemd-analyze verify psyncd.service # SKIP systemd-analyze missing"
fi

# The rest runs in the root. inroot SCRIPT runs a shell script there.
rm -rf "$root"
cp -a "$base" "$root" || { echo "Bail out! cannot copy $base"; exit 1; }
mkdir -p "$root/root/debs"
cp "$work"/libpam-psync_*.deb "$work"/psyncd_*.deb "$root/root/debs/"
# No service may start inside the root.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
inroot() {
	unshare --mount --net --uts --ipc --propagation private -- sh -c '
		mount -t proc proc "$0/proc" || exit 1
		hostname psync-deb-test
		chroot "$0" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		    DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8 /bin/sh -c "$1"
		rc=$?
		umount "$0/proc"
		exit $rc' "$root" "$1"
}
t() { # t DESCRIPTION SCRIPT : one test in the root
	if inroot "$2" >"$work/t.log" 2>&1; then
		pass "$1"
		[ -z "${PSYNC_DEB_VERBOSE:-}" ] || show "$work/t.log"
	else
		fail "$1"
		show "$work/t.log"
	fi
}

cp "$root/etc/pam.d/common-password" "$work/common-password.before"

t "dpkg -i installs both packages into a clean Debian 12 root" '
	dpkg -i /root/debs/psyncd_*.deb /root/debs/libpam-psync_*.deb'

# 5. pam-auth-update's stack: check role before pam_unix, forwarding after.
t "common-password: pam_psync check before pam_unix, forwarding after it" '
	f=/etc/pam.d/common-password
	cat $f
	chk=$(grep -n "^password.*pam_psync\.so check" $f | cut -d: -f1)
	unix=$(grep -n "^password.*pam_unix\.so" $f | cut -d: -f1)
	fwd=$(grep -n "^password.*pam_psync\.so *$" $f | cut -d: -f1)
	[ -n "$chk" ] && [ -n "$unix" ] && [ -n "$fwd" ] || { echo "missing a line"; exit 1; }
	[ "$chk" -lt "$unix" ] && [ "$unix" -lt "$fwd" ] || { echo "wrong order"; exit 1; }
	# The check role prompts; pam_unix takes its token.
	grep -q "^password.*pam_unix\.so.*use_authtok" $f || { echo "pam_unix without use_authtok"; exit 1; }
	# Forwarding sits after the success jump target pam_permit, reached on success.
	grep -q "^password.*optional.*pam_psync\.so" $f'

t "psync system user; queue, spool and keys root 0700; psync.conf a 0600 conffile" '
	set -e
	getent passwd psync
	uid=$(id -u psync); [ "$uid" -lt 1000 ]
	case $(getent passwd psync | cut -d: -f7) in */nologin|*/false) ;; *) exit 1 ;; esac
	for d in /var/lib/psync /var/spool/psync /etc/psync/keys; do
		[ "$(stat -c "%U %a" $d)" = "root 700" ] || { echo "$d: $(stat -c "%U %a" $d)"; exit 1; }
	done
	[ "$(stat -c "%U %a" /etc/psync/psync.conf)" = "root 600" ]
	grep -qx /etc/psync/psync.conf /var/lib/dpkg/info/psyncd.conffiles'

t "the installed default configuration passes psyncd -t" '
	psyncd -t | grep -qx "configuration OK"'

t "psyncctl init in the root writes a configuration that passes psyncd -t" '
	set -e
	psyncctl init --node debtest --peer peer1:psync:198.51.100.2:both --yes --force
	psyncd -t
	[ "$(stat -c %a /etc/psync/psync.conf)" = 600 ]
	[ "$(stat -c %a /etc/psync/keys/peer1.key)" = 600 ]'

# passwd through the installed stack: the hash changes, a sealed spool
# entry appears, and the password is nowhere in it.
t "passwd through the installed stack changes the hash and spools one sealed change" '
	useradd -m -s /bin/sh debuser || exit 1
	echo "debuser:Start-pass-31" | chpasswd || exit 1
	before=$(ls /var/spool/psync | grep -vc "^bad$")
	old=$(getent shadow debuser | cut -d: -f2)
	printf "Deb-Test-pass-77\nDeb-Test-pass-77\n" | passwd debuser || exit 1
	new=$(getent shadow debuser | cut -d: -f2)
	[ "$old" != "$new" ] || { echo "hash unchanged"; exit 1; }
	after=$(ls /var/spool/psync | grep -vc "^bad$")
	echo "spool: $before before, $after after"
	[ "$after" -gt "$before" ] || { echo "no spool entry"; exit 1; }
	! grep -rqa "Deb-Test-pass-77" /var/spool/psync || { echo "cleartext in the spool"; exit 1; }'

# The installed psyncd takes the spooled change into its queue, and its
# network child runs as the psync user (chrooted); the peer is unreachable.
t "the installed psyncd queues the spooled change; its child runs as psync" '
	psyncd -f >/tmp/psyncd.log 2>&1 &
	pid=$!
	i=0
	while [ $i -lt 50 ] && ls /var/spool/psync | grep -qv "^bad$"; do
		sleep 0.2; i=$((i + 1))
	done
	child=$(grep -l "^PPid:[[:space:]]*$pid\$" /proc/[0-9]*/status 2>/dev/null | head -n1)
	uid=$(awk "/^Uid:/{print \$2}" "$child" 2>/dev/null)
	root=$(readlink "${child%/status}/root" 2>/dev/null)
	kill $pid; wait $pid
	cat /tmp/psyncd.log
	echo "child ${child:-none}: uid ${uid:-?}, root ${root:-?}"
	! ls /var/spool/psync | grep -qv "^bad$" || { echo "spool not emptied"; exit 1; }
	[ -f /var/lib/psync/queue.db ] || { echo "no queue.db"; ls -la /var/lib/psync; exit 1; }
	[ "$uid" = "$(id -u psync)" ] || { echo "child not running as psync"; exit 1; }'

t "dpkg -r: pam_psync leaves common-password; configuration, keys and queue stay" '
	dpkg -r libpam-psync psyncd || exit 1
	! grep -q pam_psync /etc/pam.d/common-password &&
	    ! ls /lib/*/security/pam_psync.so 2>/dev/null &&
	    [ -f /etc/psync/psync.conf ] && [ -f /etc/psync/keys/peer1.key ] &&
	    [ -f /var/lib/psync/queue.db ]'
if cmp -s "$work/common-password.before" "$root/etc/pam.d/common-password"; then
	pass "after remove common-password is byte for byte as before install"
else
	fail "after remove common-password is byte for byte as before install"
	diff "$work/common-password.before" "$root/etc/pam.d/common-password" | sed 's/^/# /'
fi

t "dpkg -P: says so, removes configuration, keys, queue, spool; keeps the psync user" '
	dpkg -P libpam-psync psyncd >/tmp/purge.log 2>&1; rc=$?
	cat /tmp/purge.log
	[ $rc -eq 0 ] || exit 1
	grep -q "psyncd: purge: removing the peer keys" /tmp/purge.log || exit 1
	for p in /etc/psync /var/lib/psync /var/spool/psync; do
		[ ! -e $p ] || { echo "$p still there"; ls -la $p; exit 1; }
	done
	getent passwd psync >/dev/null'
if cmp -s "$work/common-password.before" "$root/etc/pam.d/common-password"; then
	pass "after purge common-password is byte for byte as before install"
else
	fail "after purge common-password is byte for byte as before install"
	diff "$work/common-password.before" "$root/etc/pam.d/common-password" | sed 's/^/# /'
fi

t "after purge passwd still works through the restored stack" '
	printf "After-purge-pass-5\nAfter-purge-pass-5\n" | passwd debuser'

[ "$failed" -eq 0 ]
