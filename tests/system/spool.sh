#!/bin/sh
# The spool under bad conditions, on a node whose peer is down: a FIFO
# planted where a spool file should be is set aside without blocking the
# parent (status answers), and a change the queue cannot take because its
# disk is full is queued as soon as space returns, with no new change to
# wake psyncd. Needs root (a tmpfs in a private mount namespace); prints
# TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
. "$top_srcdir/tests/lib/nodes.sh"

base=$((20000 + ($$ + 17) % 20000))
port_a=$base port_b=$((base + 1))
nodes_begin psyncd-spool
mknode A B "$port_a" "$port_b" 0 ""
"$PSYNCCTL" keygen "$tmp/A/keys/B.key" >/dev/null
mkdir -p "$tmp/A/queue"
chmod 700 "$tmp/A/queue"

echo "1..4"

# A's queue directory is a 2 MiB tmpfs seen by psyncd only.
t_start() {
	unshare --mount --propagation private sh -c '
		mount -t tmpfs -o size=2m,mode=0700 psync-test "$1" && shift &&
		exec "$@"' sh "$tmp/A/queue" \
	    "$PSYNCD" -f -d -u nobody -c "$tmp/A/psync.conf" >>"$tmp/A/log" 2>&1 &
	pid_a=$!
	wait_for 10 test -S "$tmp/A/control.sock" &&
	wait_for 10 grep -q "ready: node" "$tmp/A/log"
}
ok "node A starts with its queue on a small tmpfs of its own" t_start

t_fifo() {
	name=0000000000000001-0123456789abcdef0123456789abcdef.chg
	mkfifo "$tmp/A/spool/$name" || return 1
	drop A alice "Alice-Spool-1" >/dev/null
	timeout 3 "$PSYNCCTL" -c "$tmp/A/psync.conf" status >"$tmp/st" 2>&1 ||
	{ echo "status did not answer"; cat "$tmp/st"; return 1; }
	wait_for 10 test -p "$tmp/A/spool/bad/$name" ||
	{ ls -la "$tmp/A/spool" "$tmp/A/spool/bad"; return 1; }
	wait_for 10 grep -q "change .* for alice queued" "$tmp/A/log"
}
ok "a FIFO in the spool is set aside in bad/ without blocking the parent; the next change flows" t_fifo

t_full() {
	nsenter -t "$pid_a" -m sh -c "cat /dev/zero >'$tmp/A/queue/filler' 2>/dev/null; sync"
	drop A bob "Bob-Spool-1" >/dev/null || return 1
	wait_for 10 grep -q "cannot queue change .* for bob" "$tmp/A/log" ||
	{ tail -n 5 "$tmp/A/log"; return 1; }
	[ -n "$(ls "$tmp/A/spool"/*.chg 2>/dev/null)" ] ||
	{ echo "the change left the spool without being queued"; return 1; }
}
ok "with the queue's disk full, a change stays in the spool and the log says why" t_full

t_space_back() {
	nsenter -t "$pid_a" -m rm -f "$tmp/A/queue/filler"
	# No new change: psyncd must notice by itself.
	wait_for 15 grep -q "change .* for bob queued" "$tmp/A/log" ||
	{ tail -n 5 "$tmp/A/log"; return 1; }
	[ -z "$(ls "$tmp/A/spool"/*.chg 2>/dev/null)" ]
}
ok "once space returns, the waiting change is queued without a new one to wake psyncd" t_space_back

[ "$failed" -eq 0 ]
