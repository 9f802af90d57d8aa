# Sourced by tests/windows/run.sh: the MSI, and psync-agent install and
# uninstall, under wine.

msi=$WIN_BUILD/psync-agent.msi
lsa='HKLM\SYSTEM\CurrentControlSet\Control\Lsa'
svckey='HKLM\SYSTEM\CurrentControlSet\Services\psync-agent'
pdata=$WINEPREFIX/drive_c/ProgramData/psync
sys32=$WINEPREFIX/drive_c/windows/system32
reg_q() {
	wine reg query "$@" >"$WINEPREFIX/reg.out" 2>/dev/null
	_r=$?
	tr -d '\r' <"$WINEPREFIX/reg.out"
	return $_r
}
packages() { reg_q "$lsa" /v 'Notification Packages' | sed -n 's/.*REG_MULTI_SZ *//p'; }

wineserver -k >/dev/null 2>&1
wineserver -w >/dev/null 2>&1
# A domain controller has notification packages already: ours goes beside.
rm -rf "$pdata" "$sys32/psyncpwd.dll"
wine reg add "$lsa" /v 'Notification Packages' /t REG_MULTI_SZ /d scecli /f >/dev/null 2>&1

t_msi_tables() {
	msiinfo export "$msi" File >"$WINEPREFIX/msi.file" &&
	msiinfo export "$msi" ServiceInstall >"$WINEPREFIX/msi.svc" &&
	msiinfo export "$msi" CustomAction >"$WINEPREFIX/msi.ca" &&
	msiinfo export "$msi" Directory >"$WINEPREFIX/msi.dir" || return 1
	cat "$WINEPREFIX"/msi.*
	grep -q 'psyncpwd.dll' "$WINEPREFIX/msi.file" &&
	grep -q 'psync-agent.exe' "$WINEPREFIX/msi.file" &&
	grep -q 'System64Folder' "$WINEPREFIX/msi.dir" &&
	grep -q 'psync-agent.*service' "$WINEPREFIX/msi.svc" &&
	grep -q "AgentInstall.*install" "$WINEPREFIX/msi.ca"
}
w_check "the MSI (wixl) holds the DLL for the system directory, the agent, its service and the install action" t_msi_tables

t_msi_install() {
	wine msiexec /i "$(winepath -w "$msi")" /qn /l*v "$(winepath -w "$WINEPREFIX/msi-install.log")"
	_rc=$?
	[ $_rc -eq 0 ] || { echo "msiexec: $_rc"; tr -d '\0\r' <"$WINEPREFIX/msi-install.log" | tail -n 30; return 1; }
	[ -f "$sys32/psyncpwd.dll" ] &&
	[ -f "$WINEPREFIX/drive_c/Program Files/psync/psync-agent.exe" ]
}
w_check "msiexec /i installs it under wine: the DLL in system32, the agent in Program Files" t_msi_install

t_msi_service() {
	reg_q "$svckey" >"$WINEPREFIX/svc.reg" || return 1
	cat "$WINEPREFIX/svc.reg"
	grep -Eq 'ImagePath.*"C:\\Program Files\\psync\\psync-agent\.exe" service' "$WINEPREFIX/svc.reg" &&
	grep -Eq 'Start +REG_DWORD +0x2' "$WINEPREFIX/svc.reg" &&
	wine "$WIN_BUILD/psync-agent.exe" status | tr -d '\r' | grep -q 'service: installed'
}
w_check "the MSI registers the service psync-agent (automatic start, quoted path, run as 'service')" t_msi_service

t_msi_package() {
	_p=$(packages)
	echo "Notification Packages: $_p"
	echo "$_p" | grep -q 'scecli' && echo "$_p" | grep -q 'psyncpwd'
}
w_check "the MSI adds psyncpwd to the LSA's notification packages, keeping the others" t_msi_package

t_msi_config() {
	[ -d "$pdata/spool" ] && [ -d "$pdata/keys" ] && [ -s "$pdata/spool.key" ]
}
w_check "the MSI made the configuration and spool directories and the spool key" t_msi_config

# Start the installed service, let the DLL hand it a change, stop it. wine
# keeps a service only as long as its wineserver: a persistent one
# (wineserver -p) carries it across the separate wine commands below.
t_msi_run() {
	wine "$WIN_BUILD/psync-agent.exe" config init dc1 >/dev/null || return 1
	wineserver -k >/dev/null 2>&1
	wineserver -w >/dev/null 2>&1
	wineserver -f -p >/dev/null 2>&1 &
	_ws=$!
	wine sc start psync-agent | tr -d '\r' &&
	w_wait 60 grep -q 'ready: node dc1' "$pdata/agent.log" &&
	wine "$WIN_BUILD/lsa-loader.exe" psyncpwd.dll "svcuser=hex:$(utf16hex 'Svc-Pw-12')" >/dev/null &&
	w_wait 60 grep -q 'change .* for svcuser taken from the spool' "$pdata/agent.log" &&
	wine sc stop psync-agent | tr -d '\r' &&
	w_wait 60 grep -q 'stopping: 1 change left in the spool' "$pdata/agent.log"
	_r=$?
	cat "$pdata/agent.log"
	wineserver -k >/dev/null 2>&1
	wait "$_ws" 2>/dev/null
	return $_r
}
w_check "the installed service runs the agent: it takes the DLL's change from the spool and stops on request" t_msi_run

