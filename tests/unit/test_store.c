/*
 * Unit tests for the files store (lib/store/store_files.c, lib/store/store.c) on
 * temporary files: every result code, byte-for-byte preservation of what a
 * batch does not change, owner/mode/backup, the last-change field, stale
 * temp files, NIS make, and the line parser.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codes.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

struct fixture {
	char			 dir[64];
	char			 shadow[128];
	char			 passwd[128];
	struct store_conf	 conf;
	char			 hash_a[128];	/* alice's password "alice-old" */
	char			 hash_c[128];	/* carol's "carol-old" */
	char			*orig;		/* the shadow file as written */
};

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	assert_true(fd != -1);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long len;

	if (f == NULL)
		fail_msg("cannot open %s: %s", path, strerror(errno));
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	rewind(f);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	return buf;
}

/* Field n (0-based) of user's line in text, into out. */
static void
field_of(const char *text, const char *user, int n, char *out, size_t outlen)
{
	char key[80];
	const char *p, *e;
	int i;

	snprintf(key, sizeof(key), "\n%s:", user);
	p = strstr(text, key);
	if (p == NULL && strncmp(text, key + 1, strlen(key + 1)) == 0)
		p = text - 1;
	if (p == NULL)
		fail_msg("no line for %s", user);
	p++;
	for (i = 0; i < n; i++)
		p = strchr(p, ':') + 1;
	e = p + strcspn(p, ":\n");
	assert_true((size_t)(e - p) < outlen);
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = '\0';
}

static char *
replace_line(const char *text, const char *user, const char *newline)
{
	char key[80], *out;
	const char *p, *e;

	snprintf(key, sizeof(key), "\n%s:", user);
	p = strstr(text, key);
	assert_non_null(p);
	p++;
	e = p + strcspn(p, "\n");
	out = calloc(1, strlen(text) + strlen(newline) + 1);
	assert_non_null(out);
	memcpy(out, text, (size_t)(p - text));
	strcat(out, newline);
	strcat(out, e);
	return out;
}

static long
today(void)
{
	return (long)(time(NULL) / 86400);
}

static int
setup(void **state)
{
	struct fixture *fx;
	struct store_hash_params p = { HASH_SHA256, 1000, 1000 };
	struct psync_err err;
	char text[2048];

	fx = calloc(1, sizeof(*fx));
	if (fx == NULL)
		return -1;
	strcpy(fx->dir, "/tmp/psync-test-store.XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	snprintf(fx->shadow, sizeof(fx->shadow), "%s/shadow", fx->dir);
	snprintf(fx->passwd, sizeof(fx->passwd), "%s/passwd", fx->dir);
	fx->conf.type = STORE_FILES;
	fx->conf.shadow_file = fx->shadow;
	fx->conf.passwd_file = fx->passwd;
	fx->conf.hash_method = HASH_SHA256;
	fx->conf.hash_cost = 1000;
	fx->conf.lock_timeout = 1;
	fx->conf.hash_threads = 2;
	if (store_hash_password(&p, "alice-old", fx->hash_a,
	    sizeof(fx->hash_a), &err) == -1 ||
	    store_hash_password(&p, "carol-old", fx->hash_c,
	    sizeof(fx->hash_c), &err) == -1)
		return -1;
	snprintf(text, sizeof(text),
	    "# a comment the store must keep\n"
	    "root:*:19000:0:99999:7:::\n"
	    "alice:%s:19000:0:99999:7:::\n"
	    "odd line without fields\n"
	    "\n"
	    "bob:*:19000:0:99999:7:::\n"
	    "+nisuser::::::::\n"
	    "carol:!%s:18000:0:99999:7::20000:\n"
	    "dave:*:19001::::::",	/* no final newline */
	    fx->hash_a, fx->hash_c);
	write_file(fx->shadow, text, 0640);
	fx->orig = strdup(text);
	write_file(fx->passwd,
	    "root:x:0:0:root:/root:/bin/sh\n"
	    "alice:x:1000:1000::/home/alice:/bin/sh\n", 0644);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx->orig);
	free(fx);
	return 0;
}

static void
apply1(struct fixture *fx, const char *user, enum store_secret_kind kind,
    const char *secret, struct store_result *r)
{
	struct store_change c = { user, kind, secret, true };

	store_apply(&fx->conf, &c, 1, r);
}

