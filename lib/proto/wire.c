/*
 * TLS 1.3 transport for psync's native protocol. Authentication is an
 * external PSK per peer, always combined with an (EC)DHE exchange
 * (psk_dhe_ke, for forward secrecy), or X.509 mutual TLS. The PSK travels
 * to OpenSSL as an SSL_SESSION built in the PSK callbacks; the server finds
 * it through the caller's lookup so that a rotation can accept two keys.
 * Sockets are non-blocking and every wait is a poll() against a deadline.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "codes.h"
#include "frame.h"
#include "log.h"
#include "util.h"
#include "tls_psk.h"
#include "wire.h"

#define WIRE_GROUPS		"X25519:P-256:P-384"
#define WIRE_ADDR_MAX		(INET6_ADDRSTRLEN + 8)
#define WIRE_IO_TIMEOUT_MS	30000

struct wire_server {
	SSL_CTX			*ctx;
	wire_psk_lookup_fn	 lookup;
	void			*lookup_ctx;
	int			 io_timeout_ms;
};

struct wire_conn {
	SSL		*ssl;
	int		 fd;
	bool		 server;
	bool		 broken;	/* no close_notify, no more I/O */
	bool		 x509;
	bool		 unknown_identity;	/* server: lookup said no */
	int		 io_timeout_ms;
	uint16_t	 version;	/* negotiated in wire_hello */
	unsigned long	 nframes;	/* frames received so far */
	struct wire_server *srv;
	char		 peer[WIRE_IDENTITY_MAX + 1];
	char		 addr[WIRE_ADDR_MAX];
	char		 identity[WIRE_IDENTITY_MAX + 1];	/* client: ours */
	unsigned char	 key[WIRE_KEY_LEN];			/* client: PSK */
	size_t		 rlen;
	unsigned char	 rbuf[FRAME_BUF_MAX];
	unsigned char	 wbuf[FRAME_BUF_MAX];
};

static int64_t
deadline_after(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : clock_mono_ms() + timeout_ms;
}

/* Wait for events on fd until the deadline (-1: none). 1 ready, 0 timed
   out, -1 error (errno set). */
static int
wait_fd(int fd, short events, int64_t deadline)
{
	struct pollfd pfd;
	int64_t left;
	int n;

	for (;;) {
		left = deadline < 0 ? -1 : deadline - clock_mono_ms();
		if (deadline >= 0 && left < 0)
			left = 0;
		pfd.fd = fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n > 0)
			return 1;
		if (n == 0) {
			if (deadline >= 0 && clock_mono_ms() >= deadline)
				return 0;
			continue;
		}
		if (errno != EINTR)
			return -1;
	}
}

/* The newest OpenSSL error as text, and the queue emptied. */
static const char *
ssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		str_copy(buf, "no further detail", len);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

static void
sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	unsigned int port = 0;
	const void *a = NULL;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		a = &in->sin_addr;
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;

		a = &in6->sin6_addr;
		port = ntohs(in6->sin6_port);
	}
	if (a == NULL || inet_ntop(sa->sa_family, a, host, sizeof(host)) == NULL) {
		str_copy(buf, "unknown address", len);
		return;
	}
	if (sa->sa_family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", host, port);
	else
		snprintf(buf, len, "%s:%u", host, port);
}

/* --------------------------------------------------------- TLS contexts */

static int	verify_note_name(int, X509_STORE_CTX *);

/* Never prompt on a terminal for a passphrase: an encrypted key fails. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return 0;
}

static FILE *
open_trusted_stream(const char *path, bool private, struct psync_err *err)
{
	FILE *fp;
	int fd;

	fd = file_open_trusted(path, private, err);
	if (fd == -1)
		return NULL;
	fp = fdopen(fd, "r");
	if (fp == NULL) {
		perr_set(err, PSYNC_E_OPEN, "%s: %s", path, strerror(errno));
		close(fd);
	}
	return fp;
}

/* Certificates, chain, key and CAs from root-owned files, no symlinks. */
static int
ctx_load_x509(SSL_CTX *ctx, const struct wire_x509 *x, struct psync_err *err)
{
	X509_STORE *store = SSL_CTX_get_cert_store(ctx);
	X509 *cert = NULL;
	EVP_PKEY *pkey = NULL;
	FILE *fp = NULL;
	char buf[256];
	int ncert = 0, rc = -1;

	if (x->ca_file == NULL || x->cert_file == NULL || x->key_file == NULL) {
		perr_set(err, PSYNC_E_OPEN, "X.509 mode needs a CA file, a "
		    "certificate and a private key");
		goto done;
	}
	if ((fp = open_trusted_stream(x->ca_file, false, err)) == NULL)
		goto done;
	while ((cert = PEM_read_X509(fp, NULL, no_passphrase, NULL)) != NULL) {
		if (X509_STORE_add_cert(store, cert) != 1) {
			perr_set(err, PSYNC_E_OPEN, "%s: cannot add CA: %s",
			    x->ca_file, ssl_reason(buf, sizeof(buf)));
			goto done;
		}
		X509_free(cert);
		cert = NULL;
		ncert++;
	}
	ERR_clear_error();	/* the end of the file reads as an error */
	fclose(fp);
	fp = NULL;
	if (ncert == 0) {
		perr_set(err, PSYNC_E_OPEN, "%s: no PEM certificate in the CA "
		    "file", x->ca_file);
		goto done;
	}

	if ((fp = open_trusted_stream(x->cert_file, false, err)) == NULL)
		goto done;
	cert = PEM_read_X509(fp, NULL, no_passphrase, NULL);
	if (cert == NULL || SSL_CTX_use_certificate(ctx, cert) != 1) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot use certificate: %s",
		    x->cert_file, ssl_reason(buf, sizeof(buf)));
		goto done;
	}
	X509_free(cert);
	while ((cert = PEM_read_X509(fp, NULL, no_passphrase, NULL)) != NULL) {
		if (SSL_CTX_add0_chain_cert(ctx, cert) != 1) {
			perr_set(err, PSYNC_E_OPEN, "%s: cannot add chain "
			    "certificate: %s", x->cert_file,
			    ssl_reason(buf, sizeof(buf)));
			goto done;
		}
		cert = NULL;	/* owned by ctx now */
	}
	ERR_clear_error();
	fclose(fp);
	fp = NULL;

	if ((fp = open_trusted_stream(x->key_file, true, err)) == NULL)
		goto done;
	pkey = PEM_read_PrivateKey(fp, NULL, no_passphrase, NULL);
	if (pkey == NULL || SSL_CTX_use_PrivateKey(ctx, pkey) != 1) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot use private key (it "
		    "must be PEM, not encrypted): %s", x->key_file,
		    ssl_reason(buf, sizeof(buf)));
		goto done;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		perr_set(err, PSYNC_E_OPEN, "%s: private key does not match "
		    "certificate %s", x->key_file, x->cert_file);
		goto done;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
	    verify_note_name);
	SSL_CTX_set_verify_depth(ctx, 4);
	rc = 0;
