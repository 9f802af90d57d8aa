/*
 * Fuzz target: the sso.conf importer. Beyond not crashing, whatever it
 * accepts must convert into a psync.conf that the configuration parser
 * loads without an error, and every warning it gives (which also lands in
 * the output, as a comment) must be one line without control characters.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_file.h"
#include "sso.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
on_problem(void *ctx, const char *message)
{
	const char *text = ctx;

	/* Warnings are fine (weak legacy keys); errors are a finding. */
	if (strstr(message, ": warning: ") == NULL) {
		fprintf(stderr, "converted configuration refused: %s\n%s\n",
		    message, text);
		abort();
	}
}

static void
on_warning(void *ctx, const char *message)
{
	const unsigned char *p = (const unsigned char *)message;

	(void)ctx;
	for (; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct psync_err err;
	struct psync_config *c;
	char *text, *out = NULL;
	size_t len = 0;
	FILE *f;

	if (size > 65536)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	f = open_memstream(&out, &len);
	if (f == NULL)
		goto done;
	if (sso_convert_warn(text, "fuzz-sso.conf", f, on_warning, NULL,
	    &err) == 0) {
		fclose(f);
		f = NULL;
		c = config_load_string(out, "converted", on_problem, out);
		if (c == NULL)
			abort();
		config_free(c);
	}
done:
	if (f != NULL)
		fclose(f);
	free(out);
	free(text);
	return 0;
}
