/*
 * Unit tests for lib/proto/wire.c over loopback: a server runs in a thread of
 * the test, the client in the main thread. Certificates for the X.509 mode
 * are made here with the OpenSSL API into a temporary directory.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "codes.h"
#include "frame.h"
#include "log.h"
#include "util.h"
#include "wire.h"

#define TIMEOUT_MS	5000
#define N_CHANGES	1000
#define BATCH		7	/* the server answers in reversed batches */

static const unsigned char key_a[WIRE_KEY_LEN] = "0123456789abcdef0123456789abcde";
static const unsigned char key_b[WIRE_KEY_LEN] = "fedcba9876543210fedcba987654321";

/* ------------------------------------------------------------ log capture */

#define LOG_LINES	64

static pthread_mutex_t	log_lock = PTHREAD_MUTEX_INITIALIZER;
static char		log_lines[LOG_LINES][1024];
static int		log_n;

static void
log_capture(void *ctx, int priority, const char *message)
{
	(void)ctx;
	(void)priority;
	pthread_mutex_lock(&log_lock);
	if (log_n < LOG_LINES)
		str_copy(log_lines[log_n++], message, sizeof(log_lines[0]));
	pthread_mutex_unlock(&log_lock);
}

static void
log_reset(void)
{
	pthread_mutex_lock(&log_lock);
	log_n = 0;
	pthread_mutex_unlock(&log_lock);
}

/* Is there a line holding all of a, b and c? */
static bool
log_has(const char *a, const char *b, const char *c)
{
	bool found = false;
	int i;

	pthread_mutex_lock(&log_lock);
	for (i = 0; i < log_n && !found; i++)
		found = strstr(log_lines[i], a) != NULL &&
		    strstr(log_lines[i], b) != NULL &&
		    (c == NULL || strstr(log_lines[i], c) != NULL);
	pthread_mutex_unlock(&log_lock);
	return found;
}

static void
log_dump(void)
{
	int i;

	pthread_mutex_lock(&log_lock);
	for (i = 0; i < log_n; i++)
		fprintf(stderr, "# log: %s\n", log_lines[i]);
	pthread_mutex_unlock(&log_lock);
}

/* ------------------------------------------------------------ the server */

static int
lookup(void *ctx, const char *identity, unsigned char key[WIRE_KEY_LEN])
{
	(void)ctx;
	if (strcmp(identity, "client-node") != 0)
		return -1;
	memcpy(key, key_a, WIRE_KEY_LEN);
	return 0;
}

enum srv_mode {
	SRV_HANDSHAKE,		/* accept, then close */
	SRV_SERVE,		/* accept, HELLO, answer CHANGEs until closed */
};

struct srv {
	struct wire_server	*ws;
	int			 lfd;
	unsigned int		 port;
	enum srv_mode		 mode;
	uint16_t		 min_version;
	uint16_t		 version;
	pthread_t		 thread;
	/* Results, read after join. */
	bool			 accepted;
	int			 hello_rc;
	int			 hello_code;
	int			 answered;
	char			 group[32];
	bool			 cleanses;
	char			 peer[FRAME_NAME_MAX + 1];
	struct psync_err	 err;
};

/* Answer a batch of CHANGEs in reverse order, so that ids, not positions,
   tie RESULTs to CHANGEs. The user name decides the code. */
static int
srv_answer(struct srv *s, struct wire_conn *c, struct frame *batch, int n)
{
	struct frame r;
	int i, code;

	for (i = n - 1; i >= 0; i--) {
		code = strcmp(batch[i].u.change.user, "ghost") == 0 ?
		    PSYNC_E_NO_USER : PSYNC_OK;
		if (frame_set_result(&r, batch[i].u.change.id, code,
		    code == PSYNC_OK ? "" : "no user entry", &s->err) == -1 ||
		    wire_send(c, &r, &s->err) == -1)
			return -1;
		frame_wipe(&batch[i]);
		s->answered++;
	}
	return 0;
}

