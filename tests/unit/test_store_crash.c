/*
 * Crash safety of the files store: a child process applies a batch and is
 * killed with SIGKILL at a random moment, at least 500 times. After every
 * kill the shadow file must parse completely, every line the batch does
 * not touch must be exactly as before, and the batch's users must hold
 * either all their old or all their new passwords: never a mix, never a
 * torn line, never a truncated file. Batches alternate between ready
 * hashes (the run is all file work, so most kills land in the write) and
 * cleartext (hashing, then the write).
 * STORE_CRASH_KILLS overrides the number of kills.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codes.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

#define NUSERS		3000
#define HASH_FIRST	100	/* users [100, 400) get ready hashes */
#define HASH_N		300
#define CLEAR_FIRST	1000	/* users [1000, 1012) get cleartext */
#define CLEAR_N		12

struct crash {
	char			 dir[64];
	char			 shadow[128];
	struct store_conf	 conf;
	char			 hash[2][128];	/* verify pw[0], pw[1] */
	int			 state_h;	/* which of pw[] each subset holds */
	int			 state_c;
	struct store_change	 ch_h[2][HASH_N];
	struct store_change	 ch_c[2][CLEAR_N];
	char			 names[NUSERS][8];
};

static const char *const pw[2] = { "old-Pass-1", "new-Pass-2" };

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
make_file(struct crash *c)
{
	FILE *f = fopen(c->shadow, "w");
	int i;

	assert_non_null(f);
	fputs("# crash test\n", f);
	for (i = 0; i < NUSERS; i++)
		fprintf(f, "%s:%s:19000:0:99999:7:::\n", c->names[i],
		    (i >= HASH_FIRST && i < HASH_FIRST + HASH_N) ||
		    (i >= CLEAR_FIRST && i < CLEAR_FIRST + CLEAR_N) ?
		    c->hash[0] : "*");
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(c->shadow, 0640), 0);
}

/*
 * Which password subset holds: 0, 1, or -1 for a mix; and checks every
 * other line. Fails the test on a torn or truncated file.
 */
static void
check_file(struct crash *c, int *hstate, int *cstate)
{
	struct store_line l;
	char *buf = NULL, hash[256];
	size_t cap = 0;
	ssize_t len;
	FILE *f;
	int i = -1, which, seen_h[2] = { 0, 0 }, seen_c[2] = { 0, 0 };

	f = fopen(c->shadow, "r");
	assert_non_null(f);
	while ((len = getline(&buf, &cap, f)) != -1) {
		if (i == -1) {
			assert_string_equal(buf, "# crash test\n");
			i++;
			continue;
		}
		if (len == 0 || buf[len - 1] != '\n')
			fail_msg("line %d truncated", i + 1);
		buf[--len] = '\0';
		if (i >= NUSERS)
			fail_msg("extra line %d: %s", i + 1, buf);
		if (store_line_parse(buf, (size_t)len, true, &l) != 0)
			fail_msg("line %d does not parse: %s", i + 1, buf);
		if (l.name_len != strlen(c->names[i]) ||
		    memcmp(l.name, c->names[i], l.name_len) != 0)
			fail_msg("line %d names the wrong user: %s", i + 1, buf);
		memcpy(hash, l.hash, l.hash_len);
		hash[l.hash_len] = '\0';
		if (i >= HASH_FIRST && i < HASH_FIRST + HASH_N) {
			which = strcmp(hash, c->hash[0]) == 0 ? 0 :
			    strcmp(hash, c->hash[1]) == 0 ? 1 : -1;
			if (which == -1)
				fail_msg("line %d: neither old nor new hash", i);
			seen_h[which]++;
		} else if (i >= CLEAR_FIRST && i < CLEAR_FIRST + CLEAR_N) {
			which = store_hash_verify(pw[0], hash) ? 0 :
			    store_hash_verify(pw[1], hash) ? 1 : -1;
			if (which == -1)
				fail_msg("line %d: hash verifies neither "
				    "password", i);
			seen_c[which]++;
		} else {
			char expect[64];

			snprintf(expect, sizeof(expect),
			    "%s:*:19000:0:99999:7:::", c->names[i]);
			assert_string_equal(buf, expect);
		}
		i++;
	}
	fclose(f);
	free(buf);
	if (i != NUSERS)
		fail_msg("file truncated: %d of %d users", i, NUSERS);
	*hstate = seen_h[0] == HASH_N ? 0 : seen_h[1] == HASH_N ? 1 : -1;
	*cstate = seen_c[0] == CLEAR_N ? 0 : seen_c[1] == CLEAR_N ? 1 : -1;
	if (*hstate == -1)
		fail_msg("ready-hash users mixed: %d old, %d new", seen_h[0],
		    seen_h[1]);
	if (*cstate == -1)
		fail_msg("cleartext users mixed: %d old, %d new", seen_c[0],
		    seen_c[1]);
}

