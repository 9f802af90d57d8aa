#!/bin/sh
# Two psyncd nodes, A and B, on loopback, each with its own configuration,
# spool, queue, keys and passwd/shadow/group copies in a temporary
# directory (this machine's /etc is never touched). The network children
# run as "nobody". Proves delivery, recovery after an outage and after
# SIGKILLs, key mismatches, the policy in both directions, the child's
# privileges, MEPP inbound and bad input. Needs root; prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
. "$top_srcdir/tests/lib/nodes.sh"

base=$((20000 + $$ % 20000))
port_a=$base port_b=$((base + 1)) port_mb=$((base + 2))
NODE_USERS=300
nodes_begin psyncd-test

mepp_peer="peer \"winb\" {
	protocol = mepp
	address = \"127.0.0.1\"
	port = $port_mb
	key = \"legacy-secret-key-1\"
	direction = send
}"
mepp_listen_b="peer \"wina\" {
	protocol = mepp
	address = \"127.0.0.1\"
	key = \"legacy-secret-key-1\"
	trusted-addresses = { \"127.0.0.1\" }
	direction = receive
}"
mknode A B "$port_a" "$port_b" 0 ""
mknode B A "$port_b" "$port_a" 1000 "$mepp_listen_b"
sed -i "s/^listen mepp {/listen mepp {\n\taddress = \"127.0.0.1\"\n\tport = $port_mb/; s/^\tenabled = false/\tenabled = true/" "$tmp/B/psync.conf"
"$PSYNCCTL" keygen "$tmp/A/keys/B.key" >/dev/null
cp "$tmp/A/keys/B.key" "$tmp/B/keys/A.key"
"$PSYNCCTL" keygen "$tmp/wrong.key" >/dev/null

echo "1..18"

t_start() {
	"$PSYNCD" -t -c "$tmp/A/psync.conf" && "$PSYNCD" -t -c "$tmp/B/psync.conf" &&
	start A && start B
}
ok "both nodes start and log that they are ready" t_start

t_child() {
	for node in A B; do
		eval "p=\$pid_$(echo "$node" | tr AB ab)"
		c=$(pgrep -P "$p" psyncd-net) || { echo "no child of $p"; return 1; }
		grep -q "^Uid:	65534	65534	65534	65534" /proc/"$c"/status &&
		grep -q "^Gid:	65534	65534	65534	65534" /proc/"$c"/status &&
		grep -q "^NoNewPrivs:	1" /proc/"$c"/status &&
		grep -q "^CapEff:	0000000000000000" /proc/"$c"/status ||
		{ grep -E "Uid|Gid|NoNewPrivs|CapEff" /proc/"$c"/status; return 1; }
		root=$(readlink /proc/"$c"/root)
		[ "$root" = "$tmp/$node/queue/empty" ] ||
		{ echo "child root is $root"; return 1; }
		[ -z "$(ls -A "$root")" ] || { echo "$root is not empty"; return 1; }
	done
}
ok "network children run as nobody, no capabilities, chrooted in an empty directory" t_child

t_deliver() {
	drop A alice "Alice-Pass-1" >/dev/null || return 1
	wait_for 15 hash_is B alice "Alice-Pass-1" || return 1
	wait_for 5 sh -c "'$PSYNCCTL' -c '$tmp/A/psync.conf' status 2>/dev/null | grep -A3 'peer B' | grep -q 'queue depth:  0'" || return 1
	ctl A status >"$tmp/st" 2>/dev/null
	grep -q "peer B (psync, both): reachable" "$tmp/st" &&
	! grep -A1 "peer B" "$tmp/st" | grep "last success" | grep -q never ||
	{ cat "$tmp/st"; return 1; }
	ctl A status --json 2>/dev/null >"$tmp/st"
	grep -q '"peer":"B".*"reachable":true.*"queue_depth":0' "$tmp/st" ||
	{ cat "$tmp/st"; return 1; }
	! grep -l "Alice-Pass-1" "$tmp/A/log" "$tmp/B/log" "$tmp/A/queue/"* "$tmp/B/queue/"*
}
ok "a change dropped in A's spool lands in B's shadow; status shows it delivered; no cleartext in logs or queue" t_deliver

t_verify() {
	ctl A verify B >"$tmp/v" 2>&1 &&
	grep -q "Secure channel to B checked successfully" "$tmp/v"
}
ok "psyncctl verify B succeeds on a sound channel" t_verify

