/*
 * The local store: where a password change finally lands. A batch of
 * changes is applied as one unit: to the shadow file (or passwd, when the
 * host keeps hashes there) with one locked rewrite, or change by change
 * through a PAM service. Every change gets its own result code (lib/core/codes.h)
 * and a short reason; a failure of the whole batch gives every change the
 * same code.
 */
#ifndef PSYNC_STORE_H
#define PSYNC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config_file.h"
#include "change.h"
#include "util.h"

#define STORE_REASON_LEN	256
/* Longest user name and secret a change may carry. */
#define STORE_USER_MAX		256
#define STORE_SECRET_MAX	CHANGE_SECRET_MAX

enum store_secret_kind {
	STORE_SECRET_CLEARTEXT,		/* hashed by the store */
	STORE_SECRET_HASH,		/* a ready crypt hash, stored as it is */
};

enum store_outcome {
	STORE_FAILED,			/* code says why */
	STORE_APPLIED,			/* the store now holds the new secret */
	STORE_UNCHANGED,		/* the store already held it: nothing written */
	STORE_SUPERSEDED,		/* a later change in the batch for the same user won */
};

struct store_change {
	const char		*user;
	enum store_secret_kind	 kind;
	const char		*secret;	/* owned by the caller, who wipes it */
	/*
	 * An echo is plausible (this node sent or applied a change for the
	 * user a short while ago, or an administrator replays a load): verify
	 * a cleartext password against the stored hash first and answer
	 * "unchanged" when it matches. Off: hash it directly and write it,
	 * which halves the work of a real change. A hash is always compared
	 * with the stored one (that costs nothing).
	 */
	bool			 check_unchanged;
};

struct store_result {
	int			 code;		/* PSYNC_OK or PSYNC_E_* */
	enum store_outcome	 outcome;
	char			 reason[STORE_REASON_LEN];
};

/*
 * What a back-end may need besides its configuration: psyncd's queue and
 * host key, where the samba store keeps its notes of changes applied from
 * peers (lib/queue/samba_applied.c), so that the hook does not send them back.
 * NULL or empty where there is no queue (psyncctl apply, the tests).
 */
struct queue;
struct store_env {
	struct queue		*q;
	const unsigned char	*host_key;
	uint64_t		 now_ms;
};

/*
 * A back-end: one file (store_files.c, store_pam.c, store_samba.c) and
 * one row of the table in store.c. apply() gets only the changes that
 * passed the common checks (the others keep a failed result) and fills
 * in each result; it does its own setup and clean-up per batch.
 */
struct store_backend {
	enum store_type	 type;
	const char	*name;
	size_t		(*apply)(const struct store_conf *conf,
			    const struct store_env *env,
			    const struct store_change *changes, size_t n,
			    struct store_result *results);
};

/*
 * Apply n changes; results must have room for n. Returns the number of
 * changes that failed (0: all applied, unchanged or superseded).
 */
size_t	store_apply(const struct store_conf *conf,
	    const struct store_change *changes, size_t n,
	    struct store_result *results);
/* The same, with the environment a back-end may use (env may be NULL). */
size_t	store_apply_env(const struct store_conf *conf,
	    const struct store_env *env, const struct store_change *changes,
	    size_t n, struct store_result *results);

/*
 * Retired fingerprints. Earlier versions kept 4-bit keyed fingerprints of
 * passwords in DIR/fingerprints.db (the queue directory). The store keeps
 * nothing derived from a password any more: store_retire_fingerprints()
 * removes that database and its journal files when it finds them, logging
 * it once; 1 when something was removed, 0 when there was nothing, -1 with
 * err when a file could not be removed. The files store calls it itself
 * at every batch when store_conf.state_dir is set.
 */
#define STORE_FP_DB_NAME	"fingerprints.db"
int	store_retire_fingerprints(const char *dir, struct psync_err *err);

/* "applied", "unchanged", "superseded" or "failed". */
const char *store_outcome_name(enum store_outcome outcome);

/*
 * A batch read from "user:secret" lines (the chpasswd format), shared by
 * the store-apply test driver and psyncctl. The batch owns its strings and
 * wipes them when freed.
 */
struct store_batch {
	struct store_change	*changes;
	size_t			 n;
	size_t			 cap;
};

void	store_batch_init(struct store_batch *batch);
/*
 * Add one change (the strings are copied), with check_unchanged set: the
 * caller clears it where an echo is implausible. -1 with err filled on
 * failure.
 */
int	store_batch_add(struct store_batch *batch, const char *user,
	    enum store_secret_kind kind, const char *secret,
	    struct psync_err *err);
