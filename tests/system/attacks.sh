#!/bin/sh
# What one peer (A) can do to a receiver (B), two nodes on loopback: a
# change stamped a century ahead is refused (19) and does not freeze the
# user; an older change spelled ALICE does not win over a newer one for
# alice; a crypt hash from a peer without accept-hashes is refused (9)
# where password rules apply; a hash whose cost is absurd is refused (9)
# before crypt runs, and B still answers; a locked account stays locked;
# a queue restored from an old backup is reported at start. Needs root;
# prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
. "$top_srcdir/tests/lib/nodes.sh"

base=$((20000 + ($$ + 31) % 20000))
port_a=$base port_b=$((base + 1)) port_mb=$((base + 2))
nodes_begin psyncd-attacks
mknode A B "$port_a" "$port_b" 0 ""
mknode B A "$port_b" "$port_a" 1000 ""
"$PSYNCCTL" keygen "$tmp/A/keys/B.key" >/dev/null
cp "$tmp/A/keys/B.key" "$tmp/B/keys/A.key"
# B has password rules, and dave's account is locked.
sed -i 's/^\tskip-locked = false$/&\n\tmin-length = 12/' "$tmp/B/psync.conf"
sed -i 's/^dave:\$6\$x\$initialhash:/dave:!$6$x$initialhash:/' "$tmp/B/shadow"

echo "1..9"

t_start() { start A && start B; }
ok "both nodes start; B has min-length 12 and a locked account" t_start

now_ms() { echo $(($(date +%s) * 1000)); }

t_future() {
	drop A alice "Future-Alice-12" $(($(now_ms) + 3153600000000)) >/dev/null
	wait_for 10 grep -q "stamped .* ahead of this node's clock" "$tmp/B/log" ||
	{ tail -n 5 "$tmp/B/log"; return 1; }
	! hash_is B alice "Future-Alice-12" || return 1
	ctl B status | grep -q "clock: .* ahead of ours" || { ctl B status; return 1; }
	# The user's own next change, made on B, is not "superseded" by the
	# future stamp that A still holds in its queue.
	drop B alice "Own-Alice-Pass-12" >/dev/null
	wait_for 15 hash_is A alice "Own-Alice-Pass-12" ||
	{ tail -n 5 "$tmp/A/log"; return 1; }
}
ok "a change stamped a century ahead is refused with 19 and shown as clock skew; the user's own next change still syncs" t_future

t_case() {
	t=$(now_ms)
	drop A bob "Newer-Bob-Pass-12" $((t + 2000)) >/dev/null
	wait_for 15 hash_is B bob "Newer-Bob-Pass-12" || return 1
	drop A BOB "Older-Bob-Pass-12" $((t + 1000)) >/dev/null
	wait_for 10 grep -q "for bob from peer A is older than the newest" "$tmp/B/log" ||
	{ tail -n 5 "$tmp/B/log"; return 1; }
	hash_is B bob "Newer-Bob-Pass-12"
}
ok "an older change spelled BOB does not win over a newer one for bob" t_case

t_hash_rules() {
	h=$(python3 -W ignore -c 'import crypt; print(crypt.crypt("a", "$6$rounds=1000$saltsalt"))')
	echo "$h" | SPOOL_DROP_CRYPT=1 "$DROP" "$tmp/A/spool" "$tmp/A/host.key" A carol >/dev/null
	wait_for 10 grep -q "may not send crypt hashes" "$tmp/B/log" ||
	{ tail -n 5 "$tmp/B/log"; return 1; }
	! hash_is B carol a
}
ok "a hash of the one-character password 'a' is refused (9) by B, whose rules say 12 characters" t_hash_rules

t_costly() {
	sed -i 's/^peer "A" {$/&\n\taccept-hashes = true/' "$tmp/B/psync.conf"
	kill -HUP "$pid_b"
	wait_for 10 grep -q "reloaded" "$tmp/B/log" || return 1
	echo '$2b$31$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234' |
	    SPOOL_DROP_CRYPT=1 "$DROP" "$tmp/A/spool" "$tmp/A/host.key" A carol >/dev/null
	wait_for 10 grep -q "bcrypt cost 31" "$tmp/B/log" ||
	{ tail -n 5 "$tmp/B/log"; return 1; }
	timeout 2 "$PSYNCCTL" -c "$tmp/B/psync.conf" status >/dev/null
}
ok "a bcrypt hash of cost 31 is refused (9) naming its cost, and B still answers" t_costly

