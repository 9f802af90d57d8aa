/*
 * psync-samba-hook: the program `samba-tool user syncpasswords --script`
 * runs on a Samba AD DC for each account whose password (or state)
 * changed. It reads that account's LDIF on stdin, and for a password
 * change seals a CHANGE (the cleartext from virtualClearTextUTF8, or the
 * crypt hash from virtualCryptSHA512) into psyncd's spool, as pam_psync
 * does on a UNIX host. It answers "DONE-EXIT: ..." on stdout, which
 * syncpasswords requires; anything else stops syncpasswords, which is
 * what should happen when a change cannot be queued (systemd restarts it
 * and the change is reported again). Its log goes to syslog: stdout is
 * the answer.
 *
 * A report of a password that psyncd itself just applied from a peer is
 * skipped (lib/queue/samba_applied.h).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "codes.h"
#include "config_file.h"
#include "frame.h"
#include "log.h"
#include "queue.h"
#include "samba_applied.h"
#include "samba_ldif.h"
#include "seal.h"
#include "spool.h"
#include "util.h"

static void
config_problem(void *ctx, const char *message)
{
	(void)ctx;
	log_warnx("%s", message);
}

/* Read all of stdin, at most SAMBA_LDIF_MAX bytes. */
static int
read_input(char **bufp, size_t *lenp, struct psync_err *err)
{
	char *buf;
	size_t len = 0;
	ssize_t r;

	*bufp = NULL;
	*lenp = 0;
	if ((buf = malloc(SAMBA_LDIF_MAX + 1)) == NULL) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "out of memory");
		return -1;
	}
	for (;;) {
		r = read(STDIN_FILENO, buf + len, SAMBA_LDIF_MAX + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			perr_set(err, PSYNC_E_UPDATE_FAILED, "reading stdin: %s",
			    strerror(errno));
			secure_wipe(buf, len);
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > SAMBA_LDIF_MAX) {
			perr_set(err, PSYNC_E_PROTOCOL, "LDIF larger than %d "
			    "bytes", SAMBA_LDIF_MAX);
			secure_wipe(buf, len);
			free(buf);
			return -1;
		}
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

/*
 * Was this password applied here from a peer? 1 yes, 0 no. An error
 * counts as no: sending a change twice is harmless (the peers answer
 * "unchanged"), losing one is not.
 */
static int
echo_of_peer(const struct psync_config *conf, const unsigned char *key,
    const char *user, const char *secret, int is_hash)
{
	struct queue *q = NULL;
	struct psync_err err;
	int rc;

	perr_clear(&err);
	if (queue_open(&q, conf->queue.directory, key, NULL, &err) == -1) {
		log_warnx("cannot open the queue in %s to look for a change "
		    "applied from a peer for %s: %s", conf->queue.directory,
		    user, err.msg);
		return 0;
	}
	rc = samba_applied_match(q, key, user, secret, is_hash, clock_wall_ms(), &err);
	if (rc == -1)
		log_warnx("looking for a change applied from a peer for %s: %s",
		    user, err.msg);
	queue_close(q);
	return rc == 1;
}

static int
spool_change(const struct psync_config *conf, const unsigned char *key,
    const char *user, enum change_secret_kind kind, const char *secret,
    char *name, struct psync_err *err)
{
	return spool_submit(conf->queue.spool_directory, key, conf->node_name,
	    user, kind, secret, name, err);
}

static void
usage(void)
{
	fprintf(stderr, "usage: psync-samba-hook [-c config]\n"
	    "  run by samba-tool user syncpasswords --script; reads one "
	    "account's LDIF on stdin\n");
}

int
main(int argc, char *argv[])
{
	const char *path = PSYNC_DEFAULT_CONFIG, *why = "";
	struct psync_config *conf = NULL;
	struct samba_ldif obj;
	struct psync_err err;
	unsigned char key[SEAL_KEY_LEN];
	char name[SPOOL_NAME_LEN + 1], *buf = NULL;
	enum samba_ldif_action act;
	enum change_secret_kind kind;
	const char *secret;
	size_t len = 0;
	int ch, status = 1;

	memset(&obj, 0, sizeof(obj));
	memset(key, 0, sizeof(key));
	while ((ch = getopt(argc, argv, "c:")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		default:
			usage();
			return 2;
		}
	}
	log_init("psync-samba-hook", LOG_TARGET_SYSLOG, LOG_AUTHPRIV);
	perr_clear(&err);
	if (read_input(&buf, &len, &err) == -1) {
		log_warnx("%s", err.msg);
		printf("ERROR: %s\n", err.msg);
		goto done;
	}
	if (samba_ldif_parse(buf, len, &obj, &err) == -1) {
		/* syncpasswords would stop on every retry: report, go on. */
		log_warnx("unreadable report from syncpasswords, skipped: %s",
		    err.msg);
		printf("DONE-EXIT: skipped: unreadable LDIF: %s\n", err.msg);
		status = 0;
		goto done;
	}
	act = samba_ldif_decide(&obj, &why);
	if (act != SAMBA_SEND_CLEARTEXT && act != SAMBA_SEND_HASH) {
		log_debug("%s: %s: nothing to send", obj.have_user ? obj.user :
		    obj.dn, why);
		printf("DONE-EXIT: skipped %s: %s\n", obj.have_user ? obj.user :
		    obj.dn, why);
		status = 0;
		goto done;
	}
	kind = act == SAMBA_SEND_CLEARTEXT ? FRAME_SECRET_CLEARTEXT :
	    FRAME_SECRET_CRYPT;
	secret = act == SAMBA_SEND_CLEARTEXT ? obj.cleartext : obj.hash;
	if ((conf = config_load(path, true, config_problem, NULL)) == NULL) {
		log_warnx("password change of %s NOT queued: %s is not a "
		    "usable configuration", obj.user, path);
		printf("ERROR: %s is not a usable configuration\n", path);
		goto done;
	}
	if (seal_key_load(conf->queue.host_key_file, 1, key, &err) == -1) {
		log_warnx("password change of %s NOT queued: %s", obj.user,
		    err.msg);
		printf("ERROR: %s\n", err.msg);
		goto done;
	}
	if (echo_of_peer(conf, key, obj.user, secret,
	    kind == FRAME_SECRET_CRYPT)) {
		log_info("password change of %s was applied here from a peer: "
		    "not sent back", obj.user);
		printf("DONE-EXIT: skipped %s: applied from a peer\n",
		    obj.user);
		status = 0;
		goto done;
	}
	if (spool_change(conf, key, obj.user, kind, secret, name, &err) == -1) {
		log_warnx("password change of %s NOT queued: %s", obj.user,
		    err.msg);
		printf("ERROR: password change of %s not queued: %s\n",
		    obj.user, err.msg);
		goto done;
	}
	log_info("password change of %s (%s) queued for its peers as %s",
	    obj.user, kind == FRAME_SECRET_CRYPT ? "hash" : "cleartext", name);
	printf("DONE-EXIT: queued %s for %s (%s)\n", name, obj.user,
	    kind == FRAME_SECRET_CRYPT ? "hash" : "cleartext");
	status = 0;
done:
	fflush(stdout);
	samba_ldif_wipe(&obj);
	secure_wipe(key, sizeof(key));
	if (buf != NULL) {
		secure_wipe(buf, len);
		free(buf);
	}
	if (conf != NULL)
		config_free(conf);
	return status;
}
