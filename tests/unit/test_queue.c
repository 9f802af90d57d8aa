/*
 * Unit tests for lib/queue/queue.c: psyncd's durable queue. Each test works in
 * its own temporary directory with a fake clock; a few look into the
 * database with SQLite directly, to see what is really on disk.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <syslog.h>

#include "codes.h"
#include "queue.h"

#define PASSWORD	"Corr3ct-Horse-Battery-9"
#define T0		1700000000000ull	/* the fake clock starts here */

struct fx {
	char		 dir[64];
	char		 db[96];
	struct queue	*q;
	uint64_t	 now;
	unsigned char	 key[SEAL_KEY_LEN];
	struct queue_limits limits;
};

static uint64_t
fake_clock(void *ctx)
{
	return ((struct fx *)ctx)->now;
}

static void
fx_open(struct fx *f)
{
	struct psync_err err;

	if (queue_open(&f->q, f->dir, f->key, &f->limits, &err) != 0)
		fail_msg("queue_open %s: %s", f->dir, err.msg);
	queue_set_clock(f->q, fake_clock, f);
}

static void
fx_close(struct fx *f)
{
	queue_close(f->q);
	f->q = NULL;
}

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	size_t i;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/psync-queue-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/%s", f->dir, QUEUE_DB_NAME);
	for (i = 0; i < SEAL_KEY_LEN; i++)
		f->key[i] = (unsigned char)(0x40 + i);
	f->now = T0;
	f->limits.retry_interval = 30;
	f->limits.max_retry_interval = 600;
	f->limits.max_age = 3600;
	fx_open(f);
	*state = f;
	return 0;
}

static void
rm_tree(const char *dir)
{
	char path[512];
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) == -1 && errno == EISDIR)
			rm_tree(path);
	}
	closedir(d);
	rmdir(dir);
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	queue_close(f->q);
	chmod(f->dir, 0700);
	rm_tree(f->dir);
	free(f);
	return 0;
}

static void
make_change(struct change *c, unsigned int n, const char *user,
    uint64_t time_ms, const char *secret)
{
	memset(c, 0, sizeof(*c));
	memset(c->id, 0xa5, FRAME_ID_LEN);
	c->id[12] = (uint8_t)(n >> 24);
	c->id[13] = (uint8_t)(n >> 16);
	c->id[14] = (uint8_t)(n >> 8);
	c->id[15] = (uint8_t)n;
	snprintf(c->origin, sizeof(c->origin), "unix1");
	c->time_ms = time_ms;
	snprintf(c->user, sizeof(c->user), "%s", user);
	c->secret_kind = FRAME_SECRET_CLEARTEXT;
	c->secret_len = (uint16_t)strlen(secret);
	memcpy(c->secret, secret, c->secret_len);
}

static void
add_ok(struct fx *f, const struct change *c, const char *source,
    const char *const *peers, size_t n, int want)
{
	struct psync_err err;
	int rc = queue_add(f->q, c, source, peers, n, &err);

	if (rc != want)
		fail_msg("queue_add for %s: got %d, expected %d (%s)", c->user,
		    rc, want, rc == -1 ? err.msg : "");
}

/* Collects what queue_list and queue_expire report. */
struct seen {
	size_t			n;
	struct queue_entry	e[32];
};

static void
collect(void *ctx, const struct queue_entry *e)
{
	struct seen *s = ctx;

	if (s->n < sizeof(s->e) / sizeof(s->e[0]))
		s->e[s->n] = *e;
	s->n++;
}

static const struct queue_entry *
find_entry(const struct seen *s, const uint8_t id[FRAME_ID_LEN],
    const char *peer)
{
	size_t i;

	for (i = 0; i < s->n && i < sizeof(s->e) / sizeof(s->e[0]); i++)
		if (memcmp(s->e[i].id, id, FRAME_ID_LEN) == 0 &&
		    strcmp(s->e[i].peer, peer) == 0)
			return &s->e[i];
	fail_msg("no delivery to %s in the list of %zu", peer, s->n);
	return NULL;
}

static void
list_all(struct fx *f, struct seen *s)
{
	struct psync_err err;

	memset(s, 0, sizeof(*s));
	if (queue_list(f->q, NULL, false, collect, s, &err) < 0)
		fail_msg("queue_list: %s", err.msg);
}

static long
due(struct fx *f, const char *peer, struct queue_item *items, size_t cap)
{
	struct psync_err err;
	long n = queue_due(f->q, peer, items, cap, &err);

	if (n < 0)
		fail_msg("queue_due: %s", err.msg);
	return n;
}

static int
record(struct fx *f, const struct change *c, const char *peer, int code,
    const char *reason)
{
	struct psync_err err;
	int rc = queue_record(f->q, c->id, peer, code, reason, &err);

	if (rc < 0)
		fail_msg("queue_record %s: %s", peer, err.msg);
	return rc;
}