done:
	if (fp != NULL)
		fclose(fp);
	X509_free(cert);
	EVP_PKEY_free(pkey);
	return rc;
}

static int	psk_use_session(SSL *, const EVP_MD *, const unsigned char **,
		    size_t *, SSL_SESSION **);
static int	psk_find_session(SSL *, const unsigned char *, size_t,
		    SSL_SESSION **);

static SSL_CTX *
ctx_new(bool server, const struct wire_x509 *x509, struct psync_err *err)
{
	SSL_CTX *ctx;
	char buf[256], groups[] = WIRE_GROUPS;	/* the macro drops const */
	bool ok = false;

	ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	if (ctx == NULL) {
		perr_set(err, PSYNC_E_OPEN, "cannot create a TLS context: %s",
		    ssl_reason(buf, sizeof(buf)));
		goto done;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, groups) != 1) {
		perr_set(err, PSYNC_E_OPEN, "cannot restrict TLS to version "
		    "1.3 with groups %s: %s", WIRE_GROUPS,
		    ssl_reason(buf, sizeof(buf)));
		goto done;
	}
	/*
	 * No session tickets or resumption: every connection authenticates
	 * with the configured key. Never psk_ke: the (EC)DHE exchange is
	 * what gives forward secrecy.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_clear_options(ctx, SSL_OP_ALLOW_NO_DHE_KEX);
	/*
	 * Records carry passwords: have OpenSSL wipe each record buffer once
	 * the application has read (or it has sent) its plaintext, so that
	 * no buffer keeps the last password.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (server && SSL_CTX_set_num_tickets(ctx, 0) != 1) {
		perr_set(err, PSYNC_E_OPEN, "cannot turn off session tickets");
		goto done;
	}
	SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
	if (server && SSL_CTX_set_session_id_context(ctx,
	    (const unsigned char *)"psync", 5) != 1) {
		perr_set(err, PSYNC_E_OPEN, "cannot set the session context");
		goto done;
	}
	if (x509 != NULL) {
		if (ctx_load_x509(ctx, x509, err) == -1)
			goto done;
	} else {
		if (SSL_CTX_set_ciphersuites(ctx, TLS_PSK_SUITE) != 1) {
			perr_set(err, PSYNC_E_OPEN, "cannot select %s: %s",
			    TLS_PSK_SUITE, ssl_reason(buf, sizeof(buf)));
			goto done;
		}
		/*
		 * Verify with an empty trust store: if a server ever answered
		 * with a certificate instead of our PSK, the handshake fails.
		 */
		if (!server)
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
		if (server)
			SSL_CTX_set_psk_find_session_callback(ctx, psk_find_session);
		else
			SSL_CTX_set_psk_use_session_callback(ctx, psk_use_session);
	}
	ok = true;
done:
	if (!ok) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	return ctx;
}

static int
psk_use_session(SSL *ssl, const EVP_MD *md, const unsigned char **id,
    size_t *idlen, SSL_SESSION **sess)
{
	struct wire_conn *c = SSL_get_app_data(ssl);

	*sess = NULL;
	if (c == NULL || tls_psk_cipher(ssl) == NULL)
		return 0;
	/* After a HelloRetryRequest OpenSSL asks again, with the suite's hash. */
	if (!tls_psk_digest_fits(ssl, md))
		return 1;
	*sess = tls_psk_session(ssl, c->key);
	if (*sess == NULL)
		return 0;
	*id = (const unsigned char *)c->identity;
	*idlen = strlen(c->identity);
	return 1;
}

