/*
 * Sealing secrets at rest: AES-256-GCM under the host key, for the spool
 * files pam_psync writes and the queue psyncd keeps. A sealed blob is
 * version (1 byte) | nonce (12) | ciphertext | tag (16); the associated
 * data names what the blob is, so a blob cannot be replayed as another kind.
 */
#ifndef PSYNC_SEAL_H
#define PSYNC_SEAL_H

#include <stddef.h>

#include "util.h"

#define SEAL_KEY_LEN		32
#define SEAL_OVERHEAD		(1 + 12 + 16)

/* Read the host key; with create, make a new 0600 one when it is missing. */
int	seal_key_load(const char *path, int create,
	    unsigned char key[SEAL_KEY_LEN], struct psync_err *err);

/* out must hold len + SEAL_OVERHEAD bytes. Returns the sealed length or -1. */
long	seal(const unsigned char key[SEAL_KEY_LEN], const char *aad,
	    const void *plain, size_t len, unsigned char *out,
	    struct psync_err *err);
/* out must hold len bytes. Returns the plain length, or -1 (wrong key,
   tampered or truncated blob) with err->code PSYNC_E_DECRYPT. */
long	unseal(const unsigned char key[SEAL_KEY_LEN], const char *aad,
	    const unsigned char *in, size_t len, void *out,
	    struct psync_err *err);

#endif
