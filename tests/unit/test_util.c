/* Unit tests for lib/core/util.c, lib/core/codes.c and lib/core/log.c. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codes.h"
#include "log.h"
#include "util.h"

static void
test_utf8_length_counts_characters_not_bytes(void **state)
{
	(void)state;
	assert_int_equal(utf8_length(""), 0);
	assert_int_equal(utf8_length("abc"), 3);
	assert_int_equal(utf8_length("P\xc3\xa4ss"), 4);		/* ä */
	assert_int_equal(utf8_length("\xe2\x82\xac"), 1);		/* € */
	assert_int_equal(utf8_length("\xf0\x9f\x94\x91x"), 2);	/* key emoji */
}

static void
test_utf8_length_rejects_invalid_sequences(void **state)
{
	(void)state;
	assert_int_equal(utf8_length("\xc3"), -1);		/* truncated */
	assert_int_equal(utf8_length("\xc0\xaf"), -1);		/* overlong */
	assert_int_equal(utf8_length("\xed\xa0\x80"), -1);	/* surrogate */
	assert_int_equal(utf8_length("\xf4\x90\x80\x80"), -1);	/* > U+10FFFF */
	assert_int_equal(utf8_length("\x80"), -1);		/* lone continuation */
}

static void
test_codes_have_reasons_and_names(void **state)
{
	int c;

	(void)state;
	for (c = 0; c <= PSYNC_CODE_MAX; c++) {
		assert_non_null(code_reason(c));
		assert_true(strcmp(code_name(c), "unknown") != 0);
	}
	assert_string_equal(code_reason(PSYNC_E_NO_USER), "no user entry");
	assert_string_equal(code_reason(99), "unknown result code");
	assert_string_equal(code_name(-1), "unknown");
}

static void
write_file(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x\n", 2), 2);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
test_trusted_file_refuses_group_writable(void **state)
{
	char dir[] = "/tmp/psync-util-XXXXXX", path[64];
	struct psync_err err;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);

	write_file(path, 0644);
	fd = file_open_trusted(path, false, &err);
	assert_true(fd >= 0);
	close(fd);

	write_file(path, 0664);
	assert_int_equal(file_open_trusted(path, false, &err), -1);
	assert_non_null(strstr(err.msg, "group- or world-writable"));
	assert_non_null(strstr(err.msg, path));

	write_file(path, 0640);
	assert_int_equal(file_open_trusted(path, true, &err), -1);
	assert_non_null(strstr(err.msg, "readable by group or others"));

	write_file(path, 0600);
	fd = file_open_trusted(path, true, &err);
	assert_true(fd >= 0);
	close(fd);

	unlink(path);
	assert_int_equal(file_open_trusted(path, true, &err), -1);
	assert_int_equal(err.code, PSYNC_E_FILE_NOT_FOUND);
	rmdir(dir);
}

static void
test_trusted_file_refuses_symlink(void **state)
{
	char dir[] = "/tmp/psync-util-XXXXXX", path[64], link[64];
	struct psync_err err;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/f", dir);
	snprintf(link, sizeof(link), "%s/l", dir);
	write_file(path, 0600);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(file_open_trusted(link, true, &err), -1);
	assert_non_null(strstr(err.msg, "cannot open"));
	unlink(link);
	unlink(path);
	rmdir(dir);
}

struct captured {
	int	count;
	int	prio;
	char	last[1024];
};

static void
capture(void *ctx, int prio, const char *msg)
{
	struct captured *c = ctx;

	c->count++;
	c->prio = prio;
	str_copy(c->last, msg, sizeof(c->last));
}

static void
test_log_callback_and_level_filter(void **state)
{
	struct captured c = { 0, 0, "" };

	(void)state;
	log_set_callback(capture, &c);
	log_set_level(LOG_INFO);
	log_debug("hidden %d", 1);
	assert_int_equal(c.count, 0);
	log_warnx("peer %s: %d", "winsrv", 8203);
	assert_int_equal(c.count, 1);
	assert_int_equal(c.prio, LOG_WARNING);
	assert_string_equal(c.last, "peer winsrv: 8203");
	log_set_callback(NULL, NULL);
	assert_int_equal(log_level_from_name("debug"), LOG_DEBUG);
	assert_int_equal(log_level_from_name("loud"), -1);
	assert_int_equal(log_facility_from_name("authpriv"), LOG_AUTHPRIV);
}

static void
test_str_copy_truncates_and_terminates(void **state)
{
	char buf[4];

	(void)state;
	assert_int_equal(str_copy(buf, "abcdef", sizeof(buf)), 6);
	assert_string_equal(buf, "abc");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_utf8_length_counts_characters_not_bytes),
		cmocka_unit_test(test_utf8_length_rejects_invalid_sequences),
		cmocka_unit_test(test_codes_have_reasons_and_names),
		cmocka_unit_test(test_trusted_file_refuses_group_writable),
		cmocka_unit_test(test_trusted_file_refuses_symlink),
		cmocka_unit_test(test_log_callback_and_level_filter),
		cmocka_unit_test(test_str_copy_truncates_and_terminates),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
