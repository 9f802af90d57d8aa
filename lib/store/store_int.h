/*
 * Shared between the store's files: the shadow/passwd line parser (the one
 * place that parses those bytes; fuzzed by tests/fuzz/fuzz_shadow_line), the
 * back-ends and the result helpers. Not for other components.
 */
#ifndef PSYNC_STORE_INT_H
#define PSYNC_STORE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "store.h"

/* Where the fields the store touches sit inside one line. */
struct store_line {
	const char	*name;
	size_t		 name_len;
	const char	*hash;		/* field 2 */
	size_t		 hash_len;
	const char	*lastchg;	/* field 3, shadow only */
	size_t		 lastchg_len;
};

/*
 * Parse one line (without its newline). shadow: 9 fields and a numeric or
 * empty last-change field; otherwise passwd: 7 fields. Returns 0 when the
 * line is a well-formed entry, -1 when it is not (comment, NIS "+"/"-"
 * entry, wrong field count, bad number).
 */
int	store_line_parse(const char *line, size_t len, bool shadow,
	    struct store_line *out);
/* The name part of any line: the bytes before the first ':'. */
size_t	store_line_name(const char *line, size_t len);
/* Is this a user name the store accepts in a change? */
bool	store_user_valid(const char *user);

void	store_result_set(struct store_result *r, int code,
	    enum store_outcome outcome, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/* Hashing internals shared with the files back-end (lib/store/store_hash.c). */
struct crypt_data;
typedef void (*store_job_fn)(void *ctx, size_t i, struct crypt_data *cd);
/* Run fn(ctx, i, cd) for i in [0, n) on threads threads (0: all cores). */
int	store_parallel(size_t n, unsigned int threads, store_job_fn fn,
	    void *ctx);
int	store_hash_one(const struct store_hash_params *params,
	    const char *password, struct crypt_data *cd, char *out,
	    size_t outlen, struct psync_err *err);
bool	store_hash_verify_cd(const char *password, const char *hash,
	    struct crypt_data *cd);

/*
 * How often the files store verified a password against a stored hash
 * (for tests and the log; updated atomically).
 */
extern unsigned long store_stat_verified;

/* Serialises the store's batches inside one process (lib/store/store_files.c). */
extern pthread_mutex_t store_process_lock;

size_t	store_files_apply(const struct store_conf *conf,
	    const struct store_change *changes, size_t n,
	    struct store_result *results);
size_t	store_pam_apply(const struct store_conf *conf,
	    const struct store_change *changes, size_t n,
	    struct store_result *results);
/* Run make in dir; its output goes to the log. -1 with err on failure. */
int	store_nis_make(const char *dir, struct psync_err *err);

#endif