static void *
srv_main(void *arg)
{
	struct srv *s = arg;
	struct wire_conn *c;
	struct frame_hello ours, theirs;
	struct frame batch[BATCH], f;
	enum wire_status st;
	int n = 0;

	c = wire_accept(s->ws, s->lfd, TIMEOUT_MS, &s->err);
	if (c == NULL)
		return NULL;
	s->accepted = true;
	str_copy(s->peer, wire_peer_name(c), sizeof(s->peer));
	if (wire_kex_group(c) != NULL)
		str_copy(s->group, wire_kex_group(c), sizeof(s->group));
	s->cleanses = wire_cleanses_plaintext(c);
	if (s->mode == SRV_HANDSHAKE)
		goto done;
	memset(&ours, 0, sizeof(ours));
	str_copy(ours.node, "server-node", sizeof(ours.node));
	ours.version = s->version;
	ours.caps = FRAME_CAP_CRYPT_HASH;
	s->hello_rc = wire_hello(c, &ours, s->min_version, &theirs, TIMEOUT_MS,
	    &s->err);
	s->hello_code = s->err.code;
	if (s->hello_rc == -1)
		goto done;
	for (;;) {
		st = wire_recv(c, &f, n > 0 ? 0 : TIMEOUT_MS, &s->err);
		if (st == WIRE_TIMEOUT && n > 0) {
			/* Nothing more queued: answer what we hold. */
			if (srv_answer(s, c, batch, n) == -1)
				break;
			n = 0;
			continue;
		}
		if (st != WIRE_FRAME)
			break;
		if (f.type != FRAME_CHANGE) {
			frame_wipe(&f);
			break;
		}
		batch[n++] = f;
		frame_wipe(&f);
		if (n == BATCH) {
			if (srv_answer(s, c, batch, n) == -1)
				break;
			n = 0;
		}
	}
done:
	while (n > 0)
		frame_wipe(&batch[--n]);
	wire_close(c);
	return NULL;
}

static void
srv_start(struct srv *s, enum srv_mode mode, const struct wire_x509 *x509)
{
	struct wire_server_opts o;
	struct psync_err err;

	memset(s, 0, sizeof(*s));
	memset(&o, 0, sizeof(o));
	if (x509 != NULL)
		o.x509 = x509;
	else
		o.psk_lookup = lookup;
	o.io_timeout_ms = TIMEOUT_MS;
	s->ws = wire_server_new(&o, &err);
	if (s->ws == NULL)
		fail_msg("wire_server_new: %s", err.msg);
	s->lfd = wire_listen("127.0.0.1", 0, &s->port, &err);
	if (s->lfd < 0)
		fail_msg("wire_listen: %s", err.msg);
	assert_true(s->port > 0);
	s->mode = mode;
	s->min_version = FRAME_VERSION;
	s->version = FRAME_VERSION;
}