/* One integer from the database, through a connection of our own. */
static long long
sql_int(struct fx *f, const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	long long v;

	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void
sql_exec(struct fx *f, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* Does the file hold needle? A missing file holds nothing. */
static int
file_contains(const char *path, const char *needle)
{
	unsigned char *buf;
	struct stat st;
	size_t len = strlen(needle);
	int fd, found = 0;
	ssize_t n;

	fd = open(path, O_RDONLY);
	if (fd == -1)
		return 0;
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	n = read(fd, buf, (size_t)st.st_size);
	assert_int_equal(n, st.st_size);
	close(fd);
	found = memmem(buf, (size_t)n, needle, len) != NULL;
	free(buf);
	return found;
}

static const char *const two_peers[] = { "win1", "win2" };
static const char *const win1[] = { "win1" };

static void
test_added_change_comes_back_due_with_its_secret(void **state)
{
	struct fx *f = *state;
	struct queue_item items[4];
	struct change c;
	struct psync_err err;
	long n;

	make_change(&c, 1, "alice", T0 - 5, PASSWORD);
	add_ok(f, &c, NULL, two_peers, 2, 1);
	assert_int_equal(queue_known(f->q, c.id, &err), 1);

	n = due(f, NULL, items, 4);
	assert_int_equal(n, 2);
	assert_memory_equal(items[0].change.id, c.id, FRAME_ID_LEN);
	assert_string_equal(items[0].change.user, "alice");
	assert_string_equal(items[0].change.origin, "unix1");
	assert_true(items[0].change.time_ms == T0 - 5);
	assert_int_equal(items[0].change.secret_kind, FRAME_SECRET_CLEARTEXT);
	assert_int_equal(items[0].change.secret_len, strlen(PASSWORD));
	assert_string_equal((char *)items[0].change.secret, PASSWORD);
	assert_string_equal(items[0].source, QUEUE_SOURCE_LOCAL);
	assert_int_equal(items[0].attempts, 0);
	assert_string_equal(items[0].peer, "win1");
	assert_string_equal(items[1].peer, "win2");
	assert_true(items[0].created_ms == T0);
	secure_wipe(items, sizeof(items));

	/* The same id again is a no-op that says so. */
	add_ok(f, &c, NULL, two_peers, 2, 0);
	assert_int_equal(due(f, NULL, items, 4), 2);
	assert_int_equal(due(f, "win2", items, 4), 1);
	assert_string_equal(items[0].peer, "win2");
	assert_int_equal(due(f, NULL, items, 1), 1);
	secure_wipe(items, sizeof(items));

	/* A limit of zero and an unknown peer give nothing. */
	assert_int_equal(due(f, NULL, items, 0), 0);
	assert_int_equal(due(f, "nobody", items, 4), 0);
}

static void
test_secret_is_sealed_in_the_database_file(void **state)
{
	struct fx *f = *state;
	struct change c;
	char wal[128];

	make_change(&c, 1, "alice-in-the-file", T0, PASSWORD);
	add_ok(f, &c, NULL, two_peers, 2, 1);
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	/* The user name is there in clear: the search itself works. */
	assert_true(file_contains(wal, "alice-in-the-file") ||
	    file_contains(f->db, "alice-in-the-file"));
	assert_false(file_contains(wal, PASSWORD));
	assert_false(file_contains(f->db, PASSWORD));
	fx_close(f);	/* checkpoints the WAL into the database */
	assert_true(file_contains(f->db, "alice-in-the-file"));
	assert_false(file_contains(f->db, PASSWORD));
	assert_false(file_contains(wal, PASSWORD));
	fx_open(f);
}

static void
test_database_refuses_another_host_key(void **state)
{
	struct fx *f = *state;
	unsigned char other[SEAL_KEY_LEN];
	struct queue_item item;
	struct change c;
	struct psync_err err;
	struct queue *q2 = NULL;

	make_change(&c, 1, "alice", T0, PASSWORD);
	add_ok(f, &c, NULL, win1, 1, 1);
	fx_close(f);
	memcpy(other, f->key, sizeof(other));
	other[0] ^= 1;
	assert_int_equal(queue_open(&q2, f->dir, other, &f->limits, &err), -1);
	assert_null(q2);
	assert_int_equal(err.code, PSYNC_E_DECRYPT);
	assert_non_null(strstr(err.msg, "another host key"));
	assert_non_null(strstr(err.msg, f->db));

	fx_open(f);
	assert_int_equal(due(f, NULL, &item, 1), 1);
	assert_string_equal((char *)item.change.secret, PASSWORD);
	secure_wipe(&item, sizeof(item));
}

static void
test_damaged_secret_is_given_up_not_delivered(void **state)
{
	struct fx *f = *state;
	struct queue_item items[2];
	struct change a, b;
	struct seen s;

	make_change(&a, 1, "alice", T0, PASSWORD);
	make_change(&b, 2, "bob", T0, "other-secret");
	add_ok(f, &a, NULL, win1, 1, 1);
	add_ok(f, &b, NULL, win1, 1, 1);
	/* Swap the two sealed blobs: each is bound to its own change id. */
	sql_exec(f, "UPDATE changes SET secret = (SELECT secret FROM changes "
	    "WHERE user = 'bob') WHERE user = 'alice'");
	assert_int_equal(due(f, NULL, items, 2), 1);
	assert_string_equal(items[0].change.user, "bob");
	assert_string_equal((char *)items[0].change.secret, "other-secret");
	secure_wipe(items, sizeof(items));
	list_all(f, &s);
	assert_int_equal(find_entry(&s, a.id, "win1")->state, QUEUE_GIVEN_UP);
	assert_non_null(strstr(find_entry(&s, a.id, "win1")->last_error,
	    "host key"));
}

static void
test_newer_change_supersedes_older_pending_for_same_user_and_peer(void **state)
{
	struct fx *f = *state;
	struct queue_item items[4];
	struct change c1, c2, other;
	struct seen s;

	make_change(&c1, 1, "alice", T0 - 2000, "old-password");
	make_change(&c2, 2, "alice", T0 - 1000, "new-password");
	make_change(&other, 3, "bob", T0 - 3000, "bobs-password");
	add_ok(f, &c1, NULL, two_peers, 2, 1);
	add_ok(f, &other, NULL, win1, 1, 1);
	add_ok(f, &c2, NULL, win1, 1, 1);

	list_all(f, &s);
	assert_int_equal(s.n, 4);
	assert_int_equal(find_entry(&s, c1.id, "win1")->state, QUEUE_SUPERSEDED);
	assert_non_null(strstr(find_entry(&s, c1.id, "win1")->last_error,
	    "superseded by change"));
	assert_int_equal(find_entry(&s, c1.id, "win2")->state, QUEUE_PENDING);
	assert_int_equal(find_entry(&s, c2.id, "win1")->state, QUEUE_PENDING);
	assert_int_equal(find_entry(&s, other.id, "win1")->state, QUEUE_PENDING);

	assert_int_equal(due(f, "win1", items, 4), 2);
	assert_string_equal((char *)items[0].change.secret, "bobs-password");
	assert_string_equal((char *)items[1].change.secret, "new-password");
	secure_wipe(items, sizeof(items));
}

static void
test_older_change_is_superseded_on_arrival(void **state)
{
	struct fx *f = *state;
	struct queue_item items[4];
	struct change newer, older, tie_low, applied_old;
	struct psync_err err;
	struct seen s;

	make_change(&newer, 0x20, "alice", T0 - 1000, "new-password");
	make_change(&older, 0x10, "alice", T0 - 2000, "old-password");
	make_change(&tie_low, 0x05, "alice", T0 - 1000, "tie-password");
	add_ok(f, &newer, NULL, win1, 1, 1);
	/* Delivered already: a late older change must still not go. */
	assert_int_equal(record(f, &newer, "win1", PSYNC_OK, NULL), QUEUE_DONE);
	add_ok(f, &older, NULL, two_peers, 2, 1);
	/* Same time: the id breaks the tie, and 0x05... < 0x20... */
	add_ok(f, &tie_low, NULL, win1, 1, 1);
	list_all(f, &s);
	assert_int_equal(find_entry(&s, older.id, "win1")->state,
	    QUEUE_SUPERSEDED);
	assert_int_equal(find_entry(&s, older.id, "win2")->state,
	    QUEUE_SUPERSEDED);
	assert_int_equal(find_entry(&s, tie_low.id, "win1")->state,
	    QUEUE_SUPERSEDED);
	assert_int_equal(due(f, NULL, items, 4), 0);
	/* Neither needs its secret any more: it is gone from the disk. */
	assert_int_equal(sql_int(f, "SELECT count(*) FROM changes "
	    "WHERE length(secret) > 0"), 0);

	/* Applied here from a peer counts as much as queued. */
	assert_int_equal(queue_applied_add(f->q, (const uint8_t *)
	    "0123456789abcdef", "carol", T0 - 100, "win1", &err), 1);
	make_change(&applied_old, 0x30, "carol", T0 - 200, "stale");
	add_ok(f, &applied_old, NULL, two_peers, 2, 1);
	assert_int_equal(due(f, NULL, items, 4), 0);
}

static void
test_change_never_goes_back_to_its_origin_or_source(void **state)
{
	struct fx *f = *state;
	static const char *const peers[] = { "win1", "unix2", "unix3" };
	struct queue_item items[4];
	struct change c;

	make_change(&c, 1, "alice", T0, PASSWORD);
	snprintf(c.origin, sizeof(c.origin), "unix3");
	add_ok(f, &c, "win1", peers, 3, 1);
	assert_int_equal(due(f, NULL, items, 4), 1);
	assert_string_equal(items[0].peer, "unix2");
	assert_string_equal(items[0].source, "win1");
	secure_wipe(items, sizeof(items));
}

static void
test_apply_once_and_newest_change_per_user(void **state)
{
	struct fx *f = *state;
	uint8_t a[FRAME_ID_LEN], b[FRAME_ID_LEN], got[FRAME_ID_LEN];
	struct change queued;
	struct psync_err err;
	uint64_t t = 0;

	memset(a, 1, sizeof(a));
	memset(b, 2, sizeof(b));
	assert_int_equal(queue_applied_has(f->q, a, &err), 0);
	assert_int_equal(queue_user_newest(f->q, "alice", &t, got, &err), 0);
	assert_int_equal(queue_applied_add(f->q, a, "alice", T0 - 50, "win1",
	    &err), 1);
	assert_int_equal(queue_applied_add(f->q, a, "alice", T0 - 50, "win1",
	    &err), 0);
	assert_int_equal(queue_applied_has(f->q, a, &err), 1);
	assert_int_equal(queue_applied_has(f->q, b, &err), 0);
	assert_int_equal(queue_user_newest(f->q, "alice", &t, got, &err), 1);
	assert_true(t == T0 - 50);
	assert_memory_equal(got, a, FRAME_ID_LEN);

	/* A newer queued change wins over the applied one... */
	make_change(&queued, 9, "alice", T0 - 10, PASSWORD);
	add_ok(f, &queued, NULL, win1, 1, 1);
	assert_int_equal(queue_user_newest(f->q, "alice", &t, got, &err), 1);
	assert_true(t == T0 - 10);
	assert_memory_equal(got, queued.id, FRAME_ID_LEN);
	/* ...and a newer applied one over both. */
	assert_int_equal(queue_applied_add(f->q, b, "alice", T0, "win2",
	    &err), 1);
	assert_int_equal(queue_user_newest(f->q, "alice", &t, got, &err), 1);
	assert_true(t == T0);
	assert_memory_equal(got, b, FRAME_ID_LEN);
	assert_int_equal(queue_user_newest(f->q, "bob", &t, got, &err), 0);

	assert_true(queue_change_cmp(1, a, 2, a) < 0);
	assert_true(queue_change_cmp(2, a, 1, b) > 0);
	assert_true(queue_change_cmp(2, a, 2, b) < 0);
	assert_int_equal(queue_change_cmp(2, a, 2, a), 0);
}

static void
test_user_recent_sees_queued_delivered_and_applied_changes(void **state)
{
	struct fx *f = *state;
	struct change c;
	struct psync_err err;
	uint8_t a[FRAME_ID_LEN];

	assert_int_equal(queue_user_recent(f->q, "alice", 600, &err), 0);
	/* Queued here (sent): recent for 600 s, not after. */
	make_change(&c, 1, "alice", T0, PASSWORD);
	add_ok(f, &c, NULL, win1, 1, 1);
	assert_int_equal(queue_user_recent(f->q, "alice", 600, &err), 1);
	assert_int_equal(queue_user_recent(f->q, "bob", 600, &err), 0);
	f->now = T0 + 601 * 1000;
	assert_int_equal(queue_user_recent(f->q, "alice", 600, &err), 0);
	/* Delivered later: the delivery counts from when it happened. */
	assert_int_equal(queue_record(f->q, c.id, "win1", 0, NULL, &err),
	    QUEUE_DONE);
	assert_int_equal(queue_user_recent(f->q, "alice", 600, &err), 1);
	f->now += 601 * 1000;
	assert_int_equal(queue_user_recent(f->q, "alice", 600, &err), 0);
	/* Applied from a peer. */
	memset(a, 7, sizeof(a));
	assert_int_equal(queue_applied_add(f->q, a, "alice", T0 - 5, "win2",
	    &err), 1);
	assert_int_equal(queue_user_recent(f->q, "alice", 600, &err), 1);
	assert_int_equal(queue_user_recent(f->q, "alice", 0, &err), 1);
	f->now += 1;
	assert_int_equal(queue_user_recent(f->q, "alice", 0, &err), 0);
}

/* The database and its write-ahead log, in bytes. */
static long long
db_bytes(const struct fx *f)
{
	char wal[128];
	struct stat st;
	long long n = 0;

	if (stat(f->db, &st) == 0)
		n += st.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	if (stat(wal, &st) == 0)
		n += st.st_size;
	return n;
}

/* Change i of a stream: one of 20 users, delivered at once to win1. */
static void
change_delivered(struct fx *f, unsigned int i)
{
	struct change c;
	struct psync_err err;
	char user[16];

	snprintf(user, sizeof(user), "user%02u", i % 20);
	make_change(&c, 100000 + i, user, f->now, PASSWORD);
	add_ok(f, &c, NULL, win1, 1, 1);
	assert_int_equal(queue_record(f->q, c.id, "win1", 0, NULL, &err),
	    QUEUE_DONE);
}

static void
test_maintain_keeps_the_file_bounded_over_many_changes(void **state)
{
	struct fx *f = *state;
	struct queue_maint m;
	struct psync_err err;
	struct seen seen;
	long long warm = 0, most = 0, size;
	unsigned int i;

	fx_close(f);
	f->limits.retention = 24 * 3600;
	fx_open(f);
	/* 960 changes, one every 20 minutes: 320 hours, 13 retentions. */
	for (i = 1; i <= 960; i++) {
		change_delivered(f, i);
		f->now += 20 * 60 * 1000;
		if (i % 40 != 0)
			continue;
		if (queue_maintain(f->q, &m, &err) == -1)
			fail_msg("queue_maintain: %s", err.msg);
		size = db_bytes(f);
		if (i == 160)		/* two retentions in */
			warm = size;
		if (i > 160 && size > most)
			most = size;
	}
	/* Without the purge the file grows with every change (6x here). */
	if (most > warm + warm / 2)
		fail_msg("queue grew from %lld to %lld bytes", warm, most);
	/* What is left: the last day's deliveries (72, one every 20 min). */
	memset(&seen, 0, sizeof(seen));
	assert_true(queue_list(f->q, NULL, false, collect, &seen, &err) >= 0);
	if (seen.n < 70 || seen.n > 75)
		fail_msg("%zu deliveries left, expected one day's 72", seen.n);
}

static void
test_maintain_vacuums_after_a_large_purge_and_keeps_newest_per_user(
    void **state)
{
	struct fx *f = *state;
	struct queue_maint m;
	struct psync_err err;
	uint8_t id[FRAME_ID_LEN];
	uint64_t t;
	long long before;
	unsigned int i;

	for (i = 1; i <= 600; i++)
		change_delivered(f, i);
	assert_int_equal(queue_maintain(f->q, &m, &err), 0);
	assert_int_equal(m.purged, 0);	/* nothing older than 30 days */
	assert_false(m.vacuumed);
	before = db_bytes(f);
	f->now += (uint64_t)QUEUE_DEFAULT_RETENTION * 1000 + 1;
	assert_int_equal(queue_maintain(f->q, &m, &err), 0);
	assert_int_equal(m.purged, 600);
	if (!m.vacuumed)
		fail_msg("no VACUUM: %lld of %lld bytes", (long long)m.bytes_after,
		    (long long)m.bytes_before);
	if (m.bytes_after * 2 >= m.bytes_before || db_bytes(f) * 2 >= before)
		fail_msg("%lld -> %lld bytes, file %lld -> %lld",
		    (long long)m.bytes_before, (long long)m.bytes_after, before,
		    db_bytes(f));
	/* Last writer wins still knows each user's newest change. */
	assert_int_equal(queue_user_newest(f->q, "user07", &t, id, &err), 1);
	assert_int_equal(queue_check(f->q, &err), 0);
	/* Nothing left to free: no second VACUUM. */
	assert_int_equal(queue_maintain(f->q, &m, &err), 0);
	assert_false(m.vacuumed);
}

/* Copy a file byte for byte (a backup, as an administrator takes one). */
static void
copy_file(const char *from, const char *to)
{
	char buf[8192];
	ssize_t n;
	int in, out;

	in = open(from, O_RDONLY);
	assert_true(in >= 0);
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	assert_int_equal(close(out), 0);
}

static void
add_changes(struct fx *f, unsigned int first, unsigned int n)
{
	struct change c;
	unsigned int i;

	for (i = first; i < first + n; i++) {
		make_change(&c, 200000 + i, "alice", f->now + i, PASSWORD);
		add_ok(f, &c, NULL, win1, 1, 1);
	}
}

static void
test_clean_reopen_reports_no_lost_writes(void **state)
{
	struct fx *f = *state;
	char gen[128];
	struct stat st;

	snprintf(gen, sizeof(gen), "%s/%s", f->dir, QUEUE_GEN_NAME);
	assert_int_equal(stat(gen, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_null(queue_lost_writes(f->q));
	add_changes(f, 0, 3);
	fx_close(f);
	fx_open(f);
	assert_null(queue_lost_writes(f->q));
	/* A queue from before the side file: it is made, nothing lost. */
	fx_close(f);
	assert_int_equal(unlink(gen), 0);
	fx_open(f);
	assert_null(queue_lost_writes(f->q));
	assert_int_equal(stat(gen, &st), 0);
}

static void
test_restored_backup_is_reported_as_lost_writes(void **state)
{
	struct fx *f = *state;
	char backup[128];
	const char *lost;
	struct psync_err err;

	add_changes(f, 0, 2);
	fx_close(f);		/* the WAL is folded in at close */
	snprintf(backup, sizeof(backup), "%s/backup.db", f->dir);
	copy_file(f->db, backup);
	fx_open(f);
	add_changes(f, 2, 3);
	fx_close(f);
	copy_file(backup, f->db);
	fx_open(f);
	lost = queue_lost_writes(f->q);
	assert_non_null(lost);
	assert_non_null(strstr(lost, "lost its last 3 committed writes"));
	assert_non_null(strstr(lost, "restored from a backup"));
	/* It stays said, whoever opened the queue first, until cleared. */
	fx_close(f);
	fx_open(f);
	assert_non_null(queue_lost_writes(f->q));
	assert_int_equal(queue_lost_writes_clear(f->q, &err), 0);
	assert_null(queue_lost_writes(f->q));
	fx_close(f);
	fx_open(f);
	assert_null(queue_lost_writes(f->q));
}

static void
test_deleted_database_made_anew_is_reported(void **state)
{
	struct fx *f = *state;

	add_changes(f, 0, 4);
	fx_close(f);
	assert_int_equal(unlink(f->db), 0);
	fx_open(f);
	assert_non_null(queue_lost_writes(f->q));
	assert_non_null(strstr(queue_lost_writes(f->q), "at generation 1 "));
}

static void
test_wal_cut_short_is_reported_as_lost_writes(void **state)
{
	struct fx *f = *state;
	char wal[128];
	struct stat st;
	pid_t pid;
	int status;

	add_changes(f, 0, 1);
	fx_close(f);
	/* A writer commits into the WAL and dies before any checkpoint. */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		fx_open(f);
		add_changes(f, 1, 6);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	assert_int_equal(stat(wal, &st), 0);
	/* The log is cut short: the last commits' frames are gone. */
	assert_int_equal(truncate(wal, st.st_size / 2), 0);
	fx_open(f);
	assert_non_null(queue_lost_writes(f->q));
	assert_non_null(strstr(queue_lost_writes(f->q), "committed writes"));
}

static void
test_backoff_doubles_from_retry_interval_up_to_the_cap(void **state)
{
	static const uint64_t want[] = {
		30000, 60000, 120000, 240000, 480000, 600000, 600000,
	};
	struct fx *f = *state;
	struct change c;
	struct queue_item item;
	struct seen s;
	size_t i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++)
		assert_true(queue_backoff_ms(&f->limits, (unsigned)(i + 1)) ==
		    want[i]);
	assert_true(queue_backoff_ms(&f->limits, 1000000) == 600000);
	assert_true(queue_backoff_ms(NULL, 1) == QUEUE_DEFAULT_RETRY * 1000);

	/* The same sequence through real failed deliveries. */
	make_change(&c, 1, "alice", T0, PASSWORD);
	add_ok(f, &c, NULL, win1, 1, 1);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(due(f, NULL, &item, 1), 1);
		assert_int_equal(item.attempts, i);
		secure_wipe(&item, sizeof(item));
		assert_int_equal(record(f, &c, "win1", PSYNC_E_LOCK,
		    "shadow file locked"), QUEUE_PENDING);
		list_all(f, &s);
		assert_int_equal(s.e[0].attempts, i + 1);
		assert_true(s.e[0].next_try_ms == f->now + want[i]);
		assert_int_equal(s.e[0].last_code, PSYNC_E_LOCK);
		assert_string_equal(s.e[0].last_error,
		    "code 2 (lock violation): shadow file locked");
		/* Not due a millisecond early; due on time. */
		f->now += want[i] - 1;
		assert_int_equal(due(f, NULL, &item, 1), 0);
		f->now += 1;
	}
	assert_int_equal(record(f, &c, "win1", PSYNC_OK, NULL), QUEUE_DONE);
	assert_int_equal(due(f, NULL, &item, 1), 0);
}

static void
test_result_codes_classify_as_permanent_or_retryable(void **state)
{
	/* Refusals of this user or this password cannot change by waiting. */
	static const int permanent[] = {
		PSYNC_E_BAD_USER, PSYNC_E_BAD_PASSWORD, PSYNC_E_NO_USER,
		PSYNC_E_DISABLED, PSYNC_E_REFUSED, PSYNC_E_CANT_CHANGE,
		PSYNC_E_HISTORY, PSYNC_E_TOO_SHORT, PSYNC_E_BELOW_MINIMUM,
	};
	enum queue_verdict got, expect;
	size_t i;
	int code;

	(void)state;
	for (code = 0; code <= PSYNC_CODE_MAX; code++) {
		expect = code == PSYNC_OK ? QUEUE_VERDICT_DONE :
		    QUEUE_VERDICT_RETRY;
		for (i = 0; i < sizeof(permanent) / sizeof(permanent[0]); i++)
			if (permanent[i] == code)
				expect = QUEUE_VERDICT_GIVE_UP;
		got = queue_classify(code);
		if (got != expect)
			fail_msg("code %d (%s): got verdict %d, expected %d",
			    code, code_name(code), got, expect);
	}
	/* The brief's examples, spelled out. */
	assert_int_equal(queue_classify(12), QUEUE_VERDICT_GIVE_UP);
	assert_int_equal(queue_classify(14), QUEUE_VERDICT_GIVE_UP);
	assert_int_equal(queue_classify(9), QUEUE_VERDICT_GIVE_UP);
	assert_int_equal(queue_classify(18), QUEUE_VERDICT_GIVE_UP);
	assert_int_equal(queue_classify(24), QUEUE_VERDICT_GIVE_UP);
	assert_int_equal(queue_classify(PSYNC_E_LOCK), QUEUE_VERDICT_RETRY);
	assert_int_equal(queue_classify(PSYNC_E_TOO_RECENT), QUEUE_VERDICT_RETRY);
	assert_int_equal(queue_classify(QUEUE_CODE_UNREACHABLE),
	    QUEUE_VERDICT_RETRY);
	assert_int_equal(queue_classify(99), QUEUE_VERDICT_RETRY);
}

static void
test_permanent_failure_gives_up_and_forgets_the_secret(void **state)
{
	struct fx *f = *state;
	struct queue_item items[2];
	struct change c;
	struct psync_err err;
	struct seen s;

	make_change(&c, 1, "alice", T0, PASSWORD);
	add_ok(f, &c, NULL, two_peers, 2, 1);
	assert_int_equal(record(f, &c, "win1", PSYNC_E_NO_USER, "no alice"),
	    QUEUE_GIVEN_UP);
	/* win2 still needs the secret. */
	assert_int_equal(sql_int(f, "SELECT length(secret) FROM changes") >
	    (long long)strlen(PASSWORD), 1);
	assert_int_equal(due(f, NULL, items, 2), 1);
	assert_string_equal(items[0].peer, "win2");
	secure_wipe(items, sizeof(items));
	assert_int_equal(record(f, &c, "win2", PSYNC_OK, NULL), QUEUE_DONE);
	assert_int_equal(sql_int(f, "SELECT length(secret) FROM changes"), 0);

	/* A late answer changes nothing; an unknown delivery is an error. */
	assert_int_equal(record(f, &c, "win1", PSYNC_OK, NULL), QUEUE_GIVEN_UP);
	list_all(f, &s);
	assert_int_equal(find_entry(&s, c.id, "win1")->attempts, 1);
	assert_string_equal(find_entry(&s, c.id, "win1")->last_error,
	    "code 12 (no user entry): no alice");
	assert_int_equal(queue_record(f->q, c.id, "win9", PSYNC_OK, NULL, &err),
	    -1);
	assert_non_null(strstr(err.msg, "win9"));
}

static void
test_legacy_mepp_answer_4_is_given_up_after_12_tries(void **state)
{
	struct fx *f = *state;
	struct queue_item item;
	struct change c, d;
	struct psync_err err;
	struct seen s;
	unsigned int i;
	int rc;

	/* The rule: only a MEPP peer's 4, only from the twelfth try on. */
	assert_int_equal(QUEUE_MEPP_NOT_UPDATED_TRIES, 12);
	assert_int_equal(queue_classify_peer(QUEUE_PEER_MEPP,
	    PSYNC_E_NOT_UPDATED, 11), QUEUE_VERDICT_RETRY);
	assert_int_equal(queue_classify_peer(QUEUE_PEER_MEPP,
	    PSYNC_E_NOT_UPDATED, 12), QUEUE_VERDICT_GIVE_UP);
	assert_int_equal(queue_classify_peer(QUEUE_PEER_PSYNC,
	    PSYNC_E_NOT_UPDATED, 1000), QUEUE_VERDICT_RETRY);
	assert_int_equal(queue_classify_peer(QUEUE_PEER_MEPP,
	    PSYNC_E_PROTOCOL, 1000), QUEUE_VERDICT_RETRY);
	assert_int_equal(queue_classify_peer(QUEUE_PEER_MEPP,
	    PSYNC_E_NO_USER, 1), QUEUE_VERDICT_GIVE_UP);
	assert_int_equal(queue_classify_peer(QUEUE_PEER_MEPP, PSYNC_OK, 1),
	    QUEUE_VERDICT_DONE);

	/* Through real deliveries: eleven 4s wait, the twelfth gives up. */
	make_change(&c, 1, "alice", T0, PASSWORD);
	add_ok(f, &c, NULL, win1, 1, 1);
	for (i = 1; i <= QUEUE_MEPP_NOT_UPDATED_TRIES; i++) {
		assert_int_equal(due(f, NULL, &item, 1), 1);
		secure_wipe(&item, sizeof(item));
		rc = queue_record_peer(f->q, c.id, "win1", QUEUE_PEER_MEPP,
		    PSYNC_E_NOT_UPDATED, "password not updated", &err);
		if (rc != (i < QUEUE_MEPP_NOT_UPDATED_TRIES ? QUEUE_PENDING :
		    QUEUE_GIVEN_UP))
			fail_msg("try %u: state %d", i, rc);
		f->now += queue_backoff_ms(&f->limits, i);
	}
	assert_int_equal(due(f, NULL, &item, 1), 0);
	list_all(f, &s);
	assert_int_equal(find_entry(&s, c.id, "win1")->attempts, 12);
	assert_int_equal(find_entry(&s, c.id, "win1")->state, QUEUE_GIVEN_UP);
	assert_int_equal(sql_int(f, "SELECT length(secret) FROM changes"), 0);

	/* The same answers from a psync peer keep waiting (until max-age). */
	make_change(&d, 2, "bob", T0, PASSWORD);
	add_ok(f, &d, NULL, win1, 1, 1);
	for (i = 1; i <= QUEUE_MEPP_NOT_UPDATED_TRIES + 2; i++) {
		assert_int_equal(due(f, NULL, &item, 1), 1);
		secure_wipe(&item, sizeof(item));
		assert_int_equal(queue_record_peer(f->q, d.id, "win1",
		    QUEUE_PEER_PSYNC, PSYNC_E_NOT_UPDATED, NULL, &err),
		    QUEUE_PENDING);
		f->now += queue_backoff_ms(&f->limits, i);
	}
}

static void
test_result_messages_name_8203_and_what_a_legacy_4_means(void **state)
{
	struct queue_result_info r;
	char buf[1024];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.kind = QUEUE_PEER_MEPP;
	r.state = QUEUE_PENDING;
	r.code = PSYNC_E_PROTOCOL;
	r.peer = "win1";
	r.user = "alice";
	r.id_hex = "00112233445566778899aabbccddeeff";
	r.reason = "protocol error";
	assert_int_equal(queue_result_message(&r, buf, sizeof(buf)),
	    LOG_WARNING);
	assert_string_equal(buf, "8203: secret key mismatch or packet error "
	    "for user alice on host win1 (change "
	    "00112233445566778899aabbccddeeff; will retry): protocol error");

	/* A psync peer's 5 is no legacy message. */
	r.kind = QUEUE_PEER_PSYNC;
	assert_int_equal(queue_result_message(&r, buf, sizeof(buf)),
	    LOG_WARNING);
	assert_null(strstr(buf, "8203"));
	assert_non_null(strstr(buf, "code 5 (protocol error)"));

	r.kind = QUEUE_PEER_MEPP;
	r.code = PSYNC_E_NOT_UPDATED;
	r.reason = "password not updated";
	assert_int_equal(queue_result_message(&r, buf, sizeof(buf)),
	    LOG_WARNING);
	assert_string_equal(buf, "peer win1 refused change "
	    "00112233445566778899aabbccddeeff for alice for now: code 4 "
	    "(password not updated): password not updated; a legacy MEPP "
	    "listener answers 4 when it cannot change this user (unknown to it, "
	    "or refused by its PAM stack); will retry, giving up after 12 "
	    "tries");
	r.state = QUEUE_GIVEN_UP;
	r.reason = NULL;
	queue_result_message(&r, buf, sizeof(buf));
	assert_string_equal(buf, "change 00112233445566778899aabbccddeeff for "
	    "alice given up for peer win1 after 12 tries: code 4 (password not "
	    "updated): a legacy MEPP listener answers 4 when it cannot change "
	    "this user (unknown to it, or refused by its PAM stack)");

	/* The cases psyncd logged before, unchanged. */
	r.kind = QUEUE_PEER_PSYNC;
	r.code = PSYNC_E_NO_USER;
	queue_result_message(&r, buf, sizeof(buf));
	assert_string_equal(buf, "8201: user alice does not exist on peer win1; "
	    "change 00112233445566778899aabbccddeeff given up");
	r.state = QUEUE_DONE;
	r.code = PSYNC_OK;
	assert_int_equal(queue_result_message(&r, buf, sizeof(buf)), LOG_INFO);
	assert_string_equal(buf, "change 00112233445566778899aabbccddeeff for "
	    "alice delivered to peer win1");
	r.state = QUEUE_PENDING;
	r.code = QUEUE_CODE_UNREACHABLE;
	r.reason = "connect failed";
	assert_int_equal(queue_result_message(&r, buf, sizeof(buf)), LOG_INFO);
	assert_non_null(strstr(buf, "unreachable"));

	/* A name from the network cannot start a line of its own. */
	r.kind = QUEUE_PEER_MEPP;
	r.code = PSYNC_E_PROTOCOL;
	r.user = "eve\nJan  1 00:00:00 host psyncd: forged";
	r.reason = "a\rb";
	queue_result_message(&r, buf, sizeof(buf));
	assert_null(strchr(buf, '\n'));
	assert_null(strchr(buf, '\r'));
	assert_non_null(strstr(buf, "user eve?Jan  1"));
}

static void
test_long_error_text_is_cut_on_a_character_boundary(void **state)
{
	struct fx *f = *state;
	struct queue_peer_status st;
	struct change c;
	struct psync_err err;
	char reason[1 + 3 * 200 + 1];
	struct seen s;
	size_t i;

	/* "code 14 (user refused by policy): x" is 35 bytes, then 3-byte
	   characters: the cut at byte 256 falls inside one. */
	reason[0] = 'x';
	for (i = 0; i < 200; i++)
		memcpy(reason + 1 + 3 * i, "\xe2\x82\xac", 3);	/* euro */
	reason[sizeof(reason) - 1] = '\0';
	make_change(&c, 1, "alice", T0, PASSWORD);
	add_ok(f, &c, NULL, win1, 1, 1);
	assert_int_equal(record(f, &c, "win1", PSYNC_E_REFUSED, reason),
	    QUEUE_GIVEN_UP);
	list_all(f, &s);
	assert_true(strlen(s.e[0].last_error) <= QUEUE_ERROR_MAX);
	assert_true(strlen(s.e[0].last_error) > QUEUE_ERROR_MAX - 3);
	assert_true(utf8_length(s.e[0].last_error) > 0);
	assert_int_equal(queue_peer_status(f->q, "win1", &st, &err), 0);
	assert_string_equal(st.last_error, s.e[0].last_error);
}

static void
test_expire_gives_up_what_waited_longer_than_max_age(void **state)
{
	struct fx *f = *state;
	struct change a, b, later;
	struct queue_item item;
	struct psync_err err;
	struct seen s;

	make_change(&a, 1, "alice", T0, PASSWORD);
	make_change(&b, 2, "bob", T0, PASSWORD);
	make_change(&later, 3, "carol", T0, PASSWORD);
	add_ok(f, &a, NULL, two_peers, 2, 1);
	add_ok(f, &b, NULL, win1, 1, 1);
	f->now += 1800 * 1000;
	add_ok(f, &later, NULL, win1, 1, 1);
	f->now = T0 + 3600 * 1000;	/* exactly max_age: not yet */
	memset(&s, 0, sizeof(s));
	assert_int_equal(queue_expire(f->q, collect, &s, &err), 0);
	f->now += 1;
	assert_int_equal(queue_expire(f->q, collect, &s, &err), 3);
	assert_int_equal(s.n, 3);
	assert_int_equal(find_entry(&s, a.id, "win2")->state, QUEUE_GIVEN_UP);
	assert_non_null(strstr(find_entry(&s, b.id, "win1")->last_error,
	    "expired"));
	assert_string_equal(find_entry(&s, b.id, "win1")->user, "bob");
	assert_int_equal(queue_expire(f->q, NULL, NULL, &err), 0);
	assert_int_equal(due(f, NULL, &item, 1), 1);
	assert_string_equal(item.change.user, "carol");
	secure_wipe(&item, sizeof(item));
	assert_int_equal(sql_int(f, "SELECT count(*) FROM changes "
	    "WHERE length(secret) > 0"), 1);
}

static void
test_expire_handles_more_than_one_batch(void **state)
{
	struct fx *f = *state;
	struct change c;
	struct psync_err err;
	char user[16];
	unsigned int i;

	for (i = 0; i < 150; i++) {
		snprintf(user, sizeof(user), "user%u", i);
		make_change(&c, i, user, T0, PASSWORD);
		add_ok(f, &c, NULL, two_peers, 2, 1);
	}
	f->now += 3601 * 1000;
	assert_int_equal(queue_expire(f->q, NULL, NULL, &err), 300);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM deliveries "
	    "WHERE state = 0"), 0);
}

