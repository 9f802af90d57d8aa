/*
 * Unit tests for lib/store/store_hash.c: login.defs, the accepted and refused
 * forms of ready-made hashes, hashing and verifying, parallel hashing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codes.h"
#include "store.h"
#include "util.h"

static char tmpdir[] = "/tmp/psync-test-hash.XXXXXX";

static int
setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *
defs_file(const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/login.defs", tmpdir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void
test_login_defs_reads_method_and_sha_rounds(void **state)
{
	struct store_hash_params p;
	struct psync_err err;

	(void)state;
	assert_int_equal(store_login_defs(defs_file(
	    "# comment\n"
	    "MAIL_DIR /var/mail\n"
	    "ENCRYPT_METHOD SHA256   # trailing comment\n"
	    "SHA_CRYPT_MIN_ROUNDS 2000\n"
	    "SHA_CRYPT_MAX_ROUNDS 3000\n"), &p, &err), 0);
	assert_int_equal(p.method, HASH_SHA256);
	assert_int_equal(p.cost, 2000);
	assert_int_equal(p.cost_max, 3000);
}

static void
test_login_defs_single_round_setting_and_quotes(void **state)
{
	struct store_hash_params p;
	struct psync_err err;

	(void)state;
	assert_int_equal(store_login_defs(defs_file(
	    "ENCRYPT_METHOD \"SHA512\"\nSHA_CRYPT_MAX_ROUNDS 6000\n"), &p,
	    &err), 0);
	assert_int_equal(p.method, HASH_SHA512);
	assert_int_equal(p.cost, 6000);
	assert_int_equal(p.cost_max, 6000);
}

static void
test_login_defs_yescrypt_cost_factor(void **state)
{
	struct store_hash_params p;
	struct psync_err err;

	(void)state;
	assert_int_equal(store_login_defs(defs_file(
	    "ENCRYPT_METHOD YESCRYPT\nYESCRYPT_COST_FACTOR 7\n"), &p, &err), 0);
	assert_int_equal(p.method, HASH_YESCRYPT);
	assert_int_equal(p.cost, 7);
}

static void
test_login_defs_missing_file_means_yescrypt(void **state)
{
	struct store_hash_params p;
	struct psync_err err;
	char path[160];

	(void)state;
	snprintf(path, sizeof(path), "%s/does-not-exist", tmpdir);
	assert_int_equal(store_login_defs(path, &p, &err), 0);
	assert_int_equal(p.method, HASH_YESCRYPT);
	assert_int_equal(p.cost, 0);
}

static void
test_login_defs_weak_method_becomes_sha512(void **state)
{
	struct store_hash_params p;
	struct psync_err err;

	(void)state;
	assert_int_equal(store_login_defs(defs_file("ENCRYPT_METHOD DES\n"),
	    &p, &err), 0);
	assert_int_equal(p.method, HASH_SHA512);
}

static void
test_login_defs_bad_values_are_errors_naming_the_line(void **state)
{
	struct store_hash_params p;
	struct psync_err err;

	(void)state;
	perr_clear(&err);
	assert_int_equal(store_login_defs(defs_file(
	    "ENCRYPT_METHOD SHA512\nSHA_CRYPT_MIN_ROUNDS lots\n"), &p, &err), -1);
	assert_non_null(strstr(err.msg, "login.defs:2: SHA_CRYPT_MIN_ROUNDS"));
	assert_int_equal(store_login_defs(defs_file(
	    "ENCRYPT_METHOD ROT13\n"), &p, &err), -1);
	assert_non_null(strstr(err.msg, "login.defs:1: ENCRYPT_METHOD"));
}

static void
test_conf_method_overrides_login_defs(void **state)
{
	struct store_conf conf;
	struct store_hash_params p;
	struct psync_err err;
	const char *defs = defs_file("ENCRYPT_METHOD SHA256\n");

	(void)state;
	memset(&conf, 0, sizeof(conf));
	conf.login_defs = (char *)(uintptr_t)defs;
	conf.hash_method = HASH_BCRYPT;
	conf.hash_cost = 5;
	assert_int_equal(store_hash_params(&conf, &p, &err), 0);
	assert_int_equal(p.method, HASH_BCRYPT);
	assert_int_equal(p.cost, 5);
	conf.hash_cost = 40;
	assert_int_equal(store_hash_params(&conf, &p, &err), -1);
	conf.hash_method = HASH_LOGIN_DEFS;
	assert_int_equal(store_hash_params(&conf, &p, &err), 0);
	assert_int_equal(p.method, HASH_SHA256);
}

static void
hash_and_verify(enum hash_method m, unsigned long cost, const char *prefix)
{
	struct store_hash_params p = { m, cost, cost };
	struct psync_err err;
	char out[256];

	perr_clear(&err);
	assert_int_equal(store_hash_password(&p, "S3cret pass", out,
	    sizeof(out), &err), 0);
	assert_memory_equal(out, prefix, strlen(prefix));
	assert_int_equal(store_hash_check(out, &err), 0);
	assert_true(store_hash_verify("S3cret pass", out));
	assert_false(store_hash_verify("S3cret pasS", out));
}

static void
test_each_method_hashes_verifiably_with_its_prefix(void **state)
{
	(void)state;
	hash_and_verify(HASH_YESCRYPT, 1, "$y$");
	hash_and_verify(HASH_SHA512, 1000, "$6$rounds=1000$");
	hash_and_verify(HASH_SHA256, 0, "$5$");
	hash_and_verify(HASH_BCRYPT, 4, "$2b$04$");
}

/* ---- costs (lib/store/store_cost.c) ---- */

