/*
 * psyncd's network child: the start (re-executed by the parent with
 * "-R net"), dropping privileges, the peer table, the channel to the
 * parent, and the per-peer delivery workers. What each protocol does on
 * the wire is in its own file behind net_protos[] (net.h).
 *
 * Threads: the main thread reads the parent's messages; each protocol's
 * listener runs its own threads; one worker per peer delivers outbound
 * changes; a channel check (VERIFY) gets a short-lived thread; one thread
 * reads the resolver's answers. Every write to the parent is one whole
 * message under one mutex.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codes.h"
#include "config_file.h"
#include "frame.h"
#include "log.h"
#include "mepp.h"
#include "net.h"
#include "pmsg.h"

/* Every peer protocol; a new one is one file and one row. */
const struct net_proto *const net_protos[] = {
	&net_psync,
	&net_mepp,
	NULL,
};

const struct net_proto *
net_proto_of(int protocol)
{
	size_t i;

	for (i = 0; net_protos[i] != NULL; i++)
		if (net_protos[i]->protocol == protocol)
			return net_protos[i];
	return NULL;
}

int
net_send_parent(struct net *n, struct pmsg *m)
{
	struct psync_err err;
	int rc;

	pthread_mutex_lock(&n->write_lock);
	rc = pmsg_write(n->sock, m, &err);
	pthread_mutex_unlock(&n->write_lock);
	if (rc == -1)
		log_warnx("network child: %s", err.msg);
	pmsg_wipe(m);
	return rc;
}

