/*
 * MEPP over TCP (../shared/mepp/SPEC.md "Roles and sequence"): one request
 * per connection. The client connects, reads R1, sends its request and
 * reads the 16-byte result. The listener checks the client's address
 * before sending anything, sends R1, reads one request against a deadline,
 * decodes it with the secret of the peer that trusts that address, asks the
 * decision callback and answers.
 *
 * Every connection runs in its own detached thread so that a stalled client
 * delays nobody; a hard cap on concurrent connections, a size cap on
 * requests and a deadline per connection keep memory and time bounded.
 * Passwords stay in buffers that are wiped; logs name users, peers and
 * addresses, never a password.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "codes.h"
#include "log.h"
#include "mepp.h"
#include "mepp_net.h"
#include "util.h"

/* Enough for the request and the answer on a thread's stack, with room. */
#define MEPP_THREAD_STACK	(512 * 1024)
/* How long accept() pauses when the process is out of descriptors. */
#define MEPP_EMFILE_PAUSE_MS	100
/* User names in logs are cut here: they come from the network. */
#define MEPP_LOG_NAME_MAX	64

/* An address in binary, IPv4-mapped IPv6 folded into IPv4. */
struct mepp_addr {
	int	family;
	uint8_t	bytes[16];
};

struct mepp_lpeer {
	char			*name;
	char			*secret;
	struct mepp_addr	*trusted;
	size_t			 n_trusted;
};

struct mepp_listener {
	int			 fd;
	int			 stop_pipe[2];
	atomic_bool		 stopping;
	unsigned int		 port;
	char			 label[INET6_ADDRSTRLEN + 16];
	pthread_rwlock_t	 peers_lock;	/* peers, n_peers */
	struct mepp_lpeer	*peers;
	size_t			 n_peers;
	mepp_decide_fn		 decide;
	mepp_decide_ex_fn	 decide_ex;
	void			*ctx;
	int			 timeout_ms;
	unsigned int		 max_conns;
	pthread_mutex_t		 lock;		/* active */
	pthread_cond_t		 idle;
	unsigned int		 active;
	pthread_mutex_t		 decide_lock;	/* one decision at a time */
	bool			 concurrent;	/* ... unless they may overlap */
};

struct mepp_conn {
	struct mepp_listener	*l;
	int			 fd;
	struct mepp_addr	 from;
	char			 addr[INET6_ADDRSTRLEN];
};

/* Results of the deadline-bound I/O helpers. */
enum mepp_io {
	MEPP_IO_OK,
	MEPP_IO_TIMEOUT,
	MEPP_IO_CLOSED,		/* end of stream before the whole message */
	MEPP_IO_ERROR,		/* errno says why */
	MEPP_IO_STOPPED,	/* the listener is stopping */
};

/* Wait until fd is ready for events, the deadline passes or stopfd fires. */
static enum mepp_io
mepp_wait(int fd, short events, int64_t deadline, int stopfd)
{
	struct pollfd pfd[2];
	int64_t left;
	nfds_t n = 1;
	int rc;

	pfd[0].fd = fd;
	pfd[0].events = events;
	pfd[1].fd = stopfd;
	pfd[1].events = POLLIN;
	if (stopfd >= 0)
		n = 2;
	for (;;) {
		left = deadline - clock_mono_ms();
		if (left <= 0)
			return MEPP_IO_TIMEOUT;
		rc = poll(pfd, n, left > INT_MAX ? INT_MAX : (int)left);
		if (rc == -1) {
			if (errno == EINTR)
				continue;
			return MEPP_IO_ERROR;
		}
		if (rc == 0)
			return MEPP_IO_TIMEOUT;
		if (n == 2 && pfd[1].revents != 0)
			return MEPP_IO_STOPPED;
		if (pfd[0].revents != 0)
			return MEPP_IO_OK;
	}
}

/* Read exactly len bytes; *got says how many arrived. */
static enum mepp_io
mepp_read_full(int fd, void *buf, size_t len, size_t *got, int64_t deadline,
    int stopfd)
{
	uint8_t *p = buf;
	enum mepp_io io;
	ssize_t n;

	*got = 0;
	while (*got < len) {
		if ((io = mepp_wait(fd, POLLIN, deadline, stopfd)) != MEPP_IO_OK)
			return io;
		n = recv(fd, p + *got, len - *got, 0);
		if (n == 0)
			return MEPP_IO_CLOSED;
		if (n == -1) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			return MEPP_IO_ERROR;
		}
		*got += (size_t)n;
	}
	return MEPP_IO_OK;
}

static enum mepp_io
mepp_write_full(int fd, const void *buf, size_t len, int64_t deadline)
{
	const uint8_t *p = buf;
	enum mepp_io io;
	size_t done = 0;
	ssize_t n;

	while (done < len) {
		if ((io = mepp_wait(fd, POLLOUT, deadline, -1)) != MEPP_IO_OK)
			return io;
		n = send(fd, p + done, len - done, MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == EWOULDBLOCK)
				continue;
			return MEPP_IO_ERROR;
		}
		done += (size_t)n;
	}
	return MEPP_IO_OK;
}

