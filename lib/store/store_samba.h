/*
 * The samba store: psyncd on a Samba AD domain controller applies changes
 * to the directory through Samba's privileged local LDAP socket
 * (SAMBA-PRIVATE-DIR/ldap_priv/ldapi). Root needs no bind there: Samba
 * treats that socket as the system itself. The pieces below are exposed
 * for the unit tests.
 */
#ifndef PSYNC_STORE_SAMBA_H
#define PSYNC_STORE_SAMBA_H

#include <stddef.h>

#include "store.h"
#include "util.h"

#define SAMBA_NTHASH_LEN	16
/* unicodePwd of the longest password: quotes + 2 bytes per UTF-16 unit. */
#define SAMBA_UNICODEPWD_MAX	(2 * (STORE_SECRET_MAX + 2))

/* Apply a batch to the directory; same contract as store_apply(). */
/*
 * The samba back-end's row (store.c): with a queue in env, it notes each
 * cleartext password before it writes the directory, and drops the note
 * when the write failed or changed nothing (lib/queue/samba_applied.c).
 */
size_t	store_samba_backend_apply(const struct store_conf *conf,
	    const struct store_env *env, const struct store_change *changes,
	    size_t n, struct store_result *results);
size_t	store_samba_apply(const struct store_conf *conf,
	    const struct store_change *changes, size_t n,
	    struct store_result *results);

/*
 * The value AD wants in unicodePwd: the UTF-16LE of the password in double
 * quotes. -1 with err (code 9) when the password is not valid UTF-8 or
 * does not fit in cap bytes. The caller wipes out.
 */
int	store_samba_unicodepwd(const char *password, unsigned char *out,
	    size_t cap, size_t *outlen, struct psync_err *err);

/* The NT hash (MD4 of the UTF-16LE password), what AD keeps in unicodePwd. */
int	store_samba_nthash(const char *password,
	    unsigned char out[SAMBA_NTHASH_LEN], struct psync_err *err);

/* "ldapi://" and the socket's path, percent-encoded. -1 when too long. */
int	store_samba_ldapi_url(const char *private_dir, char *out, size_t cap);

/*
 * A result code for an LDAP error of a password modify (rc, and the
 * server's diagnostic text, may be NULL). Samba's refusals (too short,
 * complexity, history, too young) get their own codes; reason receives
 * AD's own words.
 */
int	store_samba_map_error(int ldap_rc, const char *diag, char *reason,
	    size_t cap);

#endif