t_outage() {
	stop B
	drop A bob "Bob-Pass-1" >/dev/null
	sleep 3
	ctl A status | grep -A3 "peer B" | grep -q "queue depth:  1" || return 1
	start B
	wait_for 15 hash_is B bob "Bob-Pass-1" || return 1
	sleep 2
	c=$(grep -c "for bob from peer A: applied" "$tmp/B/log")
	[ "$c" = 1 ] || { echo "bob applied $c times"; return 1; }
}
ok "B down, change made, B back: it arrives exactly once without a manual step" t_outage

# all_hold NODE PREFIX N: users u1..uN on NODE hold PREFIX-uK
all_hold() {
	python3 -W ignore - "$tmp/$1/shadow" "$2" "$3" <<'EOF'
import crypt, sys
path, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
hashes = {}
for line in open(path):
    f = line.split(":")
    hashes[f[0]] = f[1]
bad = [u for u in ("u%d" % k for k in range(1, n + 1))
       if crypt.crypt("%s-%s" % (prefix, u), hashes.get(u, "*")) != hashes.get(u)]
print("%d of %d users do not hold their new password yet" % (len(bad), n))
sys.exit(1 if bad else 0)
EOF
}

t_backlog() {
	stop B
	for k in $(seq 1 300); do
		drop A "u$k" "Backlog-u$k" >/dev/null || return 1
	done
	wait_for 15 sh -c "ctl_status=\$(\"$PSYNCCTL\" -c \"$tmp/A/psync.conf\" status) &&
	    echo \"\$ctl_status\" | grep -A3 'peer B' | grep -q 'queue depth:  300'" || return 1
	start B || return 1
	wait_for 60 all_hold B Backlog 300 || return 1
	# A held the rest back while 128 waited for their results.
	grep -q "peer B: 128 changes in flight; the next wait" "$tmp/A/log"
}
ok "B down, 300 users changed, B back: all arrive, never more than 128 in flight to B" t_backlog

# B wrote those passwords itself: the next ones for the same users skip
# the verify against the stored hash (the store's fingerprints).
t_fingerprints() {
	for k in $(seq 1 20); do
		drop A "u$k" "Again-u$k" >/dev/null || return 1
	done
	wait_for 30 all_hold B Again 20 || return 1
	[ "$(stat -c %a "$tmp/B/queue/fingerprints.db")" = 600 ] || return 1
	! grep -qaF -e Again-u -e Backlog-u "$tmp/B/queue/fingerprints.db" ||
	    return 1
	awk '/known to differ by their fingerprint/ {
		for (f = 2; f <= NF; f++) if ($f == "known") s += $(f - 1) }
	    END { print s + 0 " verifies skipped on B"; exit s == 0 }' "$tmp/B/log"
}
ok "B applies new passwords for users whose passwords it wrote without verifying the old ones; fingerprints 0600, no password" t_fingerprints

# skipped_since LINE: verifies B skipped in its log after line LINE
skipped_since() {
	tail -n +"$(($1 + 1))" "$tmp/B/log" | awk '/known to differ by their fingerprint/ {
		for (f = 2; f <= NF; f++) if ($f == "known") s += $(f - 1) }
	    END { print s + 0 }'
}

t_fingerprints_off() {
	conf=$tmp/B/psync.conf
	sed -i 's/^\tlock-timeout = 5s$/&\n\tfingerprints = false/' "$conf"
	grep -q "fingerprints = false" "$conf" || return 1
	mark=$(wc -l <"$tmp/B/log")
	kill -HUP "$pid_b"
	wait_for 10 sh -c "tail -n +$((mark + 1)) '$tmp/B/log' | grep -q reloaded" || return 1
	for k in $(seq 1 10); do
		drop A "u$k" "Third-u$k" >/dev/null || return 1
	done
	wait_for 30 all_hold B Third 10 || return 1
	[ "$(skipped_since "$mark")" = 0 ] || { echo "skipped with fingerprints off"; return 1; }
	sed -i '/^\tfingerprints = false$/d' "$conf"
	mark=$(wc -l <"$tmp/B/log")
	kill -HUP "$pid_b"
	wait_for 10 sh -c "tail -n +$((mark + 1)) '$tmp/B/log' | grep -q reloaded" || return 1
	# The passwords written while they were off are unknown: one round
	# to learn them, and the next skips the verify again.
	for round in Fourth Fifth; do
		for k in $(seq 1 10); do
			drop A "u$k" "$round-u$k" >/dev/null || return 1
		done
		wait_for 30 all_hold B "$round" 10 || return 1
	done
	[ "$(skipped_since "$mark")" -gt 0 ] || { echo "none skipped once back on"; return 1; }
}
ok "SIGHUP with fingerprints = false: B verifies every change; back on after the next SIGHUP" t_fingerprints_off

