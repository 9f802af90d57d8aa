/*
 * pam_psync: the password module. Two roles, one module:
 *
 *   password requisite pam_psync.so check     (before pam_unix)
 *   password required  pam_unix.so use_authtok ...
 *   password optional  pam_psync.so           (after pam_unix)
 *
 * The check role asks for the new password and refuses one that a peer
 * the user syncs to would refuse, so the local change never happens. The
 * default role records the committed change in psyncd's spool. Neither
 * waits on the network, and neither ever logs a password.
 */
#include "config.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define PAM_SM_PASSWORD
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "account.h"
#include "codes.h"
#include "config_file.h"
#include "log.h"
#include "policy.h"
#include "pam_psync.h"
#include "util.h"

/* ------------------------------------------------------------ options */

static const struct {
	const char	*name;
	size_t		 offset;
} flag_options[] = {
	{ "check",		offsetof(struct pp_options, check) },
	{ "strict",		offsetof(struct pp_options, strict) },
	{ "debug",		offsetof(struct pp_options, debug) },
	/* Read by pam_get_authtok itself; known here so they are not "unknown". */
	{ "use_authtok",	offsetof(struct pp_options, use_authtok) },
	{ "try_first_pass",	offsetof(struct pp_options, try_first_pass) },
};

void
pp_parse_options(pam_handle_t *pamh, int argc, const char **argv,
    struct pp_options *o)
{
	int i;
	size_t f;

	memset(o, 0, sizeof(*o));
	o->config = PSYNC_DEFAULT_CONFIG;
	o->retry = 3;
	for (i = 0; i < argc; i++) {
		for (f = 0; f < sizeof(flag_options) / sizeof(flag_options[0]); f++) {
			if (strcmp(argv[i], flag_options[f].name) == 0) {
				*(bool *)(void *)((char *)o + flag_options[f].offset) = true;
				break;
			}
		}
		if (f < sizeof(flag_options) / sizeof(flag_options[0]))
			continue;
		if (strncmp(argv[i], "config=", 7) == 0 && argv[i][7] == '/') {
			o->config = argv[i] + 7;
		} else if (strncmp(argv[i], "retry=", 6) == 0 &&
		    argv[i][6] >= '1' && argv[i][6] <= '9' && argv[i][7] == '\0') {
			o->retry = argv[i][6] - '0';
		} else {
			pam_syslog(pamh, LOG_WARNING, "unknown option '%s' ignored",
			    argv[i]);
		}
	}
}

/* ------------------------------------------------------------ logging */

static void
pp_log_sink(void *ctx, int priority, const char *message)
{
	pam_syslog((pam_handle_t *)ctx, priority, "%s", message);
}

static void
pp_config_problem(void *ctx, const char *message)
{
	pam_syslog((pam_handle_t *)ctx, LOG_ERR, "%s", message);
}

/* ------------------------------------------------------------ the roles */

/*
 * Whether this user's changes sync at all: PAM_SUCCESS if they do,
 * PAM_IGNORE if the policy excludes the user (or the account is unknown to
 * the store), an error code if the check itself could not be made.
 */
int
pp_user_syncs(pam_handle_t *pamh, const struct pp_context *c, const char *user)
{
	struct policy_request req;
	struct policy_verdict v;

	memset(&req, 0, sizeof(req));
	req.user = user;
	req.account = c->found ? &c->acct : NULL;
	req.direction = POLICY_OUTBOUND;
	policy_check(c->pol, &req, &v, NULL, NULL);
	if (v.code == PSYNC_OK)
		return PAM_SUCCESS;
	if (c->opts.debug)
		pam_syslog(pamh, LOG_DEBUG, "user %s does not sync: %s", user,
		    v.reason);
	return PAM_IGNORE;
}

int
pp_context_open(pam_handle_t *pamh, struct pp_context *c, const char *user)
{
	struct psync_err err;
	int rc;

	c->conf = config_load(c->opts.config, true, pp_config_problem, pamh);
	if (c->conf == NULL)
		return -1;
	c->pol = policy_new(c->conf, &err);
	if (c->pol == NULL) {
		pam_syslog(pamh, LOG_ERR, "%s", err.msg);
		return -1;
	}
	rc = account_lookup(&c->conf->store, user, false, &c->acct, &err);
	if (rc == -1) {
		pam_syslog(pamh, LOG_ERR, "%s", err.msg);
		return -1;
	}
	c->found = rc == 0;
	return 0;
}

void
pp_context_close(struct pp_context *c)
{
	if (c->found)
		account_clear(&c->acct);
	policy_free(c->pol);
	config_free(c->conf);
	c->pol = NULL;
	c->conf = NULL;
	c->found = false;
}

/*
 * The check role, update phase: ask, judge, and ask again on refusal. The
 * password is asked for even when the user does not sync: pam_unix after
 * this module takes it with use_authtok.
 */