/* Copy a peer's entry out of the table; 0 found, -1 not. */
int
net_peer_copy(struct net *n, const char *name, struct pmsg_peer *out)
{
	size_t i;
	int rc = -1;

	pthread_mutex_lock(&n->lock);
	for (i = 0; i < n->n_peers; i++) {
		if (strcmp(n->peers[i].name, name) == 0) {
			*out = n->peers[i];
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&n->lock);
	return rc;
}

void
net_deadline(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Register waiters first, then send, so that no answer is missed. */
void
net_waiter_add(struct net *n, struct waiter *w)
{
	pthread_mutex_lock(&n->lock);
	w->reqid = ++n->next_reqid;
	if (w->reqid == 0)
		w->reqid = ++n->next_reqid;
	w->done = false;
	w->next = n->waiters;
	n->waiters = w;
	pthread_mutex_unlock(&n->lock);
}

/* Wait for every waiter of the array (until the deadline), then unlink
   them; one that got no answer reads code 25. */
void
net_waiters_wait(struct net *n, struct waiter *ws, size_t count, int timeout_ms)
{
	struct timespec ts;
	struct waiter **pp;
	size_t i;
	bool all;

	net_deadline(&ts, timeout_ms);
	pthread_mutex_lock(&n->lock);
	for (;;) {
		all = true;
		for (i = 0; i < count; i++)
			if (!ws[i].done)
				all = false;
		if (all || atomic_load(&n->stopping))
			break;
		if (pthread_cond_timedwait(&n->cond, &n->lock, &ts) == ETIMEDOUT)
			break;
	}
	for (i = 0; i < count; i++) {
		if (!ws[i].done) {
			ws[i].code = PSYNC_E_UPDATE_FAILED;
			str_copy(ws[i].reason, "no answer from psyncd's parent "
			    "process", sizeof(ws[i].reason));
		}
		for (pp = &n->waiters; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == &ws[i]) {
				*pp = ws[i].next;
				break;
			}
		}
	}
	pthread_mutex_unlock(&n->lock);
}

void
net_waiter_answer(struct net *n, uint32_t reqid, int code, const char *reason)
{
	struct waiter *w;

	pthread_mutex_lock(&n->lock);
	for (w = n->waiters; w != NULL; w = w->next) {
		if (w->reqid == reqid) {
			w->code = code;
			str_copy(w->reason, reason, sizeof(w->reason));
			w->done = true;
			pthread_cond_broadcast(&n->cond);
			break;
		}
	}
	pthread_mutex_unlock(&n->lock);
	if (w == NULL)
		log_debug("network child: answer for request %u that nobody "
		    "waits for any more", reqid);
}

void
net_report(struct net *n, const uint8_t id[FRAME_ID_LEN], const char *peer, int code,
    const char *reason)
{
	struct pmsg m;

	memset(&m, 0, sizeof(m));
	m.type = PMSG_DELIVERY_RESULT;
	memcpy(m.u.dresult.id, id, FRAME_ID_LEN);
	str_copy(m.u.dresult.peer, peer, sizeof(m.u.dresult.peer));
	m.u.dresult.code = code;
	str_copy(m.u.dresult.reason, reason, sizeof(m.u.dresult.reason));
	(void)net_send_parent(n, &m);
}

void
net_key_result(struct net *n, uint32_t reqid, const char *peer, uint32_t id, int code,
    const char *reason)
{
	struct pmsg m;

	memset(&m, 0, sizeof(m));
	m.type = PMSG_KEY_RESULT;
	m.reqid = reqid;
	str_copy(m.u.kresult.peer, peer, sizeof(m.u.kresult.peer));
	m.u.kresult.key_id = id;
	m.u.kresult.code = code;
	str_copy(m.u.kresult.reason, reason, sizeof(m.u.kresult.reason));
	(void)net_send_parent(n, &m);
}

/* A handshake with peer used our next key: the parent makes it current. */
void
net_key_used(struct net *n, const char *peer, uint32_t id)
{
	struct pmsg m;

	memset(&m, 0, sizeof(m));
	m.type = PMSG_KEY_USED;
	str_copy(m.u.kused.peer, peer, sizeof(m.u.kused.peer));
	m.u.kused.key_id = id;
	(void)net_send_parent(n, &m);
}

void
net_jobs_free(struct job *j)
{
	struct job *next;

	for (; j != NULL; j = next) {
		next = j->next;
		secure_wipe(j, sizeof(*j));
		free(j);
	}
}

static void *
worker_thread(void *arg)
{
	struct worker *w = arg;
	struct net *n = w->net;
	const struct net_proto *proto;
	struct pmsg_peer p;
	struct pmsg_key_propose prop;
	struct job *jobs, *j;
	uint32_t prop_reqid;
	bool has_prop, rekeyed;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&n->lock);
		while (w->head == NULL && !w->has_prop && !w->stop)
			pthread_cond_wait(&n->cond, &n->lock);
		if (w->head == NULL && !w->has_prop && w->stop) {
			pthread_mutex_unlock(&n->lock);
			break;
		}
		jobs = w->head;
		w->head = w->tail = NULL;
		has_prop = w->has_prop;
		rekeyed = w->rekeyed;
		w->rekeyed = false;
		prop = w->prop;
		prop_reqid = w->prop_reqid;
		w->has_prop = false;
		secure_wipe(&w->prop, sizeof(w->prop));
		pthread_mutex_unlock(&n->lock);
		for (i = 0; rekeyed && net_protos[i] != NULL; i++)
			if (net_protos[i]->worker_end != NULL)
				net_protos[i]->worker_end(w);
		if (has_prop) {
			if (net_peer_copy(n, w->peer, &p) == -1)
				net_key_result(n, prop_reqid, w->peer,
				    prop.key_id, -1, "no such peer in the "
				    "configuration");
			else if ((proto = net_proto_of(p.protocol)) == NULL ||
			    proto->propose == NULL)
				net_key_result(n, prop_reqid, w->peer,
				    prop.key_id, PSYNC_E_REFUSED, "not a psync "
				    "peer");
			else {
				net_resolve(n, &p);
				proto->propose(n, w, &p, prop_reqid, &prop);
			}
			secure_wipe(&prop, sizeof(prop));
			secure_wipe(&p, sizeof(p));
		}
		if (jobs == NULL)
			continue;
		if (net_peer_copy(n, w->peer, &p) == -1 ||
		    (proto = net_proto_of(p.protocol)) == NULL) {
			for (j = jobs; j != NULL; j = j->next)
				net_report(n, j->change.id, w->peer, -1,
				    "no such peer in the configuration");
		} else {
			net_resolve(n, &p);
			proto->deliver(n, w, &p, jobs);
		}
		secure_wipe(&p, sizeof(p));
		net_jobs_free(jobs);
	}
	for (i = 0; net_protos[i] != NULL; i++)
		if (net_protos[i]->worker_end != NULL)
			net_protos[i]->worker_end(w);
	return NULL;
}

/* The worker of a peer, started when first needed; n->lock held. */
static struct worker *
worker_get(struct net *n, const char *peer)
{
	struct worker *w;

	for (w = n->workers; w != NULL; w = w->next)
		if (strcmp(w->peer, peer) == 0)
			return w;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->net = n;
	str_copy(w->peer, peer, sizeof(w->peer));
	if (pthread_create(&w->thread, NULL, worker_thread, w) != 0) {
		free(w);
		return NULL;
	}
	w->next = n->workers;
	n->workers = w;
	return w;
}

