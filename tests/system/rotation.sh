#!/bin/sh
# Key rotation between two psyncd nodes, A and B, on loopback (the same
# set-up as psyncd.sh: temporary configuration, keys, passwd and shadow
# copies; this machine's /etc is never touched). Proves rotation during
# traffic without a lost change, that the old key is refused afterwards,
# that rotations interrupted at each step (PSYNCD_TEST_CRASH, a test knob
# read only with -d) leave a working channel and can be completed, and the
# automatic rotation (PSYNCD_TEST_DAY_SECONDS). Needs root; prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
. "$top_srcdir/tests/lib/nodes.sh"

base=$((42000 + $$ % 8000 * 2))
port_a=$base port_b=$((base + 1))
NODE_USERS=10
nodes_begin psyncd-rot

mknode A B "$port_a" "$port_b" 0 ""
mknode B A "$port_b" "$port_a" 0 ""
"$PSYNCCTL" keygen "$tmp/A/keys/B.key" >/dev/null
cp "$tmp/A/keys/B.key" "$tmp/B/keys/A.key"
cp "$tmp/A/keys/B.key" "$tmp/key0"

# key_id NODE PEER: the current key id and "pending" when a rotation is open
key_state() {
	ctl "$1" status 2>/dev/null | grep -A5 "^peer $2 " | grep "key:" |
	sed 's/^ *key: *//'
}
key_is() { # key_is NODE PEER ID: current key ID and no rotation pending
	s=$(key_state "$1" "$2")
	case $s in
	"id $3, age"*"pending"*) return 1 ;;
	"id $3, age"*) return 0 ;;
	esac
	return 1
}
same_key() { cmp -s "$tmp/A/keys/B.key" "$tmp/B/keys/A.key"; }
channel_ok() { # both directions deliver
	drop A "$1" "$2-A" >/dev/null && wait_for 15 hash_is B "$1" "$2-A" &&
	drop B "$1" "$2-B" >/dev/null && wait_for 15 hash_is A "$1" "$2-B"
}

echo "1..7"

t_start() { start A && start B && channel_ok alice Start; }
ok "both nodes start; the channel works both ways with key id 0" t_start

t_traffic() {
	ts=$(($(date +%s) * 1000))
	: >"$tmp/last"
	(
		i=1
		while [ $i -le 150 ]; do
			u=u$((i % 10 + 1))
			drop A "$u" "Rot-$u-$i" $((ts + i)) >/dev/null
			echo "$u Rot-$u-$i" >>"$tmp/last"
			[ $((i % 5)) = 0 ] && sleep 0.05
			i=$((i + 1))
		done
	) &
	feeder=$!
	sleep 0.5
	ctl A rotate-key B >"$tmp/r" 2>&1 || { cat "$tmp/r"; wait $feeder; return 1; }
	grep -q "Key for peer B rotated: key id 1" "$tmp/r" || { cat "$tmp/r"; return 1; }
	wait $feeder
	for k in $(seq 1 10); do
		last=$(grep "^u$k " "$tmp/last" | tail -1 | cut -d' ' -f2)
		wait_for 30 hash_is B "u$k" "$last" ||
		{ echo "u$k: not the last password $last"; return 1; }
	done
	wait_for 10 key_is A B 1 && wait_for 10 key_is B A 1 ||
	{ key_state A B; key_state B A; return 1; }
	same_key || { echo "the key files differ"; return 1; }
	cmp -s "$tmp/key0" "$tmp/A/keys/B.key" && { echo "key not changed"; return 1; }
	! ls "$tmp/A/keys" "$tmp/B/keys" | grep -q pending || { ls "$tmp"/?/keys; return 1; }
	ctl A status | grep -A3 "^peer B " | grep -q "queue depth:  0" &&
	! grep -q "given up" "$tmp/A/log" && channel_ok bob Traffic
}
ok "rotation during a stream of 150 changes: confirmed, both at key id 1 with the same new key, no change lost" t_traffic

t_old_refused() {
	ctl A verify B >"$tmp/v" 2>&1 || { cat "$tmp/v"; return 1; }
	b8203=$(grep -c 8203 "$tmp/B/log")
	head -c 64 "$tmp/key0" | { cat; echo; } | ctl A set-key B >/dev/null || return 1
	ctl A verify B >"$tmp/v" 2>&1 && { cat "$tmp/v"; return 1; }
	grep -q "failed at step TLS handshake" "$tmp/v" && grep -q 8203 "$tmp/v" ||
	{ cat "$tmp/v"; return 1; }
	wait_for 5 sh -c "[ \$(grep -c 8203 '$tmp/B/log') -gt $b8203 ]" ||
	{ echo "B logged no 8203"; return 1; }
	# Back to the current key: the channel works again.
	head -c 64 "$tmp/B/keys/A.key" | { cat; echo; } | ctl A set-key B >/dev/null &&
	ctl A verify B >"$tmp/v" 2>&1 || { cat "$tmp/v"; return 1; }
	key_is A B 1 || { key_state A B; return 1; }
}
ok "afterwards the old key is refused: A given the old key file fails with 8203 on both sides" t_old_refused

