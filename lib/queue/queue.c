/*
 * psyncd's durable queue on SQLite. Every statement is prepared once at
 * open and reused; every write runs in one BEGIN IMMEDIATE transaction, so
 * after a crash the database holds either all of an operation or none of it
 * (WAL with synchronous=FULL). Secrets are sealed with AES-256-GCM under
 * the host key, bound to the change id, and overwritten (secure_delete) as
 * soon as no pending delivery needs them.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "codes.h"
#include "log.h"
#include "queue.h"

/* Bump with a new entry in migrations[] whenever the schema changes. */
#define QUEUE_SCHEMA_VERSION	1
#define QUEUE_BUSY_MS		5000
#define QUEUE_EXPIRE_BATCH	64
/* Associated data: names the queue, and the change id is appended. */
#define QUEUE_AAD_PREFIX	"psync queue change v1 "
#define QUEUE_AAD_LEN		(sizeof(QUEUE_AAD_PREFIX) - 1 + QUEUE_ID_HEX_LEN + 1)
/* A known plaintext sealed at creation: tells a wrong host key at open. */
#define QUEUE_CHECK_AAD		"psync queue key check v1"
#define QUEUE_CHECK_TEXT	"psync queue key check"

/*
 * Schema history: migrations[i] takes user_version i to i + 1. Each runs
 * in its own transaction with the version bump, so a crash never leaves a
 * half-migrated database.
 */
static const char *const migrations[QUEUE_SCHEMA_VERSION] = {
	/* 0 -> 1: the first schema. */
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE changes ("
	"  seq INTEGER PRIMARY KEY,"
	"  id BLOB NOT NULL UNIQUE CHECK (length(id) = 16),"
	"  origin TEXT NOT NULL,"
	"  time_ms INTEGER NOT NULL,"
	"  user TEXT NOT NULL,"
	"  kind INTEGER NOT NULL,"
	"  secret BLOB NOT NULL,"	/* sealed; x'' once nobody needs it */
	"  source TEXT NOT NULL,"
	"  created_ms INTEGER NOT NULL);"
	"CREATE INDEX changes_user ON changes (user, time_ms, id);"
	/* user, time_ms and id are copied from changes so that the newest
	   pending delivery per (user, peer) is one index probe away. */
	"CREATE TABLE deliveries ("
	"  change_seq INTEGER NOT NULL"
	"    REFERENCES changes (seq) ON DELETE CASCADE,"
	"  peer TEXT NOT NULL,"
	"  user TEXT NOT NULL,"
	"  time_ms INTEGER NOT NULL,"
	"  id BLOB NOT NULL,"
	"  state INTEGER NOT NULL CHECK (state BETWEEN 0 AND 3),"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  created_ms INTEGER NOT NULL,"
	"  next_try_ms INTEGER NOT NULL,"
	"  updated_ms INTEGER NOT NULL,"
	"  last_code INTEGER NOT NULL DEFAULT -1,"
	"  last_error TEXT NOT NULL DEFAULT '',"
	"  PRIMARY KEY (change_seq, peer));"
	"CREATE INDEX deliveries_user_peer ON deliveries"
	"  (user, peer, time_ms, id) WHERE state = 0;"
	"CREATE INDEX deliveries_due ON deliveries (next_try_ms) WHERE state = 0;"
	"CREATE INDEX deliveries_peer ON deliveries (peer, created_ms)"
	"  WHERE state = 0;"
	"CREATE INDEX deliveries_age ON deliveries (created_ms) WHERE state = 0;"
	"CREATE INDEX deliveries_finished ON deliveries (updated_ms)"
	"  WHERE state <> 0;"
	"CREATE TABLE applied ("
	"  id BLOB PRIMARY KEY CHECK (length(id) = 16),"
	"  user TEXT NOT NULL,"
	"  time_ms INTEGER NOT NULL,"
	"  origin TEXT NOT NULL,"
	"  applied_ms INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE INDEX applied_user ON applied (user, time_ms, id);"
	"CREATE INDEX applied_age ON applied (applied_ms);"
	"CREATE TABLE peers ("
	"  name TEXT PRIMARY KEY,"
	"  reachable INTEGER NOT NULL DEFAULT 0,"
	"  last_success_ms INTEGER NOT NULL DEFAULT 0,"
	"  last_error_ms INTEGER NOT NULL DEFAULT 0,"
	"  last_error TEXT NOT NULL DEFAULT '') WITHOUT ROWID;"
	"CREATE TABLE node_state ("
	"  key TEXT PRIMARY KEY,"
	"  value BLOB NOT NULL,"
	"  updated_ms INTEGER NOT NULL) WITHOUT ROWID;",
};

enum stmt {
	S_BEGIN, S_COMMIT, S_ROLLBACK,
	S_META_GET, S_META_SET,
	S_CHANGE_SEQ, S_CHANGE_INSERT,
	S_NEWEST_CHANGE, S_NEWEST_APPLIED,
	S_DELIVERY_INSERT, S_SUPERSEDE, S_FORGET_USER, S_FORGET_ONE,
	S_DUE_ALL, S_DUE_PEER,
	S_DELIVERY_GET, S_DELIVERY_SET, S_GIVE_UP,
	S_PEER_UPSERT, S_PEER_GET, S_PEER_PENDING,
	S_EXPIRE_SELECT, S_LIST_ALL, S_LIST_PEER,
	S_RETRY_ONE, S_RETRY_ALL, S_DROP,
	S_PURGE_DELIVERIES, S_PURGE_CHANGES, S_PURGE_APPLIED,
	S_APPLIED_HAS, S_APPLIED_INSERT, S_USER_RECENT,
	S_STATE_GET, S_STATE_SET, S_STATE_DEL,
	S_INTEGRITY, S_GEN_BUMP, S_GEN_GET,
	S_COUNT
};

/* The columns read_entry() expects, in its order. */
#define ENTRY_COLS \
	"c.id, c.user, c.origin, c.source, d.peer, d.state, d.attempts, " \
	"c.time_ms, d.created_ms, d.next_try_ms, d.updated_ms, d.last_code, " \
	"d.last_error, d.change_seq " \
	"FROM deliveries d JOIN changes c ON c.seq = d.change_seq "

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN]		= "BEGIN IMMEDIATE",
	[S_COMMIT]		= "COMMIT",
	[S_ROLLBACK]		= "ROLLBACK",
	[S_META_GET]		= "SELECT value FROM meta WHERE key = ?1",
	[S_META_SET]		= "INSERT OR REPLACE INTO meta (key, value) "
				  "VALUES (?1, ?2)",
	[S_CHANGE_SEQ]		= "SELECT seq FROM changes WHERE id = ?1",
	[S_CHANGE_INSERT]	= "INSERT INTO changes (id, origin, time_ms, "
				  "user, kind, secret, source, created_ms) "
				  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_NEWEST_CHANGE]	= "SELECT time_ms, id FROM changes "
				  "WHERE user = ?1 "
				  "ORDER BY time_ms DESC, id DESC LIMIT 1",
	[S_NEWEST_APPLIED]	= "SELECT time_ms, id FROM applied "
				  "WHERE user = ?1 "
				  "ORDER BY time_ms DESC, id DESC LIMIT 1",
	[S_DELIVERY_INSERT]	= "INSERT OR IGNORE INTO deliveries (change_seq, "
				  "peer, user, time_ms, id, state, created_ms, "
				  "next_try_ms, updated_ms, last_error) "
				  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?8)",
	[S_SUPERSEDE]		= "UPDATE deliveries SET state = 3, "
				  "updated_ms = ?1, last_error = ?6 "
				  "WHERE state = 0 AND user = ?2 AND peer = ?3 "
				  "AND (time_ms < ?4 OR (time_ms = ?4 AND id < ?5))",
	[S_FORGET_USER]		= "UPDATE changes SET secret = x'' "
				  "WHERE user = ?1 AND length(secret) > 0 "
				  "AND NOT EXISTS (SELECT 1 FROM deliveries d "
				  "WHERE d.change_seq = changes.seq "
				  "AND d.state = 0)",
	[S_FORGET_ONE]		= "UPDATE changes SET secret = x'' "
				  "WHERE seq = ?1 AND length(secret) > 0 "
				  "AND NOT EXISTS (SELECT 1 FROM deliveries d "
				  "WHERE d.change_seq = ?1 AND d.state = 0)",
	[S_DUE_ALL]		= "SELECT c.id, c.origin, c.time_ms, c.user, "
				  "c.kind, c.secret, c.source, d.peer, "
				  "d.attempts, d.created_ms, d.change_seq "
				  "FROM deliveries d JOIN changes c "
				  "ON c.seq = d.change_seq "
				  "WHERE d.state = 0 AND d.next_try_ms <= ?1 "
				  "ORDER BY d.created_ms, d.change_seq LIMIT ?2",
	[S_DUE_PEER]		= "SELECT c.id, c.origin, c.time_ms, c.user, "
				  "c.kind, c.secret, c.source, d.peer, "
				  "d.attempts, d.created_ms, d.change_seq "
				  "FROM deliveries d JOIN changes c "
				  "ON c.seq = d.change_seq "
				  "WHERE d.state = 0 AND d.peer = ?3 "
				  "AND d.next_try_ms <= ?1 "
				  "ORDER BY d.created_ms, d.change_seq LIMIT ?2",
	[S_DELIVERY_GET]	= "SELECT d.change_seq, d.state, d.attempts "
				  "FROM changes c JOIN deliveries d "
				  "ON d.change_seq = c.seq "
				  "WHERE c.id = ?1 AND d.peer = ?2",
	[S_DELIVERY_SET]	= "UPDATE deliveries SET state = ?3, "
				  "attempts = ?4, next_try_ms = ?5, "
				  "updated_ms = ?6, last_code = ?7, "
				  "last_error = ?8 "
				  "WHERE change_seq = ?1 AND peer = ?2",
	[S_GIVE_UP]		= "UPDATE deliveries SET state = 2, "
				  "updated_ms = ?3, last_error = ?4 "
				  "WHERE change_seq = ?1 AND peer = ?2 "
				  "AND state = 0",
	/* ?3/?4: new success/error time, 0 when this report is not one. */
	[S_PEER_UPSERT]		= "INSERT INTO peers (name, reachable, "
				  "last_success_ms, last_error_ms, last_error) "
				  "VALUES (?1, ?2, ?3, ?4, ?5) "
				  "ON CONFLICT (name) DO UPDATE SET "
				  "reachable = ?2, "
				  "last_success_ms = max(last_success_ms, ?3), "
				  "last_error_ms = max(last_error_ms, ?4), "
				  "last_error = CASE WHEN ?4 > 0 THEN ?5 "
				  "ELSE last_error END",
	[S_PEER_GET]		= "SELECT reachable, last_success_ms, "
				  "last_error_ms, last_error FROM peers "
				  "WHERE name = ?1",
	[S_PEER_PENDING]	= "SELECT count(*), min(created_ms) "
				  "FROM deliveries WHERE state = 0 AND peer = ?1",
	[S_EXPIRE_SELECT]	= "SELECT " ENTRY_COLS
				  "WHERE d.state = 0 AND d.created_ms < ?1 "
				  "ORDER BY d.created_ms LIMIT ?2",
	[S_LIST_ALL]		= "SELECT " ENTRY_COLS
				  "WHERE (?1 = 0 OR d.state = 0) "
				  "ORDER BY d.created_ms, d.change_seq, d.peer",
	[S_LIST_PEER]		= "SELECT " ENTRY_COLS
				  "WHERE (?1 = 0 OR d.state = 0) AND d.peer = ?2 "
				  "ORDER BY d.created_ms, d.change_seq",
	[S_RETRY_ONE]		= "UPDATE deliveries SET next_try_ms = ?1 "
				  "WHERE change_seq = ?2 AND state = 0",
	[S_RETRY_ALL]		= "UPDATE deliveries SET next_try_ms = ?1 "
				  "WHERE state = 0",
	[S_DROP]		= "UPDATE deliveries SET state = 2, "
				  "updated_ms = ?1, "
				  "last_error = 'dropped by the administrator' "
				  "WHERE change_seq = ?2 AND state = 0 "
				  "AND (?3 IS NULL OR peer = ?3)",
	[S_PURGE_DELIVERIES]	= "DELETE FROM deliveries "
				  "WHERE state <> 0 AND updated_ms < ?1",
	/* Keep each user's newest record: last writer wins needs it. */
	[S_PURGE_CHANGES]	= "DELETE FROM changes WHERE created_ms < ?1 "
				  "AND NOT EXISTS (SELECT 1 FROM deliveries d "
				  "WHERE d.change_seq = changes.seq) "
				  "AND EXISTS (SELECT 1 FROM changes n "
				  "WHERE n.user = changes.user "
				  "AND (n.time_ms > changes.time_ms "
				  "OR (n.time_ms = changes.time_ms "
				  "AND n.id > changes.id)))",
	[S_PURGE_APPLIED]	= "DELETE FROM applied WHERE applied_ms < ?1 "
				  "AND EXISTS (SELECT 1 FROM applied n "
				  "WHERE n.user = applied.user "
				  "AND (n.time_ms > applied.time_ms "
				  "OR (n.time_ms = applied.time_ms "
				  "AND n.id > applied.id)))",
	[S_APPLIED_HAS]		= "SELECT 1 FROM applied WHERE id = ?1",
	[S_APPLIED_INSERT]	= "INSERT OR IGNORE INTO applied (id, user, "
				  "time_ms, origin, applied_ms) "
				  "VALUES (?1, ?2, ?3, ?4, ?5)",
	/* Queued or delivered, or applied, here since ?2 (one index each). */
	[S_USER_RECENT]		= "SELECT EXISTS (SELECT 1 FROM changes c "
				  "WHERE c.user = ?1 AND (c.created_ms >= ?2 "
				  "OR EXISTS (SELECT 1 FROM deliveries d "
				  "WHERE d.change_seq = c.seq "
				  "AND d.updated_ms >= ?2))) "
				  "OR EXISTS (SELECT 1 FROM applied a "
				  "WHERE a.user = ?1 AND a.applied_ms >= ?2)",
	[S_STATE_GET]		= "SELECT value FROM node_state WHERE key = ?1",
	[S_STATE_SET]		= "INSERT OR REPLACE INTO node_state "
				  "(key, value, updated_ms) VALUES (?1, ?2, ?3)",
	[S_STATE_DEL]		= "DELETE FROM node_state WHERE key = ?1",
	[S_INTEGRITY]		= "PRAGMA integrity_check",
	[S_GEN_BUMP]		= "INSERT INTO meta (key, value) "
				  "VALUES ('generation', 1) ON CONFLICT (key) "
				  "DO UPDATE SET value = value + 1",
	[S_GEN_GET]		= "SELECT value FROM meta "
				  "WHERE key = 'generation'",
};

