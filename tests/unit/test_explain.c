/*
 * psyncctl explain's table (lib/core/explain.c): every log number psync
 * writes has a whole entry, every entry has a journal MESSAGE_ID of 32 hex
 * digits that no other entry shares, and the catalog psyncctl prints
 * (psync.catalog) holds one block per entry.
 */
#include "config.h"

#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codes.h"
#include "explain.h"

static void
test_every_log_number_has_a_whole_entry(void **state)
{
	const struct explain_entry *e;
	size_t i;

	(void)state;
	for (i = 0; i < PSYNC_MSG_COUNT; i++) {
		e = explain_find(psync_msg_numbers[i]);
		if (e == NULL)
			fail_msg("log number %d has no entry",
			    psync_msg_numbers[i]);
		assert_true(strlen(e->title) > 5);
		assert_true(strlen(e->symptom) > 20);
		assert_true(strlen(e->cause) > 20);
		assert_true(strlen(e->resolution) > 10);
		assert_true(strlen(e->check) > 10);
	}
}

static void
test_message_ids_are_128_bit_and_unique(void **state)
{
	size_t i, j, k;

	(void)state;
	for (i = 0; explain_entries[i].title != NULL; i++) {
		const char *id = explain_entries[i].message_id;

		assert_int_equal(strlen(id), 32);
		for (k = 0; k < 32; k++)
			assert_true(isxdigit((unsigned char)id[k]) &&
			    !isupper((unsigned char)id[k]));
		for (j = 0; j < i; j++) {
			assert_string_not_equal(explain_entries[j].message_id,
			    id);
			assert_int_not_equal(explain_entries[j].number,
			    explain_entries[i].number);
		}
		/* Result codes must be real codes. */
		if (explain_entries[i].number < 1000)
			assert_true(explain_entries[i].number <= PSYNC_CODE_MAX);
	}
}

static void
test_catalog_has_one_block_per_entry(void **state)
{
	char *buf = NULL, *p;
	size_t len = 0, blocks = 0, n;
	FILE *f;

	(void)state;
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	explain_catalog(f);
	fclose(f);
	for (p = buf; (p = strstr(p, "-- ")) != NULL; p += 3)
		if (p == buf || p[-1] == '\n')
			blocks++;
	for (n = 0; explain_entries[n].title != NULL; n++)
		;
	assert_int_equal(blocks, n);
	assert_non_null(strstr(buf, "Subject: psync 8203: secret key mismatch"));
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_log_number_has_a_whole_entry),
		cmocka_unit_test(test_message_ids_are_128_bit_and_unique),
		cmocka_unit_test(test_catalog_has_one_block_per_entry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