static void
test_peer_status_tracks_results_depth_and_age(void **state)
{
	struct fx *f = *state;
	struct queue_peer_status st;
	struct change a, b;
	struct psync_err err;

	assert_int_equal(queue_peer_status(f->q, "win1", &st, &err), 0);
	assert_false(st.known);
	assert_int_equal(st.depth, 0);
	assert_true(st.oldest_age_ms == 0);

	make_change(&a, 1, "alice", T0, PASSWORD);
	make_change(&b, 2, "bob", T0, PASSWORD);
	add_ok(f, &a, NULL, two_peers, 2, 1);
	f->now += 4000;
	add_ok(f, &b, NULL, win1, 1, 1);
	f->now += 6000;
	assert_int_equal(queue_peer_status(f->q, "win1", &st, &err), 0);
	assert_int_equal(st.depth, 2);
	assert_true(st.oldest_age_ms == 10000);

	assert_int_equal(record(f, &a, "win1", QUEUE_CODE_UNREACHABLE,
	    "connection refused"), QUEUE_PENDING);
	assert_int_equal(queue_peer_status(f->q, "win1", &st, &err), 0);
	assert_true(st.known);
	assert_false(st.reachable);
	assert_true(st.last_error_ms == f->now);
	assert_string_equal(st.last_error, "unreachable: connection refused");
	assert_true(st.last_success_ms == 0);

	f->now += 1000;
	assert_int_equal(record(f, &a, "win1", PSYNC_OK, NULL), QUEUE_DONE);
	assert_int_equal(queue_peer_status(f->q, "win1", &st, &err), 0);
	assert_true(st.reachable);
	assert_true(st.last_success_ms == f->now);
	assert_true(st.last_error_ms == f->now - 1000);
	assert_string_equal(st.last_error, "unreachable: connection refused");
	assert_int_equal(st.depth, 1);
	assert_true(st.oldest_age_ms == 7000);

	/* A connection report outside any delivery. */
	f->now += 1000;
	assert_int_equal(queue_peer_report(f->q, "win2", false, "TLS handshake "
	    "failed", &err), 0);
	assert_int_equal(queue_peer_status(f->q, "win2", &st, &err), 0);
	assert_false(st.reachable);
	assert_string_equal(st.last_error, "TLS handshake failed");
	assert_int_equal(st.depth, 1);
	assert_int_equal(queue_peer_report(f->q, "win2", true, NULL, &err), 0);
	assert_int_equal(queue_peer_status(f->q, "win2", &st, &err), 0);
	assert_true(st.reachable);
	assert_string_equal(st.last_error, "TLS handshake failed");
}