/* A sentence for an I/O failure; errno must still be the one of the failure. */
static const char *
mepp_io_reason(enum mepp_io io)
{
	switch (io) {
	case MEPP_IO_OK:
		return "no error";
	case MEPP_IO_TIMEOUT:
		return "timed out";
	case MEPP_IO_CLOSED:
		return "connection closed early";
	case MEPP_IO_ERROR:
		return strerror(errno);
	case MEPP_IO_STOPPED:
		return "listener stopping";
	}
	return "unknown";
}

static void
mepp_addr_from_sockaddr(const struct sockaddr_storage *ss,
    struct mepp_addr *a)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ss;
	const struct sockaddr_in6 *sin6 =
	    (const struct sockaddr_in6 *)(const void *)ss;

	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET) {
		a->family = AF_INET;
		memcpy(a->bytes, &sin->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			a->family = AF_INET;
			memcpy(a->bytes, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			a->family = AF_INET6;
			memcpy(a->bytes, &sin6->sin6_addr, 16);
		}
	}
}

/* Parse an IP literal; IPv4-mapped IPv6 becomes IPv4. 0 or -1. */
static int
mepp_addr_parse(const char *s, struct mepp_addr *a)
{
	struct in6_addr in6;

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, a->bytes) == 1) {
		a->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &in6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&in6)) {
			a->family = AF_INET;
			memcpy(a->bytes, in6.s6_addr + 12, 4);
		} else {
			a->family = AF_INET6;
			memcpy(a->bytes, &in6, 16);
		}
		return 0;
	}
	return -1;
}

static bool
mepp_addr_equal(const struct mepp_addr *a, const struct mepp_addr *b)
{
	return a->family == b->family &&
	    memcmp(a->bytes, b->bytes, a->family == AF_INET ? 4 : 16) == 0;
}

static void
mepp_addr_format(const struct mepp_addr *a, char *buf, size_t len)
{
	if (inet_ntop(a->family, a->bytes, buf, (socklen_t)len) == NULL)
		str_copy(buf, "(unknown address)", len);
}

static bool
mepp_peer_trusts(const struct mepp_lpeer *p, const struct mepp_addr *a)
{
	size_t i;

	for (i = 0; i < p->n_trusted; i++)
		if (mepp_addr_equal(&p->trusted[i], a))
			return true;
	return false;
}

/* The first peer at or after *from that trusts a, or NULL. */
static const struct mepp_lpeer *
mepp_peer_next(const struct mepp_listener *l, const struct mepp_addr *a,
    size_t *from)
{
	for (; *from < l->n_peers; (*from)++)
		if (mepp_peer_trusts(&l->peers[*from], a))
			return &l->peers[(*from)++];
	return NULL;
}

/* A user name from the network, made safe for a log line. */
static void
mepp_log_name(const char *in, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < outlen; i++) {
		unsigned char c = (unsigned char)in[i];

		out[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	out[i] = '\0';
}

const char *
mepp_result_reason(int code)
{
	return code_reason(code);
}

/* ------------------------------------------------------------ client */

/* Connect to one resolved address before the deadline. */
static int
mepp_connect_one(const struct addrinfo *ai, int64_t deadline, int *fdp,
    enum mepp_io *io)
{
	socklen_t len = sizeof(int);
	int fd, soerr = 0, rc = -1;

	*io = MEPP_IO_ERROR;
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    ai->ai_protocol);
	if (fd == -1)
		goto done;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
		rc = 0;
		goto done;
	}
	if (errno != EINPROGRESS)
		goto done;
	if ((*io = mepp_wait(fd, POLLOUT, deadline, -1)) != MEPP_IO_OK)
		goto done;
	*io = MEPP_IO_ERROR;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == -1)
		goto done;
	if (soerr != 0) {
		errno = soerr;
		goto done;
	}
	rc = 0;
done:
	if (rc == 0) {
		*io = MEPP_IO_OK;
		*fdp = fd;
	} else if (fd != -1) {
		int saved = errno;

		close(fd);
		errno = saved;
	}
	return rc;
}

/* The error for a failed read or write at a named step. */
static void
mepp_client_io_err(struct psync_err *err, const struct mepp_client *c,
    enum mepp_io io, const char *what, size_t got, size_t want)
{
	switch (io) {
	case MEPP_IO_TIMEOUT:
		perr_set(err, MEPP_STEP_TIMEOUT, "MEPP peer %s:%u: timed out "
		    "waiting for %s", c->host, c->port, what);
		break;
	case MEPP_IO_CLOSED:
		perr_set(err, MEPP_STEP_SHORT_READ, "MEPP peer %s:%u: short "
		    "read: the peer closed the connection after %zu of the %zu "
		    "bytes of %s (does it trust this host's address?)",
		    c->host, c->port, got, want, what);
		break;
	case MEPP_IO_OK:
	case MEPP_IO_STOPPED:
	case MEPP_IO_ERROR:
		perr_set(err, MEPP_STEP_RECV, "MEPP peer %s:%u: %s: %s",
		    c->host, c->port, what, strerror(errno));
		break;
	}
}

