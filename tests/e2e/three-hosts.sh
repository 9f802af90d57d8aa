#!/bin/sh
# Scenario 10: three hosts a, b and c, each paired with both others, every
# peer with relay = true (so that each host forwards what it receives: the
# set-up where a change could go round for ever). A change made on a reaches
# b and c; each of them applies it exactly once, a never applies its own
# change back, and every queue drains to zero. Then the same from c.
# Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..12"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
# pair A B: one new key, each a relaying peer of the other
pair() {
	"$top_builddir/psyncctl/psyncctl" keygen "$E2E_WORK/$1/etc/psync/keys/$2.key" >/dev/null &&
	cp -p "$E2E_WORK/$1/etc/psync/keys/$2.key" "$E2E_WORK/$2/etc/psync/keys/$1.key" &&
	e2e_psync_peer "$1" "$2" "	relay = true" && e2e_psync_peer "$2" "$1" "	relay = true"
}
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_host c 3 &&
	pair a b && pair a c && pair b c || { echo "Bail out! cannot create test hosts"; exit 1; }
for h in a b c; do e2e_user $h alice 2001 'Old-alice-Pw1' && e2e_user $h bob 2002 'Old-bob-Pw1' ||
	{ echo "Bail out! cannot add users"; exit 1; }; done
e2e_psyncd_start a && e2e_psyncd_start b && e2e_psyncd_start c ||
	{ echo "Bail out! psyncd did not start"; exit 1; }

# applied HOST USER: how many changes for USER the host's psyncd applied
applied() { e2e_count "$1" "for $2 from peer [a-z]*: applied"; }
drained() { e2e_drained a && e2e_drained b && e2e_drained c; }

# spread FROM USER PW OTHER1 OTHER2
spread() {
	_from=$1 _u=$2 _pw=$3
	shift 3
	e2e_check "$_u's password is changed on $_from" e2e_passwd "$_from" "$_u" "$_pw"
	for _o in "$@"; do
		e2e_check "$_u logs in on $_o with the new password" e2e_wait 15 e2e_login "$_o" "$_u" "$_pw"
	done
	t_drained() { e2e_wait 10 drained || { for h in a b c; do e2e_ctl $h status; done; return 1; }; }
	e2e_check "the queues on a, b and c drain to zero" t_drained
	# Give a loop, if there were one, time to show.
	sleep 3
	t_once() {
		_r=0
		for _o in "$@"; do
			[ "$(applied "$_o" "$_u")" = 1 ] || { echo "$_o applied $_u's change $(applied "$_o" "$_u") times"; _r=1; }
		done
		[ "$(applied "$_from" "$_u")" = 0 ] || { echo "$_from applied its own change back"; _r=1; }
		drained || { echo "the queues are not empty any more"; _r=1; }
		[ $_r = 0 ] || grep -h "$_u" "$(e2e_log a)" "$(e2e_log b)" "$(e2e_log c)"
		return $_r
	}
	e2e_check "3 s later: $* applied $_u's change exactly once, $_from never, the queues are still empty" t_once "$@"
	e2e_check "$_u's old password works nowhere" t_old "$_from" "$@"
}
t_old() { for _h in "$@"; do ! e2e_login $_h "$_u" "Old-$_u-Pw1" || return 1; done; }
spread a alice 'Three-Alice-Pw2' b c
spread c bob 'Three-Bob-Pw2' a b
[ "$E2E_FAILED" -eq 0 ]
