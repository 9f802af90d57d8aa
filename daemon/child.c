/*
 * psyncd's network child: everything that talks to the network, and
 * nothing else. It is forked by the root parent after the listening
 * sockets are open, chroots into an empty directory, becomes an
 * unprivileged user and checks that it cannot become root again. It owns
 * no store, no queue and no key file: the parent sends it the peer table
 * (with keys) and each change to deliver, and it hands every change a peer
 * sends to the parent, which decides.
 *
 * Threads: the main thread reads the parent's messages; one thread accepts
 * psync connections and starts one thread per connection (capped); one
 * runs the MEPP listener; one worker per peer delivers outbound changes;
 * a channel check (VERIFY) gets its own short-lived thread. Every write to
 * the parent is one whole message under one mutex.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
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
#include "frame.h"
#include "log.h"
#include "mepp.h"
#include "mepp_net.h"
#include "pmsg.h"
#include "psyncd.h"
#include "wire.h"

#define CHILD_MAX_CONNS		64	/* inbound psync connections */
#define CHILD_BATCH_MAX		64	/* changes forwarded per round */
#define CHILD_REPLY_TIMEOUT_MS	60000	/* waiting for the parent */
#define CHILD_RESULT_TIMEOUT_MS	30000	/* waiting for a peer's RESULT */
#define CHILD_HELLO_TIMEOUT_MS	10000
#define CHILD_TABLE_WAIT_MS	10000	/* for the promoted key's table */
#define CHILD_CAPS		(FRAME_CAP_CRYPT_HASH | FRAME_CAP_KEY_ROTATION)

/* Someone waiting for the parent's answer to one INBOUND or VERIFY. */
struct waiter {
	uint32_t	 reqid;
	bool		 done;
	int		 code;
	char		 reason[PMSG_TEXT_MAX + 1];
	struct waiter	*next;
};

/* One outbound change waiting in a worker. */
struct job {
	struct frame_change	 change;
	struct job		*next;
};

struct worker {
	char		 peer[FRAME_NAME_MAX + 1];
	pthread_t	 thread;
	struct job	*head, *tail;
	bool		 stop;
	bool		 has_prop;	/* a key proposal to make */
	uint32_t	 prop_reqid;
	struct pmsg_key_propose prop;
	struct wire_conn *conn;
	uint32_t	 conn_caps;	/* the peer's HELLO capabilities */
	struct worker	*next;
};

static struct {
	int			 sock;
	const char		*node;
	char			 node_buf[FRAME_NAME_MAX + 1];
	pthread_mutex_t		 write_lock;
	pthread_mutex_t		 lock;		/* everything below */
	pthread_cond_t		 cond;
	struct pmsg_peer	*peers;
	size_t			 n_peers;
	struct pmsg_peer	*staging;
	size_t			 n_staging;
	struct waiter		*waiters;
	uint32_t		 next_reqid;
	struct worker		*workers;
	unsigned int		 conns;
	atomic_bool		 stopping;
	struct wire_server	*srv;
	int			 psync_fd;
	struct mepp_listener	*mepp;
} C = {
	.write_lock = PTHREAD_MUTEX_INITIALIZER,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.psync_fd = -1,
};

static int
send_parent(struct pmsg *m)
{
	struct psync_err err;
	int rc;

	pthread_mutex_lock(&C.write_lock);
	rc = pmsg_write(C.sock, m, &err);
	pthread_mutex_unlock(&C.write_lock);
	if (rc == -1)
		log_warnx("network child: %s", err.msg);
	pmsg_wipe(m);
	return rc;
}

