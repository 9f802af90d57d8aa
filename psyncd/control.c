/*
 * The control socket: psyncctl's way into the running parent. A Unix
 * stream socket, mode 0600, and on every connection the peer's
 * credentials must say uid 0. A request is a 32-bit big-endian length and
 * words separated by newlines (the command first); the answer is a length
 * and a status byte ('0' done, '1' failed) followed by text for a person
 * (or JSON). Only `verify` and `rotate-key` answer later: when the network
 * child reports.
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
#include "ctlproto.h"

#define CONTROL_VERIFY_MS	60000
#define CONTROL_ROTATE_MS	90000
#define CONTROL_IDLE_MS		10000

void
sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	size_t need, ncap;
	char *np;
	int n;

	if (b->oom)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	need = b->len + (size_t)n + 1;
	if (need > CTLPROTO_REPLY_MAX) {
		b->oom = true;
		return;
	}
	if (need > b->cap) {
		ncap = b->cap == 0 ? 1024 : b->cap;
		while (ncap < need)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (np == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void
sbuf_free(struct sbuf *b)
{
	if (b->p != NULL)
		secure_wipe(b->p, b->cap);
	free(b->p);
	memset(b, 0, sizeof(*b));
}

int
control_open(struct psyncd *d, const char *path)
{
	struct sockaddr_un sun;
	char dir[sizeof(sun.sun_path)];
	char *slash;
	mode_t old;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("control socket %s: path too long", path);
		return -1;
	}
	str_copy(sun.sun_path, path, sizeof(sun.sun_path));
	str_copy(dir, path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0755) == -1 && errno != EEXIST) {
			log_warn("control socket: cannot create %s", dir);
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		log_warn("control socket: socket");
		return -1;
	}
	/* A socket left by a crash: remove it only when nobody answers. */
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0) {
		log_warnx("control socket %s: another psyncd is running", path);
		close(fd);
		return -1;
	}
	close(fd);
	(void)unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd == -1) {
		log_warn("control socket: socket");
		return -1;
	}
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		log_warn("control socket: bind %s", path);
		close(fd);
		return -1;
	}
	umask(old);
	if (chmod(path, 0600) == -1 || listen(fd, 16) == -1) {
		log_warn("control socket %s", path);
		close(fd);
		return -1;
	}
	d->ctl.listen_fd = fd;
	return 0;
}

static void
client_drop(struct psyncd *d, size_t i)
{
	close(d->ctl.clients[i].fd);
	if (d->ctl.clients[i].buf != NULL)
		secure_wipe(d->ctl.clients[i].buf, CTLPROTO_HDR_LEN + CTLPROTO_MSG_MAX + 1);
	free(d->ctl.clients[i].buf);
	d->ctl.clients[i] = d->ctl.clients[--d->ctl.n_clients];
}

void
control_close_all(struct psyncd *d)
{
	while (d->ctl.n_clients > 0)
		client_drop(d, 0);
	if (d->ctl.listen_fd != -1)
		close(d->ctl.listen_fd);
	d->ctl.listen_fd = -1;
}

void
control_accept(struct psyncd *d)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd;

	fd = accept4(d->ctl.listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd == -1)
		return;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1 ||
	    cred.uid != 0) {
		log_warnx("control socket: refused a connection from uid %ld "
		    "(pid %ld): root only", len == sizeof(cred) ?
		    (long)cred.uid : -1L, len == sizeof(cred) ?
		    (long)cred.pid : -1L);
		close(fd);
		return;
	}
	if (d->ctl.n_clients == CONTROL_CLIENTS_MAX) {
		log_warnx("control socket: %d clients already; refusing one",
		    CONTROL_CLIENTS_MAX);
		close(fd);
		return;
	}
	memset(&d->ctl.clients[d->ctl.n_clients], 0, sizeof(d->ctl.clients[d->ctl.n_clients]));
	d->ctl.clients[d->ctl.n_clients].fd = fd;
	d->ctl.clients[d->ctl.n_clients].buf = malloc(CTLPROTO_HDR_LEN + CTLPROTO_MSG_MAX + 1);
	d->ctl.clients[d->ctl.n_clients].deadline = clock_wall_ms() + CONTROL_IDLE_MS;
	if (d->ctl.clients[d->ctl.n_clients].buf == NULL) {
		close(fd);
		return;
	}
	d->ctl.n_clients++;
}

