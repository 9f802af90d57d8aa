/*
 * The legacy /etc/sso.conf of the SFU/IDMU UNIX side, converted into
 * psync.conf text. Every key of the legacy file maps to a psync setting or
 * to a comment saying why it has no equivalent; a malformed line, or a bad
 * value of a key that matters, is refused with its number.
 */
#ifndef PSYNC_SSO_H
#define PSYNC_SSO_H

#include <stdio.h>

#include "util.h"

/*
 * Convert the text of an sso.conf (name is used in messages) and write
 * psync.conf text to out. Returns 0, or -1 with err "NAME:LINE: ...".
 * What it writes always loads (psyncd -t). A key whose value cannot matter
 * in the file's mode (NIS_UPDATE_PATH with USE_NIS=0, keys psync has no
 * equivalent for) is never refused: a bad value there is a warning, written
 * as a comment at the top of the output.
 */
int	sso_convert(const char *text, const char *name, FILE *out,
	    struct psync_err *err);

/* Receives each warning, "NAME:LINE: warning: ..." (no secrets in it). */
typedef void (*sso_warn_fn)(void *ctx, const char *message);

/*
 * sso_convert that also hands each warning to warn (may be NULL), in the
 * order of the file's lines, once the file has converted.
 */
int	sso_convert_warn(const char *text, const char *name, FILE *out,
	    sso_warn_fn warn, void *ctx, struct psync_err *err);

#endif
