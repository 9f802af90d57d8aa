/*
 * Unit tests for lib/proto/frame.c: every message survives a round trip, and
 * every way a frame can be malformed is refused with a reason that says
 * what is wrong.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "codes.h"
#include "frame.h"
#include "util.h"

static const uint8_t test_id[FRAME_ID_LEN] = {
	0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
};

/* A hand-built frame, for inputs that the encoder would never produce. */
struct raw {
	unsigned char	buf[FRAME_BUF_MAX + 16];
	size_t		len;
};

static void
raw_begin(struct raw *r, uint8_t type)
{
	memset(r, 0, sizeof(*r));
	r->len = FRAME_PREFIX_LEN;
	r->buf[r->len++] = type;
}

static void
raw_field(struct raw *r, uint8_t tag, const void *v, size_t len)
{
	r->buf[r->len++] = tag;
	r->buf[r->len++] = (unsigned char)(len >> 8);
	r->buf[r->len++] = (unsigned char)len;
	memcpy(r->buf + r->len, v, len);
	r->len += len;
}

static void
raw_u(struct raw *r, uint8_t tag, uint64_t v, size_t width)
{
	unsigned char b[8];
	size_t i;

	for (i = 0; i < width; i++)
		b[i] = (unsigned char)(v >> (8 * (width - 1 - i)));
	raw_field(r, tag, b, width);
}

static void
raw_str(struct raw *r, uint8_t tag, const char *s)
{
	raw_field(r, tag, s, strlen(s));
}

static void
raw_finish(struct raw *r)
{
	size_t body = r->len - FRAME_PREFIX_LEN;

	r->buf[0] = (unsigned char)(body >> 24);
	r->buf[1] = (unsigned char)(body >> 16);
	r->buf[2] = (unsigned char)(body >> 8);
	r->buf[3] = (unsigned char)body;
}

/* A valid CHANGE with every field, in the encoder's order. */
static void
raw_change(struct raw *r, const char *user, uint8_t kind, const char *secret)
{
	raw_begin(r, FRAME_CHANGE);
	raw_field(r, 1, test_id, sizeof(test_id));
	raw_str(r, 2, "unix1.example.org");
	raw_u(r, 3, 1700000000123ULL, 8);
	raw_str(r, 4, user);
	raw_u(r, 5, kind, 1);
	raw_str(r, 6, secret);
	raw_finish(r);
}

/* Decoding must fail, and the reason must mention want. */
static void
expect_refused(const unsigned char *buf, size_t len, const char *want)
{
	struct frame f;
	struct psync_err err;
	long n;

	perr_clear(&err);
	n = frame_decode(buf, len, &f, &err);
	if (n != -1 || strstr(err.msg, want) == NULL)
		fail_msg("expected refusal mentioning \"%s\", got %ld (%s)",
		    want, n, err.msg);
	assert_int_equal(err.code, PSYNC_E_PROTOCOL);
}

static void
round_trip(const struct frame *in)
{
	unsigned char buf[FRAME_BUF_MAX];
	struct frame out;
	struct psync_err err;
	long n, m;

	n = frame_encode(in, buf, sizeof(buf), &err);
	if (n <= 0)
		fail_msg("encode %s: %s", frame_type_name((int)in->type), err.msg);
	m = frame_decode(buf, (size_t)n, &out, &err);
	if (m != n)
		fail_msg("decode %s: %ld of %ld: %s",
		    frame_type_name((int)in->type), m, n, err.msg);
	assert_int_equal(out.type, in->type);
	assert_memory_equal(&out.u, &in->u, sizeof(in->u));
	frame_wipe(&out);
	secure_wipe(buf, sizeof(buf));
}

