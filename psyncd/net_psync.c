/*
 * psync's own protocol in the network child (doc/protocol.md): the TLS
 * listener (one thread per connection, capped), the persistent outbound
 * connection of each peer's worker with pipelined CHANGEs, the channel
 * check, and the key rotation messages.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codes.h"
#include "config_file.h"
#include "frame.h"
#include "log.h"
#include "net.h"
#include "pmsg.h"
#include "wire.h"

static int
psync_psk_lookup(void *ctx, const char *identity,
    unsigned char key[WIRE_KEY_LEN])
{
	struct net *n = ctx;
	struct pmsg_peer p;
	char name[FRAME_NAME_MAX + 1];
	uint32_t id;
	int rc = -1;

	memset(&p, 0, sizeof(p));
	if (pmsg_identity_parse(identity, name, sizeof(name), &id) == -1)
		goto done;
	/* The id only picks between the current and the next key: any
	   other id gets the current one, and fails as a key mismatch
	   (8203) unless the client holds that key after all. */
	if (net_peer_copy(n, name, &p) == 0 && p.protocol == PROTO_PSYNC &&
	    p.key_len == WIRE_KEY_LEN) {
		if (p.has_next && id == p.next_id)
			memcpy(key, p.next, WIRE_KEY_LEN);
		else
			memcpy(key, p.key, WIRE_KEY_LEN);
		rc = 0;
	}
done:
	secure_wipe(&p, sizeof(p));
	return rc;
}

static void
psync_send_result(struct wire_conn *c, const uint8_t id[FRAME_ID_LEN], int code,
    const char *reason)
{
	struct frame f;
	struct psync_err err;

	if (frame_set_result(&f, id, code, reason, &err) == -1 ||
	    wire_send(c, &f, &err) == -1)
		log_warnx("peer %s: cannot send a result: %s",
		    wire_peer_name(c), err.msg);
	frame_wipe(&f);
}

/* Forward a batch of CHANGE frames to the parent and answer each. */
static int
psync_forward(struct net *n, struct wire_conn *c, const char *peer, struct frame *fs,
    size_t count)
{
	struct waiter ws[CHILD_BATCH_MAX];
	struct pmsg m;
	size_t i;

	for (i = 0; i < count; i++) {
		net_waiter_add(n, &ws[i]);
		memset(&m, 0, sizeof(m));
		m.type = PMSG_INBOUND;
		m.reqid = ws[i].reqid;
		m.u.inbound.protocol = PROTO_PSYNC;
		str_copy(m.u.inbound.peer, peer, sizeof(m.u.inbound.peer));
		m.u.inbound.change = fs[i].u.change;
		if (net_send_parent(n, &m) == -1) {
			ws[i].done = true;
			ws[i].code = PSYNC_E_UPDATE_FAILED;
			str_copy(ws[i].reason, "cannot reach psyncd's parent "
			    "process", sizeof(ws[i].reason));
		}
	}
	net_waiters_wait(n, ws, count, CHILD_REPLY_TIMEOUT_MS);
	for (i = 0; i < count; i++)
		psync_send_result(c, fs[i].u.change.id, ws[i].code, ws[i].reason);
	return 0;
}