static void
srv_run(struct srv *s)
{
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

static void
srv_stop(struct srv *s)
{
	assert_int_equal(pthread_join(s->thread, NULL), 0);
	close(s->lfd);
	wire_server_free(s->ws);
}

static void
client_opts(struct wire_client_opts *o, const struct srv *s,
    const char *identity, const unsigned char *key)
{
	memset(o, 0, sizeof(*o));
	o->peer_name = "server-node";
	o->host = "127.0.0.1";
	o->port = s->port;
	o->timeout_ms = TIMEOUT_MS;
	o->identity = identity;
	o->key = key;
}

static int
client_hello(struct wire_conn *c, const char *node, uint16_t version,
    struct frame_hello *theirs, struct psync_err *err)
{
	struct frame_hello ours;

	memset(&ours, 0, sizeof(ours));
	str_copy(ours.node, node, sizeof(ours.node));
	ours.version = version;
	ours.caps = FRAME_CAP_CRYPT_HASH | FRAME_CAP_KEY_ROTATION;
	return wire_hello(c, &ours, 1, theirs, TIMEOUT_MS, err);
}

static int
setup(void **state)
{
	(void)state;
	log_set_callback(log_capture, NULL);
	log_set_level(LOG_DEBUG);
	log_reset();
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	log_set_callback(NULL, NULL);
	return 0;
}

/* ------------------------------------------------------------------ PSK */

static void
test_psk_handshake_uses_ecdhe_and_tls13_then_hello_exchange(void **state)
{
	struct wire_client_opts o;
	struct wire_conn *c;
	struct frame_hello theirs;
	struct psync_err err;
	struct srv s;

	(void)state;
	srv_start(&s, SRV_SERVE, NULL);
	srv_run(&s);
	client_opts(&o, &s, "client-node", key_a);
	c = wire_connect(&o, &err);
	if (c == NULL) {
		log_dump();
		fail_msg("connect: %s", err.msg);
	}
	assert_string_equal(wire_tls_version(c), "TLSv1.3");
	assert_string_equal(wire_cipher(c), "TLS_AES_256_GCM_SHA384");
	/* Record buffers that held a password are wiped, on both sides. */
	assert_true(wire_cleanses_plaintext(c));
	/* psk_dhe_ke: an ephemeral key share was exchanged. */
	assert_non_null(wire_kex_group(c));
	assert_string_equal(wire_kex_group(c), "x25519");
	if (client_hello(c, "client-node", FRAME_VERSION, &theirs, &err) != 0)
		fail_msg("hello: %s", err.msg);
	assert_string_equal(theirs.node, "server-node");
	assert_int_equal(theirs.version, FRAME_VERSION);
	assert_int_equal(theirs.caps, FRAME_CAP_CRYPT_HASH);
	assert_int_equal(wire_version(c), FRAME_VERSION);
	wire_close(c);
	srv_stop(&s);
	assert_true(s.accepted);
	assert_int_equal(s.hello_rc, 0);
	assert_string_equal(s.peer, "client-node");
	assert_string_equal(s.group, "x25519");
	assert_true(s.cleanses);
}

static void
test_thousand_pipelined_changes_are_all_acknowledged_by_id(void **state)
{
	static unsigned char acked[N_CHANGES];
	struct wire_client_opts o;
	struct wire_conn *c;
	struct frame f;
	struct psync_err err;
	struct srv s;
	uint8_t id[FRAME_ID_LEN];
	int i, got = 0, out_of_order = 0, last = -1;

	(void)state;
	memset(acked, 0, sizeof(acked));
	srv_start(&s, SRV_SERVE, NULL);
	srv_run(&s);
	client_opts(&o, &s, "client-node", key_a);
	c = wire_connect(&o, &err);
	if (c == NULL)
		fail_msg("connect: %s", err.msg);
	if (client_hello(c, "client-node", FRAME_VERSION, NULL, &err) != 0)
		fail_msg("hello: %s", err.msg);
	/* Every CHANGE goes out before the first RESULT is read. */
	for (i = 0; i < N_CHANGES; i++) {
		char pw[32];

		memset(id, 0, sizeof(id));
		id[14] = (uint8_t)(i >> 8);
		id[15] = (uint8_t)i;
		snprintf(pw, sizeof(pw), "pw-%d", i);
		assert_int_equal(frame_set_change(&f, id, "client-node",
		    1700000000000ULL + (uint64_t)i, i % 10 == 3 ? "ghost" : "alice",
		    FRAME_SECRET_CLEARTEXT, pw, strlen(pw), &err), 0);
		if (wire_send(c, &f, &err) != 0)
			fail_msg("send %d: %s", i, err.msg);
		secure_wipe(pw, sizeof(pw));
	}
	frame_wipe(&f);
	/* One thread: poll only when nothing is buffered already. */
	while (got < N_CHANGES) {
		struct pollfd pfd = { .fd = wire_fd(c), .events = POLLIN };
		enum wire_status st;

		if (!wire_pending(c))
			assert_int_equal(poll(&pfd, 1, TIMEOUT_MS), 1);
		st = wire_recv(c, &f, 0, &err);
		if (st == WIRE_TIMEOUT)
			continue;
		if (st != WIRE_FRAME)
			fail_msg("recv after %d results: %s", got, err.msg);
		assert_int_equal(f.type, FRAME_RESULT);
		i = f.u.result.id[14] << 8 | f.u.result.id[15];
		assert_true(i < N_CHANGES);
		if (acked[i])
			fail_msg("change %d acknowledged twice", i);
		acked[i] = 1;
		assert_int_equal(f.u.result.code,
		    i % 10 == 3 ? PSYNC_E_NO_USER : PSYNC_OK);
		if (i < last)
			out_of_order++;
		last = i;
		got++;
	}
	for (i = 0; i < N_CHANGES; i++)
		assert_int_equal(acked[i], 1);
	/* The server really answered out of order, and we coped. */
	assert_true(out_of_order > 0);
	wire_close(c);
	srv_stop(&s);
	assert_int_equal(s.answered, N_CHANGES);
}

static void
test_wrong_psk_fails_on_both_sides_with_8203(void **state)
{
	struct wire_client_opts o;
	struct wire_conn *c;
	struct psync_err err;
	struct srv s;

	(void)state;
	srv_start(&s, SRV_HANDSHAKE, NULL);
	srv_run(&s);
	client_opts(&o, &s, "client-node", key_b);
	c = wire_connect(&o, &err);
	assert_null(c);
	srv_stop(&s);
	assert_false(s.accepted);
	if (!log_has("8203: secret key mismatch or packet error",
	    "peer client-node (127.0.0.1:", NULL) ||
	    !log_has("8203: secret key mismatch or packet error",
	    "peer server-node (127.0.0.1:", NULL)) {
		log_dump();
		fail_msg("8203 not logged on both sides");
	}
	assert_int_equal(err.code, PSYNC_E_DECRYPT);
	assert_non_null(strstr(s.err.msg, "8203"));
}

static void
test_unknown_identity_is_refused_by_the_server(void **state)
{
	struct wire_client_opts o;
	struct psync_err err;
	struct srv s;

	(void)state;
	srv_start(&s, SRV_HANDSHAKE, NULL);
	srv_run(&s);
	client_opts(&o, &s, "stranger", key_a);
	assert_null(wire_connect(&o, &err));
	srv_stop(&s);
	assert_false(s.accepted);
	if (strstr(s.err.msg, "peer stranger (127.0.0.1:") == NULL ||
	    strstr(s.err.msg, "unknown PSK identity") == NULL)
		fail_msg("server said: %s", s.err.msg);
	assert_true(log_has("8203", "peer server-node", NULL));
}

static void
test_tls12_client_is_refused(void **state)
{
	struct sockaddr_in sin;
	SSL_CTX *ctx;
	SSL *ssl;
	struct srv s;
	int fd;

	(void)state;
	srv_start(&s, SRV_HANDSHAKE, NULL);
	srv_run(&s);
	ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION), 1);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)s.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	assert_int_equal(SSL_set_fd(ssl, fd), 1);
	assert_true(SSL_connect(ssl) <= 0);
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	srv_stop(&s);
	assert_false(s.accepted);
	if (strstr(s.err.msg, "not TLS 1.3") == NULL)
		fail_msg("server said: %s", s.err.msg);
	assert_int_equal(s.err.code, PSYNC_E_VERSION_MISMATCH);
	assert_true(log_has("not TLS 1.3", "(127.0.0.1:", NULL));
}