static void
test_every_message_type_survives_a_round_trip(void **state)
{
	struct frame f;
	struct psync_err err;
	unsigned char key[FRAME_KEY_LEN];
	const char *pw = "Gr\xc3\xbcn-Ap;fel 42";	/* UTF-8 with a space */

	(void)state;
	memset(key, 0xa5, sizeof(key));
	assert_int_equal(frame_set_hello(&f, "dc1.example.org", FRAME_VERSION,
	    FRAME_CAP_CRYPT_HASH | FRAME_CAP_KEY_ROTATION, &err), 0);
	round_trip(&f);
	assert_int_equal(frame_set_change(&f, test_id, "unix1", 1700000000123ULL,
	    "j\xc3\xb6rg", FRAME_SECRET_CLEARTEXT, pw, strlen(pw), &err), 0);
	round_trip(&f);
	assert_string_equal((const char *)f.u.change.secret, pw);
	assert_int_equal(frame_set_change(&f, test_id, "dc1", UINT64_MAX,
	    "alice", FRAME_SECRET_CRYPT, "$6$salt$abcdef./", 16, &err), 0);
	round_trip(&f);
	assert_int_equal(frame_set_result(&f, test_id, PSYNC_E_NO_USER,
	    "no user entry for alice", &err), 0);
	round_trip(&f);
	assert_int_equal(frame_set_result(&f, test_id, PSYNC_OK, NULL, &err), 0);
	round_trip(&f);
	assert_int_equal(frame_set_ping(&f, false, 7), 0);
	round_trip(&f);
	assert_int_equal(frame_set_ping(&f, true, UINT64_MAX), 0);
	round_trip(&f);
	assert_int_equal(frame_set_key_propose(&f, 0xdeadbeef, key), 0);
	round_trip(&f);
	assert_int_equal(frame_set_key_confirm(&f, 3), 0);
	round_trip(&f);
	assert_int_equal(frame_set_error(&f, PSYNC_E_VERSION_MISMATCH,
	    "version 9 not supported", &err), 0);
	round_trip(&f);
	frame_wipe(&f);
}

static void
test_frames_in_one_buffer_decode_one_after_another(void **state)
{
	unsigned char buf[2 * 128];
	struct frame f;
	struct psync_err err;
	long a, b;

	(void)state;
	assert_int_equal(frame_set_ping(&f, false, 1), 0);
	a = frame_encode(&f, buf, sizeof(buf), &err);
	assert_true(a > 0);
	assert_int_equal(frame_set_key_confirm(&f, 2), 0);
	b = frame_encode(&f, buf + a, sizeof(buf) - (size_t)a, &err);
	assert_true(b > 0);
	assert_int_equal(frame_decode(buf, (size_t)(a + b), &f, &err), a);
	assert_int_equal(f.type, FRAME_PING);
	assert_int_equal(f.u.ping.seq, 1);
	assert_int_equal(frame_decode(buf + a, (size_t)b, &f, &err), b);
	assert_int_equal(f.type, FRAME_KEY_CONFIRM);
	assert_int_equal(f.u.key_confirm.key_id, 2);
}

static void
test_incomplete_frame_asks_for_more_bytes_at_every_length(void **state)
{
	struct raw r;
	struct frame f;
	struct psync_err err;
	size_t k;

	(void)state;
	raw_change(&r, "alice", FRAME_SECRET_CLEARTEXT, "secret");
	for (k = 0; k < r.len; k++) {
		long n = frame_decode(r.buf, k, &f, &err);

		if (n != 0)
			fail_msg("%zu of %zu bytes: expected 0 (need more), "
			    "got %ld", k, r.len, n);
	}
	assert_int_equal(frame_decode(r.buf, r.len, &f, &err), (long)r.len);
	frame_wipe(&f);
}

static void
test_frame_cut_short_by_its_length_is_refused_at_every_byte(void **state)
{
	struct raw r;
	size_t body, cut;

	(void)state;
	raw_change(&r, "alice", FRAME_SECRET_CLEARTEXT, "secret");
	body = r.len - FRAME_PREFIX_LEN;
	/* Claim fewer bytes than the fields need: every cut is an error. */
	for (cut = 1; cut < body; cut++) {
		struct frame f;
		struct psync_err err;
		long n;

		r.buf[0] = 0;
		r.buf[1] = 0;
		r.buf[2] = (unsigned char)(cut >> 8);
		r.buf[3] = (unsigned char)cut;
		n = frame_decode(r.buf, FRAME_PREFIX_LEN + cut, &f, &err);
		if (n != -1)
			fail_msg("body cut to %zu of %zu bytes: expected -1, "
			    "got %ld", cut, body, n);
		assert_true(strstr(err.msg, "CHANGE frame") != NULL);
	}
}

static void
test_length_over_cap_is_refused_from_the_prefix_alone(void **state)
{
	unsigned char big[4] = { 0x00, 0x01, 0x00, 0x01 };	/* 65537 */
	unsigned char huge[4] = { 0xff, 0xff, 0xff, 0xff };

	(void)state;
	expect_refused(big, sizeof(big), "over the cap of 65536");
	expect_refused(huge, sizeof(huge), "over the cap");
}

