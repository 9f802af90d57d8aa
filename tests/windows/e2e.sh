# Sourced by tests/windows/run.sh: the agent delivers to psyncd.
# Host w (198.51.100.1) plays the domain controller: the agent runs there
# in console mode under wine (its wineserver inside w's network namespace,
# since wine's sockets are made by the server), and lsa-loader.exe plays
# LSASS calling psyncpwd.dll. Host b (198.51.100.2) runs the psyncd of the
# normal build with the agent as a receive-only peer "dc1". A user's new
# password is proved by a PAM login on b.

. "$top/tests/e2e/lib.sh"

e2e_skip_all() {
	for _d in "the agent delivers a change and the user logs in on b with it through PAM" \
	    "a change made while the agent is stopped is delivered when it starts" \
	    "an old temporary file of an unfinished write is removed at start, a recent one kept" \
	    "three changes while b is down: delivered afterwards with a doubling back-off, the last wins" \
	    "excluded accounts (deny list, machine account, krbtgt) and a password too long for psync: nothing sent" \
	    "a user b does not have: 8201 in the agent's log, the change given up" \
	    "deny-group: a member of a denied group is not sent (12294), others are" \
	    "two peers: the change stays in the spool until both have answered" \
	    "a wrong key: 8203 on both sides (the agent's in the event log), nothing applied, the change kept" \
	    "a change no peer took expires after the configured time and leaves the spool" \
	    "no password of these changes in clear on disk: wine prefix, spool, logs, psyncd's state"; do
		w_skip "$_d" "$1"
	done
}

if [ "$(id -u)" -ne 0 ] || ! command -v ip >/dev/null || ! command -v unshare >/dev/null; then
	e2e_skip_all "needs root, ip and unshare"
elif [ ! -x "$top_builddir/psyncd/psyncd" ] || [ ! -x "$top_builddir/tests/pam-auth" ]; then
	e2e_skip_all "needs the normal build's psyncd and tests/pam-auth in $top_builddir"
else

wineserver -k >/dev/null 2>&1
wineserver -w >/dev/null 2>&1
e2e_init || { echo "Bail out! cannot create the switch"; exit 1; }
# run.sh's trap cleans the wine prefix; this one adds the test hosts.
trap 'e2e_cleanup; win_cleanup' EXIT
e2e_host w 1 && e2e_psync_host b 2 && e2e_psync_host c 3 ||
	{ echo "Bail out! cannot create test hosts"; exit 1; }
# The agent's own lines start with the date; wine's eventlog channel
# repeats the warnings and errors.
agent_log=$E2E_WORK/agent.log
: >"$agent_log"

# The wineserver of the prefix lives in w: every wine program below uses it.
e2e_bg w "$E2E_WORK/wineserver.log" wineserver -f -p
ws_pid=$E2E_PID
wrun() { e2e_run w wine "$@"; }
wagent() { e2e_run w wine "$WIN_BUILD/psync-agent.exe" "$@"; }
# One change as LSASS would report it: USER PASSWORD.
notify() {
	e2e_run w wine "$WIN_BUILD/lsa-loader.exe" "$dll" "$1=hex:$(utf16hex "$2")" >/dev/null
}
spool_count() { ls "$spool" 2>/dev/null | grep -c '\.chg$'; }
agent_start() {
	# wine shows what reaches the event log on its eventlog channel.
	e2e_bg w "$agent_log" env WINEDEBUG=-all,+eventlog \
	    wine "$WIN_BUILD/psync-agent.exe" run -v
	agent_pid=$E2E_PID
	e2e_wait 20 grep -q 'ready: node dc1' "$agent_log"
}
agent_stop() {
	# Ctrl-C is what a console agent understands; TERM ends wine itself.
	e2e_kill "$agent_pid" INT
}

# b and c are UNIX hosts with psyncd; c joins the agent's peers later.
for h in b c; do
	"$top_builddir/psyncctl/psyncctl" keygen "$E2E_WORK/$h/etc/psync/keys/dc1.key" >/dev/null
	e2e_conf $h <<CONF