static int
psk_find_session(SSL *ssl, const unsigned char *identity, size_t len,
    SSL_SESSION **sess)
{
	struct wire_conn *c = SSL_get_app_data(ssl);
	unsigned char key[WIRE_KEY_LEN];
	size_t i;
	int rc = 0;

	*sess = NULL;
	if (c == NULL || c->srv == NULL)
		goto done;
	/* The identity lands in logs: only printable ASCII, like node names. */
	if (len == 0 || len > WIRE_IDENTITY_MAX) {
		str_copy(c->peer, "(malformed identity)", sizeof(c->peer));
		c->unknown_identity = true;
		rc = 1;
		goto done;
	}
	for (i = 0; i < len; i++) {
		if (identity[i] <= 0x20 || identity[i] > 0x7e) {
			str_copy(c->peer, "(malformed identity)", sizeof(c->peer));
			c->unknown_identity = true;
			rc = 1;
			goto done;
		}
	}
	memcpy(c->peer, identity, len);
	c->peer[len] = '\0';
	if (c->srv->lookup == NULL ||
	    c->srv->lookup(c->srv->lookup_ctx, c->peer, key) != 0) {
		/* No PSK: the handshake goes on without one and then fails. */
		c->unknown_identity = true;
		rc = 1;
		goto done;
	}
	*sess = tls_psk_session(ssl, key);
	rc = *sess != NULL;
done:
	secure_wipe(key, sizeof(key));
	return rc;
}

/* ------------------------------------------------------------- handshake */

static struct wire_conn *
conn_new(void)
{
	struct wire_conn *c = calloc(1, sizeof(*c));

	if (c != NULL) {
		c->fd = -1;
		c->io_timeout_ms = WIRE_IO_TIMEOUT_MS;
	}
	return c;
}

static void
conn_free(struct wire_conn *c)
{
	if (c == NULL)
		return;
	SSL_free(c->ssl);
	if (c->fd != -1)
		close(c->fd);
	secure_wipe(c, sizeof(*c));
	free(c);
}

/* Name of the peer certificate's subject CN, for messages. */
static void
cert_peer_name(SSL *ssl, char *buf, size_t len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	X509_NAME *name;
	size_t i;

	if (cert == NULL || (name = X509_get_subject_name(cert)) == NULL ||
	    X509_NAME_get_text_by_NID(name, NID_commonName, buf, (int)len) <= 0) {
		str_copy(buf, "(no certificate)", len);
		return;
	}
	for (i = 0; buf[i] != '\0'; i++)
		if ((unsigned char)buf[i] < 0x20 || (unsigned char)buf[i] > 0x7e)
			buf[i] = '?';
}

/*
 * Certificate verification: OpenSSL decides; we only note the leaf's name,
 * so that a refused certificate is still reported with the peer it names.
 */
static int
verify_note_name(int ok, X509_STORE_CTX *store)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(store,
	    SSL_get_ex_data_X509_STORE_CTX_idx());
	struct wire_conn *c = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(store);
	X509_NAME *name;
	size_t i;

	if (c == NULL || !c->server || c->peer[0] != '\0' || leaf == NULL)
		return ok;
	name = X509_get_subject_name(leaf);
	if (name == NULL || X509_NAME_get_text_by_NID(name, NID_commonName,
	    c->peer, (int)sizeof(c->peer)) <= 0) {
		c->peer[0] = '\0';
		return ok;
	}
	for (i = 0; c->peer[i] != '\0'; i++)
		if ((unsigned char)c->peer[i] <= 0x20 ||
		    (unsigned char)c->peer[i] > 0x7e)
			c->peer[i] = '?';
	return ok;
}

static bool
is_version_error(unsigned long e)
{
	static const int reasons[] = {
		SSL_R_UNSUPPORTED_PROTOCOL,
		SSL_R_WRONG_VERSION_NUMBER,
		SSL_R_TLSV1_ALERT_PROTOCOL_VERSION,
		SSL_R_NO_PROTOCOLS_AVAILABLE,
		SSL_R_WRONG_SSL_VERSION,
		SSL_R_VERSION_TOO_LOW,
		SSL_R_HTTP_REQUEST,
	};
	size_t i;

	if (ERR_GET_LIB(e) != ERR_LIB_SSL)
		return false;
	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (ERR_GET_REASON(e) == reasons[i])
			return true;
	return false;
}

/*
 * OpenSSL 3 reports a peer that closes the TCP connection without a TLS
 * alert as an SSL error (not SSL_ERROR_SYSCALL as before): a peer that died
 * or was restarted, not a key mismatch.
 */
