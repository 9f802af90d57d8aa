# A throw-away Samba AD domain controller for tests, on top of the test
# hosts of tests/e2e/lib.sh (source that first and call e2e_init). The DC
# is a test host whose Samba runs in its own mount and PID namespaces too:
# a private tmpfs on /run/samba (client tools have /run/samba/winbindd built
# in), the host's own /etc copy, and a small shell as PID 1 that reaps the
# gpg processes gpgme leaves behind. Everything lives in the e2e work
# directory, so e2e_cleanup removes it; the DC's processes all sit in its
# network namespace, which e2e_cleanup empties and deletes.
#
#   dc_available                packages present (installs them as root);
#                               prints why not and fails otherwise
#   dc_start NAME OCTET         provision and start a DC NAME at
#                               198.51.100.OCTET; waits until kinit
#                               and the privileged ldapi socket work
#   dc_run NAME CMD...          run CMD inside the DC (its mounts, PIDs,
#                               network; GNUPGHOME set)
#   dc_kinit HOST USER PW       kinit USER@REALM with PW on HOST (a test
#                               host or the DC); 0 when the KDC accepts it
#   dc_krb5_client HOST NAME    write HOST's krb5.conf for the DC NAME
#   dc_tool NAME ARGS...        samba-tool ARGS on the DC's smb.conf
#   dc_ldapi NAME               the URL of its privileged LDAP socket
#   dc_stop NAME                stop Samba through its PID 1, then the rest
#
# Facts behind each step: notes/samba-dc.md.

DC_REALM=SAMBA.PSYNC.TEST
DC_DOMAIN=PSYNCTEST
DC_ADMINPW='Adm1n-Pw.psync'

dc_available() {
	if ! command -v samba >/dev/null 2>&1 || ! command -v kinit >/dev/null 2>&1 ||
	    ! command -v samba-tool >/dev/null 2>&1 || ! command -v gpg >/dev/null 2>&1 ||
	    ! [ -d /usr/share/samba/setup/ad-schema ] ||
	    ! python3 -c 'import gpg' >/dev/null 2>&1; then
		"$top_srcdir/tools/deps" samba >/dev/null 2>&1 ||
		    { echo "cannot install Samba's packages (tools/deps samba)"; return 1; }
	fi
	command -v samba >/dev/null 2>&1 && command -v kinit >/dev/null 2>&1 ||
	    { echo "Samba's packages are missing after tools/deps samba"; return 1; }
}

dc_krb5_client() { # HOST DCNAME
	eval "_o=\$E2E_OCTET_$2"
	cat >"$E2E_WORK/$1/etc/krb5.conf" <<KRB
[libdefaults]
	default_realm = $DC_REALM
	dns_lookup_kdc = false
	dns_lookup_realm = false
[realms]
	$DC_REALM = {
		kdc = $E2E_NET.$_o
		admin_server = $E2E_NET.$_o
		kpasswd_server = $E2E_NET.$_o
	}
KRB
}

