/*
 * psyncd's durable queue and node state, in one SQLite database
 * (DIR/queue.db, WAL, synchronous=FULL, secure_delete). A change is queued
 * once per id with one delivery per target peer; a delivery is pending until
 * the peer acknowledged it (done), it failed for good or expired (given up),
 * or a newer change for the same user and peer replaced it (superseded).
 * Secrets are stored sealed under the host key and forgotten as soon as no
 * delivery needs them. The same database records which inbound changes were
 * applied here (apply-once, last writer wins), what each peer last did, and
 * a small key/value store for node state.
 *
 * Not thread-safe: one struct queue belongs to one thread. Callbacks must not
 * call back into the queue.
 */
#ifndef PSYNC_QUEUE_H
#define PSYNC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "seal.h"
#include "util.h"

#define QUEUE_DB_NAME		"queue.db"
#define QUEUE_GEN_NAME		"queue.gen"	/* generation side file */
#define QUEUE_SOURCE_LOCAL	"local"	/* source of a change made here */
#define QUEUE_ERROR_MAX		256	/* bytes of error text kept a delivery */
#define QUEUE_KEY_MAX		64	/* bytes of a node state key */
#define QUEUE_VALUE_MAX		4096	/* bytes of a node state value */
#define QUEUE_ID_HEX_LEN	(2 * FRAME_ID_LEN)

/* Defaults used for a limit given as 0 (seconds). */
#define QUEUE_DEFAULT_RETRY		30
#define QUEUE_DEFAULT_MAX_RETRY		3600
#define QUEUE_DEFAULT_MAX_AGE		(7 * 24 * 3600)
#define QUEUE_DEFAULT_RETENTION		(30 * 24 * 3600)
/* Free pages (4 KiB) before queue_maintain() considers a VACUUM. */
#define QUEUE_VACUUM_MIN_PAGES		32

/* A "code" for queue_record when the peer could not be reached at all. */
#define QUEUE_CODE_UNREACHABLE	(-1)

enum queue_state {
	QUEUE_PENDING		= 0,
	QUEUE_DONE		= 1,
	QUEUE_GIVEN_UP		= 2,
	QUEUE_SUPERSEDED	= 3,
};

/*
 * What kind of listener a peer is: the published MEPP listener gives some
 * codes another meaning than psync does (doc/mepp-notes.md).
 */
enum queue_peer_kind {
	QUEUE_PEER_PSYNC,	/* psync's own protocol */
	QUEUE_PEER_MEPP,	/* a legacy MEPP listener */
};

/*
 * A MEPP peer's 4 ("password not updated") is what the published listener
 * answers for a user it cannot change (unknown to it, or its PAM stack
 * refuses): retrying for max-age would not help. Given up after this many
 * tries instead.
 */
#define QUEUE_MEPP_NOT_UPDATED_TRIES	12

/* What a result code from a peer means for the delivery. */
enum queue_verdict {
	QUEUE_VERDICT_DONE,	/* success */
	QUEUE_VERDICT_RETRY,	/* may work later: back off and try again */
	QUEUE_VERDICT_GIVE_UP,	/* will never work for this change */
};

struct queue_limits {
	unsigned int	retry_interval;		/* first back-off, seconds */
	unsigned int	max_retry_interval;	/* back-off cap, seconds */
	unsigned int	max_age;		/* pending longer: given up */
	unsigned int	retention;		/* finished records kept, seconds */
};

/* One due delivery, with the change and its secret in clear: wipe it. */
struct queue_item {
	struct change	change;
	char			source[FRAME_NAME_MAX + 1];
	char			peer[FRAME_NAME_MAX + 1];
	unsigned int		attempts;	/* failed tries so far */
	uint64_t		created_ms;	/* when it was queued */
};

/* One delivery as psyncctl shows it; never holds the secret. */
struct queue_entry {
	uint8_t		id[FRAME_ID_LEN];
	char		user[FRAME_USER_MAX + 1];
	char		origin[FRAME_NAME_MAX + 1];
	char		source[FRAME_NAME_MAX + 1];
	char		peer[FRAME_NAME_MAX + 1];
	enum queue_state state;
	unsigned int	attempts;
	uint64_t	time_ms;	/* when the change was made */
	uint64_t	created_ms;	/* when it was queued */
	uint64_t	next_try_ms;
	uint64_t	updated_ms;	/* last state change */
	int		last_code;	/* -1: none yet, or unreachable */
	char		last_error[QUEUE_ERROR_MAX + 1];
};

/* psyncctl status: what a peer last did and how much waits for it. */
struct queue_peer_status {
	bool		known;		/* ever reported on */
	bool		reachable;
	uint64_t	last_success_ms;	/* 0: never */
	uint64_t	last_error_ms;		/* 0: never */
	char		last_error[QUEUE_ERROR_MAX + 1];
	unsigned long	depth;		/* pending deliveries */
	uint64_t	oldest_age_ms;	/* age of the oldest pending one; 0: none */
};