static void
test_list_retry_drop_and_purge(void **state)
{
	struct fx *f = *state;
	struct change a, b, c;
	struct queue_item items[4];
	struct psync_err err;
	struct seen s;
	uint64_t t;
	uint8_t id[FRAME_ID_LEN];

	make_change(&a, 1, "alice", T0, PASSWORD);
	make_change(&b, 2, "bob", T0, PASSWORD);
	make_change(&c, 3, "carol", T0, PASSWORD);
	add_ok(f, &a, NULL, two_peers, 2, 1);
	add_ok(f, &b, NULL, two_peers, 2, 1);
	add_ok(f, &c, NULL, win1, 1, 1);
	assert_int_equal(record(f, &a, "win1", PSYNC_E_LOCK, NULL),
	    QUEUE_PENDING);
	assert_int_equal(record(f, &a, "win2", PSYNC_E_LOCK, NULL),
	    QUEUE_PENDING);
	assert_int_equal(record(f, &b, "win1", PSYNC_E_WRITE, NULL),
	    QUEUE_PENDING);
	assert_int_equal(record(f, &c, "win1", PSYNC_OK, NULL), QUEUE_DONE);
	assert_int_equal(due(f, NULL, items, 4), 1);	/* b to win2 */
	secure_wipe(items, sizeof(items));

	/* Listing: everything, or what is pending, or one peer's share. */
	list_all(f, &s);
	assert_int_equal(s.n, 5);
	assert_string_equal(find_entry(&s, c.id, "win1")->user, "carol");
	assert_int_equal(find_entry(&s, c.id, "win1")->state, QUEUE_DONE);
	assert_int_equal(queue_list(f->q, NULL, true, NULL, NULL, &err), 4);
	assert_int_equal(queue_list(f->q, "win2", true, NULL, NULL, &err), 2);

	/* Retry one id now, then all. */
	assert_int_equal(queue_retry_now(f->q, a.id, &err), 2);
	assert_int_equal(due(f, NULL, items, 4), 3);
	secure_wipe(items, sizeof(items));
	assert_int_equal(queue_retry_now(f->q, NULL, &err), 4);
	assert_int_equal(due(f, NULL, items, 4), 4);
	secure_wipe(items, sizeof(items));
	memset(id, 0x77, sizeof(id));
	assert_int_equal(queue_retry_now(f->q, id, &err), -1);
	assert_non_null(strstr(err.msg, "7777"));

	/* Drop one peer's delivery, then the rest of the change. */
	assert_int_equal(queue_drop(f->q, a.id, "win2", &err), 1);
	assert_int_equal(queue_drop(f->q, a.id, NULL, &err), 1);
	assert_int_equal(queue_drop(f->q, a.id, NULL, &err), 0);
	list_all(f, &s);
	assert_int_equal(find_entry(&s, a.id, "win1")->state, QUEUE_GIVEN_UP);
	assert_string_equal(find_entry(&s, a.id, "win2")->last_error,
	    "dropped by the administrator");
	assert_int_equal(sql_int(f, "SELECT count(*) FROM changes "
	    "WHERE length(secret) > 0"), 1);

	/* Purge: finished rows before the cut-off go, pending ones stay. */
	assert_int_equal(queue_purge(f->q, T0, &err), 0);
	f->now += 1;
	assert_int_equal(queue_purge(f->q, f->now, &err), 3);
	list_all(f, &s);
	assert_int_equal(s.n, 2);
	assert_memory_equal(s.e[0].id, b.id, FRAME_ID_LEN);
	/* Each user's newest change is kept for last-writer-wins. */
	assert_int_equal(queue_user_newest(f->q, "alice", &t, id, &err), 1);
	assert_memory_equal(id, a.id, FRAME_ID_LEN);
	assert_int_equal(queue_known(f->q, c.id, &err), 1);
}