static const char y_hash43[] = "HeaDTvFEMG.PU.1Ca8Isd7eP7Y.aqv2ZbhGzm24iY19";

/* A yescrypt hash of libxcrypt's cost factor (1-11), hash part made up. */
static void
yescrypt_of_cost(unsigned long cost, char *out, size_t outlen)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];

	if (crypt_gensalt_rn("$y$", cost, NULL, 0, setting,
	    sizeof(setting)) == NULL)
		fail_msg("crypt_gensalt_rn yescrypt %lu failed", cost);
	snprintf(out, outlen, "%s$%s", setting, y_hash43);
}

static void
test_hash_cost_reads_every_method(void **state)
{
	static const struct {
		const char		*hash;
		const char		*method;
		enum store_cost_kind	 kind;
		uint64_t		 value;
	} t[] = {
		{ "$y$j9T$U0uRMzRc/GKMPlqQ.a/H7.$x", "yescrypt",
		  STORE_COST_MEMORY, 16ull << 20 },
		{ "$gy$j9T$U0uRMzRc/GKMPlqQ.a/H7.$x", "gost-yescrypt",
		  STORE_COST_MEMORY, 16ull << 20 },
		/* scrypt: N = 2^14 ('C' is 14), r = 8 ('6....'), p = 1 */
		{ "$7$C6..../....SodiumChloride$x", "scrypt",
		  STORE_COST_MEMORY, 16ull << 20 },
		{ "$2b$31$CocejWtg.b4pK.Kx4CAsZO", "bcrypt", STORE_COST_LOG2, 31 },
		{ "$2a$05$x", "bcrypt", STORE_COST_LOG2, 5 },
		{ "$2y$10$x", "bcrypt", STORE_COST_LOG2, 10 },
		{ "$6$rounds=999999999$abc$x", "SHA-512", STORE_COST_ROUNDS,
		  999999999 },
		{ "$6$abc$x", "SHA-512", STORE_COST_ROUNDS, 5000 },
		{ "$5$rounds=1000$abc$x", "SHA-256", STORE_COST_ROUNDS, 1000 },
		{ "$md5,rounds=5000$abc$$x", "Sun MD5", STORE_COST_ROUNDS, 9096 },
		{ "$md5$abc$x", "Sun MD5", STORE_COST_ROUNDS, 4096 },
		{ "$sha1$480000$abc$x", "SHA-1", STORE_COST_ROUNDS, 480000 },
		/* BSDi: count 0x3f | 0x3f << 6 ... least significant first */
		{ "_J9..salt0123456789a", "BSDi DES", STORE_COST_ROUNDS, 725 },
		{ "$1$abcdefgh$0123456789012345678901", "MD5", STORE_COST_FIXED, 0 },
		{ "$3$$8846f7eaee8fb117ad06bdd830b7586c", "NT", STORE_COST_FIXED, 0 },
		{ "abJnggxhB/yWI", "DES", STORE_COST_FIXED, 0 },
	};
	struct store_hash_cost c;
	struct psync_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		perr_clear(&err);
		if (store_hash_cost(t[i].hash, &c, &err) != 0)
			fail_msg("%s: %s", t[i].hash, err.msg);
		assert_string_equal(c.method, t[i].method);
		assert_int_equal(c.kind, t[i].kind);
		if (c.value != t[i].value)
			fail_msg("%s: cost %llu, expected %llu", t[i].hash,
			    (unsigned long long)c.value,
			    (unsigned long long)t[i].value);
	}
}

