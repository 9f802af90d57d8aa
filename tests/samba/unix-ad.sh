#!/bin/sh
# A UNIX test host and a throw-away Samba AD DC, both running psyncd, over
# psync/TLS. UNIX to AD (passwd, then kinit against the DC), AD to UNIX
# (kpasswd and samba-tool setpassword, then a PAM login on the UNIX host;
# with the cleartext and with the hash only), AD's refusal of a short
# password (refused first by the check role with the peer's rules, logged
# and given up without them), and no echo: one change, one apply on each
# side. Prints TAP; skips only when Samba's packages cannot be installed.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
. "$top_srcdir/tests/samba/dc.sh"
e2e_need_root
if ! _why=$(dc_available); then
	echo "1..0 # SKIP $_why"
	exit 0
fi
echo "1..13"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
dc_start dc 10 || { echo "Bail out! the test DC did not start"; exit 1; }
# Host a takes AD's hashes in the hash-only part: accept-hashes.
e2e_psync_host a 1 && dc_psync dc &&
	"$top_builddir/psyncctl/psyncctl" keygen "$E2E_WORK/a/etc/psync/keys/dc.key" >/dev/null &&
	cp -p "$E2E_WORK/a/etc/psync/keys/dc.key" "$E2E_WORK/dc/etc/psync/keys/a.key" &&
	e2e_psync_peer a dc "	accept-hashes = true" && e2e_psync_peer dc a &&
	dc_krb5_client a dc || { echo "Bail out! cannot set up psync"; exit 1; }
dc_user dc alice 2001 'Old-Alice-Pw1' && e2e_user a alice 2001 'Old-Alice-Pw1' ||
	{ echo "Bail out! cannot create alice"; exit 1; }
# Cleartext mode first; the first pass reports every account once.
dc_sync_init dc sAMAccountName,userAccountControl,virtualClearTextUTF8 \
	--decrypt-samba-gpg >/dev/null && dc_sync_pass dc >/dev/null ||
	{ echo "Bail out! syncpasswords with the hook did not start"; exit 1; }
e2e_psyncd_start a && e2e_psyncd_start dc || { echo "Bail out! psyncd did not start"; exit 1; }
# Let the first pass's change (alice's current password) settle.
# The first pass pushes alice's current password once; host a has no
# recent change for her, so it stores it again (a new salt) without first
# checking it is the same ("unchanged" is for echoes). Counted from here.
e2e_wait 15 grep -Eq "for alice from peer dc: (unchanged|applied)" "$(e2e_log a)"
base_a_dc=$(grep -c "for alice from peer dc: applied" "$(e2e_log a)")

# applies HOST PEER: how many changes for alice from PEER HOST applied
# (on host a, those after the initial push)
applies() {
	_n=$(grep -c "for alice from peer $2: applied" "$(e2e_log "$1")")
	[ "$1" = a ] && [ "$2" = dc ] && _n=$((_n - base_a_dc))
	echo "$_n"
}

t_unix_to_ad() {
	printf 'Old-Alice-Pw1\nNew-Alice-Pw9#\nNew-Alice-Pw9#\n' | e2e_run a su alice -c passwd &&
	e2e_wait 15 dc_kinit a alice 'New-Alice-Pw9#'
}
e2e_check "UNIX to AD: passwd on host a, then kinit alice@$DC_REALM works with the new password" t_unix_to_ad
t_old_fails() { ! dc_kinit a alice 'Old-Alice-Pw1'; }
e2e_check "UNIX to AD: the old password no longer gets a ticket" t_old_fails
t_no_echo() {
	_out=$(dc_sync_pass dc) && echo "$_out" &&
	echo "$_out" | grep -q "DONE-EXIT: skipped alice: applied from a peer" &&
	[ "$(applies dc a)" -eq 1 ] && [ "$(applies a dc)" -eq 0 ]
}
e2e_check "no echo: the DC's hook skips the change psyncd applied, one apply on the DC, none back on host a" t_no_echo

