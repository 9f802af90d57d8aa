/*
 * The local store: where a password change finally lands. A batch of
 * changes is applied as one unit: to the shadow file (or passwd, when the
 * host keeps hashes there) with one locked rewrite, or change by change
 * through a PAM service. Every change gets its own result code (lib/codes.h)
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
};

struct store_result {
	int			 code;		/* PSYNC_OK or PSYNC_E_* */
	enum store_outcome	 outcome;
	char			 reason[STORE_REASON_LEN];
};

/*
 * What a back-end may need besides its configuration: psyncd's queue and
 * host key, where the samba store keeps its notes of changes applied from
 * peers (lib/samba_applied.c), so that the hook does not send them back.
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
 * Fingerprints (lib/store_fp.c): a shortcut past the verify for passwords
 * the files store has seen. Enable before the first batch with the
 * directory of the database (the queue directory) and the host key;
 * -1 with err when the database cannot be set up, and then every change
 * is verified, as without them.
 */
int	store_fp_enable(const char *dir, const unsigned char host_key[32],
	    struct psync_err *err);
void	store_fp_disable(void);

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
/* Add one change (the strings are copied). -1 with err filled on failure. */
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
 * Hashing (lib/store_hash.c). The method and cost come from the struct,
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

#endif
