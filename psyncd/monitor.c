/*
 * The one place that reads the network child. Everything the child says
 * is hostile input: pmsg_decode() checks the bytes (one layout per type,
 * every length and range), and the table below says which types the child
 * may send and which handler takes each. The handlers check the meaning
 * (the peer exists, may send to us, speaks that protocol) before anything
 * is applied. A malformed message stops the child and psyncd.
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

void
monitor_child_dead(struct psyncd *d, const char *why)
{
	log_warnx("network child: %s; stopping it and psyncd", why);
	if (d->child_pid > 0)
		(void)kill(d->child_pid, SIGKILL);
	d->fatal = true;
}

void
monitor_answer(struct psyncd *d, uint32_t reqid, int code, const char *fmt, ...)
{
	struct pmsg m;
	va_list ap;

	memset(&m, 0, sizeof(m));
	m.type = PMSG_INBOUND_RESULT;
	m.reqid = reqid;
	m.u.iresult.code = (uint16_t)code;
	va_start(ap, fmt);
	vsnprintf(m.u.iresult.reason, sizeof(m.u.iresult.reason), fmt, ap);
	va_end(ap);
	monitor_send(d, &m);
}

void
monitor_send(struct psyncd *d, struct pmsg *m)
{
	struct psync_err err;

	if (pmsg_write(d->child_fd, m, &err) == -1)
		log_warnx("cannot talk to the network child: %s", err.msg);
	pmsg_wipe(m);
}

/* What the child said that the loop acts on after reading it all. */
struct monitor_batch {
	struct pending_in	*pend;
	size_t			 n;
};

const struct peer_conf *
monitor_inbound_peer(struct psyncd *d, const struct pmsg_inbound *in)
{
	const struct peer_conf *pc = config_find_peer(d->conf, in->peer);

	if (pc == NULL || pc->protocol != in->protocol ||
	    !(pc->direction & DIR_RECEIVE))
		return NULL;
	return pc;
}

/* A change from a peer: only a configured peer of that protocol that
   sends to us; the rest is judged with the batch (inbound.c). */
static void
on_inbound(struct psyncd *d, struct monitor_batch *b, const struct pmsg *m)
{
	const struct pmsg_inbound *in = &m->u.inbound;
	const struct peer_conf *pc = config_find_peer(d->conf, in->peer);

	if (pc == NULL || pc->protocol != in->protocol) {
		log_warnx("network child sent a change from '%s', which is "
		    "not a configured %s peer; refused", in->peer,
		    in->protocol == PROTO_MEPP ? "MEPP" : "psync");
		monitor_answer(d, m->reqid, PSYNC_E_REFUSED, "unknown peer");
		return;
	}
	if (!(pc->direction & DIR_RECEIVE)) {
		log_warnx("peer %s sent a change for %s, but it is configured "
		    "direction = send; refused", in->peer, in->change.user);
		monitor_answer(d, m->reqid, PSYNC_E_REFUSED, "this node does "
		    "not take changes from %s", in->peer);
		return;
	}
	b->pend[b->n].reqid = m->reqid;
	b->pend[b->n].in = m->u.inbound;
	if (++b->n == INBOUND_BATCH_MAX) {
		inbound_batch(d, b->pend, b->n);
		secure_wipe(b->pend, b->n * sizeof(*b->pend));
		b->n = 0;
	}
}

static void
on_delivery_result(struct psyncd *d, struct monitor_batch *b,
    const struct pmsg *m)
{
	(void)b;
	outbound_result(d, &m->u.dresult);
}

static void
on_verify_result(struct psyncd *d, struct monitor_batch *b,
    const struct pmsg *m)
{
	(void)b;
	control_verify_result(d, m->reqid, &m->u.vresult);
}

/* A rotatable psync peer of the configuration, or NULL. */
static const struct peer_conf *
rotation_peer(struct psyncd *d, const char *name)
{
	const struct peer_conf *pc = config_find_peer(d->conf, name);

	return pc != NULL && rotatable(pc) ? pc : NULL;
}

static void
on_key_proposed(struct psyncd *d, struct monitor_batch *b,
    const struct pmsg *m)
{
	const struct pmsg_key_proposed *kp = &m->u.kproposed;

	(void)b;
	if (rotation_peer(d, kp->peer) == NULL) {
		log_warnx("peer %s: key proposal refused: not a psync peer "
		    "with a key file here", kp->peer);
		monitor_answer(d, m->reqid, PSYNC_E_REFUSED, "%s is not a psync "
		    "peer with a key file here", kp->peer);
		return;
	}
	rotation_proposed(d, m->reqid, kp);
}