static void
test_hash_cost_of_libxcrypt_yescrypt_settings(void **state)
{
	struct store_hash_cost c;
	struct psync_err err;
	char h[256];
	unsigned long cost;
	uint64_t want;

	(void)state;
	for (cost = 1; cost <= 11; cost++) {
		yescrypt_of_cost(cost, h, sizeof(h));
		assert_int_equal(store_hash_cost(h, &c, &err), 0);
		want = cost < 3 ? 1024ull << (cost + 9) : 4096ull << (cost + 7);
		if (c.value != want)
			fail_msg("cost %lu: %llu bytes, expected %llu", cost,
			    (unsigned long long)c.value,
			    (unsigned long long)want);
	}
}

static void
test_malformed_or_unknown_hashes_have_no_cost(void **state)
{
	static const char *const bad[] = {
		"", "*", "!", "*LK*", "plain", "$9$abc", "$2b$3$x", "$2b$xx$x",
		"$6$rounds=$x", "$6$rounds=12345678901$x", "$6$rounds=5x$a$b",
		"$y$$", "$y$j9", "$y$j9T", "$y$j9T!$x", "$y$j9T/$x",
		"$y$j9TA.$x",	/* upgrades (g) are not costed */
		"$7$!", "$7$C6...", "$7$C.........../$x", "$sha1$$x",
		"$sha1$12a$x", "_J9", "_J9!.salt0123456789a",
	};
	struct store_hash_cost c;
	struct psync_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		perr_clear(&err);
		if (store_hash_cost(bad[i], &c, &err) != -1)
			fail_msg("\"%s\" has a cost (%llu)", bad[i],
			    (unsigned long long)c.value);
		assert_int_equal(err.code, PSYNC_E_BAD_PASSWORD);
		assert_int_equal(store_hash_cost_check(bad[i], NULL, &err), -1);
	}
}

/* Refused with code 9, the reason naming every part of want. */
static void
assert_refused(const char *hash, const struct hash_limits *lim,
    const char *want1, const char *want2)
{
	struct psync_err err;

	perr_clear(&err);
	if (store_hash_cost_check(hash, lim, &err) != -1)
		fail_msg("%s accepted", hash);
	assert_int_equal(err.code, PSYNC_E_BAD_PASSWORD);
	if (strstr(err.msg, want1) == NULL || strstr(err.msg, want2) == NULL)
		fail_msg("reason \"%s\" lacks \"%s\" or \"%s\"", err.msg,
		    want1, want2);
}