static void
test_purge_deletes_all_but_the_newest_record_per_user(void **state)
{
	struct fx *f = *state;
	struct change c1, c2;
	struct psync_err err;
	uint8_t x[FRAME_ID_LEN], y[FRAME_ID_LEN];

	make_change(&c1, 1, "alice", T0 - 20, PASSWORD);
	make_change(&c2, 2, "alice", T0 - 10, PASSWORD);
	add_ok(f, &c1, NULL, win1, 1, 1);
	add_ok(f, &c2, NULL, win1, 1, 1);
	memset(x, 1, sizeof(x));
	memset(y, 2, sizeof(y));
	assert_int_equal(queue_applied_add(f->q, x, "bob", 1, "win1", &err), 1);
	assert_int_equal(queue_applied_add(f->q, y, "bob", 2, "win1", &err), 1);
	assert_int_equal(record(f, &c2, "win1", PSYNC_OK, NULL), QUEUE_DONE);
	f->now += 1;
	assert_int_equal(queue_purge(f->q, f->now, &err), 2);
	assert_int_equal(queue_known(f->q, c1.id, &err), 0);
	assert_int_equal(queue_known(f->q, c2.id, &err), 1);
	assert_int_equal(queue_applied_has(f->q, x, &err), 0);
	assert_int_equal(queue_applied_has(f->q, y, &err), 1);
}

