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

static uint64_t
now_ms(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

/* Returns 0 when the change is durable in the spool, -1 with err. */
static int
pp_spool_change(const struct pp_context *c, const char *user,
    const char *password, char *name, struct psync_err *err)
{
	unsigned char key[SEAL_KEY_LEN];
	uint8_t id[FRAME_ID_LEN];
	struct frame f;
	int rc = -1;

	memset(&f, 0, sizeof(f));
	if (seal_key_load(c->conf->queue.host_key_file, 1, key, err) == -1)
		goto done;
	if (spool_prepare(c->conf->queue.spool_directory, err) == -1)
		goto done;
	if (RAND_bytes(id, sizeof(id)) != 1) {
		perr_set(err, 4, "no random bytes for the change id");
		goto done;
	}
	if (frame_set_change(&f, id, c->conf->node_name, now_ms(), user,
	    FRAME_SECRET_CLEARTEXT, password, strlen(password), err) == -1)
		goto done;
	rc = spool_write(c->conf->queue.spool_directory, key, &f, name, err);
done:
	frame_wipe(&f);
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
