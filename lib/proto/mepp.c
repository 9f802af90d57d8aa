/*
 * MEPP codec (../shared/mepp/SPEC.md): key derivation, request and response
 * encoding and decoding, legacy key rules. The crypto comes from a private
 * OpenSSL library context holding the legacy and default providers, so that
 * loading the legacy algorithms for MEPP does not make them available to
 * psync's TLS code, which shares the process.
 *
 * Every buffer that held a password or key material is wiped before it goes
 * out of scope. Functions here never log: callers decide what to say, and
 * must never say a password.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "codes.h"
#include "mepp.h"
#include "util.h"

/* Room for SCHED || header || user || password of the largest request. */
#define MEPP_MAC_INPUT_MAX	(MEPP_SCHED_LEN + MEPP_HEADER_LEN + MEPP_MAX_REQUEST)

static pthread_once_t	 mepp_once = PTHREAD_ONCE_INIT;
static OSSL_LIB_CTX	*mepp_libctx;
static EVP_CIPHER	*mepp_des3;
static EVP_MD		*mepp_sha1;
static char		 mepp_init_error[PSYNC_ERR_LEN];

static void
mepp_openssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		str_copy(buf, "no detail from OpenSSL", len);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
}

/* Runs once; leaves mepp_init_error empty on success. */
static void
mepp_crypto_load(void)
{
	char why[256];

	mepp_libctx = OSSL_LIB_CTX_new();
	if (mepp_libctx == NULL) {
		mepp_openssl_reason(why, sizeof(why));
		snprintf(mepp_init_error, sizeof(mepp_init_error),
		    "MEPP: cannot create an OpenSSL library context: %s", why);
		return;
	}
	if (OSSL_PROVIDER_load(mepp_libctx, "legacy") == NULL) {
		mepp_openssl_reason(why, sizeof(why));
		snprintf(mepp_init_error, sizeof(mepp_init_error),
		    "MEPP: OpenSSL's legacy provider is missing or cannot be "
		    "loaded (%s); legacy MEPP peers need it: install OpenSSL's "
		    "legacy module (ossl-modules/legacy.so) or point "
		    "OPENSSL_MODULES at it", why);
		return;
	}
	if (OSSL_PROVIDER_load(mepp_libctx, "default") == NULL) {
		mepp_openssl_reason(why, sizeof(why));
		snprintf(mepp_init_error, sizeof(mepp_init_error),
		    "MEPP: OpenSSL's default provider cannot be loaded: %s", why);
		return;
	}
	mepp_des3 = EVP_CIPHER_fetch(mepp_libctx, "DES-EDE3-ECB", NULL);
	if (mepp_des3 == NULL) {
		mepp_openssl_reason(why, sizeof(why));
		snprintf(mepp_init_error, sizeof(mepp_init_error),
		    "MEPP: OpenSSL offers no DES-EDE3-ECB cipher: %s", why);
		return;
	}
	mepp_sha1 = EVP_MD_fetch(mepp_libctx, "SHA1", NULL);
	if (mepp_sha1 == NULL) {
		mepp_openssl_reason(why, sizeof(why));
		snprintf(mepp_init_error, sizeof(mepp_init_error),
		    "MEPP: OpenSSL offers no SHA-1 digest: %s", why);
		return;
	}
}

int
mepp_crypto_init(struct psync_err *err)
{
	int rc = -1;

	if (pthread_once(&mepp_once, mepp_crypto_load) != 0) {
		perr_set(err, PSYNC_E_DECRYPT,
		    "MEPP: cannot initialise the crypto library once");
		goto done;
	}
	if (mepp_init_error[0] != '\0') {
		perr_set(err, PSYNC_E_DECRYPT, "%s", mepp_init_error);
		goto done;
	}
	rc = 0;
done:
	return rc;
}

static void
put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t
get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

struct mepp_part {
	const void	*data;
	size_t		 len;
};