static void
test_change_rewrites_only_hash_and_lastchg_byte_for_byte(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char hash[256], line[512], *now, *expect;

	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-new", &r);
	assert_int_equal(r.code, PSYNC_OK);
	assert_int_equal(r.outcome, STORE_APPLIED);
	now = read_all(fx->shadow);
	field_of(now, "alice", 1, hash, sizeof(hash));
	assert_true(store_hash_verify("alice-new", hash));
	snprintf(line, sizeof(line), "alice:%s:%ld:0:99999:7:::", hash, today());
	expect = replace_line(fx->orig, "alice", line);
	assert_string_equal(now, expect);
	free(expect);
	free(now);
}

static void
test_last_line_without_newline_is_changed_and_stays_without_newline(
    void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char hash[256], line[512], *now, *expect;

	apply1(fx, "dave", STORE_SECRET_CLEARTEXT, "dave-new", &r);
	assert_int_equal(r.code, PSYNC_OK);
	now = read_all(fx->shadow);
	field_of(now, "dave", 1, hash, sizeof(hash));
	snprintf(line, sizeof(line), "dave:%s:%ld::::::", hash, today());
	expect = replace_line(fx->orig, "dave", line);
	assert_string_equal(now, expect);
	assert_true(now[strlen(now) - 1] != '\n');
	free(expect);
	free(now);
}

