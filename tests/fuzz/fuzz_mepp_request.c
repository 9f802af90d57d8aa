/*
 * Fuzz target: the listener-side MEPP request decoder, the one place where
 * bytes from an unauthenticated peer are parsed. R1 and the secret are
 * fixed (those of tests/data/mepp-vectors.txt) so that the seed corpus, the
 * vector requests, decodes and the fuzzer starts from valid requests.
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
static const char fuzz_secret[] = "ABCDZ#efgh$12345";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mepp_request req;
	const char *why = NULL;
	size_t total;
	int rc;

	if (mepp_crypto_init(NULL) == -1)
		abort();
	total = mepp_request_header(data, size, &why);
	if (total != 0 && (total < MEPP_MIN_REQUEST || total > MEPP_MAX_REQUEST))
		abort();
	rc = mepp_request_parse(fuzz_r1, fuzz_secret, data, size, &req);
	switch (rc) {
	case PSYNC_OK:
		/* A request that verifies has what the listener relies on. */
		if (total != size || req.user[0] == '\0' ||
		    (req.type != MEPP_TYPE_UPDATE && req.type != MEPP_TYPE_CHECK) ||
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
	return 0;
}