static void
test_frame_at_the_cap_is_measured_not_refused(void **state)
{
	unsigned char cap[4] = { 0x00, 0x01, 0x00, 0x00 };	/* 65536 */
	struct frame f;
	struct psync_err err;

	(void)state;
	/* Exactly the cap is legal framing: the decoder waits for the body. */
	assert_int_equal(frame_decode(cap, sizeof(cap), &f, &err), 0);
}

static void
test_zero_length_is_refused(void **state)
{
	unsigned char zero[5] = { 0, 0, 0, 0, FRAME_PING };

	(void)state;
	expect_refused(zero, sizeof(zero), "frame length 0");
}

static void
test_unknown_message_type_is_refused(void **state)
{
	struct raw r;
	const uint8_t types[] = { 0, 9, 0x7f, 0xff };
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(types); i++) {
		char want[64];

		raw_begin(&r, types[i]);
		raw_u(&r, 1, 1, 8);
		raw_finish(&r);
		snprintf(want, sizeof(want), "unknown message type %u", types[i]);
		expect_refused(r.buf, r.len, want);
	}
}

static void
test_unknown_field_tag_is_refused(void **state)
{
	struct raw r;

	(void)state;
	raw_begin(&r, FRAME_PING);
	raw_u(&r, 1, 5, 8);
	raw_u(&r, 2, 5, 8);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "PING frame: unknown field tag 2");
	raw_begin(&r, FRAME_HELLO);
	raw_u(&r, 0, 5, 2);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "HELLO frame: unknown field tag 0");
}

static void
test_duplicate_field_is_refused(void **state)
{
	struct raw r;

	(void)state;
	raw_begin(&r, FRAME_KEY_CONFIRM);
	raw_u(&r, 1, 1, 4);
	raw_u(&r, 1, 2, 4);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 1 (key-id) appears twice");
}

static void
test_missing_required_field_is_refused(void **state)
{
	struct raw r;

	(void)state;
	raw_begin(&r, FRAME_HELLO);
	raw_str(&r, 1, "node1");
	raw_u(&r, 3, 0, 4);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "required field 2 (version) is missing");
	raw_begin(&r, FRAME_PONG);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "required field 1 (sequence)");
}

static void
test_optional_reason_may_be_left_out(void **state)
{
	struct raw r;
	struct frame f;
	struct psync_err err;

	(void)state;
	raw_begin(&r, FRAME_RESULT);
	raw_u(&r, 2, PSYNC_E_REFUSED, 2);
	raw_field(&r, 1, test_id, sizeof(test_id));	/* any order */
	raw_finish(&r);
	assert_int_equal(frame_decode(r.buf, r.len, &f, &err), (long)r.len);
	assert_int_equal(f.u.result.code, PSYNC_E_REFUSED);
	assert_memory_equal(f.u.result.id, test_id, sizeof(test_id));
	assert_string_equal(f.u.result.reason, "");
}

