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
#include "judge.h"
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
	struct store_batch batch;
	struct judge_item *items = NULL;
	int ch, rc = CTL_FAIL;
	size_t i, failed = 0;
	struct psync_err err;

	store_batch_init(&batch);
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
	items = calloc(batch.n, sizeof(*items));
	if (items == NULL) {
		fprintf(stderr, "psyncctl apply: out of memory\n");
		goto done;
	}
	for (i = 0; i < batch.n; i++) {
		items[i].user = batch.changes[i].user;
		items[i].kind = kind;
		items[i].secret = batch.changes[i].secret;
	}
	/* The policy first, then the store, as psyncd does (lib/store/judge.c). */
	failed = judge_apply(conf, pol, NULL, items, batch.n);
	for (i = 0; i < batch.n; i++) {
		if (!items[i].judged)
			printf("%s: %d refused: %s\n", items[i].user,
			    items[i].code, items[i].reason);
		else
			printf("%s: %d %s%s%s\n", items[i].user, items[i].code,
			    store_outcome_name(items[i].outcome),
			    items[i].reason[0] != '\0' ? ": " : "",
			    items[i].reason);
	}
	rc = failed == 0 ? CTL_OK : CTL_FAIL;
done:
	if (items != NULL)
		secure_wipe(items, batch.n * sizeof(*items));
	free(items);
	store_batch_free(&batch);
	policy_free(pol);
	config_free(conf);
	return rc;
}