int
mepp_client_send(const struct mepp_client *c, uint32_t type, const char *user,
    const char *password, struct psync_err *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	uint8_t r1[MEPP_NONCE_LEN], r2[MEPP_NONCE_LEN];
	uint8_t req[MEPP_MAX_REQUEST], resp[MEPP_RESPONSE_LEN];
	char port[16];
	enum mepp_io io = MEPP_IO_ERROR;
	int64_t deadline;
	size_t len = 0, got = 0;
	int fd = -1, gai, code, rc = -1, saved;

	if (c == NULL || c->host == NULL || c->secret == NULL || user == NULL ||
	    password == NULL || c->port == 0 || c->port > 65535) {
		perr_set(err, MEPP_STEP_ARGS, "MEPP client: missing host, port, "
		    "secret, user or password");
		goto done;
	}
	if (mepp_crypto_init(err) == -1) {
		if (err != NULL)
			err->code = MEPP_STEP_CRYPTO;
		goto done;
	}
	snprintf(port, sizeof(port), "%u", c->port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	if ((gai = getaddrinfo(c->host, port, &hints, &res)) != 0) {
		perr_set(err, MEPP_STEP_RESOLVE, "MEPP peer %s:%u: cannot "
		    "resolve the host name: %s", c->host, c->port,
		    gai == EAI_SYSTEM ? strerror(errno) : gai_strerror(gai));
		goto done;
	}
	deadline = clock_mono_ms() + (c->connect_timeout_ms > 0 ?
	    c->connect_timeout_ms : MEPP_CONNECT_TIMEOUT_MS);
	saved = 0;
	for (ai = res; ai != NULL && fd == -1; ai = ai->ai_next) {
		if (mepp_connect_one(ai, deadline, &fd, &io) == -1)
			saved = errno;
		if (io == MEPP_IO_TIMEOUT)
			break;
	}
	if (fd == -1) {
		if (io == MEPP_IO_TIMEOUT)
			perr_set(err, MEPP_STEP_TIMEOUT, "MEPP peer %s:%u: "
			    "connect timed out", c->host, c->port);
		else
			perr_set(err, MEPP_STEP_CONNECT, "MEPP peer %s:%u: "
			    "connect failed: %s", c->host, c->port,
			    strerror(saved));
		goto done;
	}

	deadline = clock_mono_ms() + (c->timeout_ms > 0 ? c->timeout_ms :
	    MEPP_CLIENT_TIMEOUT_MS);
	io = mepp_read_full(fd, r1, sizeof(r1), &got, deadline, -1);
	if (io != MEPP_IO_OK) {
		mepp_client_io_err(err, c, io, "R1", got, sizeof(r1));
		goto done;
	}
	if (RAND_bytes(r2, sizeof(r2)) != 1) {
		perr_set(err, MEPP_STEP_CRYPTO, "MEPP peer %s:%u: the random "
		    "number generator failed", c->host, c->port);
		goto done;
	}
	len = mepp_request_build_form(r1, r2, c->secret, c->kdf_form, type,
	    user, password, req, sizeof(req), err);
	if (len == 0) {
		if (err != NULL)
			err->code = MEPP_STEP_ARGS;
		goto done;
	}
	io = mepp_write_full(fd, req, len, deadline);
	if (io != MEPP_IO_OK) {
		perr_set(err, MEPP_STEP_SEND, "MEPP peer %s:%u: sending the "
		    "request for user %s: %s", c->host, c->port, user,
		    io == MEPP_IO_TIMEOUT ? "timed out" : strerror(errno));
		if (io == MEPP_IO_TIMEOUT)
			err->code = MEPP_STEP_TIMEOUT;
		goto done;
	}
	io = mepp_read_full(fd, resp, sizeof(resp), &got, deadline, -1);
	if (io != MEPP_IO_OK) {
		mepp_client_io_err(err, c, io, "the result", got, sizeof(resp));
		goto done;
	}
	if ((code = mepp_response_parse(resp, sizeof(resp))) < 0) {
		perr_set(err, MEPP_STEP_RESPONSE, "MEPP peer %s:%u: malformed "
		    "response to the request for user %s", c->host, c->port,
		    user);
		goto done;
	}
	rc = code;
done:
	secure_wipe(req, sizeof(req));
	if (fd != -1)
		close(fd);
	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

int
mepp_client_change(const struct mepp_client *c, const char *user,
    const char *password, struct psync_err *err)
{
	return mepp_client_send(c, MEPP_TYPE_UPDATE, user, password, err);
}

int
mepp_client_check(const struct mepp_client *c, const char *user,
    struct psync_err *err)
{
	return mepp_client_send(c, MEPP_TYPE_CHECK, user, MEPP_CHECK_PASSWORD,
	    err);
}

/* ------------------------------------------------------------- probe */

const char *
mepp_probe_outcome_name(enum mepp_probe_outcome outcome)
{
	switch (outcome) {
	case MEPP_PROBE_FAILED:
		return "no answer";
	case MEPP_PROBE_KEY_RIGHT:
		return "key right";
	case MEPP_PROBE_KEY_WRONG:
		return "key wrong";
	case MEPP_PROBE_FORM_MISMATCH:
		return "key right, other key derivation form";
	case MEPP_PROBE_OTHER_CODE:
		return "unexpected answer";
	}
	return "unknown";
}

/* What an answer to the probe's change for MEPP_PROBE_USER proves. */
static enum mepp_probe_outcome
mepp_probe_judge(int code)
{
	switch (code) {
	case PSYNC_E_PROTOCOL:		/* bad MAC: every listener */
	case PSYNC_E_DECRYPT:		/* a listener that says so */
		return MEPP_PROBE_KEY_WRONG;
	case PSYNC_E_NOT_UPDATED:	/* published listener: PAM failed */
	case PSYNC_E_BAD_USER:
	case PSYNC_E_NO_USER:		/* psync */
	case PSYNC_E_DISABLED:
	case PSYNC_E_REFUSED:		/* a policy excludes the name */
		return MEPP_PROBE_KEY_RIGHT;
	default:
		return MEPP_PROBE_OTHER_CODE;
	}
}

/* One exchange; fills the failed step in out, or returns the code. */
static int
mepp_probe_once(const struct mepp_client *c, enum mepp_kdf_form form,
    struct mepp_probe *out)
{
	struct mepp_client cc = *c;
	struct psync_err err;
	int code;

	cc.kdf_form = form;
	code = mepp_client_change(&cc, MEPP_PROBE_USER, "psync-probe-not-a-"
	    "password", &err);
	if (code == -1) {
		out->io_step = err.code;
		out->step = err.code == MEPP_STEP_ARGS ||
		    err.code == MEPP_STEP_CRYPTO ||
		    err.code == MEPP_STEP_RESOLVE ||
		    err.code == MEPP_STEP_CONNECT ||
		    (err.code == MEPP_STEP_TIMEOUT &&
		    strstr(err.msg, "connect") != NULL) ?
		    MEPP_PROBE_STEP_CONNECT : MEPP_PROBE_STEP_EXCHANGE;
		str_copy(out->message, err.msg, sizeof(out->message));
	}
	return code;
}

enum mepp_probe_outcome
mepp_client_probe(const struct mepp_client *c, const char *peer_name,
    struct mepp_probe *out)
{
	enum mepp_kdf_form other;
	const char *name = peer_name != NULL ? peer_name :
	    c != NULL && c->host != NULL ? c->host : "(unnamed)";
	int code, code2 = -1;

	memset(out, 0, sizeof(*out));
	out->code = -1;
	out->outcome = MEPP_PROBE_FAILED;
	if (c == NULL) {
		out->step = MEPP_PROBE_STEP_CONNECT;
		out->io_step = MEPP_STEP_ARGS;
		str_copy(out->message, "MEPP probe: no peer", sizeof(out->message));
		goto done;
	}
	out->form = c->kdf_form;
	if ((code = mepp_probe_once(c, c->kdf_form, out)) == -1)
		goto done;
	out->code = code;
	out->outcome = mepp_probe_judge(code);
	if (out->outcome == MEPP_PROBE_KEY_WRONG) {
		/* Same key, other form? One more exchange tells. */
		other = c->kdf_form == MEPP_KDF_WORD8 ? MEPP_KDF_WORD4 :
		    MEPP_KDF_WORD8;
		code2 = mepp_probe_once(c, other, out);
		if (code2 != -1 && mepp_probe_judge(code2) ==
		    MEPP_PROBE_KEY_RIGHT) {
			out->outcome = MEPP_PROBE_FORM_MISMATCH;
			out->code = code2;
			out->form = other;
		}
		out->step = MEPP_PROBE_STEP_NONE;
		out->io_step = 0;
	}
	switch (out->outcome) {
	case MEPP_PROBE_KEY_RIGHT:
		snprintf(out->message, sizeof(out->message), "peer %s read our "
		    "request (it answered %d, %s, for a user that cannot "
		    "exist): the MEPP keys match", name, out->code,
		    mepp_result_reason(out->code));
		break;
	case MEPP_PROBE_KEY_WRONG:
		snprintf(out->message, sizeof(out->message), "%d: secret key "
		    "mismatch or packet error for user %s on host %s: it "
		    "answered %d (%s) %s: the MEPP keys differ",
		    PSYNC_MSG_KEY_MISMATCH, MEPP_PROBE_USER, name, code,
		    mepp_result_reason(code), code2 == -1 ? "(the other key "
		    "derivation form got no answer)" : "with either key "
		    "derivation form");
		break;
	case MEPP_PROBE_FORM_MISMATCH:
		snprintf(out->message, sizeof(out->message), "peer %s shares "
		    "our key but derives the session key in the %s form: set "
		    "key-derivation = \"%s\" for it in psync.conf", name,
		    mepp_kdf_form_name(out->form),
		    mepp_kdf_form_name(out->form));
		break;
	case MEPP_PROBE_OTHER_CODE:
		snprintf(out->message, sizeof(out->message), "peer %s answered "
		    "%d (%s) for a user that cannot exist, which proves neither "
		    "a right nor a wrong key", name, out->code,
		    mepp_result_reason(out->code));
		break;
	case MEPP_PROBE_FAILED:
		break;
	}
done:
	return out->outcome;
}

/* ---------------------------------------------------------- listener */

static void
mepp_lpeers_free(struct mepp_lpeer *peers, size_t n)
{
	size_t i;

	if (peers == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(peers[i].name);
		secure_free_str(peers[i].secret);
		free(peers[i].trusted);
	}
	free(peers);
}

/* Copy and check a peer table into *out (n may be 0: no peer yet). */
static int
mepp_lpeers_copy(const struct mepp_peer *peers, size_t n,
    struct mepp_lpeer **out, struct psync_err *err)
{
	const struct mepp_peer *src;
	struct mepp_lpeer *dst, *tab = NULL;
	size_t i, j;
	int rc = -1;

	*out = NULL;
	if (n == 0)
		return 0;
	tab = calloc(n, sizeof(*tab));
	if (tab == NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		src = &peers[i];
		dst = &tab[i];
		if (src->name == NULL || src->secret == NULL ||
		    src->secret[0] == '\0') {
			perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: peer %s "
			    "has no name or no secret",
			    src->name != NULL ? src->name : "(unnamed)");
			goto done;
		}
		if (src->n_trusted == 0 || src->trusted == NULL) {
			perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: peer %s "
			    "has no trusted addresses", src->name);
			goto done;
		}
		dst->name = strdup(src->name);
		dst->secret = strdup(src->secret);
		dst->trusted = calloc(src->n_trusted, sizeof(*dst->trusted));
		if (dst->name == NULL || dst->secret == NULL ||
		    dst->trusted == NULL) {
			perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: out of "
			    "memory copying peer %s", src->name);
			goto done;
		}
		dst->n_trusted = src->n_trusted;
		for (j = 0; j < src->n_trusted; j++) {
			if (src->trusted[j] == NULL ||
			    mepp_addr_parse(src->trusted[j], &dst->trusted[j]) == -1) {
				perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: "
				    "peer %s: trusted address \"%s\" is not an "
				    "IPv4 or IPv6 address literal", src->name,
				    src->trusted[j] != NULL ? src->trusted[j] : "");
				goto done;
			}
		}
	}
	*out = tab;
	tab = NULL;
	rc = 0;
