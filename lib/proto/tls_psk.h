/*
 * The external pre-shared key of psync's TLS 1.3 (doc/protocol.md), as
 * OpenSSL takes it: shared by psyncd's wire layer and the Windows agent.
 */
#ifndef PSYNC_TLS_PSK_H
#define PSYNC_TLS_PSK_H

#include <openssl/ssl.h>

#define TLS_PSK_KEY_LEN		32
#define TLS_PSK_SUITE		"TLS_AES_256_GCM_SHA384"

/* The PSK's cipher suite in this connection; NULL when it is missing. */
const SSL_CIPHER *tls_psk_cipher(SSL *ssl);
/*
 * A TLS 1.3 session that carries key as the external PSK, for OpenSSL's
 * psk_use_session and psk_find_session callbacks; NULL on failure.
 */
SSL_SESSION *tls_psk_session(SSL *ssl, const unsigned char *key);
/*
 * In a psk_use_session callback: does a digest OpenSSL asks for (md; NULL:
 * any) fit the PSK's suite? After a HelloRetryRequest it asks again.
 */
int	tls_psk_digest_fits(SSL *ssl, const EVP_MD *md);

#endif
