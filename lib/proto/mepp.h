/*
 * MEPP, the wire protocol of the legacy Windows Password Synchronization
 * service (../shared/mepp/SPEC.md): session key derivation, the request and
 * response formats, and the rules for legacy shared keys. Pure codec: no
 * I/O here; lib/proto/mepp_net.c drives it over sockets.
 *
 * Buffers that held a password (plaintexts, decoded requests) are wiped
 * before they are released; nothing here logs.
 */
#ifndef PSYNC_MEPP_H
#define PSYNC_MEPP_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define MEPP_NONCE_LEN		8	/* R1 and R2 */
#define MEPP_SHA1_LEN		20
#define MEPP_KEY_LEN		24	/* three DES keys */
#define MEPP_SCHED_LEN		384	/* three SSLeay DES key schedules */
#define MEPP_MAC_LEN		20
#define MEPP_HEADER_LEN		12	/* version, total length, type */
#define MEPP_RESPONSE_LEN	16
/* Header, R2, and the smallest ciphertext (two NULs, MAC, fill). */
#define MEPP_MIN_REQUEST	(MEPP_HEADER_LEN + MEPP_NONCE_LEN + 24)
/* Hard cap on a request: the legacy tools send a few hundred bytes. */
#define MEPP_MAX_REQUEST	4096
/* Room for a user or a password (NUL included) from the largest request. */
#define MEPP_FIELD_MAX		MEPP_MAX_REQUEST

#define MEPP_VERSION		0
#define MEPP_TYPE_UPDATE	0	/* apply this password */
#define MEPP_TYPE_RESPONSE	1
#define MEPP_TYPE_CHECK		2	/* would you accept this user? */

/* The password the legacy PAM module sends with a type 2 check. */
#define MEPP_CHECK_PASSWORD	"temppass"

/*
 * The two forms of the zero words that end the session key's SHA-1 input
 * (SPEC.md "Session key"). The legacy PAM module built for 64-bit hosts
 * writes two 8-byte longs where the protocol has two 4-byte words; a
 * listener accepts both, a client uses the one its peer expects.
 */
enum mepp_kdf_form {
	MEPP_KDF_WORD4 = 0,	/* 2 x 4 zero bytes: SPEC.md, the default */
	MEPP_KDF_WORD8 = 1,	/* 2 x 8 zero bytes: 64-bit legacy PAM module */
};

/* The session key and the values it is derived from (tests compare them). */
struct mepp_kdf {
	uint8_t	s[MEPP_SHA1_LEN];	/* SHA1(R1 || secret || R2 || zeros) */
	uint8_t	ka[MEPP_SHA1_LEN];	/* SHA1(S padded to 64, xor 0x36) */
	uint8_t	kb[MEPP_SHA1_LEN];	/* SHA1(S padded to 64, xor 0x5c) */
	uint8_t	key[MEPP_KEY_LEN];	/* KA || KB[0..3] */
};

/* A decoded request. Wipe it with mepp_request_wipe() after use. */
struct mepp_request {
	uint32_t	 version;	/* as received: only the MAC covers it */
	uint32_t	 type;
	uint32_t	 total;
	uint8_t		 r2[MEPP_NONCE_LEN];
	char		 user[MEPP_FIELD_MAX];
	char		 password[MEPP_FIELD_MAX];
	enum mepp_kdf_form form;	/* the key derivation that verified */
	const char	*why;		/* on failure: what was wrong (no secrets) */
};

/*
 * Load OpenSSL's "legacy" and "default" providers into a private library
 * context and fetch 3DES and SHA-1 from it, once per process (thread-safe).
 * Call it before a chroot: the legacy provider is a module read from disk.
 * The other functions call it too; it fails, and says so, when the legacy
 * provider is missing.
 */
int	mepp_crypto_init(struct psync_err *err);

/* Derive the session key from R1, the shared secret and R2. 0 or -1. */
int	mepp_kdf(const uint8_t r1[MEPP_NONCE_LEN], const char *secret,
	    const uint8_t r2[MEPP_NONCE_LEN], struct mepp_kdf *out);
/* The same in either form (mepp_kdf is MEPP_KDF_WORD4). 0 or -1. */
int	mepp_kdf_as(const uint8_t r1[MEPP_NONCE_LEN], const char *secret,
	    const uint8_t r2[MEPP_NONCE_LEN], enum mepp_kdf_form form,
	    struct mepp_kdf *out);
/* "4-byte" or "8-byte" (the psync.conf values of key-derivation). */
const char *mepp_kdf_form_name(enum mepp_kdf_form form);

/*
 * The 384-byte MAC prefix: the DES key schedules of the three 8-byte keys in
 * the SSLeay layout (16 rounds of two 32-bit words each), every word
 * big-endian. Lives in lib/proto/mepp_des.c.
 */