done:
	mepp_lpeers_free(tab, n);
	return rc;
}

int
mepp_listen(const char *address, unsigned int port, struct psync_err *err)
{
	struct addrinfo hints, *res = NULL;
	const char *host = address != NULL ? address : "::";
	char portbuf[16];
	int fd = -1, on = 1, off = 0, gai, rc = -1;

	snprintf(portbuf, sizeof(portbuf), "%u", port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (port > 65535 || (gai = getaddrinfo(host, portbuf, &hints,
	    &res)) != 0) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener %s:%u: cannot "
		    "resolve the address: %s", host, port, port > 65535 ?
		    "port beyond 65535" : gai_strerror(gai));
		goto done;
	}
	fd = socket(res->ai_family,
	    res->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, res->ai_protocol);
	if (fd == -1) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener %s:%u: socket: "
		    "%s", host, port, strerror(errno));
		goto done;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener %s:%u: "
		    "SO_REUSEADDR: %s", host, port, strerror(errno));
		goto done;
	}
	/* Without an address, IPv4 clients arrive as IPv4-mapped IPv6. */
	if (res->ai_family == AF_INET6 && address == NULL &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off,
	    sizeof(off)) == -1) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener %s:%u: "
		    "IPV6_V6ONLY: %s", host, port, strerror(errno));
		goto done;
	}
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 128) == -1) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener %s:%u: cannot "
		    "listen: %s", host, port, strerror(errno));
		goto done;
	}
	rc = fd;
	fd = -1;