static bool
is_unexpected_eof(unsigned long e)
{
	return ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

/*
 * Say why a handshake failed, in err and in the log. A key mismatch looks
 * the same as a damaged packet to TLS, hence the legacy wording of 8203.
 */
static void
handshake_failed(struct wire_conn *c, int sslerr, int saved_errno,
    struct psync_err *err)
{
	unsigned long e = ERR_peek_last_error();
	long vr = SSL_get_verify_result(c->ssl);
	char why[256];

	if (c->server && c->x509 && c->peer[0] == '\0')
		cert_peer_name(c->ssl, c->peer, sizeof(c->peer));
	if (c->server && c->peer[0] == '\0')
		str_copy(c->peer, "(unknown)", sizeof(c->peer));
	if (is_version_error(e)) {
		perr_set(err, PSYNC_E_VERSION_MISMATCH, "peer %s (%s): TLS "
		    "handshake refused: not TLS 1.3 (psync speaks TLS 1.3 "
		    "only): %s", c->peer, c->addr, ssl_reason(why, sizeof(why)));
	} else if (c->server && c->unknown_identity) {
		perr_set(err, PSYNC_E_REFUSED, "peer %s (%s): TLS handshake "
		    "refused: unknown PSK identity, no such peer is "
		    "configured", c->peer, c->addr);
	} else if ((sslerr == SSL_ERROR_SYSCALL && e == 0) ||
	    is_unexpected_eof(e)) {
		ERR_clear_error();
		perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): TLS handshake "
		    "failed: %s", c->peer, c->addr, saved_errno != 0 ?
		    strerror(saved_errno) : "the peer closed the connection");
	} else if (vr != X509_V_OK && c->x509) {
		ERR_clear_error();
		perr_set(err, PSYNC_E_DECRYPT, "%d: secret key mismatch or "
		    "packet error: peer %s (%s): certificate check failed: %s",
		    PSYNC_MSG_KEY_MISMATCH, c->peer, c->addr,
		    X509_verify_cert_error_string(vr));
	} else {
		perr_set(err, PSYNC_E_DECRYPT, "%d: secret key mismatch or "
		    "packet error: peer %s (%s): TLS handshake failed: %s",
		    PSYNC_MSG_KEY_MISMATCH, c->peer, c->addr,
		    ssl_reason(why, sizeof(why)));
	}
	log_warnx("%s", err->msg);
}

static int
handshake(struct wire_conn *c, int64_t deadline, struct psync_err *err)
{
	int r, e, w, saved;

	for (;;) {
		ERR_clear_error();
		errno = 0;
		r = SSL_do_handshake(c->ssl);
		if (r == 1)
			break;
		saved = errno;
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			w = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN :
			    POLLOUT, deadline);
			if (w == 1)
				continue;
			perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): TLS "
			    "handshake %s", c->peer[0] != '\0' ? c->peer :
			    "(unknown)", c->addr, w == 0 ?
			    "timed out" : strerror(errno));
			log_warnx("%s", err->msg);
			return -1;
		}
		handshake_failed(c, e, saved, err);
		return -1;
	}
	/* PSK mode must have used the PSK; nothing else authenticates. */
	if (!c->x509 && !SSL_session_reused(c->ssl)) {
		perr_set(err, PSYNC_E_DECRYPT, "%d: secret key mismatch or "
		    "packet error: peer %s (%s): the handshake did not use "
		    "the pre-shared key", PSYNC_MSG_KEY_MISMATCH, c->peer,
		    c->addr);
		log_warnx("%s", err->msg);
		return -1;
	}
	if (c->server && c->x509)
		cert_peer_name(c->ssl, c->peer, sizeof(c->peer));
	log_debug("peer %s (%s): %s handshake done, %s, group %s",
	    c->peer, c->addr, SSL_get_version(c->ssl),
	    SSL_get_cipher_name(c->ssl),
	    wire_kex_group(c) != NULL ? wire_kex_group(c) : "none");
	return 0;
}