static int
pp_check(pam_handle_t *pamh, struct pp_context *c, const char *user)
{
	struct policy_request req;
	struct policy_verdict v;
	const char *password = NULL;
	int attempt, rc, syncs;

	syncs = pp_user_syncs(pamh, c, user);
	for (attempt = 0; attempt < c->opts.retry; attempt++) {
		rc = pam_get_authtok(pamh, PAM_AUTHTOK, &password, NULL);
		if (rc != PAM_SUCCESS) {
			if (rc == PAM_TRY_AGAIN)
				continue;
			return rc;
		}
		if (syncs != PAM_SUCCESS)
			return PAM_IGNORE;
		memset(&req, 0, sizeof(req));
		req.user = user;
		req.account = &c->acct;
		req.direction = POLICY_OUTBOUND;
		req.password = password;
		policy_check(c->pol, &req, &v, NULL, NULL);
		if (v.code == PSYNC_OK)
			return PAM_SUCCESS;
		pam_error(pamh, "BAD PASSWORD: %s", v.reason);
		pam_syslog(pamh, LOG_NOTICE, "new password of %s refused: %s",
		    user, v.reason);
		/* A refused token must not reach pam_unix, and a retry asks anew. */
		pam_set_item(pamh, PAM_AUTHTOK, NULL);
		if (c->opts.use_authtok)
			break;
	}
	return PAM_AUTHTOK_ERR;
}

/*
 * The check role steps aside without judging: it still obtains the new
 * password, because pam_unix after it takes the token with use_authtok.
 */
static int
pp_step_aside(pam_handle_t *pamh, const struct pp_options *o)
{
	const char *password = NULL;
	int rc;

	if (!o->check)
		return PAM_IGNORE;
	rc = pam_get_authtok(pamh, PAM_AUTHTOK, &password, NULL);
	return rc == PAM_SUCCESS ? PAM_IGNORE : rc;
}

#define PP_DATA	"pam_psync_context"

struct pp_cached {
	struct pp_context	 c;
	char			*user;
	char			*config;
};

static void
pp_cached_free(pam_handle_t *pamh, void *data, int status)
{
	struct pp_cached *k = data;

	(void)pamh;
	(void)status;
	pp_context_close(&k->c);
	free(k->user);
	free(k->config);
	free(k);
}

/*
 * The check role and the forwarding role run in the same PAM handle:
 * the second reuses what the first loaded (configuration, policy,
 * account), kept as PAM data and freed by pam_end.
 */
static struct pp_context *
pp_context_get(pam_handle_t *pamh, const struct pp_options *o, const char *user)
{
	const void *data = NULL;
	struct pp_cached *k;

	if (pam_get_data(pamh, PP_DATA, &data) == PAM_SUCCESS && data != NULL) {
		k = (struct pp_cached *)(uintptr_t)data;
		if (strcmp(k->user, user) == 0 && strcmp(k->config, o->config) == 0) {
			k->c.opts = *o;
			return &k->c;
		}
	}
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return NULL;
	k->c.opts = *o;
	k->user = strdup(user);
	k->config = strdup(o->config);
	if (k->user == NULL || k->config == NULL ||
	    pp_context_open(pamh, &k->c, user) == -1) {
		pp_cached_free(pamh, k, 0);
		return NULL;
	}
	if (pam_set_data(pamh, PP_DATA, k, pp_cached_free) != PAM_SUCCESS) {
		pp_cached_free(pamh, k, 0);
		return NULL;
	}
	return &k->c;
}

PAM_EXTERN int
pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct pp_options o;
	struct pp_context *c;
	const char *user = NULL;
	int rc;

	pp_parse_options(pamh, argc, argv, &o);
	log_set_callback(pp_log_sink, pamh);
	log_set_level(o.debug ? LOG_DEBUG : LOG_INFO);

	if (flags & PAM_PRELIM_CHECK) {
		rc = o.check ? PAM_SUCCESS : PAM_IGNORE;
		goto done;
	}
	if (!(flags & PAM_UPDATE_AUTHTOK)) {
		rc = PAM_IGNORE;
		goto done;
	}
	/* A change that psyncd's own pam store is applying is not forwarded. */
	if (pam_getenv(pamh, "PSYNC_APPLYING") != NULL) {
		rc = pp_step_aside(pamh, &o);
		goto done;
	}
	if (pam_get_user(pamh, &user, NULL) != PAM_SUCCESS || user == NULL ||
	    user[0] == '\0') {
		pam_syslog(pamh, LOG_ERR, "cannot determine the user name");
		rc = o.strict ? PAM_USER_UNKNOWN : pp_step_aside(pamh, &o);
		goto done;
	}
	c = pp_context_get(pamh, &o, user);
	if (c == NULL) {
		/* Without a usable configuration nothing can be judged or kept. */
		rc = o.strict ? PAM_AUTHTOK_ERR : pp_step_aside(pamh, &o);
		goto done;
	}
	if (o.check)
		rc = pp_check(pamh, c, user);
	else
		rc = pp_forward(pamh, c, user);
done:
	log_set_callback(NULL, NULL);
	return rc;
}