struct queue {
	sqlite3			*db;
	char			 path[PATH_MAX];
	unsigned char		 key[SEAL_KEY_LEN];
	struct queue_limits	 limits;
	queue_clock_fn		 clock;
	void			*clock_ctx;
	sqlite3_stmt		*st[S_COUNT];
	/* The generation side file (see queue_open); -1 until checked. */
	int			 gen_fd;
	char			 gen_path[PATH_MAX];
	char			 lost[512];	/* "": none */
};

/* Result codes that no retry can change: the peer refuses this change for
   this user, or refuses the password itself. Everything else may pass
   later (a lock, a key being rotated, a too recent change) until max_age. */
static const enum queue_verdict verdicts[PSYNC_CODE_MAX + 1] = {
	[PSYNC_OK]			= QUEUE_VERDICT_DONE,
	[PSYNC_E_FILE_NOT_FOUND]	= QUEUE_VERDICT_RETRY,
	[PSYNC_E_LOCK]			= QUEUE_VERDICT_RETRY,
	[PSYNC_E_OPEN]			= QUEUE_VERDICT_RETRY,
	[PSYNC_E_NOT_UPDATED]		= QUEUE_VERDICT_RETRY,
	[PSYNC_E_PROTOCOL]		= QUEUE_VERDICT_RETRY,
	[PSYNC_E_BAD_USER]		= QUEUE_VERDICT_GIVE_UP,
	[PSYNC_E_DECRYPT]		= QUEUE_VERDICT_RETRY,
	[PSYNC_E_VERSION]		= QUEUE_VERDICT_RETRY,
	[PSYNC_E_BAD_PASSWORD]		= QUEUE_VERDICT_GIVE_UP,
	[PSYNC_E_NIS]			= QUEUE_VERDICT_RETRY,
	[PSYNC_E_WRITE]			= QUEUE_VERDICT_RETRY,
	[PSYNC_E_NO_USER]		= QUEUE_VERDICT_GIVE_UP,
	[PSYNC_E_DISABLED]		= QUEUE_VERDICT_GIVE_UP,
	[PSYNC_E_REFUSED]		= QUEUE_VERDICT_GIVE_UP,
	[PSYNC_E_EXPIRED]		= QUEUE_VERDICT_RETRY,
	[PSYNC_E_CANT_CHANGE]		= QUEUE_VERDICT_GIVE_UP,
	[PSYNC_E_HISTORY]		= QUEUE_VERDICT_GIVE_UP,
	[PSYNC_E_TOO_SHORT]		= QUEUE_VERDICT_GIVE_UP,
	[PSYNC_E_TOO_RECENT]		= QUEUE_VERDICT_RETRY,
	[PSYNC_E_BAD_PASSWD_FILE]	= QUEUE_VERDICT_RETRY,
	[PSYNC_E_BAD_SHADOW]		= QUEUE_VERDICT_RETRY,
	[PSYNC_E_LASTCHG]		= QUEUE_VERDICT_RETRY,
	[PSYNC_E_VERSION_MISMATCH]	= QUEUE_VERDICT_RETRY,
	[PSYNC_E_BELOW_MINIMUM]		= QUEUE_VERDICT_GIVE_UP,
	[PSYNC_E_UPDATE_FAILED]		= QUEUE_VERDICT_RETRY,
};

static const char *const state_names[] = {
	[QUEUE_PENDING]		= "pending",
	[QUEUE_DONE]		= "done",
	[QUEUE_GIVEN_UP]	= "given-up",
	[QUEUE_SUPERSEDED]	= "superseded",
};

