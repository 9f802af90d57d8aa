/* Name handling tests: reduction, validation, the map file, account lookups. */
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
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "codes.h"
#include "names.h"

static void
test_domain_and_realm_are_stripped(void **state)
{
	char out[NAME_MAX_LEN];

	(void)state;
	assert_int_equal(names_reduce("CORP\\alice", out, sizeof(out)), 0);
	assert_string_equal(out, "alice");
	assert_int_equal(names_reduce("alice@CORP.EXAMPLE", out, sizeof(out)), 0);
	assert_string_equal(out, "alice");
	assert_int_equal(names_reduce("CORP\\alice@CORP.EXAMPLE", out, sizeof(out)), 0);
	assert_string_equal(out, "alice");
	assert_int_equal(names_reduce("bob", out, sizeof(out)), 0);
	assert_string_equal(out, "bob");
	assert_int_equal(names_reduce("CORP\\", out, sizeof(out)), -1);
	assert_int_equal(names_reduce("@REALM", out, sizeof(out)), -1);
	assert_int_equal(names_reduce("abcdef", out, 4), -1);
}

static void
test_valid_names(void **state)
{
	(void)state;
	assert_true(names_valid("alice"));
	assert_true(names_valid("Bob.Smith"));
	assert_true(names_valid("j\xc3\xb6rg"));
	assert_false(names_valid(""));
	assert_false(names_valid("a:b"));
	assert_false(names_valid("a b"));
	assert_false(names_valid("a\nb"));
	assert_false(names_valid("-rf"));
	assert_false(names_valid("+ALL"));
	assert_false(names_valid("../etc"));
}

static const char map_text[] =
	"# windows-name unix-name\n"
	"Bob.Smith   bsmith\n"
	"\n"
	"CORP\\svc-app   appuser   # a comment\n";

static void
test_map_translates_both_ways(void **state)
{
	struct psync_err err;
	struct name_map *m;
	char out[NAME_MAX_LEN];

	(void)state;
	m = names_map_parse(map_text, "map", true, &err);
	assert_non_null(m);
	assert_int_equal(names_to_unix(m, "bob.smith", out, sizeof(out)), 0);
	assert_string_equal(out, "bsmith");
	assert_int_equal(names_to_unix(m, "CORP\\Bob.Smith", out, sizeof(out)), 0);
	assert_string_equal(out, "bsmith");
	assert_int_equal(names_to_unix(m, "CORP\\svc-app", out, sizeof(out)), 0);
	assert_string_equal(out, "appuser");
	assert_int_equal(names_to_unix(m, "CORP\\carol", out, sizeof(out)), 0);
	assert_string_equal(out, "carol");
	assert_int_equal(names_to_peer(m, "bsmith", out, sizeof(out)), 0);
	assert_string_equal(out, "Bob.Smith");
	assert_int_equal(names_to_peer(m, "carol", out, sizeof(out)), 0);
	assert_string_equal(out, "carol");
	names_map_free(m);

	m = names_map_parse(map_text, "map", false, &err);
	assert_non_null(m);
	assert_int_equal(names_to_unix(m, "bob.smith", out, sizeof(out)), 0);
	assert_string_equal(out, "bob.smith");
	names_map_free(m);
}

static void
test_map_errors_name_file_and_line(void **state)
{
	struct psync_err err;

	(void)state;
	assert_null(names_map_parse("a b\nlonely\n", "m.txt", true, &err));
	assert_string_equal(err.msg, "m.txt:2: expected 'windows-name unix-name'");
	assert_null(names_map_parse("a b c\n", "m.txt", true, &err));
	assert_string_equal(err.msg, "m.txt:1: expected 'windows-name unix-name'");
	assert_null(names_map_parse("a b\nA c\n", "m.txt", true, &err));
	assert_string_equal(err.msg, "m.txt:2: 'A' is mapped twice");
	assert_null(names_map_parse("a b:c\n", "m.txt", true, &err));
	assert_string_equal(err.msg, "m.txt:1: 'b:c' is not a valid UNIX user name");
	assert_null(names_map_load("/nonexistent/map", true, &err));
	assert_int_equal(err.code, PSYNC_E_FILE_NOT_FOUND);
}

static char tmpdir[64];
static struct store_conf store;

