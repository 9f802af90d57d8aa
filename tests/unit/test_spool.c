/* Sealing and spool tests: round trips, order, wrong keys, tampering, modes. */
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
#include <sys/stat.h>
#include <unistd.h>

#include "codes.h"
#include "frame.h"
#include "seal.h"
#include "spool.h"

static char dir[64];
static unsigned char key[SEAL_KEY_LEN];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/psync-spool-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	memset(key, 0x42, sizeof(key));
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
make_change(struct frame *f, uint64_t t, uint8_t idbyte, const char *user,
    const char *password)
{
	uint8_t id[FRAME_ID_LEN];
	struct psync_err err;

	memset(id, idbyte, sizeof(id));
	assert_int_equal(frame_set_change(f, id, "unix1", t, user,
	    FRAME_SECRET_CLEARTEXT, password, strlen(password), &err), 0);
}

static void
test_seal_round_trip_and_every_tamper_fails(void **state)
{
	const char msg[] = "N3w-Passw0rd!";
	unsigned char sealed[sizeof(msg) + SEAL_OVERHEAD], opened[sizeof(msg)];
	unsigned char other[SEAL_KEY_LEN];
	struct psync_err err;
	long n, i;

	(void)state;
	n = seal(key, "aad", msg, sizeof(msg), sealed, &err);
	assert_int_equal(n, (long)sizeof(sealed));
	assert_null(memmem(sealed, sizeof(sealed), "Passw0rd", 8));
	assert_int_equal(unseal(key, "aad", sealed, (size_t)n, opened, &err),
	    (long)sizeof(msg));
	assert_memory_equal(opened, msg, sizeof(msg));
	for (i = 0; i < n; i++) {
		sealed[i] ^= 1;
		assert_int_equal(unseal(key, "aad", sealed, (size_t)n, opened, &err), -1);
		assert_int_equal(err.code, PSYNC_E_DECRYPT);
		sealed[i] ^= 1;
	}
	assert_int_equal(unseal(key, "other", sealed, (size_t)n, opened, &err), -1);
	memset(other, 0x43, sizeof(other));
	assert_int_equal(unseal(other, "aad", sealed, (size_t)n, opened, &err), -1);
	assert_int_equal(unseal(key, "aad", sealed, SEAL_OVERHEAD - 1, opened, &err), -1);
}

static void
test_spool_files_round_trip_in_order_and_are_private(void **state)
{
	struct frame f, g;
	struct psync_err err;
	char name1[SPOOL_NAME_LEN + 1], name2[SPOOL_NAME_LEN + 1], path[256];
	char **names;
	size_t n;
	struct stat st;

	(void)state;
	assert_int_equal(spool_prepare(dir, &err), 0);
	make_change(&f, 1700000000002ULL, 0xbb, "bob", "Second-Pass1");
	assert_int_equal(spool_write(dir, key, &f, name2, &err), 0);
	make_change(&f, 1700000000001ULL, 0xaa, "alice", "First-Pass1");
	assert_int_equal(spool_write(dir, key, &f, name1, &err), 0);
	frame_wipe(&f);
	assert_string_equal(name1, "0001700000000001-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.chg");

	assert_int_equal(spool_list(dir, &names, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], name1);
	assert_string_equal(names[1], name2);
	spool_list_free(names, n);

	snprintf(path, sizeof(path), "%s/%s", dir, name1);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);

	assert_int_equal(spool_read(dir, name1, key, &g, &err), 0);
	assert_int_equal(g.type, FRAME_CHANGE);
	assert_string_equal(g.u.change.user, "alice");
	assert_string_equal(g.u.change.origin, "unix1");
	assert_int_equal(g.u.change.time_ms, 1700000000001ULL);
	assert_string_equal((char *)g.u.change.secret, "First-Pass1");
	frame_wipe(&g);
}

static void
test_spool_refuses_wrong_key_damage_and_foreign_names(void **state)
{
	struct frame f, g;
	struct psync_err err;
	char name[SPOOL_NAME_LEN + 1], path[256];
	unsigned char other[SEAL_KEY_LEN];
	int fd;

	(void)state;
	make_change(&f, 1700000000003ULL, 0xcc, "carol", "Third-Pass1");
	assert_int_equal(spool_write(dir, key, &f, name, &err), 0);
	frame_wipe(&f);
	memset(other, 7, sizeof(other));
	assert_int_equal(spool_read(dir, name, other, &g, &err), -1);
	assert_int_equal(err.code, PSYNC_E_DECRYPT);
	assert_non_null(strstr(err.msg, name));

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 20), 1);
	close(fd);
	assert_int_equal(spool_read(dir, name, key, &g, &err), -1);
	assert_int_equal(err.code, PSYNC_E_DECRYPT);

	assert_int_equal(spool_read(dir, "../etc/shadow", key, &g, &err), -1);
	assert_false(spool_name_valid(".0001700000000003-cccccccccccccccccccccccccccccccc.chg.tmp"));
	assert_false(spool_name_valid("0001700000000003-CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC.chg"));
	unlink(path);
}

static void
test_spool_directory_must_be_private(void **state)
{
	struct psync_err err;
	char sub[128];

	(void)state;
	snprintf(sub, sizeof(sub), "%s/new", dir);
	assert_int_equal(spool_prepare(sub, &err), 0);
	assert_int_equal(chmod(sub, 0777), 0);
	assert_int_equal(spool_prepare(sub, &err), -1);
	assert_non_null(strstr(err.msg, "writable by nobody else"));
	rmdir(sub);
}

static void
test_host_key_is_created_private_once(void **state)
{
	unsigned char k1[SEAL_KEY_LEN], k2[SEAL_KEY_LEN];
	struct psync_err err;
	char path[128];
	struct stat st;

	(void)state;
	snprintf(path, sizeof(path), "%s/host.key", dir);
	assert_int_equal(seal_key_load(path, 0, k1, &err), -1);
	assert_int_equal(err.code, PSYNC_E_FILE_NOT_FOUND);
	assert_int_equal(seal_key_load(path, 1, k1, &err), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(seal_key_load(path, 1, k2, &err), 0);
	assert_memory_equal(k1, k2, sizeof(k1));
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(seal_key_load(path, 1, k2, &err), -1);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seal_round_trip_and_every_tamper_fails),
		cmocka_unit_test(test_spool_files_round_trip_in_order_and_are_private),
		cmocka_unit_test(test_spool_refuses_wrong_key_damage_and_foreign_names),
		cmocka_unit_test(test_spool_directory_must_be_private),
		cmocka_unit_test(test_host_key_is_created_private_once),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