/* Say what failed, on which database, and what SQLite said. */
static void q_dberr(struct queue *q, struct psync_err *err, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

static void
q_dberr(struct queue *q, struct psync_err *err, const char *fmt, ...)
{
	char what[PSYNC_ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	perr_set(err, PSYNC_E_WRITE, "queue %s: %s: %s", q->path, what,
	    q->db != NULL ? sqlite3_errmsg(q->db) : "no database");
}

static uint64_t
clock_wall(void *ctx)
{
	(void)ctx;
	return clock_wall_ms();
}

static uint64_t
q_now(struct queue *q)
{
	uint64_t t = q->clock(q->clock_ctx);

	return t > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : t;
}

/* A statement ready for new bindings. */
static sqlite3_stmt *
q_stmt(struct queue *q, enum stmt s)
{
	sqlite3_stmt *st = q->st[s];

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

/* Run a statement that returns no rows, then release it. */
static int
q_exec(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int
q_begin(struct queue *q, const char *what, struct psync_err *err)
{
	if (q_exec(q_stmt(q, S_BEGIN)) == -1) {
		q_dberr(q, err, "%s: cannot begin a transaction", what);
		return -1;
	}
	return 0;
}

static void gen_write(struct queue *q, int64_t gen, bool sync);

/* The generation this transaction makes; -1 on error. */
static int64_t
gen_bump(struct queue *q)
{
	sqlite3_stmt *st = q_stmt(q, S_GEN_GET);
	int64_t gen = -1;

	if (q_exec(q_stmt(q, S_GEN_BUMP)) == -1)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		gen = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return gen;
}

/*
 * Every commit counts one generation, in the database and then in the side
 * file: the side file is never ahead of what the database made durable
 * (the commit's fsync comes first), so a false alarm is impossible. The
 * side file itself is synced at open, at queue_maintain() and at close,
 * not at every commit: a power cut may lose its last counts, which only
 * hides the loss of writes made just before it, not older ones.
 */
static int
q_commit(struct queue *q, const char *what, struct psync_err *err)
{
	int64_t gen;

	if ((gen = gen_bump(q)) == -1) {
		q_dberr(q, err, "%s: cannot count the generation", what);
		return -1;
	}
	if (q_exec(q_stmt(q, S_COMMIT)) == -1) {
		q_dberr(q, err, "%s: cannot commit", what);
		return -1;
	}
	gen_write(q, gen, false);
	return 0;
}

/* Undo an open transaction; harmless when there is none. */
static void
q_rollback(struct queue *q)
{
	int i;

	/* A statement still stepping would keep the transaction alive. */
	for (i = 0; i < S_COUNT; i++)
		sqlite3_reset(q->st[i]);
	if (!sqlite3_get_autocommit(q->db) &&
	    q_exec(q_stmt(q, S_ROLLBACK)) == -1)
		log_warnx("queue %s: rollback failed: %s", q->path,
		    sqlite3_errmsg(q->db));
}

static int
bind_i64(sqlite3_stmt *st, int i, uint64_t v)
{
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

static int
bind_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int
bind_id(sqlite3_stmt *st, int i, const uint8_t id[FRAME_ID_LEN])
{
	return sqlite3_bind_blob(st, i, id, FRAME_ID_LEN, SQLITE_STATIC);
}

/* Copy a text column; -1 when it is NULL or longer than cap - 1. */
static int
col_text(sqlite3_stmt *st, int i, char *dst, size_t cap)
{
	const unsigned char *s = sqlite3_column_text(st, i);
	int n = sqlite3_column_bytes(st, i);

	if (s == NULL || n < 0 || (size_t)n >= cap) {
		if (cap > 0)
			dst[0] = '\0';
		return -1;
	}
	memcpy(dst, s, (size_t)n);
	dst[n] = '\0';
	return 0;
}

static int
col_id(sqlite3_stmt *st, int i, uint8_t id[FRAME_ID_LEN])
{
	const void *p = sqlite3_column_blob(st, i);

	if (p == NULL || sqlite3_column_bytes(st, i) != FRAME_ID_LEN)
		return -1;
	memcpy(id, p, FRAME_ID_LEN);
	return 0;
}

static uint64_t
col_u64(sqlite3_stmt *st, int i)
{
	sqlite3_int64 v = sqlite3_column_int64(st, i);

	return v < 0 ? 0 : (uint64_t)v;
}

void
queue_id_hex(const uint8_t id[FRAME_ID_LEN], char out[QUEUE_ID_HEX_LEN + 1])
{
	hex_encode(id, FRAME_ID_LEN, out);
}

int
queue_id_parse(const char *s, uint8_t id[FRAME_ID_LEN])
{
	size_t i;

	if (strlen(s) != QUEUE_ID_HEX_LEN)
		return -1;
	for (i = 0; i < FRAME_ID_LEN; i++) {
		int hi = hex_digit((unsigned char)s[2 * i]);
		int lo = hex_digit((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

const char *
queue_state_name(int state)
{
	if (state < 0 || state >= (int)(sizeof(state_names) /
	    sizeof(state_names[0])))
		return "unknown";
	return state_names[state];
}

enum queue_verdict
queue_classify(int code)
{
	if (code < 0 || code > PSYNC_CODE_MAX)
		return QUEUE_VERDICT_RETRY;	/* unreachable, or unknown */
	return verdicts[code];
}

enum queue_verdict
queue_classify_peer(enum queue_peer_kind kind, int code, unsigned int attempts)
{
	/* The published listener's 4: this user cannot be changed there. */
	if (kind == QUEUE_PEER_MEPP && code == PSYNC_E_NOT_UPDATED)
		return attempts >= QUEUE_MEPP_NOT_UPDATED_TRIES ?
		    QUEUE_VERDICT_GIVE_UP : QUEUE_VERDICT_RETRY;
	return queue_classify(code);
}

/* A name or text for a log line: control characters become '?'. */
static const char *
log_safe(const char *in, char *out, size_t len)
{
	size_t i;

	if (in == NULL)
		in = "";
	for (i = 0; in[i] != '\0' && i + 1 < len; i++) {
		unsigned char ch = (unsigned char)in[i];

		out[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	out[i] = '\0';
	return out;
}

/* What a legacy listener's 4 means, for the log. */
#define QUEUE_MEPP_4_MEANS "a legacy MEPP listener answers 4 when it " \
	"cannot change this user (unknown to it, or refused by its PAM stack)"

int
queue_result_message(const struct queue_result_info *r, char *buf, size_t len)
{
	char peer[FRAME_NAME_MAX + 1], user[FRAME_USER_MAX + 1];
	char why[QUEUE_ERROR_MAX + 1], id[QUEUE_ID_HEX_LEN + 1];
	const char *sep;
	bool mepp = r->kind == QUEUE_PEER_MEPP;
	bool given_up = r->state == QUEUE_GIVEN_UP;
	int prio = LOG_WARNING;

	log_safe(r->peer, peer, sizeof(peer));
	log_safe(r->user, user, sizeof(user));
	log_safe(r->reason, why, sizeof(why));
	log_safe(r->id_hex, id, sizeof(id));
	sep = why[0] != '\0' ? ": " : "";
	if (r->code == PSYNC_OK) {
		prio = LOG_INFO;
		snprintf(buf, len, "change %s for %s delivered to peer %s%s%s",
		    id, user, peer, sep, why);
	} else if (mepp && r->code == PSYNC_E_PROTOCOL) {
		snprintf(buf, len, "%d: secret key mismatch or packet error for "
		    "user %s on host %s (change %s%s)%s%s",
		    PSYNC_MSG_KEY_MISMATCH, user, peer, id, given_up ?
		    ", given up" : "; will retry", sep, why);
	} else if (mepp && r->code == PSYNC_E_NOT_UPDATED && given_up) {
		snprintf(buf, len, "change %s for %s given up for peer %s after "
		    "%d tries: code 4 (%s): %s%s%s", id, user, peer,
		    QUEUE_MEPP_NOT_UPDATED_TRIES, code_reason(r->code),
		    QUEUE_MEPP_4_MEANS, sep, why);
	} else if (mepp && r->code == PSYNC_E_NOT_UPDATED) {
		snprintf(buf, len, "peer %s refused change %s for %s for now: "
		    "code 4 (%s)%s%s; %s; will retry, giving up after %d tries",
		    peer, id, user, code_reason(r->code), sep, why,
		    QUEUE_MEPP_4_MEANS, QUEUE_MEPP_NOT_UPDATED_TRIES);
	} else if (given_up && r->code == PSYNC_E_NO_USER) {
		snprintf(buf, len, "%d: user %s does not exist on peer %s; "
		    "change %s given up", PSYNC_MSG_NO_USER, user, peer, id);
	} else if (given_up) {
		snprintf(buf, len, "change %s for %s given up for peer %s: code "
		    "%d (%s)%s%s", id, user, peer, r->code,
		    code_reason(r->code), sep, why);
	} else if (r->code == QUEUE_CODE_UNREACHABLE) {
		prio = LOG_INFO;
		snprintf(buf, len, "peer %s unreachable for change %s for %s; "
		    "will retry%s%s", peer, id, user, sep, why);
	} else {
		snprintf(buf, len, "peer %s refused change %s for %s for now: "
		    "code %d (%s)%s%s; will retry", peer, id, user, r->code,
		    code_reason(r->code), sep, why);
	}
	return prio;
}

int
queue_change_cmp(uint64_t a_time, const uint8_t a_id[FRAME_ID_LEN],
    uint64_t b_time, const uint8_t b_id[FRAME_ID_LEN])
{
	if (a_time != b_time)
		return a_time < b_time ? -1 : 1;
	return memcmp(a_id, b_id, FRAME_ID_LEN);
}

static void
limits_fill(struct queue_limits *dst, const struct queue_limits *src)
{
	dst->retry_interval = src != NULL && src->retry_interval > 0 ?
	    src->retry_interval : QUEUE_DEFAULT_RETRY;
	dst->max_retry_interval = src != NULL && src->max_retry_interval > 0 ?
	    src->max_retry_interval : QUEUE_DEFAULT_MAX_RETRY;
	dst->max_age = src != NULL && src->max_age > 0 ?
	    src->max_age : QUEUE_DEFAULT_MAX_AGE;
	dst->retention = src != NULL && src->retention > 0 ?
	    src->retention : QUEUE_DEFAULT_RETENTION;
	if (dst->max_retry_interval < dst->retry_interval)
		dst->max_retry_interval = dst->retry_interval;
}

uint64_t
queue_backoff_ms(const struct queue_limits *limits, unsigned int attempts)
{
	struct queue_limits l;
	uint64_t delay, cap;
	unsigned int i;

	limits_fill(&l, limits);
	delay = (uint64_t)l.retry_interval * 1000;
	cap = (uint64_t)l.max_retry_interval * 1000;
	/* Doubling stops at the cap, so this never overflows. */
	for (i = 1; i < attempts && delay < cap; i++)
		delay *= 2;
	return delay < cap ? delay : cap;
}

/* A text cut to size must not end in half a UTF-8 character. */
static void
utf8_trim(char *s)
{
	size_t n = strlen(s), i, need;
	unsigned char c;

	for (i = n; i > 0 && n - i < 4; i--) {
		c = (unsigned char)s[i - 1];
		if ((c & 0xc0) == 0x80)
			continue;
		need = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
		if (n - (i - 1) < need)
			s[i - 1] = '\0';
		return;
	}
}

static void
change_aad(const uint8_t id[FRAME_ID_LEN], char aad[QUEUE_AAD_LEN])
{
	char hex[QUEUE_ID_HEX_LEN + 1];

	queue_id_hex(id, hex);
	snprintf(aad, QUEUE_AAD_LEN, "%s%s", QUEUE_AAD_PREFIX, hex);
}

/* Run one PRAGMA and, with want, insist on its answer. */
static int
q_pragma(struct queue *q, const char *sql, const char *want,
    struct psync_err *err)
{
	sqlite3_stmt *st = NULL;
	const unsigned char *got;
	int rc = -1, s;

	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) {
		q_dberr(q, err, "%s", sql);
		goto done;
	}
	s = sqlite3_step(st);
	if (s != SQLITE_ROW && s != SQLITE_DONE) {
		q_dberr(q, err, "%s", sql);
		goto done;
	}
	if (want != NULL) {
		got = s == SQLITE_ROW ? sqlite3_column_text(st, 0) : NULL;
		if (got == NULL || strcmp((const char *)got, want) != 0) {
			perr_set(err, PSYNC_E_OPEN, "queue %s: %s answered %s, "
			    "expected %s", q->path, sql,
			    got != NULL ? (const char *)got : "nothing", want);
			goto done;
		}
	}
	rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

static int
user_version(struct queue *q, int *version, struct psync_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st,
	    NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		q_dberr(q, err, "reading the schema version");
		goto done;
	}
	*version = sqlite3_column_int(st, 0);
	rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

/* Bring the schema to QUEUE_SCHEMA_VERSION, one step a transaction. */
static int
q_migrate(struct queue *q, struct psync_err *err)
{
	char sql[64];
	int v;

	if (user_version(q, &v, err) == -1)
		return -1;
	if (v < 0 || v > QUEUE_SCHEMA_VERSION) {
		perr_set(err, PSYNC_E_VERSION, "queue %s: schema version %d is "
		    "not one this psync knows (it knows up to %d): made by a "
		    "newer psync?", q->path, v, QUEUE_SCHEMA_VERSION);
		return -1;
	}
	for (; v < QUEUE_SCHEMA_VERSION; v++) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(q->db, "BEGIN IMMEDIATE", NULL, NULL,
		    NULL) != SQLITE_OK) {
			q_dberr(q, err, "schema %d to %d: cannot begin", v, v + 1);
			return -1;
		}
		if (sqlite3_exec(q->db, migrations[v], NULL, NULL,
		    NULL) != SQLITE_OK ||
		    sqlite3_exec(q->db, sql, NULL, NULL, NULL) != SQLITE_OK ||
		    sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			q_dberr(q, err, "migrating the schema from version %d "
			    "to %d", v, v + 1);
			sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		if (v > 0)
			log_info("queue %s: schema migrated from version %d "
			    "to %d", q->path, v, v + 1);
	}
	return 0;
}

/*
 * The first open seals a known text; later opens must open it, so that a
 * host key that changed is reported at once and not at the first delivery.
 */
static int
q_key_check(struct queue *q, struct psync_err *err)
{
	unsigned char sealed[sizeof(QUEUE_CHECK_TEXT) + SEAL_OVERHEAD];
	unsigned char plain[sizeof(QUEUE_CHECK_TEXT)];
	sqlite3_stmt *st;
	const void *blob;
	long n;
	int len, s, rc = -1;

	st = q_stmt(q, S_META_GET);
	if (bind_text(st, 1, "key-check") != SQLITE_OK) {
		q_dberr(q, err, "reading the key check");
		goto done;
	}
	s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		blob = sqlite3_column_blob(st, 0);
		len = sqlite3_column_bytes(st, 0);
		if (blob == NULL || len != (int)sizeof(sealed)) {
			perr_set(err, PSYNC_E_DECRYPT, "queue %s: the key check "
			    "is damaged", q->path);
			goto done;
		}
		n = unseal(q->key, QUEUE_CHECK_AAD, blob, (size_t)len, plain, err);
		if (n != (long)sizeof(QUEUE_CHECK_TEXT) ||
		    memcmp(plain, QUEUE_CHECK_TEXT, sizeof(plain)) != 0) {
			perr_set(err, PSYNC_E_DECRYPT, "queue %s: refused: the "
			    "database was sealed under another host key (was "
			    "the host key file replaced?)", q->path);
			goto done;
		}
		rc = 0;
		goto done;
	}
	if (s != SQLITE_DONE) {
		q_dberr(q, err, "reading the key check");
		goto done;
	}
	sqlite3_reset(st);
	n = seal(q->key, QUEUE_CHECK_AAD, QUEUE_CHECK_TEXT,
	    sizeof(QUEUE_CHECK_TEXT), sealed, err);
	if (n != (long)sizeof(sealed))
		goto done;
	if (q_begin(q, "storing the key check", err) == -1)
		goto done;
	st = q_stmt(q, S_META_SET);
	if (bind_text(st, 1, "key-check") != SQLITE_OK ||
	    sqlite3_bind_blob(st, 2, sealed, (int)n, SQLITE_STATIC) != SQLITE_OK ||
	    q_exec(st) == -1) {
		q_dberr(q, err, "storing the key check");
		q_rollback(q);
		goto done;
	}
	if (q_commit(q, "storing the key check", err) == -1) {
		q_rollback(q);
		goto done;
	}
	rc = 0;
done:
	sqlite3_reset(q->st[S_META_GET]);
	return rc;
}

/* ---- lost writes: the generation side file ---- */

#define GEN_FMT		"psync queue generation %020lld\n"
#define GEN_LEN		44	/* what GEN_FMT prints */

/*
 * The side file's generation: 1 read, 0 no side file (a new queue, or
 * one from before side files), -1 error.
 */
static int
gen_read(struct queue *q, int64_t *gen, struct psync_err *err)
{
	char buf[GEN_LEN + 1];
	long long v;
	ssize_t n;
	int fd, rc = -1;

	fd = open(q->gen_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd == -1) {
		if (errno == ENOENT)
			return 0;
		perr_set(err, PSYNC_E_OPEN, "queue %s: cannot open: %s",
		    q->gen_path, strerror(errno));
		return -1;
	}
	n = read(fd, buf, GEN_LEN);
	if (n == -1) {
		perr_set(err, PSYNC_E_OPEN, "queue %s: cannot read: %s",
		    q->gen_path, strerror(errno));
		goto done;
	}
	buf[n] = '\0';
	if (n != GEN_LEN ||
	    sscanf(buf, "psync queue generation %20lld", &v) != 1 || v < 0) {
		/* A torn or foreign file says nothing: start it again. */
		log_warnx("queue %s: not a generation record; written anew",
		    q->gen_path);
		rc = 0;
		goto done;
	}
	*gen = v;
	rc = 1;
done:
	close(fd);
	return rc;
}

/* Record gen; sync: also make it durable (at open and close). */
static void
gen_write(struct queue *q, int64_t gen, bool sync)
{
	char buf[GEN_LEN + 1];

	if (q->gen_fd == -1)
		return;
	snprintf(buf, sizeof(buf), GEN_FMT, (long long)gen);
	if (pwrite(q->gen_fd, buf, GEN_LEN, 0) != GEN_LEN ||
	    (sync && fsync(q->gen_fd) == -1))
		log_warn("queue %s: cannot record generation %lld", q->gen_path,
		    (long long)gen);
}

/*
 * Compare the database's generation with the side file's. A database
 * behind its side file lost writes it had committed (a WAL cut short, a
 * copy restored from a backup, a file deleted and made anew): the queue
 * still opens, but says so loudly, once, and queue_lost_writes() keeps
 * the news for psyncctl status.
 */
static int
gen_check(struct queue *q, int side, int64_t side_gen, struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, S_GEN_GET);
	char dir[PATH_MAX], *slash;
	size_t len = 0;
	int64_t gen = 0;
	int s, dfd;

	s = sqlite3_step(st);
	if (s == SQLITE_ROW)
		gen = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (s != SQLITE_ROW && s != SQLITE_DONE) {
		q_dberr(q, err, "reading the generation");
		return -1;
	}
	if (side == 1 && side_gen > gen) {
		snprintf(q->lost, sizeof(q->lost), "the queue database is at "
		    "generation %lld but %s recorded %lld: it lost its last "
		    "%lld committed writes (a write-ahead log cut short, a "
		    "copy restored from a backup, or the database removed and "
		    "made anew); changes queued, delivered or applied then "
		    "may be missing or be applied again",
		    (long long)gen, QUEUE_GEN_NAME, (long long)side_gen,
		    (long long)(side_gen - gen));
		log_msg(LOG_CRIT, "queue %s: %s", q->path, q->lost);
	}
	q->gen_fd = open(q->gen_path, O_RDWR | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW | O_NOCTTY, 0600);
	if (q->gen_fd == -1) {
		perr_set(err, PSYNC_E_OPEN, "queue %s: cannot open: %s",
		    q->gen_path, strerror(errno));
		return -1;
	}
	gen_write(q, gen, true);
	/* Kept in the database until an administrator acknowledges it. */
	if (q->lost[0] != '\0') {
		if (queue_state_set(q, QUEUE_STATE_LOST_WRITES, q->lost,
		    strlen(q->lost), err) == -1)
			log_warnx("queue %s: %s", q->path, err->msg);
	} else if (queue_state_get(q, QUEUE_STATE_LOST_WRITES, q->lost,
	    sizeof(q->lost) - 1, &len, err) == 1) {
		q->lost[len] = '\0';
	} else {
		q->lost[0] = '\0';
	}
	if (side != 1) {
		/* A new file: its name must be durable too. */
		str_copy(dir, q->gen_path, sizeof(dir));
		if ((slash = strrchr(dir, '/')) != NULL)
			*slash = '\0';
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd == -1 || fsync(dfd) == -1)
			log_warn("queue %s: cannot sync the directory", dir);
		if (dfd != -1)
			close(dfd);
	}
	return 0;
}

const char *
queue_lost_writes(const struct queue *q)
{
	return q->lost[0] != '\0' ? q->lost : NULL;
}

int
queue_lost_writes_clear(struct queue *q, struct psync_err *err)
{
	if (queue_state_del(q, QUEUE_STATE_LOST_WRITES, err) == -1)
		return -1;
	q->lost[0] = '\0';
	return 0;
}

int
queue_open(struct queue **qp, const char *dir,
    const unsigned char key[SEAL_KEY_LEN], const struct queue_limits *limits,
    struct psync_err *err)
{
	struct queue *q = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
	int64_t side_gen = 0;
	int i, side, rc = -1;

	*qp = NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL) {
		perr_set(err, PSYNC_E_OPEN, "queue %s: out of memory", dir);
		return -1;
	}
	q->gen_fd = -1;
	q->clock = clock_wall;
	limits_fill(&q->limits, limits);
	memcpy(q->key, key, SEAL_KEY_LEN);
	if ((size_t)snprintf(q->path, sizeof(q->path), "%s/%s", dir,
	    QUEUE_DB_NAME) >= sizeof(q->path)) {
		perr_set(err, PSYNC_E_OPEN, "queue %s: path too long", dir);
		goto done;
	}
	if ((size_t)snprintf(q->gen_path, sizeof(q->gen_path), "%s/%s", dir,
	    QUEUE_GEN_NAME) >= sizeof(q->gen_path)) {
		perr_set(err, PSYNC_E_OPEN, "queue %s: path too long", dir);
		goto done;
	}
	if (state_dir_prepare(dir, "queue", err) == -1)
		goto done;
	/* Before the database can be created anew: what it should hold. */
	if ((side = gen_read(q, &side_gen, err)) == -1)
		goto done;
	if (state_db_prepare(q->path, "queue", err) == -1)
		goto done;
#ifdef SQLITE_OPEN_NOFOLLOW
	flags |= SQLITE_OPEN_NOFOLLOW;
#endif
	if (sqlite3_open_v2(q->path, &q->db, flags, NULL) != SQLITE_OK) {
		q_dberr(q, err, "cannot open");
		goto done;
	}
	sqlite3_extended_result_codes(q->db, 1);
	if (sqlite3_busy_timeout(q->db, QUEUE_BUSY_MS) != SQLITE_OK ||
	    sqlite3_db_config(q->db, SQLITE_DBCONFIG_DEFENSIVE, 1,
	    NULL) != SQLITE_OK) {
		q_dberr(q, err, "cannot configure the connection");
		goto done;
	}
	if (q_pragma(q, "PRAGMA journal_mode = WAL", "wal", err) == -1 ||
	    q_pragma(q, "PRAGMA synchronous = FULL", NULL, err) == -1 ||
	    q_pragma(q, "PRAGMA synchronous", "2", err) == -1 ||
	    q_pragma(q, "PRAGMA secure_delete = ON", "1", err) == -1 ||
	    q_pragma(q, "PRAGMA foreign_keys = ON", NULL, err) == -1 ||
	    q_pragma(q, "PRAGMA foreign_keys", "1", err) == -1 ||
	    q_pragma(q, "PRAGMA trusted_schema = OFF", NULL, err) == -1)
		goto done;
	if (q_migrate(q, err) == -1)
		goto done;
	for (i = 0; i < S_COUNT; i++) {
		if (sqlite3_prepare_v3(q->db, stmt_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &q->st[i], NULL) != SQLITE_OK) {
			q_dberr(q, err, "preparing \"%s\"", stmt_sql[i]);
			goto done;
		}
	}
	if (q_key_check(q, err) == -1 ||
	    gen_check(q, side, side_gen, err) == -1)
		goto done;
	*qp = q;
	rc = 0;
done:
	if (rc == -1)
		queue_close(q);
	return rc;
}

void
queue_close(struct queue *q)
{
	int i;

	if (q == NULL)
		return;
	if (q->gen_fd != -1) {
		if (fsync(q->gen_fd) == -1)
			log_warn("queue %s: fsync", q->gen_path);
		close(q->gen_fd);
	}
	for (i = 0; i < S_COUNT; i++)
		sqlite3_finalize(q->st[i]);
	if (q->db != NULL && sqlite3_close(q->db) != SQLITE_OK)
		log_warnx("queue %s: close: %s", q->path, sqlite3_errmsg(q->db));
	secure_wipe(q->key, sizeof(q->key));
	free(q);
}

void
queue_set_clock(struct queue *q, queue_clock_fn fn, void *ctx)
{
	q->clock = fn != NULL ? fn : clock_wall;
	q->clock_ctx = fn != NULL ? ctx : NULL;
}

int
queue_check(struct queue *q, struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, S_INTEGRITY);
	const unsigned char *s;
	int rc = -1;

	if (sqlite3_step(st) != SQLITE_ROW) {
		q_dberr(q, err, "integrity check");
		goto done;
	}
	s = sqlite3_column_text(st, 0);
	if (s == NULL || strcmp((const char *)s, "ok") != 0) {
		perr_set(err, PSYNC_E_OPEN, "queue %s: integrity check failed: "
		    "%s", q->path, s != NULL ? (const char *)s : "no answer");
		goto done;
	}
	rc = 0;
done:
	sqlite3_reset(st);
	return rc;
}

/* Names must fit a frame; the database holds nothing a frame cannot. */
static int
name_ok(const char *s, size_t max)
{
	size_t n;

	if (s == NULL)
		return 0;
	n = strnlen(s, max + 1);
	return n > 0 && n <= max;
}

/* Newest (time, id) of one table for user; 1 found, 0 none, -1 error. */
static int
newest_in(struct queue *q, enum stmt s, const char *user, uint64_t *t,
    uint8_t id[FRAME_ID_LEN], struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, s);
	int r, rc = -1;

	if (bind_text(st, 1, user) != SQLITE_OK) {
		q_dberr(q, err, "newest change for user %s", user);
		goto done;
	}
	r = sqlite3_step(st);
	if (r == SQLITE_DONE) {
		rc = 0;
		goto done;
	}
	if (r != SQLITE_ROW || col_id(st, 1, id) == -1) {
		q_dberr(q, err, "newest change for user %s", user);
		goto done;
	}
	*t = col_u64(st, 0);
	rc = 1;
done:
	sqlite3_reset(st);
	return rc;
}

int
queue_user_newest(struct queue *q, const char *user, uint64_t *time_ms,
    uint8_t id[FRAME_ID_LEN], struct psync_err *err)
{
	uint64_t ta = 0, tb = 0;
	uint8_t ida[FRAME_ID_LEN], idb[FRAME_ID_LEN];
	int a, b;

	if ((a = newest_in(q, S_NEWEST_CHANGE, user, &ta, ida, err)) == -1 ||
	    (b = newest_in(q, S_NEWEST_APPLIED, user, &tb, idb, err)) == -1)
		return -1;
	if (a == 0 && b == 0)
		return 0;
	if (b == 0 || (a == 1 && queue_change_cmp(ta, ida, tb, idb) >= 0)) {
		*time_ms = ta;
		memcpy(id, ida, FRAME_ID_LEN);
	} else {
		*time_ms = tb;
		memcpy(id, idb, FRAME_ID_LEN);
	}
	return 1;
}

/* Seq of change id: 1 found, 0 not, -1 error. */
static int
change_seq(struct queue *q, const uint8_t id[FRAME_ID_LEN], sqlite3_int64 *seq,
    struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, S_CHANGE_SEQ);
	char hex[QUEUE_ID_HEX_LEN + 1];
	int r, rc = -1;

	r = bind_id(st, 1, id) == SQLITE_OK ? sqlite3_step(st) : SQLITE_ERROR;
	if (r == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		rc = 1;
	} else if (r == SQLITE_DONE) {
		rc = 0;
	} else {
		queue_id_hex(id, hex);
		q_dberr(q, err, "looking up change %s", hex);
	}
	sqlite3_reset(st);
	return rc;
}

int
queue_known(struct queue *q, const uint8_t id[FRAME_ID_LEN],
    struct psync_err *err)
{
	sqlite3_int64 seq;

	return change_seq(q, id, &seq, err);
}

/* Older pending deliveries of user to peer step aside for change c. */
static int
supersede(struct queue *q, const struct change *c, const char *peer,
    uint64_t now, const char *why, struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, S_SUPERSEDE);

	if (bind_i64(st, 1, now) != SQLITE_OK ||
	    bind_text(st, 2, c->user) != SQLITE_OK ||
	    bind_text(st, 3, peer) != SQLITE_OK ||
	    bind_i64(st, 4, c->time_ms) != SQLITE_OK ||
	    bind_id(st, 5, c->id) != SQLITE_OK ||
	    bind_text(st, 6, why) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "superseding older changes for user %s to "
		    "peer %s", c->user, peer);
		return -1;
	}
	return 0;
}

static int
add_validate(const struct change *c, const char *source,
    const char *const *peers, size_t npeers, struct psync_err *err)
{
	struct psync_err why;
	size_t i;

	if (change_check(c, &why) != PSYNC_OK) {
		perr_set(err, why.code, "queue: %s", why.msg);
		return -1;
	}
	if (!name_ok(source, FRAME_NAME_MAX)) {
		perr_set(err, PSYNC_E_BAD_USER, "queue: change for user %s "
		    "refused: source is empty or too long", c->user);
		return -1;
	}
	/* SQLite integers are signed: a later time would sort as the oldest. */
	if (c->time_ms > (uint64_t)INT64_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "queue: change for user %s "
		    "refused: time %llu out of range", c->user,
		    (unsigned long long)c->time_ms);
		return -1;
	}
	for (i = 0; i < npeers; i++) {
		if (!name_ok(peers[i], FRAME_NAME_MAX)) {
			perr_set(err, PSYNC_E_BAD_USER, "queue: change for user "
			    "%s refused: peer name %zu is empty or too long",
			    c->user, i);
			return -1;
		}
	}
	return 0;
}

