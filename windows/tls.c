/* The agent's TLS 1.3 client: see tls.h and doc/protocol.md. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "codes.h"
#include "frame.h"
#include "tls.h"
#include "tls_psk.h"
#include "util.h"

#define GROUPS		"X25519:P-256:P-384"

struct tls_conn {
	SOCKET		 s;
	SSL_CTX		*ctx;
	SSL		*ssl;
	const struct tls_peer *peer;
	char		 addr[80];
	unsigned char	 in[FRAME_BUF_MAX];
	size_t		 in_len;
};

int
tls_init(void)
{
	WSADATA wsa;

	if (WSAStartup(MAKEWORD(2, 2), &wsa) != 0)
		return -1;
	return OPENSSL_init_ssl(0, NULL) == 1 ? 0 : -1;
}

static void
ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		snprintf(buf, len, "no detail");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

static int
use_session(SSL *ssl, const EVP_MD *md, const unsigned char **id,
    size_t *idlen, SSL_SESSION **sess)
{
	struct tls_conn *c = SSL_get_app_data(ssl);

	*sess = NULL;
	if (c == NULL || tls_psk_cipher(ssl) == NULL)
		return 0;
	/* After a HelloRetryRequest OpenSSL asks again, with the suite's hash. */
	if (!tls_psk_digest_fits(ssl, md))
		return 1;
	if ((*sess = tls_psk_session(ssl, c->peer->key)) == NULL)
		return 0;
	*id = (const unsigned char *)c->peer->identity;
	*idlen = strlen(c->peer->identity);
	return 1;
}

static SSL_CTX *
ctx_new(const struct tls_peer *p, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	char why[256];

	if (ctx == NULL)
		goto fail;
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, GROUPS) != 1)
		goto fail;
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	if (SSL_CTX_set_ciphersuites(ctx, TLS_PSK_SUITE) != 1)
		goto fail;
	/* An empty trust store: a certificate instead of our PSK fails. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_psk_use_session_callback(ctx, use_session);
	return ctx;
fail:
	ssl_reason(why, sizeof(why));
	snprintf(err, errlen, "peer %s: cannot set up TLS: %s", p->name, why);
	SSL_CTX_free(ctx);
	return NULL;
}

static void
set_timeouts(SOCKET s, int ms)
{
	DWORD t = (DWORD)ms;

	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, (const char *)&t, sizeof(t));
	setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, (const char *)&t, sizeof(t));
}

/* Non-blocking connect bounded by the timeout, then blocking again. */
static SOCKET
dial(const struct tls_peer *p, char *addr, size_t addrlen, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	char port[8];
	SOCKET s = INVALID_SOCKET;
	u_long nb;
	int rc, last = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", p->port);
	snprintf(addr, addrlen, "%s:%u", p->host, p->port);
	if ((rc = getaddrinfo(p->host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "peer %s (%s): cannot resolve: error %d",
		    p->name, addr, rc);
		return INVALID_SOCKET;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd_set wr, ex;
		struct timeval tv;

		s = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (s == INVALID_SOCKET)
			continue;
		nb = 1;
		ioctlsocket(s, FIONBIO, &nb);
		if (connect(s, ai->ai_addr, (int)ai->ai_addrlen) == 0)
			goto connected;
		if (WSAGetLastError() == WSAEWOULDBLOCK) {
			FD_ZERO(&wr);
			FD_ZERO(&ex);
			FD_SET(s, &wr);
			FD_SET(s, &ex);
			tv.tv_sec = p->timeout_ms / 1000;
			tv.tv_usec = (p->timeout_ms % 1000) * 1000;
			if (select(0, NULL, &wr, &ex, &tv) == 1 &&
			    FD_ISSET(s, &wr)) {
				int e = 0, el = sizeof(e);

				getsockopt(s, SOL_SOCKET, SO_ERROR, (char *)&e, &el);
				if (e == 0)
					goto connected;
				last = e;
			} else {
				int e = 0, el = sizeof(e);

				getsockopt(s, SOL_SOCKET, SO_ERROR, (char *)&e, &el);
				last = e != 0 ? e : WSAETIMEDOUT;
			}
		} else {
			last = WSAGetLastError();
		}
		closesocket(s);
		s = INVALID_SOCKET;
	}
	freeaddrinfo(res);
	snprintf(err, errlen, "peer %s (%s): cannot connect: %s", p->name, addr,
	    last == WSAETIMEDOUT ? "timed out" : last == WSAECONNREFUSED ?
	    "connection refused" : "network error");
	if (last != WSAETIMEDOUT && last != WSAECONNREFUSED) {
		size_t n = strlen(err);

		snprintf(err + n, errlen - n, " %d", last);
	}
	return INVALID_SOCKET;
connected:
	freeaddrinfo(res);
	nb = 0;
	ioctlsocket(s, FIONBIO, &nb);
	set_timeouts(s, p->timeout_ms);
	return s;
}

static int
hello(struct tls_conn *c, char *err, size_t errlen)
{
	struct frame f;
	struct psync_err perr;
	enum tls_status st;

	if (frame_set_hello(&f, c->peer->identity, FRAME_VERSION, 0, &perr) == -1) {
		snprintf(err, errlen, "HELLO: %s", perr.msg);
		return -1;
	}
	if (tls_send(c, &f, err, errlen) == -1)
		return -1;
	st = tls_recv(c, &f, err, errlen);
	if (st != TLS_FRAME) {
		if (st == TLS_TIMEOUT || st == TLS_CLOSED)
			snprintf(err, errlen, "peer %s (%s): no HELLO: %s",
			    c->peer->name, c->addr, st == TLS_TIMEOUT ?
			    "timed out" : "connection closed");
		return -1;
	}
	if (f.type == FRAME_ERROR) {
		snprintf(err, errlen, "peer %s (%s): refused: code %u (%s): %s",
		    c->peer->name, c->addr, f.u.error.code,
		    code_reason(f.u.error.code), f.u.error.reason);
		return -1;
	}
	if (f.type != FRAME_HELLO || strcmp(f.u.hello.node, c->peer->name) != 0 ||
	    f.u.hello.version != FRAME_VERSION) {
		snprintf(err, errlen, "peer %s (%s): unexpected answer to HELLO "
		    "(%s %s)", c->peer->name, c->addr, frame_type_name(f.type),
		    f.type == FRAME_HELLO ? f.u.hello.node : "");
		return -1;
	}
	return 0;
}

struct tls_conn *
tls_connect(const struct tls_peer *p, char *err, size_t errlen)
{
	struct tls_conn *c;
	char why[256];
	int r, e;

	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->peer = p;
	c->s = dial(p, c->addr, sizeof(c->addr), err, errlen);
	if (c->s == INVALID_SOCKET)
		goto fail;
	if ((c->ctx = ctx_new(p, err, errlen)) == NULL)
		goto fail;
	if ((c->ssl = SSL_new(c->ctx)) == NULL ||
	    SSL_set_fd(c->ssl, (int)c->s) != 1) {
		snprintf(err, errlen, "peer %s: cannot set up TLS", p->name);
		goto fail;
	}
	SSL_set_app_data(c->ssl, c);
	ERR_clear_error();
	r = SSL_connect(c->ssl);
	if (r != 1) {
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0) {
			snprintf(err, errlen, "peer %s (%s): TLS handshake failed: "
			    "%s", p->name, c->addr,
			    WSAGetLastError() == WSAETIMEDOUT ? "timed out" :
			    "the peer closed the connection");
		} else {
			ssl_reason(why, sizeof(why));
			snprintf(err, errlen, "%d: secret key mismatch or packet "
			    "error: peer %s (%s): TLS handshake failed: %s",
			    PSYNC_MSG_KEY_MISMATCH, p->name, c->addr, why);
		}
		goto fail;
	}
	if (!SSL_session_reused(c->ssl)) {
		snprintf(err, errlen, "%d: secret key mismatch or packet error: "
		    "peer %s (%s): the handshake did not use the pre-shared key",
		    PSYNC_MSG_KEY_MISMATCH, p->name, c->addr);
		goto fail;
	}
	if (hello(c, err, errlen) == -1)
		goto fail;
	return c;
fail:
	tls_close(c);
	return NULL;
}