static void
test_owner_and_mode_are_kept_and_backup_holds_old_file(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	struct stat st, bst;
	char backup[160], *b;
	gid_t gid = getuid() == 0 ? 42 : getgid();

	assert_int_equal(chown(fx->shadow, getuid(), gid), 0);
	assert_int_equal(chmod(fx->shadow, 0640), 0);
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-new", &r);
	assert_int_equal(r.code, PSYNC_OK);
	assert_int_equal(stat(fx->shadow, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_uid, getuid());
	assert_int_equal(st.st_gid, gid);
	snprintf(backup, sizeof(backup), "%s-", fx->shadow);
	assert_int_equal(stat(backup, &bst), 0);
	assert_int_equal(bst.st_mode & 07777, 0640);
	assert_int_equal(bst.st_gid, gid);
	b = read_all(backup);
	assert_string_equal(b, fx->orig);
	free(b);
}

static void
test_same_password_is_unchanged_and_nothing_is_written(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	struct stat before, after;
	char *now;

	assert_int_equal(stat(fx->shadow, &before), 0);
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-old", &r);
	assert_int_equal(r.code, PSYNC_OK);
	assert_int_equal(r.outcome, STORE_UNCHANGED);
	assert_int_equal(stat(fx->shadow, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	now = read_all(fx->shadow);
	assert_string_equal(now, fx->orig);
	free(now);
}

static void
test_identical_hash_is_unchanged_different_hash_is_stored(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	static const char other[] =
	    "$5$oThbi3nsHvYfOhRv$mmAOkR6qBinQHhmodDSnpZ07828FcWgla.GZqHzsqj0";
	char hash[256], *now;

	apply1(fx, "alice", STORE_SECRET_HASH, fx->hash_a, &r);
	assert_int_equal(r.outcome, STORE_UNCHANGED);
	apply1(fx, "alice", STORE_SECRET_HASH, other, &r);
	assert_int_equal(r.code, PSYNC_OK);
	assert_int_equal(r.outcome, STORE_APPLIED);
	now = read_all(fx->shadow);
	field_of(now, "alice", 1, hash, sizeof(hash));
	assert_string_equal(hash, other);
	free(now);
}

static void
test_malformed_hash_secret_is_code_9(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;

	apply1(fx, "alice", STORE_SECRET_HASH, "$1$abc$def", &r);
	assert_int_equal(r.code, PSYNC_E_BAD_PASSWORD);
	assert_int_equal(r.outcome, STORE_FAILED);
	assert_non_null(strstr(r.reason, "alice"));
}

static void
test_locked_account_keeps_its_lock_prefix(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char hash[256], *now;

	apply1(fx, "carol", STORE_SECRET_CLEARTEXT, "carol-old", &r);
	assert_int_equal(r.outcome, STORE_UNCHANGED);
	apply1(fx, "carol", STORE_SECRET_CLEARTEXT, "carol-new", &r);
	assert_int_equal(r.outcome, STORE_APPLIED);
	now = read_all(fx->shadow);
	field_of(now, "carol", 1, hash, sizeof(hash));
	assert_true(hash[0] == '!');
	assert_true(store_hash_verify("carol-new", hash + 1));
	/* Fields after last-change (here an expiry day) are kept. */
	field_of(now, "carol", 7, hash, sizeof(hash));
	assert_string_equal(hash, "20000");
	free(now);
}

/* The field user's line holds after one change to password pw. */
static void
field_after(struct fixture *fx, const char *user, const char *line,
    enum store_secret_kind kind, const char *pw, char *field, size_t flen)
{
	struct store_change c = { user, kind, pw, true };
	struct store_result r;
	char *now, *text;

	now = read_all(fx->shadow);
	text = malloc(strlen(now) + strlen(line) + 3);
	assert_non_null(text);
	sprintf(text, "%s\n%s\n", now, line);
	write_file(fx->shadow, text, 0640);
	free(text);
	free(now);
	store_apply(&fx->conf, &c, 1, &r);
	if (r.code != PSYNC_OK || r.outcome != STORE_APPLIED)
		fail_msg("%s: code %d, %s: %s", user, r.code,
		    store_outcome_name(r.outcome), r.reason);
	assert_non_null(strstr(r.reason, "the account stays locked"));
	now = read_all(fx->shadow);
	field_of(now, user, 1, field, flen);
	free(now);
}

static void
test_lock_markers_are_kept_and_no_account_is_unlocked(void **state)
{
	static const struct {
		const char	*line;
		const char	*marker;
	} t[] = {
		{ "u1:*:19000:0:99999:7:::",		"*" },
		{ "u2:*LK*:19000:0:99999:7:::",		"*LK*" },
		{ "u3:*LK*$5$oThbi3nsHvYfOhRv$mmAOkR6qBinQHhmodDSnpZ07828FcWgla."
		  "GZqHzsqj0:19000::::::",		"*LK*" },
		{ "u4:!!:19000:0:99999:7:::",		"!!" },
		{ "u5:!*:19000:0:99999:7:::",		"!*" },
		{ "u6::19000:0:99999:7:::",		"!" },	/* empty */
		{ "u7:x:19000:0:99999:7:::",		"!" },
		{ "u8:!$5$oThbi3nsHvYfOhRv$mmAOkR6qBinQHhmodDSnpZ07828FcWgla."
		  "GZqHzsqj0:19000::::::",		"!" },
	};
	static const char peer_hash[] =
	    "$5$oThbi3nsHvYfOhRv$mmAOkR6qBinQHhmodDSnpZ07828FcWgla.GZqHzsqj0";
	struct fixture *fx = *state;
	char field[256], user[8];
	size_t i, ml;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(user, sizeof(user), "u%zu", i + 1);
		ml = strlen(t[i].marker);
		field_after(fx, user, t[i].line, STORE_SECRET_CLEARTEXT,
		    "Fresh-Pw-1", field, sizeof(field));
		if (strncmp(field, t[i].marker, ml) != 0 ||
		    field[ml] != '$' ||
		    !store_hash_verify("Fresh-Pw-1", field + ml))
			fail_msg("%s: \"%s\" became \"%s\"", user, t[i].line,
			    field);
	}
	/* A hash from a peer keeps the marker too. */
	field_after(fx, "h1", "h1:*:19000:0:99999:7:::", STORE_SECRET_HASH,
	    peer_hash, field, sizeof(field));
	assert_true(field[0] == '*');
	assert_string_equal(field + 1, peer_hash);
	field_after(fx, "h2", "h2::19000:0:99999:7:::", STORE_SECRET_HASH,
	    peer_hash, field, sizeof(field));
	assert_true(field[0] == '!');
	assert_string_equal(field + 1, peer_hash);
}

static void
test_unknown_user_is_code_12_and_others_still_apply(void **state)
{
	struct fixture *fx = *state;
	struct store_change c[2] = {
		{ "nobody-here", STORE_SECRET_CLEARTEXT, "x-pass", true },
		{ "bob", STORE_SECRET_CLEARTEXT, "bob-new", true },
	};
	struct store_result r[2];

	assert_int_equal(store_apply(&fx->conf, c, 2, r), 1);
	assert_int_equal(r[0].code, PSYNC_E_NO_USER);
	assert_non_null(strstr(r[0].reason, "nobody-here"));
	assert_int_equal(r[1].code, PSYNC_OK);
	assert_int_equal(r[1].outcome, STORE_APPLIED);
}

static void
test_nis_compat_line_is_not_a_user(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;

	apply1(fx, "+nisuser", STORE_SECRET_CLEARTEXT, "x-pass", &r);
	assert_int_equal(r.code, PSYNC_E_BAD_USER);
}

static void
test_unparsable_user_line_is_code_21_others_apply(void **state)
{
	struct fixture *fx = *state;
	struct store_change c[2] = {
		{ "eve", STORE_SECRET_CLEARTEXT, "eve-new", true },
		{ "bob", STORE_SECRET_CLEARTEXT, "bob-new", true },
	};
	struct store_result r[2];
	char *text, *now;

	text = calloc(1, strlen(fx->orig) + 64);
	assert_non_null(text);
	sprintf(text, "%s\neve:*:notaday:0:99999:7:::\n", fx->orig);
	write_file(fx->shadow, text, 0640);
	store_apply(&fx->conf, c, 2, r);
	assert_int_equal(r[0].code, PSYNC_E_BAD_SHADOW);
	assert_non_null(strstr(r[0].reason, "eve"));
	assert_int_equal(r[1].code, PSYNC_OK);
	now = read_all(fx->shadow);
	assert_non_null(strstr(now, "\neve:*:notaday:0:99999:7:::\n"));
	free(now);
	free(text);
}

static void
test_user_listed_twice_in_file_is_code_21(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char *text;

	text = calloc(1, strlen(fx->orig) + 64);
	assert_non_null(text);
	sprintf(text, "%s\nbob:*:1:0:99999:7:::\n", fx->orig);
	write_file(fx->shadow, text, 0640);
	apply1(fx, "bob", STORE_SECRET_CLEARTEXT, "bob-new", &r);
	assert_int_equal(r.code, PSYNC_E_BAD_SHADOW);
	free(text);
}

static void
test_file_with_nul_byte_fails_whole_batch_with_21(void **state)
{
	struct fixture *fx = *state;
	struct store_change c[2] = {
		{ "alice", STORE_SECRET_CLEARTEXT, "alice-new", true },
		{ "bob", STORE_SECRET_CLEARTEXT, "bob-new", true },
	};
	struct store_result r[2];
	int fd;

	fd = open(fx->shadow, O_WRONLY | O_APPEND);
	assert_true(fd != -1);
	assert_int_equal(write(fd, "\nx\0y:::::::\n", 12), 12);
	close(fd);
	assert_int_equal(store_apply(&fx->conf, c, 2, r), 2);
	assert_int_equal(r[0].code, PSYNC_E_BAD_SHADOW);
	assert_int_equal(r[1].code, PSYNC_E_BAD_SHADOW);
}

static void
test_missing_file_is_code_3_for_every_change(void **state)
{
	struct fixture *fx = *state;
	struct store_change c[2] = {
		{ "alice", STORE_SECRET_CLEARTEXT, "alice-new", true },
		{ "bob", STORE_SECRET_CLEARTEXT, "bob-new", true },
	};
	struct store_result r[2];

	unlink(fx->shadow);
	assert_int_equal(store_apply(&fx->conf, c, 2, r), 2);
	assert_int_equal(r[0].code, PSYNC_E_OPEN);
	assert_int_equal(r[1].code, PSYNC_E_OPEN);
	assert_non_null(strstr(r[0].reason, fx->shadow));
}

static void
test_lock_held_by_another_process_is_code_2_after_timeout(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	struct flock fl;
	char lock[160], *now;
	int pfd[2], status;
	time_t t0;
	pid_t pid;

	snprintf(lock, sizeof(lock), "%s/.pwd.lock", fx->dir);
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		int fd = open(lock, O_WRONLY | O_CREAT, 0600);

		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		if (fd == -1 || fcntl(fd, F_SETLK, &fl) == -1)
			_exit(1);
		(void)write(pfd[1], "L", 1);
		pause();
		_exit(0);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], lock, 1), 1);
	close(pfd[0]);
	t0 = time(NULL);
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-new", &r);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	assert_int_equal(r.code, PSYNC_E_LOCK);
	assert_non_null(strstr(r.reason, "busy"));
	assert_true(time(NULL) - t0 <= 3);
	now = read_all(fx->shadow);
	assert_string_equal(now, fx->orig);
	free(now);
	/* Once the holder is gone the same change goes through. */
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-new", &r);
	assert_int_equal(r.code, PSYNC_OK);
}