int
queue_add(struct queue *q, const struct change *c, const char *source,
    const char *const *peers, size_t npeers, struct psync_err *err)
{
	unsigned char sealed[FRAME_SECRET_MAX + SEAL_OVERHEAD];
	char aad[QUEUE_AAD_LEN], hex[QUEUE_ID_HEX_LEN + 1];
	char why[64 + QUEUE_ID_HEX_LEN];
	uint8_t newest_id[FRAME_ID_LEN];
	uint64_t newest_t = 0, now;
	sqlite3_int64 seq;
	sqlite3_stmt *st;
	size_t i;
	long slen;
	int known = 0, stale = 0, rc = -1;

	if (source == NULL)
		source = QUEUE_SOURCE_LOCAL;
	if (add_validate(c, source, peers, npeers, err) == -1)
		return -1;
	queue_id_hex(c->id, hex);
	change_aad(c->id, aad);
	slen = seal(q->key, aad, c->secret, c->secret_len, sealed, err);
	if (slen < 0)
		return -1;
	now = q_now(q);
	if (q_begin(q, "adding a change", err) == -1)
		return -1;
	if ((known = change_seq(q, c->id, &seq, err)) == -1)
		goto done;
	if (known == 1) {
		log_debug("queue: change %s for user %s is already known",
		    hex, c->user);
		rc = 0;
		goto done;
	}
	switch (queue_user_newest(q, c->user, &newest_t, newest_id, err)) {
	case -1:
		goto done;
	case 1:
		stale = queue_change_cmp(c->time_ms, c->id, newest_t,
		    newest_id) < 0;
		break;
	default:
		break;
	}

	st = q_stmt(q, S_CHANGE_INSERT);
	if (bind_id(st, 1, c->id) != SQLITE_OK ||
	    bind_text(st, 2, c->origin) != SQLITE_OK ||
	    bind_i64(st, 3, c->time_ms) != SQLITE_OK ||
	    bind_text(st, 4, c->user) != SQLITE_OK ||
	    sqlite3_bind_int(st, 5, c->secret_kind) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 6, sealed, (int)slen, SQLITE_STATIC) !=
	    SQLITE_OK ||
	    bind_text(st, 7, source) != SQLITE_OK ||
	    bind_i64(st, 8, now) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "adding change %s for user %s", hex, c->user);
		goto done;
	}
	seq = sqlite3_last_insert_rowid(q->db);

	snprintf(why, sizeof(why), "superseded by change %s", hex);
	for (i = 0; i < npeers; i++) {
		/* Loop-free: never back to where the change came from. */
		if (strcmp(peers[i], c->origin) == 0 ||
		    strcmp(peers[i], source) == 0)
			continue;
		st = q_stmt(q, S_DELIVERY_INSERT);
		if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK ||
		    bind_text(st, 2, peers[i]) != SQLITE_OK ||
		    bind_text(st, 3, c->user) != SQLITE_OK ||
		    bind_i64(st, 4, c->time_ms) != SQLITE_OK ||
		    bind_id(st, 5, c->id) != SQLITE_OK ||
		    sqlite3_bind_int(st, 6, stale ? QUEUE_SUPERSEDED :
		    QUEUE_PENDING) != SQLITE_OK ||
		    bind_i64(st, 7, now) != SQLITE_OK ||
		    bind_text(st, 8, stale ? "a newer change for this user was "
		    "already queued or applied" : "") != SQLITE_OK ||
		    q_exec(st) == -1) {
			q_dberr(q, err, "queueing change %s for user %s to peer "
			    "%s", hex, c->user, peers[i]);
			goto done;
		}
		if (!stale && supersede(q, c, peers[i], now, why, err) == -1)
			goto done;
	}
	/* The source and origin hold this newer password already. */
	if (!stale && ((strcmp(source, QUEUE_SOURCE_LOCAL) != 0 &&
	    supersede(q, c, source, now, why, err) == -1) ||
	    supersede(q, c, c->origin, now, why, err) == -1))
		goto done;
	st = q_stmt(q, S_FORGET_USER);
	if (bind_text(st, 1, c->user) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "forgetting delivered secrets of user %s",
		    c->user);
		goto done;
	}
	if (q_commit(q, "adding a change", err) == -1)
		goto done;
	if (stale)
		log_info("queue: change %s for user %s is older than one "
		    "already queued or applied: superseded", hex, c->user);
	rc = 1;
