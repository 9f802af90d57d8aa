# Sandboxed test hosts for shell tests: a private copy of the whole /etc
# directory, bind-mounted over /etc inside a new mount namespace, so that
# passwd, chpasswd, useradd and pam_unix run unchanged and write the copy.
# The directory is bound, not single files: those tools replace files by
# rename, which fails on a bind-mounted file (see notes/test-hosts.md).
#
#   sandbox_create DIR        copy /etc to DIR/etc, write its own PAM stack
#   sandbox_run DIR CMD...    run CMD with DIR/etc over /etc (new namespace
#                             each call; changes persist in DIR/etc)
#   sandbox_sh DIR SCRIPT     the same for a shell script given as a string
#   sandbox_destroy DIR       remove DIR (call it from a trap)
#
# Needs root and unshare(1). Nothing here touches the real /etc.

sandbox_create() {
	_sb_dir=$1
	mkdir -p "$_sb_dir" || return 1
	# Sockets and the like cannot be copied and are not needed.
	cp -a /etc "$_sb_dir/etc" 2>/dev/null
	[ -f "$_sb_dir/etc/passwd" ] && [ -f "$_sb_dir/etc/shadow" ] || {
		echo "sandbox_create: copying /etc to $_sb_dir failed" >&2
		return 1
	}
	# The machine's stack may hold modules (pam_winbind) a test does not
	# expect: the sandbox gets plain pam_unix with yescrypt.
	cat >"$_sb_dir/etc/pam.d/common-password" <<'PAM'
# psync test host: pam_unix only
password	[success=1 default=ignore]	pam_unix.so obscure yescrypt
password	requisite			pam_deny.so
password	required			pam_permit.so
PAM
}

sandbox_run() {
	_sb_dir=$1
	shift
	unshare --mount --propagation private -- \
	    sh -c 'mount --bind "$0/etc" /etc && exec "$@"' "$_sb_dir" "$@"
}

sandbox_sh() {
	sandbox_run "$1" sh -c "$2"
}

sandbox_destroy() {
	[ -n "${1:-}" ] && [ -d "$1" ] && rm -rf "$1"
}