static void
test_write_failure_is_code_11_and_file_untouched(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	struct rlimit rl;
	char *now, name[128];
	int pfd[2], status;
	pid_t pid;

	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		/* Files may not grow past 100 bytes: the write fails. */
		signal(SIGXFSZ, SIG_IGN);
		rl.rlim_cur = rl.rlim_max = 100;
		if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
			_exit(2);
		apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-new", &r);
		(void)write(pfd[1], &r, sizeof(r));
		_exit(0);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &r, sizeof(r)), (ssize_t)sizeof(r));
	close(pfd[0]);
	waitpid(pid, &status, 0);
	assert_int_equal(r.code, PSYNC_E_WRITE);
	assert_non_null(strstr(r.reason, "left unchanged"));
	now = read_all(fx->shadow);
	assert_string_equal(now, fx->orig);
	free(now);
	/* And no temp file is left behind. */
	snprintf(name, sizeof(name), "ls -a %s | grep -q psync-", fx->dir);
	assert_int_not_equal(system(name), 0);
}

static void
test_later_change_for_same_user_wins(void **state)
{
	struct fixture *fx = *state;
	struct store_change c[3] = {
		{ "bob", STORE_SECRET_CLEARTEXT, "bob-first", true },
		{ "alice", STORE_SECRET_CLEARTEXT, "alice-new", true },
		{ "bob", STORE_SECRET_CLEARTEXT, "bob-second", true },
	};
	struct store_result r[3];
	char hash[256], *now;

	assert_int_equal(store_apply(&fx->conf, c, 3, r), 0);
	assert_int_equal(r[0].outcome, STORE_SUPERSEDED);
	assert_int_equal(r[2].outcome, STORE_APPLIED);
	now = read_all(fx->shadow);
	field_of(now, "bob", 1, hash, sizeof(hash));
	assert_true(hash[0] == '*');	/* bob had no password: still none */
	assert_true(store_hash_verify("bob-second", hash + 1));
	free(now);
}