t_crash() {
	total=1000
	i=1
	ts=$(($(date +%s) * 1000))
	kills=0
	: >"$tmp/ids"
	while [ $i -le $total ]; do
		u=u$((i % 50 + 1))
		name=$(drop A "$u" "Pw-$u-$i" $((ts + i))) || return 1
		# The spool name is TIME-ID.chg: remember which id is change i.
		echo "$(echo "$name" | cut -c18-49) $i" >>"$tmp/ids"
		echo "$u Pw-$u-$i" >>"$tmp/last"
		if [ $((i % 200)) = 0 ]; then
			sleep 0.$(((i * 7 + $$) % 9 + 1))
			c=$(pgrep -P "$pid_a" psyncd-net)
			kill -KILL "$pid_a"
			wait "$pid_a" 2>/dev/null
			kills=$((kills + 1))
			# The child follows its parent (PR_SET_PDEATHSIG).
			[ -z "$c" ] || wait_for 10 sh -c "! grep -q '^State:.*[RSD]' /proc/$c/status" || return 1
			start A || return 1
		fi
		i=$((i + 1))
	done
	for k in $(seq 1 50); do
		last=$(grep "^u$k " "$tmp/last" | tail -1 | cut -d' ' -f2)
		wait_for 30 hash_is B "u$k" "$last" ||
		{ echo "u$k: not the last password $last"; return 1; }
	done
	# B's log, in order: for each user, the changes applied there must
	# have been made in that order (never an older after a newer one).
	awk 'NR == FNR { seq[$1] = $2; next }
	    / from peer A: applied$/ {
		for (f = 1; f <= NF; f++) if ($f == "change") id = $(f + 1)
		for (f = 1; f <= NF; f++) if ($f == "for") user = $(f + 1)
		if (!(id in seq)) next
		n++
		if (seq[id] < last[user]) {
			printf "%s: change %d applied after change %d\n", user, seq[id], last[user]
			bad++
		}
		last[user] = seq[id]
	    }
	    END { printf "%d of the stream applied on B, %d out of order\n", n, bad; exit bad > 0 || n < 50 }' \
	    "$tmp/ids" "$tmp/B/log" || return 1
	echo "$kills SIGKILLs"
	[ "$kills" -ge 4 ]
}
ok "SIGKILL of A during 1,000 changes over 50 users: every user's final password on B is the last one set, and none older after newer" t_crash

t_wrong_key() {
	"$PSYNCCTL" keygen >"$tmp/wrong.hex"
	ctl A set-key B <"$tmp/wrong.hex" >/dev/null || return 1
	ctl A verify B >"$tmp/v" 2>&1 && { cat "$tmp/v"; return 1; }
	grep -q "failed at step TLS handshake" "$tmp/v" &&
	grep -q "8203" "$tmp/v" || { cat "$tmp/v"; return 1; }
	drop A carol "Carol-Pass-1" >/dev/null
	sleep 3
	hash_is B carol "Carol-Pass-1" && { echo "applied with a wrong key"; return 1; }
	grep -q "8203" "$tmp/A/log" && grep -q "8203" "$tmp/B/log" ||
	{ echo "8203 not logged on both sides"; return 1; }
	# The right key again: the queued change goes through.
	head -c 64 "$tmp/B/keys/A.key" | { cat; echo; } | ctl A set-key B >/dev/null &&
	wait_for 15 hash_is B carol "Carol-Pass-1"
}
ok "wrong key: nothing applied, 8203 on both sides, verify names the handshake; the right key delivers the queued change" t_wrong_key

t_policy_in() {
	echo "Sys-Pass-1" | ctl A send sysacct --peer B >/dev/null || return 1
	wait_for 10 grep -q "12294: change .* for sysacct from peer A refused" "$tmp/B/log" &&
	! hash_is B sysacct "Sys-Pass-1"
}
ok "a change for a system account (uid 500) is refused by B on the way in with 12294" t_policy_in

t_policy_out() {
	drop B sysacct "Sys-Pass-2" >/dev/null
	wait_for 10 grep -q "12294: change .* for sysacct not sent to peer A" "$tmp/B/log" &&
	sleep 1 && ! hash_is A sysacct "Sys-Pass-2"
}
ok "B refuses to send a change for that system account, with 12294" t_policy_out

