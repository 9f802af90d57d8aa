/*
 * Key files of 32-byte keys (psync peers' pre-shared keys, the host key).
 */
#ifndef PSYNC_KEYFILE_H
#define PSYNC_KEYFILE_H

#include <stdbool.h>

#include "util.h"

#define WIRE_KEY_LEN		32

/* Key files: 64 hex digits and an optional newline, or 32 raw bytes. */
int	keyfile_read(const char *path, unsigned char key[WIRE_KEY_LEN],
	    struct psync_err *err);
/* Write a new key as hex into a 0600 file, atomically; with replace unset
   an existing file is an error rather than overwritten. */
int	keyfile_write(const char *path, const unsigned char key[WIRE_KEY_LEN],
	    bool replace, struct psync_err *err);
/* 32 bytes from OpenSSL's private random generator. */
int	keyfile_generate(unsigned char key[WIRE_KEY_LEN], struct psync_err *err);

#endif