/* SHA-1 over the concatenation of parts, without copying them together. */
static int
mepp_sha1_parts(const struct mepp_part *parts, size_t n,
    uint8_t out[MEPP_SHA1_LEN])
{
	EVP_MD_CTX *ctx = NULL;
	unsigned int outlen = 0;
	size_t i;
	int rc = -1;

	if (mepp_crypto_init(NULL) == -1)
		goto done;
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		goto done;
	if (EVP_DigestInit_ex(ctx, mepp_sha1, NULL) != 1)
		goto done;
	for (i = 0; i < n; i++)
		if (EVP_DigestUpdate(ctx, parts[i].data, parts[i].len) != 1)
			goto done;
	if (EVP_DigestFinal_ex(ctx, out, &outlen) != 1 ||
	    outlen != MEPP_SHA1_LEN)
		goto done;
	rc = 0;
done:
	EVP_MD_CTX_free(ctx);
	return rc;
}

const char *
mepp_kdf_form_name(enum mepp_kdf_form form)
{
	return form == MEPP_KDF_WORD8 ? "8-byte" : "4-byte";
}

int
mepp_kdf(const uint8_t r1[MEPP_NONCE_LEN], const char *secret,
    const uint8_t r2[MEPP_NONCE_LEN], struct mepp_kdf *out)
{
	return mepp_kdf_as(r1, secret, r2, MEPP_KDF_WORD4, out);
}

int
mepp_kdf_as(const uint8_t r1[MEPP_NONCE_LEN], const char *secret,
    const uint8_t r2[MEPP_NONCE_LEN], enum mepp_kdf_form form,
    struct mepp_kdf *out)
{
	/*
	 * Two 4-byte zero words (SPEC.md); the 64-bit build of the legacy
	 * PAM module writes two 8-byte longs instead.
	 */
	static const uint8_t zeros[16];
	uint8_t pad[64];
	struct mepp_part parts[4] = {
		{ r1, MEPP_NONCE_LEN },
		{ secret, strlen(secret) },
		{ r2, MEPP_NONCE_LEN },
		{ zeros, form == MEPP_KDF_WORD8 ? 16 : 8 },
	};
	struct mepp_part one[1] = { { pad, sizeof(pad) } };
	size_t i;
	int rc = -1;

	if (mepp_sha1_parts(parts, 4, out->s) == -1)
		goto done;
	memset(pad, 0, sizeof(pad));
	memcpy(pad, out->s, MEPP_SHA1_LEN);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x36;
	if (mepp_sha1_parts(one, 1, out->ka) == -1)
		goto done;
	memset(pad, 0, sizeof(pad));
	memcpy(pad, out->s, MEPP_SHA1_LEN);
	for (i = 0; i < sizeof(pad); i++)
		pad[i] ^= 0x5c;
	if (mepp_sha1_parts(one, 1, out->kb) == -1)
		goto done;
	memcpy(out->key, out->ka, MEPP_SHA1_LEN);
	memcpy(out->key + MEPP_SHA1_LEN, out->kb, MEPP_KEY_LEN - MEPP_SHA1_LEN);
	rc = 0;
done:
	secure_wipe(pad, sizeof(pad));
	if (rc == -1)
		secure_wipe(out, sizeof(*out));
	return rc;
}

static size_t
mepp_mac_input_v(const uint8_t sched[MEPP_SCHED_LEN], uint32_t version,
    uint32_t total, uint32_t type, const char *user, const char *password,
    uint8_t *out, size_t outlen)
{
	size_t ulen = strlen(user), plen = strlen(password), n;

	n = MEPP_SCHED_LEN + MEPP_HEADER_LEN;
	if (ulen > outlen || plen > outlen || n > outlen - ulen - plen)
		return 0;
	memcpy(out, sched, MEPP_SCHED_LEN);
	put32(out + MEPP_SCHED_LEN, version);
	put32(out + MEPP_SCHED_LEN + 4, total);
	put32(out + MEPP_SCHED_LEN + 8, type);
	memcpy(out + n, user, ulen);
	memcpy(out + n + ulen, password, plen);
	return n + ulen + plen;
}

