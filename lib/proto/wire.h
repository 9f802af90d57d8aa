/*
 * psync's native transport: TLS 1.3 only, authenticated by an external
 * pre-shared key per peer in (EC)DHE mode (or, optionally, by X.509 mutual
 * TLS), carrying the frames of frame.h over a persistent, pipelined
 * connection. Sockets are non-blocking underneath and every call takes a
 * deadline, so a silent peer can never hang the caller.
 *
 * Failed handshakes are logged here, once, on both sides (a key mismatch as
 * message 8203) and also reported in err; callers need not log them again.
 * Other errors are only reported in err.
 *
 * OpenSSL writes to the socket with write(2): a program using wire must
 * ignore SIGPIPE (psyncd does), or a peer that vanishes kills it.
 */
#ifndef PSYNC_WIRE_H
#define PSYNC_WIRE_H

#include <stdbool.h>
#include <stdint.h>

#include "frame.h"
#include "keyfile.h"
#include "util.h"

#define WIRE_IDENTITY_MAX	FRAME_NAME_MAX

/*
 * Server side: find the key for the PSK identity a client offered. Fill key
 * and return 0, or return -1 when the identity is unknown. During a key
 * rotation it may accept an identity that names the key id as well.
 */
typedef int (*wire_psk_lookup_fn)(void *ctx, const char *identity,
    unsigned char key[WIRE_KEY_LEN]);

/* X.509 mutual TLS instead of the PSK: all three files are required. */
struct wire_x509 {
	const char	*ca_file;	/* CAs that sign peers' certificates */
	const char	*cert_file;	/* our certificate (and chain), PEM */
	const char	*key_file;	/* its private key, PEM, mode 0600 */
};

struct wire_client_opts {
	const char	*peer_name;	/* required: the peer's node name, which
					   its HELLO (and, with X.509, its
					   certificate) must carry */
	const char	*host;		/* name or address to connect to */
	unsigned int	 port;
	int		 timeout_ms;	/* connect + handshake; later I/O too */
	const char	*identity;	/* PSK identity: our node name */
	const unsigned char *key;	/* WIRE_KEY_LEN bytes, or NULL with x509 */
	const struct wire_x509 *x509;	/* NULL: PSK */
};

struct wire_server_opts {
	wire_psk_lookup_fn	 psk_lookup;	/* PSK mode */
	void			*lookup_ctx;
	const struct wire_x509	*x509;		/* NULL: PSK */
	int			 io_timeout_ms;	/* send deadline of accepted conns */
};

enum wire_status {
	WIRE_FRAME,	/* a frame was received */
	WIRE_TIMEOUT,	/* no whole frame before the deadline; try again */
	WIRE_CLOSED,	/* the peer closed the connection cleanly */
	WIRE_ERROR,	/* the connection is broken; err says why */
};

struct wire_conn;
struct wire_server;


/* Dial a peer and complete the TLS handshake before the deadline. */
struct wire_conn *wire_connect(const struct wire_client_opts *opts,
	    struct psync_err *err);

/* The server's TLS context and key lookup, shared by all its connections. */
struct wire_server *wire_server_new(const struct wire_server_opts *opts,
	    struct psync_err *err);
void	wire_server_free(struct wire_server *srv);
/* Listening socket on address (NULL: any) and port (0: a free one); the
   port actually bound goes to bound_port when it is not NULL. */
int	wire_listen(const char *address, unsigned int port,
	    unsigned int *bound_port, struct psync_err *err);
/* Accept one connection and complete its handshake before the deadline. */
struct wire_conn *wire_accept(struct wire_server *srv, int listen_fd,
	    int timeout_ms, struct psync_err *err);
/* The same for a socket the caller accepted itself (wire takes it over). */
struct wire_conn *wire_accept_fd(struct wire_server *srv, int fd,
	    int timeout_ms, struct psync_err *err);

/* Send one frame, waiting at most the connection's I/O timeout. */
int	wire_send(struct wire_conn *c, const struct frame *f,
	    struct psync_err *err);
/*
 * Receive one frame, waiting at most timeout_ms (0: only what is already
 * there, -1: forever). An undecodable frame is answered with ERROR and the
 * connection is then broken. The caller wipes f (frame_wipe).
 */
enum wire_status wire_recv(struct wire_conn *c, struct frame *f,
	    int timeout_ms, struct psync_err *err);
/*
 * True when wire_recv could make progress without reading the socket:
 * a frame (or TLS data) is already buffered, which poll() on wire_fd()
 * would not show. A single-threaded caller polls only when this is false.
 */
bool	wire_pending(const struct wire_conn *c);
int	wire_fd(const struct wire_conn *c);

/*
 * The HELLO exchange right after the handshake. ours carries our node name,
 * highest version and capabilities; we also speak every version down to
 * min_version. The client sends first; the server answers with the
 * version both speak, or with ERROR 23 (version mismatch). Either side
 * refuses a HELLO whose node name is not the authenticated peer.
 * On success theirs holds the peer's HELLO (version: the negotiated one).
 */
int	wire_hello(struct wire_conn *c, const struct frame_hello *ours,
	    uint16_t min_version, struct frame_hello *theirs, int timeout_ms,
	    struct psync_err *err);

void	wire_set_io_timeout(struct wire_conn *c, int timeout_ms);
/* Who the peer is: the PSK identity, the certificate's name, or the name
   dialled; and its address as "ADDR:PORT". */
const char *wire_peer_name(const struct wire_conn *c);
const char *wire_peer_address(const struct wire_conn *c);
/* The (EC)DHE group of the handshake ("X25519"), or NULL when none. */
const char *wire_kex_group(const struct wire_conn *c);
/* "TLSv1.3", the cipher suite, the negotiated HELLO version (0: none). */
const char *wire_tls_version(const struct wire_conn *c);
const char *wire_cipher(const struct wire_conn *c);
uint16_t wire_version(const struct wire_conn *c);
/* Does OpenSSL wipe record buffers once their plaintext was used? */
bool	wire_cleanses_plaintext(const struct wire_conn *c);

/* Send close_notify when the connection is still sound, then free it. */
void	wire_close(struct wire_conn *c);

#endif
