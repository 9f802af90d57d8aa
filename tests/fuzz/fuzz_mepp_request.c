/*
 * Fuzz target: the listener-side MEPP request decoder, the one place where
 * bytes from an unauthenticated peer are parsed. R1 and the secret are
 * fixed (those of tests/data/mepp-vectors.txt) so that the seed corpus, the
 * vector requests, decodes and the fuzzer starts from valid requests.
 *
 * Random ciphertext decrypts to noise, which would leave the plaintext
 * checks (terminators, fill, MAC placement) nearly unexplored; so each input
 * is also used as a plaintext, encrypted under the session key and decoded
 * as a well-framed request. The decoder tries both key derivation forms
 * (4- and 8-byte zero words); the seeds hold requests of both, with a
 * version word other than 0, non-zero fill and an extra zero block, which
 * the decoder accepts because the MAC proves them.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "mepp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t fuzz_r1[MEPP_NONCE_LEN] = {
	0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88,
};
static const uint8_t fuzz_r2[MEPP_NONCE_LEN] = {
	0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
};
static const char fuzz_secret[] = "ABCDZ#efgh$12345";

/* Decode and check what the listener relies on. */
static void
fuzz_decode(const uint8_t *data, size_t size)
{
	static struct mepp_request req;
	const char *why = NULL;
	size_t total;
	int rc;

	total = mepp_request_header(data, size, &why);
	if (total != 0 && (total < MEPP_MIN_REQUEST || total > MEPP_MAX_REQUEST))
		abort();
	rc = mepp_request_parse(fuzz_r1, fuzz_secret, data, size, &req);
	switch (rc) {
	case PSYNC_OK:
		if (total != size || req.user[0] == '\0' ||
		    (req.type != MEPP_TYPE_UPDATE && req.type != MEPP_TYPE_CHECK) ||
		    (req.form != MEPP_KDF_WORD4 && req.form != MEPP_KDF_WORD8) ||
		    strlen(req.user) >= MEPP_FIELD_MAX ||
		    strlen(req.password) >= MEPP_FIELD_MAX)
			abort();
		break;
	case PSYNC_E_PROTOCOL:
	case PSYNC_E_BAD_USER:
		if (req.why == NULL || req.user[0] != '\0' ||
		    req.password[0] != '\0')
			abort();
		break;
	default:
		abort();
	}
	mepp_request_wipe(&req);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[MEPP_MAX_REQUEST];
	static struct mepp_kdf kdf;
	static int have_key;
	size_t n, total;

	if (mepp_crypto_init(NULL) == -1)
		abort();
	fuzz_decode(data, size);

	/* The input as a plaintext, in a well-framed request. */
	if (!have_key) {
		if (mepp_kdf(fuzz_r1, fuzz_secret, fuzz_r2, &kdf) == -1)
			abort();
		have_key = 1;
	}
	n = size - size % 8;
	if (n > MEPP_MAX_REQUEST - MEPP_HEADER_LEN - MEPP_NONCE_LEN)
		n = (MEPP_MAX_REQUEST - MEPP_HEADER_LEN - MEPP_NONCE_LEN) & ~(size_t)7;
	if (n < MEPP_MIN_REQUEST - MEPP_HEADER_LEN - MEPP_NONCE_LEN)
		return 0;
	total = MEPP_HEADER_LEN + MEPP_NONCE_LEN + n;
	memset(buf, 0, MEPP_HEADER_LEN);
	buf[6] = (uint8_t)(total >> 8);
	buf[7] = (uint8_t)total;
	memcpy(buf + MEPP_HEADER_LEN, fuzz_r2, MEPP_NONCE_LEN);
	if (mepp_des3_ecb(kdf.key, 1, data, buf + MEPP_HEADER_LEN +
	    MEPP_NONCE_LEN, n) == -1)
		abort();
	fuzz_decode(buf, total);
	return 0;
}
