#!/bin/sh
# Builds OpenSSL for 64-bit Windows (mingw-w64, static libraries only) from
# Debian's own "openssl" source package and caches it, keyed by version, in
#   ${PSYNC_WIN_CACHE:-/var/cache/psync-windows}/openssl-VERSION/{include,lib}
# The source is fetched with "apt-get source" through a private APT
# configuration (deb-src lines in a private directory): /etc/apt is never
# touched. Prints the install prefix on its last line of standard output.
# Usage: windows/build-openssl.sh [VERSION]   (default: the newest that
# downloads among those the deb-src index offers)
set -eu
cache=${PSYNC_WIN_CACHE:-/var/cache/psync-windows}
jobs=${JOBS:-$(nproc)}
want=${1:-}

if [ -n "$want" ] && [ -f "$cache/openssl-$want/.done" ]; then
	echo "$cache/openssl-$want"
	exit 0
fi
# Any cached build will do when no version was asked for.
if [ -z "$want" ]; then
	for d in $(ls -d "$cache"/openssl-* 2>/dev/null | sort -r); do
		if [ -f "$d/.done" ]; then
			echo "$d"
			exit 0
		fi
	done
fi

mkdir -p "$cache"
# One build at a time on this machine; whoever waited finds it cached.
exec 9>"$cache/.lock"
flock 9
if [ -z "$want" ]; then
	for d in $(ls -d "$cache"/openssl-* 2>/dev/null | sort -r); do
		if [ -f "$d/.done" ]; then
			echo "$d"
			exit 0
		fi
	done
fi
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
apt="$work/apt"
mkdir -p "$apt/sources" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/src"

# The mirror of the machine's own sources (first URIs: line or deb line).
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
	sed -n 's/^URIs: *\(http[^ ]*debian\)\/*$/\1/p' | head -n1)
[ -n "$mirror" ] || mirror=$(cat /etc/apt/sources.list 2>/dev/null |
	sed -n 's/^deb  *\(http[^ ]*debian\)\/* .*/\1/p' | head -n1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
security=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
	sed -n 's/^URIs: *\(http[^ ]*debian-security\)\/*$/\1/p' | head -n1)
[ -n "$security" ] || security=http://deb.debian.org/debian-security
key=/usr/share/keyrings/debian-archive-keyring.gpg

cat >"$apt/sources/debian-src.sources" <<SRC
Types: deb-src
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: $key

Types: deb-src
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: $key
SRC
cat >"$apt/apt.conf" <<CONF
Dir::Etc::SourceList "/dev/null";
Dir::Etc::SourceParts "$apt/sources";
Dir::State::Lists "$apt/lists";
Dir::Cache "$apt/cache";
Dir::State::status "/var/lib/dpkg/status";
APT::Sandbox::User "root";
CONF
export APT_CONFIG="$apt/apt.conf"
apt-get update -qq >"$work/update.log" 2>&1 || { cat "$work/update.log" >&2; exit 1; }

# Versions the index offers, newest first; the newest .dsc may 404, so try each.
if [ -n "$want" ]; then
	versions=$want
else
	versions=$(apt-cache showsrc openssl 2>/dev/null |
		sed -n 's/^Version: *//p' | sort -u -r -V)
fi
got=""
for v in $versions; do
	if (cd "$apt/src" && apt-get source -qq --download-only "openssl=$v" \
	    >"$work/source.log" 2>&1); then
		got=$v
		break
	fi
	rm -f "$apt/src"/*
done
[ -n "$got" ] || { echo "build-openssl: no openssl source downloaded" >&2;
	cat "$work/source.log" >&2; exit 1; }
prefix="$cache/openssl-$got"
if [ -f "$prefix/.done" ]; then
	echo "$prefix"
	exit 0
fi
(cd "$apt/src" && dpkg-source -x --skip-patches openssl_*.dsc src >/dev/null 2>&1) ||
	(cd "$apt/src" && dpkg-source -x openssl_*.dsc src >/dev/null)

cd "$apt/src/src"
echo "build-openssl: building OpenSSL $got for mingw64 in $prefix" >&2
./Configure mingw64 no-shared no-tests \
	--cross-compile-prefix=x86_64-w64-mingw32- \
	--prefix="$prefix" --libdir=lib >"$work/configure.log" 2>&1 ||
	{ tail -n 30 "$work/configure.log" >&2; exit 1; }
make -j"$jobs" build_libs >"$work/make.log" 2>&1 ||
	{ tail -n 40 "$work/make.log" >&2; exit 1; }
rm -rf "$prefix"
make install_dev >"$work/install.log" 2>&1 ||
	{ tail -n 30 "$work/install.log" >&2; exit 1; }
touch "$prefix/.done"
echo "$prefix"
