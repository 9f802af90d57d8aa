/*
 * The sealed spool file that psyncpwd.dll writes for each password change
 * and psync-agent.exe reads. Plain C with no library calls, so that the DLL
 * (built without a C runtime), the agent and the Linux fuzz target share
 * one encoder and one decoder.
 *
 * File:      "PSW1" | nonce (12) | plaintext length (4, BE) | ciphertext | tag (16)
 *            AES-256-GCM; the first 20 bytes are the additional data.
 * Plaintext: change id (16) | time ms since 1970 (8, BE) | RID (4, BE)
 *            | user length (2, BE) | user (UTF-8)
 *            | password length (4, BE) | password (UTF-8)
 */
#ifndef PSYNC_SPOOLREC_H
#define PSYNC_SPOOLREC_H

#include <stddef.h>
#include <stdint.h>

#define SPOOLREC_MAGIC		"PSW1"
#define SPOOLREC_NONCE_LEN	12
#define SPOOLREC_TAG_LEN	16
#define SPOOLREC_HEAD_LEN	(4 + SPOOLREC_NONCE_LEN + 4)	/* also the AAD */
#define SPOOLREC_ID_LEN		16
#define SPOOLREC_KEY_LEN	32
/* A UNICODE_STRING holds at most 32767 UTF-16 units: 98301 UTF-8 bytes. */
#define SPOOLREC_USER_MAX	65535u
#define SPOOLREC_PASS_MAX	(3u * 32767u)
#define SPOOLREC_FIXED_LEN	(SPOOLREC_ID_LEN + 8 + 4 + 2 + 4)
#define SPOOLREC_PLAIN_MAX	(SPOOLREC_FIXED_LEN + SPOOLREC_USER_MAX + SPOOLREC_PASS_MAX)
#define SPOOLREC_FILE_MAX	(SPOOLREC_HEAD_LEN + SPOOLREC_PLAIN_MAX + SPOOLREC_TAG_LEN)

struct spoolrec {
	uint8_t		 id[SPOOLREC_ID_LEN];
	uint64_t	 time_ms;
	uint32_t	 rid;
	const uint8_t	*user;		/* points into the parsed buffer */
	uint32_t	 user_len;
	const uint8_t	*pass;		/* points into the parsed buffer */
	uint32_t	 pass_len;
};

/* Bytes of plaintext for these lengths, or 0 when a length is too big. */
size_t	spoolrec_plain_len(uint32_t user_len, uint32_t pass_len);
/* Write the fixed fields and lengths of the plaintext into out (at least
   spoolrec_plain_len() bytes); returns the offsets where the caller puts
   the user and the password. */
void	spoolrec_put_header(uint8_t *out, const uint8_t id[SPOOLREC_ID_LEN],
	    uint64_t time_ms, uint32_t rid, uint32_t user_len, uint32_t pass_len,
	    size_t *user_off, size_t *pass_off);
/* The 20 header bytes of the file for a nonce and a plaintext length. */
void	spoolrec_put_file_head(uint8_t out[SPOOLREC_HEAD_LEN],
	    const uint8_t nonce[SPOOLREC_NONCE_LEN], uint32_t plain_len);
/*
 * Check the file header: magic, and that the stated plaintext length matches
 * the file's size. Returns the plaintext length, or -1.
 */
long	spoolrec_check_file_head(const uint8_t *file, size_t file_len);
/*
 * Parse a decrypted plaintext: every length must fit exactly, the user must
 * be 1..SPOOLREC_USER_MAX bytes. Fills rec with pointers into buf. 0 or -1.
 */
int	spoolrec_parse(const uint8_t *buf, size_t len, struct spoolrec *rec);

#endif