static void
test_wrong_field_sizes_are_refused(void **state)
{
	struct raw r;
	char longname[FRAME_USER_MAX + 2];
	unsigned char key[FRAME_KEY_LEN + 1];
	char secret[FRAME_SECRET_MAX + 2];

	(void)state;
	memset(key, 1, sizeof(key));
	raw_begin(&r, FRAME_HELLO);
	raw_str(&r, 1, "node1");
	raw_u(&r, 2, 1, 3);
	raw_u(&r, 3, 0, 4);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 2 (version): 3 bytes, must be 2");

	raw_begin(&r, FRAME_RESULT);
	raw_field(&r, 1, test_id, FRAME_ID_LEN - 1);
	raw_u(&r, 2, 0, 2);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 1 (id): 15 bytes, must be 16");

	raw_begin(&r, FRAME_KEY_PROPOSE);
	raw_u(&r, 1, 1, 4);
	raw_field(&r, 2, key, FRAME_KEY_LEN + 1);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 2 (key): 33 bytes, must be 32");

	raw_begin(&r, FRAME_HELLO);
	raw_str(&r, 1, "");
	raw_u(&r, 2, 1, 2);
	raw_u(&r, 3, 0, 4);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 1 (node): 0 bytes, must be 1..255");

	memset(longname, 'a', sizeof(longname) - 1);
	longname[FRAME_USER_MAX + 1] = '\0';		/* 257 bytes */
	raw_change(&r, longname, FRAME_SECRET_CLEARTEXT, "pw");
	expect_refused(r.buf, r.len, "field 4 (user): 257 bytes, must be 1..256");
	longname[FRAME_USER_MAX] = '\0';		/* 256 bytes: the bound */
	raw_change(&r, longname, FRAME_SECRET_CLEARTEXT, "pw");
	{
		struct frame f;
		struct psync_err err;

		assert_int_equal(frame_decode(r.buf, r.len, &f, &err),
		    (long)r.len);
		assert_int_equal(strlen(f.u.change.user), FRAME_USER_MAX);
		frame_wipe(&f);
	}

	memset(secret, 'x', sizeof(secret) - 1);
	secret[FRAME_SECRET_MAX + 1] = '\0';
	raw_change(&r, "alice", FRAME_SECRET_CLEARTEXT, secret);
	{
		char want[64];

		/* The change type's limit (lib/change/change.h), on the wire too. */
		snprintf(want, sizeof(want), "field 6 (secret): %d bytes",
		    FRAME_SECRET_MAX + 1);
		expect_refused(r.buf, r.len, want);
	}
	raw_change(&r, "alice", FRAME_SECRET_CLEARTEXT, "");
	expect_refused(r.buf, r.len, "field 6 (secret): 0 bytes");
}

static void
test_field_running_past_the_frame_is_refused(void **state)
{
	struct raw r;

	(void)state;
	raw_begin(&r, FRAME_PING);
	raw_u(&r, 1, 5, 8);
	raw_finish(&r);
	r.buf[7] = 9;		/* field length 9, only 8 bytes follow */
	expect_refused(r.buf, r.len, "claims 9 bytes, only 8 left");
}

static void
test_nul_in_strings_and_secrets_is_refused(void **state)
{
	struct raw r;

	(void)state;
	raw_begin(&r, FRAME_HELLO);
	raw_field(&r, 1, "no\0de", 5);
	raw_u(&r, 2, 1, 2);
	raw_u(&r, 3, 0, 4);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 1 (node): contains a NUL byte");

	raw_begin(&r, FRAME_CHANGE);
	raw_field(&r, 1, test_id, sizeof(test_id));
	raw_str(&r, 2, "unix1");
	raw_u(&r, 3, 1, 8);
	raw_field(&r, 4, "ali\0ce", 6);
	raw_u(&r, 5, FRAME_SECRET_CLEARTEXT, 1);
	raw_str(&r, 6, "pw");
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 4 (user): contains a NUL byte");

	raw_begin(&r, FRAME_CHANGE);
	raw_field(&r, 1, test_id, sizeof(test_id));
	raw_str(&r, 2, "unix1");
	raw_u(&r, 3, 1, 8);
	raw_str(&r, 4, "alice");
	raw_u(&r, 5, FRAME_SECRET_CLEARTEXT, 1);
	raw_field(&r, 6, "p\0w", 3);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 6 (secret): contains a NUL byte");

	raw_begin(&r, FRAME_ERROR);
	raw_u(&r, 1, PSYNC_E_PROTOCOL, 2);
	raw_field(&r, 2, "bad\0", 4);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 2 (reason): contains a NUL byte");
}

static void
test_bad_characters_and_values_are_refused(void **state)
{
	struct raw r;

	(void)state;
	raw_change(&r, "ali\nce", FRAME_SECRET_CLEARTEXT, "pw");
	expect_refused(r.buf, r.len, "field 4 (user): forbidden byte 0x0a");
	raw_change(&r, "ali\xc3", FRAME_SECRET_CLEARTEXT, "pw");
	expect_refused(r.buf, r.len, "field 4 (user): not valid UTF-8");
	raw_change(&r, "alice", 3, "pw");
	expect_refused(r.buf, r.len, "field 5 (secret-kind): value 3 outside 1..2");
	raw_change(&r, "alice", FRAME_SECRET_CRYPT, "$6$salt:x");
	expect_refused(r.buf, r.len, "crypt hash has a forbidden byte");
	raw_change(&r, "alice", FRAME_SECRET_CRYPT, "plain");
	expect_refused(r.buf, r.len, "does not start with '$'");

	raw_begin(&r, FRAME_HELLO);
	raw_str(&r, 1, "node one");
	raw_u(&r, 2, 1, 2);
	raw_u(&r, 3, 0, 4);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 1 (node): forbidden byte 0x20");

	raw_begin(&r, FRAME_HELLO);
	raw_str(&r, 1, "node1");
	raw_u(&r, 2, 0, 2);
	raw_u(&r, 3, 0, 4);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 2 (version): value 0 outside");

	raw_begin(&r, FRAME_RESULT);
	raw_field(&r, 1, test_id, sizeof(test_id));
	raw_u(&r, 2, PSYNC_CODE_MAX + 1, 2);
	raw_finish(&r);
	expect_refused(r.buf, r.len, "field 2 (code): value 26 outside 0..25");
}

