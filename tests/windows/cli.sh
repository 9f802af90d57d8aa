# Sourced by tests/windows/run.sh: psync-agent's configuration commands
# refuse what the agent could not use, and leave agent.conf as it was.

conf=$WINEPREFIX/drive_c/ProgramData/psync/agent.conf
keys=$WINEPREFIX/drive_c/ProgramData/psync/keys
# agent.conf is a Windows text file (CRLF).
conf_lines() { tr -d '\r' <"$conf"; }
cli() { agent "$@" >"$WINEPREFIX/cli.out" 2>&1; _r=$?; tr -d '\r' <"$WINEPREFIX/cli.out"; return $_r; }

t_cli_peer() {
	cli config add-peer unix1 192.0.2.20 6678 &&
	cli config show | grep -qx 'peer unix1 192.0.2.20 6678' &&
	cp "$conf" "$WINEPREFIX/conf.saved" &&
	! cli config add-peer unix2 192.0.2.21 70000 &&
	! cli config add-peer 'bad name' 192.0.2.21 &&
	cmp -s "$conf" "$WINEPREFIX/conf.saved" &&
	cli config remove-peer unix1 && ! grep -q unix1 "$conf"
}
w_check "config add-peer stores a peer and refuses a bad port or name, leaving agent.conf as it was" t_cli_peer

t_cli_key() {
	_k=$WINEPREFIX/k
	printf '%064x\n' 7 >"$_k.good"
	printf '%063x\n' 7 >"$_k.short"
	printf 'zz%062x\n' 7 >"$_k.nothex"
	cli config set-key unix1 "$(winepath -w "$_k.good")" &&
	[ "$(cat "$keys/unix1.key")" = "$(cat "$_k.good")" ] &&
	! cli config set-key unix1 "$(winepath -w "$_k.short")" &&
	! cli config set-key unix1 "$(winepath -w "$_k.nothex")" &&
	[ "$(cat "$keys/unix1.key")" = "$(cat "$_k.good")" ]
	_r=$?
	rm -f "$_k".* "$keys/unix1.key"
	return $_r
}
w_check "config set-key takes 64 hex digits and refuses anything else, keeping the stored key" t_cli_key

t_cli_deny() {
	cli config deny Administrator && cli config deny administrator &&
	[ "$(conf_lines | grep -ci '^deny administrator$')" -eq 1 ] &&
	cli config allow ADMINISTRATOR && ! conf_lines | grep -qi '^deny' &&
	! cli config set retry-min 0 && ! cli config set retry-min x &&
	! cli config set nosuch 5 && cli config set retry-min 3 &&
	conf_lines | grep -qx 'retry-min 3'
}
w_check "config deny/allow ignore case and duplicates; config set refuses zero, text and unknown settings" t_cli_deny

t_cli_groups() {
	cli config deny-group 'Backup Operators' &&
	cli config deny-group 'backup operators' &&
	[ "$(conf_lines | grep -c '^deny-group Backup Operators$')" -eq 1 ] &&
	cli config show | grep -qx 'deny-group Backup Operators' &&
	! cli config deny-group ' Padded' &&
	cli config allow-group 'BACKUP OPERATORS' && ! conf_lines | grep -q '^deny-group'
}
w_check "config deny-group keeps a name with spaces once (any case), refuses a padded one; allow-group removes it" t_cli_groups