/* A peer proposes a new key: the parent stores it, then we confirm. */
static bool
psync_key_proposed(struct net *n, struct wire_conn *c, const char *peer, uint32_t auth_id,
    const struct frame_key_propose *kp)
{
	struct waiter w;
	struct pmsg m;
	struct frame f;
	struct psync_err err;
	bool ok = false;

	net_waiter_add(n, &w);
	memset(&m, 0, sizeof(m));
	m.type = PMSG_KEY_PROPOSED;
	m.reqid = w.reqid;
	str_copy(m.u.kproposed.peer, peer, sizeof(m.u.kproposed.peer));
	m.u.kproposed.auth_id = auth_id;
	m.u.kproposed.key_id = kp->key_id;
	memcpy(m.u.kproposed.key, kp->key, FRAME_KEY_LEN);
	if (kp->key_id == 0 || net_send_parent(n, &m) == -1) {
		w.done = true;
		w.code = PSYNC_E_PROTOCOL;
		str_copy(w.reason, kp->key_id == 0 ? "key id 0 is never "
		    "proposed" : "cannot reach psyncd's parent process",
		    sizeof(w.reason));
	}
	net_waiters_wait(n, &w, 1, CHILD_REPLY_TIMEOUT_MS);
	if (w.code == PSYNC_OK) {
		frame_set_key_confirm(&f, kp->key_id);
		ok = wire_send(c, &f, &err) == 0;
		if (!ok)
			log_warnx("peer %s: cannot confirm key id %u: %s",
			    peer, kp->key_id, err.msg);
	} else {
		/* ERROR ends the connection; the proposer tries again later. */
		if (frame_set_error(&f, w.code, w.reason, &err) == 0)
			(void)wire_send(c, &f, &err);
	}
	frame_wipe(&f);
	return ok;
}

/* What an accepted connection's thread gets. */
struct psync_conn_arg {
	struct net	*n;
	int		 fd;
};