static void
test_stale_temp_files_are_removed_at_next_apply(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char stale[160], other[160];

	snprintf(stale, sizeof(stale), "%s/.shadow.psync-AbC123", fx->dir);
	snprintf(other, sizeof(other), "%s/.passwd.keepme", fx->dir);
	write_file(stale, "half a file", 0600);
	write_file(other, "not ours", 0600);
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-new", &r);
	assert_int_equal(r.code, PSYNC_OK);
	assert_int_equal(access(stale, F_OK), -1);
	assert_int_equal(access(other, F_OK), 0);
}

static void
test_hashes_in_passwd_rewrites_field_2_of_passwd(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char hash[256], *now, *expect, line[512];
	const char *pw = "root:x:0:0:root:/root:/bin/sh\n"
	    "alice:x:1000:1000::/home/alice:/bin/sh\n";

	fx->conf.hashes_in_passwd = true;
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-new", &r);
	assert_int_equal(r.code, PSYNC_OK);
	now = read_all(fx->passwd);
	field_of(now, "alice", 1, hash, sizeof(hash));
	assert_true(store_hash_verify("alice-new", hash));
	snprintf(line, sizeof(line), "alice:%s:1000:1000::/home/alice:/bin/sh",
	    hash);
	expect = replace_line(pw, "alice", line);
	assert_string_equal(now, expect);
	free(expect);
	free(now);
}

static void
test_invalid_user_and_empty_password_are_refused(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;

	apply1(fx, "al:ice", STORE_SECRET_CLEARTEXT, "x-pass", &r);
	assert_int_equal(r.code, PSYNC_E_BAD_USER);
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "", &r);
	assert_int_equal(r.code, PSYNC_E_BAD_PASSWORD);
}

