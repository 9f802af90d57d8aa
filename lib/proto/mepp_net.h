/*
 * MEPP over TCP: the client role (send one change or check to a legacy
 * peer and read its result) and the listener role (accept legacy peers from
 * their trusted addresses, decode their requests, ask a decision callback,
 * answer). Blocking sockets driven by poll() with deadlines; the listener
 * serves each connection in its own thread, up to a hard cap.
 */
#ifndef PSYNC_MEPP_NET_H
#define PSYNC_MEPP_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mepp.h"
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
	enum mepp_kdf_form kdf_form;	/* what the peer expects; 0: 4-byte */
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

/*
 * psyncctl verify for a MEPP peer: does it share our key? A type 2 check
 * cannot tell (the published listener answers 5 to every one), so the probe
 * sends a type 0 change for MEPP_PROBE_USER, a name that no UNIX or Windows
 * account can have (':' ends a passwd field; Windows refuses ':' and '/'
 * in account names): no password changes anywhere. A peer that decoded the
 * request answers for the user (4 from the published listener, 12 from
 * psync, 4, 6 or 12 from Windows servers); a wrong key gets 5 (or 7).
 * When the answer is 5 the probe tries the other key derivation form once,
 * so that a peer expecting the other form is told from a wrong key.
 */
#define MEPP_PROBE_USER		"psync:probe/no-such-user"

enum mepp_probe_step {
	MEPP_PROBE_STEP_NONE,		/* no step failed: see the outcome */
	MEPP_PROBE_STEP_CONNECT,	/* resolve, connect (refused, timed out) */
	MEPP_PROBE_STEP_EXCHANGE,	/* R1, the request or the result */
};

enum mepp_probe_outcome {
	MEPP_PROBE_FAILED,		/* a step failed: no answer to judge */
	MEPP_PROBE_KEY_RIGHT,		/* the peer read the request */
	MEPP_PROBE_KEY_WRONG,		/* 5 or 7 in both forms: keys differ */
	MEPP_PROBE_FORM_MISMATCH,	/* right key, the other kdf form */
	MEPP_PROBE_OTHER_CODE,		/* an answer that proves neither */
};

struct mepp_probe {
	enum mepp_probe_step	 step;
	enum mepp_probe_outcome	 outcome;
	int			 code;	/* the peer's answer; -1: none */
	int			 io_step;	/* enum mepp_step when step failed */
	enum mepp_kdf_form	 form;	/* the form of the answer in code */
	char			 message[PSYNC_ERR_LEN];	/* for a person */
};

/*
 * Probe peer c (c->kdf_form first). Fills out and returns out->outcome;
 * the message says what was found and, when the forms differ, which
 * key-derivation value the peer's configuration needs.
 */
enum mepp_probe_outcome mepp_client_probe(const struct mepp_client *c,
	    const char *peer_name, struct mepp_probe *out);
/* "key right", "key wrong"...; never NULL. */
const char *mepp_probe_outcome_name(enum mepp_probe_outcome outcome);

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
 * nothing. Calls are serialised by the listener unless the configuration
 * says the callback is safe to run concurrently (concurrent_decisions);
 * the password must not be kept or logged.
 */
typedef int (*mepp_decide_fn)(void *ctx, const char *peer, int type,
    const char *user, const char *password);

/* Everything the listener knows about a verified request. */
struct mepp_decision {
	const char		*peer;		/* the peer whose key verified */
	const char		*addr;		/* the client's address */
	int			 type;		/* MEPP_TYPE_UPDATE or _CHECK */
	const char		*user;		/* raw: escape before logging */
	const char		*password;	/* never keep or log it */
	enum mepp_kdf_form	 form;		/* the key derivation it used */
};
/* Like mepp_decide_fn, with the key derivation form (for logging). */
typedef int (*mepp_decide_ex_fn)(void *ctx, const struct mepp_decision *d);

struct mepp_listener_conf {
	const char		*address;	/* NULL: every address, IPv6 and IPv4 */
	unsigned int		 port;		/* 0: any free port (tests) */
	const struct mepp_peer	*peers;
	size_t			 n_peers;
	mepp_decide_fn		 decide;
	mepp_decide_ex_fn	 decide_ex;	/* when set, used instead */
	void			*ctx;
	int			 request_timeout_ms;	/* 0: MEPP_REQUEST_TIMEOUT_MS */
	unsigned int		 max_connections;	/* 0: MEPP_MAX_CONNECTIONS */
	/* The callback may run in several connections' threads at once, so
	   that requests that arrive together are decided together. */
	bool			 concurrent_decisions;
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