static void
test_node_state_keeps_values_across_reopen(void **state)
{
	struct fx *f = *state;
	struct psync_err err;
	unsigned char big[QUEUE_VALUE_MAX + 1];
	char buf[32];
	size_t len = 0;

	assert_int_equal(queue_state_get(f->q, "key-rotation", buf,
	    sizeof(buf), &len, &err), 0);
	assert_int_equal(queue_state_set(f->q, "key-rotation", "proposed:7",
	    10, &err), 0);
	assert_int_equal(queue_state_set(f->q, "empty", "", 0, &err), 0);
	fx_close(f);
	fx_open(f);
	assert_int_equal(queue_state_get(f->q, "key-rotation", buf,
	    sizeof(buf), &len, &err), 1);
	assert_int_equal(len, 10);
	assert_memory_equal(buf, "proposed:7", 10);
	assert_int_equal(queue_state_get(f->q, "empty", buf, sizeof(buf), &len,
	    &err), 1);
	assert_int_equal(len, 0);
	assert_int_equal(queue_state_set(f->q, "key-rotation", "confirmed:7",
	    11, &err), 0);
	assert_int_equal(queue_state_get(f->q, "key-rotation", buf, 5, &len,
	    &err), -1);
	assert_non_null(strstr(err.msg, "key-rotation"));
	assert_int_equal(queue_state_get(f->q, "key-rotation", buf,
	    sizeof(buf), &len, &err), 1);
	assert_memory_equal(buf, "confirmed:7", 11);
	assert_int_equal(queue_state_del(f->q, "key-rotation", &err), 0);
	assert_int_equal(queue_state_get(f->q, "key-rotation", buf,
	    sizeof(buf), &len, &err), 0);
	memset(big, 'x', sizeof(big));
	assert_int_equal(queue_state_set(f->q, "big", big, sizeof(big), &err),
	    -1);
	assert_int_equal(queue_state_set(f->q, "", "v", 1, &err), -1);
}