peer "dc1" {
	address = "$E2E_NET.1"
	key-file = "/etc/psync/keys/dc1.key"
	direction = receive
}
CONF
	for u in alice:2001 bob:2002 carol:2003; do
		e2e_user $h "${u%%:*}" "${u#*:}" "Old-${u%%:*}-Pw1"
	done
done
e2e_psyncd_start b || { echo "Bail out! psyncd did not start on b"; exit 1; }

# Configure the agent as an administrator would.
cp "$E2E_WORK/b/etc/psync/keys/dc1.key" "$E2E_WORK/w/b.key"
wagent config add-peer b "$E2E_NET.2" 6678 >/dev/null &&
wagent config set-key b "Z:$E2E_WORK/w/b.key" >/dev/null &&
wagent config set retry-min 1 && wagent config set retry-max 2 &&
wagent config set timeout 5 && wagent config deny bob ||
	{ echo "Bail out! cannot configure the agent"; exit 1; }
rm -f "$E2E_WORK/w/b.key"
agent_start || { echo "Bail out! the agent did not start"; cat "$agent_log"; exit 1; }

t_deliver() {
	notify alice 'Win-Alice-Pw2' &&
	e2e_wait 30 e2e_login b alice 'Win-Alice-Pw2' &&
	! e2e_login b alice 'Old-alice-Pw1' &&
	e2e_wait 10 sh -c "[ \$(ls '$spool' | grep -c '\\.chg\$') -eq 0 ]" &&
	grep -q 'delivered to peer b' "$agent_log" ||
	{ tail -n 20 "$agent_log"; tail -n 20 "$(e2e_log b)"; return 1; }
}
w_check "the agent delivers a change and the user logs in on b with it through PAM" t_deliver

t_agent_down() {
	agent_stop
	notify carol 'While-Agent-Stopped-3' &&
	[ "$(spool_count)" -eq 1 ] &&
	! e2e_login b carol 'While-Agent-Stopped-3' &&
	agent_start &&
	e2e_wait 30 e2e_login b carol 'While-Agent-Stopped-3' ||
	{ tail -n 20 "$agent_log"; return 1; }
}
w_check "a change made while the agent is stopped is delivered when it starts" t_agent_down

# LSASS stopped between the DLL's write and its rename: a .tmp stays. The
# agent removes such files when they are old, never one being written.
t_stale_tmp() {
	agent_stop
	printf 'partial' >"$spool/00000000000000aa-00000001-00000001.tmp" &&
	touch -d '1 hour ago' "$spool/00000000000000aa-00000001-00000001.tmp" &&
	printf 'partial' >"$spool/00000000000000bb-00000002-00000002.tmp" &&
	agent_start &&
	e2e_wait 10 sh -c "[ ! -e '$spool/00000000000000aa-00000001-00000001.tmp' ]" &&
	[ -e "$spool/00000000000000bb-00000002-00000002.tmp" ] &&
	grep -q 'removed 00000000000000aa-00000001-00000001.tmp, a change the notification package never finished' \
	    "$agent_log" || { ls -la "$spool"; return 1; }
	rm -f "$spool/00000000000000bb-00000002-00000002.tmp"
}
w_check "an old temporary file of an unfinished write is removed at start, a recent one kept" t_stale_tmp

t_peer_down() {
	e2e_psyncd_stop b
	notify alice 'Down-Alice-One-4' && notify alice 'Down-Alice-Two-5' &&
	notify alice 'Down-Alice-Three-6' || return 1
	# The back-off doubles from retry-min (1 s) up to retry-max (2 s).
	e2e_wait 20 grep -q 'peer b: next try in 2 s' "$agent_log" || return 1
	grep '^20.*peer b: next try' "$agent_log" | head -n 2 | tr '\n' ' ' |
	    grep -q 'in 1 s.*in 2 s' || { grep 'next try' "$agent_log"; return 1; }
	e2e_psyncd_start b &&
	e2e_wait 30 e2e_login b alice 'Down-Alice-Three-6' &&
	! e2e_login b alice 'Down-Alice-One-4' &&
	! e2e_login b alice 'Down-Alice-Two-5' &&
	[ "$(grep -c '^20.*for alice superseded by change' "$agent_log")" -eq 2 ] &&
	e2e_wait 10 sh -c "[ \$(ls '$spool' | grep -c '\\.chg\$') -eq 0 ]" ||
	{ tail -n 30 "$agent_log"; return 1; }
}
w_check "three changes while b is down: delivered afterwards with a doubling back-off, the last wins" t_peer_down