done:
	if (fd != -1)
		close(fd);
	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

/* Take a listening socket: its port and a label for the logs. */
static int
mepp_listener_set_fd(struct mepp_listener *l, int fd, struct psync_err *err)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct mepp_addr bound;
	char addr[INET6_ADDRSTRLEN];

	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1 ||
	    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: descriptor %d "
		    "is not a TCP socket", fd);
		return -1;
	}
	l->fd = fd;
	l->port = ntohs(ss.ss_family == AF_INET6 ?
	    ((struct sockaddr_in6 *)(void *)&ss)->sin6_port :
	    ((struct sockaddr_in *)(void *)&ss)->sin_port);
	mepp_addr_from_sockaddr(&ss, &bound);
	mepp_addr_format(&bound, addr, sizeof(addr));
	snprintf(l->label, sizeof(l->label), "%s:%u", addr, l->port);
	return 0;
}

/* A listener without its socket; fd < 0: bind conf's address. */
static struct mepp_listener *
mepp_listener_make(const struct mepp_listener_conf *conf, int fd,
    struct psync_err *err)
{
	struct mepp_listener *l = NULL;
	int locks = 0, ok = 0, lfd = -1;

	if (mepp_crypto_init(err) == -1)
		goto done;
	if ((conf->decide == NULL && conf->decide_ex == NULL) ||
	    conf->port > 65535) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: no decision "
		    "callback or a port beyond 65535");
		goto done;
	}
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: out of memory");
		goto done;
	}
	l->fd = -1;
	l->stop_pipe[0] = l->stop_pipe[1] = -1;
	atomic_init(&l->stopping, false);
	l->decide = conf->decide;
	l->decide_ex = conf->decide_ex;
	l->concurrent = conf->concurrent_decisions;
	l->ctx = conf->ctx;
	l->timeout_ms = conf->request_timeout_ms > 0 ? conf->request_timeout_ms :
	    MEPP_REQUEST_TIMEOUT_MS;
	l->max_conns = conf->max_connections > 0 ? conf->max_connections :
	    MEPP_MAX_CONNECTIONS;
	if (pthread_mutex_init(&l->lock, NULL) != 0 ||
	    pthread_cond_init(&l->idle, NULL) != 0 ||
	    pthread_mutex_init(&l->decide_lock, NULL) != 0 ||
	    pthread_rwlock_init(&l->peers_lock, NULL) != 0) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: cannot create "
		    "its locks");
		goto done;
	}
	locks = 1;
	if (mepp_lpeers_copy(conf->peers, conf->n_peers, &l->peers, err) == -1)
		goto done;
	l->n_peers = conf->n_peers;
	if (pipe2(l->stop_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: pipe: %s",
		    strerror(errno));
		goto done;
	}
	if (fd < 0 && (lfd = mepp_listen(conf->address, conf->port, err)) == -1)
		goto done;
	if (mepp_listener_set_fd(l, fd < 0 ? lfd : fd, err) == -1)
		goto done;
	lfd = -1;
	ok = 1;
