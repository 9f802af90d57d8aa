/*
 * Fuzz target: the store's parsing of untrusted bytes, i.e. shadow and
 * passwd lines (lib/store/store.c) and the well-formedness check of ready-made
 * crypt hashes that arrive from peers (lib/store/store_hash.c). Checks that what
 * the parser reports lies inside the line and keeps its promises.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "store_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_line(const char *line, size_t len, bool shadow)
{
	struct store_line l;
	size_t i;

	if (store_line_parse(line, len, shadow, &l) != 0)
		return;
	if (l.name != line || l.name_len == 0 || l.name_len >= len ||
	    l.hash < line || l.hash + l.hash_len > line + len ||
	    memchr(l.name, ':', l.name_len) != NULL ||
	    memchr(l.hash, ':', l.hash_len) != NULL)
		abort();
	if (l.name_len != store_line_name(line, len))
		abort();
	if (shadow) {
		if (l.lastchg < l.hash + l.hash_len ||
		    l.lastchg + l.lastchg_len > line + len)
			abort();
		for (i = 0; i < l.lastchg_len; i++)
			if (l.lastchg[i] < '0' || l.lastchg[i] > '9')
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size, *eol;
	struct psync_err err;
	char *s;

	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		check_line(p, (size_t)(eol - p), true);
		check_line(p, (size_t)(eol - p), false);
		p = eol + 1;
	}
	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	if (store_hash_check(s, &err) == 0 && strchr(s, ':') != NULL)
		abort();	/* an accepted hash must fit in a shadow field */
	(void)store_user_valid(s);
	free(s);
	return 0;
}
