/* The key rotation messages of the privsep codec, and key ids in PSK
   identities. */
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

static long
enc(const struct pmsg *m)
{
	struct psync_err err;

	return pmsg_encode(m, buf, sizeof(buf), &err);
}

static void
test_key_proposed_round_trips_and_refuses_id_0(void **state)
{
	struct pmsg m, d;
	struct psync_err err;
	long len;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = PMSG_KEY_PROPOSED;
	m.reqid = 9;
	strcpy(m.u.kproposed.peer, "hostb");
	m.u.kproposed.auth_id = 3;
	m.u.kproposed.key_id = 4;
	memset(m.u.kproposed.key, 0x5a, FRAME_KEY_LEN);
	len = enc(&m);
	assert_true(len > PMSG_HDR_LEN);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), len);
	assert_string_equal(d.u.kproposed.peer, "hostb");
	assert_int_equal(d.u.kproposed.auth_id, 3);
	assert_int_equal(d.u.kproposed.key_id, 4);
	assert_memory_equal(d.u.kproposed.key, m.u.kproposed.key,
	    FRAME_KEY_LEN);
	/* The parent's own message type may not come from the child. */
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_PARENT, &d,
	    &err), -1);
	m.u.kproposed.key_id = 0;
	len = enc(&m);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);
	assert_non_null(strstr(err.msg, "key id"));
	/* A key one byte short is a truncated message, never a key. */
	m.u.kproposed.key_id = 4;
	len = enc(&m);
	buf[7] = (unsigned char)(buf[7] - 1);
	assert_int_equal(pmsg_decode(buf, (size_t)len - 1, PMSG_FROM_CHILD,
	    &d, &err), -1);
}

static void
test_key_result_code_range_and_used_id(void **state)
{
	struct pmsg m, d;
	struct psync_err err;
	long len;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = PMSG_KEY_RESULT;
	strcpy(m.u.kresult.peer, "hostb");
	m.u.kresult.key_id = 2;
	m.u.kresult.code = -1;
	strcpy(m.u.kresult.reason, "unreachable");
	len = enc(&m);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), len);
	assert_int_equal(d.u.kresult.code, -1);
	assert_string_equal(d.u.kresult.reason, "unreachable");
	m.u.kresult.code = PSYNC_CODE_MAX + 1;
	len = enc(&m);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);

	memset(&m, 0, sizeof(m));
	m.type = PMSG_KEY_USED;
	strcpy(m.u.kused.peer, "hostb");
	m.u.kused.key_id = 7;
	len = enc(&m);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), len);
	assert_int_equal(d.u.kused.key_id, 7);
	m.u.kused.key_id = 0;
	len = enc(&m);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_CHILD, &d,
	    &err), -1);
}

static void
test_peer_next_key_must_have_a_higher_id(void **state)
{
	struct pmsg m, d;
	struct psync_err err;
	long len;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = PMSG_PEER;
	strcpy(m.u.peer.name, "hostb");
	m.u.peer.protocol = PROTO_PSYNC;
	m.u.peer.direction = DIR_BOTH;
	m.u.peer.key_len = FRAME_KEY_LEN;
	m.u.peer.key_id = 5;
	m.u.peer.has_next = 1;
	m.u.peer.use_next = 1;
	m.u.peer.next_id = 6;
	memset(m.u.peer.next, 0x11, FRAME_KEY_LEN);
	len = enc(&m);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_PARENT, &d,
	    &err), len);
	assert_int_equal(d.u.peer.key_id, 5);
	assert_int_equal(d.u.peer.next_id, 6);
	assert_int_equal(d.u.peer.use_next, 1);
	assert_memory_equal(d.u.peer.next, m.u.peer.next, FRAME_KEY_LEN);
	m.u.peer.next_id = 5;
	len = enc(&m);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_PARENT, &d,
	    &err), -1);
	/* Without a next key the message is shorter and still exact. */
	m.u.peer.has_next = 0;
	m.u.peer.use_next = 0;
	m.u.peer.next_id = 0;
	memset(m.u.peer.next, 0, FRAME_KEY_LEN);
	len = enc(&m);
	assert_int_equal(pmsg_decode(buf, (size_t)len, PMSG_FROM_PARENT, &d,
	    &err), len);
	assert_int_equal(d.u.peer.has_next, 0);
}

static void
test_identity_carries_the_key_id_only_above_0(void **state)
{
	char name[FRAME_NAME_MAX + 1], id[FRAME_NAME_MAX + 1];
	uint32_t k;

	(void)state;
	assert_int_equal(pmsg_identity_make("hosta", 0, id, sizeof(id)), 0);
	assert_string_equal(id, "hosta");
	assert_int_equal(pmsg_identity_make("hosta", 12, id, sizeof(id)), 0);
	assert_string_equal(id, "hosta#12");
	assert_int_equal(pmsg_identity_parse("hosta#12", name, sizeof(name),
	    &k), 0);
	assert_string_equal(name, "hosta");
	assert_int_equal(k, 12);
	assert_int_equal(pmsg_identity_parse("hosta", name, sizeof(name),
	    &k), 0);
	assert_int_equal(k, 0);
	assert_int_equal(pmsg_identity_parse("hosta#4294967295", name,
	    sizeof(name), &k), 0);
	assert_true(k == UINT32_MAX);
	/* Malformed: no name, no digits, a leading zero, #0, overflow,
	   junk after the digits, two hashes. */
	assert_int_equal(pmsg_identity_parse("#3", name, sizeof(name), &k),
	    -1);
	assert_int_equal(pmsg_identity_parse("hosta#", name, sizeof(name),
	    &k), -1);
	assert_int_equal(pmsg_identity_parse("hosta#01", name, sizeof(name),
	    &k), -1);
	assert_int_equal(pmsg_identity_parse("hosta#0", name, sizeof(name),
	    &k), -1);
	assert_int_equal(pmsg_identity_parse("hosta#4294967296", name,
	    sizeof(name), &k), -1);
	assert_int_equal(pmsg_identity_parse("hosta#3x", name, sizeof(name),
	    &k), -1);
	assert_int_equal(pmsg_identity_parse("a#1#2", name, sizeof(name),
	    &k), -1);
	/* A name too long for the caller's buffer is refused, not cut. */
	assert_int_equal(pmsg_identity_parse("hosta#1", name, 5, &k), -1);
	assert_int_equal(pmsg_identity_make("ho#st", 1, id, sizeof(id)), -1);
	assert_int_equal(pmsg_identity_make("hosta", 12, id, 8), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_proposed_round_trips_and_refuses_id_0),
		cmocka_unit_test(test_key_result_code_range_and_used_id),
		cmocka_unit_test(test_peer_next_key_must_have_a_higher_id),
		cmocka_unit_test(test_identity_carries_the_key_id_only_above_0),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