static void
test_costly_hashes_are_refused_with_code_9_naming_the_cost(void **state)
{
	struct psync_err err;
	char h[256];

	(void)state;
	assert_refused("$2b$31$CocejWtg.b4pK.Kx4CAsZOqyWBWYx2MJbvyVONkO8OWU1ZCI5KdES",
	    NULL, "bcrypt cost 31", "limit 14 (store option "
	    "hash-max-bcrypt-cost)");
	assert_refused("$6$rounds=999999999$abcdefgh$C/UyUIoYbYZoxRzWA1jhrMzCt"
	    "oWAP4X1Y3K19W9MF2iadjXK6APn0m0eIbRgBIBf9YqHG5NBvs.aaEUSctcx51",
	    NULL, "SHA-512 rounds 999999999", "limit 1000000 (store option "
	    "hash-max-rounds)");
	yescrypt_of_cost(11, h, sizeof(h));
	assert_refused(h, NULL, "yescrypt cost N=2^18 r=32 p=1 t=0 (1024 MiB",
	    "limit of cost 8, 128 MiB (store option hash-max-yescrypt-cost)");
	assert_refused("$7$O6..../....SodiumChloride$x", NULL,
	    "scrypt cost N=2^26", "hash-max-yescrypt-cost");
	assert_refused("$y$j9T.j$U0uRMzRc/GKMPlqQ.a/H7.$x", NULL,
	    "yescrypt cost N=2^12 r=32 p=49", "hash-max-yescrypt-cost");
	assert_refused("$sha1$4000000000$abc$x", NULL, "SHA-1 rounds 4000000000",
	    "hash-max-rounds");
	/* What a Debian host makes passes. */
	yescrypt_of_cost(5, h, sizeof(h));
	assert_int_equal(store_hash_cost_check(h, NULL, &err), 0);
	yescrypt_of_cost(8, h, sizeof(h));
	assert_int_equal(store_hash_cost_check(h, NULL, &err), 0);
	assert_int_equal(store_hash_cost_check("$2b$13$x", NULL, &err), 0);
	assert_int_equal(store_hash_cost_check("$6$abc$x", NULL, &err), 0);
	assert_int_equal(store_hash_cost_check("abJnggxhB/yWI", NULL, &err), 0);
}

static void
test_hash_cost_limits_are_configurable(void **state)
{
	struct hash_limits lim = { 31, 999999999, 11 };
	struct hash_limits low = { 5, 1000, 1 };
	struct psync_err err;
	char h[256];

	(void)state;
	yescrypt_of_cost(11, h, sizeof(h));
	assert_int_equal(store_hash_cost_check(h, &lim, &err), 0);
	assert_int_equal(store_hash_cost_check("$2b$31$x", &lim, &err), 0);
	assert_int_equal(store_hash_cost_check("$6$rounds=999999999$a$x", &lim,
	    &err), 0);
	assert_refused("$2b$06$x", &low, "bcrypt cost 6", "limit 5");
	assert_refused("$6$abc$x", &low, "rounds 5000", "limit 1000");
	yescrypt_of_cost(2, h, sizeof(h));
	assert_refused(h, &low, "(2 MiB", "limit of cost 1, 1 MiB");
}

