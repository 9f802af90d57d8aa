/*
 * The incoming spool: pam_psync drops each committed password change as one
 * sealed file, and psyncd picks the files up (inotify, and a scan at
 * start). A file is named TIME-ID.chg (milliseconds, 16 digits; the change
 * id in hex), so names sort in the order the changes were made; it holds
 * the magic "PSYNCSP1" and the CHANGE frame sealed under the host key. It
 * appears whole (written under a dot-name, fsynced, renamed, directory
 * fsynced) and is readable by root only.
 */
#ifndef PSYNC_SPOOL_H
#define PSYNC_SPOOL_H

#include <stddef.h>

#include "frame.h"
#include "seal.h"
#include "util.h"

#define SPOOL_NAME_LEN	(16 + 1 + 32 + 4)	/* TIME-ID.chg */

/* Create the directory (0700) if missing; refuse one others can write. */
int	spool_prepare(const char *dir, struct psync_err *err);
/* Write one CHANGE frame; name (SPOOL_NAME_LEN + 1 bytes) gets its name. */
int	spool_write(const char *dir, const unsigned char key[SEAL_KEY_LEN],
	    const struct frame *change, char *name, struct psync_err *err);
/*
 * Submit a change made on this node: a new id, the wall clock, the change
 * type's checks (lib/change/change.c), sealed and durable in the spool (the one
 * way pam_psync and psync-samba-hook hand changes to psyncd). The name
 * of the file goes to name (SPOOL_NAME_LEN + 1). -1 with err.
 */
int	spool_submit(const char *dir, const unsigned char key[SEAL_KEY_LEN],
	    const char *node, const char *user, int kind, const char *secret,
	    char *name, struct psync_err *err);
/* Read and open one spool file into f (a CHANGE); the caller wipes f. */
int	spool_read(const char *dir, const char *name,
	    const unsigned char key[SEAL_KEY_LEN], struct frame *f,
	    struct psync_err *err);
/* The names of the complete spool files, sorted; the caller frees them. */
int	spool_list(const char *dir, char ***names, size_t *n,
	    struct psync_err *err);
void	spool_list_free(char **names, size_t n);
/* Is this a name spool_write makes (and not a temporary one)? */
int	spool_name_valid(const char *name);

#endif
