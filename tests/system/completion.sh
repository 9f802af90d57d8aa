#!/bin/sh
# psyncctl's bash completion (conf/bash-completion/psyncctl) loads in
# bash, completes command names, peer names from the file given with -c,
# and the log numbers psyncctl explain knows. And psyncctl explain itself:
# an entry for 8203, the catalog, and a clear error for an unknown number.
# Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
comp=$top_srcdir/conf/bash-completion/psyncctl
ctl=$top_builddir/psyncctl/psyncctl
n=0
failed=0
ok() {
	n=$((n + 1))
	if "$@"; then echo "ok $n - $desc"; else echo "not ok $n - $desc"; failed=$((failed + 1)); fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/bin"
ln -s "$(cd "$(dirname "$ctl")" && pwd)/psyncctl" "$tmp/bin/psyncctl"
printf 'node-name = "a"\npeer "winb" {\n}\npeer "unix2" {\n}\n' >"$tmp/p.conf"

# complete WORDS...: what the completion offers for the last word
complete_words() {
	PATH="$tmp/bin:$PATH" bash -c '
		. "$1"; shift
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1))
		_psyncctl
		printf "%s\n" "${COMPREPLY[@]}"' sh "$comp" "$@"
}

echo "1..6"

desc="the completion loads in bash and registers for psyncctl"
t1() { bash -c ". '$comp' && complete -p psyncctl" | grep -q "_psyncctl psyncctl"; }
ok t1
desc="a command name completes"
t2() { complete_words psyncctl ex | grep -qx explain; }
ok t2
desc="peer names come from the file named with -c"
t3() { r=$(complete_words psyncctl -c "$tmp/p.conf" verify ""); echo "$r" | grep -qx winb && echo "$r" | grep -qx unix2; }
ok t3
desc="psyncctl explain completes the log numbers it knows"
t4() { complete_words psyncctl explain 82 | grep -qx 8203; }
ok t4
desc="psyncctl explain 8203: symptom, cause, resolution and check"
t5() { "$ctl" explain 8203 >"$tmp/e" && grep -q "^Symptom" "$tmp/e" && grep -q "^Resolution" "$tmp/e" && grep -q "psyncctl verify" "$tmp/e"; }
ok t5
desc="psyncctl explain: the catalog has a block per entry; an unknown number is an error"
t6() { "$ctl" explain --catalog | grep -c "^-- [0-9a-f]\{32\}$" | grep -qx "$("$ctl" explain --list | wc -l)" &&
	! "$ctl" explain 4711 2>"$tmp/err" && grep -q "no log number 4711" "$tmp/err"; }
ok t6
[ "$failed" -eq 0 ]