key_id() { key_state "$1" "$2" | sed -n 's/^id \([0-9]*\),.*/\1/p'; }
settled() { # settled ID: both nodes hold the same key, current, with id ID
	key_is A B "$1" && key_is B A "$1" && same_key
}
gone() { # gone PID: the killed parent's child follows it (PR_SET_PDEATHSIG)
	[ -z "$1" ] || wait_for 10 sh -c "! grep -q '^State:.*[RSD]' /proc/$1/status"
}
with_env() { # with_env VAR VALUE COMMAND...: run COMMAND with VAR exported
	v=$1 val=$2
	shift 2
	export "$v=$val"
	"$@"
	r=$?
	unset "$v"
	return $r
}

t_kill_b() {
	stop B
	with_env PSYNCD_TEST_CRASH key-stored start B || return 1
	pb=$pid_b
	cb=$(pgrep -P "$pb" psyncd-net)
	ctl A rotate-key B >"$tmp/r" 2>&1 && { cat "$tmp/r"; return 1; }
	wait "$pb" 2>/dev/null
	pid_b=
	gone "$cb" || return 1
	grep -q "PSYNCD_TEST_CRASH=key-stored" "$tmp/B/log" &&
	grep -q "did not confirm key id 2" "$tmp/r" || { cat "$tmp/r"; return 1; }
	key_state A B | grep -q "pending (key id 2, proposed by this node)" ||
	{ key_state A B; return 1; }
	start B || return 1
	# Each side holds both keys: both directions still work, and the
	# handshakes with the new key finish the rotation on both sides.
	channel_ok carol KillB || return 1
	wait_for 10 settled 2 || { key_state A B; key_state B A; return 1; }
	# And a new rotation succeeds.
	ctl A rotate-key B >"$tmp/r" 2>&1 || { cat "$tmp/r"; return 1; }
	wait_for 10 settled 3 && channel_ok carol KillB2
}
ok "B killed between the proposal and its confirmation: the channel still works and a new rotation succeeds" t_kill_b

t_kill_a() {
	for point in key-confirmed key-promoted; do
		id=$(($(key_id A B) + 1))
		stop A
		with_env PSYNCD_TEST_CRASH $point start A || return 1
		pa=$pid_a
		ca=$(pgrep -P "$pa" psyncd-net)
		ctl A rotate-key B >"$tmp/r" 2>&1
		wait "$pa" 2>/dev/null
		pid_a=
		gone "$ca" || return 1
		grep -q "PSYNCD_TEST_CRASH=$point" "$tmp/A/log" ||
		{ echo "A did not stop at $point"; cat "$tmp/r"; return 1; }
		start A || return 1
		channel_ok dave "KillA-$point" || { echo "channel after $point"; return 1; }
		wait_for 10 settled $id ||
		{ echo "after $point:"; key_state A B; key_state B A; return 1; }
	done
	ctl A rotate-key B >"$tmp/r" 2>&1 || { cat "$tmp/r"; return 1; }
	wait_for 10 settled $((id + 1)) && channel_ok dave KillA3
}
ok "A killed after the confirmation (before and after making the key current): the channel works and rotation completes" t_kill_a

t_b_rotates() {
	id=$(($(key_id B A) + 1))
	ctl B rotate-key A >"$tmp/r" 2>&1 || { cat "$tmp/r"; return 1; }
	wait_for 10 settled $id && channel_ok alice FromB
}
ok "the other side can rotate too (B proposes to A)" t_b_rotates

t_auto() {
	id0=$(key_id A B)
	sed -i "s/^\tconnect-timeout = 3s/\tconnect-timeout = 3s\n\tkey-rotation-days = 1/" "$tmp/A/psync.conf"
	stop A
	with_env PSYNCD_TEST_DAY_SECONDS 4 start A || return 1
	wait_for 20 grep -q "key-rotation-days): rotating" "$tmp/A/log" || return 1
	wait_for 20 sh -c "[ \"\$('$PSYNCCTL' -c '$tmp/A/psync.conf' status | sed -n 's/^ *key: *id \([0-9]*\),.*/\1/p')\" -gt $id0 ]" ||
	{ key_state A B; return 1; }
	stop A
	sed -i "/key-rotation-days/d" "$tmp/A/psync.conf"
	start A || return 1
	channel_ok bob Auto && wait_for 10 settled "$(key_id A B)"
}
ok "key-rotation-days: an old key is rotated automatically" t_auto

[ "$failed" -eq 0 ]