static void
put(const char *name, const char *text)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
setup_files(void **state)
{
	char shadow[1024];
	long today = (long)(time(NULL) / 86400);

	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/psync-acct-XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	put("passwd",
	    "root:x:0:0:root:/root:/bin/bash\n"
	    "alice:x:1001:1001::/home/alice:/bin/sh\n"
	    "Bob:x:1002:100::/home/bob:/bin/sh\n"
	    "carol:x:1003:100::/home/carol:/bin/sh\n"
	    "CAROL:x:1004:100::/home/carol2:/bin/sh\n"
	    "dave:x:1005:100::/home/dave:/bin/sh\n"
	    "erin:$6$salt$hash0123456789:1006:100::/home/erin:/bin/sh\n");
	snprintf(shadow, sizeof(shadow),
	    "root:$y$j9T$abc$def:19000:0:99999:7:::\n"
	    "alice:$y$j9T$abc$def:19000:0:99999:7:::\n"
	    "Bob:!$y$j9T$abc$def:19000:0:99999:7:::\n"
	    "carol:*:19000:0:99999:7:::\n"
	    "dave:$y$j9T$abc$def:19000:0:99999:7::%ld:\n", today - 1);
	put("shadow", shadow);
	put("group",
	    "root:x:0:\n"
	    "users:x:100:\n"
	    "alice:x:1001:\n"
	    "admins:x:2000:bob,alice\n"
	    "sync:x:2001:Bob\n");
	store.type = STORE_FILES;
	return 0;
}

static int
teardown_files(void **state)
{
	const char *names[] = { "passwd", "shadow", "group" };
	char path[128];
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
		unlink(path);
	}
	rmdir(tmpdir);
	return 0;
}

static void
paths(bool hashes_in_passwd)
{
	static char p[128], s[128], g[128];

	snprintf(p, sizeof(p), "%s/passwd", tmpdir);
	snprintf(s, sizeof(s), "%s/shadow", tmpdir);
	snprintf(g, sizeof(g), "%s/group", tmpdir);
	store.passwd_file = p;
	store.shadow_file = s;
	store.group_file = g;
	store.hashes_in_passwd = hashes_in_passwd;
}

static void
test_account_lookup_reads_the_store_files(void **state)
{
	static char missing[] = "/nonexistent/passwd";
	struct account a;
	struct psync_err err;

	(void)state;
	paths(false);
	assert_int_equal(account_lookup(&store, "alice", true, &a, &err), 0);
	assert_int_equal(a.uid, 1001);
	assert_true(account_in_group(&a, "alice"));
	assert_true(account_in_group(&a, "admins"));
	assert_false(account_in_group(&a, "sync"));
	assert_false(a.locked || a.disabled || a.expired);
	account_clear(&a);

	/* Case folded to the one matching account; supplementary by exact name. */
	assert_int_equal(account_lookup(&store, "bob", true, &a, &err), 0);
	assert_string_equal(a.name, "Bob");
	assert_true(a.locked);
	assert_true(account_in_group(&a, "users"));
	assert_true(account_in_group(&a, "sync"));
	assert_false(account_in_group(&a, "admins"));
	account_clear(&a);
	assert_int_equal(account_lookup(&store, "bob", false, &a, &err), 1);
	assert_int_equal(err.code, PSYNC_E_NO_USER);

	/* Exact match wins over a folded one; two folded matches are ambiguous. */
	assert_int_equal(account_lookup(&store, "carol", true, &a, &err), 0);
	assert_int_equal(a.uid, 1003);
	assert_true(a.disabled);
	account_clear(&a);
	assert_int_equal(account_lookup(&store, "Carol", true, &a, &err), -1);
	assert_int_equal(err.code, PSYNC_E_BAD_USER);
	assert_non_null(strstr(err.msg, "matches both"));

	assert_int_equal(account_lookup(&store, "dave", true, &a, &err), 0);
	assert_true(a.expired);
	account_clear(&a);

	assert_int_equal(account_lookup(&store, "nobody", true, &a, &err), 1);
	assert_string_equal(err.msg, "user nobody does not exist");

	paths(true);
	assert_int_equal(account_lookup(&store, "erin", true, &a, &err), 0);
	assert_true(a.has_shadow);
	assert_false(a.locked || a.disabled);
	account_clear(&a);

	store.passwd_file = missing;
	assert_int_equal(account_lookup(&store, "alice", true, &a, &err), -1);
	assert_int_equal(err.code, PSYNC_E_OPEN);
	assert_non_null(strstr(err.msg, "/nonexistent/passwd"));
}

static void
test_hash_classification(void **state)
{
	bool locked, disabled;

	(void)state;
	account_classify_hash("$y$j9T$a$b", &locked, &disabled);
	assert_false(locked || disabled);
	account_classify_hash("!$y$j9T$a$b", &locked, &disabled);
	assert_true(locked);
	account_classify_hash("!", &locked, &disabled);
	assert_true(locked);
	account_classify_hash("*", &locked, &disabled);
	assert_true(disabled);
	account_classify_hash("", &locked, &disabled);
	assert_true(disabled);
	account_classify_hash("abcdefghijklm", &locked, &disabled);	/* DES */
	assert_false(locked || disabled);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_domain_and_realm_are_stripped),
		cmocka_unit_test(test_valid_names),
		cmocka_unit_test(test_map_translates_both_ways),
		cmocka_unit_test(test_map_errors_name_file_and_line),
		cmocka_unit_test_setup_teardown(test_account_lookup_reads_the_store_files,
		    setup_files, teardown_files),
		cmocka_unit_test(test_hash_classification),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
