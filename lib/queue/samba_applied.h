/*
 * No echo from a Samba DC: when psyncd applies a change from a peer to the
 * directory, Samba reports that very password change to
 * psync-samba-hook a few seconds later, which would queue it again for
 * every peer. So psyncd's parent notes, before it writes the directory,
 * the password it is about to apply (sealed under the host key, in the
 * queue database's node state); the hook skips a report whose password
 * matches the note for that account, and consumes the note. See
 * doc/samba.md.
 */
#ifndef PSYNC_SAMBA_APPLIED_H
#define PSYNC_SAMBA_APPLIED_H

#include <stdint.h>

#include "queue.h"
#include "seal.h"
#include "util.h"

/* A note older than this no longer matches (milliseconds). */
#define SAMBA_APPLIED_TTL_MS	(24u * 3600u * 1000u)

/* Note that password is about to be applied to user's account. */
int	samba_applied_note(struct queue *q, const unsigned char key[SEAL_KEY_LEN],
	    const char *user, const char *password, uint64_t now_ms,
	    struct psync_err *err);
/* Drop the note (the apply failed, or changed nothing). */
int	samba_applied_forget(struct queue *q, const char *user,
	    struct psync_err *err);
/*
 * Does the reported secret (a password, or with is_hash a crypt hash of
 * it) match the note for user? 1 yes (the note is consumed), 0 no, -1
 * error.
 */
int	samba_applied_match(struct queue *q,
	    const unsigned char key[SEAL_KEY_LEN], const char *user,
	    const char *secret, int is_hash, uint64_t now_ms,
	    struct psync_err *err);

#endif
