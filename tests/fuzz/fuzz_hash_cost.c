/*
 * Fuzz target: reading the cost of a crypt hash from a peer
 * (lib/store/store_cost.c) without running it. Checks the promises: a hash with
 * a cost has a method and a kind, a refusal is code 9 with a reason, and
 * whatever passes the cost check under the defaults would also pass under
 * the highest limits.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct hash_limits high = { 31, 999999999, 11 };
	struct store_hash_cost c;
	struct psync_err err;
	char *s;
	int rc;

	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	perr_clear(&err);
	rc = store_hash_cost(s, &c, &err);
	if (rc == 0 && (c.method == NULL || c.kind == STORE_COST_MALFORMED))
		abort();
	if (rc == -1 && (err.code != PSYNC_E_BAD_PASSWORD || err.msg[0] == '\0'))
		abort();
	perr_clear(&err);
	if (store_hash_cost_check(s, NULL, &err) == 0) {
		if (rc != 0 || store_hash_cost_check(s, &high, &err) != 0)
			abort();
	} else if (err.code != PSYNC_E_BAD_PASSWORD || err.msg[0] == '\0') {
		abort();
	}
	free(s);
	return 0;
}
