/*
 * The incoming spool: each file that pam_psync or psync-samba-hook left
 * there is unsealed, given its target peers (each asked the policy) and
 * stored in the queue; only then is the file removed. A file that cannot
 * be read is set aside in spool/bad/.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "account.h"
#include "codes.h"
#include "keys.h"
#include "log.h"
#include "mepp.h"
#include "mepp_net.h"
#include "names.h"
#include "pmsg.h"
#include "policy.h"
#include "psyncd.h"
#include "queue.h"
#include "samba_applied.h"
#include "seal.h"
#include "spool.h"
#include "store.h"
#include "wire.h"

/*
 * The targets of a change: every peer we send to, except where it came
 * from, and, for a change that came from a peer, only relaying peers.
 * Each target is asked the policy; a refusal is logged and skipped.
 */
size_t
intake_targets(struct psyncd *d, const struct change *c, const char *source,
    const char **out, size_t cap)
{
	struct policy_request req;
	struct policy_verdict v;
	struct account acct;
	struct psync_err err;
	char hex[QUEUE_ID_HEX_LEN + 1];
	const struct peer_conf *pc;
	size_t i, n = 0;
	int found;

	memset(&acct, 0, sizeof(acct));
	found = account_lookup(&d->conf->store, c->user,
	    d->conf->policy.case_ignore_name, &acct, &err);
	id_hex(c->id, hex);
	for (i = 0; i < d->conf->n_peers && n < cap; i++) {
		pc = &d->conf->peers[i];
		if (!(pc->direction & DIR_SEND))
			continue;
		if (strcmp(pc->name, c->origin) == 0 ||
		    (source != NULL && strcmp(pc->name, source) == 0))
			continue;
		if (source != NULL && !pc->relay)
			continue;
		memset(&req, 0, sizeof(req));
		req.user = c->user;
		req.account = found == 0 ? &acct : NULL;
		req.peer = pc;
		req.direction = POLICY_OUTBOUND;
		req.password = c->secret_kind == FRAME_SECRET_CLEARTEXT ?
		    (const char *)c->secret : NULL;
		if (policy_check(d->pol, &req, &v, NULL, NULL) != PSYNC_OK) {
			if (v.msgno != 0)
				log_warnx("%d: change %s for %s not sent to "
				    "peer %s: code %d (%s): %s", v.msgno, hex,
				    c->user, pc->name, v.code,
				    code_reason(v.code), v.reason);
			else
				log_warnx("change %s for %s not sent to peer "
				    "%s: code %d (%s): %s", hex, c->user,
				    pc->name, v.code, code_reason(v.code),
				    v.reason);
			continue;
		}
		out[n++] = pc->name;
	}
	account_clear(&acct);
	return n;
}

static void
spool_set_aside(struct psyncd *d, const char *name, const char *why)
{
	char from[PATH_MAX], dir[PATH_MAX], to[2 * PATH_MAX + 2];
	const char *spool = d->conf->queue.spool_directory;

	snprintf(dir, sizeof(dir), "%s/bad", spool);
	snprintf(from, sizeof(from), "%s/%s", spool, name);
	snprintf(to, sizeof(to), "%s/%s", dir, name);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		log_warn("spool %s: cannot create %s; removing %s", spool, dir,
		    name);
		(void)unlink(from);
		return;
	}
	if (rename(from, to) == -1) {
		log_warn("spool: cannot move %s to %s; removing it", from, to);
		(void)unlink(from);
		return;
	}
	log_warnx("spool: %s set aside in %s: %s", name, dir, why);
}

static int
spool_take(struct psyncd *d, const char *name)
{
	const char *targets[256];
	struct psync_err err;
	struct frame f;
	char path[PATH_MAX], hex[QUEUE_ID_HEX_LEN + 1];
	size_t n;
	int rc = -1, q;

	snprintf(path, sizeof(path), "%s/%s", d->conf->queue.spool_directory,
	    name);
	if (spool_read(d->conf->queue.spool_directory, name, d->host_key, &f,
	    &err) == -1) {
		/* Gone meanwhile (another scan took it): nothing to do. */
		if (access(path, F_OK) == -1 && errno == ENOENT)
			return 0;
		spool_set_aside(d, name, err.msg);
		return 0;
	}
	id_hex(f.u.change.id, hex);
	n = intake_targets(d, &f.u.change, NULL, targets,
	    sizeof(targets) / sizeof(targets[0]));
	q = queue_add(d->q, &f.u.change, NULL, targets, n, &err);
	if (q == -1) {
		log_warnx("spool: cannot queue change %s for %s: %s; it stays "
		    "in the spool", hex, f.u.change.user, err.msg);
		goto done;
	}
	log_info("change %s for %s queued for %zu peer%s%s", hex,
	    f.u.change.user, n, n == 1 ? "" : "s",
	    q == 0 ? " (already known)" : "");
	/* Only now: the queue has it on disk. */
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("spool: cannot remove %s", path);
	d->deliver_soon = true;
	rc = 0;
done:
	frame_wipe(&f);
	return rc;
}

void
intake_scan(struct psyncd *d)
{
	struct psync_err err;
	char **names = NULL;
	size_t n = 0, i;

	d->spool_backlog = false;
	if (spool_list(d->conf->queue.spool_directory, &names, &n, &err) == -1) {
		log_warnx("spool: %s", err.msg);
		d->spool_backlog = true;
		return;
	}
	for (i = 0; i < n; i++) {
		if (spool_take(d, names[i]) == -1) {
			/* The queue could not take it (a full disk...): the
			   loop tries again every tick, with no new file. */
			d->spool_backlog = true;
			break;
		}
	}
	spool_list_free(names, n);
}

/* pam_psync writes under ".NAME.tmp"; one left over a minute died. */
void
intake_clean_stale(struct psyncd *d)
{
	const char *dir = d->conf->queue.spool_directory;
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	size_t len;
	DIR *dh;

	dh = opendir(dir);
	if (dh == NULL) {
		log_warn("spool: %s", dir);
		return;
	}
	while ((de = readdir(dh)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] != '.' || len < 6 ||
		    strcmp(de->d_name + len - 4, ".tmp") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
		    st.st_mtime + STALE_TMP_SECONDS < time(NULL)) {
			if (unlink(path) == 0)
				log_info("spool: removed stale temporary %s",
				    path);
		}
	}
	closedir(dh);
}