t_excluded() {
	notify bob 'Denied-Bob-Pw7' && notify 'DC01$' 'Machine-Pw-8' &&
	notify krbtgt 'Krbtgt-Pw-9' &&
	# 600 bytes: more than any psync layer takes (lib/change/change.c).
	notify carol "$(printf 'Long-%0595d' 0)" &&
	# A change after them: once it is delivered, they were handled.
	notify carol 'After-Excluded-10' &&
	e2e_wait 30 e2e_login b carol 'After-Excluded-10' || return 1
	grep -q '12294: change .* for bob not sent: user refused by policy (in the deny list)' \
	    "$agent_log" &&
	grep -q 'warn:eventlog:ReportEventW L"12294: change' "$agent_log" &&
	grep -q 'for DC01\$ not sent: a machine account' "$agent_log" &&
	grep -q 'for krbtgt not sent: the Kerberos service account' "$agent_log" &&
	grep -q '^20.*for carol not sent: code 9 (bad password)' "$agent_log" &&
	! grep -Eq 'bob|DC01|krbtgt' "$(e2e_log b)" &&
	e2e_login b bob 'Old-bob-Pw1' &&
	e2e_wait 10 sh -c "[ \$(ls '$spool' | grep -c '\\.chg\$') -eq 0 ]" ||
	{ grep -E 'bob|DC01|krbtgt' "$agent_log" "$(e2e_log b)"; return 1; }
}
w_check "excluded accounts (deny list, machine account, krbtgt) and a password too long for psync: nothing sent" t_excluded

t_no_user() {
	notify dave 'Nobody-Dave-Pw-13' &&
	e2e_wait 30 grep -q '8201: user dave does not exist on peer b; change .* given up' \
	    "$agent_log" &&
	grep -q 'warn:eventlog:ReportEventW L"8201: user dave' "$agent_log" &&
	e2e_wait 10 sh -c "[ \$(ls '$spool' | grep -c '\\.chg\$') -eq 0 ]" ||
	{ grep dave "$agent_log" "$(e2e_log b)"; return 1; }
}
w_check "a user b does not have: 8201 in the agent's log, the change given up" t_no_user

# Denied groups. wine answers NetUserGetLocalGroups with "Administrators"
# for every user, so with that group denied nothing goes, and with another
# group denied everything goes; a real DC answers per user (doc/windows.md).
t_groups() {
	agent_stop
	wagent config deny-group 'Backup Operators' && agent_start &&
	notify alice 'Group-Alice-Pw-15' &&
	e2e_wait 30 e2e_login b alice 'Group-Alice-Pw-15' || return 1
	agent_stop
	wagent config deny-group Administrators && agent_start &&
	notify carol 'Group-Carol-Pw-16' &&
	e2e_wait 30 grep -q '^20.*12294: change .* for carol not sent: user refused by policy (member of the denied group Administrators)' \
	    "$agent_log" &&
	! e2e_login b carol 'Group-Carol-Pw-16' &&
	[ "$(spool_count)" -eq 0 ] || { tail -n 10 "$agent_log"; return 1; }
	agent_stop
	wagent config allow-group Administrators &&
	wagent config allow-group 'Backup Operators' && agent_start
}
w_check "deny-group: a member of a denied group is not sent (12294), others are" t_groups

