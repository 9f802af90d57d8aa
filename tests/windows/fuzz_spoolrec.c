/*
 * libFuzzer target for the spool record codec (windows/spoolrec.c), built
 * and run by tests/windows/run.sh with the host's clang: the agent parses
 * what it decrypted from the spool, and the file header before that. Any
 * input must be refused or parsed, never read out of bounds; what parses
 * must encode back to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spoolrec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spoolrec rec;
	uint8_t head[SPOOLREC_HEAD_LEN];
	uint8_t *out;
	size_t n, uoff, poff;
	long plen;

	plen = spoolrec_check_file_head(data, size);
	if (plen >= 0) {
		/* The stated length is what is left between header and tag. */
		if ((size_t)plen != size - SPOOLREC_HEAD_LEN - SPOOLREC_TAG_LEN)
			abort();
		spoolrec_put_file_head(head, data + 4, (uint32_t)plen);
		if (memcmp(head, data, SPOOLREC_HEAD_LEN) != 0)
			abort();
	}
	if (spoolrec_parse(data, size, &rec) == 0) {
		n = spoolrec_plain_len(rec.user_len, rec.pass_len);
		if (n != size)
			abort();
		out = malloc(n);
		if (out == NULL)
			return 0;
		spoolrec_put_header(out, rec.id, rec.time_ms, rec.rid,
		    rec.user_len, rec.pass_len, &uoff, &poff);
		memcpy(out + uoff, rec.user, rec.user_len);
		memcpy(out + poff, rec.pass, rec.pass_len);
		if (memcmp(out, data, n) != 0)
			abort();
		free(out);
	}
	return 0;
}