struct queue;
typedef uint64_t (*queue_clock_fn)(void *ctx);
typedef void (*queue_entry_fn)(void *ctx, const struct queue_entry *e);

/*
 * Open (creating when missing) DIR/queue.db. DIR is created 0700 when
 * missing; a directory or database that others can write is refused. A
 * database made under another host key, or by a newer psync, is refused.
 * key is copied. Zero limits take the defaults above.
 */
int	queue_open(struct queue **qp, const char *dir,
	    const unsigned char key[SEAL_KEY_LEN],
	    const struct queue_limits *limits, struct psync_err *err);
void	queue_close(struct queue *q);
/*
 * Lost writes. Every commit counts a generation in the database and then
 * in DIR/queue.gen (mode 0600, made durable at open and close). At open, a
 * database behind its side file lost writes it had committed (a WAL cut
 * short, a restored backup, a deleted database made anew): queue_open()
 * still succeeds (the queue is usable), logs it at LOG_CRIT, and
 * queue_lost_writes() returns the explanation (NULL when nothing was lost)
 * for psyncctl status to show, at this and every later open, until
 * queue_lost_writes_clear().
 */
const char *queue_lost_writes(const struct queue *q);
/* The explanation stays (node state "lost-writes") until cleared here. */
#define QUEUE_STATE_LOST_WRITES	"lost-writes"
int	queue_lost_writes_clear(struct queue *q, struct psync_err *err);
/* Replace the wall clock (milliseconds since the epoch); for tests. */
void	queue_set_clock(struct queue *q, queue_clock_fn fn, void *ctx);
/* PRAGMA integrity_check; 0 when it answers "ok". */
int	queue_check(struct queue *q, struct psync_err *err);

/*
 * Queue change c (from source: a peer name, or NULL for a local change)
 * for each of npeers peers, atomically. Peers equal to the change's origin
 * or source are skipped: a change never goes back where it came from. A
 * delivery is superseded on arrival when a newer change for the user was
 * already queued or applied here; otherwise it supersedes the older
 * pending deliveries for the same user and peer (and for the source and
 * origin, which already hold this newer password).
 * Returns 1 when queued, 0 when the id was already known (nothing done),
 * -1 on error.
 */
int	queue_add(struct queue *q, const struct change *c,
	    const char *source, const char *const *peers, size_t npeers,
	    struct psync_err *err);
/* Is change id known to the queue? 1 yes, 0 no, -1 error. */
int	queue_known(struct queue *q, const uint8_t id[FRAME_ID_LEN],
	    struct psync_err *err);

/*
 * Fill up to cap items with the pending deliveries whose next try has come,
 * oldest first, for one peer or for all (peer NULL). Returns how many, or
 * -1. A delivery whose secret no longer opens is given up (and logged). The
 * caller wipes items (secure_wipe) when done with them.
 */
long	queue_due(struct queue *q, const char *peer, struct queue_item *items,
	    size_t cap, struct psync_err *err);

/*
 * Record the result of delivering change id to peer: code 0 (done), a MEPP
 * result code (classified by queue_classify), or QUEUE_CODE_UNREACHABLE.
 * reason (may be NULL) is kept as the last error text: it must never hold a
 * secret. Also updates the peer's state. Returns the delivery's state
 * afterwards (a result for a delivery no longer pending changes nothing),
 * or -1 (for instance, no such delivery).
 */
int	queue_record(struct queue *q, const uint8_t id[FRAME_ID_LEN],
	    const char *peer, int code, const char *reason,
	    struct psync_err *err);
enum queue_verdict queue_classify(int code);
/*
 * The same for a peer of kind, whose delivery has now failed attempts
 * times (this failure included); queue_classify is QUEUE_PEER_PSYNC.
 */
enum queue_verdict queue_classify_peer(enum queue_peer_kind kind, int code,
	    unsigned int attempts);
/* queue_record for a peer of kind (a MEPP peer's 4 is given up at last). */
int	queue_record_peer(struct queue *q, const uint8_t id[FRAME_ID_LEN],
	    const char *peer, enum queue_peer_kind kind, int code,
	    const char *reason, struct psync_err *err);

/* What psyncd logs for one recorded delivery result. */
struct queue_result_info {
	enum queue_peer_kind	 kind;
	int			 state;	/* what queue_record_peer returned */
	int			 code;	/* the peer's code, or UNREACHABLE */
	const char		*peer;
	const char		*user;	/* may come from the network */
	const char		*id_hex;
	const char		*reason;	/* may be NULL */
};
/*
 * Write the log line for a delivery result to buf (control characters in
 * names and reason escaped, so that nothing from the network forges a
 * line) and return its syslog priority: LOG_INFO for a success or an
 * unreachable peer, LOG_WARNING otherwise. A MEPP peer's 5 is the legacy
 * message 8203 with the peer's name; its 4 says what 4 means there.
 */
