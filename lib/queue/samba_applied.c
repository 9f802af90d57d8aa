/*
 * The "applied from a peer" notes of lib/queue/samba_applied.h. A note lives
 * under "samba:" and the SHA-256 of the lower-cased account name (AD
 * names are case-insensitive, and a state key is short); its value is the
 * time and the password, sealed with the key name as associated data, so
 * a note cannot be moved to another account.
 */
#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "codes.h"
#include "samba_applied.h"
#include "store.h"
#include "util.h"

#define NOTE_PLAIN_MAX	(8 + STORE_SECRET_MAX)
#define NOTE_KEY_LEN	(6 + 32)

static int
note_key(const char *user, char out[NOTE_KEY_LEN + 1], struct psync_err *err)
{
	static const char hex[] = "0123456789abcdef";
	char lower[STORE_USER_MAX + 1];
	unsigned char md[32];
	unsigned int mdlen = 0;
	size_t i, n = strlen(user);

	if (n > STORE_USER_MAX) {
		perr_set(err, PSYNC_E_BAD_USER, "user name too long");
		return -1;
	}
	for (i = 0; i < n; i++)
		lower[i] = (char)tolower((unsigned char)user[i]);
	if (EVP_Digest(lower, n, md, &mdlen, EVP_sha256(), NULL) != 1) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "SHA-256 failed");
		return -1;
	}
	memcpy(out, "samba:", 6);
	for (i = 0; i < 16; i++) {
		out[6 + 2 * i] = hex[md[i] >> 4];
		out[6 + 2 * i + 1] = hex[md[i] & 0x0f];
	}
	out[NOTE_KEY_LEN] = '\0';
	return 0;
}

int
samba_applied_note(struct queue *q, const unsigned char key[SEAL_KEY_LEN],
    const char *user, const char *password, uint64_t now_ms,
    struct psync_err *err)
{
	unsigned char plain[NOTE_PLAIN_MAX], sealed[NOTE_PLAIN_MAX +
	    SEAL_OVERHEAD];
	char name[NOTE_KEY_LEN + 1];
	size_t plen = strlen(password);
	long slen;
	int i, rc = -1;

	if (plen > STORE_SECRET_MAX) {
		perr_set(err, PSYNC_E_BAD_PASSWORD, "password too long");
		goto done;
	}
	if (note_key(user, name, err) == -1)
		goto done;
	for (i = 0; i < 8; i++)
		plain[i] = (unsigned char)(now_ms >> (56 - 8 * i));
	memcpy(plain + 8, password, plen);
	slen = seal(key, name, plain, 8 + plen, sealed, err);
	if (slen < 0)
		goto done;
	rc = queue_state_set(q, name, sealed, (size_t)slen, err);
done:
	secure_wipe(plain, sizeof(plain));
	secure_wipe(sealed, sizeof(sealed));
	return rc;
}

int
samba_applied_forget(struct queue *q, const char *user, struct psync_err *err)
{
	char name[NOTE_KEY_LEN + 1];

	if (note_key(user, name, err) == -1)
		return -1;
	return queue_state_del(q, name, err);
}

int
samba_applied_match(struct queue *q, const unsigned char key[SEAL_KEY_LEN],
    const char *user, const char *secret, int is_hash, uint64_t now_ms,
    struct psync_err *err)
{
	unsigned char sealed[NOTE_PLAIN_MAX + SEAL_OVERHEAD];
	char plain[NOTE_PLAIN_MAX + 1];
	char name[NOTE_KEY_LEN + 1];
	uint64_t t = 0;
	size_t slen = 0, n;
	long pl;
	int i, rc = -1, got;

	memset(plain, 0, sizeof(plain));
	if (note_key(user, name, err) == -1)
		goto done;
	got = queue_state_get(q, name, sealed, sizeof(sealed), &slen, err);
	if (got != 1) {
		rc = got;
		goto done;
	}
	pl = unseal(key, name, sealed, slen, plain, err);
	if (pl < 8) {
		if (pl >= 0)
			perr_set(err, PSYNC_E_DECRYPT, "note for %s too short",
			    user);
		goto done;
	}
	for (i = 0; i < 8; i++)
		t = t << 8 | (unsigned char)plain[i];
	plain[pl] = '\0';
	rc = 0;
	if (now_ms > t && now_ms - t > SAMBA_APPLIED_TTL_MS) {
		/* Stale: it can no longer be the report of that apply. */
		(void)queue_state_del(q, name, err);
		goto done;
	}
	n = (size_t)pl - 8;
	if (is_hash)
		rc = store_hash_verify(plain + 8, secret) ? 1 : 0;
	else
		rc = strlen(secret) == n &&
		    CRYPTO_memcmp(plain + 8, secret, n) == 0 ? 1 : 0;
	if (rc == 1 && queue_state_del(q, name, err) == -1)
		rc = -1;
done:
	secure_wipe(plain, sizeof(plain));
	secure_wipe(sealed, sizeof(sealed));
	return rc;
}
