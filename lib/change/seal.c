/* AES-256-GCM sealing of secrets at rest, and the host key file. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "codes.h"
#include "seal.h"
#include "keyfile.h"

#define SEAL_VERSION	1
#define SEAL_NONCE_LEN	12
#define SEAL_TAG_LEN	16

int
seal_key_load(const char *path, int create, unsigned char key[SEAL_KEY_LEN],
    struct psync_err *err)
{
	if (keyfile_read(path, key, err) == 0)
		return 0;
	if (!create || err->code != PSYNC_E_FILE_NOT_FOUND)
		return -1;
	if (keyfile_generate(key, err) == -1)
		return -1;
	if (keyfile_write(path, key, false, err) == 0)
		return 0;
	/* Someone else created it first: theirs is the key. */
	secure_wipe(key, SEAL_KEY_LEN);
	return keyfile_read(path, key, err);
}

long
seal(const unsigned char key[SEAL_KEY_LEN], const char *aad, const void *plain,
    size_t len, unsigned char *out, struct psync_err *err)
{
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char *nonce = out + 1, *ct = out + 1 + SEAL_NONCE_LEN;
	int n, fin;
	long rc = -1;

	if (len > (size_t)(1 << 30)) {
		perr_set(err, PSYNC_E_WRITE, "seal: %zu bytes is too much", len);
		return -1;
	}
	out[0] = SEAL_VERSION;
	if (RAND_bytes(nonce, SEAL_NONCE_LEN) != 1 ||
	    (ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, (const unsigned char *)aad,
	    (int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(ctx, ct, &n, plain, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, ct + n, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN,
	    ct + n + fin) != 1) {
		perr_set(err, PSYNC_E_WRITE, "seal: AES-256-GCM encryption failed");
		goto done;
	}
	rc = (long)(1 + SEAL_NONCE_LEN + (size_t)n + (size_t)fin + SEAL_TAG_LEN);
done:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

long
unseal(const unsigned char key[SEAL_KEY_LEN], const char *aad,
    const unsigned char *in, size_t len, void *out, struct psync_err *err)
{
	EVP_CIPHER_CTX *ctx = NULL;
	const unsigned char *nonce = in + 1, *ct = in + 1 + SEAL_NONCE_LEN;
	unsigned char tag[SEAL_TAG_LEN];
	size_t ctlen;
	int n, fin;
	long rc = -1;

	if (len < SEAL_OVERHEAD || in[0] != SEAL_VERSION) {
		perr_set(err, PSYNC_E_DECRYPT, "sealed data is truncated or of an "
		    "unknown version");
		return -1;
	}
	ctlen = len - SEAL_OVERHEAD;
	memcpy(tag, in + len - SEAL_TAG_LEN, SEAL_TAG_LEN);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad,
	    (int)strlen(aad)) != 1 ||
	    EVP_DecryptUpdate(ctx, out, &n, ct, (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, (unsigned char *)out + n, &fin) != 1) {
		secure_wipe(out, ctlen);
		perr_set(err, PSYNC_E_DECRYPT, "sealed data does not open with "
		    "the host key (wrong key, or tampered or damaged data)");
		goto done;
	}
	rc = (long)n + fin;
done:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}
