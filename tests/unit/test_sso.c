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

#include <stdbool.h>
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

/* Warnings seen through the callback. */
struct warnings {
	size_t	n;
	char	text[16][512];
};

static void
on_warning(void *ctx, const char *message)
{
	struct warnings *w = ctx;

	if (w->n < 16)
		snprintf(w->text[w->n], sizeof(w->text[0]), "%s", message);
	w->n++;
}

static bool
warned(const struct warnings *w, const char *text)
{
	size_t i;

	for (i = 0; i < w->n && i < 16; i++)
		if (strcmp(w->text[i], text) == 0)
			return true;
	return false;
}

static char *
convert_warn(const char *text, const char *name, struct warnings *w,
    struct psync_err *err, int *rc)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);

	assert_non_null(f);
	memset(w, 0, sizeof(*w));
	*rc = sso_convert_warn(text, name, f, on_warning, w, err);
	fclose(f);
	return out;
}

static void
test_real_legacy_file_converts_with_warnings_not_refusals(void **state)
{
	struct warnings w;
	struct psync_err err;
	struct psync_config *c;
	const struct peer_conf *p;
	char *text = slurp("tests/data/sso-legacy.conf"), *out;
	size_t i;
	int rc;

	(void)state;
	out = convert_warn(text, "sso-legacy.conf", &w, &err, &rc);
	if (rc != 0)
		fail_msg("refused: %s", err.msg);
	c = config_load_string(out, "converted", report, NULL);
	assert_non_null(c);
	/* FILE_PATH=/etc is the directory of passwd and shadow. */
	assert_string_equal(c->store.shadow_file, "/etc/shadow");
	assert_string_equal(c->store.passwd_file, "/etc/passwd");
	assert_false(c->store.hashes_in_passwd);
	assert_null(strstr(out, "shadow-file = \"/etc\"\n"));
	assert_non_null(strstr(out, "# FILE_PATH=/etc: the directory of passwd "
	    "and shadow"));
	/* NIS is off: its placeholder path is a warning, not a refusal. */
	assert_null(c->store.nis_make_dir);
	assert_true(warned(&w, "sso-legacy.conf:17: warning: NIS_UPDATE_PATH: "
	    "expected an absolute path, got 'bidon'; ignored: USE_NIS is off"));
	assert_true(warned(&w, "sso-legacy.conf:19: warning: SYNC_RETRIES is "
	    "empty, as if it were not set"));
	/* Each warning is in the output too, as a comment. */
	for (i = 0; i < w.n; i++)
		assert_non_null(strstr(out, w.text[i]));
	assert_int_equal(w.n, 2);
	assert_int_equal(strncmp(w.text[0], "sso-legacy.conf:17: ", 20), 0);
	assert_string_equal(c->policy.sync_users, "+ALL,-root");
	assert_int_equal(c->queue.retry_interval, 30);
	assert_int_equal(c->n_peers, 3);
	p = config_find_peer(c, "dc01.corp.example");
	assert_non_null(p);
	assert_int_equal(p->direction, DIR_SEND);
	assert_string_equal(p->legacy_key, "Legacy$Key#2009ab");
	p = config_find_peer(c, "192.0.2.22");
	assert_non_null(p);
	assert_string_equal(p->legacy_key, "Other#Key-4567x");
	assert_int_equal(p->mepp_key_words, 4);
	config_free(c);
	free(out);
	free(text);
}

