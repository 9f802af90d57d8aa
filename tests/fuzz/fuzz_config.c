/*
 * Fuzz target: the configuration parser (comment stripping, libconfuse,
 * validators, conversion) on arbitrary text. Any crash, leak or sanitizer
 * report is a finding; a loaded configuration must have a node name.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config_file.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct psync_config *c;
	char *text;

	if (size > 65536)
		return 0;
	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	log_set_callback(NULL, NULL);
	log_set_level(LOG_EMERG);
	c = config_load_string(text, "fuzz.conf", NULL, NULL);
	if (c != NULL && (c->node_name == NULL || c->node_name[0] == '\0'))
		abort();
	config_free(c);
	free(text);
	return 0;
}
