#!/bin/sh
# Scenario 2: the same user's password is changed on host a and, a moment
# later, on host b. The last writer wins by change time: both hosts end with
# b's password (PAM login), and neither a's password nor the old one works
# anywhere. alice's two changes follow each other as they come (a's may
# arrive before b's is made); for bob, host a is unplugged from the switch
# while both changes are made, so that each host holds its own change
# queued when the other's arrives: the two cross. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..12"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_pair a b ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
for h in a b; do e2e_user $h alice 2001 'Old-Alice-Pw1' && e2e_user $h bob 2002 'Old-Bob-Pw1'; done
e2e_psyncd_start a && e2e_psyncd_start b || { echo "Bail out! psyncd did not start"; exit 1; }

t_change() {
	e2e_passwd a alice 'From-A-Pw-1' || { echo "passwd on a failed"; return 1; }
	sleep 0.3
	e2e_passwd b alice 'From-B-Pw-2' || { echo "passwd on b failed"; return 1; }
}
e2e_check "alice's password is changed on a, then on b within a second" t_change

# Both queues drain: each change was answered by the other side.
t_drain() { e2e_wait 15 e2e_drained a && e2e_wait 15 e2e_drained b; }
e2e_check "both queues drain" t_drain
sleep 1
for h in a b; do
	e2e_check "alice logs in on host $h with b's (newer) password" e2e_login $h alice 'From-B-Pw-2'
done
t_not_a() { ! e2e_login a alice 'From-A-Pw-1' && ! e2e_login b alice 'From-A-Pw-1'; }
e2e_check "a's (older) password works on neither host" t_not_a
t_not_old() { ! e2e_login a alice 'Old-Alice-Pw1' && ! e2e_login b alice 'Old-Alice-Pw1'; }
e2e_check "the old password works on neither host" t_not_old

# bob: the changes cross.
t_cross() {
	e2e_link a down || return 1
	e2e_passwd a bob 'From-A-Bob-1' || { echo "passwd on a failed"; return 1; }
	sleep 0.3
	e2e_passwd b bob 'From-B-Bob-2' || { echo "passwd on b failed"; return 1; }
	# Both are queued before either side can deliver.
	sleep 1
	e2e_ctl a status | grep -q 'queue depth:  1,' &&
	e2e_ctl b status | grep -q 'queue depth:  1,' || { e2e_ctl a status; e2e_ctl b status; return 1; }
	e2e_link a up
}
e2e_check "bob's password is changed on a, then on b, while a is unplugged; both wait queued" t_cross
e2e_check "both queues drain once a is plugged in again" t_drain
sleep 1
for h in a b; do
	e2e_check "bob logs in on host $h with b's (newer) password" e2e_login $h bob 'From-B-Bob-2'
done
t_bob_not_a() { ! e2e_login a bob 'From-A-Bob-1' && ! e2e_login b bob 'From-A-Bob-1'; }
e2e_check "a's (older) password for bob works on neither host" t_bob_not_a
t_superseded() {
	[ "$(e2e_count b 'for bob from peer a is older than the newest one here: superseded')" = 1 ] &&
	[ "$(e2e_count a 'for bob from peer b: applied')" = 1 ] ||
	{ grep bob "$(e2e_log a)" "$(e2e_log b)"; return 1; }
}
e2e_check "b refuses a's crossing change as superseded; a applies b's" t_superseded
[ "$E2E_FAILED" -eq 0 ]