done:
	if (lfd != -1)
		close(lfd);
	if (!ok && l != NULL) {
		if (!locks) {
			/* Partially initialised locks are not destroyed. */
			free(l);
		} else {
			if (fd >= 0 && l->fd == fd)
				l->fd = -1;	/* the caller keeps it */
			mepp_listener_free(l);
		}
		l = NULL;
	}
	return l;
}

struct mepp_listener *
mepp_listener_open(const struct mepp_listener_conf *conf, struct psync_err *err)
{
	if (conf->n_peers == 0 || conf->peers == NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "MEPP listener: no MEPP peers "
		    "configured, so no client could ever be trusted");
		return NULL;
	}
	return mepp_listener_make(conf, -1, err);
}

struct mepp_listener *
mepp_listener_adopt(int fd, const struct mepp_listener_conf *conf,
    struct psync_err *err)
{
	return mepp_listener_make(conf, fd, err);
}

int
mepp_listener_set_peers(struct mepp_listener *l, const struct mepp_peer *peers,
    size_t n, struct psync_err *err)
{
	struct mepp_lpeer *tab, *old;
	size_t n_old;

	if (mepp_lpeers_copy(peers, n, &tab, err) == -1)
		return -1;
	pthread_rwlock_wrlock(&l->peers_lock);
	old = l->peers;
	n_old = l->n_peers;
	l->peers = tab;
	l->n_peers = n;
	pthread_rwlock_unlock(&l->peers_lock);
	mepp_lpeers_free(old, n_old);
	return 0;
}

unsigned int
mepp_listener_port(const struct mepp_listener *l)
{
	return l->port;
}

void
mepp_listener_stop(struct mepp_listener *l)
{
	static const char one = 1;
	int saved = errno;

	atomic_store(&l->stopping, true);
	/* Stays readable: every poll() in run() and the connections wakes. */
	if (write(l->stop_pipe[1], &one, 1) == -1) {
		/* Full pipe: a byte is already there, which is enough. */
	}
	errno = saved;
}

void
mepp_listener_free(struct mepp_listener *l)
{
	if (l == NULL)
		return;
	if (l->fd != -1)
		close(l->fd);
	if (l->stop_pipe[0] != -1)
		close(l->stop_pipe[0]);
	if (l->stop_pipe[1] != -1)
		close(l->stop_pipe[1]);
	mepp_lpeers_free(l->peers, l->n_peers);
	pthread_rwlock_destroy(&l->peers_lock);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->idle);
	pthread_mutex_destroy(&l->decide_lock);
	free(l);
}

/* The log line of the legacy tools for an answer, or psync's own. */
static void
mepp_log_answer(const char *peer, const char *addr, const char *user,
    int type, int code, const char *why, enum mepp_kdf_form form)
{
	const char *what = type == MEPP_TYPE_CHECK ? "check" : "password change";
	/* Worth knowing: that client is the 64-bit legacy PAM module. */
	const char *how = form == MEPP_KDF_WORD8 ? " (8-byte key derivation "
	    "form of the 64-bit legacy PAM module)" : "";

	/* The user name came off the network; a peer may repeat itself. */
	user = log_str(user);

	switch (code) {
	case PSYNC_OK:
		log_info("MEPP: %s for user %s from host %s/%s: accepted%s",
		    what, user, peer, addr, how);
		break;
	case PSYNC_E_PROTOCOL:
		log_peer_warnx(peer, "%d: secret key mismatch or packet "
		    "error for user %s on host %s/%s (%s)",
		    PSYNC_MSG_KEY_MISMATCH, user, peer, addr,
		    why != NULL ? why : "refused by the decision");
		break;
	case PSYNC_E_NO_USER:
		log_peer_warnx(peer, "%d: user %s does not exist on host %s/%s%s",
		    PSYNC_MSG_NO_USER, user, peer, addr, how);
		break;
	case PSYNC_E_REFUSED:
		log_peer_warnx(peer, "%d: password propagation denied for "
		    "the remote user %s on host %s/%s%s", PSYNC_MSG_DENIED,
		    user, peer, addr, how);
		break;
	default:
		log_peer_warnx(peer, "MEPP: %s for user %s from host %s/%s "
		    "answered %d (%s)%s", what, user, peer, addr, code,
		    code_reason(code), how);
		break;
	}
}

