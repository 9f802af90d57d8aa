#!/bin/sh
# The Windows agent's tests, on Debian under wine (doc/windows.md): builds
# psyncpwd.dll, psync-agent.exe and the MSI with mingw-w64 and wixl, then
#   dll.sh   a loader that plays LSASS calls the DLL's exports;
#   cli.sh   the configuration commands refuse what the agent cannot use;
#   e2e.sh   the agent, in console mode on a test host, delivers to psyncd
#            on another test host (needs the normal build's psyncd);
#   msi.sh   the MSI installs under wine and registers the service.
# Prints one TAP stream (plan at the end). Skips when mingw-w64 or wine is
# missing (tools/deps windows installs them).
# Also fuzzes the spool record codec with the host's clang (FUZZ_RUNS).
# Environment: top_builddir (the normal build, default _build/normal),
# WIN_BUILD (default _build/windows), PSYNC_WIN_KEEP=1 keeps the wine prefix.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
: "${top_builddir:=$top/_build/normal}"
[ -d "$top_builddir" ] && top_builddir=$(cd "$top_builddir" && pwd)
WIN_BUILD=${WIN_BUILD:-$top/_build/windows}
export top top_builddir WIN_BUILD

for t in x86_64-w64-mingw32-gcc wine wineboot wineserver; do
	if ! command -v "$t" >/dev/null 2>&1; then
		echo "1..0 # SKIP $t is missing (tools/deps windows)"
		exit 0
	fi
done

mkdir -p "$WIN_BUILD"
if ! make -s -C "$top/windows" -f windows.mk O="$WIN_BUILD" all msi \
    >"$WIN_BUILD/make.out" 2>&1; then
	tail -n 30 "$WIN_BUILD/make.out" | sed 's/^/# /'
	echo "not ok 1 - the Windows agent builds with mingw-w64"
	echo "1..1"
	exit 1
fi

export WINEDEBUG=-all WINEARCH=win64
WINEPREFIX=$(mktemp -d /tmp/psync-wine-XXXXXX)
export WINEPREFIX
W_N=0
W_FAILED=0
win_cleanup() {
	wineserver -k >/dev/null 2>&1
	wineserver -w >/dev/null 2>&1
	if [ -n "${PSYNC_WIN_KEEP:-}" ]; then
		echo "# kept $WINEPREFIX"
	else
		rm -rf "$WINEPREFIX"
	fi
}
trap win_cleanup EXIT
trap 'exit 1' INT TERM HUP

w_ok() { W_N=$((W_N + 1)); echo "ok $W_N - $1"; }
w_not_ok() {
	W_N=$((W_N + 1))
	W_FAILED=$((W_FAILED + 1))
	echo "not ok $W_N - $1"
	[ -s "$WINEPREFIX/.out" ] && sed 's/^/# /' "$WINEPREFIX/.out"
	return 0
}
# w_check DESCRIPTION COMMAND...: ok when the command succeeds.
# The description stays in w_check's own $1, which no test can overwrite.
w_check() {
	if w_check_run "$@"; then
		w_ok "$1"
	else
		w_not_ok "$1"
	fi
}
w_check_run() { shift; "$@" >"$WINEPREFIX/.out" 2>&1; }
# w_wait SECONDS COMMAND...: poll until the command succeeds.
w_wait() {
	_t=$(($1 * 10))
	shift
	while [ $_t -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
		_t=$((_t - 1))
	done
	"$@"
}
w_skip() { W_N=$((W_N + 1)); echo "ok $W_N - $1 # SKIP $2"; }

# The password's UTF-16 code units in hex, as the loader takes them.
utf16hex() { printf '%s' "$1" | iconv -f UTF-8 -t UTF-16BE | od -An -v -tx1 | tr -d ' \n'; }

agent() { wine "$WIN_BUILD/psync-agent.exe" "$@"; }

if ! wineboot --init >"$WIN_BUILD/wineboot.out" 2>&1; then
	echo "not ok 1 - a wine prefix is created"
	sed 's/^/# /' "$WIN_BUILD/wineboot.out"
	echo "1..1"
	exit 1
fi

# The spool record codec, fuzzed on this machine (it is plain C).
t_fuzz() {
	_fw=$(mktemp -d)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Wall -Wextra -Werror \
	    -I"$top/windows" "$top/tests/windows/fuzz_spoolrec.c" \
	    "$top/windows/spoolrec.c" -o "$WIN_BUILD/fuzz_spoolrec" &&
	(cd "$_fw" && "$WIN_BUILD/fuzz_spoolrec" -runs="${FUZZ_RUNS:-20000}" \
	    "$_fw" "$top/tests/windows/corpus" >"$_fw/out" 2>&1 ||
	    { tail -n 30 "$_fw/out"; exit 1; })
	_r=$?
	rm -rf "$_fw"
	return $_r
}
if command -v clang >/dev/null 2>&1; then
	w_check "the spool record codec survives ${FUZZ_RUNS:-20000} libFuzzer inputs and round-trips what it parses" t_fuzz
else
	w_skip "the spool record codec survives libFuzzer inputs" "clang is missing"
fi

. "$top/tests/windows/dll.sh"
. "$top/tests/windows/cli.sh"
. "$top/tests/windows/e2e.sh"
. "$top/tests/windows/msi.sh"

echo "1..$W_N"
[ "$W_FAILED" -eq 0 ]
