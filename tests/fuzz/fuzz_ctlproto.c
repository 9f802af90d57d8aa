/*
 * Fuzz target: the control protocol's request decoder, which psyncd runs
 * on whatever a local root process writes to its socket. Beyond not
 * crashing: a request it accepts names a command of the table with a
 * word count that command allows, and building the same words again
 * gives back the same bytes.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct ctlproto_cmd *c;
	struct psync_err err;
	char *body, *w[CTLPROTO_WORDS_MAX];
	unsigned char *again = NULL;
	size_t nw, len;
	long want;

	want = ctlproto_request_len(data, size, &err);
	if (want <= 0 || size - CTLPROTO_HDR_LEN < (size_t)want)
		return 0;
	body = malloc((size_t)want + 1);
	if (body == NULL)
		return 0;
	memcpy(body, data + CTLPROTO_HDR_LEN, (size_t)want);
	c = ctlproto_parse(body, (size_t)want, w, &nw, &err);
	if (c != NULL) {
		if (nw < 1 + c->min_args || nw > 1 + c->max_args)
			abort();
		if (ctlproto_request((const char *const *)w, nw, &again, &len,
		    &err) == -1 || len != CTLPROTO_HDR_LEN + (size_t)want ||
		    memcmp(again, data, len) != 0) {
			fprintf(stderr, "accepted request does not encode "
			    "back: %s\n", c != NULL ? c->name : "");
			abort();
		}
	}
	free(again);
	free(body);
	return 0;
}
