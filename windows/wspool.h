/*
 * The agent's side of the spool (spoolrec.h): the directories under
 * %ProgramData%\psync with their ACL, the spool key kept by DPAPI at
 * machine scope, and reading one sealed change back.
 */
#ifndef PSYNC_WSPOOL_H
#define PSYNC_WSPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <windows.h>

#include "spoolrec.h"

/* One change read back from the spool. The password is wiped by
   wspool_change_wipe(). */
struct wspool_change {
	WCHAR		 file[MAX_PATH];	/* full path */
	uint8_t		 id[SPOOLREC_ID_LEN];
	uint64_t	 time_ms;
	uint32_t	 rid;
	char		 user[SPOOLREC_USER_MAX + 1];	/* UTF-8 */
	uint32_t	 pass_len;
	char		*pass;		/* UTF-8, NUL-terminated, heap */
};

/* %ProgramData%\psync and the paths below it (static buffers). */
const WCHAR	*wspool_base(void);
const WCHAR	*wspool_path(const WCHAR *name);	/* base\name */

/* Create base, spool and keys with the SYSTEM+Administrators ACL (or apply
   it again); 0 or -1 with a message in err (size errlen). */
int	wspool_prepare_dirs(char *err, size_t errlen);
/* The directory's security descriptor as SDDL (DACL only), or "?". */
void	wspool_dir_sddl(const WCHAR *dir, char *out, size_t outlen);

/* Make the spool key when there is none: 32 random bytes protected with
   DPAPI at machine scope. Returns 1 made, 0 already there, -1 error. */
int	wspool_key_create(char *err, size_t errlen);
/* Load and unprotect it into key. 0 or -1. */
int	wspool_key_load(uint8_t key[SPOOLREC_KEY_LEN], char *err, size_t errlen);

/* Read, authenticate and parse one spool file. 0 or -1 (err says why). */
int	wspool_read(const WCHAR *path, const uint8_t key[SPOOLREC_KEY_LEN],
	    struct wspool_change *c, char *err, size_t errlen);
void	wspool_change_wipe(struct wspool_change *c);

/* UTF-16 to UTF-8 into out; -1 when it does not fit or is invalid. */
int	wstr_to_utf8(const WCHAR *in, char *out, size_t outlen);
/* UTF-8 to UTF-16; -1 on error. */
int	utf8_to_wstr(const char *in, WCHAR *out, size_t outlen);

#endif
