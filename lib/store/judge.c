/*
 * Judge then apply (judge.h).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "codes.h"
#include "judge.h"

static void
item_set(struct judge_item *it, int code, int msgno, enum store_outcome o,
    const char *reason)
{
	it->code = code;
	it->msgno = msgno;
	it->outcome = o;
	str_copy(it->reason, reason, sizeof(it->reason));
}

size_t
judge_apply(const struct psync_config *conf, const struct policy *pol,
    const struct store_env *env, struct judge_item *items, size_t n)
{
	struct account *accts = NULL;
	const char **names = NULL;
	struct store_change *sc = NULL;
	struct store_result *sr = NULL;
	size_t *map = NULL, i, j, ns = 0, failed = 0;
	int *found = NULL;
	struct policy_request req;
	struct policy_verdict v;
	struct psync_err err;

	accts = calloc(n + 1, sizeof(*accts));
	names = calloc(n + 1, sizeof(*names));
	found = calloc(n + 1, sizeof(*found));
	sc = calloc(n + 1, sizeof(*sc));
	sr = calloc(n + 1, sizeof(*sr));
	map = calloc(n + 1, sizeof(*map));
	if (accts == NULL || names == NULL || found == NULL || sc == NULL ||
	    sr == NULL || map == NULL) {
		for (i = 0; i < n; i++)
			item_set(&items[i], PSYNC_E_UPDATE_FAILED, 0,
			    STORE_FAILED, "out of memory");
		failed = n;
		goto done;
	}
	for (i = 0; i < n; i++) {
		names[i] = items[i].user;
		str_copy(items[i].local, items[i].user,
		    sizeof(items[i].local));
		items[i].judged = false;
	}
	if (account_lookup_many(&conf->store, names, n,
	    conf->policy.case_ignore_name, accts, found, &err) == -1) {
		for (i = 0; i < n; i++)
			item_set(&items[i], PSYNC_E_OPEN, 0, STORE_FAILED,
			    "cannot read the account files");
		failed = n;
		goto done;
	}
	for (i = 0; i < n; i++) {
		struct judge_item *it = &items[i];

		if (found[i] == -1) {
			char why[320];

			snprintf(why, sizeof(why), "'%.200s' matches more than "
			    "one account when case is ignored", it->user);
			item_set(it, PSYNC_E_BAD_USER, 0, STORE_FAILED, why);
			continue;
		}
		memset(&req, 0, sizeof(req));
		req.user = it->user;
		req.account = found[i] == 0 ? &accts[i] : NULL;
		req.peer = it->peer;
		req.direction = POLICY_INBOUND;
		/* A check (MEPP type 2, "temppass") is about the user, never
		   about its password. */
		req.password = it->kind == STORE_SECRET_CLEARTEXT &&
		    !it->check_only ? it->secret : NULL;
		if (policy_check(pol, &req, &v, NULL, NULL) != PSYNC_OK) {
			item_set(it, v.code, v.msgno, STORE_FAILED, v.reason);
			continue;
		}
		/* Password rules cannot be checked on a hash: only peers
		   trusted with that may send one. */
		if (it->kind == STORE_SECRET_HASH && it->peer != NULL &&
		    !it->peer->accept_hashes && !it->check_only) {
			char why[320];

			snprintf(why, sizeof(why), "peer %.200s may not send "
			    "crypt hashes here (accept-hashes is false): this "
			    "host's password rules cannot be checked on a hash",
			    it->peer->name);
			item_set(it, PSYNC_E_BAD_PASSWORD, 0, STORE_FAILED, why);
			continue;
		}
		it->judged = true;
		if (it->check_only) {
			item_set(it, PSYNC_OK, 0, STORE_UNCHANGED,
			    "would be accepted");
			continue;
		}
		/* The store wants the name as the account files spell it. */
		if (req.account != NULL)
			str_copy(it->local, accts[i].name, sizeof(it->local));
		sc[ns].user = it->local;
		sc[ns].kind = it->kind;
		sc[ns].secret = it->secret;
		sc[ns].check_unchanged = !it->no_echo;
		map[ns++] = i;
	}
	if (ns > 0)
		(void)store_apply_env(&conf->store, env, sc, ns, sr);
	for (j = 0; j < ns; j++)
		item_set(&items[map[j]], sr[j].code, 0, sr[j].outcome,
		    sr[j].reason);
	for (i = 0; i < n; i++)
		if (items[i].outcome == STORE_FAILED)
			failed++;
done:
	if (accts != NULL)
		for (i = 0; i < n; i++)
			if (found[i] == 0)
				account_clear(&accts[i]);
	if (sr != NULL)
		secure_wipe(sr, (n + 1) * sizeof(*sr));
	free(accts);
	free(names);
	free(found);
	free(sc);
	free(sr);
	free(map);
	return failed;
}