size_t
mepp_mac_input(const uint8_t sched[MEPP_SCHED_LEN], uint32_t total,
    uint32_t type, const char *user, const char *password, uint8_t *out,
    size_t outlen)
{
	return mepp_mac_input_v(sched, MEPP_VERSION, total, type, user,
	    password, out, outlen);
}

int
mepp_mac(const uint8_t key[MEPP_KEY_LEN], uint32_t total, uint32_t type,
    const char *user, const char *password, uint8_t mac[MEPP_MAC_LEN])
{
	return mepp_mac_version(key, MEPP_VERSION, total, type, user, password,
	    mac);
}

int
mepp_mac_version(const uint8_t key[MEPP_KEY_LEN], uint32_t version,
    uint32_t total, uint32_t type, const char *user, const char *password,
    uint8_t mac[MEPP_MAC_LEN])
{
	uint8_t sched[MEPP_SCHED_LEN];
	uint8_t buf[MEPP_MAC_INPUT_MAX];
	struct mepp_part part[1];
	size_t n;
	int rc = -1;

	mepp_key_schedule(key, sched);
	n = mepp_mac_input_v(sched, version, total, type, user, password, buf,
	    sizeof(buf));
	if (n == 0)
		goto done;
	part[0].data = buf;
	part[0].len = n;
	if (mepp_sha1_parts(part, 1, mac) == -1)
		goto done;
	rc = 0;
done:
	secure_wipe(sched, sizeof(sched));
	secure_wipe(buf, sizeof(buf));
	return rc;
}

/* Length of the padded plaintext for these field lengths. */
static size_t
mepp_padded_len(size_t ulen, size_t plen)
{
	size_t n = ulen + 1 + plen + 1 + MEPP_MAC_LEN;

	/* A full block of fill when n is already a multiple of 8. */
	return n + 8 - n % 8;
}

size_t
mepp_plaintext(const char *user, const char *password,
    const uint8_t mac[MEPP_MAC_LEN], uint8_t *out, size_t outlen)
{
	size_t ulen = strlen(user), plen = strlen(password), n;

	if (ulen > MEPP_MAX_REQUEST || plen > MEPP_MAX_REQUEST)
		return 0;
	n = mepp_padded_len(ulen, plen);
	if (n > outlen)
		return 0;
	memset(out, 0, n);
	memcpy(out, user, ulen);
	memcpy(out + ulen + 1, password, plen);
	memcpy(out + ulen + 1 + plen + 1, mac, MEPP_MAC_LEN);
	return n;
}

int
mepp_des3_ecb(const uint8_t key[MEPP_KEY_LEN], int encrypt, const uint8_t *in,
    uint8_t *out, size_t len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	int outl = 0, finl = 0, rc = -1;

	if (len % 8 != 0 || len > MEPP_MAX_REQUEST)
		goto done;
	if (mepp_crypto_init(NULL) == -1)
		goto done;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		goto done;
	if (EVP_CipherInit_ex2(ctx, mepp_des3, key, NULL, encrypt ? 1 : 0,
	    NULL) != 1)
		goto done;
	/* The plaintext carries its own zero fill: no PKCS#7 padding. */
	if (EVP_CIPHER_CTX_set_padding(ctx, 0) != 1)
		goto done;
	if (EVP_CipherUpdate(ctx, out, &outl, in, (int)len) != 1)
		goto done;
	if (EVP_CipherFinal_ex(ctx, out + outl, &finl) != 1)
		goto done;
	if ((size_t)outl + (size_t)finl != len)
		goto done;
	rc = 0;
done:
	EVP_CIPHER_CTX_free(ctx);
	return rc;
}

size_t
mepp_request_build(const uint8_t r1[MEPP_NONCE_LEN],
    const uint8_t r2[MEPP_NONCE_LEN], const char *secret, uint32_t type,
    const char *user, const char *password, uint8_t *out, size_t outlen,
    struct psync_err *err)
{
	return mepp_request_build_form(r1, r2, secret, MEPP_KDF_WORD4, type,
	    user, password, out, outlen, err);
}