static void
propose(struct net *n, uint32_t reqid, const struct pmsg_key_propose *kp)
{
	struct worker *w;

	pthread_mutex_lock(&n->lock);
	w = worker_get(n, kp->peer);
	if (w != NULL) {
		/* A newer request replaces one not yet taken; the parent
		   gets no answer for that one and times it out. */
		w->prop = *kp;
		w->prop_reqid = reqid;
		w->has_prop = true;
		pthread_cond_broadcast(&n->cond);
	}
	pthread_mutex_unlock(&n->lock);
	if (w == NULL)
		net_key_result(n, reqid, kp->peer, kp->key_id, -1,
		    "cannot start a delivery thread");
}

static void
deliver(struct net *n, const struct pmsg_deliver *d)
{
	struct worker *w;
	struct job *j;

	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		net_report(n, d->change.id, d->peer, -1, "out of memory");
		return;
	}
	j->change = d->change;
	pthread_mutex_lock(&n->lock);
	w = worker_get(n, d->peer);
	if (w == NULL) {
		pthread_mutex_unlock(&n->lock);
		net_report(n, d->change.id, d->peer, -1, "cannot start a delivery "
		    "thread");
		net_jobs_free(j);
		return;
	}
	if (w->tail != NULL)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

/* A channel check, in a thread of its own. */
struct verify_job {
	struct net		*net;
	uint32_t		reqid;
	struct pmsg_verify	v;
};

static void *
verify_thread(void *arg)
{
	struct verify_job *vj = arg;
	struct net *n = vj->net;
	const struct net_proto *proto;
	struct pmsg_peer p;
	struct pmsg m;

	memset(&m, 0, sizeof(m));
	memset(&p, 0, sizeof(p));
	m.type = PMSG_VERIFY_RESULT;
	m.reqid = vj->reqid;
	m.u.vresult.step = VERIFY_OTHER;
	if (net_peer_copy(n, vj->v.peer, &p) == -1 ||
	    (proto = net_proto_of(p.protocol)) == NULL) {
		snprintf(m.u.vresult.message, sizeof(m.u.vresult.message),
		    "the network process does not know peer %s", vj->v.peer);
		goto done;
	}
	net_resolve(n, &p);
	if (p.address[0] == '\0') {
		m.u.vresult.step = VERIFY_RESOLVE;
		str_copy(m.u.vresult.message, p.resolve_error,
		    sizeof(m.u.vresult.message));
		goto done;
	}
	proto->verify(n, &p, vj->v.user, &m.u.vresult);
done:
	secure_wipe(&p, sizeof(p));
	(void)net_send_parent(n, &m);
	free(vj);
	return NULL;
}

static void
verify(struct net *n, uint32_t reqid, const struct pmsg_verify *v)
{
	struct verify_job *vj;
	pthread_attr_t attr;
	pthread_t t;
	struct pmsg m;

	vj = calloc(1, sizeof(*vj));
	if (vj != NULL) {
		vj->net = n;
		vj->reqid = reqid;
		vj->v = *v;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&t, &attr, verify_thread, vj) == 0) {
			pthread_attr_destroy(&attr);
			return;
		}
		pthread_attr_destroy(&attr);
		free(vj);
	}
	memset(&m, 0, sizeof(m));
	m.type = PMSG_VERIFY_RESULT;
	m.reqid = reqid;
	m.u.vresult.step = VERIFY_OTHER;
	str_copy(m.u.vresult.message, "cannot start a check thread",
	    sizeof(m.u.vresult.message));
	(void)net_send_parent(n, &m);
}

static void
drop_privileges(const struct net_setup *s, uid_t uid, gid_t gid)
{
	if (chroot(s->chroot_dir) == -1)
		fatal("network child: chroot %s", s->chroot_dir);
	if (chdir("/") == -1)
		fatal("network child: chdir / in %s", s->chroot_dir);
	if (setgroups(1, &gid) == -1)
		fatal("network child: setgroups for user %s", s->user);
	if (setresgid(gid, gid, gid) == -1)
		fatal("network child: setresgid %u for user %s",
		    (unsigned int)gid, s->user);
	if (setresuid(uid, uid, uid) == -1)
		fatal("network child: setresuid %u for user %s",
		    (unsigned int)uid, s->user);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("network child: PR_SET_NO_NEW_PRIVS");
	/* Prove it: none of these may work any more. */
	if (setuid(0) != -1 || seteuid(0) != -1 || setgid(0) != -1 ||
	    chroot("/") != -1)
		fatalx("network child: could still regain root after dropping "
		    "to user %s; stopping", s->user);
}

