/*
 * Privilege-separation messages between psyncd's root parent and its
 * unprivileged network child. Every message is a fixed 12-byte header
 * (type, payload length, request id; big-endian) and a payload whose
 * layout depends on the type. There is one encoder and one strict decoder
 * per type: a decoder checks every length and every field and rejects
 * trailing bytes, unknown types and anything over the hard cap. The parent
 * treats whatever the child sends as hostile; tests/fuzz/fuzz_pmsg.c
 * hammers pmsg_decode().
 */
#ifndef PSYNC_PMSG_H
#define PSYNC_PMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "util.h"

#define PMSG_HDR_LEN		12
#define PMSG_MAX		16384	/* payload cap, bytes */
#define PMSG_ADDR_MAX		63	/* a numeric address literal */
#define PMSG_HOST_MAX		255	/* a host name or address literal */
#define PMSG_KEYTEXT_MAX	512	/* a MEPP key text or a 32-byte PSK */
#define PMSG_TRUSTED_MAX	32	/* trusted addresses per peer */
#define PMSG_TEXT_MAX		FRAME_REASON_MAX

enum pmsg_type {
	/* child -> parent */
	PMSG_INBOUND		= 1,	/* a change a peer sent us */
	PMSG_DELIVERY_RESULT	= 2,	/* what a peer answered to DELIVER */
	PMSG_VERIFY_RESULT	= 3,	/* the outcome of VERIFY */
	PMSG_KEY_PROPOSED	= 4,	/* a peer proposed a new key */
	PMSG_KEY_RESULT		= 5,	/* what a peer answered KEY_PROPOSE */
	PMSG_KEY_USED		= 6,	/* a handshake used a peer's next key */
	/* parent -> child */
	PMSG_PEER		= 16,	/* one peer of the new table */
	PMSG_PEERS_END		= 17,	/* the table is complete: swap it in */
	PMSG_INBOUND_RESULT	= 18,	/* the answer to INBOUND */
	PMSG_DELIVER		= 19,	/* send this change to this peer */
	PMSG_VERIFY		= 20,	/* check the channel to a peer */
	PMSG_SHUTDOWN		= 21,	/* finish and exit */
	PMSG_KEY_PROPOSE	= 22,	/* propose this key to this peer */
};

/*
 * Key ids in PSK identities: a key made by keygen or set-key has id 0 and
 * the identity is the node name; a rotated key has id N > 0 and the
 * identity "NAME#N". Node names never contain '#'.
 */
#define PMSG_IDENTITY_MAX	FRAME_NAME_MAX
/* Split an identity into the node name and the key id; -1 if malformed. */
int	pmsg_identity_parse(const char *identity, char *name, size_t len,
	    uint32_t *key_id);
/* Build the identity for a node name and key id; -1 if it does not fit. */
int	pmsg_identity_make(const char *name, uint32_t key_id, char *out,
	    size_t len);

/* The steps of a channel check, in the order they are taken. */
enum pmsg_verify_step {
	VERIFY_OK		= 0,
	VERIFY_RESOLVE		= 1,
	VERIFY_CONNECT		= 2,
	VERIFY_HANDSHAKE	= 3,
	VERIFY_VERSION		= 4,
	VERIFY_POLICY		= 5,
	VERIFY_OTHER		= 6,
	VERIFY_EXCHANGE		= 7,	/* MEPP: the request and its answer */
	VERIFY_STEP_MAX		= 7,
};

/* A change as it crosses the socketpair; the secret is in clear. */
struct pmsg_inbound {
	uint8_t		protocol;	/* enum peer_protocol */
	uint8_t		mepp_type;	/* MEPP: 0 update, 2 check; psync: 0 */
	char		peer[FRAME_NAME_MAX + 1];
	struct change change;
};

struct pmsg_delivery_result {
	uint8_t		id[FRAME_ID_LEN];
	char		peer[FRAME_NAME_MAX + 1];
	int32_t		code;		/* PSYNC_* or -1: unreachable */
	char		reason[PMSG_TEXT_MAX + 1];
};

struct pmsg_verify_result {
	uint8_t		step;		/* enum pmsg_verify_step */
	int32_t		code;
	char		message[PMSG_TEXT_MAX + 1];
};