done:
	if (rc == -1 || known == 1)
		q_rollback(q);
	secure_wipe(sealed, sizeof(sealed));
	return rc;
}

/* Give up one delivery (for a reason that is no peer's answer). */
static int
give_up(struct queue *q, sqlite3_int64 seq, const char *peer, uint64_t now,
    const char *why, struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, S_GIVE_UP);

	if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK ||
	    bind_text(st, 2, peer) != SQLITE_OK ||
	    bind_i64(st, 3, now) != SQLITE_OK ||
	    bind_text(st, 4, why) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "giving up a delivery to peer %s", peer);
		return -1;
	}
	st = q_stmt(q, S_FORGET_ONE);
	if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "forgetting a secret nobody needs");
		return -1;
	}
	return 0;
}

/* Fill one item from a due row; -1 when the row is damaged. */
static int
due_row(struct queue *q, sqlite3_stmt *st, struct queue_item *it,
    struct psync_err *err)
{
	char aad[QUEUE_AAD_LEN];
	const void *blob;
	int len, kind;
	long n;

	memset(it, 0, sizeof(*it));
	kind = sqlite3_column_int(st, 4);
	if (col_id(st, 0, it->change.id) == -1 ||
	    col_text(st, 1, it->change.origin, sizeof(it->change.origin)) == -1 ||
	    col_text(st, 3, it->change.user, sizeof(it->change.user)) == -1 ||
	    col_text(st, 6, it->source, sizeof(it->source)) == -1 ||
	    col_text(st, 7, it->peer, sizeof(it->peer)) == -1 ||
	    (kind != FRAME_SECRET_CLEARTEXT && kind != FRAME_SECRET_CRYPT)) {
		perr_set(err, PSYNC_E_DECRYPT, "a field is damaged");
		return -1;
	}
	it->change.time_ms = col_u64(st, 2);
	it->change.secret_kind = (uint8_t)kind;
	it->attempts = (unsigned int)sqlite3_column_int(st, 8);
	it->created_ms = col_u64(st, 9);
	blob = sqlite3_column_blob(st, 5);
	len = sqlite3_column_bytes(st, 5);
	if (blob == NULL || len < SEAL_OVERHEAD ||
	    (size_t)len - SEAL_OVERHEAD > FRAME_SECRET_MAX) {
		perr_set(err, PSYNC_E_DECRYPT, "the sealed secret is missing or "
		    "has a wrong size");
		return -1;
	}
	change_aad(it->change.id, aad);
	n = unseal(q->key, aad, blob, (size_t)len, it->change.secret, err);
	if (n < 0)
		return -1;
	it->change.secret_len = (uint16_t)n;
	it->change.secret[n] = '\0';
	return 0;
}

