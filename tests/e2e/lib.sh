# End-to-end test hosts: each host is a network namespace with its own
# mount namespace, in which a private copy of /etc is bind-mounted over
# /etc (notes/test-hosts.md). Hosts meet on a bridge in a "switch"
# namespace, with addresses from 198.51.100.0/24. Everything a test makes
# is recorded and torn down by e2e_cleanup, which the trap runs even when a
# test fails or is interrupted.
#
#   e2e_init                   work directory, trap, switch namespace
#   e2e_host NAME OCTET        a host NAME at 198.51.100.OCTET
#   e2e_run NAME CMD...        run CMD in host NAME (its /etc, its network)
#   e2e_sh NAME SCRIPT         the same for a shell script string
#   e2e_bg NAME LOG CMD...     start CMD in the background; its PID is left
#                              in E2E_PID (call it directly, not in $(...))
#   e2e_kill PID [SIGNAL]      stop a background process (recorded PIDs only)
#   e2e_cleanup                kill every recorded process, delete namespaces,
#                              remove the work directory (kept, for reading
#                              the hosts' logs, when E2E_KEEP is set)
#
# Test output is TAP: e2e_ok / e2e_not_ok / e2e_check count and print.

E2E_NET=198.51.100

e2e_init() {
	E2E_ID=$$
	E2E_WORK=$(mktemp -d /tmp/psync-e2e-XXXXXX)
	E2E_PIDS=""
	E2E_NETNS=""
	E2E_N=0
	E2E_FAILED=0
	trap 'e2e_cleanup' EXIT
	trap 'exit 1' INT TERM HUP
	E2E_SWITCH=psw-$E2E_ID
	ip netns add "$E2E_SWITCH" || return 1
	E2E_NETNS="$E2E_SWITCH"
	ip -n "$E2E_SWITCH" link add br0 type bridge &&
	ip -n "$E2E_SWITCH" link set br0 up &&
	ip -n "$E2E_SWITCH" link set lo up
}

e2e_host() { # NAME OCTET
	_h=$1
	_ns=ph-$_h-$E2E_ID
	mkdir -p "$E2E_WORK/$_h" || return 1
	cp -a /etc "$E2E_WORK/$_h/etc" 2>/dev/null
	[ -f "$E2E_WORK/$_h/etc/shadow" ] || { echo "# e2e_host: cannot copy /etc" >&2; return 1; }
	ip netns add "$_ns" || return 1
	E2E_NETNS="$E2E_NETNS $_ns"
	ip link add "v$_h$E2E_ID" type veth peer name "s$_h$E2E_ID" &&
	ip link set "v$_h$E2E_ID" netns "$_ns" name eth0 &&
	ip link set "s$_h$E2E_ID" netns "$E2E_SWITCH" &&
	ip -n "$E2E_SWITCH" link set "s$_h$E2E_ID" master br0 up &&
	ip -n "$_ns" addr add "$E2E_NET.$2/24" dev eth0 &&
	ip -n "$_ns" link set eth0 up &&
	ip -n "$_ns" link set lo up || return 1
	# A plain stack: pam_unix alone (the machine's may hold pam_winbind).
	cat >"$E2E_WORK/$_h/etc/pam.d/common-password" <<'PAM'
password	[success=1 default=ignore]	pam_unix.so obscure yescrypt nodelay
password	requisite			pam_deny.so
password	required			pam_permit.so
PAM
	cat >"$E2E_WORK/$_h/etc/pam.d/psync-login" <<'PAM'
auth	required	pam_unix.so nodelay
account	required	pam_unix.so
PAM
	echo "$E2E_NET.$2 $_h" >>"$E2E_WORK/$_h/etc/hosts"
}

e2e_ns() { echo "ph-$1-$E2E_ID"; }
e2e_dir() { echo "$E2E_WORK/$1"; }

e2e_run() { # NAME CMD...
	_h=$1
	shift
	ip netns exec "$(e2e_ns "$_h")" unshare --mount --propagation private -- \
	    sh -c 'mount --bind "$0/etc" /etc && exec "$@"' "$E2E_WORK/$_h" "$@"
}

e2e_sh() { e2e_run "$1" sh -c "$2"; }

e2e_bg() { # NAME LOG CMD... ; sets E2E_PID
	_h=$1
	_log=$2
	shift 2
	# exec all the way down, so that $! is the command's own PID.
	(exec ip netns exec "$(e2e_ns "$_h")" unshare --mount --propagation private -- \
	    sh -c 'mount --bind "$0/etc" /etc && exec "$@"' "$E2E_WORK/$_h" "$@") \
	    >>"$_log" 2>&1 &
	E2E_PID=$!
	E2E_PIDS="$E2E_PIDS $E2E_PID"
}