/* Did a peer's keys change between two tables (or did it go away)? */
static bool
keys_changed(const struct net *n, const char *peer)
{
	const struct pmsg_peer *a = NULL, *b = NULL;
	size_t i;

	for (i = 0; i < n->n_peers; i++)
		if (strcmp(n->peers[i].name, peer) == 0)
			a = &n->peers[i];
	for (i = 0; i < n->n_staging; i++)
		if (strcmp(n->staging[i].name, peer) == 0)
			b = &n->staging[i];
	if (a == NULL || b == NULL)
		return true;
	return a->key_len != b->key_len || a->key_id != b->key_id ||
	    memcmp(a->key, b->key, sizeof(a->key)) != 0 ||
	    a->has_next != b->has_next || a->next_id != b->next_id ||
	    memcmp(a->next, b->next, sizeof(a->next)) != 0 ||
	    strcmp(a->host, b->host) != 0 || a->port != b->port;
}

static void
table_swap(struct net *n, const struct pmsg_peers_end *e)
{
	struct worker *w;
	size_t i;

	pthread_mutex_lock(&n->lock);
	/* A connection made with a key that is no longer ours must not
	   carry another change (set-key, a reload, a rotation). */
	for (w = n->workers; w != NULL; w = w->next)
		if (keys_changed(n, w->peer))
			w->rekeyed = true;
	if (n->peers != NULL) {
		secure_wipe(n->peers, n->n_peers * sizeof(*n->peers));
		free(n->peers);
	}
	n->peers = n->staging;
	n->n_peers = n->n_staging;
	n->staging = NULL;
	n->n_staging = 0;
	/* A worker may wait for a promoted key to arrive. */
	pthread_cond_broadcast(&n->cond);
	/* Threads read the node name without the lock: it is only written
	   when it really changes (a reload that renames the node). */
	if (strcmp(n->node, e->node) != 0) {
		str_copy(n->node_buf, e->node, sizeof(n->node_buf));
		n->node = n->node_buf;
	}
	pthread_mutex_unlock(&n->lock);
	if (e->n_peers != n->n_peers)
		fatalx("network child: peer table of %zu entries, the parent "
		    "announced %u", n->n_peers, e->n_peers);
	for (i = 0; i < n->n_peers; i++)
		log_debug("network child: peer %s at %s port %u",
		    n->peers[i].name, n->peers[i].host[0] != '\0' ?
		    n->peers[i].host : "(no address)", n->peers[i].port);
	for (i = 0; net_protos[i] != NULL; i++)
		if (net_protos[i]->table_changed != NULL)
			net_protos[i]->table_changed(n);
}

static void
staging_add(struct net *n, const struct pmsg_peer *p)
{
	struct pmsg_peer *grown;

	grown = realloc(n->staging, (n->n_staging + 1) * sizeof(*grown));
	if (grown == NULL)
		fatalx("network child: out of memory for the peer table");
	n->staging = grown;
	n->staging[n->n_staging++] = *p;
}

static void
shutdown_workers(struct net *n)
{
	struct worker *w, *next;

	pthread_mutex_lock(&n->lock);
	for (w = n->workers; w != NULL; w = w->next)
		w->stop = true;
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	for (w = n->workers; w != NULL; w = next) {
		next = w->next;
		pthread_join(w->thread, NULL);
		net_jobs_free(w->head);
		free(w);
	}
	n->workers = NULL;
}

/* Serve the parent's messages until SHUTDOWN or its channel closes. */
static void
serve_parent(struct net *n, unsigned char *buf)
{
	struct psync_err err;
	struct pmsg m;

	for (;;) {
		if (pmsg_read(n->sock, buf, PMSG_FROM_PARENT, &m, &err) == -1) {
			if (err.code != PSYNC_OK)
				log_warnx("network child: %s", err.msg);
			return;
		}
		switch (m.type) {
		case PMSG_PEER:
			staging_add(n, &m.u.peer);
			break;
		case PMSG_PEERS_END:
			table_swap(n, &m.u.peers_end);
			break;
		case PMSG_INBOUND_RESULT:
			net_waiter_answer(n, m.reqid, m.u.iresult.code,
			    m.u.iresult.reason);
			break;
		case PMSG_DELIVER:
			deliver(n, &m.u.deliver);
			break;
		case PMSG_VERIFY:
			verify(n, m.reqid, &m.u.verify);
			break;
		case PMSG_KEY_PROPOSE:
			propose(n, m.reqid, &m.u.kpropose);
			break;
		case PMSG_SHUTDOWN:
			pmsg_wipe(&m);
			return;
		default:
			fatalx("network child: unexpected %s message",
			    pmsg_type_name(m.type));
		}
		pmsg_wipe(&m);
	}
}

