/*
 * Judge then apply: the one path from "these changes arrived" to "these
 * are in the store", shared by psyncd (changes from peers) and psyncctl
 * apply (changes from standard input). For each change: the account is
 * looked up (all in one pass), the policy judges it (inbound: this host's
 * rules), and the accepted ones go to the store in one batch. What only
 * psyncd knows (ids already applied, newer changes, relaying) stays in
 * psyncd; what only psyncctl prints stays in psyncctl.
 */
#ifndef PSYNC_JUDGE_H
#define PSYNC_JUDGE_H

#include <stdbool.h>
#include <stddef.h>

#include "config_file.h"
#include "names.h"
#include "policy.h"
#include "store.h"

struct judge_item {
	/* in */
	const char		*user;		/* the local name to look up */
	const struct peer_conf	*peer;		/* the sender, NULL: local */
	enum store_secret_kind	 kind;
	const char		*secret;
	bool			 check_only;	/* judge the user only, never apply */
	/*
	 * No echo is plausible (psyncd: queue_user_recent() found no change
	 * for the user lately): the store hashes the password without first
	 * verifying it against the stored hash. Left false, it verifies and
	 * answers "unchanged" for a password it already holds
	 * (store_change.check_unchanged).
	 */
	bool			 no_echo;
	/* out */
	char			 local[NAME_MAX_LEN];	/* the account's spelling */
	bool			 judged;	/* the policy accepted it */
	int			 code;		/* PSYNC_OK or why not */
	int			 msgno;		/* legacy log number, or 0 */
	enum store_outcome	 outcome;
	char			 reason[320];
};

/*
 * Judge every item and apply the accepted ones (not check_only) to the
 * store in one batch, with env for the back-ends (may be NULL). Every
 * item gets code, reason and outcome. Returns the number that failed.
 */
size_t	judge_apply(const struct psync_config *conf, const struct policy *pol,
	    const struct store_env *env, struct judge_item *items, size_t n);

#endif