static void
test_file_path_is_the_directory_of_passwd_and_shadow(void **state)
{
	static const struct {
		const char	*file_path;
		const char	*use_shadow;
		const char	*passwd;
		const char	*shadow;	/* NULL: hashes in passwd */
	} cases[] = {
		{ "/etc", "1", "/etc/passwd", "/etc/shadow" },
		{ "/etc/", "1", "/etc/passwd", "/etc/shadow" },
		{ "/", "1", "/passwd", "/shadow" },
		{ "/srv/auth", "0", "/srv/auth/passwd", NULL },
		/* A path naming the file: its directory. */
		{ "/etc/shadow", "1", "/etc/passwd", "/etc/shadow" },
		{ "/etc/passwd", "0", "/etc/passwd", NULL },
		{ "/shadow", "1", "/passwd", "/shadow" },
	};
	struct warnings w;
	struct psync_err err;
	struct psync_config *c;
	char text[256], *out;
	size_t i;
	int rc;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), "SYNC_HOSTS=(192.0.2.5)\n"
		    "FILE_PATH=%s\nUSE_SHADOW=%s\n", cases[i].file_path,
		    cases[i].use_shadow);
		out = convert_warn(text, "sso.conf", &w, &err, &rc);
		assert_int_equal(rc, 0);
		c = config_load_string(out, "converted", report, NULL);
		assert_non_null(c);
		if (strcmp(c->store.passwd_file, cases[i].passwd) != 0 ||
		    (cases[i].shadow != NULL && strcmp(c->store.shadow_file,
		    cases[i].shadow) != 0) || c->store.hashes_in_passwd !=
		    (cases[i].shadow == NULL))
			fail_msg("FILE_PATH=%s: passwd %s shadow %s (in passwd: "
			    "%d), expected %s and %s", cases[i].file_path,
			    c->store.passwd_file, c->store.shadow_file,
			    c->store.hashes_in_passwd, cases[i].passwd,
			    cases[i].shadow != NULL ? cases[i].shadow : "-");
		config_free(c);
		free(out);
	}
}

static void
test_keys_that_cannot_matter_warn_and_keys_that_matter_refuse(void **state)
{
	struct warnings w;
	struct psync_err err;
	struct psync_config *c;
	char *out;
	int rc;

	(void)state;
	out = convert_warn("SYNC_HOSTS=(192.0.2.5)\nTEMP_FILE_PATH=tmp\n"
	    "SYNC_RETRIES=lots\nIGNORE_PROPAGATION_ERRORS=sometimes\n"
	    "TEMP_FILE_PATH=/var/tmp\nNIS_UPDATE_PATH=bidon\n", "sso.conf", &w,
	    &err, &rc);
	if (rc != 0)
		fail_msg("refused: %s", err.msg);
	c = config_load_string(out, "converted", report, NULL);
	assert_non_null(c);
	config_free(c);
	assert_true(warned(&w, "sso.conf:2: warning: TEMP_FILE_PATH: expected "
	    "an absolute path, got 'tmp'; ignored: psync has no equivalent"));
	assert_true(warned(&w, "sso.conf:3: warning: SYNC_RETRIES: expected a "
	    "number, got 'lots'; ignored: psync has no equivalent"));
	assert_true(warned(&w, "sso.conf:4: warning: IGNORE_PROPAGATION_ERRORS: "
	    "expected 1 or 0, got 'sometimes'; ignored: psync has no "
	    "equivalent"));
	assert_true(warned(&w, "sso.conf:5: warning: TEMP_FILE_PATH is already "
	    "set on line 2; the first value is kept"));
	/* USE_NIS is not set: off, as the legacy default. */
	assert_true(warned(&w, "sso.conf:6: warning: NIS_UPDATE_PATH: expected "
	    "an absolute path, got 'bidon'; ignored: USE_NIS is off"));
	assert_int_equal(w.n, 5);
	/* In the order of the file's lines. */
	assert_int_equal(strncmp(w.text[0], "sso.conf:2: ", 12), 0);
	assert_int_equal(strncmp(w.text[3], "sso.conf:5: ", 12), 0);
	assert_int_equal(strncmp(w.text[4], "sso.conf:6: ", 12), 0);
	free(out);

	/* With NIS on, the same path matters: refused. */
	out = convert_warn("SYNC_HOSTS=(192.0.2.5)\nUSE_NIS=1\n"
	    "NIS_UPDATE_PATH=bidon\n", "sso.conf", &w, &err, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(err.msg, "sso.conf:3: NIS_UPDATE_PATH: expected an "
	    "absolute path, got 'bidon'");
	free(out);
	/* So does a second value of a key that matters. */
	out = convert_warn("SYNC_HOSTS=(192.0.2.5)\nUSE_NIS=0\nUSE_NIS=1\n",
	    "sso.conf", &w, &err, &rc);
	assert_int_equal(rc, -1);
	assert_string_equal(err.msg, "sso.conf:3: USE_NIS is already set on "
	    "line 2");
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
		cmocka_unit_test(test_real_legacy_file_converts_with_warnings_not_refusals),
		cmocka_unit_test(test_file_path_is_the_directory_of_passwd_and_shadow),
		cmocka_unit_test(test_keys_that_cannot_matter_warn_and_keys_that_matter_refuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