t_kpasswd() {
	printf 'New-Alice-Pw9#\nKp-Alice-Pw7$\nKp-Alice-Pw7$\n' |
	    e2e_run a env KRB5CCNAME=MEMORY: kpasswd alice@$DC_REALM &&
	_out=$(dc_sync_pass dc) && echo "$_out" &&
	echo "$_out" | grep -q "DONE-EXIT: queued .* for alice (cleartext)" &&
	e2e_wait 15 e2e_login a alice 'Kp-Alice-Pw7$'
}
e2e_check "AD to UNIX: kpasswd, then alice logs in on host a with the new password (cleartext)" t_kpasswd
t_kp_once() {
	e2e_wait 5 sh -c "[ \$(grep -c 'for alice from peer dc: applied' '$(e2e_log a)') -eq $((base_a_dc + 1)) ]" &&
	sleep 1 && [ "$(applies a dc)" -eq 1 ] && [ "$(applies dc a)" -eq 1 ]
}
e2e_check "no echo: that change was applied once on host a and not sent back to the DC" t_kp_once

t_setpassword() {
	dc_tool dc user setpassword alice --newpassword='St-Alice-Pw5%' >/dev/null &&
	dc_sync_pass dc | grep -q "DONE-EXIT: queued .* for alice (cleartext)" &&
	e2e_wait 15 e2e_login a alice 'St-Alice-Pw5%'
}
e2e_check "AD to UNIX: samba-tool user setpassword, then a PAM login on host a (cleartext)" t_setpassword

# Hash-only mode: the cleartext never leaves the DC.
dc_sync_init dc sAMAccountName,userAccountControl,virtualCryptSHA512 >/dev/null &&
	dc_sync_pass dc >/dev/null
e2e_wait 15 sh -c "grep 'for alice from peer dc' '$(e2e_log a)' | tail -n 1 | grep -q unchanged"
t_hash() {
	dc_tool dc user setpassword alice --newpassword='Hs-Alice-Pw3&' >/dev/null &&
	dc_sync_pass dc | grep -q "DONE-EXIT: queued .* for alice (hash)" &&
	e2e_wait 15 e2e_login a alice 'Hs-Alice-Pw3&'
}
e2e_check "AD to UNIX, hash only: setpassword, then a PAM login on host a" t_hash
t_hash_shadow() { grep -q '^alice:\$6\$' "$E2E_WORK/a/etc/shadow"; }
e2e_check "hash only: host a's shadow holds AD's SHA-512 crypt hash as it is" t_hash_shadow

# AD's refusal without the peer's rules: logged with AD's reason, given up.
t_short_logged() {
	printf 'alice:Ab1!x\n' | e2e_run a chpasswd &&
	e2e_wait 15 grep -q "password is too short" "$(e2e_log a)" &&
	grep "too short" "$(e2e_log a)" | grep -q "given up"
}
e2e_check "AD refuses a short password: host a logs AD's reason and gives the change up" t_short_logged
t_not_retried() {
	sleep 3
	_n=$(grep -c "too short" "$(e2e_log dc)")
	[ "$_n" -eq 1 ] || { echo "the DC saw the short password $_n times"; return 1; }
	_q=$(e2e_ctl a queue) ; echo "$_q"
	! echo "$_q" | grep -q pending
}
e2e_check "the short password is not retried (one refusal on the DC, nothing pending)" t_not_retried
t_ad_unchanged() { dc_kinit a alice 'Hs-Alice-Pw3&'; }
e2e_check "AD still holds alice's previous password" t_ad_unchanged

# With the domain's rule as the peer's rules, the check role refuses first.
sed -i 's|^\tkey-file = "/etc/psync/keys/dc.key"|&\n\tmin-length = 7|' "$E2E_WORK/a/etc/psync/psync.conf"
t_check_role() {
	_out=$(printf 'Ab1!x\nEf3#z\nEf3#z\n' | e2e_run a su alice -c passwd 2>&1)
	_rc=$?
	echo "$_out"
	[ $_rc -ne 0 ] && echo "$_out" | grep -q "peer dc" &&
	echo "$_out" | grep -qi "7" && e2e_login a alice 'Ab1!x'
}
e2e_check "with the domain's min-length as the peer's rule, the check role refuses the short password" t_check_role
t_ad_same() {
	sleep 2
	[ "$(grep -c "too short" "$(e2e_log dc)")" -eq 1 ] && dc_kinit a alice 'Hs-Alice-Pw3&'
}
e2e_check "and the DC was never asked: still one refusal there, the old password still works" t_ad_same
[ "$E2E_FAILED" -eq 0 ]
