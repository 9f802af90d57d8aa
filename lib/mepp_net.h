/*
 * MEPP over TCP: the client role (send one change or check to a legacy
 * peer and read its result) and the listener role (accept legacy peers from
 * their trusted addresses, decode their requests, ask a decision callback,
 * answer). Blocking sockets driven by poll() with deadlines; the listener
 * serves each connection in its own thread, up to a hard cap.
 */
#ifndef PSYNC_MEPP_NET_H
#define PSYNC_MEPP_NET_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MEPP_DEFAULT_PORT		6677
#define MEPP_CONNECT_TIMEOUT_MS		10000
#define MEPP_CLIENT_TIMEOUT_MS		30000
#define MEPP_REQUEST_TIMEOUT_MS		5000
#define MEPP_MAX_CONNECTIONS		64

/*
 * The step at which a client exchange failed, in psync_err.code when a
 * client function returns -1 (above the result codes, so never confused
 * with them).
 */
enum mepp_step {
	MEPP_STEP_ARGS = 100,	/* bad arguments (no host, empty user...) */
	MEPP_STEP_CRYPTO,	/* OpenSSL (legacy provider, RNG) */
	MEPP_STEP_RESOLVE,	/* host name lookup */
	MEPP_STEP_CONNECT,	/* refused, unreachable... */
	MEPP_STEP_TIMEOUT,	/* a deadline passed (connect, R1, result) */
	MEPP_STEP_SHORT_READ,	/* the peer closed before a whole message */
	MEPP_STEP_SEND,		/* writing the request failed */
	MEPP_STEP_RECV,		/* reading failed (reset...) */
	MEPP_STEP_RESPONSE,	/* the response is malformed */
};

/* Where and how to reach a legacy peer. */
struct mepp_client {
	const char	*host;		/* name or address literal */
	unsigned int	 port;
	const char	*secret;	/* the shared key text */
	int		 connect_timeout_ms;	/* 0: MEPP_CONNECT_TIMEOUT_MS */
	int		 timeout_ms;	/* R1, request and result; 0: default */
};

/*
 * Send one request of TYPE (MEPP_TYPE_UPDATE or MEPP_TYPE_CHECK) and return
 * the peer's result code (0 success, 12 no such user...), or -1 with err
 * saying which step failed (err->code: enum mepp_step) for which host:port.
 */
int	mepp_client_send(const struct mepp_client *c, uint32_t type,
	    const char *user, const char *password, struct psync_err *err);
/* A password change (type 0). */
int	mepp_client_change(const struct mepp_client *c, const char *user,
	    const char *password, struct psync_err *err);
/* A preliminary check (type 2, password "temppass"): would the peer accept? */
int	mepp_client_check(const struct mepp_client *c, const char *user,
	    struct psync_err *err);
/* What a peer's result code means, for a person; never NULL. */
const char *mepp_result_reason(int code);

/* A legacy peer as the listener knows it. */
struct mepp_peer {
	const char		*name;
	const char		*secret;
	const char *const	*trusted;	/* IPv4 or IPv6 literals */
	size_t			 n_trusted;
};

/*
 * Decide a decoded request: return the result code to answer. For
 * MEPP_TYPE_CHECK only say whether the change would be accepted; apply
 * nothing. Calls are serialised by the listener; the password must not be
 * kept or logged.
 */
typedef int (*mepp_decide_fn)(void *ctx, const char *peer, int type,
    const char *user, const char *password);

struct mepp_listener_conf {
	const char		*address;	/* NULL: every address, IPv6 and IPv4 */
	unsigned int		 port;		/* 0: any free port (tests) */
	const struct mepp_peer	*peers;
	size_t			 n_peers;
	mepp_decide_fn		 decide;
	void			*ctx;
	int			 request_timeout_ms;	/* 0: MEPP_REQUEST_TIMEOUT_MS */
	unsigned int		 max_connections;	/* 0: MEPP_MAX_CONNECTIONS */
};

struct mepp_listener;

/*
 * Check the peer table (copied: conf may go away), bind and listen.
 * Returns NULL with err set (bad trusted address, bind failure...).
 */
struct mepp_listener *mepp_listener_open(const struct mepp_listener_conf *conf,
	    struct psync_err *err);
/*
 * Bind and listen the way mepp_listener_open() does, and return the
 * socket: the root parent binds, the network child serves it.
 */
int	mepp_listen(const char *address, unsigned int port,
	    struct psync_err *err);
/*
 * A listener on an already listening socket fd (kept by the listener from
 * then on); conf->address and conf->port are not used, and the peer table
 * may be empty until mepp_listener_set_peers().
 */
struct mepp_listener *mepp_listener_adopt(int fd,
	    const struct mepp_listener_conf *conf, struct psync_err *err);
/*
 * Replace the peer table (a reload): connections already matched keep
 * going; the next ones see the new keys and addresses.
 */
int	mepp_listener_set_peers(struct mepp_listener *l,
	    const struct mepp_peer *peers, size_t n, struct psync_err *err);
/* The port actually bound (useful after asking for port 0). */
unsigned int	mepp_listener_port(const struct mepp_listener *l);
/*
 * Accept and serve connections until mepp_listener_stop(); then wait for
 * the connections in progress to end. Returns 0, or -1 on a fatal error.
 */
int	mepp_listener_run(struct mepp_listener *l);
/* Ask run() to return; callable from any thread or a signal handler. */
void	mepp_listener_stop(struct mepp_listener *l);
/* Close and wipe; only once run() has returned (or was never called). */
void	mepp_listener_free(struct mepp_listener *l);

#endif
