#!/bin/sh
# Scenario 4: psyncd on host b is stopped while alice's password is changed
# three times on host a. The changes wait in a's queue; when b's psyncd is
# back they are delivered without any manual step, and the last one wins:
# alice logs in on b with the third password, not the second or first.
# Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..8"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_pair a b ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
for h in a b; do e2e_user $h alice 2001 'Old-Alice-Pw1'; done
e2e_psyncd_start a && e2e_psyncd_start b || { echo "Bail out! psyncd did not start"; exit 1; }

e2e_check "psyncd on b stops" e2e_psyncd_stop b
t_three() {
	for i in 1 2 3; do
		e2e_passwd a alice "Down-Alice-Pw$i" || { echo "passwd $i failed"; return 1; }
		sleep 0.1
	done
}
e2e_check "alice's password is changed three times on a" t_three
t_queued() {
	sleep 2
	_s=$(e2e_ctl a status) && echo "$_s" | grep -q '^peer b (psync, both): unreachable' &&
	! echo "$_s" | grep -q 'queue depth:  0,' || { echo "$_s"; return 1; }
}
e2e_check "a's status: peer b unreachable, changes waiting" t_queued
t_b_old() { e2e_login b alice 'Old-Alice-Pw1'; }
e2e_check "meanwhile b still has alice's old password" t_b_old
e2e_check "psyncd on b starts again" e2e_psyncd_start b
t_drain() { e2e_wait 20 e2e_drained a; }
e2e_check "a's queue drains without a manual step" t_drain
t_last() {
	e2e_wait 5 e2e_login b alice 'Down-Alice-Pw3' || return 1
	for p in 'Down-Alice-Pw2' 'Down-Alice-Pw1' 'Old-Alice-Pw1'; do
		e2e_login b alice "$p" && { echo "$p still works"; return 1; }
	done
	return 0
}
e2e_check "the last change wins on b: the third password works, the others do not" t_last
# Every change was queued; the third was delivered and the queue marked
# the first two superseded by it (a newer change for the same user and
# peer replaces a waiting one); nothing is left waiting or given up.
t_all() {
	_l=$(e2e_log a)
	_q=$(e2e_ctl a queue list --all) || return 1
	[ "$(grep -c 'for alice queued for 1 peer' "$_l")" = 3 ] &&
	[ "$(echo "$_q" | grep -c '^[0-9a-f]* alice  *b  *done ')" = 1 ] &&
	[ "$(echo "$_q" | grep -c '^[0-9a-f]* alice  *b  *superseded ')" = 2 ] &&
	[ "$(grep -c 'for alice delivered to peer b: applied' "$_l")" = 1 ] &&
	! grep -q 'given up' "$_l" ||
	{ grep alice "$_l"; echo "$_q"; return 1; }
}
e2e_check "a queued all three: the last delivered once, the first two superseded by it, none given up" t_all
[ "$E2E_FAILED" -eq 0 ]
