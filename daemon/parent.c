/*
 * psyncd's root parent: it owns the configuration, the policy, the host
 * key, the queue and the store, and does only the privileged work. One
 * poll() loop serves the network child's socketpair, the control socket,
 * the spool directory (inotify), signals (signalfd) and a timer for due
 * deliveries, expiry and queue warnings.
 *
 * Everything the child says is hostile input: pmsg_decode() checks the
 * bytes, and the handlers below check the meaning (the peer exists, may
 * send to us, speaks that protocol) before anything is applied.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
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
#include "parent.h"
#include "pmsg.h"
#include "policy.h"
#include "psyncd.h"
#include "queue.h"
#include "samba_applied.h"
#include "seal.h"
#include "spool.h"
#include "store.h"
#include "wire.h"

#define TICK_MS			1000
#define DUE_BATCH		256
#define INFLIGHT_MAX		4096
#define INFLIGHT_TIMEOUT_MS	(120 * 1000)
/*
 * CHANGEs in flight to one peer. The network child does not read while a
 * write blocks, so the bytes in flight each way must fit in the sockets'
 * buffers (doc/protocol.md, "Pipelining"): 128 ordinary CHANGEs are ~40 KB.
 */
#define PEER_INFLIGHT_MAX	128
#define WARN_EVERY_MS		(60 * 1000)
#define STALE_TMP_SECONDS	60
#define INBOUND_BATCH_MAX	512
#define CHILD_GRACE_MS		5000
#define RBUF_CAP		(4 * (PMSG_HDR_LEN + PMSG_MAX))
#define ROT_MAX			64	/* proposals in flight */
#define ROT_TIMEOUT_MS		(120 * 1000)
#define ROT_RETRY_MS		(60 * 1000)	/* re-propose a pending key */
#define ROT_CHECK_MS		(60 * 1000)	/* automatic rotation check */
#define DAY_SECONDS		(24 * 3600)

struct inflight {
	uint8_t		id[FRAME_ID_LEN];
	char		peer[FRAME_NAME_MAX + 1];
	char		user[FRAME_USER_MAX + 1];
	uint64_t	sent_ms;
};

/* One of our key proposals, waiting for the child's KEY_RESULT. */
struct rotation {
	char		peer[FRAME_NAME_MAX + 1];
	uint32_t	reqid;
	uint32_t	key_id;
	uint64_t	sent_ms;
	bool		control;	/* a psyncctl client waits for it */
};

struct pending_in {
	uint32_t		reqid;
	struct pmsg_inbound	in;
};

static struct parent P;
static struct rotation rots[ROT_MAX];
static size_t n_rots;

uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
id_hex(const uint8_t id[FRAME_ID_LEN], char out[QUEUE_ID_HEX_LEN + 1])
{
	queue_id_hex(id, out);
}

/* ---- configuration and the peer table ------------------------------ */

static void
report_problem(void *ctx, const char *message)
{
	(void)ctx;
	log_warnx("%s", message);
}

/* Read a MEPP key: inline text, or the first line of a private file. */
static int
read_mepp_key(const struct peer_conf *pc, char *out, size_t len,
    struct psync_err *err)
{
	char buf[PMSG_KEYTEXT_MAX + 2];
	ssize_t n;
	int fd, rc = -1;

	if (pc->legacy_key != NULL && pc->legacy_key[0] != '\0') {
		if (strlen(pc->legacy_key) >= len) {
			perr_set(err, PSYNC_E_OPEN, "peer %s: key too long",
			    pc->name);
			return -1;
		}
		str_copy(out, pc->legacy_key, len);
		return 0;
	}
	fd = file_open_trusted(pc->key_file, true, err);
	if (fd == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		perr_set(err, PSYNC_E_OPEN, "%s: %s", pc->key_file,
		    strerror(errno));
		goto done;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0' || strlen(buf) >= len) {
		perr_set(err, PSYNC_E_OPEN, "%s: the MEPP key must be one line "
		    "of 1 to %zu characters", pc->key_file, len - 1);
		goto done;
	}
	str_copy(out, buf, len);
	rc = 0;
done:
	secure_wipe(buf, sizeof(buf));
	close(fd);
	return rc;
}

/* Resolve a peer's address to a numeric literal (the child cannot). */
static void
resolve(const char *host, char *out, size_t len, char *why, size_t whylen)
{
	struct addrinfo hints, *res = NULL;
	int rc;

	out[0] = '\0';
	why[0] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, NULL, &hints, &res);
	if (rc != 0 || res == NULL) {
		snprintf(why, whylen, "cannot resolve %s: %s", host,
		    rc != 0 ? gai_strerror(rc) : "no address");
		goto done;
	}
	rc = getnameinfo(res->ai_addr, res->ai_addrlen, out, (socklen_t)len,
	    NULL, 0, NI_NUMERICHOST);
	if (rc != 0) {
		out[0] = '\0';
		snprintf(why, whylen, "cannot print the address of %s: %s",
		    host, gai_strerror(rc));
	}
done:
	if (res != NULL)
		freeaddrinfo(res);
}

/* Build one PEER message: the child's view of a configured peer. */
static int
peer_msg(const struct peer_conf *pc, struct pmsg *m, struct psync_err *err)
{
	struct pmsg_peer *pe = &m->u.peer;
	struct key_state ks;
	char text[PMSG_KEYTEXT_MAX + 1];
	size_t i;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	memset(&ks, 0, sizeof(ks));
	m->type = PMSG_PEER;
	str_copy(pe->name, pc->name, sizeof(pe->name));
	pe->protocol = (uint8_t)pc->protocol;
	pe->direction = (uint8_t)pc->direction;
	pe->port = (uint16_t)(pc->port != 0 ? pc->port :
	    pc->protocol == PROTO_MEPP ? PSYNC_MEPP_PORT : PSYNC_TLS_PORT);
	pe->connect_timeout = pc->connect_timeout;
	if (pc->address != NULL && pc->address[0] != '\0')
		resolve(pc->address, pe->address, sizeof(pe->address),
		    pe->resolve_error, sizeof(pe->resolve_error));
	else
		str_copy(pe->resolve_error, "no address configured",
		    sizeof(pe->resolve_error));
	if (pc->protocol == PROTO_PSYNC) {
		if (pc->key_file != NULL && pc->key_file[0] != '\0') {
			if (keys_load(P.q, pc, &ks, err) == -1)
				goto done;
			memcpy(pe->key, ks.cur, WIRE_KEY_LEN);
			pe->key_len = WIRE_KEY_LEN;
			pe->key_id = ks.cur_id;
			if (ks.has_next) {
				pe->has_next = 1;
				/* A key the peer proposed is one it holds. */
				pe->use_next = ks.next_ours ? 0 : 1;
				pe->next_id = ks.next_id;
				memcpy(pe->next, ks.next, WIRE_KEY_LEN);
			}
		}
	} else {
		if (read_mepp_key(pc, text, sizeof(text), err) == -1)
			goto done;
		pe->key_len = (uint16_t)strlen(text);
		memcpy(pe->key, text, pe->key_len);
	}
	if (pc->n_trusted > PMSG_TRUSTED_MAX) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: more than %d trusted "
		    "addresses", pc->name, PMSG_TRUSTED_MAX);
		goto done;
	}
	for (i = 0; i < pc->n_trusted; i++)
		str_copy(pe->trusted[i], pc->trusted[i], sizeof(pe->trusted[i]));
	pe->n_trusted = (uint8_t)pc->n_trusted;
	rc = 0;
done:
	keys_wipe(&ks);
	secure_wipe(text, sizeof(text));
	return rc;
}

/* Check every peer's keys now, so a reload with a bad key file fails. */
static struct pmsg *
build_table(const struct psync_config *conf, struct psync_err *err)
{
	struct pmsg *t;
	size_t i;

	t = calloc(conf->n_peers + 1, sizeof(*t));
	if (t == NULL) {
		perr_set(err, PSYNC_E_OPEN, "out of memory");
		return NULL;
	}
	for (i = 0; i < conf->n_peers; i++) {
		if (peer_msg(&conf->peers[i], &t[i], err) == -1) {
			secure_wipe(t, (conf->n_peers + 1) * sizeof(*t));
			free(t);
			return NULL;
		}
	}
	return t;
}