static void
test_unset_limits_are_raised_above_this_hosts_own_cost(void **state)
{
	struct store_conf conf;
	struct hash_limits lim;
	struct psync_err err;
	const char *defs;
	char h[256];

	(void)state;
	memset(&conf, 0, sizeof(conf));
	conf.hash_method = HASH_YESCRYPT;
	conf.hash_cost = 10;
	assert_int_equal(store_hash_limits(&conf, &lim, &err), 0);
	assert_int_equal(lim.yescrypt_cost, 11);
	assert_int_equal(lim.bcrypt_cost, 14);
	assert_int_equal(lim.rounds, 1000000);
	yescrypt_of_cost(10, h, sizeof(h));
	assert_int_equal(store_hash_cost_check(h, &lim, &err), 0);
	/* A host making the default cost keeps the defaults. */
	conf.hash_cost = 5;
	assert_int_equal(store_hash_limits(&conf, &lim, &err), 0);
	assert_int_equal(lim.yescrypt_cost, 8);
	conf.hash_method = HASH_SHA512;
	conf.hash_cost = 2000000;
	assert_int_equal(store_hash_limits(&conf, &lim, &err), 0);
	assert_int_equal(lim.rounds, 4000000);
	conf.hash_method = HASH_BCRYPT;
	conf.hash_cost = 15;
	assert_int_equal(store_hash_limits(&conf, &lim, &err), 0);
	assert_int_equal(lim.bcrypt_cost, 16);
	/* A value the administrator set is used as it is. */
	conf.hash_limits.bcrypt_cost = 12;
	assert_int_equal(store_hash_limits(&conf, &lim, &err), 0);
	assert_int_equal(lim.bcrypt_cost, 12);
	/* login.defs decides when the configuration does not. */
	conf.hash_method = HASH_LOGIN_DEFS;
	defs = defs_file("ENCRYPT_METHOD SHA512\n"
	    "SHA_CRYPT_MIN_ROUNDS 600000\nSHA_CRYPT_MAX_ROUNDS 900000\n");
	conf.login_defs = (char *)(uintptr_t)defs;
	assert_int_equal(store_hash_limits(&conf, &lim, &err), 0);
	assert_int_equal(lim.rounds, 1800000);
}

static void
test_accepted_hash_forms(void **state)
{
	static const char *const good[] = {
		"$y$j9T$U0uRMzRc/GKMPlqQ.a/H7.$HeaDTvFEMG.PU.1Ca8Isd7eP7Y.aqv2ZbhGzm24iY19",
		"$6$abcdefgh$C/UyUIoYbYZoxRzWA1jhrMzCtoWAP4X1Y3K19W9MF2iadjXK6APn0m0eIbRgBIBf9YqHG5NBvs.aaEUSctcx51",
		"$6$rounds=5000$abcdefgh$C/UyUIoYbYZoxRzWA1jhrMzCtoWAP4X1Y3K19W9MF2iadjXK6APn0m0eIbRgBIBf9YqHG5NBvs.aaEUSctcx51",
		"$5$oThbi3nsHvYfOhRv$mmAOkR6qBinQHhmodDSnpZ07828FcWgla.GZqHzsqj0",
		"$2b$05$CocejWtg.b4pK.Kx4CAsZOqyWBWYx2MJbvyVONkO8OWU1ZCI5KdES",
		"$2y$05$CocejWtg.b4pK.Kx4CAsZOqyWBWYx2MJbvyVONkO8OWU1ZCI5KdES",
		"$2a$05$CocejWtg.b4pK.Kx4CAsZOqyWBWYx2MJbvyVONkO8OWU1ZCI5KdES",
	};
	struct psync_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		perr_clear(&err);
		if (store_hash_check(good[i], &err) != 0)
			fail_msg("%s refused: %s", good[i], err.msg);
	}
}

