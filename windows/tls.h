/*
 * The agent's client side of psync's transport (doc/protocol.md section 1):
 * TLS 1.3 only, an external PSK per peer in psk_dhe_ke mode with
 * TLS_AES_256_GCM_SHA384; frames from lib/proto/frame.c.
 * Blocking Winsock sockets with send and receive timeouts. (psyncd's
 * listener authenticates by pre-shared key only, so X.509 is not offered.)
 */
#ifndef PSYNC_WIN_TLS_H
#define PSYNC_WIN_TLS_H

#include <stdbool.h>

#include "frame.h"

struct tls_peer {
	const char	*name;		/* its node name */
	const char	*host;
	unsigned int	 port;
	const char	*identity;	/* our node name */
	unsigned char	 key[FRAME_KEY_LEN];
	int		 timeout_ms;
};

struct tls_conn;

enum tls_status { TLS_FRAME, TLS_TIMEOUT, TLS_CLOSED, TLS_FAIL };

int	tls_init(void);
/* Connect, handshake and exchange HELLO. On failure err holds the reason,
   a key mismatch as "8203: secret key mismatch or packet error: ...". */
struct tls_conn *tls_connect(const struct tls_peer *p, char *err, size_t errlen);
int	tls_send(struct tls_conn *c, const struct frame *f, char *err,
	    size_t errlen);
enum tls_status tls_recv(struct tls_conn *c, struct frame *f, char *err,
	    size_t errlen);
void	tls_close(struct tls_conn *c);
const char *tls_address(const struct tls_conn *c);

#endif