e2e_kill() { # PID [SIGNAL]
	kill -"${2:-TERM}" "$1" 2>/dev/null
	_i=0
	while kill -0 "$1" 2>/dev/null && [ $_i -lt 50 ]; do
		sleep 0.1
		_i=$((_i + 1))
	done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

e2e_cleanup() {
	for _p in $E2E_PIDS; do
		kill -KILL "$_p" 2>/dev/null
	done
	for _p in $E2E_PIDS; do
		wait "$_p" 2>/dev/null
	done
	# Processes a test host started on its own (children of the above).
	for _ns in $E2E_NETNS; do
		for _p in $(ip netns pids "$_ns" 2>/dev/null); do
			kill -KILL "$_p" 2>/dev/null
		done
	done
	for _ns in $E2E_NETNS; do
		ip netns del "$_ns" 2>/dev/null
	done
	if [ -n "${E2E_KEEP:-}" ] && [ -d "${E2E_WORK:-}" ]; then
		echo "# E2E_KEEP: kept $E2E_WORK"
	elif [ -n "${E2E_WORK:-}" ] && [ -d "$E2E_WORK" ]; then
		rm -rf "$E2E_WORK"
	fi
	E2E_PIDS=""
	E2E_NETNS=""
}

# TAP helpers.
e2e_ok() { E2E_N=$((E2E_N + 1)); echo "ok $E2E_N - $1"; }
e2e_not_ok() {
	E2E_N=$((E2E_N + 1))
	E2E_FAILED=$((E2E_FAILED + 1))
	echo "not ok $E2E_N - $1"
	shift
	for _l in "$@"; do printf '%s\n' "$_l" | sed 's/^/# /'; done
}
# e2e_check DESCRIPTION COMMAND... : ok when the command succeeds; its
# output is shown as TAP diagnostics when it fails. The command runs in
# this shell (its output goes to a file, not through $(...)), so that what
# it records, such as e2e_psyncd_start's PID, is kept.
e2e_check() {
	if [ -d "${E2E_WORK:-}" ]; then
		if e2e_check_run "$@"; then
			e2e_ok "$1"
		else
			e2e_not_ok "$1" "$(cat "$E2E_WORK/.check.out")"
		fi
	elif _out=$(shift; "$@" 2>&1); then
		e2e_ok "$1"
	else
		e2e_not_ok "$1" "$_out"
	fi
}
# The description stays in e2e_check's own $1, which the command cannot
# overwrite (a variable could be).
e2e_check_run() { shift; "$@" >"$E2E_WORK/.check.out" 2>&1; }

# Wait up to SECONDS for COMMAND to succeed.
e2e_wait() { # SECONDS COMMAND...
	_t=$(($1 * 10))
	shift
	while [ $_t -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		_t=$((_t - 1))
	done
	return 1
}

e2e_need_root() {
	if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
		echo "1..0 # SKIP needs root, ip and unshare"
		exit 0
	fi
}

# ---------------------------------------------------------------- psync on a host
#
#   e2e_psync_host NAME OCTET      a test host with psync installed: the
#                                  built module in its password stack (check
#                                  role before pam_unix, forwarding after),
#                                  a psync.conf naming it, the psync user
#   e2e_psync_peer A B [LINES]     A sends to and receives from B over psync
#                                  (LINES: extra options for the peer section)
#   e2e_psync_pair A B             e2e_psync_peer both ways with one new key
#   e2e_psyncd_start NAME          start psyncd on the host (PID in
#                                  E2E_PSYNCD_<NAME>), wait until it is ready
#   e2e_psyncd_stop NAME [SIGNAL]  stop it (TERM, or KILL for a crash)
#   e2e_ctl NAME ARGS...           psyncctl on the host
#   e2e_user NAME USER UID PW      add a user with a password (no PAM)
#   e2e_login NAME USER PW         PAM login of USER with PW on the host
#   e2e_log NAME                   the path of the host's psyncd log
#
# Needs top_builddir (absolute).

e2e_psync_host() { # NAME OCTET
	e2e_host "$1" "$2" || return 1
	_d=$E2E_WORK/$1
	mkdir -p "$_d/etc/psync/keys" "$_d/state" && chmod 700 "$_d/etc/psync" "$_d/state"
	cat >"$_d/etc/pam.d/common-password" <<PAM
# psync test host: check role, pam_unix, forwarding role
password	requisite			$top_builddir/pam_psync/.libs/pam_psync.so check
password	[success=1 default=ignore]	pam_unix.so obscure use_authtok try_first_pass yescrypt nodelay
password	requisite			pam_deny.so
password	required			pam_permit.so
password	optional			$top_builddir/pam_psync/.libs/pam_psync.so
PAM
	cat >"$_d/etc/psync/psync.conf" <<CONF
node-name = "$1"
control-socket = "$_d/state/control.sock"
listen psync {
	address = "$E2E_NET.$2"
	port = 6678
}
queue {
	directory = "$_d/state/queue"
	spool-directory = "$_d/state/spool"
	host-key-file = "/etc/psync/host.key"
	retry-interval = 1s
	max-retry-interval = 2s
}
log {
	level = debug
}
CONF
	chmod 600 "$_d/etc/psync/psync.conf"
	eval "E2E_OCTET_$1=$2"
	e2e_run "$1" useradd -r -M -d /nonexistent -s /usr/sbin/nologin psync
}

e2e_psync_peer() { # A B [LINES]
	eval "_o=\$E2E_OCTET_$2"
	cat >>"$E2E_WORK/$1/etc/psync/psync.conf" <<CONF
peer "$2" {
	address = "$E2E_NET.$_o"
	key-file = "/etc/psync/keys/$2.key"
	connect-timeout = 3s${3:+
$3}
}
CONF
}

e2e_psync_pair() { # A B
	"$top_builddir/psyncctl/psyncctl" keygen "$E2E_WORK/$1/etc/psync/keys/$2.key" >/dev/null &&
	cp -p "$E2E_WORK/$1/etc/psync/keys/$2.key" "$E2E_WORK/$2/etc/psync/keys/$1.key" &&
	e2e_psync_peer "$1" "$2" && e2e_psync_peer "$2" "$1"
}

e2e_log() { echo "$E2E_WORK/$1/psyncd.log"; }

e2e_psyncd_start() { # NAME
	_log=$(e2e_log "$1")
	# grep -c prints nothing for a missing file: count from a pipe, so that
	# a log not yet created counts as 0 and the loop below really waits.
	_before=$(cat "$_log" 2>/dev/null | grep -c "ready: node")
	e2e_bg "$1" "$_log" "$top_builddir/psyncd/psyncd" -f -d -u psync \
	    -c /etc/psync/psync.conf
	eval "E2E_PSYNCD_$1=$E2E_PID"
	_t=100
	while [ "$(cat "$_log" 2>/dev/null | grep -c "ready: node")" -le "$_before" ]; do
		if [ $_t -le 0 ] || ! kill -0 "$E2E_PID" 2>/dev/null; then
			echo "# psyncd on $1 did not start:" >&2
			tail -n 20 "$_log" | sed 's/^/#   /' >&2
			return 1
		fi
		sleep 0.1
		_t=$((_t - 1))
	done
}

e2e_psyncd_stop() { # NAME [SIGNAL]
	eval "_p=\$E2E_PSYNCD_$1"
	[ -n "$_p" ] || return 0
	# After a SIGKILL the network child follows its parent on its own
	# (PR_SET_PDEATHSIG); wait for it too, since it holds the listening
	# sockets a restarted psyncd needs.
	_kids=$(pgrep -P "$_p" 2>/dev/null)
	e2e_kill "$_p" "${2:-TERM}"
	for _k in $_kids; do
		_t=50
		while kill -0 "$_k" 2>/dev/null && [ $_t -gt 0 ]; do
			sleep 0.1
			_t=$((_t - 1))
		done
	done
	eval "E2E_PSYNCD_$1="
}

e2e_ctl() { _h=$1; shift; e2e_run "$_h" "$top_builddir/psyncctl/psyncctl" "$@"; }

e2e_user() { # NAME USER UID PASSWORD
	e2e_run "$1" useradd -M -d /nonexistent -s /bin/sh -u "$3" "$2" &&
	e2e_run "$1" usermod -p "$(perl -e 'print crypt($ARGV[0], "\$6\$" . join("", map { ("a".."z")[rand 26] } 1..8) . "\$")' "$4")" "$2"
}

e2e_login() { # NAME USER PASSWORD
	printf '%s\n' "$3" | e2e_run "$1" "$top_builddir/tests/pam-auth" "$2" >/dev/null 2>&1
}

# ---------------------------------------------------------------- more helpers
#
#   e2e_passwd NAME USER PW        root runs passwd USER on the host (PW twice
#                                  on a pipe: the real passwd, PAM and the
#                                  module's both roles)
#   e2e_conf NAME                  append stdin to the host's psync.conf
#   e2e_drained NAME               psyncctl status: every queue depth is 0
#   e2e_shadow NAME USER           the user's line in the host's /etc/shadow
#   e2e_link NAME up|down          plug the host into the switch or unplug it
#   e2e_count NAME PATTERN         how many lines of the host's psyncd log
#                                  match PATTERN (grep -E)

e2e_passwd() { # NAME USER PASSWORD
	printf '%s\n%s\n' "$3" "$3" | e2e_run "$1" passwd "$2" >/dev/null 2>&1
}

e2e_conf() { cat >>"$E2E_WORK/$1/etc/psync/psync.conf"; }

e2e_drained() { # NAME
	_s=$(e2e_ctl "$1" status) || return 1
	echo "$_s" | grep -q 'queue depth:' &&
	! echo "$_s" | grep 'queue depth:' | grep -vq 'queue depth:  0,'
}

e2e_shadow() { grep "^$2:" "$E2E_WORK/$1/etc/shadow"; }

e2e_count() { grep -Ec "$2" "$(e2e_log "$1")"; }

e2e_link() { ip -n "$E2E_SWITCH" link set "s$1$E2E_ID" "$2"; }