t_locked() {
	drop A dave "Dave-Pass-Long-12" >/dev/null
	wait_for 15 sh -c "grep '^dave:' '$tmp/B/shadow' | grep -qv initialhash" || return 1
	grep -q '^dave:!\$' "$tmp/B/shadow" || { grep '^dave:' "$tmp/B/shadow"; return 1; }
}
ok "a change for a locked account keeps it locked (the '!' stays in front of the new hash)" t_locked

t_restored() {
	stop B
	cp -p "$tmp/B/queue/queue.db" "$tmp/queue.db.backup"
	start B || return 1
	drop A u1 "U1-Pass-Long-Enough" >/dev/null
	wait_for 15 hash_is B u1 "U1-Pass-Long-Enough" || return 1
	stop B
	cp -p "$tmp/queue.db.backup" "$tmp/B/queue/queue.db"
	rm -f "$tmp/B/queue/queue.db-wal" "$tmp/B/queue/queue.db-shm"
	start B || return 1
	grep -q "lost" "$tmp/B/log" && ctl B status | grep -q "WARNING" ||
	{ tail -n 5 "$tmp/B/log"; ctl B status; return 1; }
	# Until the administrator clears it, also across a restart.
	stop B && start B && ctl B status | grep -q "WARNING" &&
	ctl B queue clear-lost >/dev/null && ! ctl B status | grep -q "WARNING" ||
	{ ctl B status; return 1; }
}
ok "a queue restored from an older backup is reported at start and by psyncctl status until queue clear-lost" t_restored

# A MEPP peer of B sends a user name with a newline and a forged line.
t_newline() {
	sed -i "s/^listen mepp {/listen mepp {\n\taddress = \"127.0.0.1\"\n\tport = $port_mb/; s/^\tenabled = false/\tenabled = true/" "$tmp/B/psync.conf"
	cat >>"$tmp/B/psync.conf" <<C
peer "wina" {
	protocol = mepp
	address = "127.0.0.1"
	key = "legacy-secret-key-1"
	trusted-addresses = { "127.0.0.1" }
	direction = receive
}
C
	stop B && start B || return 1
	"$top_builddir/tests/mepp-legacy" -s "$port_mb" legacy-secret-key-1 \
	    "$(printf 'ghost\npsyncd: FORGED change applied')" "Ghost-Pass-Long-12" \
	    >"$tmp/m" 2>&1
	# Refused as a bad user name (6), logged escaped; B keeps running.
	grep -q "^6$" "$tmp/m" || { cat "$tmp/m"; return 1; }
	wait_for 10 grep -q "ghost" "$tmp/B/log" || { tail -n 3 "$tmp/B/log"; return 1; }
	! grep -q "^psyncd: FORGED" "$tmp/B/log" ||
	{ grep -n "FORGED" "$tmp/B/log"; return 1; }
	timeout 2 "$PSYNCCTL" -c "$tmp/B/psync.conf" status >/dev/null
}
ok "a MEPP user name with a newline is refused (6) without forging a line in B's log or stopping B" t_newline

# Retention: A restarted with queue { retention = 1s } purges what it
# delivered, and keeps the newest record for each user.
t_retention() {
	stop A
	sed -i 's/^\tmax-retry-interval = 2s$/&\n\tretention = 1s/' "$tmp/A/psync.conf"
	sleep 2
	start A || return 1
	wait_for 10 grep -q "queue: [1-9][0-9]* finished deliveries older than the retention purged" \
	    "$tmp/A/log" || { tail -n 5 "$tmp/A/log"; return 1; }
}
ok "A started with a retention of 1 s purges the deliveries that finished (the newest per user stays)" t_retention

[ "$failed" -eq 0 ]
