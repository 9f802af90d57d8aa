#!/bin/sh
# Bootstrap the build system from a clean checkout.
set -e
cd "$(dirname "$0")"
mkdir -p build-aux m4
if [ ! -f build-aux/tap-driver.sh ]; then
	for d in /usr/share/automake-*; do
		if [ -f "$d/tap-driver.sh" ]; then
			cp "$d/tap-driver.sh" build-aux/tap-driver.sh
			break
		fi
	done
fi
autoreconf --install --force