static void
test_refuses_writable_directory_or_database(void **state)
{
	struct fx *f = *state;
	struct psync_err err;
	struct queue *q2 = NULL;
	struct stat st;
	char sub[128];

	assert_int_equal(stat(f->db, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	fx_close(f);

	assert_int_equal(chmod(f->dir, 0777), 0);
	assert_int_equal(queue_open(&q2, f->dir, f->key, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "group- or world-writable"));
	assert_non_null(strstr(err.msg, f->dir));
	assert_int_equal(chmod(f->dir, 0700), 0);

	assert_int_equal(chmod(f->db, 0666), 0);
	assert_int_equal(queue_open(&q2, f->dir, f->key, NULL, &err), -1);
	assert_non_null(strstr(err.msg, "group- or world-writable"));
	assert_non_null(strstr(err.msg, f->db));
	assert_int_equal(chmod(f->db, 0600), 0);

	/* A missing directory is made private. */
	snprintf(sub, sizeof(sub), "%s/sub", f->dir);
	assert_int_equal(queue_open(&q2, sub, f->key, NULL, &err), 0);
	queue_close(q2);
	assert_int_equal(stat(sub, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0700);
	fx_open(f);
}

static void
test_schema_version_is_set_and_a_newer_one_refused(void **state)
{
	struct fx *f = *state;
	struct psync_err err;
	struct queue *q2 = NULL;

	assert_int_equal(sql_int(f, "PRAGMA user_version"), 1);
	assert_int_equal(sql_int(f, "SELECT journal_mode = 'wal' "
	    "FROM pragma_journal_mode"), 1);
	fx_close(f);
	sql_exec(f, "PRAGMA user_version = 99");
	assert_int_equal(queue_open(&q2, f->dir, f->key, NULL, &err), -1);
	assert_int_equal(err.code, PSYNC_E_VERSION);
	assert_non_null(strstr(err.msg, "99"));
	sql_exec(f, "PRAGMA user_version = 1");
	fx_open(f);
	assert_int_equal(queue_check(f->q, &err), 0);
}

static void
test_ids_print_and_parse_as_hex(void **state)
{
	uint8_t id[FRAME_ID_LEN], back[FRAME_ID_LEN];
	char hex[QUEUE_ID_HEX_LEN + 1];
	size_t i;

	(void)state;
	for (i = 0; i < FRAME_ID_LEN; i++)
		id[i] = (uint8_t)(i * 17 + 3);
	queue_id_hex(id, hex);
	assert_string_equal(hex, "031425364758697a8b9cadbecfe0f102");
	assert_int_equal(queue_id_parse("031425364758697A8B9CADBECFE0F102",
	    back), 0);
	assert_memory_equal(id, back, FRAME_ID_LEN);
	assert_int_equal(queue_id_parse("0314", back), -1);
	assert_int_equal(queue_id_parse("g31425364758697a8b9cadbecfd0e1f2",
	    back), -1);
	assert_string_equal(queue_state_name(QUEUE_SUPERSEDED), "superseded");
	assert_string_equal(queue_state_name(9), "unknown");
}

/*
 * The child adds changes in a loop and writes each id to the pipe only
 * after queue_add returned; it is killed at a random moment.
 */
static _Noreturn void
crash_child(const struct fx *f, int fd, unsigned int round)
{
	static const char *const peers[] = { "p1", "p2", "p3" };
	struct change c;
	struct psync_err err;
	struct queue *q;
	char user[16];
	unsigned int i;

	if (queue_open(&q, f->dir, f->key, &f->limits, &err) != 0)
		_exit(2);
	for (i = 0; i < 100000; i++) {
		snprintf(user, sizeof(user), "u%u", i % 7);
		make_change(&c, round << 16 | i, user, T0 + round * 1000 + i,
		    PASSWORD);
		if (queue_add(q, &c, NULL, peers, 3, &err) != 1)
			_exit(3);
		if (write(fd, c.id, FRAME_ID_LEN) != FRAME_ID_LEN)
			_exit(4);
	}
	queue_close(q);
	_exit(0);
}

static void
test_crash_at_random_moments_keeps_every_committed_change(void **state)
{
	struct fx *f = *state;
	uint8_t id[FRAME_ID_LEN], first[FRAME_ID_LEN];
	bool have_first;
	struct psync_err err;
	unsigned int round, seed = (unsigned int)time(NULL) ^ (unsigned)getpid();
	unsigned long committed = 0, total = 0, since_fresh = 0;
	int p[2], status;
	pid_t pid;
	ssize_t n;

	fx_close(f);
	srand(seed);
	print_message("crash test seed %u\n", seed);
	for (round = 0; round < 200; round++) {
		/* Every tenth round starts from nothing, so that kills also
		   land while the database is created and migrated. */
		if (round % 10 == 0) {
			rm_tree(f->dir);
			assert_int_equal(mkdir(f->dir, 0700), 0);
		}
		assert_int_equal(pipe(p), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			crash_child(f, p[1], round);
		}
		close(p[1]);
		/*
		 * Fresh rounds: a kill while the database is created. Others:
		 * wait for the first commit (however slow the machine, or a
		 * sanitizer build, is), then kill in the middle of the adds.
		 */
		have_first = false;
		if (round % 10 == 0) {
			usleep((useconds_t)(rand() % 3000));
		} else {
			struct pollfd pfd = { p[0], POLLIN, 0 };

			if (poll(&pfd, 1, 20000) == 1 &&
			    read(p[0], first, sizeof(first)) == (ssize_t)sizeof(first))
				have_first = true;
			else
				fail_msg("round %u: no commit within 20 s", round);
			usleep((useconds_t)(rand() % 25000));
		}
		assert_int_equal(kill(pid, SIGKILL), 0);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		if (!WIFSIGNALED(status))
			fail_msg("round %u: child exited with %d before the kill",
			    round, WEXITSTATUS(status));

		fx_open(f);
		if (queue_check(f->q, &err) != 0)
			fail_msg("round %u (seed %u): %s", round, seed, err.msg);
		committed = 0;
		if (have_first) {
			if (queue_known(f->q, first, &err) != 1)
				fail_msg("round %u (seed %u): the first change "
				    "reported committed is missing", round, seed);
			committed++;
		}
		while ((n = read(p[0], id, sizeof(id))) == (ssize_t)sizeof(id)) {
			if (queue_known(f->q, id, &err) != 1)
				fail_msg("round %u (seed %u): change %lu reported "
				    "committed is missing", round, seed,
				    committed);
			committed++;
		}
		assert_int_equal(n, 0);
		close(p[0]);
		total += committed;
		since_fresh = round % 10 == 0 ? committed :
		    since_fresh + committed;
		fx_close(f);
	}
	fx_open(f);
	print_message("crash test: %lu committed changes survived 200 kills\n",
	    total);
	/* 180 of the kills landed after at least one commit, among the adds. */
	assert_true(total >= 180);
	assert_true(since_fresh > 0);
	assert_int_equal(sql_int(f, "SELECT count(*) FROM changes") >=
	    (long long)since_fresh, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
		T(test_added_change_comes_back_due_with_its_secret),
		T(test_secret_is_sealed_in_the_database_file),
		T(test_database_refuses_another_host_key),
		T(test_damaged_secret_is_given_up_not_delivered),
		T(test_newer_change_supersedes_older_pending_for_same_user_and_peer),
		T(test_older_change_is_superseded_on_arrival),
		T(test_change_never_goes_back_to_its_origin_or_source),
		T(test_apply_once_and_newest_change_per_user),
		T(test_user_recent_sees_queued_delivered_and_applied_changes),
		T(test_maintain_keeps_the_file_bounded_over_many_changes),
		T(test_maintain_vacuums_after_a_large_purge_and_keeps_newest_per_user),
		T(test_clean_reopen_reports_no_lost_writes),
		T(test_restored_backup_is_reported_as_lost_writes),
		T(test_deleted_database_made_anew_is_reported),
		T(test_wal_cut_short_is_reported_as_lost_writes),
		T(test_backoff_doubles_from_retry_interval_up_to_the_cap),
		T(test_result_codes_classify_as_permanent_or_retryable),
		T(test_permanent_failure_gives_up_and_forgets_the_secret),
		T(test_legacy_mepp_answer_4_is_given_up_after_12_tries),
		T(test_result_messages_name_8203_and_what_a_legacy_4_means),
		T(test_long_error_text_is_cut_on_a_character_boundary),
		T(test_expire_gives_up_what_waited_longer_than_max_age),
		T(test_expire_handles_more_than_one_batch),
		T(test_peer_status_tracks_results_depth_and_age),
		T(test_list_retry_drop_and_purge),
		T(test_purge_deletes_all_but_the_newest_record_per_user),
		T(test_node_state_keeps_values_across_reopen),
		T(test_refuses_writable_directory_or_database),
		T(test_schema_version_is_set_and_a_newer_one_refused),
		T(test_ids_print_and_parse_as_hex),
		T(test_crash_at_random_moments_keeps_every_committed_change),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
