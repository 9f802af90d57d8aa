/*
 * Changes that peers send: the network child hands them over as INBOUND,
 * the monitor collects what arrived together into one batch, and this file
 * judges each (peer, name, already applied, newer than what we have,
 * policy) and applies the rest to the store in one go, answering each.
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

void
inbound_batch(struct psyncd *d, struct pending_in *pend, size_t n)
{
	struct inb *bs = NULL;
	struct judge_item *items = NULL;
	struct store_env env;
	struct psync_err err;
	const char *targets[256];
	size_t *map = NULL;
	size_t i, j, nj = 0, nt;

	bs = calloc(n, sizeof(*bs));
	items = calloc(n, sizeof(*items));
	map = calloc(n, sizeof(*map));
	if (bs == NULL || items == NULL || map == NULL) {
		for (i = 0; i < n; i++)
			monitor_answer(d, pend[i].reqid, PSYNC_E_UPDATE_FAILED,
			    "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		bs[i].p = &pend[i];
		bs[i].live = inbound_precheck(d, &bs[i]);
	}
	inbound_canonical(d, bs, n);
	for (i = 0; i < n; i++)
		if (bs[i].live)
			bs[i].live = inbound_history(d, &bs[i]);
	/* Two changes for one user in a batch: the newer wins. */
	for (i = 0; i < n; i++) {
		for (j = 0; j < n && bs[i].live; j++) {
			if (i == j || !bs[j].live || bs[j].p->in.mepp_type == 2 ||
			    bs[i].p->in.mepp_type == 2 ||
			    strcmp(bs[i].local, bs[j].local) != 0)
				continue;
			/* Answered once the newer one's fate is known. */
			if (queue_change_cmp(bs[i].p->in.change.time_ms,
			    bs[i].p->in.change.id, bs[j].p->in.change.time_ms,
			    bs[j].p->in.change.id) < 0) {
				bs[i].live = false;
				bs[i].beaten_by = j + 1;
			}
		}
	}
	/* Judge and apply the rest together (lib/judge.c). */
	for (i = 0; i < n; i++) {
		const struct change *c = &bs[i].p->in.change;

		if (!bs[i].live)
			continue;
		items[nj].user = bs[i].local;
		items[nj].peer = bs[i].peer;
		items[nj].kind = c->secret_kind == CHANGE_SECRET_CRYPT ?
		    STORE_SECRET_HASH : STORE_SECRET_CLEARTEXT;
		items[nj].secret = (const char *)c->secret;
		items[nj].check_only = bs[i].p->in.mepp_type == 2;
		map[nj++] = i;
	}
	memset(&env, 0, sizeof(env));
	env.q = d->q;
	env.host_key = d->host_key;
	env.now_ms = clock_wall_ms();
	if (nj > 0)
		(void)judge_apply(d->conf, d->pol, &env, items, nj);
	for (j = 0; j < nj; j++) {
		struct judge_item *it = &items[j];
		struct inb *b = &bs[map[j]];
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
	for (i = 0; i < n; i++) {
		size_t w = i, hops = 0;

		if (bs[i].beaten_by == 0)
			continue;
		while (bs[w].beaten_by != 0 && hops++ < n)
			w = bs[w].beaten_by - 1;
		if (bs[w].code == PSYNC_OK)
			monitor_answer(d, bs[i].p->reqid, PSYNC_OK,
			    "superseded");
		else
			monitor_answer(d, bs[i].p->reqid, bs[w].code, "a newer "
			    "change for %s failed here: %s", bs[i].local,
			    bs[w].reason);
	}
done:
	if (items != NULL)
		secure_wipe(items, n * sizeof(*items));
	free(bs);
	free(items);
	free(map);
}