/*
 * Serve one connection: R1, one request, one answer. The peer table may
 * be swapped (a reload) while connections are served:
 * the lookups and the MAC checks run under the read lock, and only the
 * matched peer's name is kept after it.
 */
static void
mepp_conn_serve(struct mepp_conn *c)
{
	struct mepp_listener *l = c->l;
	const struct mepp_lpeer *peer;
	struct mepp_request req;
	uint8_t r1[MEPP_NONCE_LEN], buf[MEPP_MAX_REQUEST];
	uint8_t resp[MEPP_RESPONSE_LEN];
	struct mepp_decision d;
	char user[MEPP_LOG_NAME_MAX + 1];
	char pname[256];	/* a peer name from the configuration */
	const char *why = NULL;
	enum mepp_io io;
	enum mepp_kdf_form form = MEPP_KDF_WORD4;
	int64_t deadline;
	size_t total = 0, got = 0, from = 0;
	int code = PSYNC_E_PROTOCOL, type = -1, answer = 0, matched = 0;
	bool closed = false;

	memset(&req, 0, sizeof(req));
	str_copy(user, "(unknown)", sizeof(user));
	pthread_rwlock_rdlock(&l->peers_lock);
	peer = mepp_peer_next(l, &c->from, &from);
	if (peer != NULL)
		str_copy(pname, peer->name, sizeof(pname));
	pthread_rwlock_unlock(&l->peers_lock);
	if (peer == NULL)
		goto done;
	deadline = clock_mono_ms() + l->timeout_ms;
	if (RAND_bytes(r1, sizeof(r1)) != 1) {
		log_warnx("MEPP: the random number generator failed; closed the "
		    "connection from host %s/%s", pname, c->addr);
		goto done;
	}
	if ((io = mepp_write_full(c->fd, r1, sizeof(r1), deadline)) != MEPP_IO_OK) {
		log_warnx("MEPP: cannot send R1 to host %s/%s: %s",
		    pname, c->addr, mepp_io_reason(io));
		goto done;
	}
	io = mepp_read_full(c->fd, buf, MEPP_HEADER_LEN, &got, deadline,
	    l->stop_pipe[0]);
	if (io == MEPP_IO_OK) {
		if ((total = mepp_request_header(buf, MEPP_HEADER_LEN, &why)) == 0) {
			/* Refused before reading a body it announces. */
			answer = 1;
			goto done;
		}
		io = mepp_read_full(c->fd, buf + MEPP_HEADER_LEN,
		    total - MEPP_HEADER_LEN, &got, deadline, l->stop_pipe[0]);
	}
	if (io == MEPP_IO_CLOSED) {
		/*
		 * The client sent part of a request and shut its side down
		 * (or sent nothing): it still reads, and the published
		 * listener answers it 5, a short read.
		 */
		closed = true;
		answer = 1;
		goto done;
	}
	if (io != MEPP_IO_OK) {
		if (io != MEPP_IO_STOPPED)
			log_warnx("%d: error in receiving from socket: host "
			    "%s/%s: %s", PSYNC_MSG_RECV, pname, c->addr,
			    mepp_io_reason(io));
		goto done;
	}
	answer = 1;
	/* Peers sharing an address: the one whose secret verifies. */
	from = 0;
	pthread_rwlock_rdlock(&l->peers_lock);
	while ((peer = mepp_peer_next(l, &c->from, &from)) != NULL) {
		code = mepp_request_parse(r1, peer->secret, buf, total, &req);
		if (code != PSYNC_E_PROTOCOL) {
			str_copy(pname, peer->name, sizeof(pname));
			matched = 1;
			break;
		}
		why = req.why;
	}
	pthread_rwlock_unlock(&l->peers_lock);
	if (!matched)
		goto done;
	if (code != PSYNC_OK) {
		why = req.why;
		goto done;
	}
	type = (int)req.type;
	form = req.form;
	mepp_log_name(req.user, user, sizeof(user));
	if (!l->concurrent && pthread_mutex_lock(&l->decide_lock) != 0) {
		code = PSYNC_E_UPDATE_FAILED;
		goto done;
	}
	if (l->decide_ex != NULL) {
		d.peer = pname;
		d.addr = c->addr;
		d.type = type;
		d.user = req.user;
		d.password = req.password;
		d.form = form;
		code = l->decide_ex(l->ctx, &d);
		memset(&d, 0, sizeof(d));
	} else
		code = l->decide(l->ctx, pname, type, req.user, req.password);
	if (!l->concurrent)
		pthread_mutex_unlock(&l->decide_lock);
	if (code < 0 || code > PSYNC_CODE_MAX) {
		log_warnx("MEPP: the decision for user %s from host %s/%s gave "
		    "%d, not a result code; answering %d", log_str(user), pname,
		    c->addr, code, PSYNC_E_UPDATE_FAILED);
		code = PSYNC_E_UPDATE_FAILED;
	}
done:
	mepp_request_wipe(&req);
	secure_wipe(buf, sizeof(buf));
	if (answer) {
		/*
		 * A failed MAC leaves the user unknown: the bytes before the
		 * first NUL may then be anything, the password included.
		 */
		if (closed)
			log_warnx("%d: error in receiving from socket: host "
			    "%s/%s: the client closed its side after %zu bytes "
			    "of a request; answering %d", PSYNC_MSG_RECV,
			    pname, c->addr,
			    total > 0 ? MEPP_HEADER_LEN + got : got,
			    PSYNC_E_PROTOCOL);
		else
			mepp_log_answer(pname, c->addr, user, type, code, why,
			    form);
		mepp_response_build(code, resp);
		deadline = clock_mono_ms() + l->timeout_ms;
		if ((io = mepp_write_full(c->fd, resp, sizeof(resp), deadline)) !=
		    MEPP_IO_OK)
			log_warnx("MEPP: cannot send the result to host %s/%s: %s",
			    pname, c->addr, mepp_io_reason(io));
	}
}

