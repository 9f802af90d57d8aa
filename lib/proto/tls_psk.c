/*
 * The external PSK as an OpenSSL session (tls_psk.h).
 */
#include "config.h"

#include "tls_psk.h"

/* TLS_AES_256_GCM_SHA384 */
static const unsigned char tls_psk_suite_id[2] = { 0x13, 0x02 };

const SSL_CIPHER *
tls_psk_cipher(SSL *ssl)
{
	return SSL_CIPHER_find(ssl, tls_psk_suite_id);
}

SSL_SESSION *
tls_psk_session(SSL *ssl, const unsigned char *key)
{
	const SSL_CIPHER *cipher = tls_psk_cipher(ssl);
	SSL_SESSION *sess;

	if (cipher == NULL || (sess = SSL_SESSION_new()) == NULL)
		return NULL;
	if (SSL_SESSION_set1_master_key(sess, key, TLS_PSK_KEY_LEN) != 1 ||
	    SSL_SESSION_set_cipher(sess, cipher) != 1 ||
	    SSL_SESSION_set_protocol_version(sess, TLS1_3_VERSION) != 1) {
		SSL_SESSION_free(sess);
		return NULL;
	}
	return sess;
}

int
tls_psk_digest_fits(SSL *ssl, const EVP_MD *md)
{
	const SSL_CIPHER *cipher = tls_psk_cipher(ssl);

	return cipher != NULL && (md == NULL || EVP_MD_get_type(md) ==
	    EVP_MD_get_type(SSL_CIPHER_get_handshake_digest(cipher)));
}
