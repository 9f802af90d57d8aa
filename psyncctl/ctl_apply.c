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
	/* The policy first, then the store, as psyncd does (lib/judge.c). */
	apply_fingerprints(conf);
	failed = judge_apply(conf, pol, NULL, items, batch.n);
	store_fp_disable();
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
