/*
 * The psync frame codec: turns the messages of psync's native protocol into
 * bytes and back, without doing any I/O. doc/protocol.md describes the
 * format. There is exactly one decoder (frame_decode); it trusts nothing in
 * its input, and the fuzzer in tests/fuzz/fuzz_frame.c hammers it.
 */
#ifndef PSYNC_FRAME_H
#define PSYNC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "change.h"
#include "util.h"

#define FRAME_PREFIX_LEN	4	/* big-endian length of what follows */
#define FRAME_LEN_MAX		65536	/* hard cap on that length (64 KiB) */
#define FRAME_BUF_MAX		(FRAME_PREFIX_LEN + FRAME_LEN_MAX)

#define FRAME_NAME_MAX		CHANGE_NODE_MAX	/* node names, bytes */
#define FRAME_USER_MAX		CHANGE_USER_MAX	/* user names, bytes */
#define FRAME_REASON_MAX	512	/* reason texts, bytes */
#define FRAME_SECRET_MAX	CHANGE_SECRET_MAX /* password or hash, bytes */
#define FRAME_ID_LEN		CHANGE_ID_LEN	/* change ids: 128 bits */
#define FRAME_KEY_LEN		32	/* pre-shared keys */

#define FRAME_VERSION		1	/* the protocol version this code speaks */

/* Capability bits in HELLO; unknown bits are ignored by the receiver. */
#define FRAME_CAP_CRYPT_HASH	0x00000001u	/* accepts CHANGEs with a crypt hash */
#define FRAME_CAP_KEY_ROTATION	0x00000002u	/* speaks KEY-PROPOSE/KEY-CONFIRM */

enum frame_type {
	FRAME_HELLO		= 1,
	FRAME_CHANGE		= 2,
	FRAME_RESULT		= 3,
	FRAME_PING		= 4,
	FRAME_PONG		= 5,
	FRAME_KEY_PROPOSE	= 6,
	FRAME_KEY_CONFIRM	= 7,
	FRAME_ERROR		= 8,
};

#define FRAME_SECRET_CLEARTEXT	CHANGE_SECRET_CLEARTEXT
#define FRAME_SECRET_CRYPT	CHANGE_SECRET_CRYPT

struct frame_hello {
	char		node[FRAME_NAME_MAX + 1];
	uint16_t	version;
	uint32_t	caps;
};


struct frame_result {
	uint8_t		id[FRAME_ID_LEN];
	uint16_t	code;		/* enum psync_code */
	char		reason[FRAME_REASON_MAX + 1];	/* may be empty */
};

struct frame_ping {			/* PING and PONG */
	uint64_t	seq;
};

struct frame_key_propose {
	uint32_t	key_id;
	unsigned char	key[FRAME_KEY_LEN];
};

struct frame_key_confirm {
	uint32_t	key_id;
};

struct frame_error {
	uint16_t	code;		/* enum psync_code */
	char		reason[FRAME_REASON_MAX + 1];	/* may be empty */
};

/*
 * A decoded message. A CHANGE holds a secret and a KEY-PROPOSE a key:
 * whoever owns a struct frame calls frame_wipe() when done with it.
 */
struct frame {
	enum frame_type	type;
	union {
		struct frame_hello		hello;
		struct change		change;
		struct frame_result		result;
		struct frame_ping		ping;	/* also PONG */
		struct frame_key_propose	key_propose;
		struct frame_key_confirm	key_confirm;
		struct frame_error		error;
	} u;
};

/* Wipe every byte of f (secrets included); f may be reused afterwards. */
void	frame_wipe(struct frame *f);

/* "HELLO", "CHANGE", ...; "unknown" for anything else. Never NULL. */
const char *frame_type_name(int type);

/*
 * Fill f with one message. Strings longer than the protocol allows, or
 * values it forbids, fail with -1 and err (f is then wiped).
 */
int	frame_set_hello(struct frame *f, const char *node, uint16_t version,
	    uint32_t caps, struct psync_err *err);
int	frame_set_change(struct frame *f, const uint8_t id[FRAME_ID_LEN],
	    const char *origin, uint64_t time_ms, const char *user,
	    enum change_secret_kind kind, const void *secret, size_t secret_len,
	    struct psync_err *err);
int	frame_set_result(struct frame *f, const uint8_t id[FRAME_ID_LEN],
	    int code, const char *reason, struct psync_err *err);
int	frame_set_ping(struct frame *f, bool pong, uint64_t seq);
int	frame_set_key_propose(struct frame *f, uint32_t key_id,
	    const unsigned char key[FRAME_KEY_LEN]);
int	frame_set_key_confirm(struct frame *f, uint32_t key_id);
int	frame_set_error(struct frame *f, int code, const char *reason,
	    struct psync_err *err);

/*
 * Encode f into buf (at most cap bytes, FRAME_BUF_MAX always suffices).
 * Checks every field with the decoder's rules first, so that we never send
 * what a peer must refuse. Returns the frame's length, or -1 with err.
 * The caller wipes buf when f held a secret.
 */
long	frame_encode(const struct frame *f, unsigned char *buf, size_t cap,
	    struct psync_err *err);

/*
 * Decode the frame at the start of buf (len bytes available). Returns the
 * number of bytes it used (> 0) with f filled, 0 when buf does not hold a
 * whole frame yet, or -1 with err->code = PSYNC_E_PROTOCOL and a reason
 * when the bytes can never become a valid frame (the length prefix is
 * already wrong, or the complete frame is malformed). On 0 and -1, f is
 * left wiped.
 */
long	frame_decode(const unsigned char *buf, size_t len, struct frame *f,
	    struct psync_err *err);

#endif