long
queue_due(struct queue *q, const char *peer, struct queue_item *items,
    size_t cap, struct psync_err *err)
{
	struct bad { sqlite3_int64 seq; char peer[FRAME_NAME_MAX + 1];
	    char why[PSYNC_ERR_LEN]; } *bad = NULL;
	char hex[QUEUE_ID_HEX_LEN + 1];
	struct psync_err rowerr;
	sqlite3_stmt *st;
	size_t n = 0, nbad = 0, i;
	uint64_t now = q_now(q);
	int r;
	long rc = -1;

	if (cap == 0)
		return 0;
	if (cap > INT_MAX)
		cap = INT_MAX;
	st = q_stmt(q, peer != NULL ? S_DUE_PEER : S_DUE_ALL);
	if (bind_i64(st, 1, now) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, (int)cap) != SQLITE_OK ||
	    (peer != NULL && bind_text(st, 3, peer) != SQLITE_OK)) {
		q_dberr(q, err, "listing due deliveries");
		goto done;
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (due_row(q, st, &items[n], &rowerr) == 0) {
			n++;
			continue;
		}
		/* One damaged row must not block the rest of the queue. */
		if (bad == NULL && (bad = calloc(cap, sizeof(*bad))) == NULL) {
			perr_set(err, PSYNC_E_WRITE, "queue: out of memory");
			goto done;
		}
		bad[nbad].seq = sqlite3_column_int64(st, 10);
		if (col_text(st, 7, bad[nbad].peer, sizeof(bad[nbad].peer)) ==
		    -1) {
			perr_set(err, PSYNC_E_WRITE, "queue %s: a delivery row "
			    "has no usable peer name", q->path);
			goto done;
		}
		str_copy(bad[nbad].why, rowerr.msg, sizeof(bad[nbad].why));
		queue_id_hex(items[n].change.id, hex);
		log_warnx("queue %s: change %s for user %s to peer %s: %s; "
		    "giving it up", q->path, hex, items[n].change.user,
		    bad[nbad].peer, rowerr.msg);
		secure_wipe(&items[n], sizeof(items[n]));
		nbad++;
	}
	if (r != SQLITE_DONE) {
		q_dberr(q, err, "listing due deliveries");
		goto done;
	}
	sqlite3_reset(st);
	if (nbad > 0) {
		if (q_begin(q, "giving up damaged deliveries", err) == -1)
			goto done;
		for (i = 0; i < nbad; i++)
			if (give_up(q, bad[i].seq, bad[i].peer, now, bad[i].why,
			    err) == -1) {
				q_rollback(q);
				goto done;
			}
		if (q_commit(q, "giving up damaged deliveries", err) == -1) {
			q_rollback(q);
			goto done;
		}
	}
	rc = (long)n;
done:
	sqlite3_reset(st);
	if (rc == -1)
		secure_wipe(items, n * sizeof(*items));
	free(bad);
	return rc;
}

static int
peer_update(struct queue *q, const char *peer, bool reachable, uint64_t ok_ms,
    uint64_t err_ms, const char *text, struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, S_PEER_UPSERT);

	if (bind_text(st, 1, peer) != SQLITE_OK ||
	    sqlite3_bind_int(st, 2, reachable) != SQLITE_OK ||
	    bind_i64(st, 3, ok_ms) != SQLITE_OK ||
	    bind_i64(st, 4, err_ms) != SQLITE_OK ||
	    bind_text(st, 5, text != NULL ? text : "") != SQLITE_OK ||
	    q_exec(st) == -1) {
		q_dberr(q, err, "updating the state of peer %s", peer);
		return -1;
	}
	return 0;
}

int
queue_peer_report(struct queue *q, const char *peer, bool reachable,
    const char *error, struct psync_err *err)
{
	char text[QUEUE_ERROR_MAX + 1];
	uint64_t now = q_now(q);
	bool failed = error != NULL && error[0] != '\0';

	if (!name_ok(peer, FRAME_NAME_MAX)) {
		perr_set(err, PSYNC_E_BAD_USER, "queue: peer name is empty or "
		    "too long");
		return -1;
	}
	if (failed) {
		str_copy(text, error, sizeof(text));
		utf8_trim(text);
	}
	if (q_begin(q, "recording a peer's state", err) == -1)
		return -1;
	if (peer_update(q, peer, reachable, 0, failed ? now : 0,
	    failed ? text : NULL, err) == -1 ||
	    q_commit(q, "recording a peer's state", err) == -1) {
		q_rollback(q);
		return -1;
	}
	return 0;
}

int
queue_record(struct queue *q, const uint8_t id[FRAME_ID_LEN], const char *peer,
    int code, const char *reason, struct psync_err *err)
{
	return queue_record_peer(q, id, peer, QUEUE_PEER_PSYNC, code, reason,
	    err);
}

int
queue_record_peer(struct queue *q, const uint8_t id[FRAME_ID_LEN],
    const char *peer, enum queue_peer_kind kind, int code, const char *reason,
    struct psync_err *err)
{
	char hex[QUEUE_ID_HEX_LEN + 1], text[QUEUE_ERROR_MAX + 1] = "";
	enum queue_verdict verdict;
	uint64_t now = q_now(q), next;
	sqlite3_int64 seq = 0;
	sqlite3_stmt *st;
	unsigned int attempts = 0;
	int r, state = QUEUE_PENDING, rc = -1;

