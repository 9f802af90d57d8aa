/*
 * The MEPP MAC starts with the three DES key schedules in the layout of
 * SSLeay's DES_key_schedule, which the legacy implementation hashed as raw
 * memory. Only DES_set_key_unchecked() builds exactly that layout (its
 * subkeys are pre-rotated and split for the SPtrans tables, which is not the
 * FIPS 46 form), so this one file uses that API.
 *
 * OpenSSL 3 marks the DES_* functions deprecated and this tree turns
 * warnings into errors; the suppression below is limited to this file, which
 * does nothing else. No encryption happens here (that goes through EVP).
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "config.h"

#include <string.h>

#include <openssl/des.h>

#include "mepp.h"
#include "util.h"

void
mepp_key_schedule(const uint8_t key[MEPP_KEY_LEN], uint8_t sched[MEPP_SCHED_LEN])
{
	DES_key_schedule ks;
	DES_cblock block;
	uint8_t *p = sched;
	size_t k, r, w;
	uint32_t v;

	for (k = 0; k < 3; k++) {
		memcpy(block, key + 8 * k, sizeof(block));
		DES_set_key_unchecked(&block, &ks);
		for (r = 0; r < 16; r++) {
			for (w = 0; w < 2; w++) {
				v = (uint32_t)ks.ks[r].deslong[w];
				*p++ = (uint8_t)(v >> 24);
				*p++ = (uint8_t)(v >> 16);
				*p++ = (uint8_t)(v >> 8);
				*p++ = (uint8_t)v;
			}
		}
	}
	secure_wipe(&ks, sizeof(ks));
	secure_wipe(block, sizeof(block));
}
