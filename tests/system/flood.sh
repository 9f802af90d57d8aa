#!/bin/sh
# A flood of idle connections that never finish a handshake, from an
# address that is no peer's (127.0.0.2), against node A on loopback: A's
# configured peer B (127.0.0.1) still gets in and delivers while the flood
# goes on, and the flood's connections are refused past a few per
# address. Needs root; prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
. "$top_srcdir/tests/lib/nodes.sh"

base=$((20000 + ($$ + 23) % 20000))
port_a=$base port_b=$((base + 1))
nodes_begin psyncd-flood
mknode A B "$port_a" "$port_b" 0 ""
mknode B A "$port_b" "$port_a" 0 ""
"$PSYNCCTL" keygen "$tmp/A/keys/B.key" >/dev/null
cp "$tmp/A/keys/B.key" "$tmp/B/keys/A.key"
flood_pid=
flood_cleanup() {
	[ -n "$flood_pid" ] && kill "$flood_pid" 2>/dev/null
	nodes_cleanup
}
trap flood_cleanup EXIT

echo "1..3"

t_start() { start A && start B; }
ok "both nodes start" t_start

# 200 connections from 127.0.0.2, each reopened as soon as A closes it,
# for 20 seconds; none ever sends a byte.
python3 - "$port_a" >"$tmp/flood.out" 2>&1 <<'PY' &
import socket, sys, time, select
port = int(sys.argv[1])
socks, opened = [], 0
end = time.time() + 20
def one():
    global opened
    s = socket.socket()
    s.setblocking(False)
    s.bind(("127.0.0.2", 0))
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    opened += 1
    return s
while time.time() < end:
    while len(socks) < 200:
        socks.append(one())
    r, _, _ = select.select(socks, [], [], 0.05)
    for s in r:
        try:
            if s.recv(1) == b"":
                raise OSError
        except BlockingIOError:
            continue
        except OSError:
            pass
        socks.remove(s)
        s.close()
print("opened", opened, flush=True)
PY
flood_pid=$!

t_peer_gets_in() {
	sleep 2
	drop B alice "Alice-Flood-1" >/dev/null &&
	wait_for 10 hash_is A alice "Alice-Flood-1" || return 1
	# Still flooding when it arrived.
	kill -0 "$flood_pid"
}
ok "while 200 idle connections flood A from 127.0.0.2, its peer B connects and delivers" t_peer_gets_in

t_refused() {
	grep -q "refused a connection from 127.0.0.2" "$tmp/A/log" ||
	{ tail -n 5 "$tmp/A/log"; return 1; }
}
ok "A refuses the flood's connections past its per-address limit, and says so" t_refused

[ "$failed" -eq 0 ]
