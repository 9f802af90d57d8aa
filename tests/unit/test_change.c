/*
 * The change type's one validation (lib/change/change.c), and that every layer
 * uses it: a password psync cannot carry to the store is refused where it
 * enters (the policy, so pam_psync's check role; the frame and spool
 * codec; the queue), with the same limit everywhere.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "change.h"
#include "codes.h"
#include "frame.h"
#include "policy.h"
#include "queue.h"

static const uint8_t test_id[CHANGE_ID_LEN] = { 1, 2, 3 };

static void
fill(struct change *c, const char *user, int kind, const char *secret)
{
	memset(c, 0, sizeof(*c));
	memcpy(c->id, test_id, sizeof(test_id));
	str_copy(c->origin, "node1", sizeof(c->origin));
	c->time_ms = 1;
	str_copy(c->user, user, sizeof(c->user));
	c->secret_kind = (uint8_t)kind;
	c->secret_len = (uint16_t)strlen(secret);
	memcpy(c->secret, secret, c->secret_len);
}

static void
test_user_names_as_peers_spell_them(void **state)
{
	char longname[CHANGE_USER_MAX + 2];

	(void)state;
	assert_true(change_user_valid("alice"));
	assert_true(change_user_valid("John Smith"));	/* Windows allows it */
	assert_true(change_user_valid("J\xc3\xa9r\xc3\xb4me"));
	assert_false(change_user_valid(""));
	assert_false(change_user_valid("a\nb"));
	assert_false(change_user_valid("a\x7f"));
	assert_false(change_user_valid("\xff\xfe"));	/* not UTF-8 */
	memset(longname, 'a', sizeof(longname) - 1);
	longname[CHANGE_USER_MAX + 1] = '\0';
	assert_false(change_user_valid(longname));
	longname[CHANGE_USER_MAX] = '\0';
	assert_true(change_user_valid(longname));
}

static void
test_secret_limits_and_crypt_form(void **state)
{
	unsigned char big[CHANGE_SECRET_MAX + 1];
	struct psync_err err;

	(void)state;
	memset(big, 'x', sizeof(big));
	assert_int_equal(change_secret_check(CHANGE_SECRET_CLEARTEXT, big,
	    CHANGE_SECRET_MAX, &err), PSYNC_OK);
	assert_int_equal(change_secret_check(CHANGE_SECRET_CLEARTEXT, big,
	    CHANGE_SECRET_MAX + 1, &err), PSYNC_E_BAD_PASSWORD);
	assert_non_null(strstr(err.msg, "must be 1 to 511"));
	assert_int_equal(change_secret_check(CHANGE_SECRET_CLEARTEXT, big, 0,
	    &err), PSYNC_E_BAD_PASSWORD);
	assert_int_equal(change_secret_check(CHANGE_SECRET_CRYPT,
	    (const unsigned char *)"$6$s$h", 6, &err), PSYNC_OK);
	assert_int_equal(change_secret_check(CHANGE_SECRET_CRYPT,
	    (const unsigned char *)"$6$s:h", 6, &err), PSYNC_E_BAD_PASSWORD);
	assert_int_equal(change_secret_check(CHANGE_SECRET_CRYPT,
	    (const unsigned char *)"plain", 5, &err), PSYNC_E_BAD_PASSWORD);
	assert_int_equal(change_secret_check(3, big, 1, &err),
	    PSYNC_E_BAD_PASSWORD);
}

static void
test_whole_change_codes(void **state)
{
	struct change c;
	struct psync_err err;

	(void)state;
	fill(&c, "alice", CHANGE_SECRET_CLEARTEXT, "Pw-1");
	assert_int_equal(change_check(&c, &err), PSYNC_OK);
	fill(&c, "", CHANGE_SECRET_CLEARTEXT, "Pw-1");
	assert_int_equal(change_check(&c, &err), PSYNC_E_BAD_USER);
	fill(&c, "alice", CHANGE_SECRET_CLEARTEXT, "Pw-1");
	str_copy(c.origin, "bad node", sizeof(c.origin));
	assert_int_equal(change_check(&c, &err), PSYNC_E_PROTOCOL);
	fill(&c, "alice", CHANGE_SECRET_CRYPT, "not-a-hash");
	assert_int_equal(change_check(&c, &err), PSYNC_E_BAD_PASSWORD);
	/* The reason names the user and never the secret. */
	assert_non_null(strstr(err.msg, "alice"));
	assert_null(strstr(err.msg, "not-a-hash"));
	change_wipe(&c);
}

/* 600 bytes: over the limit of every layer, refused at each entry. */
static void
test_600_byte_password_is_refused_where_it_enters(void **state)
{
	char pw[601];
	struct pw_rules rules;
	struct frame f;
	struct psync_err err;
	char reason[256];
	char dir[] = "/tmp/test_change-XXXXXX";
	unsigned char key[32];
	struct queue *q = NULL;
	struct change c;
	const char *peers[] = { "B" };

	(void)state;
	memset(pw, 'p', 600);
	pw[600] = '\0';
	memset(&rules, 0, sizeof(rules));
	/* The policy, which pam_psync's check role runs before pam_unix. */
	assert_int_equal(policy_check_password(&rules, "alice", pw, "policy",
	    reason, sizeof(reason)), PSYNC_E_BAD_PASSWORD);
	assert_non_null(strstr(reason, "at most 511"));
	/* The frame, which the spool and the wire carry. */
	assert_int_equal(frame_set_change(&f, test_id, "node1", 1, "alice",
	    FRAME_SECRET_CLEARTEXT, pw, 600, &err), -1);
	assert_int_equal(err.code, PSYNC_E_BAD_PASSWORD);
	/* The queue. */
	assert_non_null(mkdtemp(dir));
	memset(key, 7, sizeof(key));
	assert_int_equal(queue_open(&q, dir, key, NULL, &err), 0);
	memset(&c, 0, sizeof(c));
	memcpy(c.id, test_id, sizeof(test_id));
	str_copy(c.origin, "node1", sizeof(c.origin));
	str_copy(c.user, "alice", sizeof(c.user));
	c.secret_kind = CHANGE_SECRET_CLEARTEXT;
	c.secret_len = CHANGE_SECRET_MAX + 1;	/* as a broken caller might */
	memset(c.secret, 'p', CHANGE_SECRET_MAX);
	assert_int_equal(queue_add(q, &c, NULL, peers, 1, &err), -1);
	assert_int_equal(err.code, PSYNC_E_BAD_PASSWORD);
	c.secret_len = CHANGE_SECRET_MAX;
	assert_int_equal(queue_add(q, &c, NULL, peers, 1, &err), 1);
	queue_close(q);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		assert_int_equal(system(cmd), 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_user_names_as_peers_spell_them),
		cmocka_unit_test(test_secret_limits_and_crypt_form),
		cmocka_unit_test(test_whole_change_codes),
		cmocka_unit_test(test_600_byte_password_is_refused_where_it_enters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
