/*
 * Unit tests for lib/core/log.c: peer data is escaped so that one message stays
 * one line, the sinks never pass a control byte, and a peer's repeated
 * warnings are counted (with a fake clock) instead of flooding the log.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "log.h"

struct lines {
	int	n;
	char	text[16][1300];
};

static struct lines got;
static double fake_now;

static void
capture(void *ctx, int priority, const char *message)
{
	(void)ctx;
	(void)priority;
	/* The last 16 lines: line i is at i % 16. */
	snprintf(got.text[got.n % 16], sizeof(got.text[0]), "%s", message);
	got.n++;
}

static double
fake_clock(void)
{
	return fake_now;
}

static int
setup(void **state)
{
	(void)state;
	memset(&got, 0, sizeof(got));
	fake_now = 1000;
	log_set_level(LOG_DEBUG);
	log_set_callback(capture, NULL);
	log_set_clock(fake_clock);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	log_set_callback(NULL, NULL);
	log_set_clock(NULL);
	return 0;
}

static void
test_escape_turns_controls_into_visible_text(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
	} t[] = {
		{ "alice", "alice" },
		{ "a\nb", "a\\nb" },
		{ "a\r\tb", "a\\r\\tb" },
		{ "back\\slash", "back\\\\slash" },
		{ "bell\a del\x7f esc\x1b[31m", "bell\\x07 del\\x7f esc\\x1b[31m" },
		{ "J\xc3\xbcrgen \xe6\x97\xa5", "J\xc3\xbcrgen \xe6\x97\xa5" },
		{ "bad \xff\xc3", "bad \\xff\\xc3" },
		{ "over \xc0\xaf", "over \\xc0\\xaf" },	/* overlong "/" */
		{ "c1 \xc2\x85 ls \xe2\x80\xa8", "c1 \\xc2\\x85 ls \\xe2\\x80\\xa8" },
	};
	char out[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		assert_string_equal(log_escape(t[i].in, out, sizeof(out)),
		    t[i].out);
	assert_string_equal(log_str(NULL), "(null)");
}

static void
test_escape_cuts_long_input_with_dots_inside_the_buffer(void **state)
{
	char in[600], out[16];

	(void)state;
	memset(in, 'x', sizeof(in) - 1);
	in[sizeof(in) - 1] = '\0';
	assert_string_equal(log_escape(in, out, sizeof(out)),
	    "xxxxxxxxxxxx...");
	/* An escape is never cut in half. */
	assert_string_equal(log_escape("abcdefghij\n\n\n", out, sizeof(out)),
	    "abcdefghij\\n...");
	assert_string_equal(log_escape("abcdefghijkl\n", out, sizeof(out)),
	    "abcdefghijkl\\n");
	assert_string_equal(log_escape("abcdefghijklmn\n", out, sizeof(out)),
	    "abcdefghijkl...");
	assert_string_equal(log_escape("exactly 15 byte", out, sizeof(out)),
	    "exactly 15 byte");
	assert_int_equal(strlen(log_str(in)), LOG_STR_LEN - 1);
}

static void
test_log_str_slots_serve_several_arguments_of_one_call(void **state)
{
	(void)state;
	log_warnx("change for %s from peer %s: %s", log_str("ev\nil"),
	    log_str("pe\ter"), log_str("re\\ason"));
	assert_int_equal(got.n, 1);
	assert_string_equal(got.text[0],
	    "change for ev\\nil from peer pe\\ter: re\\\\ason");
}

static void
test_a_name_with_a_newline_cannot_forge_a_log_line(void **state)
{
	(void)state;
	/* Even when a caller forgets log_str(), the sink escapes. */
	log_warnx("change for %s refused", "x\npsyncd[1]: root password set");
	log_info("%s", "two\r\nlines\x1b");
	assert_int_equal(got.n, 2);
	assert_string_equal(got.text[0],
	    "change for x\\npsyncd[1]: root password set refused");
	assert_string_equal(got.text[1], "two\\r\\nlines\\x1b");
	assert_null(strchr(got.text[0], '\n'));
}

static void
test_repeated_warnings_of_one_peer_are_counted(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		log_peer_warnx("win1", "peer win1: bad frame");
	assert_int_equal(got.n, 1);
	assert_string_equal(got.text[0], "peer win1: bad frame");
	/* Another peer, or another message, is its own kind. */
	log_peer_warnx("win2", "peer win1: bad frame");
	log_peer_warnx("win1", "peer win1: bad key");
	assert_int_equal(got.n, 3);
	/* The window ends: the next one brings the count, then itself. */
	fake_now += LOG_REPEAT_WINDOW;
	log_peer_warnx("win1", "peer win1: bad frame");
	assert_int_equal(got.n, 5);
	assert_string_equal(got.text[3],
	    "peer win1: bad frame (repeated 4 times)");
	assert_string_equal(got.text[4], "peer win1: bad frame");
	/* A flush reports what the ended windows held back. */
	log_peer_warnx("win1", "peer win1: bad frame");
	log_repeats_flush(false);
	assert_int_equal(got.n, 5);
	fake_now += LOG_REPEAT_WINDOW;
	log_repeats_flush(false);
	assert_int_equal(got.n, 6);
	assert_string_equal(got.text[5],
	    "peer win1: bad frame (repeated 1 time)");
	/* Nothing held back: nothing to report, and the kind starts anew. */
	log_repeats_flush(true);
	assert_int_equal(got.n, 6);
	log_peer_warnx("win1", "peer win1: bad frame");
	assert_int_equal(got.n, 7);
}

static void
test_evicted_kind_reports_its_count_and_levels_are_honoured(void **state)
{
	int i;

	(void)state;
	log_peer_warnx("p", "first kind");
	log_peer_warnx("p", "first kind");
	for (i = 0; i < LOG_REPEAT_SLOTS; i++) {
		fake_now += 1;
		log_peer_warnx("p", "kind %d", i);
	}
	/* first kind (1), its count when evicted (1), 64 kinds. */
	assert_int_equal(got.n, 2 + LOG_REPEAT_SLOTS);
	/* The least recently seen kind made room for the last one. */
	assert_string_equal(got.text[(LOG_REPEAT_SLOTS) % 16],
	    "first kind (repeated 1 time)");
	assert_string_equal(got.text[(LOG_REPEAT_SLOTS + 1) % 16], "kind 63");
	log_set_level(LOG_ERR);
	log_peer_warnx("p", "below the level");
	log_set_level(LOG_DEBUG);
	assert_int_equal(got.n, 2 + LOG_REPEAT_SLOTS);
	log_peer_msg(LOG_NOTICE, "p", "peer %s: %s", log_str("a\nb"), "x");
	assert_int_equal(got.n, 3 + LOG_REPEAT_SLOTS);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_escape_turns_controls_into_visible_text),
		T(test_escape_cuts_long_input_with_dots_inside_the_buffer),
		T(test_log_str_slots_serve_several_arguments_of_one_call),
		T(test_a_name_with_a_newline_cannot_forge_a_log_line),
		T(test_repeated_warnings_of_one_peer_are_counted),
		T(test_evicted_kind_reports_its_count_and_levels_are_honoured),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