static void
test_nis_make_runs_after_a_change_and_failure_is_code_10(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char mk[160], marker[160];

	snprintf(mk, sizeof(mk), "%s/Makefile", fx->dir);
	snprintf(marker, sizeof(marker), "%s/pushed", fx->dir);
	write_file(mk, "all:\n\ttouch pushed\n", 0644);
	fx->conf.nis_make_dir = fx->dir;
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-old", &r);
	assert_int_equal(r.outcome, STORE_UNCHANGED);
	assert_int_equal(access(marker, F_OK), -1);	/* nothing to push */
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-new", &r);
	assert_int_equal(r.code, PSYNC_OK);
	assert_int_equal(access(marker, F_OK), 0);
	write_file(mk, "all:\n\t@echo maps broken; exit 3\n", 0644);
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-newer", &r);
	assert_int_equal(r.code, PSYNC_E_NIS);
	assert_int_equal(r.outcome, STORE_APPLIED);
	assert_non_null(strstr(r.reason, "status 2"));
}

static void
test_line_parser_field_counts_and_numbers(void **state)
{
	struct store_line l;
	static const char ok[] = "u:h:123:0:99999:7:::";

	(void)state;
	assert_int_equal(store_line_parse(ok, strlen(ok), true, &l), 0);
	assert_int_equal(l.name_len, 1);
	assert_int_equal(l.hash_len, 1);
	assert_int_equal(l.lastchg_len, 3);
	assert_int_equal(store_line_parse("u:h:1:0:9:7::", 13, true, &l), -1);
	assert_int_equal(store_line_parse("u:h:1:0:9:7::::", 15, true, &l), -1);
	assert_int_equal(store_line_parse("u:h:x:0:9:7:::", 14, true, &l), -1);
	assert_int_equal(store_line_parse(":h:1:0:9:7:::", 13, true, &l), -1);
	assert_int_equal(store_line_parse("u:x:1:1::/:/bin/sh", 18, false, &l),
	    0);
	assert_int_equal(store_line_parse("#u:x:1:1::/:/b", 14, false, &l), -1);
}

/* ---- the "unchanged" check and the retired fingerprints ------------- */

/* Apply one cleartext change for alice; how many verifies it cost. */
static unsigned long
apply_counted(struct fixture *fx, const char *pw, bool check,
    struct store_result *r)
{
	struct store_change c = { "alice", STORE_SECRET_CLEARTEXT, pw, check };
	unsigned long before = store_stat_verified;

	store_apply(&fx->conf, &c, 1, r);
	return store_stat_verified - before;
}