static void
test_unsupported_hello_version_gets_error_23(void **state)
{
	struct wire_client_opts o;
	struct wire_conn *c;
	struct psync_err err;
	struct srv s;

	(void)state;
	/* A server that no longer speaks version 1. */
	srv_start(&s, SRV_SERVE, NULL);
	s.min_version = 2;
	s.version = 3;
	srv_run(&s);
	client_opts(&o, &s, "client-node", key_a);
	c = wire_connect(&o, &err);
	if (c == NULL)
		fail_msg("connect: %s", err.msg);
	assert_int_equal(client_hello(c, "client-node", 1, NULL, &err), -1);
	assert_int_equal(err.code, PSYNC_E_VERSION_MISMATCH);
	if (strstr(err.msg, "refused us") == NULL ||
	    strstr(err.msg, "protocol version 1 not supported") == NULL)
		fail_msg("client said: %s", err.msg);
	wire_close(c);
	srv_stop(&s);
	assert_int_equal(s.hello_rc, -1);
	assert_int_equal(s.hello_code, PSYNC_E_VERSION_MISMATCH);
}

static void
test_newer_client_version_is_answered_with_the_common_one(void **state)
{
	struct wire_client_opts o;
	struct wire_conn *c;
	struct frame_hello theirs;
	struct psync_err err;
	struct srv s;

	(void)state;
	srv_start(&s, SRV_SERVE, NULL);
	srv_run(&s);
	client_opts(&o, &s, "client-node", key_a);
	c = wire_connect(&o, &err);
	if (c == NULL)
		fail_msg("connect: %s", err.msg);
	if (client_hello(c, "client-node", 5, &theirs, &err) != 0)
		fail_msg("hello: %s", err.msg);
	assert_int_equal(theirs.version, FRAME_VERSION);
	wire_close(c);
	srv_stop(&s);
	assert_int_equal(s.hello_rc, 0);
}

static void
test_hello_node_must_match_the_psk_identity(void **state)
{
	struct wire_client_opts o;
	struct wire_conn *c;
	struct psync_err err;
	struct srv s;

	(void)state;
	srv_start(&s, SRV_SERVE, NULL);
	srv_run(&s);
	client_opts(&o, &s, "client-node", key_a);
	c = wire_connect(&o, &err);
	if (c == NULL)
		fail_msg("connect: %s", err.msg);
	assert_int_equal(client_hello(c, "impostor", FRAME_VERSION, NULL, &err),
	    -1);
	assert_int_equal(err.code, PSYNC_E_REFUSED);
	wire_close(c);
	srv_stop(&s);
	assert_int_equal(s.hello_rc, -1);
	if (strstr(s.err.msg, "HELLO names node impostor") == NULL)
		fail_msg("server said: %s", s.err.msg);
}

/* A bare OpenSSL client with the right PSK, to send what wire never would. */
static int
raw_psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id,
    size_t *idlen, SSL_SESSION **sess)
{
	static const unsigned char suite[2] = { 0x13, 0x02 };
	static const char identity[] = "client-node";
	SSL_SESSION *s;

	(void)md;
	*sess = NULL;
	s = SSL_SESSION_new();
	if (s == NULL)
		return 0;
	if (SSL_SESSION_set1_master_key(s, key_a, WIRE_KEY_LEN) != 1 ||
	    SSL_SESSION_set_cipher(s, SSL_CIPHER_find(ssl, suite)) != 1 ||
	    SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1) {
		SSL_SESSION_free(s);
		return 0;
	}
	*id = (const unsigned char *)identity;
	*idlen = strlen(identity);
	*sess = s;
	return 1;
}

