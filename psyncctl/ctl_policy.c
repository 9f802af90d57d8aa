/*
 * psyncctl policy: explain, rule by rule, whether a change for a user would
 * sync, and exit 0 only when it would.
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
#include "util.h"

static void
print_rule(void *ctx, const char *rule, enum rule_outcome outcome,
    const char *detail)
{
	static const char *const word[] = { "pass", "FAIL", "skip" };

	(void)ctx;
	printf("  %-14s %-4s  %s\n", rule, word[outcome], detail);
}

int
cmd_policy(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "peer",		required_argument, NULL, 'p' },
		{ "from",		required_argument, NULL, 'f' },
		{ "password-stdin",	no_argument,	   NULL, 's' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *peer_name = NULL;
	enum policy_direction dir = POLICY_OUTBOUND;
	bool want_password = false;
	struct psync_config *conf = NULL;
	struct policy *pol = NULL;
	struct policy_request req;
	struct policy_verdict v;
	struct account acct;
	struct psync_err err;
	char local[NAME_MAX_LEN];
	char *password = NULL;
	int ch, found, rc = CTL_FAIL;

	memset(&acct, 0, sizeof(acct));
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl->config_path = optarg;
			break;
		case 'p':
		case 'f':
			if (peer_name != NULL) {
				fprintf(stderr, "psyncctl policy: give one of "
				    "--peer and --from\n");
				return CTL_USAGE;
			}
			peer_name = optarg;
			dir = ch == 'p' ? POLICY_OUTBOUND : POLICY_INBOUND;
			break;
		case 's':
			want_password = true;
			break;
		case 'h':
			printf("usage: psyncctl policy USER [--peer NAME | --from "
			    "NAME] [--password-stdin]\n");
			return CTL_OK;
		default:
			return CTL_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "usage: psyncctl policy USER [--peer NAME | "
		    "--from NAME] [--password-stdin]\n");
		return CTL_USAGE;
	}
	conf = ctl_load_config(ctl);
	if (conf == NULL)
		goto done;
	pol = policy_new(conf, &err);
	if (pol == NULL) {
		fprintf(stderr, "psyncctl policy: %s\n", err.msg);
		goto done;
	}
	memset(&req, 0, sizeof(req));
	req.direction = dir;
	if (peer_name != NULL) {
		req.peer = config_find_peer(conf, peer_name);
		if (req.peer == NULL) {
			fprintf(stderr, "psyncctl policy: no peer '%s' in %s\n",
			    peer_name, conf->path);
			goto done;
		}
	}
	/* A name from a peer may be DOMAIN\user or mapped; local names are not. */
	if (dir == POLICY_INBOUND) {
		if (policy_local_name(pol, argv[optind], local, sizeof(local)) == -1) {
			fprintf(stderr, "psyncctl policy: '%s' is not a user "
			    "name\n", argv[optind]);
			goto done;
		}
	} else {
		str_copy(local, argv[optind], sizeof(local));
	}
	if (want_password) {
		password = ctl_read_secret_line("the password");
		if (password == NULL)
			goto done;
	}
	req.user = local;
	req.password = password;
	found = names_valid(local) ? account_lookup(&conf->store, local,
	    conf->policy.case_ignore_name, &acct, &err) : 1;
	if (found == -1) {
		fprintf(stderr, "psyncctl policy: %s\n", err.msg);
		goto done;
	}
	req.account = found == 0 ? &acct : NULL;
	printf("policy for %s, %s %s:\n", local,
	    dir == POLICY_OUTBOUND ? "to" : "from",
	    peer_name != NULL ? peer_name : "every peer");
	policy_check(pol, &req, &v, print_rule, NULL);
	if (v.code == PSYNC_OK) {
		printf("result: sync (%s)\n", v.reason);
		rc = CTL_OK;
	} else if (v.msgno != 0) {
		printf("result: refused, code %d (%s), log %d: %s\n", v.code,
		    code_reason(v.code), v.msgno, v.reason);
	} else {
		printf("result: refused, code %d (%s): %s\n", v.code,
		    code_reason(v.code), v.reason);
	}
done:
	secure_free_str(password);
	account_clear(&acct);
	policy_free(pol);
	config_free(conf);
	return rc;
}