t_msi_uninstall() {
	wine msiexec /x "$(winepath -w "$msi")" /qn || return 1
	_p=$(packages)
	echo "Notification Packages: $_p"
	! reg_q "$svckey" >/dev/null &&
	echo "$_p" | grep -q 'scecli' && ! echo "$_p" | grep -q 'psyncpwd' &&
	[ ! -f "$sys32/psyncpwd.dll" ] && [ -d "$pdata/spool" ]
}
w_check "msiexec /x removes the service, the DLL and psyncpwd from the packages; the spool stays" t_msi_uninstall

# Without the MSI: psync-agent install from a folder holding both files.
t_cmd_install() {
	_d=$WINEPREFIX/drive_c/psync-copy
	mkdir -p "$_d" && cp "$WIN_BUILD/psync-agent.exe" "$WIN_BUILD/psyncpwd.dll" "$_d/" &&
	wine "$_d/psync-agent.exe" install >"$WINEPREFIX/inst.out" 2>&1
	_rc=$?
	tr -d '\r' <"$WINEPREFIX/inst.out"
	wine "$_d/psync-agent.exe" status | tr -d '\r' >"$WINEPREFIX/status.out"
	cat "$WINEPREFIX/status.out"
	[ $_rc -eq 0 ] && grep -q 'reboot' "$WINEPREFIX/inst.out" &&
	grep -q 'notification package: registered' "$WINEPREFIX/status.out" &&
	grep -q 'psyncpwd.dll in the system directory: yes' "$WINEPREFIX/status.out" &&
	grep -q 'service: installed' "$WINEPREFIX/status.out" &&
	packages | grep -q scecli &&
	reg_q "$svckey" | grep -q 'ImagePath.*"C:\\psync-copy\\psync-agent.exe" service'
}
w_check "psync-agent install registers the package and the service (path quoted) and says a reboot loads the DLL" t_cmd_install

# The event log finds the agent's messages: the source is registered with
# the agent as its message file, and the agent holds a message table for
# each event id it uses.
t_eventlog() {
	reg_q 'HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\psync-agent' \
	    >"$WINEPREFIX/evt.reg" || return 1
	cat "$WINEPREFIX/evt.reg"
	grep -q 'EventMessageFile.*C:\\psync-copy\\psync-agent.exe' "$WINEPREFIX/evt.reg" &&
	x86_64-w64-mingw32-windres -i "$WIN_BUILD/psync-agent.exe" -O rc >"$WINEPREFIX/agent.rc" &&
	for id in 0x3e8 0x2009 0x200b 0x3006; do
		grep -q "MessageId = $id\$" "$WINEPREFIX/agent.rc" ||
		{ echo "no message $id"; return 1; }
	done
}
w_check "the event source is registered with the agent's message table (ids 1000, 8201, 8203, 12294)" t_eventlog

# With LSA protection on, status warns that an unsigned DLL will not load.
t_status_ppl() {
	_d=$WINEPREFIX/drive_c/psync-copy
	! wine "$_d/psync-agent.exe" status | tr -d '\r' | grep -q 'RunAsPPL' &&
	wine reg add "$lsa" /v RunAsPPL /t REG_DWORD /d 1 /f >/dev/null 2>&1 &&
	wine "$_d/psync-agent.exe" status | tr -d '\r' >"$WINEPREFIX/status.out"
	_r=$?
	wine reg delete "$lsa" /v RunAsPPL /f >/dev/null 2>&1
	cat "$WINEPREFIX/status.out"
	[ $_r -eq 0 ] && grep -q 'LSA protection (RunAsPPL) is on' "$WINEPREFIX/status.out"
}
w_check "psync-agent status says when LSA protection (RunAsPPL) is on" t_status_ppl

t_cmd_uninstall() {
	wine "$WINEPREFIX/drive_c/psync-copy/psync-agent.exe" uninstall | tr -d '\r' >"$WINEPREFIX/uninst.out"
	cat "$WINEPREFIX/uninst.out"
	grep -q 'reboot' "$WINEPREFIX/uninst.out" &&
	! reg_q "$svckey" >/dev/null && ! packages | grep -q psyncpwd &&
	packages | grep -q scecli
}
w_check "psync-agent uninstall removes them again, keeping the other packages" t_cmd_uninstall
