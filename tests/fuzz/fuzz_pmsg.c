/*
 * Fuzz the parent's decoder of the network child's messages: whatever the
 * bytes, pmsg_decode() must either refuse them or produce a message that
 * encodes back to exactly the bytes it used.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char out[PMSG_HDR_LEN + PMSG_MAX];
	struct psync_err err;
	struct pmsg m;
	size_t off = 0;
	long used, len;

	while (off < size) {
		used = pmsg_decode(data + off, size - off, PMSG_FROM_CHILD, &m,
		    &err);
		if (used <= 0)
			break;
		len = pmsg_encode(&m, out, sizeof(out), &err);
		if (len != used || memcmp(out, data + off, (size_t)len) != 0)
			abort();
		pmsg_wipe(&m);
		off += (size_t)used;
	}
	return 0;
}
