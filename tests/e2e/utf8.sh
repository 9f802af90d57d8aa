#!/bin/sh
# Scenario 8: non-ASCII passwords arrive byte for byte. alice's new password
# is "Pässwörd-€-✓9x" in UTF-8 (NFC), bob's "Grüße-Öl-ÿ-42" (all Latin-1
# letters). Both are set with passwd on host a; on host b each logs in
# through PAM with exactly those bytes, and not with the same text in
# another Unicode normalisation (NFD) or another encoding (Latin-1).
# Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
command -v python3 >/dev/null || { echo "1..0 # SKIP needs python3 to make the variants"; exit 0; }
echo "1..9"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_pair a b ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
for h in a b; do
	e2e_user $h alice 2001 'Old-Alice-Pw1' && e2e_user $h bob 2002 'Old-Bob-Pw1' ||
	{ echo "Bail out! cannot add users"; exit 1; }
done
e2e_psyncd_start a && e2e_psyncd_start b || { echo "Bail out! psyncd did not start"; exit 1; }

# variant TEXT FORM: TEXT (UTF-8) as NFD or as Latin-1 bytes
variant() {
	python3 -c '
import sys, unicodedata
t = sys.argv[1].encode("utf-8", "surrogateescape").decode("utf-8")
if sys.argv[2] == "nfd":
    sys.stdout.buffer.write(unicodedata.normalize("NFD", t).encode("utf-8"))
else:
    sys.stdout.buffer.write(t.encode("latin-1"))
' "$1" "$2"
}
pa='Pässwörd-€-✓9x'
pb='Grüße-Öl-ÿ-42'
pa_nfd=$(variant "$pa" nfd) && pb_nfd=$(variant "$pb" nfd) && pb_l1=$(variant "$pb" latin1) ||
	{ echo "Bail out! cannot make the variants"; exit 1; }
# The variants really differ from the originals, byte for byte.
t_differ() {
	[ "$pa" != "$pa_nfd" ] && [ "$pb" != "$pb_nfd" ] && [ "$pb" != "$pb_l1" ] &&
	[ "$(printf '%s' "$pa" | od -An -tx1 | tr -d ' \n' | cut -c1-6)" = "50c3a4" ]
}
e2e_check "the NFD and Latin-1 variants differ from the UTF-8 NFC bytes" t_differ

t_passwd() { e2e_passwd a alice "$pa" && e2e_passwd a bob "$pb"; }
e2e_check "alice and bob get their non-ASCII passwords on a with passwd" t_passwd
t_on_a() { e2e_login a alice "$pa" && e2e_login a bob "$pb"; }
e2e_check "both log in on a with those bytes" t_on_a
t_alice() { e2e_wait 15 e2e_login b alice "$pa"; }
e2e_check "alice logs in on b with exactly the UTF-8 bytes" t_alice
t_bob() { e2e_wait 15 e2e_login b bob "$pb"; }
e2e_check "bob logs in on b with exactly the UTF-8 bytes" t_bob
t_alice_nfd() { ! e2e_login b alice "$pa_nfd"; }
e2e_check "alice's password in NFD does not work on b" t_alice_nfd
t_bob_nfd() { ! e2e_login b bob "$pb_nfd"; }
e2e_check "bob's password in NFD does not work on b" t_bob_nfd
t_bob_l1() { ! e2e_login b bob "$pb_l1"; }
e2e_check "bob's password in Latin-1 does not work on b" t_bob_l1
t_old() { ! e2e_login b alice 'Old-Alice-Pw1' && ! e2e_login b bob 'Old-Bob-Pw1'; }
e2e_check "the old passwords no longer work on b" t_old
[ "$E2E_FAILED" -eq 0 ]
