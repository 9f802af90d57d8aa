/*
 * Changes that peers send: the network child hands them over as INBOUND,
 * the monitor collects what arrived together into one batch, and this file
 * judges each (peer, name, already applied, newer than what we have,
 * policy) and applies the rest to the store in one go, answering each.
 */
#include "config.h"

#include <pthread.h>

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
#include "judge.h"

/* One change in an inbound batch, after the checks that need no store. */
struct inb {
	struct pending_in	*p;
	const struct peer_conf	*peer;
	char			 local[NAME_MAX_LEN];
	bool			 live;	/* still to be applied */
	char			 hex[QUEUE_ID_HEX_LEN + 1];
	size_t			 beaten_by;	/* 1 + the newer change's index */
	int			 code;		/* what it was answered */
	char			 reason[PMSG_TEXT_MAX + 1];
};

/* Answer a change of the batch, and remember the answer. */
static void __attribute__((format(printf, 4, 5)))
inb_answer(struct psyncd *d, struct inb *b, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->reason, sizeof(b->reason), fmt, ap);
	va_end(ap);
	b->code = code;
	monitor_answer(d, b->p->reqid, code, "%s", b->reason);
}

static bool
inbound_precheck(struct psyncd *d, struct inb *b)
{
	struct pmsg_inbound *in = &b->p->in;
	struct change *c = &in->change;

	/* monitor.c let only changes from receiving peers through. */
	b->peer = monitor_inbound_peer(d, in);
	if (b->peer == NULL) {
		monitor_answer(d, b->p->reqid, PSYNC_E_REFUSED, "unknown peer");
		return false;
	}
	if (in->protocol == PROTO_MEPP) {
		/* MEPP carries no id and no time: this is a fresh change. */
		if (RAND_bytes(c->id, FRAME_ID_LEN) != 1) {
			monitor_answer(d, b->p->reqid, PSYNC_E_UPDATE_FAILED,
			    "no random id");
			return false;
		}
		c->time_ms = clock_wall_ms();
		str_copy(c->origin, in->peer, sizeof(c->origin));
	}
	id_hex(c->id, b->hex);
	if (policy_local_name(d->pol, c->user, b->local, sizeof(b->local)) ==
	    -1 || !names_valid(b->local)) {
		log_warnx("peer %s sent change %s for '%s', which is not a "
		    "valid user name; refused", in->peer, b->hex, c->user);
		monitor_answer(d, b->p->reqid, PSYNC_E_BAD_USER, "not a valid user name");
		return false;
	}
	return true;
}

/*
 * With case-ignore-name, "ALICE" and "alice" are one account: newer and
 * older are judged on the account's own spelling, found for the whole
 * batch in one pass over the account files.
 */
static void
inbound_canonical(struct psyncd *d, struct inb *bs, size_t n)
{
	struct account *accts;
	const char **names;
	struct psync_err err;
	int *rc;
	size_t i;

	if (!d->conf->policy.case_ignore_name)
		return;
	accts = calloc(n, sizeof(*accts));
	names = calloc(n, sizeof(*names));
	rc = calloc(n, sizeof(*rc));
	if (accts == NULL || names == NULL || rc == NULL)
		goto done;
	for (i = 0; i < n; i++)
		names[i] = bs[i].local;
	if (account_lookup_many(&d->conf->store, names, n, true, accts, rc,
	    &err) == -1) {
		log_warnx("store: %s", err.msg);
		goto done;
	}
	for (i = 0; i < n; i++)
		if (bs[i].live && rc[i] == 0)
			str_copy(bs[i].local, accts[i].name,
			    sizeof(bs[i].local));
done:
	for (i = 0; accts != NULL && rc != NULL && i < n; i++)
		if (rc[i] == 0)
			account_clear(&accts[i]);
	free(accts);
	free(names);
	free(rc);
}

