/*
 * Fuzz target: the client-side MEPP response decoder, which reads 16 bytes
 * from a peer that may be hostile or broken. A response that decodes must
 * survive a round trip through the builder.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mepp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t again[MEPP_RESPONSE_LEN];
	int code;

	code = mepp_response_parse(data, size);
	if (code < -1)
		abort();
	if (code >= 0) {
		if (size != MEPP_RESPONSE_LEN)
			abort();
		mepp_response_build(code, again);
		/* Everything but the type field (host order in the wild). */
		if (memcmp(again, data, 8) != 0 ||
		    memcmp(again + 12, data + 12, 4) != 0 ||
		    mepp_response_parse(again, sizeof(again)) != code)
			abort();
	}
	return 0;
}