/* Non-blocking connect to one address, bounded by the deadline. */
static int
connect_one(const struct addrinfo *ai, int64_t deadline, int *errp)
{
	socklen_t len = sizeof(*errp);
	int fd, w, one = 1;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, ai->ai_protocol);
	if (fd == -1) {
		*errp = errno;
		return -1;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) == -1) {
		if (errno != EINPROGRESS) {
			*errp = errno;
			goto fail;
		}
		w = wait_fd(fd, POLLOUT, deadline);
		if (w != 1) {
			*errp = w == 0 ? ETIMEDOUT : errno;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, errp, &len) == -1) {
			*errp = errno;
			goto fail;
		}
		if (*errp != 0)
			goto fail;
	}
	/* Pipelined small frames: do not let Nagle hold them back. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	return fd;
fail:
	close(fd);
	return -1;
}

struct wire_conn *
wire_connect(const struct wire_client_opts *o, struct psync_err *err)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct wire_conn *c = NULL;
	SSL_CTX *ctx = NULL;
	char port[16], buf[256];
	int64_t deadline = deadline_after(o->timeout_ms);
	int gai, cerr = 0;
	bool ok = false;

	c = conn_new();
	if (c == NULL) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: out of memory", o->peer_name);
		goto done;
	}
	if (o->peer_name == NULL || o->peer_name[0] == '\0' ||
	    strlen(o->peer_name) > WIRE_IDENTITY_MAX || o->host == NULL) {
		perr_set(err, PSYNC_E_OPEN, "connect: a peer name of 1 to %d "
		    "bytes and a host are required", WIRE_IDENTITY_MAX);
		goto done;
	}
	str_copy(c->peer, o->peer_name, sizeof(c->peer));
	snprintf(c->addr, sizeof(c->addr), "%s:%u", o->host, o->port);
	if (o->timeout_ms > 0)
		c->io_timeout_ms = o->timeout_ms;
	c->x509 = o->x509 != NULL;
	if (!c->x509) {
		if (o->key == NULL || o->identity == NULL ||
		    o->identity[0] == '\0' ||
		    strlen(o->identity) > WIRE_IDENTITY_MAX) {
			perr_set(err, PSYNC_E_OPEN, "peer %s: PSK mode needs a "
			    "key and an identity of 1 to %d bytes", c->peer,
			    WIRE_IDENTITY_MAX);
			goto done;
		}
		str_copy(c->identity, o->identity, sizeof(c->identity));
		memcpy(c->key, o->key, WIRE_KEY_LEN);
	}
	ctx = ctx_new(false, o->x509, err);
	if (ctx == NULL)
		goto done;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof(port), "%u", o->port);
	gai = getaddrinfo(o->host, port, &hints, &res);
	if (gai != 0) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: cannot resolve %s: %s",
		    c->peer, o->host, gai_strerror(gai));
		log_warnx("%s", err->msg);
		goto done;
	}
	for (ai = res; ai != NULL && c->fd == -1; ai = ai->ai_next) {
		c->fd = connect_one(ai, deadline, &cerr);
		if (c->fd != -1)
			sockaddr_text(ai->ai_addr, c->addr, sizeof(c->addr));
	}
	if (c->fd == -1) {
		if (cerr == ETIMEDOUT)
			perr_set(err, PSYNC_E_OPEN, "peer %s (%s): no connection "
			    "within %d ms", c->peer, c->addr, o->timeout_ms);
		else
			perr_set(err, PSYNC_E_OPEN, "peer %s (%s): cannot "
			    "connect: %s", c->peer, c->addr, strerror(cerr));
		log_warnx("%s", err->msg);
		goto done;
	}

	c->ssl = SSL_new(ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
	    SSL_set_app_data(c->ssl, c) != 1) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: cannot set up TLS: %s",
		    c->peer, ssl_reason(buf, sizeof(buf)));
		goto done;
	}
	if (c->x509 && o->peer_name != NULL &&
	    SSL_set1_host(c->ssl, o->peer_name) != 1) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: cannot require that name "
		    "in its certificate", c->peer);
		goto done;
	}
	SSL_set_connect_state(c->ssl);
	if (handshake(c, deadline, err) == -1)
		goto done;
	ok = true;
done:
	if (res != NULL)
		freeaddrinfo(res);
	SSL_CTX_free(ctx);
	if (!ok) {
		conn_free(c);
		c = NULL;
	}
	return c;
}

struct wire_server *
wire_server_new(const struct wire_server_opts *o, struct psync_err *err)
{
	struct wire_server *srv;

	if (o->x509 == NULL && o->psk_lookup == NULL) {
		perr_set(err, PSYNC_E_OPEN, "TLS server needs a PSK lookup or "
		    "X.509 files");
		return NULL;
	}
	srv = calloc(1, sizeof(*srv));
	if (srv == NULL) {
		perr_set(err, PSYNC_E_OPEN, "TLS server: out of memory");
		return NULL;
	}
	srv->lookup = o->psk_lookup;
	srv->lookup_ctx = o->lookup_ctx;
	srv->io_timeout_ms = o->io_timeout_ms > 0 ? o->io_timeout_ms :
	    WIRE_IO_TIMEOUT_MS;
	srv->ctx = ctx_new(true, o->x509, err);
	if (srv->ctx == NULL) {
		free(srv);
		return NULL;
	}
	return srv;
}

void
wire_server_free(struct wire_server *srv)
{
	if (srv == NULL)
		return;
	SSL_CTX_free(srv->ctx);
	free(srv);
}

int
wire_listen(const char *address, unsigned int port, unsigned int *bound_port,
    struct psync_err *err)
{
	struct addrinfo hints, *res = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char portbuf[16];
	int fd = -1, gai, one = 1, rc = -1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(portbuf, sizeof(portbuf), "%u", port);
	gai = getaddrinfo(address, portbuf, &hints, &res);
	if (gai != 0) {
		perr_set(err, PSYNC_E_OPEN, "listen on %s port %u: %s",
		    address != NULL ? address : "any", port, gai_strerror(gai));
		goto done;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    res->ai_protocol);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, 64) == -1 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sslen) == -1) {
		perr_set(err, PSYNC_E_OPEN, "listen on %s port %u: %s",
		    address != NULL ? address : "any", port, strerror(errno));
		goto done;
	}
	if (bound_port != NULL)
		*bound_port = ss.ss_family == AF_INET6 ?
		    ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
		    ntohs(((struct sockaddr_in *)&ss)->sin_port);
	rc = fd;
done:
	if (rc == -1 && fd != -1)
		close(fd);
	if (res != NULL)
		freeaddrinfo(res);
	return rc;
}

struct wire_conn *
wire_accept_fd(struct wire_server *srv, int fd, int timeout_ms,
    struct psync_err *err)
{
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	struct wire_conn *c;
	char buf[256];
	int flags, one = 1;
	bool ok = false;

	c = conn_new();
	if (c == NULL) {
		perr_set(err, PSYNC_E_OPEN, "accept: out of memory");
		close(fd);
		return NULL;
	}
	c->fd = fd;
	c->server = true;
	c->srv = srv;
	c->x509 = srv->lookup == NULL;
	c->io_timeout_ms = srv->io_timeout_ms;
	if (getpeername(fd, (struct sockaddr *)&ss, &sslen) == 0)
		sockaddr_text((struct sockaddr *)&ss, c->addr, sizeof(c->addr));
	else
		str_copy(c->addr, "unknown address", sizeof(c->addr));
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		perr_set(err, PSYNC_E_OPEN, "connection from %s: %s", c->addr,
		    strerror(errno));
		goto done;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	c->ssl = SSL_new(srv->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1 ||
	    SSL_set_app_data(c->ssl, c) != 1) {
		perr_set(err, PSYNC_E_OPEN, "connection from %s: cannot set up "
		    "TLS: %s", c->addr, ssl_reason(buf, sizeof(buf)));
		goto done;
	}
	SSL_set_accept_state(c->ssl);
	if (handshake(c, deadline_after(timeout_ms), err) == -1)
		goto done;
	ok = true;
done:
	if (!ok) {
		conn_free(c);
		c = NULL;
	}
	return c;
}

struct wire_conn *
wire_accept(struct wire_server *srv, int listen_fd, int timeout_ms,
    struct psync_err *err)
{
	int64_t deadline = deadline_after(timeout_ms);
	int fd, w;

	for (;;) {
		fd = accept(listen_fd, NULL, NULL);
		if (fd != -1) {
			/* wire_accept_fd makes it non-blocking. */
			(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
			break;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED) {
			perr_set(err, PSYNC_E_OPEN, "accept: %s", strerror(errno));
			return NULL;
		}
		w = wait_fd(listen_fd, POLLIN, deadline);
		if (w != 1) {
			perr_set(err, PSYNC_E_OPEN, "accept: %s", w == 0 ?
			    "no connection before the deadline" : strerror(errno));
			return NULL;
		}
	}
	return wire_accept_fd(srv, fd, deadline < 0 ? -1 :
	    (int)(deadline - clock_mono_ms() > 0 ? deadline - clock_mono_ms() : 0), err);
}