/* What the queue knows: made here, applied before, or older. */
static bool
inbound_history(struct psyncd *d, struct inb *b)
{
	struct pmsg_inbound *in = &b->p->in;
	struct change *c = &in->change;
	struct psync_err err;
	uint64_t t;
	uint8_t nid[FRAME_ID_LEN];
	int rc;

	if (in->mepp_type == 2)
		return true;
	/* A stamp from the future would win over every later change. */
	if (in->protocol != PROTO_MEPP && clock_too_far_ahead(d, in->peer,
	    c->time_ms)) {
		monitor_answer(d, b->p->reqid, PSYNC_E_TOO_RECENT, "change "
		    "stamped %llu s ahead of %s's clock (max-clock-skew %u s): "
		    "is the clock of %s right?", (unsigned long long)
		    ((c->time_ms - clock_wall_ms()) / 1000), d->conf->node_name,
		    d->conf->policy.max_clock_skew, in->peer);
		return false;
	}
	if (strcmp(c->origin, d->conf->node_name) == 0) {
		monitor_answer(d, b->p->reqid, PSYNC_OK, "already applied (made here)");
		return false;
	}
	rc = queue_applied_has(d->q, c->id, &err);
	if (rc == 1) {
		monitor_answer(d, b->p->reqid, PSYNC_OK, "already applied");
		return false;
	}
	if (rc == -1 || (rc = queue_user_newest(d->q, b->local, &t, nid,
	    &err)) == -1) {
		log_warnx("queue: %s", err.msg);
		monitor_answer(d, b->p->reqid, PSYNC_E_UPDATE_FAILED, "queue error");
		return false;
	}
	/* A stamp from the future that is already in the queue (older
	   versions took them) no longer keeps this user's changes out. */
	if (rc == 1 && !clock_stamp_believable(d, t))
		rc = 0;
	if (rc == 1 && queue_change_cmp(c->time_ms, c->id, t, nid) < 0) {
		log_info("change %s for %s from peer %s is older than the "
		    "newest one here: superseded", b->hex, b->local, in->peer);
		monitor_answer(d, b->p->reqid, PSYNC_OK, "superseded");
		return false;
	}
	return true;
}

static void
inbound_refused(struct psyncd *d, struct inb *b, const struct judge_item *v)
{
	if (v->msgno != 0)
		log_warnx("%d: change %s for %s from peer %s refused: code %d "
		    "(%s): %s", v->msgno, b->hex, b->local, b->p->in.peer,
		    v->code, code_reason(v->code), v->reason);
	else
		log_warnx("change %s for %s from peer %s refused: code %d "
		    "(%s): %s", b->hex, b->local, b->p->in.peer, v->code,
		    code_reason(v->code), v->reason);
	inb_answer(d, b, v->code, "%s", v->reason);
}

/* One batch on its way through the three stages below. */
struct inbound_job {
	struct pending_in	*pend;		/* the batch (a copy: secrets) */
	size_t			 n;
	struct inb		*bs;
	struct judge_item	*items;
	size_t			*map;
	size_t			 nj;
	const struct psync_config *conf;	/* as of stage 1 */
	const struct policy	*pol;
	struct store_env	 env;
	pthread_t		 thread;
};

static void
job_free(struct inbound_job *j)
{
	if (j == NULL)
		return;
	if (j->pend != NULL)
		secure_wipe(j->pend, j->n * sizeof(*j->pend));
	if (j->items != NULL)
		secure_wipe(j->items, j->n * sizeof(*j->items));
	free(j->pend);
	free(j->bs);
	free(j->items);
	free(j->map);
	free(j);
}

/*
 * Stage 1, on the loop: everything that asks the queue (applied ids,
 * newer changes, the echo window) and the newest-in-batch rule. Answers
 * what it settles; the rest becomes judge items. NULL when nothing is
 * left to judge (or out of memory, everything answered).
 */