t_back() {
	drop B dave "Dave-From-B-1" >/dev/null &&
	wait_for 15 hash_is A dave "Dave-From-B-1" &&
	sleep 1 && [ "$(grep -c 'for dave from peer B: applied' "$tmp/A/log")" = 1 ] &&
	! grep -q "for dave from peer A" "$tmp/B/log"
}
ok "a change made on B reaches A and is not sent back to B" t_back

t_mepp() {
	# A learns of the MEPP peer by a reload (SIGHUP).
	printf '%s\n' "$mepp_peer" >>"$tmp/A/psync.conf"
	kill -HUP "$pid_a"
	wait_for 10 grep -q "reloaded: 2 peers" "$tmp/A/log" || return 1
	ctl A verify winb >"$tmp/v" 2>&1 || { cat "$tmp/v"; return 1; }
	echo "Mepp-Pass-1" | ctl A send carol --peer winb >/dev/null &&
	wait_for 15 hash_is B carol "Mepp-Pass-1" &&
	grep -q "for carol from peer wina: applied" "$tmp/B/log"
}
ok "SIGHUP adds a MEPP peer; verify checks it; MEPP inbound: a MEPP client changes carol's password on B" t_mepp

t_bad_spool() {
	f=$(drop A alice "Alice-Pass-2" 2>&1) || return 1
	# Spoil a file before psyncd takes it: write a fake one by hand.
	name=0000000000000001-00000000000000000000000000000001.chg
	printf 'PSYNCSP1garbage' >"$tmp/A/spool/.x.tmp"
	mv "$tmp/A/spool/.x.tmp" "$tmp/A/spool/$name"
	wait_for 10 test -f "$tmp/A/spool/bad/$name" &&
	! test -e "$tmp/A/spool/$name" &&
	grep -q "set aside" "$tmp/A/log" &&
	wait_for 15 hash_is B alice "Alice-Pass-2"
}
ok "a spool file that does not unseal is set aside in bad/, and the others still flow" t_bad_spool

t_store_fail() {
	mv "$tmp/B/shadow" "$tmp/B/shadow.away"
	drop A bob "Bob-Pass-2" >/dev/null
	wait_for 10 sh -c "grep -q 'refused change .* for bob for now' '$tmp/A/log'" ||
		{ echo "A never logged B's refusal"; tail -n 20 "$tmp/A/log"; return 1; }
	ctl A status >"$tmp/st" 2>&1
	grep -A3 "peer B" "$tmp/st" | grep -q "queue depth:  1" ||
		{ echo "expected queue depth 1 for B:"; cat "$tmp/st"; return 1; }
	mv "$tmp/B/shadow.away" "$tmp/B/shadow"
	wait_for 15 hash_is B bob "Bob-Pass-2"
}
ok "B's store fails: A gets the error code and keeps the change queued; it arrives once the store is back" t_store_fail

# B's listener takes a new MEPP key on SIGHUP, without a restart: A's
# old key is then refused (5, logged 8203 on B), the new one works.
t_mepp_rekey() {
	sed -i 's/legacy-secret-key-1/legacy-secret-key-2/' "$tmp/B/psync.conf"
	kill -HUP "$pid_b"
	wait_for 10 sh -c "[ \$(grep -c 'reloaded' '$tmp/B/log') -ge 1 ]" || return 1
	sleep 0.5
	echo "Mepp-Pass-2" | ctl A send carol --peer winb >/dev/null
	wait_for 10 grep -q "8203.*wina" "$tmp/B/log" ||
	{ echo "B did not refuse the old key"; tail -n 5 "$tmp/B/log"; return 1; }
	hash_is B carol "Mepp-Pass-2" && { echo "the old key still works"; return 1; }
	sed -i 's/legacy-secret-key-1/legacy-secret-key-2/' "$tmp/A/psync.conf"
	kill -HUP "$pid_a"
	wait_for 10 hash_is B carol "Mepp-Pass-2"
}
ok "a MEPP listener's key changes on SIGHUP: the old key is refused, the new one delivers" t_mepp_rekey

t_not_running() {
	stop A
	ctl A status >"$tmp/r" 2>&1 && return 1
	grep -q "psyncd is not running" "$tmp/r" &&
	grep -q "psyncd stopped (exit 0)" "$tmp/A/log"
}
ok "SIGTERM stops psyncd with exit 0, and psyncctl says when it is not running" t_not_running

[ "$failed" -eq 0 ]