# A second peer, c, down at first: the change stays in the spool after b
# answered, until c answers too.
t_two_peers() {
	cp "$E2E_WORK/c/etc/psync/keys/dc1.key" "$E2E_WORK/w/c.key" &&
	wagent config add-peer c "$E2E_NET.3" 6678 >/dev/null &&
	wagent config set-key c "Z:$E2E_WORK/w/c.key" >/dev/null || return 1
	rm -f "$E2E_WORK/w/c.key"
	agent_stop
	agent_start || return 1
	notify alice 'Two-Peers-Alice-14' &&
	e2e_wait 30 e2e_login b alice 'Two-Peers-Alice-14' || return 1
	e2e_wait 20 grep -q 'peer c: next try' "$agent_log" &&
	[ "$(spool_count)" -eq 1 ] || { echo "spool: $(spool_count)"; return 1; }
	e2e_psyncd_start c &&
	e2e_wait 30 e2e_login c alice 'Two-Peers-Alice-14' &&
	e2e_wait 10 sh -c "[ \$(ls '$spool' | grep -c '\\.chg\$') -eq 0 ]" ||
	{ tail -n 20 "$agent_log"; return 1; }
}
w_check "two peers: the change stays in the spool until both have answered" t_two_peers

t_wrong_key() {
	"$top_builddir/psyncctl/psyncctl" keygen "$E2E_WORK/b/etc/psync/keys/dc1.key.new" >/dev/null &&
	mv "$E2E_WORK/b/etc/psync/keys/dc1.key.new" "$E2E_WORK/b/etc/psync/keys/dc1.key" &&
	e2e_psyncd_stop b && e2e_psyncd_start b || return 1
	notify carol 'Wrong-Key-Carol-11' &&
	e2e_wait 30 sh -c "grep -q '8203: secret key mismatch' '$agent_log' &&
	    grep -q '8203' '$(e2e_log b)'" || { tail -n 20 "$agent_log"; tail "$(e2e_log b)"; return 1; }
	grep '8203' "$agent_log" | grep -q 'peer b' &&
	grep -q 'warn:eventlog:ReportEventW L"8203: secret key mismatch' "$agent_log" &&
	grep '8203' "$(e2e_log b)" | grep -q 'key mismatch' &&
	e2e_login b carol 'After-Excluded-10' &&
	! e2e_login b carol 'Wrong-Key-Carol-11' &&
	[ "$(spool_count)" -eq 1 ] ||
	{ grep 8203 "$agent_log" "$(e2e_log b)"; return 1; }
}
w_check "a wrong key: 8203 on both sides (the agent's in the event log), nothing applied, the change kept" t_wrong_key

# The change b refuses to take (wrong key) expires: restart with expire 2 s.
t_expire() {
	agent_stop
	wagent config set expire 2 || return 1
	sleep 2
	agent_start &&
	e2e_wait 30 grep -q 'change .* for carol expired after 2 s without an answer from b; given up' \
	    "$agent_log" &&
	[ "$(spool_count)" -eq 0 ] || { tail -n 10 "$agent_log"; return 1; }
}
w_check "a change no peer took expires after the configured time and leaves the spool" t_expire

agent_stop

# After all that: no password of these tests in clear on either side's
# disk (the wine prefix with the spool, the agent's and psyncd's logs,
# psyncd's state and /etc), in UTF-8 or UTF-16.
t_no_cleartext_e2e() {
	python3 - "$WINEPREFIX" "$E2E_WORK" Win-Alice-Pw2 While-Agent-Stopped-3 \
	    Down-Alice-One-4 Down-Alice-Two-5 Down-Alice-Three-6 Denied-Bob-Pw7 \
	    Machine-Pw-8 Krbtgt-Pw-9 After-Excluded-10 Wrong-Key-Carol-11 \
	    Nobody-Dave-Pw-13 Two-Peers-Alice-14 Group-Alice-Pw-15 Group-Carol-Pw-16 <<'PY'
import os, sys
needles = []
for pw in sys.argv[3:]:
    needles += [pw.encode(), pw.encode("utf-16-le")]
found = 0
for root in sys.argv[1:3]:
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            try:
                data = open(p, "rb").read()
            except OSError:
                continue
            for n in needles:
                if n in data:
                    print("cleartext in", p)
                    found += 1
sys.exit(1 if found else 0)
PY
}
w_check "no password of these changes in clear on disk: wine prefix, spool, logs, psyncd's state" t_no_cleartext_e2e

e2e_kill "$ws_pid"
e2e_cleanup
trap win_cleanup EXIT
rm -f "$spool"/*.chg

fi