static void *
psync_conn_thread(void *arg)
{
	struct psync_conn_arg *a = arg;
	struct net *n = a->n;
	int fd = a->fd;
	struct frame_hello ours, theirs;
	struct wire_conn *c = NULL;
	struct frame *fs = NULL;
	struct psync_err err;
	struct pmsg_peer p;
	enum wire_status st;
	char peer[FRAME_NAME_MAX + 1];
	uint32_t auth_id = 0;
	size_t nf = 0, i, k;

	free(a);
	memset(&p, 0, sizeof(p));
	fs = calloc(CHILD_BATCH_MAX, sizeof(*fs));
	if (fs == NULL) {
		close(fd);
		goto done;
	}
	c = wire_accept_fd(n->srv, fd, CHILD_HELLO_TIMEOUT_MS, &err);
	if (c == NULL) {
		log_debug("psync listener: %s", err.msg);
		goto done;
	}
	memset(&ours, 0, sizeof(ours));
	str_copy(ours.node, n->node, sizeof(ours.node));
	ours.version = FRAME_VERSION;
	ours.caps = CHILD_CAPS;
	if (wire_hello(c, &ours, 1, &theirs, CHILD_HELLO_TIMEOUT_MS,
	    &err) == -1) {
		log_warnx("psync listener: HELLO from %s failed: %s",
		    wire_peer_address(c), err.msg);
		goto done;
	}
	/* The identity (and HELLO) may carry the key id: "NAME#ID". */
	if (pmsg_identity_parse(wire_peer_name(c), peer, sizeof(peer),
	    &auth_id) == -1) {
		log_warnx("psync listener: malformed identity from %s",
		    wire_peer_address(c));
		goto done;
	}
	log_debug("psync listener: peer %s connected from %s with key id %u",
	    peer, wire_peer_address(c), auth_id);
	if (auth_id != 0 && net_peer_copy(n, peer, &p) == 0 && p.has_next &&
	    p.next_id == auth_id)
		net_key_used(n, peer, auth_id);
	secure_wipe(&p, sizeof(p));
	while (!atomic_load(&n->stopping)) {
		nf = 0;
		st = wire_recv(c, &fs[0], 1000, &err);
		if (st == WIRE_TIMEOUT)
			continue;
		if (st != WIRE_FRAME)
			break;
		nf = 1;
		/* Take whatever else the peer pipelined: one batch, one
		   shadow rewrite in the parent. */
		while (nf < CHILD_BATCH_MAX && fs[nf - 1].type == FRAME_CHANGE &&
		    wire_pending(c)) {
			st = wire_recv(c, &fs[nf], 0, &err);
			if (st != WIRE_FRAME)
				break;
			nf++;
		}
		/* The changes first (batching stops at anything else), then
		   the frame that ended the batch. */
		for (k = 0; k < nf && fs[k].type == FRAME_CHANGE; k++)
			;
		if (k > 0)
			psync_forward(n, c, peer, fs, k);
		for (i = k; i < nf; i++) {
			if (fs[i].type == FRAME_PING) {
				struct frame pong;

				frame_set_ping(&pong, true, fs[i].u.ping.seq);
				(void)wire_send(c, &pong, &err);
			} else if (fs[i].type == FRAME_KEY_PROPOSE) {
				if (!psync_key_proposed(n, c, peer, auth_id,
				    &fs[i].u.key_propose))
					goto done;
			} else {
				log_warnx("peer %s: unexpected %s frame; "
				    "closing", peer,
				    frame_type_name((int)fs[i].type));
				goto done;
			}
		}
		for (i = 0; i < nf; i++)
			frame_wipe(&fs[i]);
		nf = 0;
	}
done:
	if (fs != NULL) {
		for (i = 0; i < CHILD_BATCH_MAX; i++)
			frame_wipe(&fs[i]);
		free(fs);
	}
	if (c != NULL)
		wire_close(c);
	pthread_mutex_lock(&n->lock);
	n->conns--;
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

static void *
psync_accept_thread(void *arg)
{
	struct net *n = arg;
	struct psync_conn_arg *a;
	struct pollfd p;
	pthread_attr_t attr;
	pthread_t t;
	int fd;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (!atomic_load(&n->stopping)) {
		p.fd = NET_FD_PSYNC;
		p.events = POLLIN;
		if (poll(&p, 1, 500) <= 0)
			continue;
		fd = accept4(NET_FD_PSYNC, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1)
			continue;
		pthread_mutex_lock(&n->lock);
		if (n->conns >= CHILD_MAX_CONNS) {
			pthread_mutex_unlock(&n->lock);
			log_warnx("psync listener: %d connections already; "
			    "refusing one more", CHILD_MAX_CONNS);
			close(fd);
			continue;
		}
		n->conns++;
		pthread_mutex_unlock(&n->lock);
		a = malloc(sizeof(*a));
		if (a != NULL) {
			a->n = n;
			a->fd = fd;
		}
		if (a == NULL || pthread_create(&t, &attr, psync_conn_thread,
		    a) != 0) {
			log_warnx("psync listener: cannot start a thread");
			free(a);
			close(fd);
			pthread_mutex_lock(&n->lock);
			n->conns--;
			pthread_mutex_unlock(&n->lock);
		}
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

/* Dial with one of the peer's keys; the identity (and so our HELLO)
   names its id. */
static struct wire_conn *
psync_dial_key(struct net *n, const struct pmsg_peer *p, const unsigned char *key, uint32_t id,
    uint32_t *caps, struct psync_err *err)
{
	struct wire_client_opts o;
	struct frame_hello ours, theirs;
	struct wire_conn *c;
	char ident[FRAME_NAME_MAX + 1];

	if (pmsg_identity_make(n->node, id, ident, sizeof(ident)) == -1) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: node name %s with key "
		    "id %u does not fit an identity", p->name, n->node, id);
		return NULL;
	}
	memset(&o, 0, sizeof(o));
	o.peer_name = p->name;
	o.host = p->address;
	o.port = p->port;
	o.timeout_ms = (int)(p->connect_timeout > 0 ? p->connect_timeout : 10) *
	    1000;
	o.identity = ident;
	o.key = key;
	c = wire_connect(&o, err);
	if (c == NULL)
		return NULL;
	memset(&ours, 0, sizeof(ours));
	str_copy(ours.node, ident, sizeof(ours.node));
	ours.version = FRAME_VERSION;
	ours.caps = CHILD_CAPS;
	if (wire_hello(c, &ours, 1, &theirs, o.timeout_ms, err) == -1) {
		wire_close(c);
		return NULL;
	}
	*caps = theirs.caps;
	wire_set_io_timeout(c, CHILD_RESULT_TIMEOUT_MS);
	return c;
}

/*
 * Dial a peer. During a rotation we hold two keys: the first choice is
 * the next key when the peer proposed it (so it has it), else the
 * current one; when the handshake fails, the other one is tried, which
 * heals a pair that a crash left one step apart. A handshake that worked
 * with the next key proves the peer holds it: the parent makes it current.
 */
static struct wire_conn *
psync_dial(struct net *n, const struct pmsg_peer *p, uint32_t *caps, struct psync_err *err)
{
	struct wire_conn *c;
	bool next;

	*caps = 0;
	if (p->address[0] == '\0') {
		perr_set(err, PSYNC_E_OPEN, "peer %s: address not resolved: %s",
		    p->name, p->resolve_error);
		return NULL;
	}
	if (p->key_len != WIRE_KEY_LEN) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: no pre-shared key",
		    p->name);
		return NULL;
	}
	next = p->has_next && p->use_next;
	c = psync_dial_key(n, p, next ? p->next : p->key, next ? p->next_id :
	    p->key_id, caps, err);
	if (c == NULL && p->has_next && err->code != PSYNC_E_OPEN) {
		log_info("peer %s: handshake with key id %u failed; trying "
		    "key id %u", p->name, next ? p->next_id : p->key_id,
		    next ? p->key_id : p->next_id);
		next = !next;
		c = psync_dial_key(n, p, next ? p->next : p->key, next ? p->next_id :
		    p->key_id, caps, err);
	}
	if (c != NULL && next)
		net_key_used(n, p->name, p->next_id);
	return c;
}