size_t
mepp_request_build_form(const uint8_t r1[MEPP_NONCE_LEN],
    const uint8_t r2[MEPP_NONCE_LEN], const char *secret,
    enum mepp_kdf_form form, uint32_t type, const char *user,
    const char *password, uint8_t *out, size_t outlen, struct psync_err *err)
{
	struct mepp_kdf kdf;
	uint8_t mac[MEPP_MAC_LEN];
	uint8_t pt[MEPP_MAX_REQUEST];
	size_t ulen = strlen(user), plen = strlen(password), ptlen = 0;
	size_t total = 0, rc = 0;

	if (mepp_crypto_init(err) == -1)
		goto done;
	if (type != MEPP_TYPE_UPDATE && type != MEPP_TYPE_CHECK) {
		perr_set(err, PSYNC_E_PROTOCOL,
		    "MEPP request for user %s: type %u is not a request type",
		    user, type);
		goto done;
	}
	if (ulen == 0) {
		perr_set(err, PSYNC_E_BAD_USER,
		    "MEPP request: the user name is empty");
		goto done;
	}
	if (ulen > MEPP_MAX_REQUEST || plen > MEPP_MAX_REQUEST ||
	    (total = MEPP_HEADER_LEN + MEPP_NONCE_LEN +
	    mepp_padded_len(ulen, plen)) > MEPP_MAX_REQUEST) {
		perr_set(err, PSYNC_E_PROTOCOL,
		    "MEPP request for user %.64s: user and password too long "
		    "for the %d bytes a request may have", user,
		    MEPP_MAX_REQUEST);
		total = 0;
		goto done;
	}
	if (outlen < total) {
		perr_set(err, PSYNC_E_PROTOCOL,
		    "MEPP request for user %s: output buffer too small", user);
		goto done;
	}
	if (mepp_kdf_as(r1, secret, r2, form, &kdf) == -1 ||
	    mepp_mac(kdf.key, (uint32_t)total, type, user, password, mac) == -1) {
		perr_set(err, PSYNC_E_DECRYPT,
		    "MEPP request for user %s: SHA-1 failed", user);
		goto done;
	}
	ptlen = mepp_plaintext(user, password, mac, pt, sizeof(pt));
	if (ptlen != total - MEPP_HEADER_LEN - MEPP_NONCE_LEN) {
		perr_set(err, PSYNC_E_PROTOCOL,
		    "MEPP request for user %s: plaintext does not fit", user);
		goto done;
	}
	put32(out, MEPP_VERSION);
	put32(out + 4, (uint32_t)total);
	put32(out + 8, type);
	memcpy(out + MEPP_HEADER_LEN, r2, MEPP_NONCE_LEN);
	if (mepp_des3_ecb(kdf.key, 1, pt,
	    out + MEPP_HEADER_LEN + MEPP_NONCE_LEN, ptlen) == -1) {
		perr_set(err, PSYNC_E_DECRYPT,
		    "MEPP request for user %s: 3DES encryption failed", user);
		secure_wipe(out, total);
		goto done;
	}
	rc = total;
done:
	secure_wipe(&kdf, sizeof(kdf));
	secure_wipe(mac, sizeof(mac));
	secure_wipe(pt, sizeof(pt));
	return rc;
}

size_t
mepp_request_header(const uint8_t *buf, size_t len, const char **why)
{
	uint32_t total, type;

	if (len < MEPP_HEADER_LEN) {
		*why = "shorter than a request header";
		return 0;
	}
	/* buf[0..3], the version, is left to the MAC, which covers it. */
	total = get32(buf + 4);
	type = get32(buf + 8);
	if (type != MEPP_TYPE_UPDATE && type != MEPP_TYPE_CHECK) {
		*why = "message type is not a request";
		return 0;
	}
	if (total < MEPP_MIN_REQUEST || total > MEPP_MAX_REQUEST) {
		*why = "length field out of range";
		return 0;
	}
	if ((total - MEPP_HEADER_LEN - MEPP_NONCE_LEN) % 8 != 0) {
		*why = "ciphertext is not a whole number of 3DES blocks";
		return 0;
	}
	return total;
}

