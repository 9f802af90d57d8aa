# Two or more psyncd nodes on loopback for system tests, each with its own
# configuration, spool, queue, keys and passwd/shadow/group copies under
# $tmp (this machine's /etc is never touched). The caller sets tmp, PSYNCD,
# PSYNCCTL and DROP, and NODE_USERS (how many users u1..uN each node gets,
# default 10), then sources this file. TAP helpers ok/wait_for, node set-up
# mknode, start/stop/ctl, drop (a change into a node's spool as pam_psync
# makes it) and hash_is (does a node's shadow hold this password).
n=0
failed=0

# nodes_begin NAME: the programs under test, TAP's SKIP when this machine
# cannot run them, and a temporary directory /tmp/NAME-XXXXXX that is
# removed on exit with both nodes stopped (kept with PSYNC_KEEP set).
nodes_begin() {
	PSYNCD=$top_builddir/psyncd/psyncd
	PSYNCCTL=$top_builddir/psyncctl/psyncctl
	DROP=$top_builddir/tests/spool-drop
	if [ "$(id -u)" != 0 ]; then
		echo "1..0 # SKIP needs root (psyncd drops privileges itself)"
		exit 0
	fi
	if ! python3 -W ignore -c 'import crypt' 2>/dev/null; then
		echo "1..0 # SKIP needs python3's crypt module to check hashes"
		exit 0
	fi
	tmp=$(mktemp -d "/tmp/$1-XXXXXX")
	chmod 755 "$tmp"
	pid_a= pid_b=
	trap nodes_cleanup EXIT
	trap 'exit 1' INT TERM
}

nodes_cleanup() {
	for p in $pid_a $pid_b; do
		kill -TERM "$p" 2>/dev/null
	done
	sleep 0.5
	for p in $pid_a $pid_b; do
		kill -KILL "$p" 2>/dev/null
	done
	[ -n "${PSYNC_KEEP:-}" ] && echo "# kept $tmp" || rm -rf "$tmp"
}

ok() {
	desc=$1
	shift
	n=$((n + 1))
	if "$@" >"$tmp/out" 2>&1; then
		echo "ok $n - $desc"
	else
		echo "not ok $n - $desc"
		sed 's/^/# /' "$tmp/out"
		failed=$((failed + 1))
	fi
}

# wait_for SECONDS COMMAND...: poll until the command succeeds
wait_for() {
	t=$(($1 * 10))
	shift
	while [ "$t" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		t=$((t - 1))
	done
	"$@"
}

# hash_is NODE USER PASSWORD: the node's shadow holds a hash of PASSWORD
hash_is() {
	python3 -W ignore - "$tmp/$1/shadow" "$2" "$3" <<'EOF'
import crypt, sys
path, user, pw = sys.argv[1:4]
for line in open(path):
    f = line.rstrip("\n").split(":")
    if f[0] == user:
        ok = f[1] not in ("", "*", "!") and crypt.crypt(pw, f[1]) == f[1]
        sys.exit(0 if ok else 1)
print("no user %s in %s" % (user, path))
sys.exit(1)
EOF
}

mknode() { # mknode NAME PEER PSYNCPORT PEERPORT MINUID EXTRA_PEERS
	d=$tmp/$1
	mkdir -p "$d/keys"
	chmod 700 "$d"
	cat >"$d/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
sysacct:x:500:500::/nonexistent:/usr/sbin/nologin
alice:x:1001:1001::/home/alice:/bin/sh
bob:x:1002:1002::/home/bob:/bin/sh
carol:x:1003:1003::/home/carol:/bin/sh
dave:x:1004:1004::/home/dave:/bin/sh
EOF
	: >"$d/shadow"
	for u in root sysacct alice bob carol dave; do
		echo "$u:\$6\$x\$initialhash:19000:0:99999:7:::" >>"$d/shadow"
	done
	for i in $(seq 1 "${NODE_USERS:-10}"); do
		echo "u$i:x:$((2000 + i)):100::/:/bin/sh" >>"$d/passwd"
		echo "u$i:\$6\$x\$initialhash:19000:0:99999:7:::" >>"$d/shadow"
	done
	printf 'root:x:0:\nusers:x:100:\n' >"$d/group"
	chmod 644 "$d/passwd" "$d/group"
	chmod 640 "$d/shadow"
	echo "ENCRYPT_METHOD SHA512" >"$d/login.defs"
	cat >"$d/psync.conf" <<EOF
node-name = "$1"
control-socket = "$d/control.sock"
store {
	type = files
	shadow-file = "$d/shadow"
	passwd-file = "$d/passwd"
	group-file = "$d/group"
	hash-method = sha512
	hash-cost = 1000
	login-defs = "$d/login.defs"
	lock-timeout = 5s
}
policy {
	sync-users = "+ALL"
	min-uid = $5
	skip-locked = false
}
listen psync {
	address = "127.0.0.1"
	port = $3
}
listen mepp {
	enabled = false
}
peer "$2" {
	protocol = psync
	address = "127.0.0.1"
	port = $4
	key-file = "$d/keys/$2.key"
	connect-timeout = 3s
}
$6
queue {
	directory = "$d/queue"
	spool-directory = "$d/spool"
	host-key-file = "$d/host.key"
	retry-interval = 1s
	max-retry-interval = 2s
}
log {
	level = debug
}
EOF
	chmod 600 "$d/psync.conf"
}

start() { # start NODE: psyncd in the foreground, its log in NODE/log
	# (the environment variables PSYNCD_TEST_* reach it from the caller)
	before=$(grep -c "ready: node" "$tmp/$1/log" 2>/dev/null)
	"$PSYNCD" -f -d -u nobody -c "$tmp/$1/psync.conf" >>"$tmp/$1/log" 2>&1 &
	eval "pid_$(echo "$1" | tr AB ab)=$!"
	wait_for 10 test -S "$tmp/$1/control.sock"
	t=100
	while [ "$(grep -c "ready: node" "$tmp/$1/log")" -le "${before:-0}" ]; do
		[ $t -gt 0 ] || { echo "node $1 did not start"; return 1; }
		sleep 0.1
		t=$((t - 1))
	done
}

stop() { # stop NODE
	eval "p=\$pid_$(echo "$1" | tr AB ab)"
	kill -TERM "$p"
	t=0
	while kill -0 "$p" 2>/dev/null && [ $t -lt 100 ]; do
		sleep 0.1
		t=$((t + 1))
	done
	wait "$p" 2>/dev/null
	eval "pid_$(echo "$1" | tr AB ab)="
}

ctl() { # ctl NODE ARGS...
	node=$1
	shift
	"$PSYNCCTL" -c "$tmp/$node/psync.conf" "$@"
}

drop() { # drop NODE USER PASSWORD [TIME_MS]
	echo "$3" | "$DROP" "$tmp/$1/spool" "$tmp/$1/host.key" "$1" "$2" ${4:-}
}