void	mepp_key_schedule(const uint8_t key[MEPP_KEY_LEN],
	    uint8_t sched[MEPP_SCHED_LEN]);

/*
 * Write SCHED || version || total || type || user || password to out and
 * return its length, or 0 when out is too small. Holds the password: wipe.
 */
size_t	mepp_mac_input(const uint8_t sched[MEPP_SCHED_LEN], uint32_t total,
	    uint32_t type, const char *user, const char *password,
	    uint8_t *out, size_t outlen);
/* SHA-1 of the above for the schedule of key. 0 or -1. */
int	mepp_mac(const uint8_t key[MEPP_KEY_LEN], uint32_t total, uint32_t type,
	    const char *user, const char *password, uint8_t mac[MEPP_MAC_LEN]);
/* The same over another version word (what a listener received). */
int	mepp_mac_version(const uint8_t key[MEPP_KEY_LEN], uint32_t version,
	    uint32_t total, uint32_t type, const char *user,
	    const char *password, uint8_t mac[MEPP_MAC_LEN]);

/*
 * user || 00 || password || 00 || mac || zero fill (1 to 8 bytes, up to a
 * multiple of 8). Returns the length, or 0 when out is too small.
 */
size_t	mepp_plaintext(const char *user, const char *password,
	    const uint8_t mac[MEPP_MAC_LEN], uint8_t *out, size_t outlen);

/* 3DES-EDE in ECB mode; len must be a multiple of 8. 0 or -1. */
int	mepp_des3_ecb(const uint8_t key[MEPP_KEY_LEN], int encrypt,
	    const uint8_t *in, uint8_t *out, size_t len);

/*
 * Client side: build the request for TYPE (0 or 2). Returns its length, or
 * 0 with err filled (bad type, empty user, too long, crypto failure).
 */
size_t	mepp_request_build(const uint8_t r1[MEPP_NONCE_LEN],
	    const uint8_t r2[MEPP_NONCE_LEN], const char *secret, uint32_t type,
	    const char *user, const char *password, uint8_t *out, size_t outlen,
	    struct psync_err *err);
/* The same with the session key in either form (the above: WORD4). */
size_t	mepp_request_build_form(const uint8_t r1[MEPP_NONCE_LEN],
	    const uint8_t r2[MEPP_NONCE_LEN], const char *secret,
	    enum mepp_kdf_form form, uint32_t type, const char *user,
	    const char *password, uint8_t *out, size_t outlen,
	    struct psync_err *err);

/*
 * Listener side, first step: check the 12-byte header alone (a type that a
 * client may send, a total length within bounds and on a block boundary)
 * so that a reader knows how much more to read. The version word is not
 * checked here: like the published listener, psync lets the MAC, which
 * covers it, decide. Returns the total length, or 0 with *why set.
 */
size_t	mepp_request_header(const uint8_t *buf, size_t len, const char **why);

/*
 * Listener side: decode and verify a whole request with R1 and the shared
 * secret, with the session key of the 4-byte form and then of the 8-byte
 * one; req->form says which verified. Returns PSYNC_OK with req filled,
 * PSYNC_E_PROTOCOL for any framing, length, type, fill or MAC failure,
 * PSYNC_E_BAD_USER for an empty user name (with a valid MAC),
 * PSYNC_E_DECRYPT when the crypto library fails. On failure req is wiped
 * and req->why says what was wrong.
 *
 * As liberal as the published listener where the MAC proves the request:
 * the MAC is checked over the version word, the length and the type the
 * header carries, so any version passes that the MAC covers; the 1 to 8
 * fill bytes may hold anything; one extra all-zero block after them is
 * accepted. Everything the MAC does not cover is still refused: bytes
 * beyond the length field, a missing fill, a non-zero or second extra block.
 */
int	mepp_request_parse(const uint8_t r1[MEPP_NONCE_LEN], const char *secret,
	    const uint8_t *buf, size_t len, struct mepp_request *req);
void	mepp_request_wipe(struct mepp_request *req);

/* The 16-byte response; a psync listener writes type 00 00 00 01. */
void	mepp_response_build(int code, uint8_t out[MEPP_RESPONSE_LEN]);
/*
 * Read a response's result (the type is ignored: the published listener
 * writes it in host order). Returns the code, or -1 when the response is
 * malformed (size, version, length field, result beyond INT32_MAX).
 */
int	mepp_response_parse(const uint8_t *buf, size_t len);

/*
 * The legacy rules for a shared key: 16 to 21 characters, three of the four
 * classes (upper, lower, digit, other), none of '(', ')' and ','. Returns 0,
 * or -1 with a sentence in why.
 */
int	mepp_key_check(const char *key, char *why, size_t whylen);

#endif
