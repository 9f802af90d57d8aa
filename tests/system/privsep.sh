#!/bin/sh
# Privilege separation, checked from /proc on a running node: the network
# child and its resolver hold no descriptor on anything under the node's
# queue directory, configuration, keys or store, have no copy of the host
# key in their memory (the same scan finds it in the parent, so it can
# see one), run as nobody without capabilities and cannot regain them,
# the child chrooted. And a peer name that takes long to resolve does not
# hold up the parent: status answers while the resolver waits, also
# across a reload. Needs root; prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
. "$top_srcdir/tests/lib/nodes.sh"

base=$((20000 + ($$ + 7) % 20000))
port_a=$base port_b=$((base + 1))
nodes_begin psyncd-privsep
privsep_cleanup() {
	[ -f "$tmp/blackhole.pid" ] && kill "$(cat "$tmp/blackhole.pid")" 2>/dev/null
	nodes_cleanup
}
trap privsep_cleanup EXIT
mknode A B "$port_a" "$port_b" 0 ""
"$PSYNCCTL" keygen "$tmp/A/keys/B.key" >/dev/null

echo "1..8"

t_start() { start A; }
ok "node A starts with its peer B down" t_start

# A change that waits in the queue for B: the child has been asked to
# deliver it (and failed) before we look.
t_queued() {
	drop A alice "Alice-Privsep-1" >/dev/null &&
	wait_for 10 sh -c "grep -q 'unreachable for change' '$tmp/A/log'"
}
ok "a change for the peer that is down waits in A's queue" t_queued

child=$(pgrep -P "$pid_a" psyncd-net)
dns=$(pgrep -P "${child:-0}" psyncd-dns)