/* Runs one batch in a child; kills it after delay seconds (< 0: never). */
static int
run_child(struct crash *c, bool clear, int target, double delay)
{
	struct store_result res[HASH_N];
	struct timespec ts;
	int status;
	pid_t pid;

	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		size_t failed = clear ?
		    store_apply(&c->conf, c->ch_c[target], CLEAR_N, res) :
		    store_apply(&c->conf, c->ch_h[target], HASH_N, res);

		_exit(failed == 0 ? 0 : 1);
	}
	if (delay >= 0) {
		ts.tv_sec = (time_t)delay;
		ts.tv_nsec = (long)((delay - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (WIFSIGNALED(status))
		return 1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("the writer failed on its own (status %d)", status);
	return 0;
}

static void
test_sigkilled_writer_leaves_old_or_new_file_never_a_mix(void **state)
{
	struct crash *c;
	struct store_hash_params hp = { HASH_SHA256, 1000, 1000 };
	struct psync_err err;
	const char *env = getenv("STORE_CRASH_KILLS");
	int kills = env != NULL ? atoi(env) : 500, killed = 0, k, i, t;
	int hs, cs, r, mid_run = 0;
	long rnd;
	double full[2], t0, d;
	char cmd[128];
	DIR *dir;
	struct dirent *de;
	bool clear;

	(void)state;
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	strcpy(c->dir, "/tmp/psync-test-crash.XXXXXX");
	assert_non_null(mkdtemp(c->dir));
	snprintf(c->shadow, sizeof(c->shadow), "%s/shadow", c->dir);
	c->conf.type = STORE_FILES;
	c->conf.shadow_file = c->shadow;
	c->conf.hash_method = HASH_SHA256;
	c->conf.hash_cost = 1000;
	c->conf.lock_timeout = 5;
	c->conf.hash_threads = 2;
	for (i = 0; i < NUSERS; i++)
		snprintf(c->names[i], sizeof(c->names[i]), "u%04d", i);
	for (t = 0; t < 2; t++) {
		assert_int_equal(store_hash_password(&hp, pw[t], c->hash[t],
		    sizeof(c->hash[t]), &err), 0);
		for (i = 0; i < HASH_N; i++)
			c->ch_h[t][i] = (struct store_change){
			    c->names[HASH_FIRST + i], STORE_SECRET_HASH,
			    c->hash[t], true };
		for (i = 0; i < CLEAR_N; i++)
			c->ch_c[t][i] = (struct store_change){
			    c->names[CLEAR_FIRST + i], STORE_SECRET_CLEARTEXT,
			    pw[t], true };
	}
	make_file(c);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());

	/* How long an undisturbed batch of each kind takes. */
	for (k = 0; k < 2; k++) {
		t0 = now();
		assert_int_equal(run_child(c, k == 1, 1, -1), 0);
		full[k] = now() - t0;
		t0 = now();
		assert_int_equal(run_child(c, k == 1, 0, -1), 0);
		full[k] = (full[k] + now() - t0) / 2;
	}
	check_file(c, &hs, &cs);
	assert_int_equal(hs, 0);
	assert_int_equal(cs, 0);
	c->state_h = c->state_c = 0;

	/*
	 * Kill at a random moment of a run; a run that finished before its
	 * kill is not counted, so keep going (and aim earlier once more than
	 * a third of the runs finish first: optimised or idle builds are
	 * faster than the runs timed above).
	 */
	for (k = 0; killed < kills && k < kills * 20; k++) {
		double window = k > 30 && killed * 3 < k * 2 ? 0.7 : 1.1;

		clear = k % 4 == 3;
		t = 1 - (clear ? c->state_c : c->state_h);
		rnd = random();
		d = full[clear] * window * (double)rnd / (double)RAND_MAX;
		r = run_child(c, clear, t, d);
		killed += r;
		check_file(c, &hs, &cs);
		if (clear) {
			assert_int_equal(hs, c->state_h);
			if (r == 1 && cs == t)
				mid_run++;
			c->state_c = cs;
		} else {
			assert_int_equal(cs, c->state_c);
			if (r == 1 && hs == t)
				mid_run++;
			c->state_h = hs;
		}
	}
	if (killed < kills)
		fail_msg("only %d of %d writers were killed in time", killed,
		    kills);
	printf("# %d writers killed in %d runs (%d after the new file was in "
	    "place); undisturbed runs take %.1f ms (hashes), %.1f ms "
	    "(cleartext)\n", killed, k, mid_run, full[0] * 1e3, full[1] * 1e3);

	/* One clean run removes whatever temp files the kills left. */
	assert_int_equal(run_child(c, false, 1 - c->state_h, -1), 0);
	dir = opendir(c->dir);
	assert_non_null(dir);
	while ((de = readdir(dir)) != NULL)
		if (strstr(de->d_name, "psync-") != NULL) {
			struct stat st;

			fstatat(dirfd(dir), de->d_name, &st, 0);
			fail_msg("temp file %s (%ld bytes, %ld links, mode %o) "
			    "left after a clean run", de->d_name,
			    (long)st.st_size, (long)st.st_nlink,
			    (unsigned)st.st_mode);
		}
	closedir(dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", c->dir);
	assert_int_equal(system(cmd), 0);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_sigkilled_writer_leaves_old_or_new_file_never_a_mix),
	};

	log_set_level(LOG_CRIT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