/* ------------------------------------------------------------------ I/O */

static void
conn_broken(struct wire_conn *c)
{
	c->broken = true;
	/* Whatever was buffered may hold secrets and is of no use now. */
	secure_wipe(c->rbuf, sizeof(c->rbuf));
	c->rlen = 0;
}

static int
write_all(struct wire_conn *c, const unsigned char *buf, size_t len,
    int64_t deadline, struct psync_err *err)
{
	char why[256];
	int r, e, w;

	while (len > 0) {
		ERR_clear_error();
		r = SSL_write(c->ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
		if (r > 0) {
			buf += r;
			len -= (size_t)r;
			continue;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			w = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN :
			    POLLOUT, deadline);
			if (w == 1)
				continue;
			perr_set(err, PSYNC_E_WRITE, "peer %s (%s): send %s",
			    c->peer, c->addr, w == 0 ? "timed out" :
			    strerror(errno));
			return -1;
		}
		perr_set(err, PSYNC_E_WRITE, "peer %s (%s): send failed: %s",
		    c->peer, c->addr, e == SSL_ERROR_SYSCALL &&
		    ERR_peek_last_error() == 0 ? strerror(errno) :
		    ssl_reason(why, sizeof(why)));
		return -1;
	}
	return 0;
}

/*
 * A TLS 1.3 server that refuses our certificate does so after our
 * handshake ended; if our first send fails, its alert may be waiting
 * unread. Read it so that the refusal is reported as such (8203).
 */
static void
read_refusal(struct wire_conn *c, struct psync_err *err)
{
	unsigned char buf[256];
	char why[256];
	int r;

	ERR_clear_error();
	r = SSL_read(c->ssl, buf, sizeof(buf));
	secure_wipe(buf, sizeof(buf));
	if (r > 0 || SSL_get_error(c->ssl, r) != SSL_ERROR_SSL ||
	    is_unexpected_eof(ERR_peek_last_error())) {
		ERR_clear_error();
		return;
	}
	perr_set(err, PSYNC_E_DECRYPT, "%d: secret key mismatch or packet "
	    "error: peer %s (%s): refused by the peer after the handshake: %s",
	    PSYNC_MSG_KEY_MISMATCH, c->peer, c->addr,
	    ssl_reason(why, sizeof(why)));
	log_warnx("%s", err->msg);
}

int
wire_send(struct wire_conn *c, const struct frame *f, struct psync_err *err)
{
	long n;
	int rc = -1;

	if (c->broken) {
		perr_set(err, PSYNC_E_WRITE, "peer %s (%s): connection is "
		    "already broken", c->peer, c->addr);
		return -1;
	}
	n = frame_encode(f, c->wbuf, sizeof(c->wbuf), err);
	if (n < 0)
		goto done;
	if (write_all(c, c->wbuf, (size_t)n,
	    deadline_after(c->io_timeout_ms), err) == -1) {
		if (c->nframes == 0)
			read_refusal(c, err);
		conn_broken(c);
		goto done;
	}
	rc = 0;
done:
	if (n > 0)
		secure_wipe(c->wbuf, (size_t)n);
	return rc;
}

