#!/bin/sh
# Scenario 7: carol exists on host a only. Her password change on a is
# refused by b (no such user); a logs 8201 once and gives the change up
# instead of retrying it for ever: after several retry intervals (1 s,
# at most 2 s in the test hosts) the log still has exactly one 8201 for
# her, the queue shows the delivery given up, and nothing waits. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..7"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_pair a b ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
for h in a b; do e2e_user $h alice 2001 'Old-Alice-Pw1'; done
e2e_user a carol 2002 'Old-Carol-Pw1' || { echo "Bail out! cannot add carol"; exit 1; }
e2e_psyncd_start a && e2e_psyncd_start b || { echo "Bail out! psyncd did not start"; exit 1; }

e2e_check "carol changes her password on a (she does not exist on b)" \
	e2e_passwd a carol 'New-Carol-Pw2'
t_8201() {
	e2e_wait 15 sh -c "grep -q '8201: user carol does not exist on peer b' '$(e2e_log a)'" ||
	{ grep carol "$(e2e_log a)"; return 1; }
}
e2e_check "a logs 8201: user carol does not exist on peer b" t_8201
t_b_says() { grep -q '8201.*carol' "$(e2e_log b)" || { grep carol "$(e2e_log b)"; return 1; }; }
e2e_check "b logs why it refused the change (8201)" t_b_says
# Several retry intervals pass.
sleep 8
t_once() {
	_n=$(e2e_count a '8201.*carol')
	[ "$_n" = 1 ] || { echo "$_n lines with 8201 for carol:"; grep carol "$(e2e_log a)"; return 1; }
	_n=$(grep -c 'for carol from peer a' "$(e2e_log b)")
	[ "$_n" = 1 ] || { echo "b was offered carol's change $_n times"; return 1; }
}
e2e_check "after 8 s: exactly one 8201 for carol in a's log, one attempt seen by b" t_once
t_given_up() {
	_q=$(e2e_ctl a queue list --all) &&
	echo "$_q" | grep -q '^[0-9a-f]* carol  *b  *given-up ' &&
	[ "$(echo "$_q" | grep -c ' carol ')" = 1 ] || { echo "$_q"; return 1; }
}
e2e_check "psyncctl queue list --all on a shows carol's delivery given up" t_given_up
t_nothing_waits() {
	e2e_drained a && ! e2e_ctl a queue list | grep -q carol ||
	{ e2e_ctl a status; e2e_ctl a queue list; return 1; }
}
e2e_check "nothing waits in a's queue" t_nothing_waits
# The channel itself is fine: alice's change goes through afterwards.
t_alice() { e2e_passwd a alice 'New-Alice-Pw2' && e2e_wait 15 e2e_login b alice 'New-Alice-Pw2'; }
e2e_check "a change for a user b has still arrives" t_alice
[ "$E2E_FAILED" -eq 0 ]
