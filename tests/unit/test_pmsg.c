/* The privsep message codec: round trips and the decoder's refusals. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "codes.h"
#include "config_file.h"
#include "pmsg.h"

static unsigned char buf[PMSG_HDR_LEN + PMSG_MAX + 16];

static void
make_inbound(struct pmsg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = PMSG_INBOUND;
	m->reqid = 77;
	m->u.inbound.protocol = PROTO_PSYNC;
	strcpy(m->u.inbound.peer, "unix2");
	memset(m->u.inbound.change.id, 0xab, FRAME_ID_LEN);
	strcpy(m->u.inbound.change.origin, "unix2");
	m->u.inbound.change.time_ms = 1700000000123ULL;
	strcpy(m->u.inbound.change.user, "alice");
	m->u.inbound.change.secret_kind = FRAME_SECRET_CLEARTEXT;
	memcpy(m->u.inbound.change.secret, "s3cret", 6);
	m->u.inbound.change.secret_len = 6;
}

static void
test_inbound_round_trips_field_by_field(void **state)
{
	struct pmsg m, d;
	struct psync_err err;
	long len;

	(void)state;
	make_inbound(&m);
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_true(len > PMSG_HDR_LEN);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), len);
	assert_int_equal(d.type, PMSG_INBOUND);
	assert_int_equal(d.reqid, 77);
	assert_string_equal(d.u.inbound.peer, "unix2");
	assert_string_equal(d.u.inbound.change.user, "alice");
	assert_string_equal((char *)d.u.inbound.change.secret, "s3cret");
	assert_int_equal(d.u.inbound.change.secret_len, 6);
	assert_memory_equal(d.u.inbound.change.id, m.u.inbound.change.id,
	    FRAME_ID_LEN);
	assert_true(d.u.inbound.change.time_ms == 1700000000123ULL);
	/* Every prefix is "need more", never a message or an error. */
	for (long i = 0; i < len; i++)
		assert_int_equal(pmsg_decode(buf, (size_t)i, PMSG_FROM_CHILD,
		    &d, &err), 0);
}

static void
test_parent_refuses_parent_types_from_the_child(void **state)
{
	struct pmsg m, d;
	struct psync_err err;
	long len;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = PMSG_DELIVER;
	strcpy(m.u.deliver.peer, "p");
	memset(m.u.deliver.change.id, 1, FRAME_ID_LEN);
	strcpy(m.u.deliver.change.origin, "o");
	strcpy(m.u.deliver.change.user, "u");
	m.u.deliver.change.secret_kind = FRAME_SECRET_CRYPT;
	memcpy(m.u.deliver.change.secret, "$6$x", 4);
	m.u.deliver.change.secret_len = 4;
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_true(len > 0);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);
	assert_int_equal(err.code, PSYNC_E_PROTOCOL);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_PARENT, &d,
	    &err), len);
}

static void
test_length_over_cap_is_refused_from_the_header_alone(void **state)
{
	struct pmsg d;
	struct psync_err err;
	unsigned char h[PMSG_HDR_LEN] = { 0, 0, 0, PMSG_INBOUND, 0, 0, 0x40,
	    0x01, 0, 0, 0, 1 };

	(void)state;
	assert_int_equal(pmsg_decode(h, sizeof(h), PMSG_FROM_CHILD, &d, &err),
	    -1);
	assert_non_null(strstr(err.msg, "cap"));
}

static void
test_trailing_byte_and_bad_fields_are_refused(void **state)
{
	struct pmsg m, d;
	struct psync_err err;
	long len;

	(void)state;
	make_inbound(&m);
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	/* One more byte inside the declared payload. */
	buf[7]++;
	buf[len] = 0;
	assert_int_equal(pmsg_decode(buf, (size_t)len + 1, PMSG_FROM_CHILD,
	    &d, &err), -1);
	assert_non_null(strstr(err.msg, "trailing"));

	/* An unknown secret kind. */
	make_inbound(&m);
	m.u.inbound.change.secret_kind = 9;
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_true(len > 0);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);
	assert_non_null(strstr(err.msg, "secret kind"));

	/* A MEPP check claimed for a psync peer. */
	make_inbound(&m);
	m.u.inbound.mepp_type = 2;
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);

	/* An empty user. */
	make_inbound(&m);
	m.u.inbound.change.user[0] = '\0';
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);
	assert_non_null(strstr(err.msg, "user"));
}

static void
test_nul_inside_a_string_is_refused(void **state)
{
	struct pmsg m, d;
	struct psync_err err;
	long len;
	unsigned char *p;

	(void)state;
	make_inbound(&m);
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	p = memmem(buf, (size_t)len, "alice", 5);
	assert_non_null(p);
	p[2] = '\0';
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);
}

static void
test_delivery_result_code_range(void **state)
{
	struct pmsg m, d;
	struct psync_err err;
	long len;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = PMSG_DELIVERY_RESULT;
	strcpy(m.u.dresult.peer, "p");
	m.u.dresult.code = -1;
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), len);
	assert_int_equal(d.u.dresult.code, -1);
	m.u.dresult.code = PSYNC_CODE_MAX + 1;
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);
	m.u.dresult.code = -2;
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);
}

static void
test_peer_table_entry_round_trips_with_key_and_trusted(void **state)
{
	struct pmsg m, d;
	struct psync_err err;
	long len;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = PMSG_PEER;
	strcpy(m.u.peer.name, "win1");
	m.u.peer.protocol = PROTO_MEPP;
	m.u.peer.direction = DIR_BOTH;
	m.u.peer.port = 6677;
	strcpy(m.u.peer.address, "127.0.0.1");
	m.u.peer.key_len = 5;
	memcpy(m.u.peer.key, "k\0e\1y", 5);
	m.u.peer.n_trusted = 2;
	strcpy(m.u.peer.trusted[0], "127.0.0.1");
	strcpy(m.u.peer.trusted[1], "::1");
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_PARENT, &d,
	    &err), len);
	assert_memory_equal(d.u.peer.key, "k\0e\1y", 5);
	assert_string_equal(d.u.peer.trusted[1], "::1");
	m.u.peer.direction = 0;
	len = pmsg_encode(&m, buf, sizeof(buf), &err);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_PARENT, &d,
	    &err), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_inbound_round_trips_field_by_field),
		cmocka_unit_test(test_parent_refuses_parent_types_from_the_child),
		cmocka_unit_test(test_length_over_cap_is_refused_from_the_header_alone),
		cmocka_unit_test(test_trailing_byte_and_bad_fields_are_refused),
		cmocka_unit_test(test_nul_inside_a_string_is_refused),
		cmocka_unit_test(test_delivery_result_code_range),
		cmocka_unit_test(test_peer_table_entry_round_trips_with_key_and_trusted),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