static void *
mepp_conn_thread(void *arg)
{
	struct mepp_conn *c = arg;
	struct mepp_listener *l = c->l;

	mepp_conn_serve(c);
	close(c->fd);
	free(c);
	pthread_mutex_lock(&l->lock);
	if (--l->active == 0)
		pthread_cond_broadcast(&l->idle);
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

/* Check a new connection and hand it to a thread; closes it otherwise. */
static void
mepp_listener_take(struct mepp_listener *l, int fd,
    const struct sockaddr_storage *ss)
{
	struct mepp_conn *c = NULL;
	struct mepp_addr from;
	pthread_attr_t attr;
	pthread_t tid;
	char addr[INET6_ADDRSTRLEN];
	size_t idx = 0;
	bool attr_ok = false, counted = false, trusted;
	int rc;

	mepp_addr_from_sockaddr(ss, &from);
	mepp_addr_format(&from, addr, sizeof(addr));
	pthread_rwlock_rdlock(&l->peers_lock);
	trusted = mepp_peer_next(l, &from, &idx) != NULL;
	pthread_rwlock_unlock(&l->peers_lock);
	if (!trusted) {
		log_warnx("MEPP listener %s: refused a connection from %s: no "
		    "MEPP peer trusts this address", l->label, addr);
		goto fail;
	}
	pthread_mutex_lock(&l->lock);
	if (l->active >= l->max_conns) {
		pthread_mutex_unlock(&l->lock);
		log_warnx("MEPP listener %s: %u connections already open; "
		    "closed a new one from %s at once", l->label, l->max_conns,
		    addr);
		goto fail;
	}
	l->active++;
	counted = true;
	pthread_mutex_unlock(&l->lock);

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("MEPP listener %s: out of memory for a connection "
		    "from %s", l->label, addr);
		goto fail;
	}
	c->l = l;
	c->fd = fd;
	c->from = from;
	str_copy(c->addr, addr, sizeof(c->addr));
	if (pthread_attr_init(&attr) != 0)
		goto fail_thread;
	attr_ok = true;
	if (pthread_attr_setstacksize(&attr, MEPP_THREAD_STACK) != 0 ||
	    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED) != 0)
		goto fail_thread;
	if ((rc = pthread_create(&tid, &attr, mepp_conn_thread, c)) != 0) {
		errno = rc;
		goto fail_thread;
	}
	pthread_attr_destroy(&attr);
	return;
fail_thread:
	log_warn("MEPP listener %s: cannot start a thread for the connection "
	    "from %s", l->label, addr);
	if (attr_ok)
		pthread_attr_destroy(&attr);
fail:
	free(c);
	close(fd);
	if (counted) {
		pthread_mutex_lock(&l->lock);
		if (--l->active == 0)
			pthread_cond_broadcast(&l->idle);
		pthread_mutex_unlock(&l->lock);
	}
}

int
mepp_listener_run(struct mepp_listener *l)
{
	struct sockaddr_storage ss;
	struct pollfd pfd[2];
	socklen_t sslen;
	int fd, rc = -1;

	log_info("MEPP listener %s: accepting legacy peers", l->label);
	pfd[0].fd = l->fd;
	pfd[0].events = POLLIN;
	pfd[1].fd = l->stop_pipe[0];
	pfd[1].events = POLLIN;
	while (!atomic_load(&l->stopping)) {
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			log_warn("MEPP listener %s: poll", l->label);
			goto done;
		}
		if (pfd[1].revents != 0)
			break;
		if (pfd[0].revents == 0)
			continue;
		sslen = sizeof(ss);
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			switch (errno) {
			case EINTR:
			case EAGAIN:
			case ECONNABORTED:
			case EPROTO:
				break;
			case EMFILE:
			case ENFILE:
			case ENOBUFS:
			case ENOMEM:
				/* Do not spin: the connection waits in the backlog. */
				log_warn("MEPP listener %s: accept", l->label);
				(void)poll(&pfd[1], 1, MEPP_EMFILE_PAUSE_MS);
				break;
			default:
				log_warn("MEPP listener %s: accept", l->label);
				goto done;
			}
			continue;
		}
		mepp_listener_take(l, fd, &ss);
	}
	rc = 0;
done:
	/* Connections see the stop pipe too; wait for the last one. */
	mepp_listener_stop(l);
	pthread_mutex_lock(&l->lock);
	while (l->active > 0)
		pthread_cond_wait(&l->idle, &l->lock);
	pthread_mutex_unlock(&l->lock);
	log_info("MEPP listener %s: stopped", l->label);
	return rc;
}
