# Sourced by tests/windows/run.sh: psyncpwd.dll as LSASS sees it.
# A loader (lsa-loader.exe) plays LSASS: it loads the DLL, calls
# InitializeChangeNotify, PasswordFilter and PasswordChangeNotify with
# ASCII, UTF-16 surrogate pairs, empty and maximum-length passwords. Each
# call leaves exactly one sealed spool file that the agent reads back; no
# cleartext is anywhere on disk; the time of each call is recorded.

dll=$WIN_BUILD/psyncpwd.dll
spool=$WINEPREFIX/drive_c/ProgramData/psync/spool

t_exports() {
	x86_64-w64-mingw32-objdump -p "$dll" >"$WINEPREFIX/dll.dump" || return 1
	for f in InitializeChangeNotify PasswordFilter PasswordChangeNotify; do
		grep -Eq "^[[:space:]]+\[ *[0-9]+\] $f\$" "$WINEPREFIX/dll.dump" ||
		{ echo "export $f missing or decorated"; return 1; }
	done
}
w_check "the DLL exports InitializeChangeNotify, PasswordFilter and PasswordChangeNotify undecorated" t_exports

t_imports() {
	imports=$(sed -n 's/^[[:space:]]*DLL Name: //p' "$WINEPREFIX/dll.dump" |
	    tr 'A-Z' 'a-z' | sort -u | tr '\n' ' ')
	echo "imports: $imports"
	[ -n "$imports" ] || return 1
	for i in $imports; do
		case $i in
		kernel32.dll|advapi32.dll|bcrypt.dll) ;;
		*) echo "forbidden import $i"; return 1 ;;
		esac
	done
}
w_check "the DLL imports only kernel32, advapi32 and bcrypt" t_imports

# OpenSSL is inside the agent: it needs no DLL that Windows does not ship.
t_agent_imports() {
	x86_64-w64-mingw32-objdump -p "$WIN_BUILD/psync-agent.exe" |
	    sed -n 's/^[[:space:]]*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u >"$WINEPREFIX/agent.imports"
	cat "$WINEPREFIX/agent.imports"
	[ -s "$WINEPREFIX/agent.imports" ] &&
	! grep -Ev '^(kernel32|advapi32|crypt32|netapi32|user32|ws2_32|bcrypt|msvcrt)\.dll$' \
	    "$WINEPREFIX/agent.imports"
}
w_check "the agent links OpenSSL statically: it imports only DLLs that Windows ships" t_agent_imports

t_init() {
	agent config init dc1 && [ -s "$WINEPREFIX/drive_c/ProgramData/psync/spool.key" ] &&
	[ -d "$spool" ]
}
w_check "psync-agent config init makes the spool directory and the DPAPI-protected spool key" t_init

# Test passwords, distinctive enough to be searched for on disk.
pw_ascii='Win-Ascii-Secret-7731'
pw_surr='Surr-😀-𝄞-Secret-4420'
hx_ascii=$(utf16hex "$pw_ascii")
hx_surr=$(utf16hex "$pw_surr")

t_loader() {
	wine "$WIN_BUILD/lsa-loader.exe" "$dll" "ascii=hex:$hx_ascii" \
	    "surrogates=hex:$hx_surr" "empty=empty" "maxlen=rep:32767:0078" \
	    >"$WINEPREFIX/loader.out" 2>&1
	_rc=$?
	cat "$WINEPREFIX/loader.out"
	[ $_rc -eq 0 ] && grep -q '^init ok' "$WINEPREFIX/loader.out" &&
	[ "$(grep -c '^call ' "$WINEPREFIX/loader.out")" -eq 4 ]
}
w_check "the loader loads the DLL, InitializeChangeNotify succeeds, PasswordFilter allows and PasswordChangeNotify returns for each of 4 passwords" t_loader

t_one_file_each() {
	ls "$spool"
	[ "$(ls "$spool" | grep -c '\.chg$')" -eq 4 ] &&
	[ "$(ls "$spool" | grep -vc '\.chg$')" -eq 0 ]
}
w_check "one spool file per call, no temporary file left" t_one_file_each

