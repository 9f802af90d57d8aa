#!/bin/sh
# Scenario 6: accounts the policy excludes never sync, in either direction:
# root, a system account (uid below min-uid), a locked account
# (usermod -L) and a member of a deny-groups group. Their passwords are
# changed with the real passwd on one host, and their /etc/shadow lines on
# the other host stay as they were. A control user changed in the same
# round does arrive, so the round did run. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..14"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_pair a b ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
excluded="root sysacct lockd denied"
for h in a b; do
	e2e_conf $h <<'CONF' &&
policy {
	min-uid = 1000
	skip-locked = true
	deny-groups = { "nosync" }
}
CONF
	e2e_run $h groupadd -g 3000 nosync &&
	e2e_user $h alice 2001 'Old-Alice-Pw1' &&
	e2e_user $h sysacct 500 'Old-Sys-Pw1' 2>/dev/null &&
	e2e_user $h lockd 2002 'Old-Lockd-Pw1' && e2e_run $h usermod -L lockd &&
	e2e_user $h denied 2003 'Old-Denied-Pw1' && e2e_run $h usermod -aG nosync denied &&
	e2e_run $h usermod -p "$(perl -e 'print crypt("Old-Root-Pw1", "\$6\$rootsalt\$")')" root ||
	{ echo "Bail out! cannot set up users on $h"; exit 1; }
done
e2e_psyncd_start a && e2e_psyncd_start b || { echo "Bail out! psyncd did not start"; exit 1; }

# snapshot HOST: the excluded users' shadow lines, one per line
snapshot() { for u in $excluded; do e2e_shadow "$1" "$u" || echo "$u: missing"; done; }

# round FROM TO N: change every password on FROM; the control user arrives
# on TO; TO's lines for the excluded users are as before.
round() {
	_from=$1 _to=$2 _n=$3
	_before=$(snapshot "$_to")
	_mine=$(snapshot "$_from")
	t_passwd() {
		for u in $excluded alice; do
			e2e_passwd "$_from" "$u" "New-$u-Pw$_n" ||
			{ echo "passwd $u on $_from failed"; return 1; }
		done
		[ "$(snapshot "$_from")" != "$_mine" ] ||
		{ echo "passwd changed nothing on $_from"; return 1; }
	}
	e2e_check "passwd for root, sysacct, lockd, denied and alice on $_from" t_passwd
	t_control() { e2e_wait 15 e2e_login "$_to" alice "New-alice-Pw$_n"; }
	e2e_check "the control user alice arrives on $_to" t_control
	t_drain() { e2e_wait 10 e2e_drained "$_from"; }
	e2e_check "$_from's queue is empty" t_drain
	sleep 1
	for u in $excluded; do
		t_same() {
			[ "$(e2e_shadow "$_to" "$u")" = "$(echo "$_before" | grep "^$u:")" ] &&
			! e2e_login "$_to" "$u" "New-$u-Pw$_n"
		}
		e2e_check "$u's shadow line on $_to is unchanged" t_same
	done
}
round a b 1
# passwd unlocked lockd on a: lock it again, as it is on b.
e2e_run a usermod -L lockd
round b a 2
[ "$E2E_FAILED" -eq 0 ]