static struct inbound_job *
job_prepare(struct psyncd *d, const struct pending_in *pend, size_t n)
{
	struct inbound_job *j;
	struct psync_err err;
	size_t i, k;

	j = calloc(1, sizeof(*j));
	if (j != NULL) {
		j->n = n;
		j->pend = calloc(n, sizeof(*j->pend));
		j->bs = calloc(n, sizeof(*j->bs));
		j->items = calloc(n, sizeof(*j->items));
		j->map = calloc(n, sizeof(*j->map));
	}
	if (j == NULL || j->pend == NULL || j->bs == NULL || j->items == NULL ||
	    j->map == NULL) {
		for (i = 0; i < n; i++)
			monitor_answer(d, pend[i].reqid, PSYNC_E_UPDATE_FAILED,
			    "out of memory");
		job_free(j);
		return NULL;
	}
	memcpy(j->pend, pend, n * sizeof(*pend));
	for (i = 0; i < n; i++) {
		j->bs[i].p = &j->pend[i];
		j->bs[i].live = inbound_precheck(d, &j->bs[i]);
	}
	inbound_canonical(d, j->bs, n);
	for (i = 0; i < n; i++)
		if (j->bs[i].live)
			j->bs[i].live = inbound_history(d, &j->bs[i]);
	/* Two changes for one user in a batch: the newer wins. */
	for (i = 0; i < n; i++) {
		struct inb *bi = &j->bs[i];

		for (k = 0; k < n && bi->live; k++) {
			struct inb *bk = &j->bs[k];

			if (i == k || !bk->live || bk->p->in.mepp_type == 2 ||
			    bi->p->in.mepp_type == 2 ||
			    strcmp(bi->local, bk->local) != 0)
				continue;
			/* Answered once the newer one's fate is known. */
			if (queue_change_cmp(bi->p->in.change.time_ms,
			    bi->p->in.change.id, bk->p->in.change.time_ms,
			    bk->p->in.change.id) < 0) {
				bi->live = false;
				bi->beaten_by = k + 1;
			}
		}
	}
	for (i = 0; i < n; i++) {
		const struct change *c = &j->bs[i].p->in.change;
		struct judge_item *it = &j->items[j->nj];

		if (!j->bs[i].live)
			continue;
		it->user = j->bs[i].local;
		it->peer = j->bs[i].peer;
		it->kind = c->secret_kind == CHANGE_SECRET_CRYPT ?
		    STORE_SECRET_HASH : STORE_SECRET_CLEARTEXT;
		it->secret = (const char *)c->secret;
		it->check_only = j->bs[i].p->in.mepp_type == 2;
		/*
		 * The verify against the stored hash ("unchanged") is what ends
		 * an echo; it is worth its cost only when one is plausible:
		 * this node sent or applied a change for the user lately.
		 */
		it->no_echo = queue_user_recent(d->q, j->bs[i].local,
		    QUEUE_ECHO_WINDOW, &err) == 0;
		j->map[j->nj++] = i;
	}
	j->conf = d->conf;
	j->pol = d->pol;
	j->env.q = d->q;
	j->env.host_key = d->host_key;
	j->env.now_ms = clock_wall_ms();
	return j;
}

/* Stage 2: the policy and the store, hashing included. */
static void
job_run(struct inbound_job *j)
{
	if (j->nj > 0)
		(void)judge_apply(j->conf, j->pol, &j->env, j->items, j->nj);
}

