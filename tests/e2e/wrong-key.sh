#!/bin/sh
# Scenario 5: host b holds a different key for host a than a holds for b.
# A change made on a is never applied on b; both psyncd logs name the cause
# (8203, secret key mismatch); psyncctl verify on a fails at the TLS
# handshake and says key mismatch. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..7"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_pair a b ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
# b gets a key of its own for a: the two sides no longer agree.
"$top_builddir/psyncctl/psyncctl" keygen "$E2E_WORK/b/etc/psync/keys/a.key.new" >/dev/null &&
mv "$E2E_WORK/b/etc/psync/keys/a.key.new" "$E2E_WORK/b/etc/psync/keys/a.key" &&
! cmp -s "$E2E_WORK/a/etc/psync/keys/b.key" "$E2E_WORK/b/etc/psync/keys/a.key" ||
	{ echo "Bail out! cannot make the keys differ"; exit 1; }
for h in a b; do e2e_user $h alice 2001 'Old-Alice-Pw1'; done
e2e_psyncd_start a && e2e_psyncd_start b || { echo "Bail out! psyncd did not start"; exit 1; }
before=$(e2e_shadow b alice)

e2e_check "alice's password is changed on a" e2e_passwd a alice 'Keyed-Alice-Pw2'
t_logs() {
	e2e_wait 15 sh -c "grep -q '8203' '$(e2e_log a)' && grep -q '8203' '$(e2e_log b)'" ||
	{ grep -E '8203|alice|warn' "$(e2e_log a)" "$(e2e_log b)"; return 1; }
	grep '8203' "$(e2e_log a)" | grep -q 'key mismatch' &&
	grep '8203' "$(e2e_log b)" | grep -q 'key mismatch' ||
	{ grep 8203 "$(e2e_log a)" "$(e2e_log b)"; return 1; }
}
e2e_check "both logs name the cause: 8203, secret key mismatch" t_logs
t_a_names_b() { grep '8203' "$(e2e_log a)" | grep -q 'peer b'; }
e2e_check "a's 8203 line names peer b" t_a_names_b
t_verify() {
	_v=$(e2e_ctl a verify b 2>&1) && { echo "verify succeeded: $_v"; return 1; }
	echo "$_v" | grep -q 'failed at step TLS handshake' &&
	echo "$_v" | grep -q '8203' && echo "$_v" | grep -q 'key mismatch' ||
	{ echo "$_v"; return 1; }
}
e2e_check "psyncctl verify b on a fails at the TLS handshake with 8203 key mismatch" t_verify
t_not_applied() {
	sleep 2
	[ "$(e2e_shadow b alice)" = "$before" ] && e2e_login b alice 'Old-Alice-Pw1' &&
	! e2e_login b alice 'Keyed-Alice-Pw2' &&
	! grep -q 'applied' "$(e2e_log b)"
}
e2e_check "nothing is applied on b: alice's shadow line there is unchanged" t_not_applied
t_waiting() {
	_q=$(e2e_ctl a queue list) && echo "$_q" | grep -q ' alice  *b  *pending' ||
	{ echo "$_q"; return 1; }
}
e2e_check "the change stays queued on a, not given up" t_waiting
t_b_to_a() {
	e2e_passwd b alice 'From-B-Alice-Pw3' &&
	e2e_wait 8 sh -c "[ \$(grep -c 8203 '$(e2e_log b)') -ge 2 ]" &&
	sleep 1 && e2e_login a alice 'Keyed-Alice-Pw2' && ! e2e_login a alice 'From-B-Alice-Pw3'
}
e2e_check "the other way too: a change on b is refused with 8203 and a is unchanged" t_b_to_a
[ "$E2E_FAILED" -eq 0 ]
