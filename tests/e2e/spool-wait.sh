#!/bin/sh
# pam_psync while psyncd is down: three users change their passwords with
# passwd on host a while psyncd there is stopped; the changes wait in the
# spool; when psyncd starts, all three reach host b, in the order they were
# made, and no password is left in a's spool, queue or log. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..5"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_pair a b ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
uid=2001
for u in alice bob carol; do
	for h in a b; do e2e_user $h $u $uid "Old-$u-Pw1"; done
	uid=$((uid + 1))
done
e2e_psyncd_start b || { echo "Bail out! psyncd did not start on b"; exit 1; }

t_changes() {
	for u in alice bob carol; do
		printf 'New-%s-Pw9#\nNew-%s-Pw9#\n' "$u" "$u" | e2e_run a passwd "$u" || return 1
		sleep 0.05
	done
	n=$(e2e_run a "$top_builddir/tests/spool-dump" "$E2E_WORK/a/state/spool" /etc/psync/host.key | wc -l)
	[ "$n" -eq 3 ] || { echo "spool holds $n entries, expected 3"; return 1; }
}
e2e_check "three passwd runs on a with psyncd stopped leave three spool entries" t_changes

e2e_psyncd_start a || { echo "Bail out! psyncd did not start on a"; exit 1; }
t_arrive() {
	for u in alice bob carol; do
		e2e_wait 15 e2e_login b "$u" "New-$u-Pw9#" || { echo "$u: new password not on b"; return 1; }
	done
}
e2e_check "when psyncd starts, all three arrive on b" t_arrive
t_order() {
	order=$(grep -o 'for [a-z]* from peer a: applied' "$(e2e_log b)" | awk '{ print $2 }' | tr '\n' ' ')
	[ "$order" = "alice bob carol " ] || { echo "applied on b in order: $order"; return 1; }
}
e2e_check "b applied them in the order they were made" t_order
t_empty() {
	n=$(ls "$E2E_WORK/a/state/spool" | grep -c '\.chg$')
	[ "$n" -eq 0 ] || { echo "$n entries left in a's spool"; return 1; }
}
e2e_check "a's spool is empty once the changes are queued" t_empty
t_noleak() {
	! grep -rqaF -e 'New-alice-Pw9#' -e 'New-bob-Pw9#' -e 'New-carol-Pw9#' \
	    "$E2E_WORK/a/state" "$E2E_WORK/b/state" "$(e2e_log a)" "$(e2e_log b)"
}
e2e_check "no password in the spools, queues or logs of either host" t_noleak
[ "$E2E_FAILED" -eq 0 ]