# The agent opens each file with the spool key and reads the user and the
# password's length in UTF-8 (never the password itself).
t_sealed() {
	agent spool >"$WINEPREFIX/spool.out" 2>&1
	_rc=$?
	cat "$WINEPREFIX/spool.out"
	[ $_rc -eq 0 ] &&
	grep -q "user ascii .* password ${#pw_ascii} bytes" "$WINEPREFIX/spool.out" &&
	grep -q "user surrogates .* password $(printf '%s' "$pw_surr" | wc -c) bytes" \
	    "$WINEPREFIX/spool.out" &&
	grep -q "user empty .* password 0 bytes" "$WINEPREFIX/spool.out" &&
	grep -q "user maxlen .* password 32767 bytes" "$WINEPREFIX/spool.out"
}
w_check "each file opens with the spool key: user and UTF-8 length right, surrogate pairs as 4-byte UTF-8" t_sealed

# Search every file of the prefix (the spool, the registry, logs) and the
# build's outputs for the passwords in UTF-8 and UTF-16LE.
t_no_cleartext() {
	python3 - "$WINEPREFIX" "$WIN_BUILD" "$pw_ascii" "$pw_surr" <<'EOF'
import os, sys
roots = sys.argv[1:3]
needles = []
for pw in sys.argv[3:]:
    needles += [pw.encode("utf-8"), pw.encode("utf-16-le")]
found = 0
for root in roots:
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
EOF
}
w_check "no cleartext password anywhere in the wine prefix or the build directory" t_no_cleartext

t_tamper() {
	_f=$(ls "$spool"/*.chg | head -n 1)
	cp "$_f" "$WINEPREFIX/saved.chg"
	# Flip one byte of the ciphertext: authentication must fail.
	python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,"rb").read()); b[30]^=1; open(p,"wb").write(b)' "$_f"
	agent spool >"$WINEPREFIX/spool2.out" 2>&1
	_rc=$?
	cat "$WINEPREFIX/spool2.out"
	cp "$WINEPREFIX/saved.chg" "$_f"
	[ $_rc -ne 0 ] && grep -q 'sealed with another key, or damaged' "$WINEPREFIX/spool2.out"
}
w_check "a spool file changed by one bit is refused (AES-256-GCM)" t_tamper

# Time inside PasswordChangeNotify: recorded for BENCHMARKS.md, not judged.
t_times() {
	tr -d '\r' <"$WINEPREFIX/loader.out" |
	    sed -n 's/^call \([^ ]*\) units=\([0-9]*\) us=\([0-9]*\) .*/\1 \2 \3/p' \
	    >"$WIN_BUILD/notify-times.txt"
	cat "$WIN_BUILD/notify-times.txt"
	[ "$(wc -l <"$WIN_BUILD/notify-times.txt")" -eq 4 ]
}
w_check "the time of each PasswordChangeNotify call is recorded" t_times
sed 's/^/# PasswordChangeNotify: user, UTF-16 units, microseconds: /' \
    "$WIN_BUILD/notify-times.txt" 2>/dev/null

rm -f "$spool"/*.chg

# What the DLL cannot seal it drops, and LSASS goes on: a password that is
# not valid UTF-16 (an unpaired surrogate), and any change before the
# agent made the spool key.
t_unpaired() {
	rm -f "$spool"/*.chg
	wine "$WIN_BUILD/lsa-loader.exe" "$dll" "lone=hex:0061d8000062" &&
	[ "$(ls "$spool" | grep -c '\.chg$')" -eq 0 ]
}
w_check "a password with an unpaired surrogate: the call returns, nothing is spooled" t_unpaired

t_no_key() {
	rm -f "$spool"/*.chg
	_k=$WINEPREFIX/drive_c/ProgramData/psync/spool.key
	mv "$_k" "$_k.away" &&
	wine "$WIN_BUILD/lsa-loader.exe" "$dll" "early=hex:$hx_ascii"
	_rc=$?
	_n=$(ls "$spool" | grep -c '\.chg$')
	mv "$_k.away" "$_k"
	[ $_rc -eq 0 ] && [ "$_n" -eq 0 ]
}
w_check "no spool key yet: InitializeChangeNotify still succeeds, the call returns, nothing is spooled" t_no_key