static void
on_key_result(struct psyncd *d, struct monitor_batch *b, const struct pmsg *m)
{
	(void)b;
	rotation_result(d, m->reqid, &m->u.kresult);
}

static void
on_key_used(struct psyncd *d, struct monitor_batch *b, const struct pmsg *m)
{
	(void)b;
	if (rotation_peer(d, m->u.kused.peer) == NULL) {
		log_warnx("network child: a handshake with '%s' used a next "
		    "key, but it is not a psync peer with a key file; ignored",
		    m->u.kused.peer);
		return;
	}
	rotation_used(d, &m->u.kused);
}

/*
 * Every message the child may send, and when. The child gets its first
 * peer table right after it starts (CHILD_RUNNING); after SHUTDOWN
 * (CHILD_STOPPING) results are still recorded, but no new change is
 * taken. A type not in the table is refused by pmsg_decode() already.
 */
#define MON_RUNNING	0x1
#define MON_STOPPING	0x2
static const struct {
	uint32_t	type;
	void		(*fn)(struct psyncd *, struct monitor_batch *,
			    const struct pmsg *);
	unsigned int	when;
} handlers[] = {
	{ PMSG_INBOUND,		on_inbound,		MON_RUNNING },
	{ PMSG_DELIVERY_RESULT,	on_delivery_result,	MON_RUNNING | MON_STOPPING },
	{ PMSG_VERIFY_RESULT,	on_verify_result,	MON_RUNNING | MON_STOPPING },
	{ PMSG_KEY_PROPOSED,	on_key_proposed,	MON_RUNNING },
	{ PMSG_KEY_RESULT,	on_key_result,		MON_RUNNING | MON_STOPPING },
	{ PMSG_KEY_USED,	on_key_used,		MON_RUNNING },
};

/* Hand one decoded message to its handler; false: the child broke a rule. */
static bool
dispatch(struct psyncd *d, struct monitor_batch *b, const struct pmsg *m)
{
	unsigned int now = d->child_state == CHILD_STOPPING ? MON_STOPPING :
	    MON_RUNNING;
	size_t i;

	for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++) {
		if (handlers[i].type != m->type)
			continue;
		if (!(handlers[i].when & now)) {
			log_debug("network child: %s while stopping; ignored",
			    pmsg_type_name(m->type));
			return true;
		}
		handlers[i].fn(d, b, m);
		return true;
	}
	return false;
}

void
monitor_readable(struct psyncd *d)
{
	struct monitor_batch b;
	struct psync_err err;
	struct pmsg m;
	ssize_t r;
	long used;
	size_t off;

	b.n = 0;
	b.pend = calloc(INBOUND_BATCH_MAX, sizeof(*b.pend));
	if (b.pend == NULL) {
		monitor_child_dead(d, "out of memory");
		return;
	}
	/* Drain everything there is, so that inbound changes form one batch. */
	for (;;) {
		r = read(d->child_fd, d->rbuf + d->rlen, RBUF_CAP - d->rlen);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			monitor_child_dead(d, r == 0 ? "closed its channel" :
			    strerror(errno));
			goto done;
		}
		d->rlen += (size_t)r;
		off = 0;
		for (;;) {
			used = pmsg_decode(d->rbuf + off, d->rlen - off,
			    PMSG_FROM_CHILD, &m, &err);
			if (used == -1) {
				monitor_child_dead(d, err.msg);
				goto done;
			}
			if (used == 0)
				break;
			off += (size_t)used;
			if (!dispatch(d, &b, &m)) {
				monitor_child_dead(d, "a message no handler "
				    "takes");
				pmsg_wipe(&m);
				goto done;
			}
			pmsg_wipe(&m);
		}
		memmove(d->rbuf, d->rbuf + off, d->rlen - off);
		secure_wipe(d->rbuf + (d->rlen - off), off);
		d->rlen -= off;
	}
	if (b.n > 0)
		inbound_batch(d, b.pend, b.n);
done:
	secure_wipe(b.pend, INBOUND_BATCH_MAX * sizeof(*b.pend));
	free(b.pend);
}