/* Stage 3, on the loop: record, relay and answer. */
static void
job_finish(struct psyncd *d, struct inbound_job *j)
{
	struct psync_err err;
	const char *targets[256];
	size_t i, k, nt;

	for (k = 0; k < j->nj; k++) {
		struct judge_item *it = &j->items[k];
		struct inb *b = &j->bs[j->map[k]];
		struct change *c = &b->p->in.change;

		str_copy(b->local, it->local, sizeof(b->local));
		if (!it->judged) {
			inbound_refused(d, b, it);
			continue;
		}
		if (it->check_only) {
			inb_answer(d, b, PSYNC_OK, "would be accepted");
			continue;
		}
		if (it->outcome == STORE_FAILED) {
			if (it->code == PSYNC_E_NO_USER)
				log_warnx("%d: change %s from peer %s: no "
				    "user %s here: %s", PSYNC_MSG_NO_USER,
				    b->hex, b->p->in.peer, b->local,
				    it->reason);
			else
				log_warnx("change %s for %s from peer %s not "
				    "applied: code %d (%s): %s", b->hex,
				    b->local, b->p->in.peer, it->code,
				    code_reason(it->code), it->reason);
			inb_answer(d, b, it->code, "%s", it->reason);
			continue;
		}
		if (queue_applied_add(d->q, c->id, b->local, c->time_ms,
		    c->origin, &err) == -1)
			log_warnx("queue: recording change %s as applied: %s",
			    b->hex, err.msg);
		log_info("change %s for %s from peer %s: %s", b->hex, b->local,
		    b->p->in.peer, store_outcome_name(it->outcome));
		/* Relay to the peers that want changes from others. */
		str_copy(c->user, b->local, sizeof(c->user));
		nt = intake_targets(d, c, b->p->in.peer, targets,
		    sizeof(targets) / sizeof(targets[0]));
		if (nt > 0 && queue_add(d->q, c, b->p->in.peer, targets, nt,
		    &err) == -1)
			log_warnx("queue: cannot queue change %s for relay: "
			    "%s", b->hex, err.msg);
		if (nt > 0)
			d->deliver_soon = true;
		inb_answer(d, b, PSYNC_OK, "%s",
		    store_outcome_name(it->outcome));
	}
	/*
	 * An older change beaten by a newer one in the same batch is
	 * superseded only if the newer one took; otherwise it gets the newer
	 * one's failure, so that its sender tries again.
	 */
	for (i = 0; i < j->n; i++) {
		size_t w = i, hops = 0;

		if (j->bs[i].beaten_by == 0)
			continue;
		while (j->bs[w].beaten_by != 0 && hops++ < j->n)
			w = j->bs[w].beaten_by - 1;
		if (j->bs[w].code == PSYNC_OK)
			monitor_answer(d, j->bs[i].p->reqid, PSYNC_OK,
			    "superseded");
		else
			monitor_answer(d, j->bs[i].p->reqid, j->bs[w].code,
			    "a newer change for %s failed here: %s",
			    j->bs[i].local, j->bs[w].reason);
	}
}

void
inbound_batch(struct psyncd *d, struct pending_in *pend, size_t n)
{
	struct inbound_job *j = job_prepare(d, pend, n);

	if (j == NULL)
		return;
	job_run(j);
	job_finish(d, j);
	job_free(j);
}

/* ---- the applier: stage 2 off the loop -------------------------------- */