int	queue_result_message(const struct queue_result_info *r, char *buf,
	    size_t len);
/* The delay before try attempts + 1, after attempts (>= 1) failures. */
uint64_t queue_backoff_ms(const struct queue_limits *limits,
	    unsigned int attempts);
/* A peer's connection state outside any delivery (NULL error: fine). */
int	queue_peer_report(struct queue *q, const char *peer, bool reachable,
	    const char *error, struct psync_err *err);

/*
 * Give up the pending deliveries queued longer than max_age; fn (may be
 * NULL) sees each one after it was committed. Returns how many, or -1.
 */
long	queue_expire(struct queue *q, queue_entry_fn fn, void *ctx,
	    struct psync_err *err);

/* Inbound: record that change id for user, made at time_ms, was applied
   here. 1 recorded, 0 already recorded, -1 error. */
int	queue_applied_add(struct queue *q, const uint8_t id[FRAME_ID_LEN],
	    const char *user, uint64_t time_ms, const char *origin,
	    struct psync_err *err);
/* Was id applied here? 1 yes, 0 no, -1 error. */
int	queue_applied_has(struct queue *q, const uint8_t id[FRAME_ID_LEN],
	    struct psync_err *err);
/*
 * The newest change applied or queued here for user (by time, then id).
 * 1 with time_ms and id filled, 0 when there is none, -1 error.
 */
int	queue_user_newest(struct queue *q, const char *user,
	    uint64_t *time_ms, uint8_t id[FRAME_ID_LEN], struct psync_err *err);
/* Order of two changes: <0 when a is older than b, 0 same, >0 newer. */
int	queue_change_cmp(uint64_t a_time, const uint8_t a_id[FRAME_ID_LEN],
	    uint64_t b_time, const uint8_t b_id[FRAME_ID_LEN]);

/*
 * Did this node queue (a local or relayed change), deliver, or apply a
 * change for user within the last seconds? 1 yes, 0 no, -1 error. psyncd
 * asks it before applying an inbound change: only then is the change
 * plausibly an echo of one that went out, and worth the store's verify
 * against the stored hash (store_change.check_unchanged).
 */
#define QUEUE_ECHO_WINDOW	600	/* seconds: a suggested window */
int	queue_user_recent(struct queue *q, const char *user,
	    unsigned int seconds, struct psync_err *err);

int	queue_peer_status(struct queue *q, const char *peer,
	    struct queue_peer_status *st, struct psync_err *err);

/* Every delivery (pending_only: just the pending ones), for one peer or all,
   in the order they were queued. Returns how many, or -1. */
long	queue_list(struct queue *q, const char *peer, bool pending_only,
	    queue_entry_fn fn, void *ctx, struct psync_err *err);
/* Make pending deliveries of id (NULL: all) due now. Returns how many. */
long	queue_retry_now(struct queue *q, const uint8_t *id,
	    struct psync_err *err);
/* Give up the pending deliveries of id to peer (NULL: every peer). */
long	queue_drop(struct queue *q, const uint8_t id[FRAME_ID_LEN],
	    const char *peer, struct psync_err *err);
/*
 * Delete finished deliveries (done, given up, superseded) last changed
 * before before_ms, and the changes and apply records nobody needs any
 * more; the newest record for each user is kept for last-writer-wins.
 * Returns the number of deliveries deleted, or -1.
 */
long	queue_purge(struct queue *q, uint64_t before_ms, struct psync_err *err);

/*
 * Upkeep, called by psyncd now and then (say once an hour, and once at
 * start): queue_purge() of what finished more than limits.retention ago
 * (applied ids, finished changes and deliveries; the newest record per
 * user stays), a VACUUM when that left a quarter of the file free, and a
 * checkpoint that truncates the write-ahead log. m says what happened.
 */
struct queue_maint {
	long		purged;		/* deliveries deleted */
	bool		vacuumed;
	int64_t		bytes_before;	/* database pages, before and after */
	int64_t		bytes_after;
};
int	queue_maintain(struct queue *q, struct queue_maint *m,
	    struct psync_err *err);

/* Node state: small values under short keys. get: 1 found (len set),
   0 missing, -1 error (a value larger than cap is an error). */
int	queue_state_set(struct queue *q, const char *key, const void *value,
	    size_t len, struct psync_err *err);
int	queue_state_get(struct queue *q, const char *key, void *buf,
	    size_t cap, size_t *len, struct psync_err *err);
int	queue_state_del(struct queue *q, const char *key,
	    struct psync_err *err);

const char *queue_state_name(int state);	/* "pending", ...; never NULL */
void	queue_id_hex(const uint8_t id[FRAME_ID_LEN],
	    char out[QUEUE_ID_HEX_LEN + 1]);
/* 32 hex digits (either case) to an id; 0 or -1 when s is not one. */
int	queue_id_parse(const char *s, uint8_t id[FRAME_ID_LEN]);

#endif
