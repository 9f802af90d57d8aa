/*
 * psyncctl apply: the bulk-load tool. Reads "user:password" lines (as
 * chpasswd does), judges each through the policy as an inbound change,
 * and applies the accepted ones to the local store as one batch (one
 * shadow rewrite, hashing on every core). One line of output per user:
 * "USER: CODE OUTCOME: REASON". Exit 0 only when every line succeeded.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "codes.h"
#include "policy.h"
#include "psyncctl.h"
#include "seal.h"
#include "store.h"
#include "util.h"

static void
usage(FILE *out)
{
	fprintf(out, "usage: psyncctl apply [-c FILE] [-e]\n"
	    "  reads user:password lines on standard input; with -e the\n"
	    "  secrets are crypt hashes ($y$, $6$, $5$, $2b$), stored as they are\n");
}

/*
 * Fingerprints let the store skip the verify for passwords it knows to be
 * new (lib/store_fp.c). They need the host key: on a host where psyncd
 * never made one, every change is verified.
 */
static void
apply_fingerprints(const struct psync_config *conf)
{
	unsigned char key[SEAL_KEY_LEN];
	struct psync_err err;

	if (conf->store.type != STORE_FILES || !conf->store.fingerprints)
		return;
	perr_clear(&err);
	if (seal_key_load(conf->queue.host_key_file, 0, key, &err) == 0)
		(void)store_fp_enable(conf->queue.directory, key, &err);
	if (err.code != PSYNC_OK && err.code != PSYNC_E_FILE_NOT_FOUND)
		fprintf(stderr, "psyncctl apply: warning: %s; every change is "
		    "verified against the stored hash\n", err.msg);
	secure_wipe(key, sizeof(key));
}

int
cmd_apply(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "encrypted",	no_argument, NULL, 'e' },
		{ "help",	no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	enum store_secret_kind kind = STORE_SECRET_CLEARTEXT;
	struct psync_config *conf = NULL;
	struct policy *pol = NULL;
	struct store_batch batch, accepted;
	struct store_result *results = NULL;
	struct policy_verdict *verdicts = NULL;
	struct account *accts = NULL;
	const char **names = NULL;
	int *found = NULL, ch, rc = CTL_FAIL;
	size_t i, a, failed = 0;
	struct psync_err err;

	store_batch_init(&batch);
	store_batch_init(&accepted);
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:eh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl->config_path = optarg;
			break;
		case 'e':
			kind = STORE_SECRET_HASH;
			break;
		case 'h':
			usage(stdout);
			return CTL_OK;
		default:
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return CTL_USAGE;
	}
	conf = ctl_load_config(ctl);
	if (conf == NULL)
		goto done;
	pol = policy_new(conf, &err);
	if (pol == NULL) {
		fprintf(stderr, "psyncctl apply: %s\n", err.msg);
		goto done;
	}
	if (store_batch_read(&batch, stdin, kind, &err) == -1) {
		fprintf(stderr, "psyncctl apply: standard input: %s\n", err.msg);
		goto done;
	}
	if (batch.n == 0) {
		fprintf(stderr, "psyncctl apply: no user:password lines on "
		    "standard input\n");
		goto done;
	}
	names = calloc(batch.n, sizeof(*names));
	accts = calloc(batch.n, sizeof(*accts));
	found = calloc(batch.n, sizeof(*found));
	verdicts = calloc(batch.n, sizeof(*verdicts));
	results = calloc(batch.n, sizeof(*results));
	if (names == NULL || accts == NULL || found == NULL || verdicts == NULL ||
	    results == NULL) {
		fprintf(stderr, "psyncctl apply: out of memory\n");
		goto done;
	}
	for (i = 0; i < batch.n; i++)
		names[i] = batch.changes[i].user;
	if (account_lookup_many(&conf->store, names, batch.n,
	    conf->policy.case_ignore_name, accts, found, &err) == -1) {
		fprintf(stderr, "psyncctl apply: %s\n", err.msg);
		goto done;
	}
	/* The policy first: only accepted changes reach the store. */
	for (i = 0; i < batch.n; i++) {
		struct policy_request req;

		memset(&req, 0, sizeof(req));
		req.user = names[i];
		req.account = found[i] == 0 ? &accts[i] : NULL;
		req.direction = POLICY_INBOUND;
		req.password = kind == STORE_SECRET_CLEARTEXT ?
		    batch.changes[i].secret : NULL;
		if (found[i] == -1) {
			verdicts[i].code = PSYNC_E_BAD_USER;
			snprintf(verdicts[i].reason, sizeof(verdicts[i].reason),
			    "'%s' matches more than one account when case is "
			    "ignored", names[i]);
			continue;
		}
		policy_check(pol, &req, &verdicts[i], NULL, NULL);
		if (verdicts[i].code != PSYNC_OK)
			continue;
		/* The store wants the account's own spelling of the name. */
		if (store_batch_add(&accepted, accts[i].name, kind,
		    batch.changes[i].secret, &err) == -1) {
			fprintf(stderr, "psyncctl apply: %s\n", err.msg);
			goto done;
		}
	}
	if (accepted.n > 0) {
		apply_fingerprints(conf);
		store_apply(&conf->store, accepted.changes, accepted.n, results);
		store_fp_disable();
	}
	for (i = 0, a = 0; i < batch.n; i++) {
		if (verdicts[i].code != PSYNC_OK) {
			printf("%s: %d refused: %s\n", names[i], verdicts[i].code,
			    verdicts[i].reason);
			failed++;
			continue;
		}
		printf("%s: %d %s%s%s\n", names[i], results[a].code,
		    store_outcome_name(results[a].outcome),
		    results[a].reason[0] != '\0' ? ": " : "", results[a].reason);
		if (results[a].outcome == STORE_FAILED)
			failed++;
		a++;
	}
	rc = failed == 0 ? CTL_OK : CTL_FAIL;
done:
	for (i = 0; accts != NULL && i < batch.n; i++)
		if (found[i] == 0)
			account_clear(&accts[i]);
	free(accts);
	free(found);
	free(names);
	free(verdicts);
	free(results);
	store_batch_free(&accepted);
	store_batch_free(&batch);
	policy_free(pol);
	config_free(conf);
	return rc;
}
