#!/bin/sh
# pam_psync.so exports its pam_sm_* entry points and nothing else (the
# version script), and links no libtool leftovers. Prints TAP.
: "${top_builddir:=.}"
so=$top_builddir/pam_psync/.libs/pam_psync.so
echo "1..2"
syms=$(nm -D --defined-only "$so" 2>&1 | awk '$2 ~ /^[TDBRVW]$/ { print $3 }')
if [ -n "$syms" ] && [ -z "$(echo "$syms" | grep -v '^pam_sm_')" ]; then
	echo "ok 1 - pam_psync.so exports only: $(echo $syms)"
else
	echo "not ok 1 - pam_psync.so exports more than pam_sm_*:"
	echo "$syms" | sed 's/^/# /'
fi
if echo "$syms" | grep -qx pam_sm_chauthtok; then
	echo "ok 2 - pam_psync.so exports pam_sm_chauthtok"
else
	echo "not ok 2 - pam_sm_chauthtok is not exported"
fi