static void
test_undecodable_frame_is_answered_with_error_then_closed(void **state)
{
	/* A well-framed message of unknown type 9. */
	static const unsigned char garbage[] = { 0, 0, 0, 4, 9, 1, 0, 0 };
	unsigned char buf[4096];
	struct sockaddr_in sin;
	struct psync_err err;
	struct frame f;
	size_t len = 0;
	SSL_CTX *ctx;
	SSL *ssl;
	struct srv s;
	int fd, r;

	(void)state;
	srv_start(&s, SRV_SERVE, NULL);
	srv_run(&s);
	ctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(ctx);
	assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION), 1);
	assert_int_equal(SSL_CTX_set_ciphersuites(ctx, "TLS_AES_256_GCM_SHA384"), 1);
	SSL_CTX_set_psk_use_session_callback(ctx, raw_psk_use);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)s.port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	assert_int_equal(SSL_set_fd(ssl, fd), 1);
	assert_int_equal(SSL_connect(ssl), 1);
	assert_int_equal(SSL_write(ssl, garbage, sizeof(garbage)),
	    (int)sizeof(garbage));
	/* Read until the server closes: an ERROR frame, then nothing. */
	while (len < sizeof(buf) &&
	    (r = SSL_read(ssl, buf + len, (int)(sizeof(buf) - len))) > 0)
		len += (size_t)r;
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	close(fd);
	srv_stop(&s);
	assert_int_equal(frame_decode(buf, len, &f, &err), (long)len);
	assert_int_equal(f.type, FRAME_ERROR);
	assert_int_equal(f.u.error.code, PSYNC_E_PROTOCOL);
	if (strstr(f.u.error.reason, "unknown message type 9") == NULL)
		fail_msg("ERROR reason: %s", f.u.error.reason);
	assert_int_equal(s.hello_rc, -1);
	assert_true(log_has("peer client-node (127.0.0.1:",
	    "undecodable frame, closing", "unknown message type 9"));
}

static void
test_connect_refused_and_timeout_have_their_own_messages(void **state)
{
	struct wire_client_opts o;
	struct psync_err err;
	struct srv s;
	unsigned int port;
	int lfd;

	(void)state;
	/* A port that was free a moment ago: nothing listens there. */
	lfd = wire_listen("127.0.0.1", 0, &port, &err);
	assert_true(lfd >= 0);
	close(lfd);
	memset(&s, 0, sizeof(s));
	s.port = port;
	client_opts(&o, &s, "client-node", key_a);
	assert_null(wire_connect(&o, &err));
	if (strstr(err.msg, "cannot connect: Connection refused") == NULL)
		fail_msg("client said: %s", err.msg);

	/* A listener that never accepts nor answers: the handshake times out. */
	lfd = wire_listen("127.0.0.1", 0, &port, &err);
	assert_true(lfd >= 0);
	s.port = port;
	client_opts(&o, &s, "client-node", key_a);
	o.timeout_ms = 300;
	assert_null(wire_connect(&o, &err));
	close(lfd);
	if (strstr(err.msg, "TLS handshake timed out") == NULL)
		fail_msg("client said: %s", err.msg);
}

/* A peer that dies in the middle of the handshake: it reads the client's
 * first flight and closes the connection without a word. */
static void *
eof_server(void *arg)
{
	struct pollfd pfd;
	int *lfd = arg, fd = -1;
	char buf[4096];

	/* The listener is non-blocking: wait for the client first. */
	pfd.fd = *lfd;
	pfd.events = POLLIN;
	if (poll(&pfd, 1, TIMEOUT_MS) == 1)
		fd = accept(*lfd, NULL, NULL);
	if (fd >= 0) {
		(void)read(fd, buf, sizeof(buf));
		close(fd);
	}
	return NULL;
}

static void
test_peer_closing_during_the_handshake_is_not_reported_as_a_key_mismatch(void **state)
{
	struct wire_client_opts o;
	struct psync_err err;
	struct srv s;
	pthread_t t;
	unsigned int port;
	int lfd;

	(void)state;
	lfd = wire_listen("127.0.0.1", 0, &port, &err);
	assert_true(lfd >= 0);
	assert_int_equal(pthread_create(&t, NULL, eof_server, &lfd), 0);
	memset(&s, 0, sizeof(s));
	s.port = port;
	client_opts(&o, &s, "client-node", key_a);
	assert_null(wire_connect(&o, &err));
	assert_int_equal(pthread_join(t, NULL), 0);
	close(lfd);
	if (err.code == PSYNC_E_DECRYPT || strstr(err.msg, "8203:") != NULL ||
	    strstr(err.msg, "closed the connection") == NULL) {
		log_dump();
		fail_msg("client said (code %d): %s", err.code, err.msg);
	}
	assert_false(log_has("8203:", "key mismatch", NULL));
}