static void
test_refused_hash_forms_are_code_9(void **state)
{
	static const char *const bad[] = {
		"",
		"plain",
		"!",
		"*",
		"abJnggxhB/yWI",					/* DES */
		"$1$abcdefgh$0123456789012345678901",			/* MD5 */
		"$y$j9T$salt$short",
		"$y$j9T$U0uRMzRc/GKMPlqQ.a/H7.$HeaDTvFEMG.PU.1Ca8Isd7eP7Y.aqv2ZbhGzm24iY19:",
		"$6$abcdefgh$C/UyUIoYbYZoxRzWA1jhrMzCtoWAP4X1Y3K19W9MF2iadjXK6APn0m0eIbRgBIBf9YqHG5NBvs.aaEUSctcx5",
		"$6$rounds=10$abcdefgh$C/UyUIoYbYZoxRzWA1jhrMzCtoWAP4X1Y3K19W9MF2iadjXK6APn0m0eIbRgBIBf9YqHG5NBvs.aaEUSctcx51",
		"$6$abcdefghijklmnopq$C/UyUIoYbYZoxRzWA1jhrMzCtoWAP4X1Y3K19W9MF2iadjXK6APn0m0eIbRgBIBf9YqHG5NBvs.aaEUSctcx51",
		"$5$oThbi3nsHvYfOhRv$mmAOkR6qBinQHhmodDSnpZ07828FcWgla.GZqHzsqj0\n",
		"$2b$03$CocejWtg.b4pK.Kx4CAsZOqyWBWYx2MJbvyVONkO8OWU1ZCI5KdES",
		"$2b$05$CocejWtg.b4pK.Kx4CAsZOqyWBWYx2MJbvyVONkO8OWU1ZCI5KdE",
		"$2x$05$CocejWtg.b4pK.Kx4CAsZOqyWBWYx2MJbvyVONkO8OWU1ZCI5KdES",
	};
	struct psync_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		perr_clear(&err);
		if (store_hash_check(bad[i], &err) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
		assert_int_equal(err.code, PSYNC_E_BAD_PASSWORD);
		assert_true(err.msg[0] != '\0');
	}
}

static void
test_parallel_hashing_gives_verifiable_distinct_hashes(void **state)
{
	enum { N = 24 };
	struct store_hash_params p = { HASH_SHA256, 1000, 1000 };
	const char *pw[N];
	char *out[N], buf[N][16];
	size_t i, j;

	(void)state;
	for (i = 0; i < N; i++) {
		snprintf(buf[i], sizeof(buf[i]), "pw-%zu", i % 12);
		pw[i] = buf[i];
	}
	assert_int_equal(store_hash_many(&p, pw, out, N, 4), 0);
	for (i = 0; i < N; i++) {
		assert_non_null(out[i]);
		if (!store_hash_verify(pw[i], out[i]))
			fail_msg("hash %zu does not verify its password", i);
		/* Fresh salts: the same password never gives the same hash. */
		for (j = 0; j < i; j++)
			assert_string_not_equal(out[i], out[j]);
	}
	for (i = 0; i < N; i++)
		free(out[i]);
}

static void
test_verify_refuses_locked_and_empty_hashes(void **state)
{
	(void)state;
	assert_false(store_hash_verify("", ""));
	assert_false(store_hash_verify("x", "*"));
	assert_false(store_hash_verify("x", "!"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_login_defs_reads_method_and_sha_rounds),
		cmocka_unit_test(test_login_defs_single_round_setting_and_quotes),
		cmocka_unit_test(test_login_defs_yescrypt_cost_factor),
		cmocka_unit_test(test_login_defs_missing_file_means_yescrypt),
		cmocka_unit_test(test_login_defs_weak_method_becomes_sha512),
		cmocka_unit_test(test_login_defs_bad_values_are_errors_naming_the_line),
		cmocka_unit_test(test_conf_method_overrides_login_defs),
		cmocka_unit_test(test_each_method_hashes_verifiably_with_its_prefix),
		cmocka_unit_test(test_hash_cost_reads_every_method),
		cmocka_unit_test(test_hash_cost_of_libxcrypt_yescrypt_settings),
		cmocka_unit_test(test_malformed_or_unknown_hashes_have_no_cost),
		cmocka_unit_test(test_costly_hashes_are_refused_with_code_9_naming_the_cost),
		cmocka_unit_test(test_hash_cost_limits_are_configurable),
		cmocka_unit_test(test_unset_limits_are_raised_above_this_hosts_own_cost),
		cmocka_unit_test(test_accepted_hash_forms),
		cmocka_unit_test(test_refused_hash_forms_are_code_9),
		cmocka_unit_test(test_parallel_hashing_gives_verifiable_distinct_hashes),
		cmocka_unit_test(test_verify_refuses_locked_and_empty_hashes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