struct pmsg_peer {
	char		name[FRAME_NAME_MAX + 1];
	uint8_t		protocol;	/* enum peer_protocol */
	uint8_t		direction;	/* enum peer_direction */
	uint16_t	port;
	uint32_t	connect_timeout;	/* seconds */
	char		host[PMSG_HOST_MAX + 1];	/* "" : none configured */
	/* Not sent: the child's resolver fills them in (net_resolve.c). */
	char		address[PMSG_ADDR_MAX + 1];	/* numeric; "" if unresolved */
	char		resolve_error[PMSG_TEXT_MAX + 1];
	uint16_t	key_len;
	unsigned char	key[PMSG_KEYTEXT_MAX + 1];	/* NUL-terminated too */
	uint8_t		n_trusted;
	char		trusted[PMSG_TRUSTED_MAX][PMSG_ADDR_MAX + 1];
	uint8_t		mepp_kdf;	/* MEPP: enum mepp_kdf_form it expects */
	/* psync PSKs: the current key's id, and during a rotation the next
	   key (a higher id), accepted as well; use_next: dial with it (the
	   peer proposed it, so it holds it). */
	uint32_t	key_id;
	uint8_t		has_next;
	uint8_t		use_next;
	uint32_t	next_id;
	unsigned char	next[FRAME_KEY_LEN];
};

struct pmsg_peers_end {
	char		node[FRAME_NAME_MAX + 1];
	uint32_t	n_peers;
};

struct pmsg_inbound_result {
	uint16_t	code;
	char		reason[PMSG_TEXT_MAX + 1];
};

struct pmsg_deliver {
	char		peer[FRAME_NAME_MAX + 1];
	struct change change;
};

/* KEY_PROPOSED: a peer sent KEY-PROPOSE over a connection that
   authenticated as that peer with key auth_id. */
struct pmsg_key_proposed {
	char		peer[FRAME_NAME_MAX + 1];
	uint32_t	auth_id;
	uint32_t	key_id;		/* > 0 */
	unsigned char	key[FRAME_KEY_LEN];
};

/* KEY_PROPOSE: parent to child, the same fields for our own proposal. */
struct pmsg_key_propose {
	char		peer[FRAME_NAME_MAX + 1];
	uint32_t	key_id;		/* > 0 */
	unsigned char	key[FRAME_KEY_LEN];
};

/* KEY_RESULT: 0 the peer confirmed, -1 unreachable, else its code. */
struct pmsg_key_result {
	char		peer[FRAME_NAME_MAX + 1];
	uint32_t	key_id;
	int32_t		code;
	char		reason[PMSG_TEXT_MAX + 1];
};

/* KEY_USED: a handshake with peer used our next key, key_id. */
struct pmsg_key_used {
	char		peer[FRAME_NAME_MAX + 1];
	uint32_t	key_id;		/* > 0 */
};

struct pmsg_verify {
	char		peer[FRAME_NAME_MAX + 1];
	char		user[FRAME_USER_MAX + 1];	/* "" : no test user */
};

struct pmsg {
	uint32_t	type;
	uint32_t	reqid;
	union {
		struct pmsg_inbound		inbound;
		struct pmsg_delivery_result	dresult;
		struct pmsg_verify_result	vresult;
		struct pmsg_peer		peer;
		struct pmsg_peers_end		peers_end;
		struct pmsg_inbound_result	iresult;
		struct pmsg_deliver		deliver;
		struct pmsg_verify		verify;
		struct pmsg_key_proposed	kproposed;
		struct pmsg_key_propose		kpropose;
		struct pmsg_key_result		kresult;
		struct pmsg_key_used		kused;
	} u;
};

/* Which side may send a type; the decoder refuses the other side's. */
enum pmsg_from {
	PMSG_FROM_CHILD,
	PMSG_FROM_PARENT,
};

/*
 * Encode m into buf (PMSG_HDR_LEN + PMSG_MAX always suffices). Returns the
 * length, or -1 with err when a field does not fit the rules.
 */
long	pmsg_encode(const struct pmsg *m, unsigned char *buf, size_t cap,
	    struct psync_err *err);
/*
 * Decode one message at the start of buf: the number of bytes used (> 0)
 * with m filled, 0 when more bytes are needed, -1 with err when the bytes
 * can never be a valid message from that side (the stream is then dead).
 */
long	pmsg_decode(const unsigned char *buf, size_t len, enum pmsg_from from,
	    struct pmsg *m, struct psync_err *err);
/* Wipe m, which may have held a secret or a key. */
void	pmsg_wipe(struct pmsg *m);
const char *pmsg_type_name(uint32_t type);
const char *pmsg_step_name(int step);

/*
 * Blocking helpers on a stream socket: write one whole message, or read
 * one (into a caller buffer of PMSG_HDR_LEN + PMSG_MAX). Return 0, or -1
 * with err (the peer closed: err->code PSYNC_OK).
 */
int	pmsg_write(int fd, const struct pmsg *m, struct psync_err *err);
int	pmsg_read(int fd, unsigned char *buf, enum pmsg_from from,
	    struct pmsg *m, struct psync_err *err);

#endif