static void *
applier_thread(void *arg)
{
	struct psyncd *d = arg;
	uint64_t one = 1;

	job_run(d->job);
	if (write(d->job_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
		log_warn("inbound: cannot wake the loop");
	return NULL;
}

void
inbound_submit(struct psyncd *d, const struct pending_in *pend, size_t n)
{
	struct pending_in *grown;
	size_t i;

	for (i = 0; i < n; i++) {
		if (d->in_wait_n == INBOUND_WAIT_MAX) {
			/* Bounded: the sender keeps it and tries again. */
			monitor_answer(d, pend[i].reqid, PSYNC_E_UPDATE_FAILED,
			    "busy applying earlier changes; try again");
			continue;
		}
		if (d->in_wait_n == d->in_wait_cap) {
			size_t cap = d->in_wait_cap == 0 ? 64 :
			    d->in_wait_cap * 2;

			grown = calloc(cap, sizeof(*grown));
			if (grown == NULL) {
				monitor_answer(d, pend[i].reqid,
				    PSYNC_E_UPDATE_FAILED, "out of memory");
				continue;
			}
			if (d->in_wait_n > 0)
				memcpy(grown, d->in_wait,
				    d->in_wait_n * sizeof(*grown));
			if (d->in_wait != NULL)
				secure_wipe(d->in_wait,
				    d->in_wait_cap * sizeof(*grown));
			free(d->in_wait);
			d->in_wait = grown;
			d->in_wait_cap = cap;
		}
		d->in_wait[d->in_wait_n++] = pend[i];
	}
	inbound_kick(d);
}

void
inbound_kick(struct psyncd *d)
{
	struct inbound_job *j;
	size_t n;

	while (d->job == NULL && d->in_wait_n > 0) {
		n = d->in_wait_n < INBOUND_BATCH_MAX ? d->in_wait_n :
		    INBOUND_BATCH_MAX;
		j = job_prepare(d, d->in_wait, n);
		memmove(d->in_wait, d->in_wait + n,
		    (d->in_wait_n - n) * sizeof(*d->in_wait));
		d->in_wait_n -= n;
		secure_wipe(d->in_wait + d->in_wait_n, n * sizeof(*d->in_wait));
		if (j == NULL)
			continue;
		/*
		 * The samba store writes its echo notes into the queue, which
		 * only the loop may touch, and hashes nothing itself: it
		 * stays on the loop. The others hash in the applier.
		 */
		if (j->nj == 0 || d->conf->store.type == STORE_SAMBA ||
		    d->job_fd == -1) {
			job_run(j);
			job_finish(d, j);
			job_free(j);
			continue;
		}
		j->env.q = NULL;
		d->job = j;
		if (pthread_create(&j->thread, NULL, applier_thread, d) != 0) {
			log_warnx("inbound: cannot start the applier thread; "
			    "applying on the loop");
			d->job = NULL;
			job_run(j);
			job_finish(d, j);
			job_free(j);
		}
	}
}

void
inbound_applied(struct psyncd *d)
{
	uint64_t v;
	struct inbound_job *j = d->job;

	while (read(d->job_fd, &v, sizeof(v)) == (ssize_t)sizeof(v))
		;
	if (j == NULL)
		return;
	pthread_join(j->thread, NULL);
	d->job = NULL;
	job_finish(d, j);
	job_free(j);
	/* A reload during the job kept the old configuration for it. */
	policy_free(d->retired_pol);
	config_free(d->retired_conf);
	d->retired_pol = NULL;
	d->retired_conf = NULL;
	inbound_kick(d);
}

/* ---- clocks ---------------------------------------------------------- */

bool
clock_stamp_believable(const struct psyncd *d, uint64_t t)
{
	return t <= clock_wall_ms() +
	    (uint64_t)d->conf->policy.max_clock_skew * 1000;
}

/*
 * A peer's change stamped t: note how far ahead of our clock it is (for
 * psyncctl status), and say whether it is too far. The warning is
 * rate-limited per peer (log_peer_warnx).
 */
bool
clock_too_far_ahead(struct psyncd *d, const char *peer, uint64_t t)
{
	uint64_t now = clock_wall_ms();
	struct peer_clock *pc = NULL;
	size_t i;

	for (i = 0; i < d->n_clocks; i++)
		if (strcmp(d->clocks[i].peer, peer) == 0)
			pc = &d->clocks[i];
	if (pc == NULL && d->n_clocks < PEER_CLOCKS_MAX) {
		pc = &d->clocks[d->n_clocks++];
		str_copy(pc->peer, peer, sizeof(pc->peer));
	}
	if (pc != NULL) {
		pc->ahead_ms = t > now ? (int64_t)(t - now) : 0;
		pc->seen_ms = now;
	}
	if (clock_stamp_believable(d, t))
		return false;
	log_peer_warnx(peer, "peer %s: a change is stamped %llu s ahead of "
	    "this node's clock, more than max-clock-skew (%u s): refused with "
	    "%d until the clocks agree", peer, (unsigned long long)
	    ((t - now) / 1000), d->conf->policy.max_clock_skew,
	    PSYNC_E_TOO_RECENT);
	return true;
}