	queue_id_hex(id, hex);
	if (!name_ok(peer, FRAME_NAME_MAX)) {
		perr_set(err, PSYNC_E_BAD_USER, "queue: change %s: peer name is "
		    "empty or too long", hex);
		return -1;
	}
	if (code == QUEUE_CODE_UNREACHABLE)
		snprintf(text, sizeof(text), "unreachable%s%s",
		    reason != NULL ? ": " : "", reason != NULL ? reason : "");
	else if (code != PSYNC_OK)
		snprintf(text, sizeof(text), "code %d (%s)%s%s", code,
		    code_reason(code), reason != NULL ? ": " : "",
		    reason != NULL ? reason : "");
	utf8_trim(text);
	if (q_begin(q, "recording a delivery result", err) == -1)
		return -1;
	st = q_stmt(q, S_DELIVERY_GET);
	if (bind_id(st, 1, id) != SQLITE_OK ||
	    bind_text(st, 2, peer) != SQLITE_OK) {
		q_dberr(q, err, "looking up change %s to peer %s", hex, peer);
		goto done;
	}
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		seq = sqlite3_column_int64(st, 0);
		state = sqlite3_column_int(st, 1);
		attempts = (unsigned int)sqlite3_column_int(st, 2);
	}
	sqlite3_reset(st);
	if (r == SQLITE_DONE) {
		perr_set(err, PSYNC_E_NOT_UPDATED, "queue: no delivery of change "
		    "%s to peer %s (purged, or never queued)", hex, peer);
		goto done;
	}
	if (r != SQLITE_ROW) {
		q_dberr(q, err, "looking up change %s to peer %s", hex, peer);
		goto done;
	}
	/* A late answer for a delivery already settled changes nothing. */
	if (state == QUEUE_PENDING) {
		verdict = code == PSYNC_OK ? QUEUE_VERDICT_DONE :
		    queue_classify_peer(kind, code, attempts + 1);
		next = now;
		if (verdict == QUEUE_VERDICT_DONE) {
			state = QUEUE_DONE;
		} else {
			attempts++;
			if (verdict == QUEUE_VERDICT_RETRY)
				next = now + queue_backoff_ms(&q->limits,
				    attempts);
			else
				state = QUEUE_GIVEN_UP;
		}
		st = q_stmt(q, S_DELIVERY_SET);
		if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK ||
		    bind_text(st, 2, peer) != SQLITE_OK ||
		    sqlite3_bind_int(st, 3, state) != SQLITE_OK ||
		    sqlite3_bind_int(st, 4, (int)attempts) != SQLITE_OK ||
		    bind_i64(st, 5, next) != SQLITE_OK ||
		    bind_i64(st, 6, now) != SQLITE_OK ||
		    sqlite3_bind_int(st, 7, code) != SQLITE_OK ||
		    bind_text(st, 8, text) != SQLITE_OK || q_exec(st) == -1) {
			q_dberr(q, err, "recording the result of change %s to "
			    "peer %s", hex, peer);
			goto done;
		}
		st = q_stmt(q, S_FORGET_ONE);
		if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK ||
		    q_exec(st) == -1) {
			q_dberr(q, err, "forgetting the secret of change %s", hex);
			goto done;
		}
	}
	if (peer_update(q, peer, code != QUEUE_CODE_UNREACHABLE,
	    code == PSYNC_OK ? now : 0, code == PSYNC_OK ? 0 : now, text,
	    err) == -1)
		goto done;
	if (q_commit(q, "recording a delivery result", err) == -1)
		goto done;
	rc = state;
done:
	if (rc == -1)
		q_rollback(q);
	return rc;
}

/* Fill e from a row of ENTRY_COLS; -1 when it is damaged. */
static int
read_entry(sqlite3_stmt *st, struct queue_entry *e, sqlite3_int64 *seq)
{
	memset(e, 0, sizeof(*e));
	if (col_id(st, 0, e->id) == -1 ||
	    col_text(st, 1, e->user, sizeof(e->user)) == -1 ||
	    col_text(st, 2, e->origin, sizeof(e->origin)) == -1 ||
	    col_text(st, 3, e->source, sizeof(e->source)) == -1 ||
	    col_text(st, 4, e->peer, sizeof(e->peer)) == -1)
		return -1;
	switch (sqlite3_column_int(st, 5)) {
	case QUEUE_PENDING:
		e->state = QUEUE_PENDING;
		break;
	case QUEUE_DONE:
		e->state = QUEUE_DONE;
		break;
	case QUEUE_GIVEN_UP:
		e->state = QUEUE_GIVEN_UP;
		break;
	case QUEUE_SUPERSEDED:
		e->state = QUEUE_SUPERSEDED;
		break;
	default:	/* the schema's CHECK forbids any other */
		return -1;
	}
	e->attempts = (unsigned int)sqlite3_column_int(st, 6);
	e->time_ms = col_u64(st, 7);
	e->created_ms = col_u64(st, 8);
	e->next_try_ms = col_u64(st, 9);
	e->updated_ms = col_u64(st, 10);
	e->last_code = sqlite3_column_int(st, 11);
	/* Error texts are cut to size when stored; cut again if need be. */
	str_copy(e->last_error, sqlite3_column_text(st, 12) != NULL ?
	    (const char *)sqlite3_column_text(st, 12) : "",
	    sizeof(e->last_error));
	if (seq != NULL)
		*seq = sqlite3_column_int64(st, 13);
	return 0;
}

long
queue_expire(struct queue *q, queue_entry_fn fn, void *ctx,
    struct psync_err *err)
{
	struct queue_entry *batch = NULL;
	sqlite3_int64 seqs[QUEUE_EXPIRE_BATCH];
	char why[QUEUE_ERROR_MAX + 1];
	uint64_t now = q_now(q), age = (uint64_t)q->limits.max_age * 1000;
	uint64_t cutoff = now > age ? now - age : 0;
	sqlite3_stmt *st;
	size_t n, i;
	long total = 0, rc = -1;
	int r;

	if ((batch = calloc(QUEUE_EXPIRE_BATCH, sizeof(*batch))) == NULL) {
		perr_set(err, PSYNC_E_WRITE, "queue %s: expiring: out of memory",
		    q->path);
		return -1;
	}
	snprintf(why, sizeof(why), "expired: still pending after %u s",
	    q->limits.max_age);
	/* Batches keep each transaction short while the daemon runs. */
	do {
		if (q_begin(q, "expiring old deliveries", err) == -1)
			goto done;
		st = q_stmt(q, S_EXPIRE_SELECT);
		if (bind_i64(st, 1, cutoff) != SQLITE_OK ||
		    sqlite3_bind_int(st, 2, QUEUE_EXPIRE_BATCH) != SQLITE_OK) {
			q_dberr(q, err, "expiring old deliveries");
			goto done;
		}
		n = 0;
		while ((r = sqlite3_step(st)) == SQLITE_ROW) {
			if (read_entry(st, &batch[n], &seqs[n]) == -1) {
				perr_set(err, PSYNC_E_WRITE, "queue %s: "
				    "expiring: a delivery row is damaged",
				    q->path);
				goto done;
			}
			n++;
		}
		if (r != SQLITE_DONE) {
			q_dberr(q, err, "expiring old deliveries");
			goto done;
		}
		sqlite3_reset(st);
		for (i = 0; i < n; i++) {
			if (give_up(q, seqs[i], batch[i].peer, now, why,
			    err) == -1)
				goto done;
			batch[i].state = QUEUE_GIVEN_UP;
			batch[i].updated_ms = now;
			str_copy(batch[i].last_error, why,
			    sizeof(batch[i].last_error));
		}
		if (q_commit(q, "expiring old deliveries", err) == -1)
			goto done;
		for (i = 0; fn != NULL && i < n; i++)
			fn(ctx, &batch[i]);
		total += (long)n;
	} while (n == QUEUE_EXPIRE_BATCH);
	rc = total;
done:
	if (rc == -1)
		q_rollback(q);
	free(batch);
	return rc;
}

int
queue_applied_add(struct queue *q, const uint8_t id[FRAME_ID_LEN],
    const char *user, uint64_t time_ms, const char *origin,
    struct psync_err *err)
{
	char hex[QUEUE_ID_HEX_LEN + 1];
	sqlite3_stmt *st;
	int rc = -1;

	queue_id_hex(id, hex);
	if (!name_ok(user, FRAME_USER_MAX) || !name_ok(origin, FRAME_NAME_MAX) ||
	    time_ms > (uint64_t)INT64_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "queue: applied change %s: user, "
		    "origin or time out of range", hex);
		return -1;
	}
	if (q_begin(q, "recording an applied change", err) == -1)
		return -1;
	st = q_stmt(q, S_APPLIED_INSERT);
	if (bind_id(st, 1, id) != SQLITE_OK || bind_text(st, 2, user) !=
	    SQLITE_OK || bind_i64(st, 3, time_ms) != SQLITE_OK ||
	    bind_text(st, 4, origin) != SQLITE_OK ||
	    bind_i64(st, 5, q_now(q)) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "recording change %s for user %s as applied",
		    hex, user);
		goto done;
	}
	rc = sqlite3_changes(q->db) > 0 ? 1 : 0;
	if (q_commit(q, "recording an applied change", err) == -1)
		rc = -1;
done:
	if (rc == -1)
		q_rollback(q);
	return rc;
}

int
queue_applied_has(struct queue *q, const uint8_t id[FRAME_ID_LEN],
    struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, S_APPLIED_HAS);
	char hex[QUEUE_ID_HEX_LEN + 1];
	int r, rc = -1;

	r = bind_id(st, 1, id) == SQLITE_OK ? sqlite3_step(st) : SQLITE_ERROR;
	if (r == SQLITE_ROW)
		rc = 1;
	else if (r == SQLITE_DONE)
		rc = 0;
	else {
		queue_id_hex(id, hex);
		q_dberr(q, err, "was change %s applied?", hex);
	}
	sqlite3_reset(st);
	return rc;
}

int
queue_user_recent(struct queue *q, const char *user, unsigned int seconds,
    struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, S_USER_RECENT);
	uint64_t now = q_now(q), span = (uint64_t)seconds * 1000;
	int r, rc = -1;

	r = bind_text(st, 1, user) == SQLITE_OK &&
	    sqlite3_bind_int64(st, 2, (sqlite3_int64)(now > span ?
	    now - span : 0)) == SQLITE_OK ? sqlite3_step(st) : SQLITE_ERROR;
	if (r == SQLITE_ROW)
		rc = sqlite3_column_int(st, 0) != 0;
	else
		q_dberr(q, err, "did a change for %s pass here lately?", user);
	sqlite3_reset(st);
	return rc;
}

int
queue_peer_status(struct queue *q, const char *peer,
    struct queue_peer_status *s, struct psync_err *err)
{
	sqlite3_stmt *st = q_stmt(q, S_PEER_GET);
	uint64_t now = q_now(q), oldest;
	int r, rc = -1;

	memset(s, 0, sizeof(*s));
	r = bind_text(st, 1, peer) == SQLITE_OK ? sqlite3_step(st) :
	    SQLITE_ERROR;
	if (r == SQLITE_ROW) {
		s->known = true;
		s->reachable = sqlite3_column_int(st, 0) != 0;
		s->last_success_ms = col_u64(st, 1);
		s->last_error_ms = col_u64(st, 2);
		str_copy(s->last_error, sqlite3_column_text(st, 3) != NULL ?
		    (const char *)sqlite3_column_text(st, 3) : "",
		    sizeof(s->last_error));
	} else if (r != SQLITE_DONE) {
		q_dberr(q, err, "reading the state of peer %s", peer);
		goto done;
	}
	sqlite3_reset(st);
	st = q_stmt(q, S_PEER_PENDING);
	if (bind_text(st, 1, peer) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		q_dberr(q, err, "counting what waits for peer %s", peer);
		goto done;
	}
	s->depth = (unsigned long)sqlite3_column_int64(st, 0);
	if (s->depth > 0) {
		oldest = col_u64(st, 1);
		s->oldest_age_ms = now > oldest ? now - oldest : 0;
	}
	rc = 0;
done:
	sqlite3_reset(st);
	return rc;
}

