/*
 * The pam back-end: each change goes through the configured PAM service as
 * root (pam_start, pam_chauthtok), for hosts whose accounts live behind PAM
 * (LDAP, NIS, sss). The conversation answers the new password to every
 * echo-off prompt. PSYNC_APPLYING=1 is put in the PAM environment first so
 * that pam_psync in the same stack does not forward the change again.
 *
 * There is no "unchanged" here: finding out would mean authenticating with
 * the new password, and a failed attempt counts towards lock-outs
 * (pam_faillock) and fills the auth log.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <security/pam_appl.h>

#include "codes.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

#define PAM_DEFAULT_SERVICE	"passwd"

struct conv_ctx {
	const char	*user;
	const char	*password;
	char		 info[160];	/* the module's last message, for reasons */
};

static void
free_responses(struct pam_response *resp, int n)
{
	int i;

	for (i = 0; i < n; i++)
		secure_free_str(resp[i].resp);
	free(resp);
}

static int
conv(int n, const struct pam_message **msg, struct pam_response **out,
    void *appdata)
{
	struct conv_ctx *cc = appdata;
	struct pam_response *resp;
	int i;

	*out = NULL;
	if (n <= 0 || n > PAM_MAX_NUM_MSG)
		return PAM_CONV_ERR;
	resp = calloc((size_t)n, sizeof(*resp));
	if (resp == NULL)
		return PAM_BUF_ERR;
	for (i = 0; i < n; i++) {
		switch (msg[i]->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			resp[i].resp = strdup(cc->password);
			if (resp[i].resp == NULL) {
				free_responses(resp, n);
				return PAM_BUF_ERR;
			}
			break;
		case PAM_ERROR_MSG:
		case PAM_TEXT_INFO:
			if (msg[i]->msg != NULL) {
				str_copy(cc->info, msg[i]->msg, sizeof(cc->info));
				log_info("store: PAM for %s: %s", cc->user,
				    msg[i]->msg);
			}
			break;
		case PAM_PROMPT_ECHO_ON:
		default:
			/* Nothing but the password can be answered. */
			log_warnx("store: PAM for %s asked an unexpected "
			    "question: %s", cc->user,
			    msg[i]->msg != NULL ? msg[i]->msg : "(none)");
			free_responses(resp, n);
			return PAM_CONV_ERR;
		}
	}
	*out = resp;
	return PAM_SUCCESS;
}

/* PAM's answers as result codes. */
static const struct {
	int	pam;
	int	code;
} pam_codes[] = {
	{ PAM_USER_UNKNOWN,		PSYNC_E_NO_USER },
	{ PAM_AUTHTOK_LOCK_BUSY,	PSYNC_E_LOCK },
	{ PAM_AUTHTOK_ERR,		PSYNC_E_BAD_PASSWORD },
	{ PAM_AUTHTOK_RECOVERY_ERR,	PSYNC_E_UPDATE_FAILED },
	{ PAM_AUTHTOK_DISABLE_AGING,	PSYNC_E_CANT_CHANGE },
	{ PAM_PERM_DENIED,		PSYNC_E_REFUSED },
	{ PAM_TRY_AGAIN,		PSYNC_E_UPDATE_FAILED },
};

static int
pam_to_code(int pr)
{
	size_t i;

	for (i = 0; i < sizeof(pam_codes) / sizeof(pam_codes[0]); i++)
		if (pam_codes[i].pam == pr)
			return pam_codes[i].code;
	return PSYNC_E_UPDATE_FAILED;
}

static void
pam_one(const char *service, const struct store_change *c,
    struct store_result *r)
{
	struct conv_ctx cc;
	struct pam_conv pc = { conv, &cc };
	pam_handle_t *pamh = NULL;
	int pr;

	memset(&cc, 0, sizeof(cc));
	cc.user = c->user;
	cc.password = c->secret;
	pr = pam_start(service, c->user, &pc, &pamh);
	if (pr != PAM_SUCCESS) {
		store_result_set(r, PSYNC_E_OPEN, STORE_FAILED,
		    "PAM service %s for %s: pam_start: %s", service, c->user,
		    pam_strerror(pamh, pr));
		goto done;
	}
	pr = pam_putenv(pamh, "PSYNC_APPLYING=1");
	if (pr != PAM_SUCCESS) {
		store_result_set(r, PSYNC_E_UPDATE_FAILED, STORE_FAILED,
		    "PAM service %s for %s: pam_putenv: %s", service, c->user,
		    pam_strerror(pamh, pr));
		goto done;
	}
	pr = pam_chauthtok(pamh, PAM_SILENT);
	if (pr != PAM_SUCCESS) {
		store_result_set(r, pam_to_code(pr), STORE_FAILED,
		    "PAM service %s for %s: %s%s%s", service, c->user,
		    pam_strerror(pamh, pr), cc.info[0] != '\0' ? ": " : "",
		    cc.info);
		goto done;
	}
	store_result_set(r, PSYNC_OK, STORE_APPLIED,
	    "password of %s changed through PAM service %s", c->user, service);
done:
	if (pamh != NULL)
		pam_end(pamh, pr);
	secure_wipe(&cc, sizeof(cc));
}

size_t
store_pam_apply(const struct store_conf *conf,
    const struct store_change *changes, size_t n, struct store_result *results)
{
	const char *service = conf->pam_service != NULL ?
	    conf->pam_service : PAM_DEFAULT_SERVICE;
	size_t i, j, failed = 0;
	bool later;

	/* pam_unix takes lckpwdf in this process: keep the files batches out. */
	pthread_mutex_lock(&store_process_lock);
	for (i = 0; i < n; i++) {
		if (results[i].code != PSYNC_E_UPDATE_FAILED ||
		    results[i].outcome != STORE_FAILED)
			continue;
		later = false;
		for (j = i + 1; j < n && !later; j++)
			later = changes[j].user != NULL &&
			    strcmp(changes[j].user, changes[i].user) == 0 &&
			    results[j].code == PSYNC_E_UPDATE_FAILED;
		if (later) {
			store_result_set(&results[i], PSYNC_OK, STORE_SUPERSEDED,
			    "superseded by a later change for %s in the same "
			    "batch", changes[i].user);
			continue;
		}
		if (changes[i].kind != STORE_SECRET_CLEARTEXT) {
			store_result_set(&results[i], PSYNC_E_BAD_PASSWORD,
			    STORE_FAILED, "the PAM store needs the cleartext "
			    "password of %s, not a hash", changes[i].user);
			continue;
		}
		pam_one(service, &changes[i], &results[i]);
		if (results[i].code != PSYNC_OK)
			log_warnx("store: %s", results[i].reason);
	}
	pthread_mutex_unlock(&store_process_lock);
	for (i = 0; i < n; i++)
		if (results[i].code != PSYNC_OK)
			failed++;
	return failed;
}