/* Tell the peer why we give up on its frame, then consider it gone. */
static void
refuse_frame(struct wire_conn *c, const struct psync_err *why)
{
	struct psync_err ignored;
	struct frame f;
	long n;

	log_peer_warnx(c->peer, "peer %s (%s): undecodable frame, closing: %s",
	    log_str(c->peer), c->addr, log_str(why->msg));
	if (frame_set_error(&f, PSYNC_E_PROTOCOL, why->msg, &ignored) == 0) {
		n = frame_encode(&f, c->wbuf, sizeof(c->wbuf), &ignored);
		/* A short deadline: a peer that sends garbage gets no patience. */
		if (n > 0)
			(void)write_all(c, c->wbuf, (size_t)n,
			    deadline_after(1000), &ignored);
	}
	secure_wipe(c->wbuf, sizeof(c->wbuf));
	frame_wipe(&f);
	conn_broken(c);
}

enum wire_status
wire_recv(struct wire_conn *c, struct frame *f, int timeout_ms,
    struct psync_err *err)
{
	int64_t deadline = deadline_after(timeout_ms);
	char why[256];
	long n;
	int r, e, w;

	frame_wipe(f);
	if (c->broken) {
		perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): connection is "
		    "already broken", c->peer, c->addr);
		return WIRE_ERROR;
	}
	for (;;) {
		n = frame_decode(c->rbuf, c->rlen, f, err);
		if (n > 0) {
			memmove(c->rbuf, c->rbuf + n, c->rlen - (size_t)n);
			secure_wipe(c->rbuf + c->rlen - (size_t)n, (size_t)n);
			c->rlen -= (size_t)n;
			c->nframes++;
			return WIRE_FRAME;
		}
		if (n < 0) {
			refuse_frame(c, err);
			return WIRE_ERROR;
		}
		ERR_clear_error();
		errno = 0;
		r = SSL_read(c->ssl, c->rbuf + c->rlen,
		    (int)(sizeof(c->rbuf) - c->rlen));
		if (r > 0) {
			c->rlen += (size_t)r;
			continue;
		}
		e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			if (timeout_ms == 0)
				return WIRE_TIMEOUT;
			w = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN :
			    POLLOUT, deadline);
			if (w == 1)
				continue;
			if (w == 0)
				return WIRE_TIMEOUT;
			perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): receive "
			    "failed: %s", c->peer, c->addr, strerror(errno));
			conn_broken(c);
			return WIRE_ERROR;
		}
		if (e == SSL_ERROR_ZERO_RETURN && c->rlen == 0) {
			perr_set(err, PSYNC_OK, "peer %s (%s): closed the "
			    "connection", c->peer, c->addr);
			conn_broken(c);
			return WIRE_CLOSED;
		}
		if (e == SSL_ERROR_ZERO_RETURN)
			perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): closed "
			    "the connection in the middle of a frame (%zu "
			    "bytes)", c->peer, c->addr, c->rlen);
		else if ((e == SSL_ERROR_SYSCALL && ERR_peek_last_error() == 0) ||
		    is_unexpected_eof(ERR_peek_last_error()))
			perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): "
			    "connection lost: %s", c->peer, c->addr, errno != 0 ?
			    strerror(errno) : "closed without TLS close_notify");
		else if (e == SSL_ERROR_SSL && c->nframes == 0) {
			/*
			 * In TLS 1.3 a client's handshake ends before the
			 * server has checked the client's certificate: a
			 * refusal arrives as an alert on the first read.
			 */
			perr_set(err, PSYNC_E_DECRYPT, "%d: secret key mismatch "
			    "or packet error: peer %s (%s): refused by the peer "
			    "after the handshake: %s", PSYNC_MSG_KEY_MISMATCH,
			    c->peer, c->addr, ssl_reason(why, sizeof(why)));
			log_warnx("%s", err->msg);
		} else
			perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): receive "
			    "failed: %s", c->peer, c->addr,
			    ssl_reason(why, sizeof(why)));
		conn_broken(c);
		return WIRE_ERROR;
	}
}

bool
wire_pending(const struct wire_conn *c)
{
	struct psync_err err;
	struct frame f;
	long n;

	if (c->broken)
		return false;
	if (SSL_pending(c->ssl) > 0)
		return true;
	if (c->rlen == 0)
		return false;
	n = frame_decode(c->rbuf, c->rlen, &f, &err);
	frame_wipe(&f);
	return n != 0;
}

int
wire_fd(const struct wire_conn *c)
{
	return c->fd;
}

static int
send_error(struct wire_conn *c, int code, const char *reason)
{
	struct psync_err ignored;
	struct frame f;
	int rc = -1;

	if (frame_set_error(&f, code, reason, &ignored) == 0)
		rc = wire_send(c, &f, &ignored);
	frame_wipe(&f);
	return rc;
}

/* Receive the peer's HELLO; an ERROR in its place ends the exchange. */
static int
hello_recv(struct wire_conn *c, struct frame *f, int64_t deadline,
    struct psync_err *err)
{
	int64_t left = deadline < 0 ? -1 : deadline - clock_mono_ms();
	enum wire_status st;

