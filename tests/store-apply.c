/*
 * store-apply: reads "user:password" lines from stdin, like chpasswd, and
 * applies them to the store as one batch; prints one line per change,
 * "user code name outcome: reason", and exits 1 when any change failed.
 * Used by the system tests, the crash test and bench/apply. With
 * --hash-only it only hashes the passwords on every core (the benchmark's
 * yardstick) and prints nothing per change. Every change asks the store
 * to verify against the stored hash first ("unchanged"), as psyncctl apply
 * does; --no-check hashes directly, as psyncd does for a change that
 * cannot be an echo.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codes.h"
#include "log.h"
#include "store.h"
#include "util.h"

static const struct {
	const char	*name;
	enum hash_method method;
} methods[] = {
	{ "login.defs",	HASH_LOGIN_DEFS },
	{ "yescrypt",	HASH_YESCRYPT },
	{ "sha512",	HASH_SHA512 },
	{ "sha256",	HASH_SHA256 },
	{ "bcrypt",	HASH_BCRYPT },
};

static const struct option longopts[] = {
	{ "shadow",		required_argument,	NULL, 's' },
	{ "passwd",		required_argument,	NULL, 'p' },
	{ "hashes-in-passwd",	no_argument,		NULL, 'H' },
	{ "method",		required_argument,	NULL, 'm' },
	{ "cost",		required_argument,	NULL, 'c' },
	{ "login-defs",		required_argument,	NULL, 'l' },
	{ "threads",		required_argument,	NULL, 't' },
	{ "lock-timeout",	required_argument,	NULL, 'w' },
	{ "encrypted",		no_argument,		NULL, 'e' },
	{ "nis-make",		required_argument,	NULL, 'n' },
	{ "pam",		required_argument,	NULL, 'P' },
	{ "hash-only",		no_argument,		NULL, 'h' },
	{ "no-check",		no_argument,		NULL, 'N' },
	{ "quiet",		no_argument,		NULL, 'q' },
	{ "verbose",		no_argument,		NULL, 'v' },
	{ NULL,			0,			NULL, 0 },
};

static void
usage(void)
{
	fprintf(stderr, "usage: store-apply [--shadow FILE] [--passwd FILE] "
	    "[--hashes-in-passwd]\n"
	    "\t[--method login.defs|yescrypt|sha512|sha256|bcrypt] [--cost N]\n"
	    "\t[--login-defs FILE] [--threads N] [--lock-timeout SECONDS] "
	    "[-e]\n"
	    "\t[--nis-make DIR] [--pam SERVICE] [--hash-only] [--no-check] "
	    "[-q] [-v] "
	    "< user:password lines\n");
	exit(2);
}

static unsigned int
number(const char *opt, const char *s)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v > 1000000000UL) {
		fprintf(stderr, "store-apply: --%s: not a number: %s\n", opt, s);
		exit(2);
	}
	return (unsigned int)v;
}

static int
hash_only(const struct store_conf *conf, const struct store_batch *b)
{
	struct store_hash_params params;
	struct psync_err err;
	const char **pw = NULL;
	char **out = NULL;
	size_t i, failed;
	int rc = 1;

	if (store_hash_params(conf, &params, &err) == -1) {
		fprintf(stderr, "store-apply: %s\n", err.msg);
		return 1;
	}
	pw = calloc(b->n + 1, sizeof(*pw));
	out = calloc(b->n + 1, sizeof(*out));
	if (pw == NULL || out == NULL)
		goto done;
	for (i = 0; i < b->n; i++)
		pw[i] = b->changes[i].secret;
	failed = store_hash_many(&params, pw, out, b->n, conf->hash_threads);
	for (i = 0; i < b->n; i++)
		free(out[i]);
	if (failed == 0)
		rc = 0;
	else
		fprintf(stderr, "store-apply: %zu hashes failed\n", failed);
done:
	free(pw);
	free(out);
	return rc;
}

int
main(int argc, char **argv)
{
	struct store_conf conf;
	struct store_batch batch;
	struct store_result *res = NULL;
	struct psync_err err;
	enum store_secret_kind kind = STORE_SECRET_CLEARTEXT;
	bool only_hash = false, quiet = false, check = true, found;
	size_t i, failed;
	int ch, rc = 1;

	memset(&conf, 0, sizeof(conf));
	conf.type = STORE_FILES;
	conf.shadow_file = (char *)(uintptr_t)"/etc/shadow";
	conf.passwd_file = (char *)(uintptr_t)"/etc/passwd";
	conf.hash_method = HASH_LOGIN_DEFS;
	conf.lock_timeout = 15;
	log_init("store-apply", LOG_TARGET_STDERR, 0);
	log_set_level(LOG_WARNING);
	while ((ch = getopt_long(argc, argv, "eqv", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			conf.shadow_file = optarg;
			break;
		case 'p':
			conf.passwd_file = optarg;
			break;
		case 'H':
			conf.hashes_in_passwd = true;
			break;
		case 'm':
			found = false;
			for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
				if (strcasecmp(optarg, methods[i].name) == 0) {
					conf.hash_method = methods[i].method;
					found = true;
				}
			if (!found)
				usage();
			break;
		case 'c':
			conf.hash_cost = number("cost", optarg);
			break;
		case 'l':
			conf.login_defs = optarg;
			break;
		case 't':
			conf.hash_threads = number("threads", optarg);
			break;
		case 'w':
			conf.lock_timeout = number("lock-timeout", optarg);
			break;
		case 'e':
			kind = STORE_SECRET_HASH;
			break;
		case 'n':
			conf.nis_make_dir = optarg;
			break;
		case 'P':
			conf.type = STORE_PAM;
			conf.pam_service = optarg;
			break;
		case 'h':
			only_hash = true;
			break;
		case 'N':
			check = false;
			break;
		case 'q':
			quiet = true;
			break;
		case 'v':
			log_set_level(LOG_DEBUG);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	store_batch_init(&batch);
	if (store_batch_read(&batch, stdin, kind, &err) == -1) {
		fprintf(stderr, "store-apply: %s\n", err.msg);
		rc = 2;
		goto done;
	}
	for (i = 0; i < batch.n; i++)
		batch.changes[i].check_unchanged = check;
	if (only_hash) {
		rc = hash_only(&conf, &batch);
		goto done;
	}
	res = calloc(batch.n + 1, sizeof(*res));
	if (res == NULL) {
		fprintf(stderr, "store-apply: out of memory\n");
		goto done;
	}
	failed = store_apply(&conf, batch.changes, batch.n, res);
	for (i = 0; i < batch.n && !quiet; i++)
		printf("%s %d %s %s: %s\n", batch.changes[i].user, res[i].code,
		    code_name(res[i].code), store_outcome_name(res[i].outcome),
		    res[i].reason);
	if (quiet && failed > 0)
		fprintf(stderr, "store-apply: %zu of %zu changes failed\n",
		    failed, batch.n);
	rc = failed == 0 ? 0 : 1;
done:
	free(res);
	store_batch_free(&batch);
	if (fflush(stdout) != 0)
		rc = 1;
	return rc;
}