int
tls_send(struct tls_conn *c, const struct frame *f, char *err, size_t errlen)
{
	unsigned char buf[FRAME_BUF_MAX];
	struct psync_err perr;
	long n;
	int w;

	n = frame_encode(f, buf, sizeof(buf), &perr);
	if (n < 0) {
		snprintf(err, errlen, "%s frame: %s", frame_type_name(f->type),
		    perr.msg);
		return -1;
	}
	ERR_clear_error();
	w = SSL_write(c->ssl, buf, (int)n);
	secure_wipe(buf, (size_t)n);
	if (w != n) {
		snprintf(err, errlen, "peer %s (%s): connection lost while "
		    "sending", c->peer->name, c->addr);
		return -1;
	}
	return 0;
}

enum tls_status
tls_recv(struct tls_conn *c, struct frame *f, char *err, size_t errlen)
{
	struct psync_err perr;
	char why[256];
	long used;
	int r, e;

	for (;;) {
		used = frame_decode(c->in, c->in_len, f, &perr);
		if (used < 0) {
			snprintf(err, errlen, "peer %s (%s): %s", c->peer->name,
			    c->addr, perr.msg);
			return TLS_FAIL;
		}
		if (used > 0) {
			memmove(c->in, c->in + used, c->in_len - (size_t)used);
			c->in_len -= (size_t)used;
			return TLS_FRAME;
		}
		ERR_clear_error();
		r = SSL_read(c->ssl, c->in + c->in_len,
		    (int)(sizeof(c->in) - c->in_len));
		if (r > 0) {
			c->in_len += (size_t)r;
			continue;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_ZERO_RETURN)
			return TLS_CLOSED;
		if (e == SSL_ERROR_SYSCALL && WSAGetLastError() == WSAETIMEDOUT) {
			snprintf(err, errlen, "peer %s (%s): no answer before the "
			    "deadline", c->peer->name, c->addr);
			return TLS_TIMEOUT;
		}
		ssl_reason(why, sizeof(why));
		snprintf(err, errlen, "peer %s (%s): connection lost: %s",
		    c->peer->name, c->addr, why);
		return TLS_FAIL;
	}
}

const char *
tls_address(const struct tls_conn *c)
{
	return c->addr;
}

void
tls_close(struct tls_conn *c)
{
	if (c == NULL)
		return;
	if (c->ssl != NULL) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->s != INVALID_SOCKET && c->s != 0)
		closesocket(c->s);
	secure_wipe(c->in, sizeof(c->in));
	free(c);
}
