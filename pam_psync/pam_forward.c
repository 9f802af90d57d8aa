/*
 * pam_psync's default role: after pam_unix has committed the change, seal
 * it (user, new password, a fresh 128-bit id, time, origin) into one file
 * of psyncd's incoming spool. psyncd sees the file appear (inotify) or
 * finds it when it starts; nothing here touches the network.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>

#include <openssl/rand.h>
#include <security/pam_ext.h>
#include <security/pam_modules.h>

#include "frame.h"
#include "pam_psync.h"
#include "seal.h"
#include "spool.h"

/* Returns 0 when the change is durable in the spool, -1 with err. */
static int
pp_spool_change(const struct pp_context *c, const char *user,
    const char *password, char *name, struct psync_err *err)
{
	unsigned char key[SEAL_KEY_LEN];
	int rc = -1;

	if (seal_key_load(c->conf->queue.host_key_file, 1, key, err) == -1)
		goto done;
	rc = spool_submit(c->conf->queue.spool_directory, key,
	    c->conf->node_name, user, CHANGE_SECRET_CLEARTEXT, password, name,
	    err);
done:
	secure_wipe(key, sizeof(key));
	return rc;
}

int
pp_forward(pam_handle_t *pamh, struct pp_context *c, const char *user)
{
	const void *item = NULL;
	struct psync_err err;
	char name[SPOOL_NAME_LEN + 1];
	int rc;

	rc = pp_user_syncs(pamh, c, user);
	if (rc != PAM_SUCCESS)
		return rc;
	/* Never prompt here: the token is the one pam_unix just committed. */
	if (pam_get_item(pamh, PAM_AUTHTOK, &item) != PAM_SUCCESS || item == NULL) {
		pam_syslog(pamh, LOG_ERR, "no new password for %s in the stack "
		    "(is pam_psync after pam_unix?): change not forwarded", user);
		return c->opts.strict ? PAM_AUTHTOK_ERR : PAM_IGNORE;
	}
	if (pp_spool_change(c, user, item, name, &err) == -1) {
		pam_syslog(pamh, LOG_ERR, "password change of %s NOT forwarded: %s",
		    user, err.msg);
		return c->opts.strict ? PAM_AUTHTOK_ERR : PAM_IGNORE;
	}
	pam_syslog(pamh, LOG_INFO, "password change of %s queued for its peers "
	    "as %s", user, name);
	return PAM_SUCCESS;
}
