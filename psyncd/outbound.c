/*
 * Deliveries: what the queue says is due goes to the network child as
 * DELIVER (at most PEER_INFLIGHT_MAX per peer in flight), and each
 * DELIVERY-RESULT goes back to the queue, which decides done, retry or
 * give-up. Also the queue's periodic expiry and warnings, and the test
 * change of psyncctl send.
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

static struct inflight *
inflight_find(struct psyncd *d, const uint8_t id[FRAME_ID_LEN], const char *peer)
{
	size_t i;

	for (i = 0; i < d->n_inflight; i++)
		if (memcmp(d->inflight[i].id, id, FRAME_ID_LEN) == 0 &&
		    strcmp(d->inflight[i].peer, peer) == 0)
			return &d->inflight[i];
	return NULL;
}

static void
inflight_remove(struct psyncd *d, struct inflight *f)
{
	*f = d->inflight[--d->n_inflight];
}

/* The peer's place in the configuration; n_peers for one not in it. */
static size_t
peer_index(struct psyncd *d, const char *name)
{
	const struct peer_conf *pc = config_find_peer(d->conf, name);

	return pc != NULL ? (size_t)(pc - d->conf->peers) : d->conf->n_peers;
}

void
outbound_due(struct psyncd *d)
{
	struct queue_item *items = d->items;
	struct psync_err err;
	struct pmsg m;
	struct inflight *f;
	const struct peer_conf *pc;
	uint64_t now = clock_wall_ms();
	size_t *per_peer = NULL;
	long n, i;

	/* A child that never answered (it restarts its connection) gets the
	   delivery again later; the peer applies an id once. */
	for (i = 0; i < (long)d->n_inflight; i++) {
		if (now - d->inflight[i].sent_ms > INFLIGHT_TIMEOUT_MS)
			inflight_remove(d, &d->inflight[i--]);
	}
	n = queue_due(d->q, NULL, items, DUE_BATCH, &err);
	if (n == -1) {
		log_warnx("queue: %s", err.msg);
		return;
	}
	if (n == 0)
		return;
	per_peer = calloc(d->conf->n_peers + 1, sizeof(*per_peer));
	if (per_peer == NULL) {
		log_warnx("deliveries: out of memory");
		goto done;
	}
	for (i = 0; i < (long)d->n_inflight; i++)
		per_peer[peer_index(d, d->inflight[i].peer)]++;
	for (i = 0; i < n; i++) {
		if (inflight_find(d, items[i].change.id, items[i].peer) != NULL ||
		    d->n_inflight >= INFLIGHT_MAX)
			continue;
		pc = config_find_peer(d->conf, items[i].peer);
		if (pc != NULL &&
		    per_peer[peer_index(d, pc->name)] >= PEER_INFLIGHT_MAX) {
			if (per_peer[peer_index(d, pc->name)]++ == PEER_INFLIGHT_MAX)
				log_debug("peer %s: %d changes in flight; the "
				    "next wait for their results", pc->name,
				    PEER_INFLIGHT_MAX);
			continue;
		}
		if (pc == NULL) {
			/* Removed from the configuration: give it up. */
			(void)queue_drop(d->q, items[i].change.id,
			    items[i].peer, &err);
			log_warnx("queue: peer %s is no longer configured; "
			    "its delivery of a change for %s is dropped",
			    items[i].peer, items[i].change.user);
			continue;
		}
		memset(&m, 0, sizeof(m));
		m.type = PMSG_DELIVER;
		str_copy(m.u.deliver.peer, pc->name, sizeof(m.u.deliver.peer));
		m.u.deliver.change = items[i].change;
		if (policy_peer_name(d->pol, items[i].change.user,
		    m.u.deliver.change.user,
		    sizeof(m.u.deliver.change.user)) == -1)
			str_copy(m.u.deliver.change.user, items[i].change.user,
			    sizeof(m.u.deliver.change.user));
		f = &d->inflight[d->n_inflight++];
		memcpy(f->id, items[i].change.id, FRAME_ID_LEN);
		str_copy(f->peer, pc->name, sizeof(f->peer));
		str_copy(f->user, items[i].change.user, sizeof(f->user));
		f->sent_ms = now;
		per_peer[peer_index(d, pc->name)]++;
		monitor_send(d, &m);
	}
done:
	free(per_peer);
	secure_wipe(items, (size_t)(n > 0 ? n : 0) * sizeof(*items));
}