static void
test_check_unchanged_verifies_and_finds_the_same_password(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	struct stat before, after;

	assert_int_equal(stat(fx->shadow, &before), 0);
	assert_int_equal(apply_counted(fx, "alice-old", true, &r), 1);
	assert_int_equal(r.outcome, STORE_UNCHANGED);
	assert_int_equal(stat(fx->shadow, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	/* A different password is verified too, then written. */
	assert_int_equal(apply_counted(fx, "alice-new", true, &r), 1);
	assert_int_equal(r.outcome, STORE_APPLIED);
}

static void
test_without_check_unchanged_the_password_is_hashed_without_verify(
    void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char hash[256], *now;

	/* The same password as stored: no verify, a new hash is written. */
	assert_int_equal(apply_counted(fx, "alice-old", false, &r), 0);
	assert_int_equal(r.code, PSYNC_OK);
	assert_int_equal(r.outcome, STORE_APPLIED);
	now = read_all(fx->shadow);
	field_of(now, "alice", 1, hash, sizeof(hash));
	free(now);
	assert_string_not_equal(hash, fx->hash_a);
	assert_true(store_hash_verify("alice-old", hash));
	assert_int_equal(apply_counted(fx, "alice-new", false, &r), 0);
	assert_int_equal(r.outcome, STORE_APPLIED);
}

static void
test_check_unchanged_is_per_change_within_one_batch(void **state)
{
	struct fixture *fx = *state;
	struct store_change c[2] = {
		{ "alice", STORE_SECRET_CLEARTEXT, "alice-old", true },
		{ "carol", STORE_SECRET_CLEARTEXT, "carol-old", false },
	};
	struct store_result r[2];
	unsigned long before = store_stat_verified;

	assert_int_equal(store_apply(&fx->conf, c, 2, r), 0);
	assert_int_equal(store_stat_verified - before, 1);
	assert_int_equal(r[0].outcome, STORE_UNCHANGED);
	assert_int_equal(r[1].outcome, STORE_APPLIED);
}

static void
test_costly_hash_from_a_peer_is_code_9_and_not_stored(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char *now;

	apply1(fx, "alice", STORE_SECRET_HASH, "$6$rounds=999999999$abcdefgh$"
	    "C/UyUIoYbYZoxRzWA1jhrMzCtoWAP4X1Y3K19W9MF2iadjXK6APn0m0eIbRgBIBf9"
	    "YqHG5NBvs.aaEUSctcx51", &r);
	assert_int_equal(r.code, PSYNC_E_BAD_PASSWORD);
	assert_int_equal(r.outcome, STORE_FAILED);
	assert_non_null(strstr(r.reason, "alice"));
	assert_non_null(strstr(r.reason, "rounds 999999999"));
	apply1(fx, "alice", STORE_SECRET_HASH, "$2b$31$CocejWtg.b4pK.Kx4CAsZOqy"
	    "WBWYx2MJbvyVONkO8OWU1ZCI5KdES", &r);
	assert_int_equal(r.code, PSYNC_E_BAD_PASSWORD);
	assert_non_null(strstr(r.reason, "bcrypt cost 31"));
	now = read_all(fx->shadow);
	assert_string_equal(now, fx->orig);
	free(now);
	/* The store's own limits apply: a lower one refuses more. */
	fx->conf.hash_limits.rounds = 1000;
	apply1(fx, "alice", STORE_SECRET_HASH, "$5$oThbi3nsHvYfOhRv$mmAOkR6qBinQ"
	    "HhmodDSnpZ07828FcWgla.GZqHzsqj0", &r);
	assert_int_equal(r.code, PSYNC_E_BAD_PASSWORD);
	assert_non_null(strstr(r.reason, "rounds 5000 are above the limit 1000"));
}

static void
test_stored_hash_above_the_limits_is_never_verified(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char hash[256], *now;

	/* alice's stored hash has 1000 rounds; the limit says at most 999. */
	fx->conf.hash_limits.rounds = 999;
	assert_int_equal(apply_counted(fx, "alice-old", true, &r), 0);
	assert_int_equal(r.outcome, STORE_APPLIED);
	now = read_all(fx->shadow);
	field_of(now, "alice", 1, hash, sizeof(hash));
	free(now);
	assert_true(store_hash_verify("alice-old", hash));
	fx->conf.hash_limits.rounds = 0;
	assert_int_equal(apply_counted(fx, "alice-old", true, &r), 1);
}

/* A file of the old fingerprint database (or its journals) in dir. */
static void
make_fp_file(const char *dir, const char *suffix)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/fingerprints.db%s", dir, suffix);
	write_file(path, "SQLite format 3", 0600);
}

static bool
exists(const char *dir, const char *name)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return access(path, F_OK) == 0;
}

static void
test_old_fingerprint_database_is_removed_at_the_first_batch(void **state)
{
	struct fixture *fx = *state;
	struct store_result r;
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/state", fx->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	make_fp_file(dir, "");
	make_fp_file(dir, "-wal");
	make_fp_file(dir, "-shm");
	fx->conf.state_dir = dir;
	apply1(fx, "alice", STORE_SECRET_CLEARTEXT, "alice-new", &r);
	assert_int_equal(r.outcome, STORE_APPLIED);
	assert_false(exists(dir, "fingerprints.db"));
	assert_false(exists(dir, "fingerprints.db-wal"));
	assert_false(exists(dir, "fingerprints.db-shm"));
	/* Nothing else is created there. */
	assert_false(exists(dir, "fingerprints.db-journal"));
	fx->conf.state_dir = NULL;
}

