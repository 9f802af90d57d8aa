#!/bin/sh
# The end-to-end harness itself: two test hosts reach each other over the
# switch, each has its own /etc, the PAM login helper accepts exactly the
# right password, and cleanup leaves no namespace, process or directory
# behind. Prints TAP.
set -u
: "${top_srcdir:=..}" "${top_builddir:=.}"
top_builddir=$(cd "$top_builddir" && pwd)
. "$top_srcdir/tests/e2e/lib.sh"
e2e_need_root
echo "1..6"
e2e_init || { echo "Bail out! cannot create the switch namespace"; exit 1; }
e2e_host a 1 && e2e_host b 2 || { echo "Bail out! cannot create test hosts"; exit 1; }

t_reach() {
	e2e_bg b "$E2E_WORK/listen.log" perl -MIO::Socket::INET -e '
		my $s = IO::Socket::INET->new(LocalAddr => "198.51.100.2:7000",
		    Listen => 1, ReuseAddr => 1) or die "$!";
		my $c = $s->accept; print $c "hello from b\n"; close $c;'

	e2e_wait 5 e2e_run a perl -MIO::Socket::INET -e '
		my $c = IO::Socket::INET->new(PeerAddr => "198.51.100.2:7000",
		    Timeout => 1) or exit 1; my $l = <$c>; exit($l eq "hello from b\n" ? 0 : 1);'
}
e2e_check "host a reaches host b over the switch" t_reach

t_private_etc() {
	e2e_run a useradd -M -d /nonexistent -s /bin/sh -u 2001 alice &&
	e2e_run a getent passwd alice >/dev/null &&
	! e2e_run b getent passwd alice >/dev/null &&
	! grep -q "^alice:" /etc/passwd
}
e2e_check "a user added on host a exists there only" t_private_etc

e2e_run a usermod -p "$(perl -e 'print crypt("Pw-Alice-1", "\$6\$abc\$")')" alice
t_login_ok() { echo Pw-Alice-1 | e2e_run a "$top_builddir/tests/pam-auth" alice; }
t_login_bad() { ! (echo Pw-Alice-2 | e2e_run a "$top_builddir/tests/pam-auth" alice); }
e2e_check "PAM login on host a accepts the right password" t_login_ok
e2e_check "PAM login on host a refuses a wrong password" t_login_bad

e2e_bg a "$E2E_WORK/sleep.log" sleep 600
pid=$E2E_PID
t_bg() { sleep 0.2; ip netns pids "$(e2e_ns a)" | grep -qx "$pid"; }
e2e_check "a background process runs inside host a's network namespace" t_bg

work=$E2E_WORK
nets=$E2E_NETNS
e2e_cleanup
left=""
for ns in $nets; do
	ip netns list | grep -q "^$ns\( \|$\)" && left="$left $ns"
done
kill -0 "$pid" 2>/dev/null && left="$left pid:$pid"
[ -d "$work" ] && left="$left $work"
if [ -z "$left" ]; then
	e2e_ok "cleanup leaves no namespace, process or directory"
else
	e2e_not_ok "cleanup leaves no namespace, process or directory" "left:$left"
fi
[ "$E2E_FAILED" -eq 0 ]
