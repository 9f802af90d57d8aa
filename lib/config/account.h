/*
 * What the policy needs to know about a local account: uid, groups, and
 * whether the shadow entry is locked, disabled or expired. Read from the
 * store's passwd/shadow/group files (files store) or through NSS.
 */
#ifndef PSYNC_ACCOUNT_H
#define PSYNC_ACCOUNT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config_file.h"
#include "names.h"
#include "util.h"

#define ACCOUNT_MAX_GROUPS	256

struct account {
	char	 name[NAME_MAX_LEN];	/* the name as the store spells it */
	uid_t	 uid;
	gid_t	 gid;
	char	**groups;		/* primary and supplementary group names */
	size_t	 n_groups;
	bool	 has_shadow;		/* a shadow (or passwd hash) entry exists */
	bool	 locked;		/* hash starts with '!' */
	bool	 disabled;		/* hash is '*' or empty of any hash */
	bool	 expired;		/* account expiry date has passed */
};

/*
 * Look NAME up; with case_ignore a unique case-insensitive match is
 * accepted. Returns 0 when found, 1 when there is no such user (err says
 * so, code 12), -1 on an error reading the files (err says which) or an
 * ambiguous name (code 6).
 */
int	account_lookup(const struct store_conf *store, const char *name,
	    bool case_ignore, struct account *acct, struct psync_err *err);
void	account_clear(struct account *acct);

/*
 * Look up many names with one pass over each file (bulk loads of thousands
 * of users into a large passwd). For each i, rc[i] is 0 (found, acct[i]
 * filled), 1 (no such user) or -1 (ambiguous name); the call itself returns
 * -1 with err when a file cannot be read. NSS stores fall back to
 * account_lookup per name.
 */
int	account_lookup_many(const struct store_conf *store,
	    const char *const *names, size_t n, bool case_ignore,
	    struct account *acct, int *rc, struct psync_err *err);
bool	account_in_group(const struct account *acct, const char *group);

/* Classify a shadow hash field; exposed for tests. */
void	account_classify_hash(const char *hash, bool *locked, bool *disabled);

#endif