/* Is an idle connection still sound? Reads what the peer sent meanwhile. */
static bool
psync_conn_alive(struct wire_conn *c)
{
	struct pollfd p = { wire_fd(c), POLLIN, 0 };
	struct frame f;
	struct psync_err err;
	enum wire_status st;

	if (!wire_pending(c) && poll(&p, 1, 0) == 0)
		return true;
	st = wire_recv(c, &f, 0, &err);
	frame_wipe(&f);
	return st == WIRE_FRAME || st == WIRE_TIMEOUT;
}

static void
psync_deliver(struct net *n, struct worker *w, const struct pmsg_peer *p, struct job *jobs)
{
	struct psync_err err;
	struct frame f;
	struct job *j;
	size_t njobs = 0, answered = 0;
	bool *done = NULL;
	enum wire_status st;
	int tries;
	size_t i;

	for (j = jobs; j != NULL; j = j->next)
		njobs++;
	done = calloc(njobs, sizeof(*done));
	if (done == NULL) {
		for (j = jobs; j != NULL; j = j->next)
			net_report(n, j->change.id, p->name, -1, "out of memory");
		return;
	}
	for (tries = 0; tries < 2; tries++) {
		if (w->conn != NULL && !psync_conn_alive(w->conn)) {
			wire_close(w->conn);
			w->conn = NULL;
		}
		if (w->conn == NULL) {
			w->conn = psync_dial(n, p, &w->conn_caps, &err);
			if (w->conn == NULL)
				goto fail_all;
		}
		for (j = jobs; j != NULL; j = j->next) {
			if (frame_set_change(&f, j->change.id, j->change.origin,
			    j->change.time_ms, j->change.user,
			    j->change.secret_kind, j->change.secret,
			    j->change.secret_len, &err) == -1) {
				frame_wipe(&f);
				goto fail_all;
			}
			if (wire_send(w->conn, &f, &err) == -1) {
				frame_wipe(&f);
				break;
			}
			frame_wipe(&f);
		}
		if (j == NULL)
			break;
		/* The connection broke while sending: once more, fresh. */
		wire_close(w->conn);
		w->conn = NULL;
	}
	if (w->conn == NULL)
		goto fail_all;
	while (answered < njobs) {
		st = wire_recv(w->conn, &f, CHILD_RESULT_TIMEOUT_MS, &err);
		if (st == WIRE_TIMEOUT) {
			perr_set(&err, PSYNC_E_OPEN, "peer %s: no result within "
			    "%d s", p->name, CHILD_RESULT_TIMEOUT_MS / 1000);
			break;
		}
		if (st != WIRE_FRAME)
			break;
		if (f.type == FRAME_RESULT) {
			for (i = 0, j = jobs; j != NULL; j = j->next, i++) {
				if (!done[i] && memcmp(j->change.id,
				    f.u.result.id, FRAME_ID_LEN) == 0) {
					done[i] = true;
					answered++;
					net_report(n, j->change.id, p->name,
					    f.u.result.code, f.u.result.reason);
					break;
				}
			}
		} else if (f.type == FRAME_ERROR) {
			perr_set(&err, f.u.error.code, "peer %s answered ERROR "
			    "%u: %s", p->name, f.u.error.code,
			    f.u.error.reason);
			frame_wipe(&f);
			break;
		}
		frame_wipe(&f);
	}
	if (answered == njobs)
		goto done;
	wire_close(w->conn);
	w->conn = NULL;
fail_all:
	for (i = 0, j = jobs; j != NULL; j = j->next, i++)
		if (!done[i])
			net_report(n, j->change.id, p->name, -1, err.msg);
done:
	free(done);
}

