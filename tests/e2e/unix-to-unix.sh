#!/bin/sh
# Scenario 1: UNIX to UNIX over psync/TLS. alice runs passwd on host a (as
# herself, through su); she then logs in on host b through PAM with the new
# password, and no longer with the old one. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..4"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_pair a b ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
for h in a b; do e2e_user $h alice 2001 'Old-Alice-Pw1'; done
e2e_psyncd_start a && e2e_psyncd_start b || { echo "Bail out! psyncd did not start"; exit 1; }

t_passwd() {
	printf 'Old-Alice-Pw1\nNew-Alice-Pw9#\nNew-Alice-Pw9#\n' | e2e_run a su alice -c passwd
}
e2e_check "alice changes her password on host a with passwd" t_passwd
t_arrives() { e2e_wait 15 e2e_login b alice 'New-Alice-Pw9#'; }
e2e_check "alice logs in on host b with the new password (PAM)" t_arrives
t_old() { ! e2e_login b alice 'Old-Alice-Pw1'; }
e2e_check "the old password no longer works on host b" t_old
t_status() {
	_s=$(e2e_ctl a status) && echo "$_s" &&
	echo "$_s" | grep -q '^peer b (psync, both): reachable' &&
	echo "$_s" | grep -q 'queue depth:  0'
}
e2e_check "psyncctl status on host a shows peer b reachable with nothing queued" t_status
[ "$E2E_FAILED" -eq 0 ]