size_t
control_pollfds(struct psyncd *d, struct pollfd *pfd, size_t cap)
{
	size_t i;

	for (i = 0; i < d->ctl.n_clients && i < cap; i++)
		pfd[i] = (struct pollfd){ d->ctl.clients[i].fd,
		    d->ctl.clients[i].verify_reqid != 0 ? 0 : POLLIN, 0 };
	return i;
}

static void
reply(struct psyncd *d, size_t ci, bool ok, struct sbuf *text)
{
	unsigned char hdr[CTLPROTO_HDR_LEN + 1];
	size_t len = text->len, off = 0;
	struct iovec;
	ssize_t n;
	int fd = d->ctl.clients[ci].fd, flags;

	if (text->oom) {
		text->len = 0;
		sbuf_printf(text, "the answer is too large or out of memory\n");
		ok = false;
		len = text->len;
	}
	ctlproto_reply_header(len, ok, hdr);
	/* A local root client: write the answer out in one go. */
	flags = fcntl(fd, F_GETFL);
	if (flags != -1)
		(void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
	{
		struct timeval tv = { 5, 0 };

		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	if (send(fd, hdr, sizeof(hdr), MSG_NOSIGNAL) != (ssize_t)sizeof(hdr))
		goto done;
	while (off < len) {
		n = send(fd, text->p + off, len - off, MSG_NOSIGNAL);
		if (n <= 0)
			break;
		off += (size_t)n;
	}
done:
	client_drop(d, ci);
}

static void
json_str(struct sbuf *b, const char *s)
{
	sbuf_printf(b, "\"");
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			sbuf_printf(b, "\\%c", ch);
		else if (ch < 0x20)
			sbuf_printf(b, "\\u%04x", ch);
		else
			sbuf_printf(b, "%c", ch);
	}
	sbuf_printf(b, "\"");
}

static void
fmt_time(uint64_t ms, char *out, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms == 0 || gmtime_r(&t, &tm) == NULL)
		str_copy(out, "never", len);
	else
		strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool
cmd_status(struct psyncd *d, struct sbuf *out, bool json)
{
	const struct peer_clock *pk;
	struct queue_peer_status st;
	struct psync_err err, kerr;
	struct key_state ks;
	char ts[32], te[32];
	uint64_t now = clock_wall_ms(), age;
	bool have_keys;
	size_t i, k;

	if (json)
		sbuf_printf(out, "{\"node\":");
	if (json) {
		json_str(out, d->conf->node_name);
		sbuf_printf(out, ",\"peers\":[");
	} else {
		sbuf_printf(out, "node %s, %zu peer%s\n", d->conf->node_name,
		    d->conf->n_peers, d->conf->n_peers == 1 ? "" : "s");
		if (queue_lost_writes(d->q) != NULL)
			sbuf_printf(out, "WARNING: %s\n",
			    queue_lost_writes(d->q));
	}
	for (i = 0; i < d->conf->n_peers; i++) {
		const struct peer_conf *pc = &d->conf->peers[i];

		if (queue_peer_status(d->q, pc->name, &st, &err) == -1) {
			sbuf_printf(out, "%s: %s\n", pc->name, err.msg);
			return false;
		}
		pk = NULL;
		for (k = 0; k < d->n_clocks; k++)
			if (strcmp(d->clocks[k].peer, pc->name) == 0)
				pk = &d->clocks[k];
		fmt_time(st.last_success_ms, ts, sizeof(ts));
		fmt_time(st.last_error_ms, te, sizeof(te));
		memset(&ks, 0, sizeof(ks));
		have_keys = pc->protocol == PROTO_PSYNC && pc->key_file != NULL &&
		    pc->key_file[0] != '\0' && keys_load(d->q, pc, &ks,
		    &kerr) == 0;
		age = have_keys && now > ks.cur_since_ms ?
		    (now - ks.cur_since_ms) / 1000 : 0;
		if (json) {
			sbuf_printf(out, "%s{\"peer\":", i > 0 ? "," : "");
			json_str(out, pc->name);
			sbuf_printf(out, ",\"protocol\":\"%s\",\"direction\":"
			    "\"%s\",\"reachable\":%s,\"last_success_ms\":%llu,"
			    "\"last_error_ms\":%llu,\"last_error\":",
			    config_protocol_name(pc->protocol),
			    config_direction_name(pc->direction),
			    !st.known ? "null" : st.reachable ? "true" : "false",
			    (unsigned long long)st.last_success_ms,
			    (unsigned long long)st.last_error_ms);
			json_str(out, st.last_error);
			sbuf_printf(out, ",\"queue_depth\":%lu,"
			    "\"oldest_age_s\":%llu", st.depth,
			    (unsigned long long)(st.oldest_age_ms / 1000));
			if (pk != NULL)
				sbuf_printf(out, ",\"clock_ahead_ms\":%lld",
				    (long long)pk->ahead_ms);
			if (have_keys)
				sbuf_printf(out, ",\"key_id\":%u,\"key_age_s\":"
				    "%llu,\"key_pending_id\":%u,\"key_pending_"
				    "from\":\"%s\"", ks.cur_id,
				    (unsigned long long)age, ks.has_next ?
				    ks.next_id : 0, !ks.has_next ? "" :
				    ks.next_ours ? "us" : "peer");
			sbuf_printf(out, "}");
		} else {
			sbuf_printf(out, "peer %s (%s, %s): %s\n"
			    "  last success: %s\n"
			    "  last error:   %s%s%s\n"
			    "  queue depth:  %lu, oldest %llu s\n", pc->name,
			    config_protocol_name(pc->protocol),
			    config_direction_name(pc->direction),
			    !st.known ? "not contacted yet" : st.reachable ?
			    "reachable" : "unreachable", ts, te,
			    st.last_error[0] != '\0' ? ": " : "",
			    st.last_error, st.depth,
			    (unsigned long long)(st.oldest_age_ms / 1000));
			if (have_keys)
				sbuf_printf(out, "  key:          id %u, age "
				    "%llud %02lluh%02llum%s", ks.cur_id,
				    (unsigned long long)(age / 86400),
				    (unsigned long long)(age / 3600 % 24),
				    (unsigned long long)(age / 60 % 60),
				    ks.has_next ? ", rotation pending" : "\n");
			if (have_keys && ks.has_next)
				sbuf_printf(out, " (key id %u, proposed by "
				    "%s)\n", ks.next_id, ks.next_ours ?
				    "this node" : "the peer");
			else if (!have_keys && pc->protocol == PROTO_PSYNC &&
			    pc->key_file != NULL && pc->key_file[0] != '\0')
				sbuf_printf(out, "  key:          %s\n",
				    kerr.msg);
			if (pk != NULL && pk->ahead_ms >= 1000)
				sbuf_printf(out, "  clock:        its last change "
				    "was stamped %lld s ahead of ours%s\n",
				    (long long)(pk->ahead_ms / 1000),
				    pk->ahead_ms / 1000 >
				    d->conf->policy.max_clock_skew ?
				    " (more than max-clock-skew: refused)" : "");
		}
		keys_wipe(&ks);
	}
	if (json)
		sbuf_printf(out, "]}\n");
	return true;
}

struct list_ctx {
	struct sbuf	*out;
	unsigned long	 n;
};

static void
list_one(void *ctx, const struct queue_entry *e)
{
	struct list_ctx *lc = ctx;
	char hex[QUEUE_ID_HEX_LEN + 1], t[32];

	queue_id_hex(e->id, hex);
	fmt_time(e->created_ms, t, sizeof(t));
	sbuf_printf(lc->out, "%s %-12s %-12s %-10s tries %u queued %s%s%s\n",
	    hex, e->user, e->peer, queue_state_name((int)e->state),
	    e->attempts, t, e->last_error[0] != '\0' ? " last error: " : "",
	    e->last_error);
	lc->n++;
}

static bool
cmd_queue(struct psyncd *d, struct sbuf *out, char **w, size_t nw)
{
	struct list_ctx lc = { out, 0 };
	struct psync_err err;
	uint8_t id[FRAME_ID_LEN];
	long n;

	if (strcmp(w[0], "queue-list") == 0) {
		n = queue_list(d->q, NULL, !(nw > 1 && strcmp(w[1], "all") == 0),
		    list_one, &lc, &err);
		if (n == -1) {
			sbuf_printf(out, "%s\n", err.msg);
			return false;
		}
		if (lc.n == 0)
			sbuf_printf(out, "the queue is empty\n");
		return true;
	}
	if (strcmp(w[0], "queue-retry") == 0) {
		if (nw > 1 && queue_id_parse(w[1], id) == -1) {
			sbuf_printf(out, "'%s' is not a change id (32 hex "
			    "digits)\n", w[1]);
			return false;
		}
		n = queue_retry_now(d->q, nw > 1 ? id : NULL, &err);
		if (n == -1) {
			sbuf_printf(out, "%s\n", err.msg);
			return false;
		}
		sbuf_printf(out, "%ld deliveries due now\n", n);
		d->deliver_soon = true;
		return n > 0 || nw == 1;
	}
	if (strcmp(w[0], "queue-drop") == 0) {
		if (nw < 2 || queue_id_parse(w[1], id) == -1) {
			sbuf_printf(out, "queue drop needs a change id (32 hex "
			    "digits)\n");
			return false;
		}
		n = queue_drop(d->q, id, nw > 2 ? w[2] : NULL, &err);
		if (n == -1) {
			sbuf_printf(out, "%s\n", err.msg);
			return false;
		}
		sbuf_printf(out, "%ld deliveries dropped\n", n);
		if (n > 0)
			log_info("control: change %s dropped from the queue "
			    "(%ld deliveries)", w[1], n);
		return n > 0;
	}
	n = queue_purge(d->q, clock_wall_ms(), &err);
	if (n == -1) {
		sbuf_printf(out, "%s\n", err.msg);
		return false;
	}
	sbuf_printf(out, "%ld finished deliveries purged\n", n);
	return true;
}

/* Split the request into words in place; NULL-free, count checked. */
static void
dispatch(struct psyncd *d, size_t ci, char *req, size_t len)
{
	struct control_client *c = &d->ctl.clients[ci];
	const struct ctlproto_cmd *cmd;
	struct sbuf out = { NULL, 0, 0, false };
	struct psync_err err;
	char *w[CTLPROTO_WORDS_MAX];
	size_t nw;
	bool ok = false;

	cmd = ctlproto_parse(req, len, w, &nw, &err);
	if (cmd == NULL) {
		sbuf_printf(&out, "%s\n", err.msg);
		goto answer;
	}
	switch (cmd->id) {
	case CTL_CMD_STATUS:
		ok = cmd_status(d, &out, nw > 1 && strcmp(w[1], "json") == 0);
		break;
	case CTL_CMD_QUEUE_LIST:
	case CTL_CMD_QUEUE_RETRY:
	case CTL_CMD_QUEUE_DROP:
	case CTL_CMD_QUEUE_PURGE:
		ok = cmd_queue(d, &out, w, nw);
		break;
	case CTL_CMD_QUEUE_CLEAR_LOST:
		/* The administrator has seen the lost-writes warning. */
		ok = queue_lost_writes_clear(d->q, &err) == 0;
		sbuf_printf(&out, "%s\n", ok ? "the lost-writes warning is "
		    "cleared" : err.msg);
		if (ok)
			log_info("control: the queue's lost-writes warning was "
			    "cleared");
		break;
	case CTL_CMD_SEND:
		ok = outbound_send_test(d, w[1], w[2], w[3], &out) == 0;
		break;
	case CTL_CMD_VERIFY:
		if (control_verify_start(d, w[1], nw == 3 ? w[2] : "",
		    &c->verify_reqid, &out) == -1)
			break;
		str_copy(c->verify_peer, w[1], sizeof(c->verify_peer));
		c->deadline = clock_wall_ms() + CONTROL_VERIFY_MS;
		sbuf_free(&out);
		return;
	case CTL_CMD_ROTATE_KEY:
		if (rotation_start(d, w[1], &c->verify_reqid, &out) == -1)
			break;
		str_copy(c->verify_peer, w[1], sizeof(c->verify_peer));
		c->rotating = true;
		c->deadline = clock_wall_ms() + CONTROL_ROTATE_MS;
		sbuf_free(&out);
		return;
	case CTL_CMD_RELOAD:
		ok = peers_reload(d, &err) == 0;
		sbuf_printf(&out, "%s\n", ok ? "configuration reloaded" :
		    err.msg);
		break;
	}
answer:
	reply(d, ci, ok, &out);
	sbuf_free(&out);
}

void
control_readable(struct psyncd *d, int fd)
{
	struct control_client *c = NULL;
	struct psync_err err;
	long want;
	ssize_t n;
	size_t i;

	for (i = 0; i < d->ctl.n_clients; i++)
		if (d->ctl.clients[i].fd == fd)
			c = &d->ctl.clients[i];
	if (c == NULL)
		return;
	i = (size_t)(c - d->ctl.clients);
	if (c->verify_reqid != 0) {
		/* The client gave up waiting for a check. */
		client_drop(d, i);
		return;
	}
	n = read(fd, c->buf + c->len, CTLPROTO_HDR_LEN + CTLPROTO_MSG_MAX -
	    c->len);
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR))
			client_drop(d, i);
		return;
	}
	c->len += (size_t)n;
	want = ctlproto_request_len(c->buf, c->len, &err);
	if (want == -1) {
		log_warnx("control socket: %s", err.msg);
		client_drop(d, i);
		return;
	}
	if (want == 0 || c->len - CTLPROTO_HDR_LEN < (size_t)want)
		return;
	dispatch(d, i, (char *)c->buf + CTLPROTO_HDR_LEN, (size_t)want);
}