/* ------------------------------------------------------------ key files */

struct tmpdir {
	char	path[64];
};

static void
tmpdir_make(struct tmpdir *t)
{
	str_copy(t->path, "/tmp/psync-wire-XXXXXX", sizeof(t->path));
	assert_non_null(mkdtemp(t->path));
}

static void
tmpdir_remove(struct tmpdir *t)
{
	char p[512];
	struct dirent *de;
	DIR *d = opendir(t->path);

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", t->path, de->d_name);
		unlink(p);
	}
	closedir(d);
	assert_int_equal(rmdir(t->path), 0);
}

static void
put_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
test_key_file_formats_and_refusals(void **state)
{
	static const char hex[] =
	    "000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191A1B1C1D1E1F";
	unsigned char want[WIRE_KEY_LEN], key[WIRE_KEY_LEN], raw[WIRE_KEY_LEN];
	struct psync_err err;
	struct tmpdir t;
	char path[128];
	size_t i;

	(void)state;
	for (i = 0; i < WIRE_KEY_LEN; i++)
		want[i] = (unsigned char)i;
	tmpdir_make(&t);
	snprintf(path, sizeof(path), "%s/k", t.path);

	put_file(path, hex, 64, 0600);
	assert_int_equal(keyfile_read(path, key, &err), 0);
	assert_memory_equal(key, want, WIRE_KEY_LEN);

	put_file(path, "000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f\n", 65, 0400);
	memset(key, 0, sizeof(key));
	assert_int_equal(keyfile_read(path, key, &err), 0);
	assert_memory_equal(key, want, WIRE_KEY_LEN);

	memset(raw, 0, sizeof(raw));	/* raw bytes may be anything, NUL too */
	raw[31] = 0xff;
	put_file(path, raw, sizeof(raw), 0600);
	assert_int_equal(keyfile_read(path, key, &err), 0);
	assert_memory_equal(key, raw, WIRE_KEY_LEN);

	put_file(path, hex, 40, 0600);
	assert_int_equal(keyfile_read(path, key, &err), -1);
	assert_non_null(strstr(err.msg, "holds 40 bytes"));

	put_file(path, "000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1e1f\n\n", 66, 0600);
	assert_int_equal(keyfile_read(path, key, &err), -1);
	assert_non_null(strstr(err.msg, "holds more than 65 bytes"));

	put_file(path, "000102030405060708090a0b0c0d0e0f"
	    "101112131415161718191a1b1c1d1eXY", 64, 0600);
	assert_int_equal(keyfile_read(path, key, &err), -1);
	assert_non_null(strstr(err.msg, "character 63 is not a hex digit"));

	put_file(path, hex, 64, 0640);
	assert_int_equal(keyfile_read(path, key, &err), -1);
	assert_non_null(strstr(err.msg, "readable by group or others"));
	assert_non_null(strstr(err.msg, path));

	snprintf(path, sizeof(path), "%s/missing", t.path);
	assert_int_equal(keyfile_read(path, key, &err), -1);
	assert_int_equal(err.code, PSYNC_E_FILE_NOT_FOUND);
	tmpdir_remove(&t);
}

