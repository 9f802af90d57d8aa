/*
 * sso.conf importer tests: a complete legacy file converts into a
 * configuration that loads and means the same, and malformed lines are
 * refused with their number.
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

#include "config_file.h"
#include "policy.h"
#include "sso.h"

static char *
slurp(const char *rel)
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	char *buf;
	FILE *f;
	long n;

	snprintf(path, sizeof(path), "%s/%s", top != NULL ? top : "../..", rel);
	f = fopen(path, "r");
	assert_non_null(f);
	buf = calloc(1, 65536);
	assert_non_null(buf);
	n = (long)fread(buf, 1, 65535, f);
	assert_true(n > 0);
	fclose(f);
	return buf;
}

static char *
convert(const char *text, struct psync_err *err, int *rc)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	*rc = sso_convert(text, "sso.conf", f, err);
	fclose(f);
	return out;
}

static void
report(void *ctx, const char *msg)
{
	(void)ctx;
	print_error("config: %s\n", msg);
}

static void
test_complete_legacy_file_converts_to_an_equivalent_config(void **state)
{
	struct psync_err err;
	struct psync_config *c;
	const struct peer_conf *p;
	char *text = slurp("tests/data/sso.conf"), *out;
	int rc;

	(void)state;
	out = convert(text, &err, &rc);
	assert_int_equal(rc, 0);
	c = config_load_string(out, "converted", report, NULL);
	assert_non_null(c);
	assert_string_equal(c->store.shadow_file, "/etc/shadow");
	assert_false(c->store.hashes_in_passwd);
	assert_string_equal(c->store.nis_make_dir, "/var/yp");
	assert_string_equal(c->policy.sync_users, "+ALL,-root,-carol");
	assert_true(c->policy.case_ignore_name);
	assert_true(c->listen_mepp.enabled);
	assert_int_equal(c->listen_mepp.port, 6677);
	assert_int_equal(c->queue.retry_interval, 60);
	assert_int_equal(c->n_peers, 3);

	p = config_find_peer(c, "192.0.2.10");
	assert_non_null(p);
	assert_int_equal(p->protocol, PROTO_MEPP);
	assert_int_equal(p->port, 6677);
	assert_string_equal(p->legacy_key, "ABCDZ#efgh$12345");
	assert_int_equal(p->direction, DIR_BOTH);
	assert_int_equal(p->n_trusted, 1);
	assert_string_equal(p->trusted[0], "192.0.2.10");

	p = config_find_peer(c, "192.0.2.11");
	assert_non_null(p);
	assert_int_equal(p->port, 6688);
	assert_string_equal(p->legacy_key, "Zyx#9876-Wvu$54");

	/* A host name cannot be trusted by address: send only, and say so. */
	p = config_find_peer(c, "win3.corp.example");
	assert_non_null(p);
	assert_int_equal(p->direction, DIR_SEND);
	assert_non_null(strstr(out, "# win3.corp.example is a host name"));

	/* Every key without an equivalent is explained in a comment. */
	assert_non_null(strstr(out, "# TEMP_FILE_PATH has no equivalent"));
	assert_non_null(strstr(out, "# SYNC_RETRIES=5 has no equivalent"));
	assert_non_null(strstr(out, "# IGNORE_PROPAGATION_ERRORS=1"));
	config_free(c);
	free(out);
	free(text);
}