/* A listening socket handed over at fd, or none. */
static bool
listening(int fd)
{
	int on = 0;
	socklen_t len = sizeof(on);

	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == 0 &&
	    on != 0;
}

void
net_main(const struct net_setup *s)
{
	static struct net state = {
		.write_lock = PTHREAD_MUTEX_INITIALIZER,
		.lock = PTHREAD_MUTEX_INITIALIZER,
		.cond = PTHREAD_COND_INITIALIZER,
		.node = "",
		.dns_fd = -1,
	};
	struct net *n = &state;
	unsigned char *buf;
	struct psync_err err;
	struct passwd *pw;
	struct pmsg m;
	sigset_t all;
	uid_t uid;
	gid_t gid;
	size_t i;

	n->sock = NET_FD_PARENT;
	atomic_init(&n->stopping, false);
	log_init("psyncd", s->foreground ? LOG_TARGET_STDERR :
	    LOG_TARGET_SYSLOG, s->log_facility);
	log_set_level(s->log_level);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	/* The parent decides when we stop (SHUTDOWN, or our socket closes). */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	/* Die with the parent; if it is already gone, now. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == -1)
		log_warn("network child: PR_SET_PDEATHSIG");
	if (getppid() == 1)
		_exit(0);
	if (prctl(PR_SET_NAME, "psyncd-net", 0, 0, 0) == -1)
		log_debug("network child: cannot name the process");
	if (fcntl(n->sock, F_GETFD) == -1)
		fatalx("network child: no channel to the parent on descriptor "
		    "%d; psyncd starts this process itself", NET_FD_PARENT);
	(void)fcntl(n->sock, F_SETFD, FD_CLOEXEC);
	pw = getpwnam(s->user);
	if (pw == NULL || pw->pw_uid == 0)
		fatalx("network child: user %s %s", s->user, pw == NULL ?
		    "does not exist" : "is root");
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	/* Everything that reads files is done before the chroot. */
	if (mepp_crypto_init(&err) == -1)
		log_warnx("network child: %s (MEPP peers will fail)", err.msg);
	for (i = 0; net_protos[i] != NULL; i++) {
		int fd = net_protos[i]->listen_fd;

		if (fd >= 0 && listening(fd) &&
		    net_protos[i]->listen_prepare(n) == -1)
			fatalx("network child: cannot start the %s listener",
			    net_protos[i]->name);
	}
	if (net_resolver_start(n, s->user) == -1)
		fatalx("network child: cannot start the resolver");
	drop_privileges(s, uid, gid);
	log_info("network child running as %s in %s", s->user, s->chroot_dir);

	buf = malloc(PMSG_HDR_LEN + PMSG_MAX);
	if (buf == NULL)
		fatalx("network child: out of memory");
	/* Wait for the first peer table before serving anyone. */
	for (;;) {
		if (pmsg_read(n->sock, buf, PMSG_FROM_PARENT, &m, &err) == -1)
			fatalx("network child: %s", err.msg);
		if (m.type == PMSG_PEER) {
			staging_add(n, &m.u.peer);
		} else if (m.type == PMSG_PEERS_END) {
			table_swap(n, &m.u.peers_end);
			pmsg_wipe(&m);
			break;
		} else if (m.type == PMSG_SHUTDOWN) {
			_exit(0);
		} else {
			fatalx("network child: %s before the peer table",
			    pmsg_type_name(m.type));
		}
		pmsg_wipe(&m);
	}
	for (i = 0; net_protos[i] != NULL; i++)
		if (net_protos[i]->listen_fd >= 0 &&
		    listening(net_protos[i]->listen_fd))
			net_protos[i]->listen_start(n);
	serve_parent(n, buf);
	atomic_store(&n->stopping, true);
	pthread_mutex_lock(&n->lock);
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
	for (i = 0; net_protos[i] != NULL; i++)
		if (net_protos[i]->listen_stop != NULL)
			net_protos[i]->listen_stop(n);
	shutdown_workers(n);
	net_resolver_stop(n);
	free(buf);
	_exit(0);
}