void
outbound_result(struct psyncd *d, const struct pmsg_delivery_result *r)
{
	struct queue_result_info ri;
	const struct peer_conf *pc;
	struct psync_err err;
	struct inflight *f;
	char hex[QUEUE_ID_HEX_LEN + 1], user[FRAME_USER_MAX + 1];
	char line[1024];
	int state;

	f = inflight_find(d, r->id, r->peer);
	id_hex(r->id, hex);
	if (f == NULL) {
		log_warnx("network child reported a result for change %s to "
		    "peer %s, which was not being delivered; ignored", hex,
		    r->peer);
		return;
	}
	str_copy(user, f->user, sizeof(user));
	inflight_remove(d, f);
	pc = config_find_peer(d->conf, r->peer);
	memset(&ri, 0, sizeof(ri));
	ri.kind = pc != NULL && pc->protocol == PROTO_MEPP ? QUEUE_PEER_MEPP :
	    QUEUE_PEER_PSYNC;
	state = queue_record_peer(d->q, r->id, r->peer, ri.kind, r->code,
	    r->reason, &err);
	if (state == -1) {
		log_warnx("queue: recording the result of change %s to peer "
		    "%s: %s", hex, r->peer, err.msg);
		return;
	}
	if (r->code == 0)
		d->deliver_soon = true;
	/* One wording for every result, a legacy peer's codes included. */
	ri.state = state;
	ri.code = r->code;
	ri.peer = r->peer;
	ri.user = user;
	ri.id_hex = hex;
	ri.reason = r->reason;
	if (queue_result_message(&ri, line, sizeof(line)) == LOG_INFO)
		log_info("%s", line);
	else
		log_warnx("%s", line);
}

static void
log_expired(void *ctx, const struct queue_entry *e)
{
	char hex[QUEUE_ID_HEX_LEN + 1];

	(void)ctx;
	id_hex(e->id, hex);
	log_warnx("change %s for %s to peer %s given up after %u tries: "
	    "older than max-age; last error: %s", hex, e->user, e->peer,
	    e->attempts, e->last_error[0] != '\0' ? e->last_error : "none");
}

void
outbound_housekeeping(struct psyncd *d)
{
	struct queue_peer_status st;
	struct psync_err err;
	size_t i;

	if (queue_expire(d->q, log_expired, NULL, &err) == -1)
		log_warnx("queue: expiry: %s", err.msg);
	for (i = 0; i < d->conf->n_peers; i++) {
		if (queue_peer_status(d->q, d->conf->peers[i].name, &st,
		    &err) == -1)
			continue;
		if (d->conf->queue.warn_depth != 0 &&
		    st.depth > d->conf->queue.warn_depth)
			log_warnx("queue: %lu changes wait for peer %s (more "
			    "than warn-depth %u)", st.depth,
			    d->conf->peers[i].name, d->conf->queue.warn_depth);
		if (d->conf->queue.warn_age != 0 && st.oldest_age_ms >
		    (uint64_t)d->conf->queue.warn_age * 1000)
			log_warnx("queue: the oldest change for peer %s waits "
			    "for %llu s (more than warn-age %u s)",
			    d->conf->peers[i].name,
			    (unsigned long long)(st.oldest_age_ms / 1000),
			    d->conf->queue.warn_age);
	}
}

int
outbound_send_test(struct psyncd *d, const char *user, const char *peer, const char *password,
    struct sbuf *out)
{
	const struct peer_conf *pc;
	struct policy_request req;
	struct policy_verdict v;
	struct account acct;
	struct psync_err err;
	struct frame f;
	uint8_t id[FRAME_ID_LEN];
	char hex[QUEUE_ID_HEX_LEN + 1];
	const char *targets[1];
	int found, rc = -1;

	memset(&acct, 0, sizeof(acct));
	memset(&f, 0, sizeof(f));
	pc = config_find_peer(d->conf, peer);
	if (pc == NULL) {
		sbuf_printf(out, "no peer '%s' in %s\n", peer, d->conf->path);
		goto done;
	}
	if (!(pc->direction & DIR_SEND)) {
		sbuf_printf(out, "peer %s is configured direction = receive: "
		    "nothing is sent to it\n", peer);
		goto done;
	}
	found = names_valid(user) ? account_lookup(&d->conf->store, user,
	    d->conf->policy.case_ignore_name, &acct, &err) : 1;
	memset(&req, 0, sizeof(req));
	req.user = user;
	req.account = found == 0 ? &acct : NULL;
	req.peer = pc;
	req.direction = POLICY_OUTBOUND;
	req.password = password;
	if (policy_check(d->pol, &req, &v, NULL, NULL) != PSYNC_OK) {
		if (v.msgno != 0)
			log_warnx("%d: test change for %s not sent to peer %s: "
			    "code %d (%s): %s", v.msgno, user, peer, v.code,
			    code_reason(v.code), v.reason);
		sbuf_printf(out, "refused by the policy: code %d (%s)%s%.0d: "
		    "%s\n", v.code, code_reason(v.code), v.msgno ? ", log " :
		    "", v.msgno, v.reason);
		goto done;
	}
	if (RAND_bytes(id, sizeof(id)) != 1 || frame_set_change(&f, id,
	    d->conf->node_name, clock_wall_ms(), user, FRAME_SECRET_CLEARTEXT,
	    password, strlen(password), &err) == -1) {
		sbuf_printf(out, "cannot build the change: %s\n",
		    err.msg);
		goto done;
	}
	targets[0] = pc->name;
	if (queue_add(d->q, &f.u.change, NULL, targets, 1, &err) == -1) {
		sbuf_printf(out, "cannot queue the change: %s\n", err.msg);
		goto done;
	}
	id_hex(id, hex);
	log_info("test change %s for %s queued for peer %s", hex, user, peer);
	sbuf_printf(out, "change %s for %s queued for peer %s\n", hex, user,
	    peer);
	d->deliver_soon = true;
	rc = 0;
done:
	frame_wipe(&f);
	account_clear(&acct);
	return rc;
}