static void
send_child(struct pmsg *m)
{
	struct psync_err err;

	if (pmsg_write(P.child_fd, m, &err) == -1)
		log_warnx("cannot talk to the network child: %s", err.msg);
	pmsg_wipe(m);
}

static void
send_table(struct pmsg *t, size_t n)
{
	struct pmsg end;
	size_t i;

	for (i = 0; i < n; i++)
		send_child(&t[i]);
	memset(&end, 0, sizeof(end));
	end.type = PMSG_PEERS_END;
	str_copy(end.u.peers_end.node, P.conf->node_name,
	    sizeof(end.u.peers_end.node));
	end.u.peers_end.n_peers = (uint32_t)n;
	send_child(&end);
}

/* The store's fingerprints (lib/store_fp.c), as the configuration says. */
static void
fingerprints_setup(void)
{
	struct psync_err err;

	store_fp_disable();
	if (P.conf->store.type == STORE_FILES && P.conf->store.fingerprints &&
	    store_fp_enable(P.conf->queue.directory, P.host_key, &err) == -1)
		log_warnx("store: %s; every change is verified against the "
		    "stored hash", err.msg);
}

int
parent_reload(struct psync_err *err)
{
	struct psync_config *conf = NULL;
	struct policy *pol = NULL;
	struct pmsg *table = NULL;

	conf = config_load(P.opts->config_path, true, report_problem, NULL);
	if (conf == NULL) {
		perr_set(err, PSYNC_E_OPEN, "%s has errors (logged); the old "
		    "configuration stays", P.opts->config_path);
		goto fail;
	}
	if (strcmp(conf->queue.directory, P.conf->queue.directory) != 0 ||
	    strcmp(conf->queue.spool_directory,
	    P.conf->queue.spool_directory) != 0 ||
	    strcmp(conf->control_socket, P.conf->control_socket) != 0)
		log_warnx("reload: queue, spool and control socket paths only "
		    "change on a restart");
	pol = policy_new(conf, err);
	if (pol == NULL)
		goto fail;
	table = build_table(conf, err);
	if (table == NULL)
		goto fail;
	policy_free(P.pol);
	config_free(P.conf);
	P.conf = conf;
	P.pol = pol;
	log_set_level(P.opts->debug ? LOG_DEBUG : conf->log.level);
	fingerprints_setup();
	send_table(table, conf->n_peers);
	free(table);
	log_info("configuration %s reloaded: %zu peers", conf->path,
	    conf->n_peers);
	return 0;
fail:
	policy_free(pol);
	config_free(conf);
	log_warnx("reload failed: %s", err->msg);
	return -1;
}

/* The keys changed: the child gets the whole table again. */
static int
resend_table(struct psync_err *err)
{
	struct pmsg *table;

	table = build_table(P.conf, err);
	if (table == NULL)
		return -1;
	send_table(table, P.conf->n_peers);
	free(table);
	return 0;
}

/* ---- outbound: spool to queue -------------------------------------- */

/*
 * The targets of a change: every peer we send to, except where it came
 * from, and, for a change that came from a peer, only relaying peers.
 * Each target is asked the policy; a refusal is logged and skipped.
 */