void
control_tick(struct psyncd *d, uint64_t now)
{
	struct sbuf out = { NULL, 0, 0, false };
	size_t i;

	for (i = 0; i < d->ctl.n_clients; i++) {
		if (now < d->ctl.clients[i].deadline)
			continue;
		if (d->ctl.clients[i].verify_reqid != 0 && d->ctl.clients[i].rotating) {
			sbuf_printf(&out, "Key for peer %s not confirmed: no "
			    "answer from the network process in %d s; the new "
			    "key stays pending\n", d->ctl.clients[i].verify_peer,
			    CONTROL_ROTATE_MS / 1000);
			reply(d, i, false, &out);
			sbuf_free(&out);
		} else if (d->ctl.clients[i].verify_reqid != 0) {
			sbuf_printf(&out, "Secure channel to %s not checked: "
			    "no answer from the network process in %d s\n",
			    d->ctl.clients[i].verify_peer, CONTROL_VERIFY_MS / 1000);
			reply(d, i, false, &out);
			sbuf_free(&out);
		} else {
			client_drop(d, i);
		}
		i--;
	}
}

void
control_verify_result(struct psyncd *d, uint32_t reqid, const struct pmsg_verify_result *r)
{
	struct sbuf out = { NULL, 0, 0, false };
	size_t i;

	for (i = 0; i < d->ctl.n_clients; i++)
		if (d->ctl.clients[i].verify_reqid == reqid && reqid != 0 &&
		    !d->ctl.clients[i].rotating)
			break;
	if (i == d->ctl.n_clients) {
		log_debug("channel check %u: nobody waits for it any more",
		    reqid);
		return;
	}
	if (r->step == VERIFY_OK) {
		sbuf_printf(&out, "Secure channel to %s checked successfully\n",
		    d->ctl.clients[i].verify_peer);
		log_info("secure channel to %s checked successfully",
		    d->ctl.clients[i].verify_peer);
	} else {
		sbuf_printf(&out, "Secure channel to %s failed at step %s: "
		    "%s\n", d->ctl.clients[i].verify_peer, pmsg_step_name(r->step),
		    r->message);
		log_warnx("secure channel to %s failed at step %s: %s",
		    d->ctl.clients[i].verify_peer, pmsg_step_name(r->step),
		    r->message);
	}
	reply(d, i, r->step == VERIFY_OK, &out);
	sbuf_free(&out);
}

