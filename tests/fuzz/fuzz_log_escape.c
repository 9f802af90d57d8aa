/*
 * Fuzz target: escaping peer data for the log (lib/core/log.c). Whatever the
 * bytes, the result fits its buffer, holds no control byte (so one message
 * stays one line), and is the input itself when that was plain ASCII
 * without a backslash and fitted.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[64], *s;
	size_t i, n, len;
	bool plain = true;

	s = malloc(size + 1);
	if (s == NULL)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	len = strlen(s);
	for (i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '\\')
			plain = false;
	for (n = 4; n <= sizeof(out); n += 15) {
		log_escape(s, out, n);
		if (strlen(out) >= n)
			abort();
		for (i = 0; out[i] != '\0'; i++)
			if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
				abort();
		if (plain && len < n && strcmp(out, s) != 0)
			abort();
	}
	(void)log_str(s);
	free(s);
	return 0;
}
