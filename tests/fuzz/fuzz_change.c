/*
 * Fuzz target: the change type's validation (lib/change/change.c), which every
 * layer runs on changes from pam_psync, the spool, peers and the child.
 * Beyond not crashing: what it accepts fits every limit it promises.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "change.h"
#include "codes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Input: kind byte, origin, user and secret separated by 0xff bytes. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct psync_err err;
	struct change c;
	const uint8_t *p, *end = data + size, *sep;
	char *fields[3];
	size_t cap[3], i, n;

	if (size < 1)
		return 0;
	memset(&c, 0, sizeof(c));
	c.secret_kind = data[0];
	fields[0] = c.origin;
	cap[0] = sizeof(c.origin) - 1;
	fields[1] = c.user;
	cap[1] = sizeof(c.user) - 1;
	fields[2] = (char *)c.secret;
	cap[2] = sizeof(c.secret) - 1;
	p = data + 1;
	for (i = 0; i < 3; i++) {
		sep = memchr(p, 0xff, (size_t)(end - p));
		n = (size_t)((sep != NULL ? sep : end) - p);
		if (n > cap[i])
			n = cap[i];
		memcpy(fields[i], p, n);
		fields[i][n] = '\0';
		if (i == 2)
			c.secret_len = (uint16_t)n;
		p = sep != NULL ? sep + 1 : end;
	}
	if (change_check(&c, &err) == PSYNC_OK) {
		if (c.secret_len == 0 || c.secret_len > CHANGE_SECRET_MAX ||
		    memchr(c.secret, '\0', c.secret_len) != NULL ||
		    strlen(c.user) == 0 || strlen(c.origin) == 0 ||
		    strchr(c.origin, ' ') != NULL ||
		    (c.secret_kind == CHANGE_SECRET_CRYPT &&
		    memchr(c.secret, ':', c.secret_len) != NULL))
			abort();
	}
	change_wipe(&c);
	return 0;
}