void
control_key_result(struct psyncd *d, uint32_t reqid, bool ok, const char *message)
{
	struct sbuf out = { NULL, 0, 0, false };
	size_t i;

	for (i = 0; i < d->ctl.n_clients; i++)
		if (d->ctl.clients[i].verify_reqid == reqid && reqid != 0 &&
		    d->ctl.clients[i].rotating)
			break;
	if (i == d->ctl.n_clients) {
		log_debug("key rotation %u: nobody waits for it any more",
		    reqid);
		return;
	}
	sbuf_printf(&out, "%s\n", message);
	reply(d, i, ok, &out);
	sbuf_free(&out);
}

int
control_verify_start(struct psyncd *d, const char *peer, const char *user, uint32_t *reqid,
    struct sbuf *out)
{
	const struct peer_conf *pc;
	struct policy_request req;
	struct policy_verdict v;
	struct account acct;
	struct psync_err err;
	struct pmsg m;
	int found;

	pc = config_find_peer(d->conf, peer);
	if (pc == NULL) {
		sbuf_printf(out, "no peer '%s' in %s\n", peer, d->conf->path);
		return -1;
	}
	if (user[0] != '\0') {
		memset(&acct, 0, sizeof(acct));
		found = names_valid(user) ? account_lookup(&d->conf->store,
		    user, d->conf->policy.case_ignore_name, &acct, &err) : 1;
		memset(&req, 0, sizeof(req));
		req.user = user;
		req.account = found == 0 ? &acct : NULL;
		req.peer = pc;
		req.direction = (pc->direction & DIR_SEND) ? POLICY_OUTBOUND :
		    POLICY_INBOUND;
		(void)policy_check(d->pol, &req, &v, NULL, NULL);
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
	m.reqid = ++d->next_reqid;
	str_copy(m.u.verify.peer, peer, sizeof(m.u.verify.peer));
	str_copy(m.u.verify.user, user, sizeof(m.u.verify.user));
	*reqid = m.reqid;
	monitor_send(d, &m);
	return 0;
}