/*
 * Read "user:secret" lines until EOF. Empty lines are skipped. A line
 * without ':' or with an empty name is an error that names the line.
 */
int	store_batch_read(struct store_batch *batch, FILE *in,
	    enum store_secret_kind kind, struct psync_err *err);
void	store_batch_free(struct store_batch *batch);

/*
 * Hashing (lib/store/store_hash.c). The method and cost come from the struct,
 * or from login.defs when the struct says HASH_LOGIN_DEFS.
 */
struct store_hash_params {
	enum hash_method	 method;	/* never HASH_LOGIN_DEFS here */
	unsigned long		 cost;		/* 0: libxcrypt's default */
	unsigned long		 cost_max;	/* SHA rounds: pick in [cost, cost_max] */
};

int	store_hash_params(const struct store_conf *conf,
	    struct store_hash_params *params, struct psync_err *err);
/* Parse a login.defs file; a missing file gives the defaults. */
int	store_login_defs(const char *path, struct store_hash_params *params,
	    struct psync_err *err);
/* Hash one password into out (at least 128 bytes). */
int	store_hash_password(const struct store_hash_params *params,
	    const char *password, char *out, size_t outlen,
	    struct psync_err *err);
/*
 * Hash n passwords on threads threads (0: one per online CPU). out[i]
 * receives a malloc'd hash or stays NULL on failure. Returns the number of
 * failures.
 */
size_t	store_hash_many(const struct store_hash_params *params,
	    const char *const *passwords, char **out, size_t n,
	    unsigned int threads);
/* Does the crypt hash verify this password? Constant time in the hash. */
bool	store_hash_verify(const char *password, const char *hash);
/*
 * Is this a well-formed yescrypt, SHA-512, SHA-256 or bcrypt hash? On
 * refusal err says what is wrong (code PSYNC_E_BAD_PASSWORD).
 */
int	store_hash_check(const char *hash, struct psync_err *err);

/*
 * Hash costs (lib/store/store_cost.c). The defaults sit somewhat above what a
 * Debian host makes (yescrypt cost 5, 5000 SHA rounds, bcrypt 13 at most in
 * login.defs), far below what makes crypt run for minutes.
 */
#define STORE_DEFAULT_MAX_BCRYPT_COST	14
#define STORE_DEFAULT_MAX_ROUNDS	1000000ul
#define STORE_DEFAULT_MAX_YESCRYPT_COST	8	/* 128 MiB */

enum store_cost_kind {
	STORE_COST_MALFORMED,
	STORE_COST_FIXED,	/* DES, MD5, NT: one small cost */
	STORE_COST_LOG2,	/* bcrypt: value is log2 of the rounds */
	STORE_COST_ROUNDS,	/* value is the rounds */
	STORE_COST_MEMORY,	/* yescrypt, scrypt: value is bytes x runs */
};

struct store_hash_cost {
	const char		*method;	/* "bcrypt", ...; static */
	enum store_cost_kind	 kind;
	uint64_t		 value;
	unsigned int		 n_log2;	/* yescrypt and scrypt */
	uint64_t		 r, p, t;
};

/*
 * Read a crypt hash's method and cost parameters without running it
 * (every form libxcrypt knows). -1 with err (code 9) when it is not one.
 */
int	store_hash_cost(const char *hash, struct store_hash_cost *cost,
	    struct psync_err *err);
/*
 * Is this hash's cost within limits (NULL or zero fields: the defaults)?
 * 0 yes; -1 with err (code PSYNC_E_BAD_PASSWORD, 9) naming the method, the
 * cost and the limit. psyncd calls it on a hash from a peer before it
 * accepts it, with store_hash_limits(); store_apply() calls it too.
 */
int	store_hash_cost_check(const char *hash,
	    const struct hash_limits *limits, struct psync_err *err);
/* Limits with the defaults filled in. */
void	store_hash_limits_resolve(const struct hash_limits *in,
	    struct hash_limits *out);
/*
 * The limits the store applies: the configured ones, and for an unset
 * (zero) one the default, raised above what this host makes itself when it
 * makes more (its hash method and cost, from psync.conf or login.defs:
 * yescrypt one cost factor more, SHA-crypt twice the rounds, bcrypt one
 * more). psyncd computes them once per configuration and passes them to
 * store_hash_cost_check(). -1 with err when login.defs cannot be read.
 */
int	store_hash_limits(const struct store_conf *conf,
	    struct hash_limits *out, struct psync_err *err);

#endif