static void
test_key_file_is_written_0600_atomically_and_read_back(void **state)
{
	unsigned char key[WIRE_KEY_LEN], back[WIRE_KEY_LEN];
	struct psync_err err;
	struct tmpdir t;
	struct stat st;
	char path[128];
	mode_t old = umask(0);

	(void)state;
	tmpdir_make(&t);
	snprintf(path, sizeof(path), "%s/peer.key", t.path);
	assert_int_equal(keyfile_generate(key, &err), 0);
	assert_int_equal(keyfile_write(path, key, false, &err), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(st.st_size, 65);
	assert_int_equal(keyfile_read(path, back, &err), 0);
	assert_memory_equal(back, key, WIRE_KEY_LEN);
	/* Without replace, an existing key is never overwritten. */
	assert_int_equal(keyfile_write(path, key_a, false, &err), -1);
	assert_non_null(strstr(err.msg, "already exists"));
	assert_int_equal(keyfile_read(path, back, &err), 0);
	assert_memory_equal(back, key, WIRE_KEY_LEN);
	/* With replace (a rotation), it is swapped in whole. */
	assert_int_equal(keyfile_write(path, key_a, true, &err), 0);
	assert_int_equal(keyfile_read(path, back, &err), 0);
	assert_memory_equal(back, key_a, WIRE_KEY_LEN);
	tmpdir_remove(&t);	/* fails if a temporary file was left behind */
}

/* ----------------------------------------------------------------- X.509 */

struct pki {
	struct tmpdir	dir;
	char		ca[128], other_ca[128];
	char		server_cert[128], server_key[128];
	char		client_cert[128], client_key[128];
	char		expired_cert[128], expired_key[128];
	char		foreign_cert[128], foreign_key[128];
};

static long serial = 1;

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_nconf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for cn, valid from..until days from now; self-signed when
   issuer is NULL (then it is a CA). */
static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
    long from_days, long until_days)
{
	X509 *x = X509_new();
	X509_NAME *name;
	char san[128];

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), until_days * 86400));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0), 1);
	if (issuer == NULL) {
		assert_int_equal(X509_set_issuer_name(x, name), 1);
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
		add_ext(x, x, NID_subject_key_identifier, "hash");
	} else {
		assert_int_equal(X509_set_issuer_name(x,
		    X509_get_subject_name(issuer)), 1);
		add_ext(x, issuer, NID_basic_constraints, "CA:FALSE");
		snprintf(san, sizeof(san), "DNS:%s", cn);
		add_ext(x, issuer, NID_subject_alt_name, san);
	}
	assert_true(X509_sign(x, issuer_key != NULL ? issuer_key : key,
	    EVP_sha256()) > 0);
	return x;
}

static void
write_pem(const char *path, X509 *cert, EVP_PKEY *key)
{
	FILE *fp;
	int fd;

	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	assert_non_null(fp);
	if (cert != NULL)
		assert_int_equal(PEM_write_X509(fp, cert), 1);
	if (key != NULL)
		assert_int_equal(PEM_write_PrivateKey(fp, key, NULL, NULL, 0,
		    NULL, NULL), 1);
	assert_int_equal(fclose(fp), 0);
}

static void
issue(struct pki *p, char *cert_path, char *key_path, const char *base,
    const char *cn, X509 *ca, EVP_PKEY *ca_key, long from, long until)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x;

	assert_non_null(key);
	x = make_cert(cn, key, ca, ca_key, from, until);
	snprintf(cert_path, 128, "%s/%s.crt", p->dir.path, base);
	snprintf(key_path, 128, "%s/%s.key", p->dir.path, base);
	write_pem(cert_path, x, NULL);
	write_pem(key_path, NULL, key);
	X509_free(x);
	EVP_PKEY_free(key);
}

static void
pki_make(struct pki *p)
{
	EVP_PKEY *ca_key, *other_key;
	X509 *ca, *other;

	tmpdir_make(&p->dir);
	ca_key = EVP_EC_gen("P-256");
	other_key = EVP_EC_gen("P-256");
	assert_non_null(ca_key);
	assert_non_null(other_key);
	ca = make_cert("psync test CA", ca_key, NULL, NULL, -1, 30);
	other = make_cert("some other CA", other_key, NULL, NULL, -1, 30);
	snprintf(p->ca, sizeof(p->ca), "%s/ca.crt", p->dir.path);
	snprintf(p->other_ca, sizeof(p->other_ca), "%s/other-ca.crt", p->dir.path);
	write_pem(p->ca, ca, NULL);
	write_pem(p->other_ca, other, NULL);
	issue(p, p->server_cert, p->server_key, "server", "server-node", ca,
	    ca_key, -1, 30);
	issue(p, p->client_cert, p->client_key, "client", "client-node", ca,
	    ca_key, -1, 30);
	issue(p, p->expired_cert, p->expired_key, "expired", "client-node", ca,
	    ca_key, -10, -1);
	issue(p, p->foreign_cert, p->foreign_key, "foreign", "client-node",
	    other, other_key, -1, 30);
	X509_free(ca);
	X509_free(other);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_key);
}

/* Run a client with the given certificate against an X.509 server. */
static struct wire_conn *
x509_client(const struct pki *p, const struct srv *s, const char *cert,
    const char *key, struct psync_err *err)
{
	struct wire_client_opts o;
	struct wire_x509 x = { p->ca, cert, key };

	client_opts(&o, s, NULL, NULL);
	o.x509 = &x;
	return wire_connect(&o, err);
}

/*
 * In TLS 1.3 the client's handshake is over before the server has judged
 * the client's certificate: the client learns of the refusal from the
 * server's alert, at the latest while waiting for the HELLO answer.
 */