/* Copy a peer's entry out of the table; 0 found, -1 not. */
static int
peer_copy(const char *name, struct pmsg_peer *out)
{
	size_t i;
	int rc = -1;

	pthread_mutex_lock(&C.lock);
	for (i = 0; i < C.n_peers; i++) {
		if (strcmp(C.peers[i].name, name) == 0) {
			*out = C.peers[i];
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&C.lock);
	return rc;
}

static void
deadline_after(struct timespec *ts, int ms)
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
static void
waiter_add(struct waiter *w)
{
	pthread_mutex_lock(&C.lock);
	w->reqid = ++C.next_reqid;
	if (w->reqid == 0)
		w->reqid = ++C.next_reqid;
	w->done = false;
	w->next = C.waiters;
	C.waiters = w;
	pthread_mutex_unlock(&C.lock);
}

/* Wait for every waiter of the array (until the deadline), then unlink
   them; one that got no answer reads code 25. */
static void
waiters_wait(struct waiter *ws, size_t n, int timeout_ms)
{
	struct timespec ts;
	struct waiter **pp;
	size_t i;
	bool all;

	deadline_after(&ts, timeout_ms);
	pthread_mutex_lock(&C.lock);
	for (;;) {
		all = true;
		for (i = 0; i < n; i++)
			if (!ws[i].done)
				all = false;
		if (all || atomic_load(&C.stopping))
			break;
		if (pthread_cond_timedwait(&C.cond, &C.lock, &ts) == ETIMEDOUT)
			break;
	}
	for (i = 0; i < n; i++) {
		if (!ws[i].done) {
			ws[i].code = PSYNC_E_UPDATE_FAILED;
			str_copy(ws[i].reason, "no answer from psyncd's parent "
			    "process", sizeof(ws[i].reason));
		}
		for (pp = &C.waiters; *pp != NULL; pp = &(*pp)->next) {
			if (*pp == &ws[i]) {
				*pp = ws[i].next;
				break;
			}
		}
	}
	pthread_mutex_unlock(&C.lock);
}

static void
waiter_answer(uint32_t reqid, int code, const char *reason)
{
	struct waiter *w;

	pthread_mutex_lock(&C.lock);
	for (w = C.waiters; w != NULL; w = w->next) {
		if (w->reqid == reqid) {
			w->code = code;
			str_copy(w->reason, reason, sizeof(w->reason));
			w->done = true;
			pthread_cond_broadcast(&C.cond);
			break;
		}
	}
	pthread_mutex_unlock(&C.lock);
	if (w == NULL)
		log_debug("network child: answer for request %u that nobody "
		    "waits for any more", reqid);
}

/* ---- psync listener ------------------------------------------------ */

static int
psk_lookup(void *ctx, const char *identity, unsigned char key[WIRE_KEY_LEN])
{
	struct pmsg_peer p;
	char name[FRAME_NAME_MAX + 1];
	uint32_t id;
	int rc = -1;

	(void)ctx;
	memset(&p, 0, sizeof(p));
	if (pmsg_identity_parse(identity, name, sizeof(name), &id) == -1)
		goto done;
	/* The id only picks between the current and the next key: any
	   other id gets the current one, and fails as a key mismatch
	   (8203) unless the client holds that key after all. */
	if (peer_copy(name, &p) == 0 && p.protocol == PROTO_PSYNC &&
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

/* A handshake with peer used our next key: the parent makes it current. */
static void
key_used(const char *peer, uint32_t id)
{
	struct pmsg m;

	memset(&m, 0, sizeof(m));
	m.type = PMSG_KEY_USED;
	str_copy(m.u.kused.peer, peer, sizeof(m.u.kused.peer));
	m.u.kused.key_id = id;
	(void)send_parent(&m);
}

static void
send_result(struct wire_conn *c, const uint8_t id[FRAME_ID_LEN], int code,
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
forward_changes(struct wire_conn *c, const char *peer, struct frame *fs,
    size_t n)
{
	struct waiter ws[CHILD_BATCH_MAX];
	struct pmsg m;
	size_t i;

	for (i = 0; i < n; i++) {
		waiter_add(&ws[i]);
		memset(&m, 0, sizeof(m));
		m.type = PMSG_INBOUND;
		m.reqid = ws[i].reqid;
		m.u.inbound.protocol = PROTO_PSYNC;
		str_copy(m.u.inbound.peer, peer, sizeof(m.u.inbound.peer));
		m.u.inbound.change = fs[i].u.change;
		if (send_parent(&m) == -1) {
			ws[i].done = true;
			ws[i].code = PSYNC_E_UPDATE_FAILED;
			str_copy(ws[i].reason, "cannot reach psyncd's parent "
			    "process", sizeof(ws[i].reason));
		}
	}
	waiters_wait(ws, n, CHILD_REPLY_TIMEOUT_MS);
	for (i = 0; i < n; i++)
		send_result(c, fs[i].u.change.id, ws[i].code, ws[i].reason);
	return 0;
}

/* A peer proposes a new key: the parent stores it, then we confirm. */
static bool
key_proposed(struct wire_conn *c, const char *peer, uint32_t auth_id,
    const struct frame_key_propose *kp)
{
	struct waiter w;
	struct pmsg m;
	struct frame f;
	struct psync_err err;
	bool ok = false;

	waiter_add(&w);
	memset(&m, 0, sizeof(m));
	m.type = PMSG_KEY_PROPOSED;
	m.reqid = w.reqid;
	str_copy(m.u.kproposed.peer, peer, sizeof(m.u.kproposed.peer));
	m.u.kproposed.auth_id = auth_id;
	m.u.kproposed.key_id = kp->key_id;
	memcpy(m.u.kproposed.key, kp->key, FRAME_KEY_LEN);
	if (kp->key_id == 0 || send_parent(&m) == -1) {
		w.done = true;
		w.code = PSYNC_E_PROTOCOL;
		str_copy(w.reason, kp->key_id == 0 ? "key id 0 is never "
		    "proposed" : "cannot reach psyncd's parent process",
		    sizeof(w.reason));
	}
	waiters_wait(&w, 1, CHILD_REPLY_TIMEOUT_MS);
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

static void *
conn_thread(void *arg)
{
	int fd = (int)(intptr_t)arg;
	struct frame_hello ours, theirs;
	struct wire_conn *c = NULL;
	struct frame *fs = NULL;
	struct psync_err err;
	struct pmsg_peer p;
	enum wire_status st;
	char peer[FRAME_NAME_MAX + 1];
	uint32_t auth_id = 0;
	size_t n = 0, i, k;

	memset(&p, 0, sizeof(p));
	fs = calloc(CHILD_BATCH_MAX, sizeof(*fs));
	if (fs == NULL) {
		close(fd);
		goto done;
	}
	c = wire_accept_fd(C.srv, fd, CHILD_HELLO_TIMEOUT_MS, &err);
	if (c == NULL) {
		log_debug("psync listener: %s", err.msg);
		goto done;
	}
	memset(&ours, 0, sizeof(ours));
	str_copy(ours.node, C.node, sizeof(ours.node));
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
	if (auth_id != 0 && peer_copy(peer, &p) == 0 && p.has_next &&
	    p.next_id == auth_id)
		key_used(peer, auth_id);
	secure_wipe(&p, sizeof(p));
	while (!atomic_load(&C.stopping)) {
		n = 0;
		st = wire_recv(c, &fs[0], 1000, &err);
		if (st == WIRE_TIMEOUT)
			continue;
		if (st != WIRE_FRAME)
			break;
		n = 1;
		/* Take whatever else the peer pipelined: one batch, one
		   shadow rewrite in the parent. */
		while (n < CHILD_BATCH_MAX && fs[n - 1].type == FRAME_CHANGE &&
		    wire_pending(c)) {
			st = wire_recv(c, &fs[n], 0, &err);
			if (st != WIRE_FRAME)
				break;
			n++;
		}
		/* The changes first (batching stops at anything else), then
		   the frame that ended the batch. */
		for (k = 0; k < n && fs[k].type == FRAME_CHANGE; k++)
			;
		if (k > 0)
			forward_changes(c, peer, fs, k);
		for (i = k; i < n; i++) {
			if (fs[i].type == FRAME_PING) {
				struct frame pong;

				frame_set_ping(&pong, true, fs[i].u.ping.seq);
				(void)wire_send(c, &pong, &err);
			} else if (fs[i].type == FRAME_KEY_PROPOSE) {
				if (!key_proposed(c, peer, auth_id,
				    &fs[i].u.key_propose))
					goto done;
			} else {
				log_warnx("peer %s: unexpected %s frame; "
				    "closing", peer,
				    frame_type_name((int)fs[i].type));
				goto done;
			}
		}
		for (i = 0; i < n; i++)
			frame_wipe(&fs[i]);
		n = 0;
	}
done:
	if (fs != NULL) {
		for (i = 0; i < CHILD_BATCH_MAX; i++)
			frame_wipe(&fs[i]);
		free(fs);
	}
	if (c != NULL)
		wire_close(c);
	pthread_mutex_lock(&C.lock);
	C.conns--;
	pthread_mutex_unlock(&C.lock);
	return NULL;
}

static void *
accept_thread(void *arg)
{
	struct pollfd p;
	pthread_attr_t attr;
	pthread_t t;
	int fd;

	(void)arg;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	while (!atomic_load(&C.stopping)) {
		p.fd = C.psync_fd;
		p.events = POLLIN;
		if (poll(&p, 1, 500) <= 0)
			continue;
		fd = accept4(C.psync_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd == -1)
			continue;
		pthread_mutex_lock(&C.lock);
		if (C.conns >= CHILD_MAX_CONNS) {
			pthread_mutex_unlock(&C.lock);
			log_warnx("psync listener: %d connections already; "
			    "refusing one more", CHILD_MAX_CONNS);
			close(fd);
			continue;
		}
		C.conns++;
		pthread_mutex_unlock(&C.lock);
		if (pthread_create(&t, &attr, conn_thread,
		    (void *)(intptr_t)fd) != 0) {
			log_warnx("psync listener: cannot start a thread");
			close(fd);
			pthread_mutex_lock(&C.lock);
			C.conns--;
			pthread_mutex_unlock(&C.lock);
		}
	}
	pthread_attr_destroy(&attr);
	return NULL;
}

/* ---- MEPP listener ------------------------------------------------- */

int
child_mepp_decide(void *ctx, const char *peer, int type, const char *user,
    const char *password)
{
	struct waiter w;
	struct pmsg m;
	size_t plen = strlen(password);

	(void)ctx;
	if (strlen(user) == 0 || strlen(user) > FRAME_USER_MAX ||
	    strlen(peer) == 0 || strlen(peer) > FRAME_NAME_MAX)
		return PSYNC_E_BAD_USER;
	if (plen == 0 || plen > FRAME_SECRET_MAX)
		return PSYNC_E_BAD_PASSWORD;
	waiter_add(&w);
	memset(&m, 0, sizeof(m));
	m.type = PMSG_INBOUND;
	m.reqid = w.reqid;
	m.u.inbound.protocol = PROTO_MEPP;
	m.u.inbound.mepp_type = type == MEPP_TYPE_CHECK ? 2 : 0;
	str_copy(m.u.inbound.peer, peer, sizeof(m.u.inbound.peer));
	/* The parent gives a MEPP change its id and time. */
	str_copy(m.u.inbound.change.origin, peer,
	    sizeof(m.u.inbound.change.origin));
	str_copy(m.u.inbound.change.user, user, sizeof(m.u.inbound.change.user));
	m.u.inbound.change.secret_kind = FRAME_SECRET_CLEARTEXT;
	memcpy(m.u.inbound.change.secret, password, plen);
	m.u.inbound.change.secret_len = (uint16_t)plen;
	if (send_parent(&m) == -1) {
		w.done = true;
		w.code = PSYNC_E_UPDATE_FAILED;
	}
	waiters_wait(&w, 1, CHILD_REPLY_TIMEOUT_MS);
	return w.code;
}

static void *
mepp_thread(void *arg)
{
	(void)arg;
	if (mepp_listener_run(C.mepp) == -1)
		log_warnx("MEPP listener stopped on an error");
	return NULL;
}

/* ---- outbound ------------------------------------------------------ */

static void
report(const uint8_t id[FRAME_ID_LEN], const char *peer, int code,
    const char *reason)
{
	struct pmsg m;

	memset(&m, 0, sizeof(m));
	m.type = PMSG_DELIVERY_RESULT;
	memcpy(m.u.dresult.id, id, FRAME_ID_LEN);
	str_copy(m.u.dresult.peer, peer, sizeof(m.u.dresult.peer));
	m.u.dresult.code = code;
	str_copy(m.u.dresult.reason, reason, sizeof(m.u.dresult.reason));
	(void)send_parent(&m);
}

/* Dial with one of the peer's keys; the identity (and so our HELLO)
   names its id. */
static struct wire_conn *
dial_key(const struct pmsg_peer *p, const unsigned char *key, uint32_t id,
    uint32_t *caps, struct psync_err *err)
{
	struct wire_client_opts o;
	struct frame_hello ours, theirs;
	struct wire_conn *c;
	char ident[FRAME_NAME_MAX + 1];

	if (pmsg_identity_make(C.node, id, ident, sizeof(ident)) == -1) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: node name %s with key "
		    "id %u does not fit an identity", p->name, C.node, id);
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
dial(const struct pmsg_peer *p, uint32_t *caps, struct psync_err *err)
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
	c = dial_key(p, next ? p->next : p->key, next ? p->next_id :
	    p->key_id, caps, err);
	if (c == NULL && p->has_next && err->code != PSYNC_E_OPEN) {
		log_info("peer %s: handshake with key id %u failed; trying "
		    "key id %u", p->name, next ? p->next_id : p->key_id,
		    next ? p->key_id : p->next_id);
		next = !next;
		c = dial_key(p, next ? p->next : p->key, next ? p->next_id :
		    p->key_id, caps, err);
	}
	if (c != NULL && next)
		key_used(p->name, p->next_id);
	return c;
}

/* Is an idle connection still sound? Reads what the peer sent meanwhile. */
static bool
conn_alive(struct wire_conn *c)
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
deliver_psync(struct worker *w, const struct pmsg_peer *p, struct job *jobs)
{
	struct psync_err err;
	struct frame f;
	struct job *j;
	size_t n = 0, answered = 0;
	bool *done = NULL;
	enum wire_status st;
	int tries;
	size_t i;

	for (j = jobs; j != NULL; j = j->next)
		n++;
	done = calloc(n, sizeof(*done));
	if (done == NULL) {
		for (j = jobs; j != NULL; j = j->next)
			report(j->change.id, p->name, -1, "out of memory");
		return;
	}
	for (tries = 0; tries < 2; tries++) {
		if (w->conn != NULL && !conn_alive(w->conn)) {
			wire_close(w->conn);
			w->conn = NULL;
		}
		if (w->conn == NULL) {
			w->conn = dial(p, &w->conn_caps, &err);
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
	while (answered < n) {
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
					report(j->change.id, p->name,
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
	if (answered == n)
		goto done;
	wire_close(w->conn);
	w->conn = NULL;
fail_all:
	for (i = 0, j = jobs; j != NULL; j = j->next, i++)
		if (!done[i])
			report(j->change.id, p->name, -1, err.msg);
done:
	free(done);
}

static void
deliver_mepp(const struct pmsg_peer *p, struct job *jobs)
{
	struct mepp_client mc;
	struct psync_err err;
	struct job *j;
	int code;

	memset(&mc, 0, sizeof(mc));
	mc.host = p->address;
	mc.port = p->port;
	mc.secret = (const char *)p->key;
	mc.connect_timeout_ms = (int)(p->connect_timeout > 0 ?
	    p->connect_timeout : 10) * 1000;
	for (j = jobs; j != NULL; j = j->next) {
		if (p->address[0] == '\0') {
			report(j->change.id, p->name, -1, p->resolve_error);
			continue;
		}
		if (j->change.secret_kind != FRAME_SECRET_CLEARTEXT) {
			report(j->change.id, p->name, PSYNC_E_BAD_PASSWORD,
			    "a MEPP peer needs the password, not a hash");
			continue;
		}
		code = mepp_client_change(&mc, j->change.user,
		    (const char *)j->change.secret, &err);
		if (code == -1)
			report(j->change.id, p->name, -1, err.msg);
		else
			report(j->change.id, p->name, code,
			    mepp_result_reason(code));
	}
}

static void
key_result(uint32_t reqid, const char *peer, uint32_t id, int code,
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
	(void)send_parent(&m);
}

/* Wait until the parent's table says key id is current for peer. */
static bool
wait_key_current(const char *peer, uint32_t id)
{
	struct timespec ts;
	size_t i;
	bool found = false;

	deadline_after(&ts, CHILD_TABLE_WAIT_MS);
	pthread_mutex_lock(&C.lock);
	while (!atomic_load(&C.stopping)) {
		for (i = 0; i < C.n_peers; i++)
			if (strcmp(C.peers[i].name, peer) == 0 &&
			    C.peers[i].key_id == id)
				found = true;
		if (found || pthread_cond_timedwait(&C.cond, &C.lock,
		    &ts) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&C.lock);
	return found;
}

/*
 * Our own proposal: KEY-PROPOSE over the current channel, then wait for
 * KEY-CONFIRM. After a confirmation the parent makes the key current;
 * we reconnect with it at once, which tells the peer to do the same.
 */
static void
propose_key(struct worker *w, const struct pmsg_peer *p, uint32_t reqid,
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
	if (w->conn != NULL && !conn_alive(w->conn)) {
		wire_close(w->conn);
		w->conn = NULL;
	}
	if (w->conn == NULL && (w->conn = dial(p, &w->conn_caps,
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
	key_result(reqid, p->name, kp->key_id, code, reason);
	if (code == 0 && wait_key_current(p->name, kp->key_id) &&
	    peer_copy(p->name, &np) == 0) {
		w->conn = dial(&np, &w->conn_caps, &err);
		if (w->conn == NULL)
			log_warnx("peer %s: reconnecting with key id %u: %s",
			    p->name, kp->key_id, err.msg);
	}
	secure_wipe(&np, sizeof(np));
}

static void
jobs_free(struct job *j)
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
	struct pmsg_peer p;
	struct pmsg_key_propose prop;
	struct job *jobs, *j;
	uint32_t prop_reqid;
	bool has_prop;

	for (;;) {
		pthread_mutex_lock(&C.lock);
		while (w->head == NULL && !w->has_prop && !w->stop)
			pthread_cond_wait(&C.cond, &C.lock);
		if (w->head == NULL && !w->has_prop && w->stop) {
			pthread_mutex_unlock(&C.lock);
			break;
		}
		jobs = w->head;
		w->head = w->tail = NULL;
		has_prop = w->has_prop;
		prop = w->prop;
		prop_reqid = w->prop_reqid;
		w->has_prop = false;
		secure_wipe(&w->prop, sizeof(w->prop));
		pthread_mutex_unlock(&C.lock);
		if (has_prop) {
			if (peer_copy(w->peer, &p) == -1)
				key_result(prop_reqid, w->peer, prop.key_id, -1,
				    "no such peer in the configuration");
			else
				propose_key(w, &p, prop_reqid, &prop);
			secure_wipe(&prop, sizeof(prop));
			secure_wipe(&p, sizeof(p));
		}
		if (jobs == NULL)
			continue;
		if (peer_copy(w->peer, &p) == -1) {
			for (j = jobs; j != NULL; j = j->next)
				report(j->change.id, w->peer, -1,
				    "no such peer in the configuration");
		} else if (p.protocol == PROTO_MEPP) {
			deliver_mepp(&p, jobs);
		} else {
			deliver_psync(w, &p, jobs);
		}
		secure_wipe(&p, sizeof(p));
		jobs_free(jobs);
	}
	if (w->conn != NULL)
		wire_close(w->conn);
	w->conn = NULL;
	return NULL;
}

/* The worker of a peer, started when first needed; C.lock held. */
static struct worker *
worker_get(const char *peer)
{
	struct worker *w;

	for (w = C.workers; w != NULL; w = w->next)
		if (strcmp(w->peer, peer) == 0)
			return w;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	str_copy(w->peer, peer, sizeof(w->peer));
	if (pthread_create(&w->thread, NULL, worker_thread, w) != 0) {
		free(w);
		return NULL;
	}
	w->next = C.workers;
	C.workers = w;
	return w;
}

static void
propose(uint32_t reqid, const struct pmsg_key_propose *kp)
{
	struct worker *w;

	pthread_mutex_lock(&C.lock);
	w = worker_get(kp->peer);
	if (w != NULL) {
		/* A newer request replaces one not yet taken; the parent
		   gets no answer for that one and times it out. */
		w->prop = *kp;
		w->prop_reqid = reqid;
		w->has_prop = true;
		pthread_cond_broadcast(&C.cond);
	}
	pthread_mutex_unlock(&C.lock);
	if (w == NULL)
		key_result(reqid, kp->peer, kp->key_id, -1,
		    "cannot start a delivery thread");
}

static void
deliver(const struct pmsg_deliver *d)
{
	struct worker *w;
	struct job *j;

	j = calloc(1, sizeof(*j));
	if (j == NULL) {
		report(d->change.id, d->peer, -1, "out of memory");
		return;
	}
	j->change = d->change;
	pthread_mutex_lock(&C.lock);
	w = worker_get(d->peer);
	if (w == NULL) {
		pthread_mutex_unlock(&C.lock);
		report(d->change.id, d->peer, -1, "cannot start a delivery "
		    "thread");
		jobs_free(j);
		return;
	}
	if (w->tail != NULL)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	pthread_cond_broadcast(&C.cond);
	pthread_mutex_unlock(&C.lock);
}

/* ---- channel checks ------------------------------------------------ */

struct verify_job {
	uint32_t		reqid;
	struct pmsg_verify	v;
};

static void *
verify_thread(void *arg)
{
	struct verify_job *vj = arg;
	struct pmsg_peer p;
	struct psync_err err;
	struct mepp_client mc;
	struct wire_conn *c;
	struct pmsg m;
	uint32_t caps;
	int code;

	memset(&m, 0, sizeof(m));
	m.type = PMSG_VERIFY_RESULT;
	m.reqid = vj->reqid;
	m.u.vresult.step = VERIFY_OTHER;
	if (peer_copy(vj->v.peer, &p) == -1) {
		snprintf(m.u.vresult.message, sizeof(m.u.vresult.message),
		    "the network process does not know peer %s", vj->v.peer);
		goto done;
	}
	if (p.address[0] == '\0') {
		m.u.vresult.step = VERIFY_RESOLVE;
		str_copy(m.u.vresult.message, p.resolve_error,
		    sizeof(m.u.vresult.message));
		goto done;
	}
	if (p.protocol == PROTO_PSYNC) {
		c = dial(&p, &caps, &err);
		if (c == NULL) {
			m.u.vresult.code = err.code;
			/* wire reports a failed connect as code 3, a failed
			   handshake with its own codes, and HELLO problems
			   name the HELLO. */
			if (err.code == PSYNC_E_OPEN)
				m.u.vresult.step = VERIFY_CONNECT;
			else if (strstr(err.msg, "HELLO") != NULL ||
			    (err.code == PSYNC_E_VERSION_MISMATCH &&
			    strstr(err.msg, "TLS") == NULL))
				m.u.vresult.step = VERIFY_VERSION;
			else
				m.u.vresult.step = VERIFY_HANDSHAKE;
			str_copy(m.u.vresult.message, err.msg,
			    sizeof(m.u.vresult.message));
			goto done;
		}
		wire_close(c);
	} else {
		/* A type 2 check proves the key; with a named user the
		   peer's answer for that user counts too. */
		memset(&mc, 0, sizeof(mc));
		mc.host = p.address;
		mc.port = p.port;
		mc.secret = (const char *)p.key;
		code = mepp_client_check(&mc, vj->v.user[0] != '\0' ?
		    vj->v.user : "psync-verify", &err);
		if (code == -1) {
			m.u.vresult.step = err.code == MEPP_STEP_RESOLVE ?
			    VERIFY_RESOLVE : err.code == MEPP_STEP_CONNECT ||
			    err.code == MEPP_STEP_TIMEOUT ? VERIFY_CONNECT :
			    VERIFY_HANDSHAKE;
			str_copy(m.u.vresult.message, err.msg,
			    sizeof(m.u.vresult.message));
			goto done;
		}
		if (code == PSYNC_E_DECRYPT || code == PSYNC_E_PROTOCOL) {
			m.u.vresult.step = VERIFY_HANDSHAKE;
			m.u.vresult.code = code;
			if (snprintf(m.u.vresult.message,
			    sizeof(m.u.vresult.message), "%d: peer %.64s "
			    "cannot read our request (code %d, %s): the MEPP "
			    "keys differ", PSYNC_MSG_KEY_MISMATCH, p.name, code,
			    mepp_result_reason(code)) < 0)
				m.u.vresult.message[0] = '\0';
			goto done;
		}
		if (code != 0 && vj->v.user[0] != '\0') {
			m.u.vresult.step = VERIFY_POLICY;
			m.u.vresult.code = code;
			if (snprintf(m.u.vresult.message,
			    sizeof(m.u.vresult.message), "peer %.64s refuses "
			    "a change for %.64s: code %d (%s)", p.name,
			    vj->v.user, code, mepp_result_reason(code)) < 0)
				m.u.vresult.message[0] = '\0';
			goto done;
		}
	}
	m.u.vresult.step = VERIFY_OK;
	m.u.vresult.code = 0;
	m.u.vresult.message[0] = '\0';
done:
	secure_wipe(&p, sizeof(p));
	(void)send_parent(&m);
	free(vj);
	return NULL;
}

static void
verify(uint32_t reqid, const struct pmsg_verify *v)
{
	struct verify_job *vj;
	pthread_attr_t attr;
	pthread_t t;
	struct pmsg m;

	vj = calloc(1, sizeof(*vj));
	if (vj != NULL) {
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
	(void)send_parent(&m);
}

/* ---- start-up ------------------------------------------------------ */

static void
drop_privileges(const struct child_setup *s)
{
	if (chroot(s->chroot_dir) == -1)
		fatal("network child: chroot %s", s->chroot_dir);
	if (chdir("/") == -1)
		fatal("network child: chdir / in %s", s->chroot_dir);
	if (setgroups(1, &s->gid) == -1)
		fatal("network child: setgroups for user %s", s->user);
	if (setresgid(s->gid, s->gid, s->gid) == -1)
		fatal("network child: setresgid %u for user %s",
		    (unsigned int)s->gid, s->user);
	if (setresuid(s->uid, s->uid, s->uid) == -1)
		fatal("network child: setresuid %u for user %s",
		    (unsigned int)s->uid, s->user);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("network child: PR_SET_NO_NEW_PRIVS");
	/* Prove it: none of these may work any more. */
	if (s->uid != 0 && (setuid(0) != -1 || seteuid(0) != -1 ||
	    setgid(0) != -1 || chroot("/") != -1))
		fatalx("network child: could still regain root after dropping "
		    "to user %s; stopping", s->user);
}

static void
table_swap(const struct pmsg_peers_end *e)
{
	size_t i;

	pthread_mutex_lock(&C.lock);
	if (C.peers != NULL) {
		secure_wipe(C.peers, C.n_peers * sizeof(*C.peers));
		free(C.peers);
	}
	C.peers = C.staging;
	C.n_peers = C.n_staging;
	C.staging = NULL;
	C.n_staging = 0;
	/* A worker may wait for a promoted key to arrive. */
	pthread_cond_broadcast(&C.cond);
	/* Threads read the node name without the lock: it is only written
	   when it really changes (a reload that renames the node). */
	if (strcmp(C.node, e->node) != 0) {
		str_copy(C.node_buf, e->node, sizeof(C.node_buf));
		C.node = C.node_buf;
	}
	pthread_mutex_unlock(&C.lock);
	if (e->n_peers != C.n_peers)
		fatalx("network child: peer table of %zu entries, the parent "
		    "announced %u", C.n_peers, e->n_peers);
	for (i = 0; i < C.n_peers; i++)
		log_debug("network child: peer %s at %s port %u",
		    C.peers[i].name, C.peers[i].address, C.peers[i].port);
}

static void
staging_add(const struct pmsg_peer *p)
{
	struct pmsg_peer *n;

	n = realloc(C.staging, (C.n_staging + 1) * sizeof(*n));
	if (n == NULL)
		fatalx("network child: out of memory for the peer table");
	C.staging = n;
	C.staging[C.n_staging++] = *p;
}

static void
shutdown_workers(void)
{
	struct worker *w, *next;

	pthread_mutex_lock(&C.lock);
	for (w = C.workers; w != NULL; w = w->next)
		w->stop = true;
	pthread_cond_broadcast(&C.cond);
	pthread_mutex_unlock(&C.lock);
	for (w = C.workers; w != NULL; w = next) {
		next = w->next;
		pthread_join(w->thread, NULL);
		jobs_free(w->head);
		free(w);
	}
	C.workers = NULL;
}

void
child_main(const struct child_setup *s)
{
	unsigned char *buf;
	struct wire_server_opts so;
	struct psync_err err;
	struct pmsg m;
	pthread_t accept_t, mepp_t;
	bool have_accept = false, have_mepp = false;
	sigset_t all;

	C.sock = s->sock;
	C.node = s->node;
	C.psync_fd = s->psync_fd;
	C.mepp = s->mepp;
	atomic_init(&C.stopping, false);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	/* The parent decides when we stop (SHUTDOWN, or our socket closes). */
	signal(SIGINT, SIG_IGN);
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1)
		log_warn("network child: PR_SET_PDEATHSIG");
	if (prctl(PR_SET_NAME, "psyncd-net", 0, 0, 0) == -1)
		log_debug("network child: cannot name the process");
	/* Everything that reads files is done before the chroot. */
	if (mepp_crypto_init(&err) == -1)
		log_warnx("network child: %s (MEPP peers will fail)", err.msg);
	memset(&so, 0, sizeof(so));
	so.psk_lookup = psk_lookup;
	so.io_timeout_ms = CHILD_RESULT_TIMEOUT_MS;
	C.srv = wire_server_new(&so, &err);
	if (C.srv == NULL)
		fatalx("network child: %s", err.msg);
	drop_privileges(s);
	log_info("network child running as %s in %s", s->user, s->chroot_dir);

	buf = malloc(PMSG_HDR_LEN + PMSG_MAX);
	if (buf == NULL)
		fatalx("network child: out of memory");
	/* Wait for the first peer table before serving anyone. */
	for (;;) {
		if (pmsg_read(C.sock, buf, PMSG_FROM_PARENT, &m, &err) == -1)
			fatalx("network child: %s", err.msg);
		if (m.type == PMSG_PEER) {
			staging_add(&m.u.peer);
		} else if (m.type == PMSG_PEERS_END) {
			table_swap(&m.u.peers_end);
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
	if (C.psync_fd != -1) {
		if (pthread_create(&accept_t, NULL, accept_thread, NULL) != 0)
			fatalx("network child: cannot start the psync listener");
		have_accept = true;
	}
	if (C.mepp != NULL) {
		if (pthread_create(&mepp_t, NULL, mepp_thread, NULL) != 0)
			fatalx("network child: cannot start the MEPP listener");
		have_mepp = true;
	}
	for (;;) {
		if (pmsg_read(C.sock, buf, PMSG_FROM_PARENT, &m, &err) == -1) {
			if (err.code != PSYNC_OK)
				log_warnx("network child: %s", err.msg);
			break;
		}
		switch (m.type) {
		case PMSG_PEER:
			staging_add(&m.u.peer);
			break;
		case PMSG_PEERS_END:
			table_swap(&m.u.peers_end);
			break;
		case PMSG_INBOUND_RESULT:
			waiter_answer(m.reqid, m.u.iresult.code,
			    m.u.iresult.reason);
			break;
		case PMSG_DELIVER:
			deliver(&m.u.deliver);
			break;
		case PMSG_VERIFY:
			verify(m.reqid, &m.u.verify);
			break;
		case PMSG_KEY_PROPOSE:
			propose(m.reqid, &m.u.kpropose);
			break;
		case PMSG_SHUTDOWN:
			pmsg_wipe(&m);
			goto stop;
		default:
			fatalx("network child: unexpected %s message",
			    pmsg_type_name(m.type));
		}
		pmsg_wipe(&m);
	}
stop:
	atomic_store(&C.stopping, true);
	pthread_mutex_lock(&C.lock);
	pthread_cond_broadcast(&C.cond);
	pthread_mutex_unlock(&C.lock);
	if (have_mepp) {
		mepp_listener_stop(C.mepp);
		pthread_join(mepp_t, NULL);
	}
	if (have_accept)
		pthread_join(accept_t, NULL);
	shutdown_workers();
	free(buf);
	_exit(0);
}
