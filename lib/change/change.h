/*
 * A password change, the one type every layer passes along: pam_psync and
 * psync-samba-hook make one, the spool and the queue keep it sealed, the
 * frame codec and the privsep codec carry it, and the store applies it.
 * Each of them checks it with change_check(), so that the limits are the
 * same everywhere: a password the store cannot take is refused where it
 * enters, not three hops later.
 */
#ifndef PSYNC_CHANGE_H
#define PSYNC_CHANGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define CHANGE_ID_LEN		16	/* 128-bit change ids */
#define CHANGE_NODE_MAX		255	/* node (origin) names, bytes */
#define CHANGE_USER_MAX		256	/* user names as a peer spells them */
#define CHANGE_SECRET_MAX	511	/* password or crypt hash, bytes */

enum change_secret_kind {
	CHANGE_SECRET_CLEARTEXT	= 1,	/* the password itself */
	CHANGE_SECRET_CRYPT	= 2,	/* a crypt(3) hash such as $6$... */
};

struct change {
	uint8_t		id[CHANGE_ID_LEN];
	char		origin[CHANGE_NODE_MAX + 1];
	uint64_t	time_ms;	/* milliseconds since the epoch */
	char		user[CHANGE_USER_MAX + 1];
	uint8_t		secret_kind;	/* enum change_secret_kind */
	uint16_t	secret_len;
	/* NUL-terminated as well, for callers that want a string. */
	unsigned char	secret[CHANGE_SECRET_MAX + 1];
};

/*
 * A user name as a change carries it (before any mapping to a local
 * name): 1 to CHANGE_USER_MAX bytes of UTF-8 without control characters.
 */
bool	change_user_valid(const char *user);

/* A node name: 1 to CHANGE_NODE_MAX printable ASCII bytes, no space. */
bool	change_node_valid(const char *node);

/*
 * A secret of that kind: 1 to CHANGE_SECRET_MAX bytes without NUL; a
 * crypt hash starts with '$' and is printable ASCII without ':'.
 * Returns PSYNC_OK, or PSYNC_E_BAD_PASSWORD with err saying why (never
 * quoting the secret).
 */
int	change_secret_check(int kind, const unsigned char *secret, size_t len,
	    struct psync_err *err);

/*
 * The whole change: origin, user, kind and secret (the id and time are
 * any value). Returns PSYNC_OK, or the result code to answer
 * (PSYNC_E_BAD_USER, PSYNC_E_BAD_PASSWORD, PSYNC_E_PROTOCOL) with err.
 */
int	change_check(const struct change *c, struct psync_err *err);

/* Wipe a change, which holds a secret. */
void	change_wipe(struct change *c);

#endif