static size_t
targets_for(const struct frame_change *c, const char *source,
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
	found = account_lookup(&P.conf->store, c->user,
	    P.conf->policy.case_ignore_name, &acct, &err);
	id_hex(c->id, hex);
	for (i = 0; i < P.conf->n_peers && n < cap; i++) {
		pc = &P.conf->peers[i];
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
		if (policy_check(P.pol, &req, &v, NULL, NULL) != PSYNC_OK) {
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
spool_set_aside(const char *name, const char *why)
{
	char from[PATH_MAX], dir[PATH_MAX], to[2 * PATH_MAX + 2];
	const char *spool = P.conf->queue.spool_directory;

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
spool_take(const char *name)
{
	const char *targets[256];
	struct psync_err err;
	struct frame f;
	char path[PATH_MAX], hex[QUEUE_ID_HEX_LEN + 1];
	size_t n;
	int rc = -1, q;

	snprintf(path, sizeof(path), "%s/%s", P.conf->queue.spool_directory,
	    name);
	if (spool_read(P.conf->queue.spool_directory, name, P.host_key, &f,
	    &err) == -1) {
		/* Gone meanwhile (another scan took it): nothing to do. */
		if (access(path, F_OK) == -1 && errno == ENOENT)
			return 0;
		spool_set_aside(name, err.msg);
		return 0;
	}
	id_hex(f.u.change.id, hex);
	n = targets_for(&f.u.change, NULL, targets,
	    sizeof(targets) / sizeof(targets[0]));
	q = queue_add(P.q, &f.u.change, NULL, targets, n, &err);
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
	P.deliver_soon = true;
	rc = 0;
done:
	frame_wipe(&f);
	return rc;
}

static void
spool_scan(void)
{
	struct psync_err err;
	char **names = NULL;
	size_t n = 0, i;

	if (spool_list(P.conf->queue.spool_directory, &names, &n, &err) == -1) {
		log_warnx("spool: %s", err.msg);
		return;
	}
	for (i = 0; i < n; i++)
		if (spool_take(names[i]) == -1)
			break;
	spool_list_free(names, n);
}

/* pam_psync writes under ".NAME.tmp"; one left over a minute died. */
static void
spool_clean_stale(void)
{
	const char *dir = P.conf->queue.spool_directory;
	char path[PATH_MAX];
	struct dirent *de;
	struct stat st;
	size_t len;
	DIR *d;

	d = opendir(dir);
	if (d == NULL) {
		log_warn("spool: %s", dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
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
	closedir(d);
}

/* ---- deliveries ---------------------------------------------------- */

static struct inflight *
inflight_find(const uint8_t id[FRAME_ID_LEN], const char *peer)
{
	size_t i;

	for (i = 0; i < P.n_inflight; i++)
		if (memcmp(P.inflight[i].id, id, FRAME_ID_LEN) == 0 &&
		    strcmp(P.inflight[i].peer, peer) == 0)
			return &P.inflight[i];
	return NULL;
}

static void
inflight_remove(struct inflight *f)
{
	*f = P.inflight[--P.n_inflight];
}

/* The peer's place in the configuration; n_peers for one not in it. */
static size_t
peer_index(const char *name)
{
	const struct peer_conf *pc = config_find_peer(P.conf, name);

	return pc != NULL ? (size_t)(pc - P.conf->peers) : P.conf->n_peers;
}

static void
deliver_due(void)
{
	struct queue_item *items = P.items;
	struct psync_err err;
	struct pmsg m;
	struct inflight *f;
	const struct peer_conf *pc;
	uint64_t now = now_ms();
	size_t *per_peer = NULL;
	long n, i;

	/* A child that never answered (it restarts its connection) gets the
	   delivery again later; the peer applies an id once. */
	for (i = 0; i < (long)P.n_inflight; i++) {
		if (now - P.inflight[i].sent_ms > INFLIGHT_TIMEOUT_MS)
			inflight_remove(&P.inflight[i--]);
	}
	n = queue_due(P.q, NULL, items, DUE_BATCH, &err);
	if (n == -1) {
		log_warnx("queue: %s", err.msg);
		return;
	}
	if (n == 0)
		return;
	per_peer = calloc(P.conf->n_peers + 1, sizeof(*per_peer));
	if (per_peer == NULL) {
		log_warnx("deliveries: out of memory");
		goto done;
	}
	for (i = 0; i < (long)P.n_inflight; i++)
		per_peer[peer_index(P.inflight[i].peer)]++;
	for (i = 0; i < n; i++) {
		if (inflight_find(items[i].change.id, items[i].peer) != NULL ||
		    P.n_inflight >= INFLIGHT_MAX)
			continue;
		pc = config_find_peer(P.conf, items[i].peer);
		if (pc != NULL &&
		    per_peer[peer_index(pc->name)] >= PEER_INFLIGHT_MAX) {
			if (per_peer[peer_index(pc->name)]++ == PEER_INFLIGHT_MAX)
				log_debug("peer %s: %d changes in flight; the "
				    "next wait for their results", pc->name,
				    PEER_INFLIGHT_MAX);
			continue;
		}
		if (pc == NULL) {
			/* Removed from the configuration: give it up. */
			(void)queue_drop(P.q, items[i].change.id,
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
		if (policy_peer_name(P.pol, items[i].change.user,
		    m.u.deliver.change.user,
		    sizeof(m.u.deliver.change.user)) == -1)
			str_copy(m.u.deliver.change.user, items[i].change.user,
			    sizeof(m.u.deliver.change.user));
		f = &P.inflight[P.n_inflight++];
		memcpy(f->id, items[i].change.id, FRAME_ID_LEN);
		str_copy(f->peer, pc->name, sizeof(f->peer));
		str_copy(f->user, items[i].change.user, sizeof(f->user));
		f->sent_ms = now;
		per_peer[peer_index(pc->name)]++;
		send_child(&m);
	}
done:
	free(per_peer);
	secure_wipe(items, (size_t)(n > 0 ? n : 0) * sizeof(*items));
}

static void
delivery_result(const struct pmsg_delivery_result *r)
{
	struct psync_err err;
	struct inflight *f;
	char hex[QUEUE_ID_HEX_LEN + 1], user[FRAME_USER_MAX + 1];
	int state;

	f = inflight_find(r->id, r->peer);
	id_hex(r->id, hex);
	if (f == NULL) {
		log_warnx("network child reported a result for change %s to "
		    "peer %s, which was not being delivered; ignored", hex,
		    r->peer);
		return;
	}
	str_copy(user, f->user, sizeof(user));
	inflight_remove(f);
	state = queue_record(P.q, r->id, r->peer, r->code, r->reason, &err);
	if (state == -1) {
		log_warnx("queue: recording the result of change %s to peer "
		    "%s: %s", hex, r->peer, err.msg);
		return;
	}
	if (r->code == 0) {
		log_info("change %s for %s delivered to peer %s%s%s", hex, user,
		    r->peer, r->reason[0] != '\0' ? ": " : "", r->reason);
		P.deliver_soon = true;
	} else if (state == QUEUE_GIVEN_UP && r->code == PSYNC_E_NO_USER) {
		log_warnx("%d: user %s does not exist on peer %s; change %s "
		    "given up", PSYNC_MSG_NO_USER, user, r->peer, hex);
	} else if (state == QUEUE_GIVEN_UP) {
		log_warnx("change %s for %s given up for peer %s: code %d "
		    "(%s): %s", hex, user, r->peer, r->code,
		    code_reason(r->code), r->reason);
	} else if (r->code == QUEUE_CODE_UNREACHABLE) {
		log_info("peer %s unreachable for change %s for %s; will "
		    "retry: %s", r->peer, hex, user, r->reason);
	} else {
		log_warnx("peer %s refused change %s for %s for now: code %d "
		    "(%s): %s; will retry", r->peer, hex, user, r->code,
		    code_reason(r->code), r->reason);
	}
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

static void
housekeeping(void)
{
	struct queue_peer_status st;
	struct psync_err err;
	size_t i;

	if (queue_expire(P.q, log_expired, NULL, &err) == -1)
		log_warnx("queue: expiry: %s", err.msg);
	for (i = 0; i < P.conf->n_peers; i++) {
		if (queue_peer_status(P.q, P.conf->peers[i].name, &st,
		    &err) == -1)
			continue;
		if (P.conf->queue.warn_depth != 0 &&
		    st.depth > P.conf->queue.warn_depth)
			log_warnx("queue: %lu changes wait for peer %s (more "
			    "than warn-depth %u)", st.depth,
			    P.conf->peers[i].name, P.conf->queue.warn_depth);
		if (P.conf->queue.warn_age != 0 && st.oldest_age_ms >
		    (uint64_t)P.conf->queue.warn_age * 1000)
			log_warnx("queue: the oldest change for peer %s waits "
			    "for %llu s (more than warn-age %u s)",
			    P.conf->peers[i].name,
			    (unsigned long long)(st.oldest_age_ms / 1000),
			    P.conf->queue.warn_age);
	}
}

/* ---- inbound ------------------------------------------------------- */

static void
answer(uint32_t reqid, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
answer(uint32_t reqid, int code, const char *fmt, ...)
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
	send_child(&m);
}

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
static void __attribute__((format(printf, 3, 4)))
inb_answer(struct inb *b, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b->reason, sizeof(b->reason), fmt, ap);
	va_end(ap);
	b->code = code;
	answer(b->p->reqid, code, "%s", b->reason);
}

static bool
inbound_precheck(struct inb *b)
{
	struct pmsg_inbound *in = &b->p->in;
	struct frame_change *c = &in->change;
	struct psync_err err;
	uint64_t t;
	uint8_t nid[FRAME_ID_LEN];
	int rc;

	b->peer = config_find_peer(P.conf, in->peer);
	if (b->peer == NULL || b->peer->protocol != in->protocol) {
		log_warnx("network child sent a change from '%s', which is "
		    "not a configured %s peer; refused", in->peer,
		    in->protocol == PROTO_MEPP ? "MEPP" : "psync");
		answer(b->p->reqid, PSYNC_E_REFUSED, "unknown peer");
		return false;
	}
	if (!(b->peer->direction & DIR_RECEIVE)) {
		log_warnx("peer %s sent a change for %s, but it is configured "
		    "direction = send; refused", in->peer, c->user);
		answer(b->p->reqid, PSYNC_E_REFUSED, "this node does not take "
		    "changes from %s", in->peer);
		return false;
	}
	if (in->protocol == PROTO_MEPP) {
		/* MEPP carries no id and no time: this is a fresh change. */
		if (RAND_bytes(c->id, FRAME_ID_LEN) != 1) {
			answer(b->p->reqid, PSYNC_E_UPDATE_FAILED,
			    "no random id");
			return false;
		}
		c->time_ms = now_ms();
		str_copy(c->origin, in->peer, sizeof(c->origin));
	}
	id_hex(c->id, b->hex);
	if (policy_local_name(P.pol, c->user, b->local, sizeof(b->local)) ==
	    -1 || !names_valid(b->local)) {
		log_warnx("peer %s sent change %s for '%s', which is not a "
		    "valid user name; refused", in->peer, b->hex, c->user);
		answer(b->p->reqid, PSYNC_E_BAD_USER, "not a valid user name");
		return false;
	}
	if (in->mepp_type == 2)
		return true;
	if (strcmp(c->origin, P.conf->node_name) == 0) {
		answer(b->p->reqid, PSYNC_OK, "already applied (made here)");
		return false;
	}
	rc = queue_applied_has(P.q, c->id, &err);
	if (rc == 1) {
		answer(b->p->reqid, PSYNC_OK, "already applied");
		return false;
	}
	if (rc == -1 || (rc = queue_user_newest(P.q, b->local, &t, nid,
	    &err)) == -1) {
		log_warnx("queue: %s", err.msg);
		answer(b->p->reqid, PSYNC_E_UPDATE_FAILED, "queue error");
		return false;
	}
	if (rc == 1 && queue_change_cmp(c->time_ms, c->id, t, nid) < 0) {
		log_info("change %s for %s from peer %s is older than the "
		    "newest one here: superseded", b->hex, b->local, in->peer);
		answer(b->p->reqid, PSYNC_OK, "superseded");
		return false;
	}
	return true;
}

static void
inbound_refused(struct inb *b, const struct policy_verdict *v)
{
	if (v->msgno != 0)
		log_warnx("%d: change %s for %s from peer %s refused: code %d "
		    "(%s): %s", v->msgno, b->hex, b->local, b->p->in.peer,
		    v->code, code_reason(v->code), v->reason);
	else
		log_warnx("change %s for %s from peer %s refused: code %d "
		    "(%s): %s", b->hex, b->local, b->p->in.peer, v->code,
		    code_reason(v->code), v->reason);
	answer(b->p->reqid, v->code, "%s", v->reason);
}

static void
inbound_batch(struct pending_in *pend, size_t n)
{
	struct inb *bs = NULL;
	struct account *accts = NULL;
	const char **names = NULL;
	struct store_change *sc = NULL;
	struct store_result *sr = NULL;
	size_t *map = NULL;
	int *rcs = NULL;
	struct policy_request req;
	struct policy_verdict v;
	struct psync_err err;
	const char *targets[256];
	size_t i, j, ns = 0, nt;
	bool lookup_ok;

	bs = calloc(n, sizeof(*bs));
	accts = calloc(n, sizeof(*accts));
	names = calloc(n, sizeof(*names));
	sc = calloc(n, sizeof(*sc));
	sr = calloc(n, sizeof(*sr));
	map = calloc(n, sizeof(*map));
	rcs = calloc(n, sizeof(*rcs));
	if (bs == NULL || accts == NULL || names == NULL || sc == NULL ||
	    sr == NULL || map == NULL || rcs == NULL) {
		for (i = 0; i < n; i++)
			answer(pend[i].reqid, PSYNC_E_UPDATE_FAILED,
			    "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		bs[i].p = &pend[i];
		bs[i].live = inbound_precheck(&bs[i]);
		names[i] = bs[i].local;
	}
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
	lookup_ok = account_lookup_many(&P.conf->store, names, n,
	    P.conf->policy.case_ignore_name, accts, rcs, &err) == 0;
	if (!lookup_ok)
		log_warnx("store: %s", err.msg);
	for (i = 0; i < n; i++) {
		if (!bs[i].live)
			continue;
		memset(&req, 0, sizeof(req));
		req.user = bs[i].local;
		req.account = lookup_ok && rcs[i] == 0 ? &accts[i] : NULL;
		req.peer = bs[i].peer;
		req.direction = POLICY_INBOUND;
		req.password = bs[i].p->in.change.secret_kind ==
		    FRAME_SECRET_CLEARTEXT ?
		    (const char *)bs[i].p->in.change.secret : NULL;
		if (!lookup_ok) {
			inb_answer(&bs[i], PSYNC_E_OPEN, "cannot read the "
			    "account files");
			continue;
		}
		if (policy_check(P.pol, &req, &v, NULL, NULL) != PSYNC_OK) {
			inbound_refused(&bs[i], &v);
			bs[i].code = v.code;
			str_copy(bs[i].reason, v.reason, sizeof(bs[i].reason));
			continue;
		}
		if (bs[i].p->in.mepp_type == 2) {
			inb_answer(&bs[i], PSYNC_OK, "would be accepted");
			continue;
		}
		/* The store wants the name as the files spell it. */
		if (req.account != NULL)
			str_copy(bs[i].local, accts[i].name,
			    sizeof(bs[i].local));
		sc[ns].user = bs[i].local;
		sc[ns].kind = bs[i].p->in.change.secret_kind ==
		    FRAME_SECRET_CRYPT ? STORE_SECRET_HASH :
		    STORE_SECRET_CLEARTEXT;
		sc[ns].secret = (const char *)bs[i].p->in.change.secret;
		map[ns++] = i;
	}
	/* On a Samba DC: note first, so that the hook never misses it. */
	for (j = 0; j < ns && P.conf->store.type == STORE_SAMBA; j++)
		if (sc[j].kind == STORE_SECRET_CLEARTEXT &&
		    samba_applied_note(P.q, P.host_key, sc[j].user,
		    sc[j].secret, now_ms(), &err) == -1)
			log_warnx("queue: noting change for %s as applied from "
			    "a peer: %s", sc[j].user, err.msg);
	if (ns > 0)
		(void)store_apply(&P.conf->store, sc, ns, sr);
	for (j = 0; j < ns && P.conf->store.type == STORE_SAMBA; j++)
		if (sr[j].outcome != STORE_APPLIED &&
		    samba_applied_forget(P.q, sc[j].user, &err) == -1)
			log_warnx("queue: %s", err.msg);
	for (j = 0; j < ns; j++) {
		struct inb *b = &bs[map[j]];
		struct frame_change *c = &b->p->in.change;

		if (sr[j].outcome == STORE_FAILED) {
			if (sr[j].code == PSYNC_E_NO_USER)
				log_warnx("%d: change %s from peer %s: no "
				    "user %s here: %s", PSYNC_MSG_NO_USER,
				    b->hex, b->p->in.peer, b->local,
				    sr[j].reason);
			else
				log_warnx("change %s for %s from peer %s not "
				    "applied: code %d (%s): %s", b->hex,
				    b->local, b->p->in.peer, sr[j].code,
				    code_reason(sr[j].code), sr[j].reason);
			inb_answer(b, sr[j].code, "%s", sr[j].reason);
			continue;
		}
		if (queue_applied_add(P.q, c->id, b->local, c->time_ms,
		    c->origin, &err) == -1)
			log_warnx("queue: recording change %s as applied: %s",
			    b->hex, err.msg);
		log_info("change %s for %s from peer %s: %s", b->hex, b->local,
		    b->p->in.peer, store_outcome_name(sr[j].outcome));
		/* Relay to the peers that want changes from others. */
		str_copy(c->user, b->local, sizeof(c->user));
		nt = targets_for(c, b->p->in.peer, targets,
		    sizeof(targets) / sizeof(targets[0]));
		if (nt > 0 && queue_add(P.q, c, b->p->in.peer, targets, nt,
		    &err) == -1)
			log_warnx("queue: cannot queue change %s for relay: "
			    "%s", b->hex, err.msg);
		if (nt > 0)
			P.deliver_soon = true;
		inb_answer(b, PSYNC_OK, "%s", store_outcome_name(sr[j].outcome));
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
			answer(bs[i].p->reqid, PSYNC_OK, "superseded");
		else
			answer(bs[i].p->reqid, bs[w].code, "a newer change for "
			    "%s failed here: %s", bs[i].local, bs[w].reason);
	}
done:
	if (accts != NULL)
		for (i = 0; i < n; i++)
			account_clear(&accts[i]);
	if (sr != NULL)
		secure_wipe(sr, n * sizeof(*sr));
	free(bs);
	free(accts);
	free(names);
	free(sc);
	free(sr);
	free(map);
	free(rcs);
}

/* ---- key rotation ---------------------------------------------------- */

/*
 * Test knobs, read only when psyncd runs with -d: PSYNCD_TEST_DAY_SECONDS
 * makes key-rotation-days count in units of that many seconds, and
 * PSYNCD_TEST_CRASH=key-stored|key-confirmed|key-promoted kills the parent
 * at that point of a rotation, as a power cut would.
 */
static unsigned int
day_seconds(void)
{
	const char *v;
	unsigned long n;
	char *end;

	if (!P.opts->debug || (v = getenv("PSYNCD_TEST_DAY_SECONDS")) == NULL)
		return DAY_SECONDS;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n == 0 || n > DAY_SECONDS)
		return DAY_SECONDS;
	return (unsigned int)n;
}

static void
test_crash(const char *point)
{
	const char *v;

	if (!P.opts->debug || (v = getenv("PSYNCD_TEST_CRASH")) == NULL ||
	    strcmp(v, point) != 0)
		return;
	log_warnx("PSYNCD_TEST_CRASH=%s: killing psyncd here", point);
	(void)raise(SIGKILL);
}

static struct rotation *
rot_find(uint32_t reqid)
{
	size_t i;

	for (i = 0; i < n_rots; i++)
		if (rots[i].reqid == reqid)
			return &rots[i];
	return NULL;
}

static bool
rot_busy(const char *peer, uint64_t now)
{
	size_t i;

	for (i = 0; i < n_rots; i++) {
		if (now - rots[i].sent_ms > ROT_TIMEOUT_MS) {
			rots[i--] = rots[--n_rots];
			continue;
		}
		if (strcmp(rots[i].peer, peer) == 0)
			return true;
	}
	return false;
}

static bool
rotatable(const struct peer_conf *pc)
{
	return pc->protocol == PROTO_PSYNC && pc->key_file != NULL &&
	    pc->key_file[0] != '\0' && (pc->ca_file == NULL ||
	    pc->ca_file[0] == '\0');
}

/*
 * Propose a next key to a peer: the pending one again when our earlier
 * proposal was not confirmed, else a new one. The key is on disk before
 * it leaves, so whatever happens next, both ends can go on.
 */
static int
propose(const struct peer_conf *pc, bool control, uint32_t *reqid,
    struct sbuf *out)
{
	struct key_state ks;
	struct psync_err err;
	struct rotation *r;
	struct pmsg m;
	uint64_t now = now_ms();
	int rc = -1;

	memset(&m, 0, sizeof(m));
	if (rot_busy(pc->name, now) || n_rots >= ROT_MAX) {
		sbuf_printf(out, "a key proposal to peer %s is already under "
		    "way\n", pc->name);
		goto done;
	}
	if (keys_load(P.q, pc, &ks, &err) == -1) {
		sbuf_printf(out, "cannot read the keys of peer %s: %s\n",
		    pc->name, err.msg);
		goto done;
	}
	if (ks.has_next && !ks.next_ours) {
		sbuf_printf(out, "peer %s proposed key id %u itself; it becomes "
		    "current at the next connection between the two nodes\n",
		    pc->name, ks.next_id);
		goto done;
	}
	if (!ks.has_next) {
		if (ks.cur_id == UINT32_MAX) {
			sbuf_printf(out, "peer %s: key ids are exhausted; give "
			    "both nodes a new key with set-key\n", pc->name);
			goto done;
		}
		ks.next_id = ks.cur_id + 1;
		if (wire_key_generate(ks.next, &err) == -1 ||
		    keys_set_next(P.q, pc, ks.next_id, ks.next, true,
		    &err) == -1 || resend_table(&err) == -1) {
			sbuf_printf(out, "cannot store a new key for peer %s: "
			    "%s\n", pc->name, err.msg);
			goto done;
		}
		log_info("peer %s: new key id %u stored as pending; proposing "
		    "it", pc->name, ks.next_id);
	} else {
		log_info("peer %s: proposing the pending key id %u again",
		    pc->name, ks.next_id);
	}
	m.type = PMSG_KEY_PROPOSE;
	m.reqid = ++P.next_reqid;
	str_copy(m.u.kpropose.peer, pc->name, sizeof(m.u.kpropose.peer));
	m.u.kpropose.key_id = ks.next_id;
	memcpy(m.u.kpropose.key, ks.next, WIRE_KEY_LEN);
	r = &rots[n_rots++];
	memset(r, 0, sizeof(*r));
	str_copy(r->peer, pc->name, sizeof(r->peer));
	r->reqid = m.reqid;
	r->key_id = ks.next_id;
	r->sent_ms = now;
	r->control = control;
	if (reqid != NULL)
		*reqid = m.reqid;
	send_child(&m);
	rc = 0;
done:
	pmsg_wipe(&m);
	keys_wipe(&ks);
	return rc;
}

int
parent_rotate(const char *peer, uint32_t *reqid, struct sbuf *out)
{
	const struct peer_conf *pc;

	pc = config_find_peer(P.conf, peer);
	if (pc == NULL) {
		sbuf_printf(out, "no peer '%s' in %s\n", peer, P.conf->path);
		return -1;
	}
	if (!rotatable(pc)) {
		sbuf_printf(out, "peer %s has no psync key-file to rotate (MEPP "
		    "keys and certificates are not rotated by psync)\n", peer);
		return -1;
	}
	return propose(pc, true, reqid, out);
}

/* Make the next key current and tell the child; logs either way. */
static void
promote(const struct peer_conf *pc, uint32_t id, const char *why)
{
	struct psync_err err;

	if (keys_promote(P.q, pc, &err) == -1) {
		log_warnx("peer %s: cannot make key id %u current: %s; both "
		    "keys stay accepted", pc->name, id, err.msg);
		return;
	}
	log_info("peer %s: key id %u is now current (%s); the old key is "
	    "refused from now on", pc->name, id, why);
	test_crash("key-promoted");
	if (resend_table(&err) == -1)
		log_warnx("peer %s: %s", pc->name, err.msg);
}

static void
key_proposed(uint32_t reqid, const struct pmsg_key_proposed *kp)
{
	const struct peer_conf *pc;
	struct key_state ks;
	struct psync_err err;
	int code = PSYNC_E_REFUSED;
	char why[PMSG_TEXT_MAX + 1];

	memset(&ks, 0, sizeof(ks));
	why[0] = '\0';
	pc = config_find_peer(P.conf, kp->peer);
	if (pc == NULL || !rotatable(pc)) {
		snprintf(why, sizeof(why), "%s is not a psync peer with a key "
		    "file here", kp->peer);
		goto done;
	}
	if (keys_load(P.q, pc, &ks, &err) == -1) {
		code = PSYNC_E_OPEN;
		snprintf(why, sizeof(why), "%s", err.msg);
		goto done;
	}
	/* The child names the peer its TLS handshake authenticated (the
	   PSK identity's name, checked against the key we hold for it); the
	   identity's id only says which of our keys it used. */
	if (ks.has_next && kp->auth_id == ks.next_id)
		log_debug("peer %s proposes over a connection made with our "
		    "next key id %u", pc->name, kp->auth_id);
	/* Ids only grow; the peer's count may be ahead of ours (a key file
	   copied by hand), never behind, or the ids would mix up. */
	if (kp->key_id <= ks.cur_id) {
		snprintf(why, sizeof(why), "key id %u is not above the current "
		    "id %u here; rotate from %s instead", kp->key_id,
		    ks.cur_id, P.conf->node_name);
		goto done;
	}
	if (ks.has_next && ks.next_ours) {
		/* Both proposed at once: the smaller node name wins. */
		if (strcmp(pc->name, P.conf->node_name) > 0) {
			snprintf(why, sizeof(why), "%s proposed key id %u "
			    "itself; its proposal wins", P.conf->node_name,
			    ks.next_id);
			goto done;
		}
		log_info("peer %s: its proposal of key id %u wins over ours",
		    pc->name, kp->key_id);
	}
	if (!(ks.has_next && !ks.next_ours && memcmp(ks.next, kp->key,
	    WIRE_KEY_LEN) == 0)) {
		if (keys_set_next(P.q, pc, kp->key_id, kp->key, false,
		    &err) == -1) {
			code = PSYNC_E_WRITE;
			snprintf(why, sizeof(why), "%s", err.msg);
			goto done;
		}
	}
	test_crash("key-stored");
	if (resend_table(&err) == -1) {
		code = PSYNC_E_OPEN;
		snprintf(why, sizeof(why), "%s", err.msg);
		goto done;
	}
	log_info("peer %s proposed key id %u: stored as pending; both keys "
	    "are accepted until the peer uses the new one", pc->name,
	    kp->key_id);
	code = PSYNC_OK;
done:
	if (code != PSYNC_OK)
		log_warnx("peer %s: key proposal refused: %s", kp->peer, why);
	answer(reqid, code, "%s", code == PSYNC_OK ? "stored" : why);
	keys_wipe(&ks);
}

static void
key_result(uint32_t reqid, const struct pmsg_key_result *kr)
{
	const struct peer_conf *pc;
	struct rotation r, *rp;
	struct key_state ks;
	struct psync_err err;
	char msg[PMSG_TEXT_MAX + FRAME_NAME_MAX + 256];
	bool ok = false;

	memset(&ks, 0, sizeof(ks));
	rp = rot_find(reqid);
	if (rp == NULL || strcmp(rp->peer, kr->peer) != 0 ||
	    rp->key_id != kr->key_id) {
		log_warnx("network child reported a key result for peer %s "
		    "that was not asked for; ignored", kr->peer);
		return;
	}
	r = *rp;
	*rp = rots[--n_rots];
	pc = config_find_peer(P.conf, kr->peer);
	if (kr->code != 0) {
		snprintf(msg, sizeof(msg), "peer %s did not confirm key id %u: "
		    "%s; the new key stays pending and both are accepted",
		    kr->peer, kr->key_id, kr->reason);
		log_warnx("%s", msg);
		goto done;
	}
	if (pc == NULL || keys_load(P.q, pc, &ks, &err) == -1) {
		snprintf(msg, sizeof(msg), "peer %s confirmed key id %u, but "
		    "its keys cannot be read here: %s", kr->peer, kr->key_id,
		    pc == NULL ? "no longer configured" : err.msg);
		log_warnx("%s", msg);
		goto done;
	}
	log_info("peer %s confirmed key id %u", pc->name, kr->key_id);
	test_crash("key-confirmed");
	if (ks.has_next && ks.next_ours && ks.next_id == kr->key_id)
		promote(pc, kr->key_id, "confirmed by the peer");
	keys_wipe(&ks);
	if (keys_load(P.q, pc, &ks, &err) == 0 && ks.cur_id == kr->key_id &&
	    !ks.has_next) {
		snprintf(msg, sizeof(msg), "Key for peer %s rotated: key id %u "
		    "confirmed by the peer and now current", pc->name,
		    kr->key_id);
		ok = true;
	} else {
		snprintf(msg, sizeof(msg), "peer %s confirmed key id %u, but "
		    "it could not be made current here (logged)", pc->name,
		    kr->key_id);
	}
done:
	keys_wipe(&ks);
	if (r.control)
		control_key_result(reqid, ok, msg);
}

static void
key_used(const struct pmsg_key_used *ku)
{
	const struct peer_conf *pc;
	struct key_state ks;
	struct psync_err err;

	pc = config_find_peer(P.conf, ku->peer);
	if (pc == NULL || !rotatable(pc)) {
		log_warnx("network child: a handshake with '%s' used a next "
		    "key, but it is not a psync peer with a key file; ignored",
		    ku->peer);
		return;
	}
	if (keys_load(P.q, pc, &ks, &err) == -1) {
		log_warnx("peer %s: %s", pc->name, err.msg);
		return;
	}
	if (ks.has_next && ks.next_id == ku->key_id)
		promote(pc, ku->key_id, "the peer authenticated with it");
	else if (ks.cur_id != ku->key_id)
		log_warnx("network child: peer %s used key id %u, which is "
		    "neither current (%u) nor pending; ignored", pc->name,
		    ku->key_id, ks.cur_id);
	keys_wipe(&ks);
}

/* Automatic rotation, and another try for an unconfirmed proposal. */
static void
rotation_tick(uint64_t now)
{
	static uint64_t last;
	const struct peer_conf *pc;
	struct sbuf out = { NULL, 0, 0, false };
	struct key_state ks;
	struct psync_err err;
	uint64_t day_ms = (uint64_t)day_seconds() * 1000, check;
	size_t i;

	check = day_ms < ROT_CHECK_MS ? day_ms / 2 : ROT_CHECK_MS;
	if (now - last < check)
		return;
	last = now;
	for (i = 0; i < P.conf->n_peers; i++) {
		pc = &P.conf->peers[i];
		if (!rotatable(pc) || pc->key_rotation_days == 0 ||
		    pc->address == NULL || pc->address[0] == '\0' ||
		    rot_busy(pc->name, now))
			continue;
		if (keys_load(P.q, pc, &ks, &err) == -1) {
			log_warnx("automatic key rotation: %s", err.msg);
			continue;
		}
		if ((ks.has_next && ks.next_ours && now - ks.next_since_ms >=
		    (ROT_RETRY_MS < day_ms ? ROT_RETRY_MS : day_ms)) ||
		    (!ks.has_next && now - ks.cur_since_ms >=
		    (uint64_t)pc->key_rotation_days * day_ms)) {
			log_info("peer %s: key id %u is older than %u days "
			    "(key-rotation-days): rotating", pc->name,
			    ks.cur_id, pc->key_rotation_days);
			if (propose(pc, false, NULL, &out) == -1)
				log_warnx("automatic key rotation: %s",
				    out.p != NULL ? out.p : "failed");
			sbuf_free(&out);
		}
		keys_wipe(&ks);
	}
}

/* ---- the child's messages ------------------------------------------ */

static void
child_dead(const char *why)
{
	log_warnx("network child: %s; stopping it and psyncd", why);
	if (P.child_pid > 0)
		(void)kill(P.child_pid, SIGKILL);
	P.fatal = true;
}

static void
child_readable(void)
{
	struct pending_in *pend = NULL;
	struct psync_err err;
	struct pmsg m;
	size_t npend = 0;
	ssize_t r;
	long used;
	size_t off;

	pend = calloc(INBOUND_BATCH_MAX, sizeof(*pend));
	if (pend == NULL) {
		child_dead("out of memory");
		return;
	}
	/* Drain everything there is, so that inbound changes form one batch. */
	for (;;) {
		r = read(P.child_fd, P.rbuf + P.rlen, RBUF_CAP - P.rlen);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			child_dead(r == 0 ? "closed its channel" :
			    strerror(errno));
			goto done;
		}
		P.rlen += (size_t)r;
		off = 0;
		for (;;) {
			used = pmsg_decode(P.rbuf + off, P.rlen - off,
			    PMSG_FROM_CHILD, &m, &err);
			if (used == -1) {
				child_dead(err.msg);
				goto done;
			}
			if (used == 0)
				break;
			off += (size_t)used;
			switch (m.type) {
			case PMSG_INBOUND:
				pend[npend].reqid = m.reqid;
				pend[npend].in = m.u.inbound;
				if (++npend == INBOUND_BATCH_MAX) {
					inbound_batch(pend, npend);
					secure_wipe(pend, npend * sizeof(*pend));
					npend = 0;
				}
				break;
			case PMSG_DELIVERY_RESULT:
				delivery_result(&m.u.dresult);
				break;
			case PMSG_VERIFY_RESULT:
				control_verify_result(m.reqid, &m.u.vresult);
				break;
			case PMSG_KEY_PROPOSED:
				key_proposed(m.reqid, &m.u.kproposed);
				break;
			case PMSG_KEY_RESULT:
				key_result(m.reqid, &m.u.kresult);
				break;
			case PMSG_KEY_USED:
				key_used(&m.u.kused);
				break;
			}
			pmsg_wipe(&m);
		}
		memmove(P.rbuf, P.rbuf + off, P.rlen - off);
		secure_wipe(P.rbuf + (P.rlen - off), off);
		P.rlen -= off;
	}
	if (npend > 0)
		inbound_batch(pend, npend);
done:
	secure_wipe(pend, INBOUND_BATCH_MAX * sizeof(*pend));
	free(pend);
}

/* ---- start-up ------------------------------------------------------ */

static void
sd_notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return;
	if (sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&sun,
	    len) == -1)
		log_warn("sd_notify to %s", path);
	close(fd);
}

static int
prepare_empty_dir(char *out, size_t len)
{
	struct stat st;

	snprintf(out, len, "%s/empty", P.conf->queue.directory);
	if (mkdir(out, 0755) == -1 && errno != EEXIST) {
		log_warn("cannot create the network child's root %s", out);
		return -1;
	}
	if (lstat(out, &st) == -1 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022) != 0) {
		log_warnx("%s must be a root-owned directory that others cannot "
		    "write", out);
		return -1;
	}
	return 0;
}

static struct mepp_listener *
open_mepp(struct psync_err *err)
{
	struct mepp_listener_conf lc;
	struct mepp_peer *mp = NULL;
	const char **trusted = NULL;
	char **secrets = NULL;
	struct mepp_listener *l = NULL;
	size_t i, k = 0, nt = 0;
	struct pmsg pm;

	if (!P.conf->listen_mepp.enabled)
		return NULL;
	mp = calloc(P.conf->n_peers + 1, sizeof(*mp));
	secrets = calloc(P.conf->n_peers + 1, sizeof(*secrets));
	for (i = 0; i < P.conf->n_peers; i++)
		nt += P.conf->peers[i].n_trusted;
	trusted = calloc(nt + 1, sizeof(*trusted));
	if (mp == NULL || secrets == NULL || trusted == NULL) {
		perr_set(err, PSYNC_E_OPEN, "out of memory");
		goto done;
	}
	nt = 0;
	for (i = 0; i < P.conf->n_peers; i++) {
		const struct peer_conf *pc = &P.conf->peers[i];

		if (pc->protocol != PROTO_MEPP || !(pc->direction & DIR_RECEIVE))
			continue;
		if (peer_msg(pc, &pm, err) == -1)
			goto done;
		secrets[k] = strdup((const char *)pm.u.peer.key);
		pmsg_wipe(&pm);
		if (secrets[k] == NULL) {
			perr_set(err, PSYNC_E_OPEN, "out of memory");
			goto done;
		}
		mp[k].name = pc->name;
		mp[k].secret = secrets[k];
		mp[k].trusted = (const char *const *)&trusted[nt];
		memcpy(&trusted[nt], pc->trusted, pc->n_trusted *
		    sizeof(*trusted));
		mp[k].n_trusted = pc->n_trusted;
		nt += pc->n_trusted;
		k++;
	}
	memset(&lc, 0, sizeof(lc));
	lc.address = P.conf->listen_mepp.address;
	lc.port = P.conf->listen_mepp.port != 0 ? P.conf->listen_mepp.port :
	    PSYNC_MEPP_PORT;
	lc.peers = mp;
	lc.n_peers = k;
	lc.decide = child_mepp_decide;
	l = mepp_listener_open(&lc, err);
done:
	if (secrets != NULL)
		for (i = 0; i < P.conf->n_peers; i++)
			secure_free_str(secrets[i]);
	free(secrets);
	free(trusted);
	free(mp);
	return l;
}

static int
start_child(void)
{
	struct child_setup s;
	struct psync_err err;
	struct passwd *pw;
	struct mepp_listener *mepp = NULL;
	struct pmsg *table;
	char empty[PATH_MAX];
	int sv[2], psync_fd = -1;
	unsigned int port;
	pid_t pid;

	pw = getpwnam(P.opts->user);
	if (pw == NULL) {
		log_warnx("the network child's user '%s' does not exist; "
		    "create it (useradd --system %s) or name another with -u",
		    P.opts->user, P.opts->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_warnx("the network child's user '%s' is root; refusing",
		    P.opts->user);
		return -1;
	}
	if (prepare_empty_dir(empty, sizeof(empty)) == -1)
		return -1;
	table = build_table(P.conf, &err);
	if (table == NULL) {
		log_warnx("%s", err.msg);
		return -1;
	}
	if (P.conf->listen_psync.enabled) {
		port = P.conf->listen_psync.port != 0 ?
		    P.conf->listen_psync.port : PSYNC_TLS_PORT;
		psync_fd = wire_listen(P.conf->listen_psync.address, port, NULL,
		    &err);
		if (psync_fd == -1) {
			log_warnx("psync listener: %s", err.msg);
			goto fail;
		}
	}
	if (mepp_crypto_init(&err) == -1)
		log_warnx("%s (MEPP peers will not work)", err.msg);
	else if (P.conf->listen_mepp.enabled) {
		mepp = open_mepp(&err);
		if (mepp == NULL) {
			log_warnx("MEPP listener: %s", err.msg);
			goto fail;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair");
		goto fail;
	}
	pid = fork();
	if (pid == -1) {
		log_warn("fork");
		close(sv[0]);
		close(sv[1]);
		goto fail;
	}
	if (pid == 0) {
		close(sv[0]);
		control_close_all();
		memset(&s, 0, sizeof(s));
		s.sock = sv[1];
		s.psync_fd = psync_fd;
		s.mepp = mepp;
		s.chroot_dir = empty;
		s.uid = pw->pw_uid;
		s.gid = pw->pw_gid;
		s.user = P.opts->user;
		s.node = P.conf->node_name;
		child_main(&s);
	}
	close(sv[1]);
	P.child_pid = pid;
	P.child_fd = sv[0];
	if (fcntl(P.child_fd, F_SETFL, O_NONBLOCK) == -1)
		log_warn("fcntl O_NONBLOCK on the child channel");
	if (psync_fd != -1)
		close(psync_fd);
	if (mepp != NULL)
		mepp_listener_free(mepp);
	send_table(table, P.conf->n_peers);
	free(table);
	log_info("network child %ld started as %s", (long)pid, P.opts->user);
	return 0;
fail:
	if (psync_fd != -1)
		close(psync_fd);
	if (mepp != NULL)
		mepp_listener_free(mepp);
	secure_wipe(table, (P.conf->n_peers + 1) * sizeof(*table));
	free(table);
	return -1;
}

static void
stop_child(void)
{
	struct pmsg m;
	int status, waited = 0;
	pid_t r;

	if (P.child_pid <= 0)
		return;
	memset(&m, 0, sizeof(m));
	m.type = PMSG_SHUTDOWN;
	if (!P.fatal)
		send_child(&m);
	while (waited < CHILD_GRACE_MS) {
		r = waitpid(P.child_pid, &status, WNOHANG);
		if (r == P.child_pid || (r == -1 && errno == ECHILD))
			goto reaped;
		usleep(50000);
		waited += 50;
	}
	log_warnx("network child %ld did not stop within %d s; killing it",
	    (long)P.child_pid, CHILD_GRACE_MS / 1000);
	(void)kill(P.child_pid, SIGKILL);
	(void)waitpid(P.child_pid, &status, 0);
reaped:
	P.child_pid = 0;
}

static int
setup_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		return -1;
	P.sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return P.sig_fd == -1 ? -1 : 0;
}

static bool
handle_signals(void)
{
	struct signalfd_siginfo si;
	struct psync_err err;
	int status;
	pid_t pid;

	while (read(P.sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			log_info("SIGHUP: reloading %s", P.opts->config_path);
			(void)parent_reload(&err);
			break;
		case SIGTERM:
		case SIGINT:
			log_info("signal %u: stopping", si.ssi_signo);
			return false;
		case SIGCHLD:
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				if (pid != P.child_pid)
					continue;
				P.child_pid = 0;
				child_dead(WIFSIGNALED(status) ?
				    "killed by a signal" : "exited");
			}
			break;
		}
	}
	return !P.fatal;
}

static void
loop(void)
{
	struct pollfd pfd[4 + CONTROL_CLIENTS_MAX];
	uint64_t last_tick = 0, last_warn = 0, now;
	char ev[4096];
	size_t nfd, i, nctl;
	int timeout;

	while (!P.fatal) {
		nfd = 0;
		pfd[nfd++] = (struct pollfd){ P.sig_fd, POLLIN, 0 };
		pfd[nfd++] = (struct pollfd){ P.child_fd, POLLIN, 0 };
		pfd[nfd++] = (struct pollfd){ P.inotify_fd, POLLIN, 0 };
		pfd[nfd++] = (struct pollfd){ P.ctl_fd, POLLIN, 0 };
		nctl = control_pollfds(&pfd[nfd], CONTROL_CLIENTS_MAX);
		nfd += nctl;
		timeout = P.deliver_soon ? 0 : TICK_MS;
		if (poll(pfd, nfd, timeout) == -1 && errno != EINTR) {
			log_warn("poll");
			break;
		}
		if (pfd[0].revents & POLLIN && !handle_signals())
			break;
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
			child_readable();
		if (P.fatal)
			break;
		if (pfd[2].revents & POLLIN) {
			while (read(P.inotify_fd, ev, sizeof(ev)) > 0)
				;
			spool_scan();
		}
		if (pfd[3].revents & POLLIN)
			control_accept();
		for (i = 0; i < nctl; i++)
			if (pfd[4 + i].revents != 0)
				control_readable(pfd[4 + i].fd);
		now = now_ms();
		if (P.deliver_soon || now - last_tick >= TICK_MS) {
			P.deliver_soon = false;
			deliver_due();
			rotation_tick(now);
			control_tick(now);
			last_tick = now;
		}
		if (now - last_warn >= WARN_EVERY_MS) {
			housekeeping();
			last_warn = now;
		}
	}
}

int
parent_main(const struct psyncd_opts *opts)
{
	struct queue_limits lim;
	struct psync_err err;
	int rc = 1;

	memset(&P, 0, sizeof(P));
	P.opts = opts;
	P.child_fd = P.ctl_fd = P.inotify_fd = P.sig_fd = -1;
	P.conf = config_load(opts->config_path, true, report_problem, NULL);
	if (P.conf == NULL) {
		log_warnx("%s: cannot start with this configuration",
		    opts->config_path);
		goto done;
	}
	log_init("psyncd", opts->foreground ? LOG_TARGET_STDERR :
	    LOG_TARGET_SYSLOG, P.conf->log.facility);
	log_set_level(opts->debug ? LOG_DEBUG : P.conf->log.level);
	P.rbuf = malloc(RBUF_CAP);
	P.items = calloc(DUE_BATCH, sizeof(*P.items));
	P.inflight = calloc(INFLIGHT_MAX, sizeof(*P.inflight));
	if (P.rbuf == NULL || P.items == NULL || P.inflight == NULL) {
		log_warnx("out of memory");
		goto done;
	}
	if (setup_signals() == -1) {
		log_warn("signals");
		goto done;
	}
	if (seal_key_load(P.conf->queue.host_key_file, 1, P.host_key,
	    &err) == -1) {
		log_warnx("host key: %s", err.msg);
		goto done;
	}
	memset(&lim, 0, sizeof(lim));
	lim.retry_interval = P.conf->queue.retry_interval;
	lim.max_retry_interval = P.conf->queue.max_retry_interval;
	lim.max_age = P.conf->queue.max_age;
	if (queue_open(&P.q, P.conf->queue.directory, P.host_key, &lim,
	    &err) == -1) {
		log_warnx("queue: %s", err.msg);
		goto done;
	}
	fingerprints_setup();
	P.pol = policy_new(P.conf, &err);
	if (P.pol == NULL) {
		log_warnx("policy: %s", err.msg);
		goto done;
	}
	if (spool_prepare(P.conf->queue.spool_directory, &err) == -1) {
		log_warnx("spool: %s", err.msg);
		goto done;
	}
	P.inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (P.inotify_fd == -1 || inotify_add_watch(P.inotify_fd,
	    P.conf->queue.spool_directory, IN_MOVED_TO | IN_CLOSE_WRITE) == -1) {
		log_warn("inotify on %s", P.conf->queue.spool_directory);
		goto done;
	}
	if (control_open(P.conf->control_socket) == -1)
		goto done;
	if (start_child() == -1)
		goto done;
	spool_clean_stale();
	spool_scan();
	sd_notify_ready();
	log_info("psyncd %s ready: node %s, %zu peers", PACKAGE_VERSION,
	    P.conf->node_name, P.conf->n_peers);
	loop();
	rc = P.fatal ? 1 : 0;
done:
	stop_child();
	control_close_all();
	if (P.conf != NULL && P.ctl_fd != -1)
		(void)unlink(P.conf->control_socket);
	if (P.inotify_fd != -1)
		close(P.inotify_fd);
	if (P.sig_fd != -1)
		close(P.sig_fd);
	if (P.child_fd != -1)
		close(P.child_fd);
	store_fp_disable();
	queue_close(P.q);
	policy_free(P.pol);
	config_free(P.conf);
	secure_wipe(P.host_key, sizeof(P.host_key));
	if (P.rbuf != NULL)
		secure_wipe(P.rbuf, RBUF_CAP);
	free(P.rbuf);
	free(P.items);
	free(P.inflight);
	log_info("psyncd stopped (exit %d)", rc);
	return rc;
}

/* ---- control requests that need the parent's state ----------------- */

int
parent_send_test(const char *user, const char *peer, const char *password,
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
	pc = config_find_peer(P.conf, peer);
	if (pc == NULL) {
		sbuf_printf(out, "no peer '%s' in %s\n", peer, P.conf->path);
		goto done;
	}
	if (!(pc->direction & DIR_SEND)) {
		sbuf_printf(out, "peer %s is configured direction = receive: "
		    "nothing is sent to it\n", peer);
		goto done;
	}
	found = names_valid(user) ? account_lookup(&P.conf->store, user,
	    P.conf->policy.case_ignore_name, &acct, &err) : 1;
	memset(&req, 0, sizeof(req));
	req.user = user;
	req.account = found == 0 ? &acct : NULL;
	req.peer = pc;
	req.direction = POLICY_OUTBOUND;
	req.password = password;
	if (policy_check(P.pol, &req, &v, NULL, NULL) != PSYNC_OK) {
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
	    P.conf->node_name, now_ms(), user, FRAME_SECRET_CLEARTEXT,
	    password, strlen(password), &err) == -1) {
		sbuf_printf(out, "cannot build the change: %s\n",
		    err.msg);
		goto done;
	}
	targets[0] = pc->name;
	if (queue_add(P.q, &f.u.change, NULL, targets, 1, &err) == -1) {
		sbuf_printf(out, "cannot queue the change: %s\n", err.msg);
		goto done;
	}
	id_hex(id, hex);
	log_info("test change %s for %s queued for peer %s", hex, user, peer);
	sbuf_printf(out, "change %s for %s queued for peer %s\n", hex, user,
	    peer);
	P.deliver_soon = true;
	rc = 0;
done:
	frame_wipe(&f);
	account_clear(&acct);
	return rc;
}

int
parent_verify(const char *peer, const char *user, uint32_t *reqid,
    struct sbuf *out)
{
	const struct peer_conf *pc;
	struct policy_request req;
	struct policy_verdict v;
	struct account acct;
	struct psync_err err;
	struct pmsg m;
	int found;

	pc = config_find_peer(P.conf, peer);
	if (pc == NULL) {
		sbuf_printf(out, "no peer '%s' in %s\n", peer, P.conf->path);
		return -1;
	}
	if (user[0] != '\0') {
		memset(&acct, 0, sizeof(acct));
		found = names_valid(user) ? account_lookup(&P.conf->store,
		    user, P.conf->policy.case_ignore_name, &acct, &err) : 1;
		memset(&req, 0, sizeof(req));
		req.user = user;
		req.account = found == 0 ? &acct : NULL;
		req.peer = pc;
		req.direction = (pc->direction & DIR_SEND) ? POLICY_OUTBOUND :
		    POLICY_INBOUND;
		(void)policy_check(P.pol, &req, &v, NULL, NULL);
		account_clear(&acct);
		if (v.code != PSYNC_OK) {
			sbuf_printf(out, "Secure channel to %s not checked: "
			    "failed at step policy: local policy refuses %s: "
			    "code %d (%s)%s%.0d: %s\n", peer, user, v.code,
			    code_reason(v.code), v.msgno ? ", log " : "",
			    v.msgno, v.reason);
			return -1;
		}
	}
	memset(&m, 0, sizeof(m));
	m.type = PMSG_VERIFY;
	m.reqid = ++P.next_reqid;
	str_copy(m.u.verify.peer, peer, sizeof(m.u.verify.peer));
	str_copy(m.u.verify.user, user, sizeof(m.u.verify.user));
	*reqid = m.reqid;
	send_child(&m);
	return 0;
}

struct parent *
parent_state(void)
{
	return &P;
}
