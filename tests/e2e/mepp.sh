#!/bin/sh
# Scenario 3: legacy MEPP (the Windows Password Synchronization protocol).
# Host a has a MEPP peer for host b and forwards a passwd change to b's MEPP
# listener; host b has a MEPP peer for a that trusts a's address. Then b
# acts as a MEPP client towards a's listener (psyncctl send on b, through
# its MEPP peer that points at a). No psync peers at all: each change can
# only have travelled over MEPP. Both are verified by PAM login. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..8"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
# mepp_side HOST OWN-OCTET PEER-NAME PEER-OCTET
mepp_side() {
	e2e_conf "$1" <<CONF
listen mepp {
	address = "$E2E_NET.$2"
	port = 6677
}
peer "$3" {
	protocol = mepp
	address = "$E2E_NET.$4"
	port = 6677
	key = "Legacy-MEPP-Key-7"
	trusted-addresses = { "$E2E_NET.$4" }
	direction = both
	connect-timeout = 3s
}
CONF
}
mepp_side a 1 winb 2 && mepp_side b 2 wina 1 ||
	{ echo "Bail out! cannot write the MEPP configuration"; exit 1; }
for h in a b; do
	e2e_user $h alice 2001 'Old-Alice-Pw1' && e2e_user $h bob 2002 'Old-Bob-Pw1' ||
	{ echo "Bail out! cannot add users"; exit 1; }
done
e2e_psyncd_start a && e2e_psyncd_start b || { echo "Bail out! psyncd did not start"; exit 1; }

e2e_check "psyncctl verify winb on a: the MEPP channel to b works" e2e_ctl a verify winb
e2e_check "alice's password is changed on a with passwd" e2e_passwd a alice 'Mepp-Alice-Pw2'
t_a_to_b() { e2e_wait 15 e2e_login b alice 'Mepp-Alice-Pw2'; }
e2e_check "a forwards it over MEPP: alice logs in on b with the new password" t_a_to_b
t_a_log() {
	e2e_wait 5 sh -c "grep -q 'for alice from peer wina: applied' '$(e2e_log b)'" &&
	e2e_wait 5 sh -c "grep -q 'for alice delivered to peer winb' '$(e2e_log a)'" ||
	{ grep alice "$(e2e_log a)" "$(e2e_log b)"; return 1; }
}
e2e_check "a logs the delivery to winb, b logs the change applied from wina" t_a_log
t_old() { ! e2e_login b alice 'Old-Alice-Pw1'; }
e2e_check "alice's old password no longer works on b" t_old

t_send() { printf '%s\n' 'Mepp-Bob-Pw3' | e2e_ctl b send bob --peer wina; }
e2e_check "a MEPP client on b sends bob's new password to a's listener" t_send
t_b_to_a() { e2e_wait 15 e2e_login a bob 'Mepp-Bob-Pw3'; }
e2e_check "bob logs in on a with the password sent over MEPP" t_b_to_a
t_b_log() {
	grep -q 'for bob from peer winb: applied' "$(e2e_log a)" &&
	! e2e_login a bob 'Old-Bob-Pw1' ||
	{ grep bob "$(e2e_log a)"; return 1; }
}
e2e_check "a logs bob's change applied from winb; bob's old password fails on a" t_b_log
[ "$E2E_FAILED" -eq 0 ]