	st = wire_recv(c, f, left < 0 && deadline >= 0 ? 0 :
	    (left > INT_MAX ? INT_MAX : (int)left), err);
	switch (st) {
	case WIRE_FRAME:
		break;
	case WIRE_TIMEOUT:
		perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): no HELLO "
		    "before the deadline", c->peer, c->addr);
		return -1;
	case WIRE_CLOSED:
		perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): closed the "
		    "connection instead of sending HELLO", c->peer, c->addr);
		return -1;
	case WIRE_ERROR:
		return -1;
	}
	if (f->type == FRAME_ERROR) {
		perr_set(err, f->u.error.code, "peer %s (%s) refused us: %s "
		    "(code %u): %s", c->peer, c->addr,
		    code_reason(f->u.error.code), f->u.error.code,
		    f->u.error.reason);
		conn_broken(c);
		return -1;
	}
	if (f->type != FRAME_HELLO) {
		perr_set(err, PSYNC_E_PROTOCOL, "peer %s (%s): sent %s before "
		    "HELLO", c->peer, c->addr, frame_type_name((int)f->type));
		(void)send_error(c, PSYNC_E_PROTOCOL, "HELLO expected first");
		conn_broken(c);
		return -1;
	}
	/* The node name must be the one TLS authenticated. */
	if (c->peer[0] != '\0' && strcmp(f->u.hello.node, c->peer) != 0) {
		perr_set(err, PSYNC_E_REFUSED, "peer %s (%s): HELLO names node "
		    "%s, not the authenticated peer", c->peer, c->addr,
		    f->u.hello.node);
		(void)send_error(c, PSYNC_E_REFUSED, "HELLO node name does not "
		    "match the TLS identity");
		conn_broken(c);
		return -1;
	}
	return 0;
}

int
wire_hello(struct wire_conn *c, const struct frame_hello *ours,
    uint16_t min_version, struct frame_hello *theirs, int timeout_ms,
    struct psync_err *err)
{
	int64_t deadline = deadline_after(timeout_ms);
	struct frame f, mine;
	char reason[FRAME_REASON_MAX + 1];
	uint16_t v;
	int rc = -1;

	memset(&mine, 0, sizeof(mine));
	mine.type = FRAME_HELLO;
	mine.u.hello = *ours;
	if (!c->server) {
		if (wire_send(c, &mine, err) == -1)
			goto done;
		if (hello_recv(c, &f, deadline, err) == -1)
			goto done;
		v = f.u.hello.version;
		if (v < min_version || v > ours->version) {
			snprintf(reason, sizeof(reason), "version %u answered, "
			    "we speak %u..%u", v, min_version, ours->version);
			perr_set(err, PSYNC_E_VERSION_MISMATCH, "peer %s (%s): "
			    "%s", c->peer, c->addr, reason);
			(void)send_error(c, PSYNC_E_VERSION_MISMATCH, reason);
			conn_broken(c);
			goto done;
		}
	} else {
		if (hello_recv(c, &f, deadline, err) == -1)
			goto done;
		/* The peer speaks up to its version; we answer the highest
		   both speak, or refuse. */
		v = f.u.hello.version < ours->version ? f.u.hello.version :
		    ours->version;
		if (v < min_version) {
			snprintf(reason, sizeof(reason), "protocol version %u "
			    "not supported, this node speaks %u..%u",
			    f.u.hello.version, min_version, ours->version);
			perr_set(err, PSYNC_E_VERSION_MISMATCH, "peer %s (%s): "
			    "%s", c->peer, c->addr, reason);
			(void)send_error(c, PSYNC_E_VERSION_MISMATCH, reason);
			conn_broken(c);
			goto done;
		}
		mine.u.hello.version = v;
		if (wire_send(c, &mine, err) == -1)
			goto done;
	}
	c->version = v;
	if (theirs != NULL) {
		*theirs = f.u.hello;
		theirs->version = v;
	}
	rc = 0;
done:
	frame_wipe(&f);
	return rc;
}

void
wire_set_io_timeout(struct wire_conn *c, int timeout_ms)
{
	c->io_timeout_ms = timeout_ms;
}

const char *
wire_peer_name(const struct wire_conn *c)
{
	return c->peer;
}

const char *
wire_peer_address(const struct wire_conn *c)
{
	return c->addr;
}

const char *
wire_kex_group(const struct wire_conn *c)
{
	EVP_PKEY *k = NULL;
	int nid;

	/* No peer key share means no (EC)DHE, whatever the group says. */
	if (SSL_get_peer_tmp_key(c->ssl, &k) != 1 || k == NULL)
		return NULL;
	EVP_PKEY_free(k);
	nid = SSL_get_negotiated_group(c->ssl);
	if (nid == NID_undef)
		return NULL;
	return SSL_group_to_name(c->ssl, nid);
}

const char *
wire_tls_version(const struct wire_conn *c)
{
	return SSL_get_version(c->ssl);
}

const char *
wire_cipher(const struct wire_conn *c)
{
	return SSL_get_cipher_name(c->ssl);
}

bool
wire_cleanses_plaintext(const struct wire_conn *c)
{
	return (SSL_get_options(c->ssl) & SSL_OP_CLEANSE_PLAINTEXT) != 0;
}

uint16_t
wire_version(const struct wire_conn *c)
{
	return c->version;
}

void
wire_close(struct wire_conn *c)
{
	if (c == NULL)
		return;
	/* One close_notify, without waiting for the peer's. */
	if (!c->broken && c->ssl != NULL) {
		ERR_clear_error();
		(void)SSL_shutdown(c->ssl);
	}
	ERR_clear_error();
	conn_free(c);
}