/* Wait until the parent's table says key id is current for peer. */
static bool
psync_wait_key_current(struct net *n, const char *peer, uint32_t id)
{
	struct timespec ts;
	size_t i;
	bool found = false;

	net_deadline(&ts, CHILD_TABLE_WAIT_MS);
	pthread_mutex_lock(&n->lock);
	while (!atomic_load(&n->stopping)) {
		for (i = 0; i < n->n_peers; i++)
			if (strcmp(n->peers[i].name, peer) == 0 &&
			    n->peers[i].key_id == id)
				found = true;
		if (found || pthread_cond_timedwait(&n->cond, &n->lock,
		    &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&n->lock);
	return found;
}

/*
 * Our own proposal: KEY-PROPOSE over the current channel, then wait for
 * KEY-CONFIRM. After a confirmation the parent makes the key current;
 * we reconnect with it at once, which tells the peer to do the same.
 */
static void
psync_propose(struct net *n, struct worker *w, const struct pmsg_peer *p, uint32_t reqid,
    const struct pmsg_key_propose *kp)
{
	struct pmsg_peer np;
	struct psync_err err;
	struct frame f;
	enum wire_status st;
	char reason[PMSG_TEXT_MAX + 1];
	int code = -1;

	memset(&f, 0, sizeof(f));
	memset(&np, 0, sizeof(np));
	reason[0] = '\0';
	if (p->protocol != PROTO_PSYNC) {
		code = PSYNC_E_REFUSED;
		str_copy(reason, "not a psync peer", sizeof(reason));
		goto done;
	}
	if (w->conn != NULL && !psync_conn_alive(w->conn)) {
		wire_close(w->conn);
		w->conn = NULL;
	}
	if (w->conn == NULL && (w->conn = psync_dial(n, p, &w->conn_caps,
	    &err)) == NULL) {
		str_copy(reason, err.msg, sizeof(reason));
		goto done;
	}
	if (!(w->conn_caps & FRAME_CAP_KEY_ROTATION)) {
		code = PSYNC_E_VERSION;
		snprintf(reason, sizeof(reason), "peer %s does not speak key "
		    "rotation (no capability 0x2 in its HELLO)", p->name);
		goto done;
	}
	frame_set_key_propose(&f, kp->key_id, kp->key);
	if (wire_send(w->conn, &f, &err) == -1) {
		str_copy(reason, err.msg, sizeof(reason));
		goto broken;
	}
	for (;;) {
		frame_wipe(&f);
		st = wire_recv(w->conn, &f, CHILD_RESULT_TIMEOUT_MS, &err);
		if (st == WIRE_TIMEOUT) {
			snprintf(reason, sizeof(reason), "peer %s: no "
			    "KEY-CONFIRM within %d s", p->name,
			    CHILD_RESULT_TIMEOUT_MS / 1000);
			goto broken;
		}
		if (st != WIRE_FRAME) {
			snprintf(reason, sizeof(reason), "peer %.64s: the "
			    "connection ended before KEY-CONFIRM: %.400s", p->name,
			    st == WIRE_CLOSED ? "closed" : err.msg);
			goto broken;
		}
		if (f.type == FRAME_KEY_CONFIRM && f.u.key_confirm.key_id ==
		    kp->key_id) {
			code = 0;
			break;
		}
		if (f.type == FRAME_ERROR) {
			code = f.u.error.code;
			snprintf(reason, sizeof(reason), "peer %.64s refused: "
			    "%.400s", p->name, f.u.error.reason);
			goto broken;
		}
		if (f.type != FRAME_PONG && f.type != FRAME_RESULT) {
			code = PSYNC_E_PROTOCOL;
			snprintf(reason, sizeof(reason), "peer %s answered %s "
			    "to KEY-PROPOSE", p->name,
			    frame_type_name((int)f.type));
			goto broken;
		}
	}
	str_copy(reason, "confirmed", sizeof(reason));
	/* This connection was made with the old key: not for long. */
broken:
	wire_close(w->conn);
	w->conn = NULL;
done:
	frame_wipe(&f);
	net_key_result(n, reqid, p->name, kp->key_id, code, reason);
	if (code == 0 && psync_wait_key_current(n, p->name, kp->key_id) &&
	    net_peer_copy(n, p->name, &np) == 0) {
		net_resolve(n, &np);
		w->conn = psync_dial(n, &np, &w->conn_caps, &err);
		if (w->conn == NULL)
			log_warnx("peer %s: reconnecting with key id %u: %s",
			    p->name, kp->key_id, err.msg);
	}
	secure_wipe(&np, sizeof(np));
}

static int
psync_prepare(struct net *n)
{
	struct wire_server_opts so;
	struct psync_err err;

	memset(&so, 0, sizeof(so));
	so.psk_lookup = psync_psk_lookup;
	so.lookup_ctx = n;
	so.io_timeout_ms = CHILD_RESULT_TIMEOUT_MS;
	n->srv = wire_server_new(&so, &err);
	if (n->srv == NULL) {
		log_warnx("network child: %s", err.msg);
		return -1;
	}
	return 0;
}

static void
psync_start(struct net *n)
{
	if (n->srv == NULL)
		return;
	if (pthread_create(&n->psync_thread, NULL, psync_accept_thread,
	    n) != 0)
		fatalx("network child: cannot start the psync listener");
	n->psync_running = true;
}

static void
psync_stop(struct net *n)
{
	if (n->psync_running)
		pthread_join(n->psync_thread, NULL);
	n->psync_running = false;
}

static void
psync_verify(struct net *n, const struct pmsg_peer *p, const char *user,
    struct pmsg_verify_result *out)
{
	struct psync_err err;
	struct wire_conn *c;
	uint32_t caps;

	(void)user;
	c = psync_dial(n, p, &caps, &err);
	if (c == NULL) {
		out->code = err.code;
		/* wire reports a failed connect as code 3, a failed
		   handshake with its own codes, and HELLO problems name
		   the HELLO. */
		if (err.code == PSYNC_E_OPEN)
			out->step = VERIFY_CONNECT;
		else if (strstr(err.msg, "HELLO") != NULL ||
		    (err.code == PSYNC_E_VERSION_MISMATCH &&
		    strstr(err.msg, "TLS") == NULL))
			out->step = VERIFY_VERSION;
		else
			out->step = VERIFY_HANDSHAKE;
		str_copy(out->message, err.msg, sizeof(out->message));
		return;
	}
	wire_close(c);
	out->step = VERIFY_OK;
	out->code = 0;
	out->message[0] = '\0';
}

static void
psync_worker_end(struct worker *w)
{
	if (w->conn != NULL)
		wire_close(w->conn);
	w->conn = NULL;
}

const struct net_proto net_psync = {
	.protocol	= PROTO_PSYNC,
	.name		= "psync",
	.listen_fd	= NET_FD_PSYNC,
	.listen_prepare	= psync_prepare,
	.listen_start	= psync_start,
	.listen_stop	= psync_stop,
	.table_changed	= NULL,
	.deliver	= psync_deliver,
	.verify		= psync_verify,
	.propose	= psync_propose,
	.worker_end	= psync_worker_end,
};
