#!/bin/sh
# System test (TAP): batches applied by the files store while the real
# pam_unix passwd changes other users in the same sandboxed host lose no
# update on either side; the pam store applies through a PAM service with
# PSYNC_APPLYING=1 in the PAM environment. Runs in a sandbox (a copy of
# /etc bound over /etc in a private mount namespace) and checks that the
# machine's /etc/shadow is byte for byte the same afterwards.
# Environment: STORE_ROUNDS (default 6), STORE_PAD (padding users, 3000).
set -u
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
top_builddir=${top_builddir:-$(pwd)}
. "$top_srcdir/tests/lib/sandbox.sh"
apply=$top_builddir/tests/store-apply
rounds=${STORE_ROUNDS:-6}
pad=${STORE_PAD:-3000}
n=0
failed=0

ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
check() { # check DESCRIPTION COMMAND...
	_d=$1
	shift
	if "$@"; then ok "$_d"; else not_ok "$_d"; fi
}

if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null ||
    ! command -v passwd >/dev/null || ! unshare --mount true 2>/dev/null; then
	echo "1..0 # SKIP needs root, unshare and passwd"
	exit 0
fi
if [ ! -x "$apply" ]; then
	echo "1..1"
	echo "not ok 1 - $apply not built"
	exit 1
fi

shadow_sum=$(sha256sum /etc/shadow /etc/passwd)
work=$(mktemp -d /tmp/psync-store-sys.XXXXXX) || exit 1
trap 'sandbox_destroy "$work"' EXIT
trap 'exit 1' INT TERM HUP
host=$work/host
echo "1..$((rounds * 2 + 7))"

sandbox_create "$host" || { not_ok "sandbox created"; exit 1; }
# Test users inside the sandbox only; passwd changes p*, the store s*.
pusers="p1 p2 p3 p4"
susers=""
i=1
while [ $i -le 16 ]; do susers="$susers s$i"; i=$((i + 1)); done
check "test users created inside the sandbox" sandbox_sh "$host" "
	for u in $pusers $susers; do useradd -M -N \"\$u\" || exit 1; done"
# Padding makes each rewrite slow enough for the two sides to overlap.
awk -v n="$pad" 'BEGIN { for (i = 0; i < n; i++)
	printf "pad%05d:x:%d:%d::/nonexistent:/usr/sbin/nologin\n", i, 20000 + i, 100 }' \
	>>"$host/etc/passwd"
awk -v n="$pad" 'BEGIN { for (i = 0; i < n; i++)
	printf "pad%05d:*:19000:0:99999:7:::\n", i }' >>"$host/etc/shadow"
if grep -q '^s1:' /etc/passwd; then
	not_ok "users stayed out of the real /etc/passwd"
else
	ok "users stayed out of the real /etc/passwd"
fi

# Prints the users whose stored password is not PASSWORD-PREFIX-USER-ROUND:
# store-apply answers "unchanged" only when the stored hash verifies.
verify() { # verify ROUND USERS...
	_r=$1
	shift
	for _u in "$@"; do echo "$_u:pw-$_u-$_r-Xq9"; done |
	    sandbox_run "$host" "$apply" --shadow /etc/shadow \
	    --method yescrypt --lock-timeout 30 |
	    awk '$4 != "unchanged:" { print $1 }'
}

r=1
while [ $r -le "$rounds" ]; do
	out=$(sandbox_sh "$host" "
		( for u in $pusers; do
			printf 'pw-%s-$r-Xq9\npw-%s-$r-Xq9\n' \$u \$u |
			    passwd \$u >/dev/null 2>&1 || echo \"passwd \$u failed\"
		  done ) &
		for u in $susers; do echo \"\$u:pw-\$u-$r-Xq9\"; done |
		    '$apply' --shadow /etc/shadow --method yescrypt \
		    --lock-timeout 30 -q || echo 'store-apply failed'
		wait
	" 2>&1)
	if [ -n "$out" ]; then
		not_ok "round $r: passwd and store-apply both succeed"
		echo "$out" | sed 's/^/# /'
	else
		ok "round $r: passwd and store-apply both succeed"
	fi
	# shellcheck disable=SC2086
	lost=$(verify "$r" $pusers $susers)
	if [ -z "$lost" ]; then
		ok "round $r: no update lost on either side"
	else
		not_ok "round $r: no update lost on either side"
		echo "# stale passwords for:" $lost
	fi
	r=$((r + 1))
done

# The pam store: through a service whose stack records the PAM environment.
cat >"$work/env.sh" <<EOS
#!/bin/sh
echo "applying=\${PSYNC_APPLYING:-unset}" >>"$work/env.out"
EOS
chmod 755 "$work/env.sh"
cat >"$host/etc/pam.d/psync-store-test" <<EOS
password	optional	pam_exec.so $work/env.sh
password	required	pam_unix.so yescrypt
EOS
out=$(echo "s1:pam-pass-s1-Zz8" | sandbox_run "$host" "$apply" --pam psync-store-test)
case "$out" in
"s1 0 ok applied:"*) ok "pam store applies through the PAM service" ;;
*) not_ok "pam store applies through the PAM service"; echo "# $out" ;;
esac
out=$(echo "s1:pam-pass-s1-Zz8" | sandbox_run "$host" "$apply" \
    --shadow /etc/shadow --method yescrypt)
case "$out" in
"s1 0 ok unchanged:"*) ok "the password set through PAM verifies" ;;
*) not_ok "the password set through PAM verifies"; echo "# $out" ;;
esac
if grep -q '^applying=1$' "$work/env.out" 2>/dev/null &&
    ! grep -q 'applying=unset' "$work/env.out"; then
	ok "PSYNC_APPLYING=1 is in the PAM environment of the stack"
else
	not_ok "PSYNC_APPLYING=1 is in the PAM environment of the stack"
	sed 's/^/# /' "$work/env.out" 2>/dev/null
fi
out=$(echo "nosuchuser:pam-pass-Zz8" | sandbox_run "$host" "$apply" --pam psync-store-test)
case "$out" in
"nosuchuser 12 "*) ok "pam store: unknown user is code 12" ;;
*) not_ok "pam store: unknown user is code 12"; echo "# $out" ;;
esac

if [ "$(sha256sum /etc/shadow /etc/passwd)" = "$shadow_sum" ]; then
	ok "the real /etc/shadow and /etc/passwd are unchanged"
else
	not_ok "the real /etc/shadow and /etc/passwd are unchanged"
fi
[ "$failed" -eq 0 ]