# scan_fds PID: every open file must be outside the node's directory.
scan_fds() {
	[ -n "$1" ] || { echo "no such process"; return 1; }
	bad=0
	for f in /proc/"$1"/fd/*; do
		l=$(readlink "$f") || continue
		case "$l" in
		"$tmp/A/log") ;;	# the test's own capture of stderr
		"$tmp"/*|/etc/*|*queue.db*|*shadow*|*psync.conf*|*.key)
			echo "process $1 holds $f -> $l"; bad=1 ;;
		esac
	done
	return $bad
}

# mem_has PID: does any readable mapping hold the host key (raw or hex)?
mem_has() {
	python3 - "$1" "$tmp/A/host.key" <<'PY'
import re, sys
pid, keyfile = sys.argv[1], sys.argv[2]
hexkey = open(keyfile).read().split()[0]
needles = [bytes.fromhex(hexkey), hexkey.encode(), hexkey.upper().encode()]
found = False
with open("/proc/%s/maps" % pid) as maps, open("/proc/%s/mem" % pid, "rb", 0) as mem:
    for line in maps:
        f = line.split()
        if "r" not in f[1] or (len(f) > 5 and f[5] in ("[vvar]", "[vsyscall]")):
            continue
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        try:
            mem.seek(lo)
            data = mem.read(hi - lo)
        except OSError:
            continue
        if any(n in data for n in needles):
            print("host key found in %s %s" % (f[0], f[5] if len(f) > 5 else ""))
            found = True
sys.exit(0 if found else 1)
PY
}

t_fds() { scan_fds "$child" && scan_fds "$dns"; }
ok "the child and its resolver hold no file of the queue, configuration, keys or store" t_fds

t_key() {
	mem_has "$pid_a" >/dev/null || { echo "the scan does not even find the key in the parent"; return 1; }
	! mem_has "$child" && ! mem_has "$dns"
}
ok "the host key is in the parent's memory and in neither the child's nor the resolver's" t_key

# privs PID: nobody, no capabilities, no new privileges.
privs() {
	grep -q "^Uid:	65534	65534	65534	65534" /proc/"$1"/status &&
	grep -q "^Gid:	65534	65534	65534	65534" /proc/"$1"/status &&
	grep -q "^Groups:	65534 *$" /proc/"$1"/status &&
	grep -q "^NoNewPrivs:	1" /proc/"$1"/status &&
	grep -q "^CapEff:	0000000000000000" /proc/"$1"/status &&
	grep -q "^CapPrm:	0000000000000000" /proc/"$1"/status ||
	{ grep -E "Uid|Gid|Groups|NoNewPrivs|CapEff|CapPrm" /proc/"$1"/status; return 1; }
}
t_privs() {
	privs "$child" && privs "$dns" &&
	[ "$(readlink /proc/"$child"/root)" = "$tmp/A/queue/empty" ] &&
	[ "$(tr '\0' ' ' </proc/"$child"/cmdline)" != "$(tr '\0' ' ' </proc/"$pid_a"/cmdline)" ] ||
	{ echo "child root $(readlink /proc/"$child"/root)"; return 1; }
}
ok "child and resolver: nobody, no capabilities, no new privileges; the child re-executed and chrooted" t_privs

# The parent dies without a word: its child and resolver follow at once,
# so that psyncd started again right away can bind the same port.
t_restart() {
	kill -KILL "$pid_a"
	wait "$pid_a" 2>/dev/null
	start A || { tail -n 5 "$tmp/A/log"; return 1; }
	# Gone, or a zombie waiting for init to reap it.
	for p in "$child" "$dns"; do
		! grep -q "^State:.*[RSD]" /proc/"$p"/status 2>/dev/null ||
		{ echo "process $p still runs"; return 1; }
	done
}
ok "SIGKILL of the parent: child and resolver are gone and an immediate restart binds the port" t_restart
stop A

# A private /etc and network for the slow name: the resolver asks a name
# server on the namespace's own loopback that reads and never answers.
mkdir -p "$tmp/etc"
cp -a /etc/. "$tmp/etc/" 2>/dev/null
printf 'nameserver 127.0.0.53\noptions timeout:4 attempts:2\n' >"$tmp/etc/resolv.conf"
printf 'passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n' >"$tmp/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' >"$tmp/etc/hosts"
python3 - "$tmp/A/psync.conf" "$port_b" <<'PY'
import sys
p, port = sys.argv[1], sys.argv[2]
s = open(p).read()
s = s.replace('address = "127.0.0.1"\n\tport = %s' % port, 'address = "slow.psync.test"\n\tport = %s' % port)
open(p, "w").write(s)
PY
grep -q slow.psync.test "$tmp/A/psync.conf" || echo "# cannot set the slow name"

mark=$(wc -l <"$tmp/A/log")
unshare --net --mount --propagation private sh -c '
	ip link set lo up || exit 1
	python3 -c "
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((\"127.0.0.53\", 53))
end = time.time() + 120
while time.time() < end:
    s.settimeout(1)
    try:
        s.recv(512)
    except OSError:
        pass
" &
	echo $! >"$1/blackhole.pid"
	mount --bind "$1/etc" /etc && shift && exec "$@"' sh "$tmp" \
	"$PSYNCD" -f -d -u nobody -c "$tmp/A/psync.conf" >>"$tmp/A/log" 2>&1 &
pid_a=$!

t_slow_start() {
	wait_for 10 test -S "$tmp/A/control.sock" &&
	wait_for 10 sh -c "tail -n +$((mark + 1)) '$tmp/A/log' | grep -q 'ready: node'"
}
ok "node A starts with a peer whose name cannot be resolved quickly" t_slow_start

t_slow() {
	drop A bob "Bob-Privsep-1" >/dev/null
	ctl A verify B >"$tmp/verify.out" 2>&1 &
	vpid=$!
	sleep 1
	kill -HUP "$pid_a"
	sleep 0.2
	timeout 2 "$PSYNCCTL" -c "$tmp/A/psync.conf" status >"$tmp/st" 2>&1 ||
	{ echo "status did not answer within 2 s while B's name resolves"; cat "$tmp/st"; return 1; }
	grep -q "peer B" "$tmp/st" || { cat "$tmp/st"; return 1; }
	wait "$vpid"
	grep -q "resolution" "$tmp/verify.out" &&
	grep -q "cannot resolve slow.psync.test" "$tmp/verify.out" ||
	{ cat "$tmp/verify.out"; return 1; }
}
ok "status answers while a peer's name resolves slowly, across a reload; verify names the resolution" t_slow

stop A
kill "$(cat "$tmp/blackhole.pid" 2>/dev/null)" 2>/dev/null
[ "$failed" -eq 0 ]
