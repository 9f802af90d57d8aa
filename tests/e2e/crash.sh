#!/bin/sh
# Scenario 9: psyncd is killed with SIGKILL and restarted while changes
# flow. A loop on host a changes the passwords of five users with passwd,
# round after round; meanwhile psyncd on a is killed (SIGKILL) and started
# again, twice, and then psyncd on b, twice. Nothing is lost: at the end
# every user's last password works on b, and no earlier one does.
# Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
users="u1 u2 u3 u4 u5"
echo "1..10"
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
e2e_psync_host a 1 && e2e_psync_host b 2 && e2e_psync_pair a b ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
uid=2001
for u in $users; do
	for h in a b; do
		e2e_user $h $u $uid "Old-$u-Pw0" || { echo "Bail out! cannot add $u"; exit 1; }
	done
	uid=$((uid + 1))
done
e2e_psyncd_start a && e2e_psyncd_start b || { echo "Bail out! psyncd did not start"; exit 1; }

# The traffic: every round changes every user once; a user's password in
# round r is Crash-<user>-<r>. The loop notes each success in "done" and
# stops after the round in which it finds the file "stop".
traffic() {
	r=1
	while :; do
		for u in $users; do
			e2e_passwd a $u "Crash-$u-$r" && echo "$u $r" >>"$E2E_WORK/done"
		done
		[ -e "$E2E_WORK/stop" ] && break
		r=$((r + 1))
	done
	echo "$r" >"$E2E_WORK/rounds"
}
traffic >"$E2E_WORK/traffic.log" 2>&1 &
loop=$!
E2E_PIDS="$E2E_PIDS $loop"

# crash HOST: SIGKILL psyncd on HOST while the loop runs, then start it.
crash() {
	sleep 0.7
	kill -0 $loop 2>/dev/null || { echo "the traffic was already over"; return 1; }
	e2e_psyncd_stop "$1" KILL && e2e_psyncd_start "$1"
}
for h in a a b b; do
	e2e_check "SIGKILL psyncd on $h during the traffic, start it again" crash $h
done
touch "$E2E_WORK/stop"
wait $loop
rounds=$(cat "$E2E_WORK/rounds")
echo "# $rounds rounds of changes"
t_traffic() {
	[ "$(wc -l <"$E2E_WORK/done")" = $((rounds * 5)) ] ||
	{ echo "only $(wc -l <"$E2E_WORK/done") of $((rounds * 5)) passwd runs worked"; cat "$E2E_WORK/traffic.log"; return 1; }
}
e2e_check "all $((rounds * 5)) passwd runs on a succeeded" t_traffic
t_drain() { e2e_wait 30 e2e_drained a; }
e2e_check "a's queue drains after the crashes" t_drain
t_last() {
	for u in $users; do
		e2e_wait 10 e2e_login b $u "Crash-$u-$rounds" ||
		{ echo "$u: the last password Crash-$u-$rounds does not work on b"; return 1; }
	done
}
e2e_check "every user's last password works on b" t_last
t_earlier() {
	for u in $users; do
		e2e_login b $u "Crash-$u-$((rounds - 1))" && { echo "$u: round $((rounds - 1)) still works"; return 1; }
		e2e_login b $u "Old-$u-Pw0" && { echo "$u: the old password still works"; return 1; }
	done
	return 0
}
e2e_check "no earlier password works on b" t_earlier
t_kills() {
	_a=$(e2e_count a 'ready: node') _b=$(e2e_count b 'ready: node')
	[ "$_a" = 3 ] && [ "$_b" = 3 ] || { echo "a started $_a times, b $_b times"; return 1; }
}
e2e_check "each psyncd started three times (two crashes each)" t_kills
# The keys are right all along: a peer that dies mid-handshake must not be
# reported as a key mismatch.
t_no_8203() { ! grep -h '8203:' "$(e2e_log a)" "$(e2e_log b)"; }
e2e_check "no 8203 (key mismatch) is logged for a peer killed mid-connection" t_no_8203
[ "$E2E_FAILED" -eq 0 ]