void
mepp_request_wipe(struct mepp_request *req)
{
	const char *why = req->why;

	secure_wipe(req, sizeof(*req));
	req->why = why;
}

/*
 * Decrypt and verify the request in buf (header already checked, total
 * bytes) with the session key of one form. Fills req; the caller wipes.
 */
static int
mepp_request_open(const uint8_t r1[MEPP_NONCE_LEN], const char *secret,
    enum mepp_kdf_form form, const uint8_t *buf, size_t total,
    struct mepp_request *req)
{
	struct mepp_kdf kdf;
	uint8_t pt[MEPP_MAX_REQUEST];
	uint8_t mac[MEPP_MAC_LEN];
	const uint8_t *nul;
	size_t ctlen, ulen, plen, used, fill, i;
	int rc = PSYNC_E_PROTOCOL;

	memset(&kdf, 0, sizeof(kdf));
	req->form = form;
	ctlen = total - MEPP_HEADER_LEN - MEPP_NONCE_LEN;
	if (mepp_kdf_as(r1, secret, req->r2, form, &kdf) == -1 ||
	    mepp_des3_ecb(kdf.key, 0, buf + MEPP_HEADER_LEN + MEPP_NONCE_LEN,
	    pt, ctlen) == -1) {
		req->why = "the crypto library failed";
		rc = PSYNC_E_DECRYPT;
		goto done;
	}

	/* user NUL password NUL MAC fill; a wrong key gives noise here. */
	if ((nul = memchr(pt, 0, ctlen)) == NULL) {
		req->why = "no end to the user name (wrong secret or altered data)";
		goto done;
	}
	ulen = (size_t)(nul - pt);
	if ((nul = memchr(pt + ulen + 1, 0, ctlen - ulen - 1)) == NULL) {
		req->why = "no end to the password (wrong secret or altered data)";
		goto done;
	}
	plen = (size_t)(nul - (pt + ulen + 1));
	used = ulen + 1 + plen + 1 + MEPP_MAC_LEN;
	/*
	 * The fill (1 to 8 bytes, up to a block boundary) is not covered by
	 * the MAC and the published listener never looks at it: any bytes
	 * pass. One more block is accepted when it is all zero; nothing else.
	 */
	fill = 8 - used % 8;
	if (used > ctlen || (ctlen - used != fill && ctlen - used != fill + 8)) {
		req->why = "wrong fill length (wrong secret or altered data)";
		goto done;
	}
	for (i = used + fill; i < ctlen; i++) {
		if (pt[i] != 0) {
			req->why = "the block after the fill is not zero (wrong "
			    "secret or altered data)";
			goto done;
		}
	}
	memcpy(req->user, pt, ulen);
	req->user[ulen] = '\0';
	memcpy(req->password, pt + ulen + 1, plen);
	req->password[plen] = '\0';

	/* The MAC covers the version, length and type of the header. */
	if (mepp_mac_version(kdf.key, req->version, req->total, req->type,
	    req->user, req->password, mac) == -1) {
		req->why = "the crypto library failed";
		rc = PSYNC_E_DECRYPT;
		goto done;
	}
	if (CRYPTO_memcmp(mac, pt + ulen + 1 + plen + 1, MEPP_MAC_LEN) != 0) {
		req->why = "MAC mismatch (wrong secret or altered data)";
		goto done;
	}
	if (ulen == 0) {
		req->why = "empty user name";
		rc = PSYNC_E_BAD_USER;
		goto done;
	}
	req->why = NULL;
	rc = PSYNC_OK;
done:
	secure_wipe(&kdf, sizeof(kdf));
	secure_wipe(pt, sizeof(pt));
	secure_wipe(mac, sizeof(mac));
	return rc;
}

