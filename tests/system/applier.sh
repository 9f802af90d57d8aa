#!/bin/sh
# The parent never hashes on its loop: while node B's store hashes a batch
# slowly (SHA-512 with 500,000,000 rounds, half a minute a hash), B's
# control socket answers and SIGTERM stops B at once; nothing is half-written, and once B runs again
# (with a normal cost) the changes arrive, because their sender keeps
# them until B answers. Needs root; prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
. "$top_srcdir/tests/lib/nodes.sh"

base=$((20000 + ($$ + 29) % 20000))
port_a=$base port_b=$((base + 1))
nodes_begin psyncd-applier
mknode A B "$port_a" "$port_b" 0 ""
mknode B A "$port_b" "$port_a" 0 ""
"$PSYNCCTL" keygen "$tmp/A/keys/B.key" >/dev/null
cp "$tmp/A/keys/B.key" "$tmp/B/keys/A.key"
sed -i 's/^\thash-cost = 1000$/\thash-cost = 500000000/' "$tmp/B/psync.conf"
grep -q "hash-cost = 500000000" "$tmp/B/psync.conf" || echo "# cannot slow B's store"

echo "1..5"

t_start() { start A && start B; }
ok "both nodes start, B's store with a slow hash" t_start

cp "$tmp/B/shadow" "$tmp/shadow.before"
for u in u1 u2 u3 u4; do
	drop A "$u" "Slow-$u-1" >/dev/null
done

t_status() {
	wait_for 10 grep -q "for u1 from peer A\|store:" "$tmp/B/log" 2>/dev/null
	sleep 1
	timeout 2 "$PSYNCCTL" -c "$tmp/B/psync.conf" status >"$tmp/st" 2>&1 ||
	{ echo "status did not answer while B hashes"; cat "$tmp/st"; return 1; }
	grep -q "peer A" "$tmp/st" &&
	cmp -s "$tmp/shadow.before" "$tmp/B/shadow" ||
	{ echo "B's shadow changed already: the hash was not slow"; return 1; }
}
ok "while B hashes a batch, psyncctl status answers" t_status

t_term() {
	kill -TERM "$pid_b"
	t=0
	while kill -0 "$pid_b" 2>/dev/null && [ $t -lt 30 ]; do
		sleep 0.1
		t=$((t + 1))
	done
	kill -0 "$pid_b" 2>/dev/null && { echo "B still runs 3 s after SIGTERM"; return 1; }
	wait "$pid_b" 2>/dev/null
	pid_b=
	grep -q "while applying changes" "$tmp/B/log"
}
ok "SIGTERM stops B within 3 s although its store is still hashing" t_term

t_intact() {
	cmp -s "$tmp/shadow.before" "$tmp/B/shadow" &&
	[ -z "$(find "$tmp/B" -maxdepth 1 -name 'shadow?*' ! -name shadow)" ] ||
	{ ls -la "$tmp/B"; return 1; }
}
ok "B's shadow file is untouched and no temporary file is left" t_intact

t_arrive() {
	sed -i 's/^\thash-cost = 500000000$/\thash-cost = 1000/' "$tmp/B/psync.conf"
	start B || return 1
	for u in u1 u2 u3 u4; do
		wait_for 20 hash_is B "$u" "Slow-$u-1" || return 1
	done
}
ok "B started again: every change arrives, none was lost" t_arrive

[ "$failed" -eq 0 ]