static void
test_passwd_hashes_and_sync_users_exclusion(void **state)
{
	struct psync_err err;
	struct psync_config *c;
	char *out;
	int rc;

	(void)state;
	out = convert("SYNC_HOSTS=(192.0.2.5,,Key-${HOME}-Number9)\n"
	    "USE_SHADOW=0\nFILE_PATH=/etc/passwd\nCASE_IGNORE_NAME=0\n"
	    "SYNC_USERS=ALL,-carol\nUSE_NIS=0\nNIS_UPDATE_PATH=/var/yp\n"
	    "FUTURE_KEY=1\n", &err, &rc);
	assert_int_equal(rc, 0);
	c = config_load_string(out, "converted", report, NULL);
	assert_non_null(c);
	assert_true(c->store.hashes_in_passwd);
	assert_string_equal(c->store.passwd_file, "/etc/passwd");
	assert_null(c->store.nis_make_dir);
	assert_false(c->policy.case_ignore_name);
	/* "${HOME}" must stay text, not become the environment's value. */
	assert_string_equal(c->peers[0].legacy_key, "Key-${HOME}-Number9");
	assert_int_equal(policy_sync_users_match(c->policy.sync_users, "carol",
	    false, &err), 12289);
	assert_non_null(strstr(out, "# Unknown legacy keys, not converted: FUTURE_KEY"));
	assert_non_null(strstr(out, "# NIS_UPDATE_PATH ignored: USE_NIS is off"));
	config_free(c);
	free(out);
}

static const struct {
	const char	*text;
	const char	*message;
} bad[] = {
	{ "SYNC_HOSTS=(h)\nthis is not a setting\n",
	  "sso.conf:2: expected KEY=VALUE" },
	{ "# c\n=value\n", "sso.conf:2: expected KEY=VALUE" },
	{ "SYNC_HOSTS=h1\n", "sso.conf:1: SYNC_HOSTS: expected (host[,port[,key]]) groups" },
	{ "SYNC_HOSTS=(h1\n", "sso.conf:1: SYNC_HOSTS: expected (host[,port[,key]]) groups" },
	{ "SYNC_HOSTS=()\n", "sso.conf:1: SYNC_HOSTS: empty or malformed group" },
	{ "SYNC_HOSTS=(h,1,k,x)\n", "sso.conf:1: SYNC_HOSTS: expected (host[,port[,key]]), got more than 3 fields" },
	{ "SYNC_HOSTS=(a b)\n", "sso.conf:1: SYNC_HOSTS: expected a host name or address first in each group" },
	{ "SYNC_HOSTS=( ,6677)\n", "sso.conf:1: SYNC_HOSTS: expected a host name or address first in each group" },
	{ "SYNC_HOSTS=(h,99999)\n", "sso.conf:1: SYNC_HOSTS: port of h must be 1 to 65535" },
	{ "\n\nPORT_NUMBER=http\n", "sso.conf:3: PORT_NUMBER: expected a number, got 'http'" },
	{ "USE_SHADOW=maybe\n", "sso.conf:1: USE_SHADOW: expected 1 or 0, got 'maybe'" },
	{ "FILE_PATH=shadow\n", "sso.conf:1: FILE_PATH: expected an absolute path, got 'shadow'" },
	{ "SYNC_DELAY=5\nSYNC_DELAY=6\n", "sso.conf:2: SYNC_DELAY is already set on line 1" },
	{ "SYNC_HOSTS=(h)\nSYNC_USERS=+ALL,,x\n", "sso.conf:2: SYNC_USERS: sync-users '+ALL,,x': expected comma-separated entries like +ALL,-root,+alice (empty or overlong entry)" },
	{ "SYNC_HOSTS=(h1)(h2,6677)(h1,6688)\n", "sso.conf:1: SYNC_HOSTS: h1 is listed twice" },
	{ "PORT_NUMBER=6677\n", "sso.conf: SYNC_HOSTS is missing or empty: there is no Windows server to sync with" },
};

static void
test_malformed_lines_are_refused_with_their_number(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct psync_err err;
		char *out;
		int rc;

		out = convert(bad[i].text, &err, &rc);
		if (rc != -1 || strcmp(err.msg, bad[i].message) != 0)
			fail_msg("case %zu: expected\n  %s\ngot rc %d\n  %s", i,
			    bad[i].message, rc, err.msg);
		free(out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_complete_legacy_file_converts_to_an_equivalent_config),
		cmocka_unit_test(test_passwd_hashes_and_sync_users_exclusion),
		cmocka_unit_test(test_malformed_lines_are_refused_with_their_number),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