long
queue_list(struct queue *q, const char *peer, bool pending_only,
    queue_entry_fn fn, void *ctx, struct psync_err *err)
{
	struct queue_entry e;
	sqlite3_stmt *st = q_stmt(q, peer != NULL ? S_LIST_PEER : S_LIST_ALL);
	long n = 0, rc = -1;
	int r;

	if (sqlite3_bind_int(st, 1, pending_only) != SQLITE_OK ||
	    (peer != NULL && bind_text(st, 2, peer) != SQLITE_OK)) {
		q_dberr(q, err, "listing the queue");
		goto done;
	}
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		if (read_entry(st, &e, NULL) == -1) {
			perr_set(err, PSYNC_E_WRITE, "queue %s: listing: a "
			    "delivery row is damaged", q->path);
			goto done;
		}
		if (fn != NULL)
			fn(ctx, &e);
		n++;
	}
	if (r != SQLITE_DONE) {
		q_dberr(q, err, "listing the queue");
		goto done;
	}
	rc = n;
done:
	sqlite3_reset(st);
	return rc;
}

long
queue_retry_now(struct queue *q, const uint8_t *id, struct psync_err *err)
{
	char hex[QUEUE_ID_HEX_LEN + 1] = "(all)";
	sqlite3_int64 seq = 0;
	sqlite3_stmt *st;
	long rc = -1;
	int known;

	if (id != NULL)
		queue_id_hex(id, hex);
	if (q_begin(q, "retrying now", err) == -1)
		return -1;
	if (id != NULL) {
		if ((known = change_seq(q, id, &seq, err)) == -1)
			goto done;
		if (known == 0) {
			perr_set(err, PSYNC_E_NOT_UPDATED, "queue: no change %s",
			    hex);
			goto done;
		}
	}
	st = q_stmt(q, id != NULL ? S_RETRY_ONE : S_RETRY_ALL);
	if (bind_i64(st, 1, q_now(q)) != SQLITE_OK ||
	    (id != NULL && sqlite3_bind_int64(st, 2, seq) != SQLITE_OK) ||
	    q_exec(st) == -1) {
		q_dberr(q, err, "retrying change %s now", hex);
		goto done;
	}
	rc = sqlite3_changes(q->db);
	if (q_commit(q, "retrying now", err) == -1)
		rc = -1;
done:
	if (rc == -1)
		q_rollback(q);
	return rc;
}

long
queue_drop(struct queue *q, const uint8_t id[FRAME_ID_LEN], const char *peer,
    struct psync_err *err)
{
	char hex[QUEUE_ID_HEX_LEN + 1];
	sqlite3_int64 seq = 0;
	sqlite3_stmt *st;
	long rc = -1;
	int known;

	queue_id_hex(id, hex);
	if (q_begin(q, "dropping a change", err) == -1)
		return -1;
	if ((known = change_seq(q, id, &seq, err)) == -1)
		goto done;
	if (known == 0) {
		perr_set(err, PSYNC_E_NOT_UPDATED, "queue: no change %s", hex);
		goto done;
	}
	st = q_stmt(q, S_DROP);
	if (bind_i64(st, 1, q_now(q)) != SQLITE_OK ||
	    sqlite3_bind_int64(st, 2, seq) != SQLITE_OK ||
	    bind_text(st, 3, peer) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "dropping change %s for peer %s", hex,
		    peer != NULL ? peer : "(all)");
		goto done;
	}
	rc = sqlite3_changes(q->db);
	st = q_stmt(q, S_FORGET_ONE);
	if (sqlite3_bind_int64(st, 1, seq) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "forgetting the secret of change %s", hex);
		rc = -1;
		goto done;
	}
	if (q_commit(q, "dropping a change", err) == -1)
		rc = -1;
done:
	if (rc == -1)
		q_rollback(q);
	return rc;
}

long
queue_purge(struct queue *q, uint64_t before_ms, struct psync_err *err)
{
	static const enum stmt steps[] = {
		S_PURGE_DELIVERIES, S_PURGE_CHANGES, S_PURGE_APPLIED,
	};
	sqlite3_stmt *st;
	long rc = -1, deleted = 0;
	size_t i;

	if (before_ms > (uint64_t)INT64_MAX)
		before_ms = (uint64_t)INT64_MAX;
	if (q_begin(q, "purging", err) == -1)
		return -1;
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		st = q_stmt(q, steps[i]);
		if (bind_i64(st, 1, before_ms) != SQLITE_OK || q_exec(st) == -1) {
			q_dberr(q, err, "purging finished entries (step %zu)",
			    i + 1);
			goto done;
		}
		if (steps[i] == S_PURGE_DELIVERIES)
			deleted = sqlite3_changes(q->db);
	}
	if (q_commit(q, "purging", err) == -1)
		goto done;
	rc = deleted;
done:
	if (rc == -1)
		q_rollback(q);
	return rc;
}

static int
state_key_ok(const char *key, struct psync_err *err)
{
	if (!name_ok(key, QUEUE_KEY_MAX)) {
		perr_set(err, PSYNC_E_WRITE, "queue: node state key is empty or "
		    "longer than %d bytes", QUEUE_KEY_MAX);
		return 0;
	}
	return 1;
}

int
queue_state_set(struct queue *q, const char *key, const void *value,
    size_t len, struct psync_err *err)
{
	sqlite3_stmt *st;

	if (!state_key_ok(key, err))
		return -1;
	if (len > QUEUE_VALUE_MAX) {
		perr_set(err, PSYNC_E_WRITE, "queue: node state %s: %zu bytes is "
		    "more than %d", key, len, QUEUE_VALUE_MAX);
		return -1;
	}
	if (q_begin(q, "setting node state", err) == -1)
		return -1;
	st = q_stmt(q, S_STATE_SET);
	/* A zero-length blob binds as NULL with a NULL pointer: avoid it. */
	if (bind_text(st, 1, key) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 2, len > 0 ? value : "", (int)len,
	    SQLITE_STATIC) != SQLITE_OK ||
	    bind_i64(st, 3, q_now(q)) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "setting node state %s", key);
		q_rollback(q);
		return -1;
	}
	if (q_commit(q, "setting node state", err) == -1) {
		q_rollback(q);
		return -1;
	}
	return 0;
}

int
queue_state_get(struct queue *q, const char *key, void *buf, size_t cap,
    size_t *len, struct psync_err *err)
{
	sqlite3_stmt *st;
	const void *v;
	int r, n, rc = -1;

	if (!state_key_ok(key, err))
		return -1;
	st = q_stmt(q, S_STATE_GET);
	r = bind_text(st, 1, key) == SQLITE_OK ? sqlite3_step(st) : SQLITE_ERROR;
	if (r == SQLITE_DONE) {
		rc = 0;
		goto done;
	}
	if (r != SQLITE_ROW) {
		q_dberr(q, err, "reading node state %s", key);
		goto done;
	}
	v = sqlite3_column_blob(st, 0);
	n = sqlite3_column_bytes(st, 0);
	if (n < 0 || (size_t)n > cap) {
		perr_set(err, PSYNC_E_WRITE, "queue: node state %s: %d bytes do "
		    "not fit in %zu", key, n, cap);
		goto done;
	}
	if (n > 0)
		memcpy(buf, v, (size_t)n);
	*len = (size_t)n;
	rc = 1;
done:
	sqlite3_reset(st);
	return rc;
}

int
queue_state_del(struct queue *q, const char *key, struct psync_err *err)
{
	sqlite3_stmt *st;

	if (!state_key_ok(key, err))
		return -1;
	if (q_begin(q, "deleting node state", err) == -1)
		return -1;
	st = q_stmt(q, S_STATE_DEL);
	if (bind_text(st, 1, key) != SQLITE_OK || q_exec(st) == -1) {
		q_dberr(q, err, "deleting node state %s", key);
		q_rollback(q);
		return -1;
	}
	if (q_commit(q, "deleting node state", err) == -1) {
		q_rollback(q);
		return -1;
	}
	return 0;
}

/* ---- upkeep ---- */

/* One integer from a PRAGMA or query. */
static int
q_int(struct queue *q, const char *sql, int64_t *v, struct psync_err *err)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;

	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW) {
		q_dberr(q, err, "%s", sql);
		goto done;
	}
	*v = sqlite3_column_int64(st, 0);
	rc = 0;
done:
	sqlite3_finalize(st);
	return rc;
}

int
queue_maintain(struct queue *q, struct queue_maint *m, struct psync_err *err)
{
	uint64_t now = q_now(q), keep = (uint64_t)q->limits.retention * 1000;
	int64_t pages, free_pages, page_size;
	long purged;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	purged = queue_purge(q, now > keep ? now - keep : 0, err);
	if (purged == -1)
		goto done;
	m->purged = purged;
	if (q_int(q, "PRAGMA page_count", &pages, err) == -1 ||
	    q_int(q, "PRAGMA freelist_count", &free_pages, err) == -1 ||
	    q_int(q, "PRAGMA page_size", &page_size, err) == -1)
		goto done;
	m->bytes_before = pages * page_size;
	/*
	 * Freed pages are reused by later writes, so the file only needs
	 * shrinking after a large purge: a quarter of it free, and at least
	 * QUEUE_VACUUM_MIN_PAGES. VACUUM rewrites the database (secure_delete
	 * stays on: nothing sealed lingers in the freed pages).
	 */
	if (free_pages >= QUEUE_VACUUM_MIN_PAGES && free_pages * 4 >= pages) {
		if (sqlite3_exec(q->db, "VACUUM", NULL, NULL, NULL) !=
		    SQLITE_OK) {
			q_dberr(q, err, "vacuum");
			goto done;
		}
		m->vacuumed = true;
	}
	if (q->gen_fd != -1 && fsync(q->gen_fd) == -1)
		log_warn("queue %s: fsync", q->gen_path);
	/* Hand the write-ahead log's space back too. */
	if (sqlite3_wal_checkpoint_v2(q->db, NULL, SQLITE_CHECKPOINT_TRUNCATE,
	    NULL, NULL) != SQLITE_OK) {
		q_dberr(q, err, "checkpoint");
		goto done;
	}
	if (q_int(q, "PRAGMA page_count", &pages, err) == -1)
		goto done;
	m->bytes_after = pages * page_size;
	rc = 0;
done:
	return rc;
}