int
mepp_request_parse(const uint8_t r1[MEPP_NONCE_LEN], const char *secret,
    const uint8_t *buf, size_t len, struct mepp_request *req)
{
	static const enum mepp_kdf_form forms[] = {
		MEPP_KDF_WORD4, MEPP_KDF_WORD8,
	};
	const char *first_why = NULL;
	size_t total, i;
	int rc = PSYNC_E_PROTOCOL;

	memset(req, 0, sizeof(*req));
	if ((total = mepp_request_header(buf, len, &req->why)) == 0)
		goto done;
	if (total != len) {
		req->why = "length field does not match the bytes received";
		goto done;
	}
	/* SPEC.md's form first; the 64-bit legacy PAM module's second. */
	for (i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		mepp_request_wipe(req);
		req->version = get32(buf);
		req->total = (uint32_t)total;
		req->type = get32(buf + 8);
		memcpy(req->r2, buf + MEPP_HEADER_LEN, MEPP_NONCE_LEN);
		rc = mepp_request_open(r1, secret, forms[i], buf, total, req);
		if (rc != PSYNC_E_PROTOCOL)
			break;
		if (first_why == NULL)
			first_why = req->why;
	}
	/* A request neither form verifies: say what the SPEC form found. */
	if (rc == PSYNC_E_PROTOCOL && first_why != NULL)
		req->why = first_why;
done:
	if (rc != PSYNC_OK)
		mepp_request_wipe(req);
	return rc;
}

void
mepp_response_build(int code, uint8_t out[MEPP_RESPONSE_LEN])
{
	put32(out, MEPP_VERSION);
	put32(out + 4, MEPP_RESPONSE_LEN);
	put32(out + 8, MEPP_TYPE_RESPONSE);
	put32(out + 12, (uint32_t)code);
}

int
mepp_response_parse(const uint8_t *buf, size_t len)
{
	uint32_t result;

	if (len != MEPP_RESPONSE_LEN)
		return -1;
	if (get32(buf) != MEPP_VERSION || get32(buf + 4) != MEPP_RESPONSE_LEN)
		return -1;
	/* buf + 8 is the type, written in host order by the published listener. */
	result = get32(buf + 12);
	if (result > 0x7fffffffU)
		return -1;
	return (int)result;
}

/* The character classes of the legacy key rule, one bit each. */
static int
mepp_char_class(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return 1;
	if (c >= 'a' && c <= 'z')
		return 2;
	if (c >= '0' && c <= '9')
		return 4;
	return 8;
}

int
mepp_key_check(const char *key, char *why, size_t whylen)
{
	static const char forbidden[] = "(),";
	const char *bad;
	long n;
	int classes = 0, count = 0, bit, rc = -1;
	size_t i;

	if (key == NULL) {
		snprintf(why, whylen, "the key is missing");
		goto done;
	}
	if ((n = utf8_length(key)) < 0) {
		snprintf(why, whylen, "the key is not valid UTF-8");
		goto done;
	}
	if (n < 16 || n > 21) {
		snprintf(why, whylen, "the key has %ld characters; legacy MEPP "
		    "peers need 16 to 21", n);
		goto done;
	}
	if ((bad = strpbrk(key, forbidden)) != NULL) {
		snprintf(why, whylen, "the key contains '%c', which the legacy "
		    "sso.conf syntax cannot hold (no '(', ')' or ',')", *bad);
		goto done;
	}
	for (i = 0; key[i] != '\0'; i++)
		classes |= mepp_char_class((unsigned char)key[i]);
	for (bit = 1; bit <= 8; bit <<= 1)
		if (classes & bit)
			count++;
	if (count < 3) {
		snprintf(why, whylen, "the key uses %d of the four character "
		    "classes (upper case, lower case, digits, others); legacy "
		    "MEPP peers need three", count);
		goto done;
	}
	rc = 0;
done:
	return rc;
}