static void
expect_x509_refused(const struct pki *p, const struct wire_x509 *sx,
    const char *cert, const char *key, const char *server_reason)
{
	struct wire_conn *c;
	struct psync_err err;
	struct srv s;

	log_reset();
	srv_start(&s, SRV_HANDSHAKE, sx);
	srv_run(&s);
	c = x509_client(p, &s, cert, key, &err);
	if (c != NULL) {
		assert_int_equal(client_hello(c, "client-node", FRAME_VERSION,
		    NULL, &err), -1);
		wire_close(c);
	}
	srv_stop(&s);
	assert_false(s.accepted);
	if (strstr(s.err.msg, "8203") == NULL ||
	    strstr(s.err.msg, server_reason) == NULL) {
		log_dump();
		fail_msg("server said: %s", s.err.msg);
	}
	if (strstr(err.msg, "8203") == NULL ||
	    strstr(err.msg, "peer server-node (127.0.0.1:") == NULL) {
		log_dump();
		fail_msg("client said: %s", err.msg);
	}
	assert_true(log_has("8203", "peer server-node (127.0.0.1:", NULL));
	if (!log_has("8203", "peer client-node (127.0.0.1:", NULL)) {
		log_dump();
		fail_msg("no 8203 for client-node");
	}
}

static void
test_x509_mutual_tls_works_and_checks_both_certificates(void **state)
{
	struct pki p;
	struct srv s;
	struct wire_conn *c;
	struct psync_err err;
	struct frame_hello theirs;
	struct wire_x509 sx;

	(void)state;
	pki_make(&p);
	sx.ca_file = p.ca;
	sx.cert_file = p.server_cert;
	sx.key_file = p.server_key;

	srv_start(&s, SRV_SERVE, &sx);
	srv_run(&s);
	c = x509_client(&p, &s, p.client_cert, p.client_key, &err);
	if (c == NULL) {
		log_dump();
		fail_msg("connect: %s", err.msg);
	}
	assert_string_equal(wire_tls_version(c), "TLSv1.3");
	assert_non_null(wire_kex_group(c));
	if (client_hello(c, "client-node", FRAME_VERSION, &theirs, &err) != 0)
		fail_msg("hello: %s", err.msg);
	assert_string_equal(theirs.node, "server-node");
	wire_close(c);
	srv_stop(&s);
	assert_string_equal(s.peer, "client-node");
	assert_int_equal(s.hello_rc, 0);

	/* An expired client certificate. */
	expect_x509_refused(&p, &sx, p.expired_cert, p.expired_key,
	    "certificate has expired");
	/* A client certificate from a CA the server does not trust. */
	expect_x509_refused(&p, &sx, p.foreign_cert, p.foreign_key,
	    "certificate check failed");

	/* A server certificate that is not for the peer we dialled. */
	log_reset();
	sx.cert_file = p.client_cert;
	sx.key_file = p.client_key;
	srv_start(&s, SRV_HANDSHAKE, &sx);
	srv_run(&s);
	assert_null(x509_client(&p, &s, p.client_cert, p.client_key, &err));
	srv_stop(&s);
	if (strstr(err.msg, "8203") == NULL ||
	    strstr(err.msg, "certificate check failed") == NULL)
		fail_msg("client said: %s", err.msg);

	tmpdir_remove(&p.dir);
}

static void
test_x509_private_key_must_be_private(void **state)
{
	struct wire_server_opts o;
	struct wire_x509 sx;
	struct psync_err err;
	struct pki p;

	(void)state;
	pki_make(&p);
	assert_int_equal(chmod(p.server_key, 0644), 0);
	sx.ca_file = p.ca;
	sx.cert_file = p.server_cert;
	sx.key_file = p.server_key;
	memset(&o, 0, sizeof(o));
	o.x509 = &sx;
	assert_null(wire_server_new(&o, &err));
	assert_non_null(strstr(err.msg, p.server_key));
	assert_non_null(strstr(err.msg, "readable by group or others"));
	tmpdir_remove(&p.dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_psk_handshake_uses_ecdhe_and_tls13_then_hello_exchange, setup, teardown),
		cmocka_unit_test_setup_teardown(test_thousand_pipelined_changes_are_all_acknowledged_by_id, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_psk_fails_on_both_sides_with_8203, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_identity_is_refused_by_the_server, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls12_client_is_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unsupported_hello_version_gets_error_23, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_client_version_is_answered_with_the_common_one, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hello_node_must_match_the_psk_identity, setup, teardown),
		cmocka_unit_test_setup_teardown(test_undecodable_frame_is_answered_with_error_then_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused_and_timeout_have_their_own_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_closing_during_the_handshake_is_not_reported_as_a_key_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_file_formats_and_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_file_is_written_0600_atomically_and_read_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_x509_mutual_tls_works_and_checks_both_certificates, setup, teardown),
		cmocka_unit_test_setup_teardown(test_x509_private_key_must_be_private, setup, teardown),
	};

	/* As in psyncd: a peer that hangs up must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
