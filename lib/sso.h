/*
 * The legacy /etc/sso.conf of the SFU/IDMU UNIX side, converted into
 * psync.conf text. Every key of the legacy file maps to a psync setting or
 * to a comment saying why it has no equivalent; a malformed line is refused
 * with its number.
 */
#ifndef PSYNC_SSO_H
#define PSYNC_SSO_H

#include <stdio.h>

#include "util.h"

/*
 * Convert the text of an sso.conf (name is used in messages) and write
 * psync.conf text to out. Returns 0, or -1 with err "NAME:LINE: ...".
 */
int	sso_convert(const char *text, const char *name, FILE *out,
	    struct psync_err *err);

#endif