dc_start() { # NAME OCTET
	_n=$1
	_d=$E2E_WORK/$_n
	_ip=$E2E_NET.$2
	e2e_host "$_n" "$2" || return 1
	eval "E2E_OCTET_$_n=$2"
	mkdir -p "$_d/samba" "$_d/gnupg" && chmod 700 "$_d/gnupg" "$_d/samba" || return 1
	: >"$_d/samba/empty.conf"
	printf '%s dc1.%s dc1\n' "$_ip" "$(echo "$DC_REALM" | tr A-Z a-z)" >>"$_d/etc/hosts"
	printf 'nameserver %s\n' "$_ip" >"$_d/etc/resolv.conf"
	dc_krb5_client "$_n" "$_n"
	# An encryption key for "password hash gpg key ids", no passphrase.
	GNUPGHOME=$_d/gnupg gpg --batch --quiet --pinentry-mode loopback \
	    --passphrase '' --quick-gen-key "psync test DC <dc@$DC_REALM>" \
	    future-default default never >/dev/null 2>&1 || { echo "# gpg key generation failed" >&2; return 1; }
	_fpr=$(GNUPGHOME=$_d/gnupg gpg --batch --with-colons --list-keys 2>/dev/null |
	    awk -F: '/^fpr/ { print $10; exit }')
	GNUPGHOME=$_d/gnupg gpgconf --kill gpg-agent >/dev/null 2>&1
	[ -n "$_fpr" ] || { echo "# no gpg fingerprint" >&2; return 1; }
	if ! e2e_run "$_n" env GNUPGHOME="$_d/gnupg" samba-tool domain provision \
	    -s "$_d/samba/empty.conf" --targetdir="$_d/samba" \
	    --realm="$DC_REALM" --domain="$DC_DOMAIN" --server-role=dc \
	    --dns-backend=SAMBA_INTERNAL --host-name=dc1 --host-ip="$_ip" \
	    --adminpass="$DC_ADMINPW" --use-rfc2307 \
	    --option="interfaces = lo eth0" --option="bind interfaces only = yes" \
	    --option="pid directory = $_d/samba/run" \
	    --option="ncalrpc dir = $_d/samba/ncalrpc" \
	    --option="ntp signd socket directory = $_d/samba/ntp_signd" \
	    --option="log file = $_d/samba/log.%m" \
	    --option="dns forwarder = 127.0.0.1" \
	    --option="password hash gpg key ids = $_fpr" \
	    --option="password hash userPassword schemes = CryptSHA256 CryptSHA512" \
	    >"$_d/provision.log" 2>&1; then
		echo "# samba-tool domain provision failed:" >&2
		tail -n 15 "$_d/provision.log" | sed 's/^/#   /' >&2
		return 1
	fi
	mkdir -p "$_d/samba/run" "$_d/samba/ncalrpc"
	# PID 1 of the DC: start samba, forward TERM, reap every child.
	(exec ip netns exec "$(e2e_ns "$_n")" unshare --mount --pid --fork \
	    --kill-child --mount-proc --propagation private -- sh -c '
		mount --bind "$0/etc" /etc || exit 1
		mkdir -p /run/samba 2>/dev/null
		mount -t tmpfs -o mode=0755 tmpfs /run/samba || exit 1
		export GNUPGHOME="$0/gnupg"
		samba -F --debug-stdout -s "$0/samba/etc/smb.conf" >"$0/samba.log" 2>&1 &
		s=$!
		trap "kill -TERM $s" TERM
		while kill -0 $s 2>/dev/null; do sleep 1 & wait $!; done
		wait $s' "$_d") >>"$_d/dc.log" 2>&1 &
	eval "DC_UNSHARE_$_n=$!"
	E2E_PIDS="$E2E_PIDS $!"
	# The DC's PID 1: the process of its network namespace that is PID 1
	# in a namespace of its own (NSpid ends in 1).
	_t=0
	_init=""
	while [ -z "$_init" ] && [ $_t -lt 50 ]; do
		for _p in $(ip netns pids "$(e2e_ns "$_n")" 2>/dev/null); do
			if grep -q '^NSpid:.*[[:space:]]1$' "/proc/$_p/status" 2>/dev/null; then
				_init=$_p
				break
			fi
		done
		[ -n "$_init" ] || sleep 0.1
		_t=$((_t + 1))
	done
	[ -n "$_init" ] || { echo "# the DC's PID 1 did not appear" >&2; return 1; }
	eval "DC_INIT_$_n=$_init"
	e2e_wait ${DC_WAIT:-60} dc_kinit "$_n" administrator "$DC_ADMINPW" || {
		echo "# the DC did not answer kinit within 60 s:" >&2
		tail -n 15 "$_d/samba.log" | sed 's/^/#   /' >&2
		return 1
	}
	# The LDAP server (and its privileged socket) comes up after the KDC.
	e2e_wait 30 dc_run "$_n" ldbsearch -H "$(dc_ldapi "$_n")" -s base -b "" \
	    defaultNamingContext || { echo "# the DC's ldapi socket did not answer" >&2; return 1; }
	# Test-friendly: a password may change again at once and never expires.
	dc_tool "$_n" domain passwordsettings set --min-pwd-age=0 \
	    --max-pwd-age=0 >/dev/null
}

dc_run() { # NAME CMD...
	_n=$1
	shift
	eval "_i=\$DC_INIT_$_n"
	nsenter --target "$_i" --mount --net --pid -- \
	    env GNUPGHOME="$E2E_WORK/$_n/gnupg" "$@"
}

# samba-tool on the DC's own configuration: dc_tool NAME ARGS...
dc_tool() {
	_n=$1
	shift
	dc_run "$_n" samba-tool "$@" -s "$E2E_WORK/$_n/samba/etc/smb.conf"
}

# The privileged LDAP socket as an ldapi URL (path percent-encoded).
dc_ldapi() {
	printf 'ldapi://%s' "$(printf '%s' "$E2E_WORK/$1/samba/private/ldap_priv/ldapi" | sed 's|/|%2F|g')"
}

dc_kinit() { # HOST USER PASSWORD
	eval "_i=\${DC_INIT_$1:-}"
	if [ -n "$_i" ]; then
		printf '%s\n' "$3" | dc_run "$1" env KRB5CCNAME=MEMORY: kinit "$2@$DC_REALM" >/dev/null 2>&1
	else
		printf '%s\n' "$3" | e2e_run "$1" env KRB5CCNAME=MEMORY: kinit "$2@$DC_REALM" >/dev/null 2>&1
	fi
}

dc_stop() { # NAME
	eval "_i=\${DC_INIT_$1:-} _u=\${DC_UNSHARE_$1:-}"
	[ -n "$_i" ] && kill -TERM "$_i" 2>/dev/null
	[ -n "$_u" ] && e2e_kill "$_u" TERM
	eval "DC_INIT_$1= DC_UNSHARE_$1="
}

# psync on the DC: psyncd with the samba store, a peer section per
# e2e_psync_pair, and the hook's syncpasswords cache.
#
#   dc_psync NAME               psync.conf (store samba) and the psync user
#   dc_user NAME USER UID PW    an AD account, and the NSS entry psyncd's
#                               policy looks up (a DC with winbind in
#                               nsswitch.conf gives it from the directory)
#   dc_sync_init NAME ATTRS [--decrypt-samba-gpg]
#                               (re)initialise syncpasswords with the hook
#   dc_sync_pass NAME           one syncpasswords pass (--no-wait); its
#                               output (the hook's answers) on stdout
dc_psync() { # NAME
	_d=$E2E_WORK/$1
	eval "_o=\$E2E_OCTET_$1"
	mkdir -p "$_d/etc/psync/keys" "$_d/state" && chmod 700 "$_d/etc/psync" "$_d/state"
	cat >"$_d/etc/psync/psync.conf" <<CONF
node-name = "$1"
control-socket = "$_d/state/control.sock"
store {
	type = samba
	samba-private-dir = "$_d/samba/private"
}
policy {
	# The account's state is AD's: a disabled account refuses there.
	skip-locked = false
}
listen psync {
	address = "$E2E_NET.$_o"
	port = 6678
}
queue {
	directory = "$_d/state/queue"
	spool-directory = "$_d/state/spool"
	host-key-file = "/etc/psync/host.key"
	retry-interval = 1s
	max-retry-interval = 2s
}
log {
	level = debug
}
CONF
	chmod 600 "$_d/etc/psync/psync.conf"
	e2e_run "$1" useradd -r -M -d /nonexistent -s /usr/sbin/nologin psync
}

dc_user() { # NAME USER UID PASSWORD
	dc_tool "$1" user create "$2" "$4" >/dev/null &&
	e2e_run "$1" useradd -M -d /nonexistent -s /bin/sh -u "$3" "$2"
}

dc_sync_init() { # NAME ATTRS [--decrypt-samba-gpg]
	_n=$1
	rm -f "$E2E_WORK/$_n/samba/private/user-syncpasswords-cache.ldb"
	dc_tool "$_n" user syncpasswords --cache-ldb-initialize \
	    --attributes="$2" ${3:-} --script="$top_builddir/samba_hook/psync-samba-hook" \
	    --filter='(&(objectClass=user)(userAccountControl:1.2.840.113556.1.4.803:=512)(!(sAMAccountName=krbtgt*))(!(sAMAccountName=Administrator)))'
}

dc_sync_pass() { # NAME
	dc_tool "$1" user syncpasswords --no-wait 2>&1
}
