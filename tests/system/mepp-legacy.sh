#!/bin/sh
# psyncd against a listener that behaves like the legacy UNIX-side one
# (tests/mepp-legacy: 5 to every type 2, 4 to a user it does not know,
# one key-derivation form), on loopback: psyncctl verify tells the right
# key from a wrong one without changing a password and names MEPP's own
# steps; a peer configured for the 8-byte form delivers to a 64-bit
# listener; a type 2 check is judged on the user, never on "temppass",
# even under password rules. Needs root; prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
. "$top_srcdir/tests/lib/nodes.sh"

base=$((20000 + ($$ + 11) % 20000))
port_a=$base port_b=$((base + 1)) port_l=$((base + 2)) port_l8=$((base + 3))
port_mb=$((base + 4))
LEGACY=$top_builddir/tests/mepp-legacy
nodes_begin psyncd-mepp-legacy
pids_extra=
legacy_cleanup() {
	for p in $pids_extra; do kill "$p" 2>/dev/null; done
	nodes_cleanup
}
trap legacy_cleanup EXIT

legacy_peer() { # NAME PORT KEY [FORM]
	printf 'peer "%s" {\n\tprotocol = mepp\n\taddress = "127.0.0.1"\n\tport = %s\n\tkey = "%s"\n\tdirection = send\n%s}\n' \
	    "$1" "$2" "$3" "${4:+	key-derivation = $4
}"
}
mknode A B "$port_a" "$port_b" 0 "$(legacy_peer legacy "$port_l" legacy-secret-key-1)
$(legacy_peer wrongkey "$port_l" legacy-secret-key-X)
$(legacy_peer legacy8 "$port_l8" legacy-secret-key-1 8-byte)
$(legacy_peer legacy8as4 "$port_l8" legacy-secret-key-1)"
"$PSYNCCTL" keygen "$tmp/A/keys/B.key" >/dev/null

"$LEGACY" "$port_l" legacy-secret-key-1 alice >"$tmp/legacy.out" 2>&1 &
pids_extra="$pids_extra $!"
"$LEGACY" -8 "$port_l8" legacy-secret-key-1 alice >"$tmp/legacy8.out" 2>&1 &
pids_extra="$pids_extra $!"

echo "1..6"

t_start() {
	wait_for 5 grep -q ready "$tmp/legacy.out" &&
	wait_for 5 grep -q ready "$tmp/legacy8.out" &&
	"$PSYNCD" -t -c "$tmp/A/psync.conf" >/dev/null && start A
}
ok "node A starts with three MEPP peers on two legacy-like listeners" t_start

t_verify_right() {
	ctl A verify legacy >"$tmp/v" 2>&1 || { cat "$tmp/v"; return 1; }
	# The probe was a type 0 change for a user that cannot exist: 4.
	grep -q "^0 psync:probe/no-such-user 4$" "$tmp/legacy.out" ||
	{ cat "$tmp/legacy.out"; return 1; }
	! grep -q "^0 alice" "$tmp/legacy.out"
}
ok "verify with the right key succeeds against a listener that answers 5 to every type 2, changing no password" t_verify_right

t_verify_wrong() {
	ctl A verify wrongkey >"$tmp/v" 2>&1 && { cat "$tmp/v"; return 1; }
	grep -q "MEPP exchange" "$tmp/v" && ! grep -q "TLS" "$tmp/v" &&
	grep -qi "key" "$tmp/v" || { cat "$tmp/v"; return 1; }
}
ok "verify with a wrong key fails at MEPP's exchange step, not at a TLS handshake" t_verify_wrong

t_verify_form() {
	ctl A verify legacy8 >"$tmp/v" 2>&1 || { cat "$tmp/v"; return 1; }
	ctl A verify legacy8as4 >"$tmp/v" 2>&1 && { cat "$tmp/v"; return 1; }
	grep -q "key-derivation" "$tmp/v" || { cat "$tmp/v"; return 1; }
}
ok "a 64-bit legacy listener: verify passes with key-derivation = 8-byte and names the option when it is missing" t_verify_form

t_deliver8() {
	echo "Alice-Legacy-8" | ctl A send alice --peer legacy8 >/dev/null &&
	wait_for 10 grep -q "^0 alice 0$" "$tmp/legacy8.out" &&
	wait_for 10 grep -q "delivered to peer legacy8" "$tmp/A/log"
}
ok "a change goes to the 64-bit listener in the 8-byte form and is answered 0" t_deliver8

# B listens for MEPP with password rules; a type 2 check for a user it
# has must pass whatever its literal "temppass" looks like.
t_type2_rules() {
	mknode B A "$port_b" "$port_a" 1000 'peer "wina" {
	protocol = mepp
	address = "127.0.0.1"
	key = "legacy-secret-key-1"
	trusted-addresses = { "127.0.0.1" }
	direction = receive
}'
	sed -i "s/^listen mepp {/listen mepp {\n\taddress = \"127.0.0.1\"\n\tport = $port_mb/; s/^\tenabled = false/\tenabled = true/; s/^\tskip-locked = false/\tskip-locked = false\n\tmin-classes = 3\n\tmin-length = 10/" "$tmp/B/psync.conf"
	cp "$tmp/A/keys/B.key" "$tmp/B/keys/A.key"
	"$PSYNCD" -t -c "$tmp/B/psync.conf" >/dev/null && start B || return 1
	# A legacy PAM module's preliminary check, as it sends it.
	"$LEGACY" -c "$port_mb" legacy-secret-key-1 alice >"$tmp/c" 2>&1
	grep -q "^0$" "$tmp/c" || { cat "$tmp/c"; return 1; }
	"$LEGACY" -c "$port_mb" legacy-secret-key-1 root >"$tmp/c" 2>&1
	grep -q "^14$" "$tmp/c" || { cat "$tmp/c"; return 1; }
	! hash_is B alice temppass
}
ok "a type 2 check (\"temppass\") is judged on the user, not on B's password rules" t_type2_rules

[ "$failed" -eq 0 ]