static void
test_encoder_refuses_what_the_decoder_would_refuse(void **state)
{
	unsigned char buf[FRAME_BUF_MAX];
	struct frame f;
	struct psync_err err;
	char big[FRAME_REASON_MAX + 2];

	(void)state;
	assert_int_equal(frame_set_hello(&f, "bad name", 1, 0, &err), 0);
	assert_int_equal(frame_encode(&f, buf, sizeof(buf), &err), -1);
	assert_non_null(strstr(err.msg, "forbidden byte 0x20"));

	/* The change type's check refuses it already when it is built. */
	assert_int_equal(frame_set_change(&f, test_id, "n1", 1, "bob",
	    FRAME_SECRET_CLEARTEXT, "p\0w", 3, &err), -1);
	assert_non_null(strstr(err.msg, "contains a NUL byte"));

	assert_int_equal(frame_set_result(&f, test_id, 99, "x", &err), -1);
	assert_int_equal(frame_set_error(&f, PSYNC_OK, "x", &err), -1);

	memset(big, 'r', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(frame_set_error(&f, PSYNC_E_PROTOCOL, big, &err), -1);
	assert_non_null(strstr(err.msg, "at most 512"));

	/* Too small an output buffer is an error, not an overflow. */
	assert_int_equal(frame_set_ping(&f, false, 1), 0);
	assert_int_equal(frame_encode(&f, buf, 8, &err), -1);
	assert_non_null(strstr(err.msg, "too small"));

	f.type = (enum frame_type)42;
	assert_int_equal(frame_encode(&f, buf, sizeof(buf), &err), -1);
	assert_non_null(strstr(err.msg, "unknown type 42"));
}

static void
test_wipe_clears_the_secret(void **state)
{
	struct frame f;
	struct psync_err err;
	static const unsigned char zero[sizeof(struct frame)];

	(void)state;
	assert_int_equal(frame_set_change(&f, test_id, "n1", 1, "bob",
	    FRAME_SECRET_CLEARTEXT, "hunter2", 7, &err), 0);
	assert_int_equal(f.u.change.secret_len, 7);
	frame_wipe(&f);
	assert_memory_equal(&f, zero, sizeof(f));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_message_type_survives_a_round_trip),
		cmocka_unit_test(test_frames_in_one_buffer_decode_one_after_another),
		cmocka_unit_test(test_incomplete_frame_asks_for_more_bytes_at_every_length),
		cmocka_unit_test(test_frame_cut_short_by_its_length_is_refused_at_every_byte),
		cmocka_unit_test(test_length_over_cap_is_refused_from_the_prefix_alone),
		cmocka_unit_test(test_frame_at_the_cap_is_measured_not_refused),
		cmocka_unit_test(test_zero_length_is_refused),
		cmocka_unit_test(test_unknown_message_type_is_refused),
		cmocka_unit_test(test_unknown_field_tag_is_refused),
		cmocka_unit_test(test_duplicate_field_is_refused),
		cmocka_unit_test(test_missing_required_field_is_refused),
		cmocka_unit_test(test_optional_reason_may_be_left_out),
		cmocka_unit_test(test_wrong_field_sizes_are_refused),
		cmocka_unit_test(test_field_running_past_the_frame_is_refused),
		cmocka_unit_test(test_nul_in_strings_and_secrets_is_refused),
		cmocka_unit_test(test_bad_characters_and_values_are_refused),
		cmocka_unit_test(test_encoder_refuses_what_the_decoder_would_refuse),
		cmocka_unit_test(test_wipe_clears_the_secret),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
