/*
 * Judge then apply (lib/store/judge.c), for what issue 14 added: an item says
 * whether an echo is plausible, and only then does the store verify the
 * password against the stored hash ("unchanged") before hashing it.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codes.h"
#include "config_file.h"
#include "judge.h"
#include "log.h"
#include "policy.h"
#include "store.h"
#include "store_int.h"

struct fx {
	char			 dir[64];
	struct psync_config	*conf;
	struct policy		*pol;
};

static void
put_file(const char *dir, const char *name, const char *text, mode_t mode)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
}

static void
print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "# %s\n", message);
}

static int
setup(void **state)
{
	struct store_hash_params p = { HASH_SHA512, 1000, 1000 };
	struct fx *fx = calloc(1, sizeof(*fx));
	struct psync_err err;
	char conf[1024], hash[128], shadow[512];

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/psync-test-judge.XXXXXX");
	if (mkdtemp(fx->dir) == NULL ||
	    store_hash_password(&p, "alice-old", hash, sizeof(hash),
	    &err) == -1)
		return -1;
	put_file(fx->dir, "passwd", "alice:x:1001:100::/:/bin/sh\n", 0644);
	snprintf(shadow, sizeof(shadow), "alice:%s:19000:0:99999:7:::\n",
	    hash);
	put_file(fx->dir, "shadow", shadow, 0640);
	put_file(fx->dir, "group", "users:x:100:\n", 0644);
	snprintf(conf, sizeof(conf),
	    "store {\n shadow-file = \"%s/shadow\"\n"
	    " passwd-file = \"%s/passwd\"\n group-file = \"%s/group\"\n"
	    " hash-method = sha512\n hash-cost = 1000\n}\n"
	    "queue {\n directory = \"%s/queue\"\n}\n",
	    fx->dir, fx->dir, fx->dir, fx->dir);
	fx->conf = config_load_string(conf, "judge-test.conf", print_problem,
	    NULL);
	if (fx->conf == NULL)
		return -1;
	fx->pol = policy_new(fx->conf, &err);
	if (fx->pol == NULL)
		return -1;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	policy_free(fx->pol);
	config_free(fx->conf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

/* Apply alice's password pw; how many verifies it cost. */
static unsigned long
apply(struct fx *fx, const char *pw, bool no_echo, enum store_outcome want)
{
	struct judge_item it;
	unsigned long before = store_stat_verified;

	memset(&it, 0, sizeof(it));
	it.user = "alice";
	it.kind = STORE_SECRET_CLEARTEXT;
	it.secret = pw;
	it.no_echo = no_echo;
	assert_int_equal(judge_apply(fx->conf, fx->pol, NULL, &it, 1), 0);
	if (it.code != PSYNC_OK || it.outcome != want)
		fail_msg("%s: code %d, %s: %s", pw, it.code,
		    store_outcome_name(it.outcome), it.reason);
	return store_stat_verified - before;
}

static void
test_by_default_the_store_verifies_and_finds_unchanged(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(apply(fx, "alice-old", false, STORE_UNCHANGED), 1);
	assert_int_equal(apply(fx, "alice-new", false, STORE_APPLIED), 1);
}

static void
test_no_echo_hashes_without_verify(void **state)
{
	struct fx *fx = *state;

	/* Even the stored password is written anew: no verify ran. */
	assert_int_equal(apply(fx, "alice-old", true, STORE_APPLIED), 0);
	assert_int_equal(apply(fx, "alice-new", true, STORE_APPLIED), 0);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_by_default_the_store_verifies_and_finds_unchanged),
		T(test_no_echo_hashes_without_verify),
	};
#undef T

	log_set_level(LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