static void
test_retire_fingerprints(void **state)
{
	struct fixture *fx = *state;
	struct psync_err err;
	char dir[128];

	snprintf(dir, sizeof(dir), "%s/state", fx->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(store_retire_fingerprints(dir, &err), 0);
	make_fp_file(dir, "");
	assert_int_equal(store_retire_fingerprints(dir, &err), 1);
	assert_false(exists(dir, "fingerprints.db"));
	make_fp_file(dir, "-journal");
	assert_int_equal(store_retire_fingerprints(dir, &err), 1);
	assert_false(exists(dir, "fingerprints.db-journal"));
	assert_false(exists(dir, "fingerprints.db"));
	/* A database that cannot be removed is an error naming it. */
	snprintf(dir, sizeof(dir), "%s/state/fingerprints.db", fx->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(dir, sizeof(dir), "%s/state/fingerprints.db/x", fx->dir);
	write_file(dir, "x", 0600);
	snprintf(dir, sizeof(dir), "%s/state", fx->dir);
	assert_int_equal(store_retire_fingerprints(dir, &err), -1);
	assert_non_null(strstr(err.msg, "fingerprints.db"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* store_batch_read: the chpasswd-style input of psyncctl apply. */
static int
read_batch(const char *text, size_t len, struct store_batch *b,
    struct psync_err *err)
{
	FILE *f = fmemopen((void *)(uintptr_t)text, len, "r");
	int rc;

	assert_non_null(f);
	store_batch_init(b);
	rc = store_batch_read(b, f, STORE_SECRET_CLEARTEXT, err);
	fclose(f);
	return rc;
}

static void
test_batch_input_lines_and_their_errors(void **state)
{
	static const char ok[] = "alice:Pw:with:colons\r\n\nbob:B0b\ncarol:last";
	static const char nul[] = "alice:Pw\nbob:B\0b\n";
	struct store_batch b;
	struct psync_err err;
	char *big;

	(void)state;
	assert_int_equal(read_batch(ok, sizeof(ok) - 1, &b, &err), 0);
	assert_int_equal(b.n, 3);
	assert_string_equal(b.changes[0].user, "alice");
	assert_string_equal(b.changes[0].secret, "Pw:with:colons");
	assert_string_equal(b.changes[2].user, "carol");
	assert_string_equal(b.changes[2].secret, "last");
	store_batch_free(&b);

	assert_int_equal(read_batch(nul, sizeof(nul) - 1, &b, &err), -1);
	assert_string_equal(err.msg, "input line 2: contains a NUL byte");
	store_batch_free(&b);

	assert_int_equal(read_batch("a:b\n:nouser\n", 12, &b, &err), -1);
	assert_string_equal(err.msg, "input line 2: expected user:password");
	store_batch_free(&b);

	big = malloc(5000);
	assert_non_null(big);
	memset(big, 'x', 5000);
	big[0] = 'u';
	big[1] = ':';
	assert_int_equal(read_batch(big, 5000, &b, &err), -1);
	assert_string_equal(err.msg, "input line 1: longer than 4095 bytes");
	store_batch_free(&b);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_change_rewrites_only_hash_and_lastchg_byte_for_byte),
		T(test_last_line_without_newline_is_changed_and_stays_without_newline),
		T(test_owner_and_mode_are_kept_and_backup_holds_old_file),
		T(test_same_password_is_unchanged_and_nothing_is_written),
		T(test_identical_hash_is_unchanged_different_hash_is_stored),
		T(test_malformed_hash_secret_is_code_9),
		T(test_locked_account_keeps_its_lock_prefix),
		T(test_lock_markers_are_kept_and_no_account_is_unlocked),
		T(test_unknown_user_is_code_12_and_others_still_apply),
		T(test_nis_compat_line_is_not_a_user),
		T(test_unparsable_user_line_is_code_21_others_apply),
		T(test_user_listed_twice_in_file_is_code_21),
		T(test_file_with_nul_byte_fails_whole_batch_with_21),
		T(test_missing_file_is_code_3_for_every_change),
		T(test_lock_held_by_another_process_is_code_2_after_timeout),
		T(test_write_failure_is_code_11_and_file_untouched),
		T(test_later_change_for_same_user_wins),
		T(test_stale_temp_files_are_removed_at_next_apply),
		T(test_hashes_in_passwd_rewrites_field_2_of_passwd),
		T(test_invalid_user_and_empty_password_are_refused),
		T(test_nis_make_runs_after_a_change_and_failure_is_code_10),
		T(test_check_unchanged_verifies_and_finds_the_same_password),
		T(test_without_check_unchanged_the_password_is_hashed_without_verify),
		T(test_check_unchanged_is_per_change_within_one_batch),
		T(test_costly_hash_from_a_peer_is_code_9_and_not_stored),
		T(test_stored_hash_above_the_limits_is_never_verified),
		T(test_old_fingerprint_database_is_removed_at_the_first_batch),
		T(test_retire_fingerprints),
		cmocka_unit_test(test_line_parser_field_counts_and_numbers),
		cmocka_unit_test(test_batch_input_lines_and_their_errors),
	};

	log_set_level(LOG_ERR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
