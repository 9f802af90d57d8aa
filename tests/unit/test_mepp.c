/*
 * Unit tests for the MEPP codec (lib/proto/mepp.c, lib/proto/mepp_des.c): every value of
 * tests/data/mepp-vectors.txt (produced against the published UNIX-side
 * implementation) is reproduced byte for byte, and the listener-side decoder
 * refuses every malformed or altered request with code 5.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "codes.h"
#include "mepp.h"
#include "util.h"

#define VEC_MAX		256
#define VEC_BYTES	2048

struct vec {
	char	name[64];
	uint8_t	data[VEC_BYTES];
	size_t	len;
};

static struct vec	*vecs;
static size_t		 nvecs;

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Reads "name: hex" lines; '#' lines are comments. */
static int
vectors_load(void **state)
{
	const char *top = getenv("top_srcdir");
	char path[4096], line[8192], *colon, *p;
	FILE *f;
	struct vec *v;
	int hi, lo;

	(void)state;
	snprintf(path, sizeof(path), "%s/tests/data/mepp-vectors.txt",
	    top != NULL ? top : "..");
	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "cannot open %s\n", path);
		return -1;
	}
	vecs = calloc(VEC_MAX, sizeof(*vecs));
	if (vecs == NULL) {
		fclose(f);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (line[0] == '#' || (colon = strchr(line, ':')) == NULL)
			continue;
		if (nvecs == VEC_MAX)
			break;
		v = &vecs[nvecs];
		*colon = '\0';
		str_copy(v->name, line, sizeof(v->name));
		for (p = colon + 1; *p == ' '; p++)
			;
		while ((hi = hexval(p[0])) >= 0 && (lo = hexval(p[1])) >= 0 &&
		    v->len < VEC_BYTES) {
			v->data[v->len++] = (uint8_t)(hi << 4 | lo);
			p += 2;
		}
		nvecs++;
	}
	fclose(f);
	return nvecs > 0 ? 0 : -1;
}

static int
vectors_free(void **state)
{
	(void)state;
	free(vecs);
	return 0;
}

/* A field of a vector ("v1", "mac"), or NULL when the file lacks it. */
static const struct vec *
vec_find(const char *id, const char *field)
{
	char name[64];
	size_t i;

	snprintf(name, sizeof(name), "%s%s%s", id, id[0] ? "." : "", field);
	for (i = 0; i < nvecs; i++)
		if (strcmp(vecs[i].name, name) == 0)
			return &vecs[i];
	return NULL;
}

static const struct vec *
vec_get(const char *id, const char *field)
{
	const struct vec *v = vec_find(id, field);

	if (v == NULL)
		fail_msg("vector %s.%s missing from mepp-vectors.txt", id, field);
	return v;
}

/* A vector field as a NUL-terminated string (user, password, secret). */
static void
vec_str(const char *id, const char *field, char *out, size_t outlen)
{
	const struct vec *v = vec_get(id, field);

	assert_true(v->len < outlen);
	memcpy(out, v->data, v->len);
	out[v->len] = '\0';
}

static uint32_t
vec_u32(const char *id, const char *field)
{
	const struct vec *v = vec_get(id, field);

	assert_int_equal(v->len, 4);
	return (uint32_t)v->data[0] << 24 | (uint32_t)v->data[1] << 16 |
	    (uint32_t)v->data[2] << 8 | v->data[3];
}

static void
assert_bytes(const char *what, const uint8_t *got, size_t gotlen,
    const struct vec *want)
{
	size_t i;

	if (gotlen != want->len)
		fail_msg("%s: %zu bytes, expected %zu", what, gotlen, want->len);
	for (i = 0; i < gotlen; i++)
		if (got[i] != want->data[i])
			fail_msg("%s: byte %zu is %02x, expected %02x", what, i,
			    got[i], want->data[i]);
}

static const char *const all_ids[] = { "v1", "v2", "v3", "v4", "v5", "v6" };
/* The vectors that carry the whole key derivation. */
static const char *const kdf_ids[] = { "v1", "v2", "v3", "v4" };
/* The listener's secret: v5 and v6 share v1's key (the file omits it). */
static const char *const listener_id = "v1";

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static void
secret_for(const char *id, char *out, size_t outlen)
{
	vec_str(vec_find(id, "secret") != NULL ? id : listener_id, "secret",
	    out, outlen);
}

static void
test_kdf_reproduces_every_vector(void **state)
{
	struct mepp_kdf kdf;
	const uint8_t *r1 = vec_get("", "r1")->data, *r2 = vec_get("", "r2")->data;
	uint8_t input[256];
	char secret[128];
	size_t i, n, slen;

	(void)state;
	for (i = 0; i < NELEM(kdf_ids); i++) {
		secret_for(kdf_ids[i], secret, sizeof(secret));
		/* The layout we hash: R1 || secret || R2 || two 4-byte zero words. */
		slen = strlen(secret);
		memcpy(input, r1, 8);
		memcpy(input + 8, secret, slen);
		memcpy(input + 8 + slen, r2, 8);
		memset(input + 16 + slen, 0, 8);
		n = 24 + slen;
		assert_bytes("kdf_sha1_input", input, n,
		    vec_get(kdf_ids[i], "kdf_sha1_input"));

		assert_int_equal(mepp_kdf(r1, secret, r2, &kdf), 0);
		assert_bytes("kdf_sha1_output", kdf.s, sizeof(kdf.s),
		    vec_get(kdf_ids[i], "kdf_sha1_output"));
		assert_bytes("kdf_ipad_sha1", kdf.ka, sizeof(kdf.ka),
		    vec_get(kdf_ids[i], "kdf_ipad_sha1"));
		assert_bytes("kdf_opad_sha1", kdf.kb, sizeof(kdf.kb),
		    vec_get(kdf_ids[i], "kdf_opad_sha1"));
		assert_bytes("des3_key", kdf.key, sizeof(kdf.key),
		    vec_get(kdf_ids[i], "des3_key"));
	}
	/* v5 and v6 were made with the listener's secret. */
	secret_for("v5", secret, sizeof(secret));
	assert_int_equal(mepp_kdf(r1, secret, r2, &kdf), 0);
	assert_bytes("v5 des3_key", kdf.key, sizeof(kdf.key), vec_get("v5", "des3_key"));
	assert_bytes("v6 des3_key", kdf.key, sizeof(kdf.key), vec_get("v6", "des3_key"));
}

static void
test_key_schedule_is_the_ssleay_layout_big_endian(void **state)
{
	uint8_t sched[MEPP_SCHED_LEN];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(kdf_ids); i++) {
		mepp_key_schedule(vec_get(kdf_ids[i], "des3_key")->data, sched);
		assert_bytes("des3_key_schedule_be", sched, sizeof(sched),
		    vec_get(kdf_ids[i], "des3_key_schedule_be"));
	}
}

static void
test_mac_input_and_mac_reproduce_every_vector(void **state)
{
	uint8_t sched[MEPP_SCHED_LEN], buf[1024], mac[MEPP_MAC_LEN];
	char user[256], password[256];
	const struct vec *key, *req;
	uint32_t total, type;
	size_t i, n;

	(void)state;
	for (i = 0; i < NELEM(all_ids); i++) {
		vec_str(all_ids[i], "user", user, sizeof(user));
		vec_str(all_ids[i], "password", password, sizeof(password));
		key = vec_get(all_ids[i], "des3_key");
		req = vec_get(all_ids[i], "request");
		total = (uint32_t)req->len;
		type = vec_u32(all_ids[i], "type");
		if (vec_find(all_ids[i], "mac_input") != NULL) {
			mepp_key_schedule(key->data, sched);
			n = mepp_mac_input(sched, total, type, user, password,
			    buf, sizeof(buf));
			assert_bytes("mac_input", buf, n,
			    vec_get(all_ids[i], "mac_input"));
			/* Too small a buffer is refused, not overrun. */
			assert_int_equal(mepp_mac_input(sched, total, type, user,
			    password, buf, n - 1), 0);
		}
		assert_int_equal(mepp_mac(key->data, total, type, user, password,
		    mac), 0);
		assert_bytes("mac", mac, sizeof(mac), vec_get(all_ids[i], "mac"));
	}
}

static void
test_plaintext_and_ciphertext_reproduce_every_vector(void **state)
{
	uint8_t pt[256], ct[256], back[256];
	char user[256], password[256];
	const struct vec *key, *want;
	size_t i, n;

	(void)state;
	for (i = 0; i < NELEM(kdf_ids); i++) {
		vec_str(kdf_ids[i], "user", user, sizeof(user));
		vec_str(kdf_ids[i], "password", password, sizeof(password));
		key = vec_get(kdf_ids[i], "des3_key");
		n = mepp_plaintext(user, password,
		    vec_get(kdf_ids[i], "mac")->data, pt, sizeof(pt));
		assert_bytes("plaintext_padded", pt, n,
		    vec_get(kdf_ids[i], "plaintext_padded"));
		assert_int_equal(mepp_des3_ecb(key->data, 1, pt, ct, n), 0);
		want = vec_get(kdf_ids[i], "ciphertext");
		assert_bytes("ciphertext", ct, n, want);
		assert_int_equal(mepp_des3_ecb(key->data, 0, ct, back, n), 0);
		assert_memory_equal(back, pt, n);
		assert_int_equal(mepp_plaintext(user, password,
		    vec_get(kdf_ids[i], "mac")->data, pt, n - 1), 0);
	}
	/* Not a whole number of blocks. */
	assert_int_equal(mepp_des3_ecb(vec_get("v1", "des3_key")->data, 1, pt,
	    ct, 7), -1);
}

static void
test_request_build_reproduces_every_vector(void **state)
{
	const uint8_t *r1 = vec_get("", "r1")->data, *r2 = vec_get("", "r2")->data;
	uint8_t out[MEPP_MAX_REQUEST];
	char user[256], password[256], secret[128];
	struct psync_err err;
	size_t i, n;

	(void)state;
	for (i = 0; i < NELEM(all_ids); i++) {
		vec_str(all_ids[i], "user", user, sizeof(user));
		vec_str(all_ids[i], "password", password, sizeof(password));
		secret_for(all_ids[i], secret, sizeof(secret));
		n = mepp_request_build(r1, r2, secret, vec_u32(all_ids[i], "type"),
		    user, password, out, sizeof(out), &err);
		if (n == 0)
			fail_msg("%s: %s", all_ids[i], err.msg);
		assert_bytes("request", out, n, vec_get(all_ids[i], "request"));
	}
}

static void
test_listener_decodes_every_vector_request(void **state)
{
	const uint8_t *r1 = vec_get("", "r1")->data;
	struct mepp_request *req;
	const struct vec *rq;
	char user[256], password[256], secret[128];
	size_t i;
	int rc;

	(void)state;
	req = malloc(sizeof(*req));
	assert_non_null(req);
	vec_str(listener_id, "secret", secret, sizeof(secret));
	for (i = 0; i < NELEM(all_ids); i++) {
		rq = vec_get(all_ids[i], "request");
		rc = mepp_request_parse(r1, secret, rq->data, rq->len, req);
		if (strcmp(all_ids[i], "v3") == 0) {
			/* Made with the wrong secret: the MAC cannot verify. */
			assert_int_equal(rc, PSYNC_E_PROTOCOL);
			assert_non_null(req->why);
			assert_string_equal(req->user, "");
			assert_string_equal(req->password, "");
			continue;
		}
		if (rc != PSYNC_OK)
			fail_msg("%s: code %d (%s)", all_ids[i], rc, req->why);
		vec_str(all_ids[i], "user", user, sizeof(user));
		vec_str(all_ids[i], "password", password, sizeof(password));
		assert_string_equal(req->user, user);
		assert_string_equal(req->password, password);
		assert_int_equal(req->type, vec_u32(all_ids[i], "type"));
		assert_memory_equal(req->r2, vec_get("", "r2")->data, 8);
		mepp_request_wipe(req);
		assert_string_equal(req->password, "");
	}
	/* v3 decodes with the secret its client had. */
	vec_str("v3", "secret", secret, sizeof(secret));
	rq = vec_get("v3", "request");
	assert_int_equal(mepp_request_parse(r1, secret, rq->data, rq->len, req),
	    PSYNC_OK);
	assert_string_equal(req->user, "alice");
	mepp_request_wipe(req);
	free(req);
}

static void
test_type2_check_decodes_with_type2(void **state)
{
	const uint8_t *r1 = vec_get("", "r1")->data;
	const struct vec *rq = vec_get("v4", "request");
	struct mepp_request *req = malloc(sizeof(*req));
	char secret[128];

	(void)state;
	assert_non_null(req);
	vec_str("v4", "secret", secret, sizeof(secret));
	assert_int_equal(mepp_request_parse(r1, secret, rq->data, rq->len, req),
	    PSYNC_OK);
	assert_int_equal(req->type, MEPP_TYPE_CHECK);
	assert_string_equal(req->password, MEPP_CHECK_PASSWORD);
	mepp_request_wipe(req);
	free(req);
}

static void
test_response_parser_reads_published_listener_results(void **state)
{
	static const struct { const char *id; int code; } want[] = {
		{ "v1", 0 }, { "v2", 0 }, { "v3", 5 }, { "v4", 5 },
		{ "v5", 4 }, { "v6", 14 },
	};
	const struct vec *rs;
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(want); i++) {
		rs = vec_get(want[i].id, "response");
		/* The published listener writes the type in host order. */
		assert_int_equal(rs->data[8], 0x01);
		assert_int_equal(mepp_response_parse(rs->data, rs->len),
		    want[i].code);
	}
}

static void
test_response_builder_writes_big_endian_type(void **state)
{
	static const uint8_t want[MEPP_RESPONSE_LEN] = {
		0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 14,
	};
	uint8_t out[MEPP_RESPONSE_LEN];
	int code;

	(void)state;
	mepp_response_build(PSYNC_E_REFUSED, out);
	assert_memory_equal(out, want, sizeof(want));
	for (code = 0; code <= PSYNC_CODE_MAX; code++) {
		mepp_response_build(code, out);
		assert_int_equal(mepp_response_parse(out, sizeof(out)), code);
	}
}

static void
test_response_parser_refuses_malformed_responses(void **state)
{
	uint8_t buf[MEPP_RESPONSE_LEN + 1];

	(void)state;
	mepp_response_build(0, buf);
	assert_int_equal(mepp_response_parse(buf, 0), -1);
	assert_int_equal(mepp_response_parse(buf, 15), -1);
	assert_int_equal(mepp_response_parse(buf, 17), -1);
	buf[3] = 1;				/* version 1 */
	assert_int_equal(mepp_response_parse(buf, 16), -1);
	mepp_response_build(0, buf);
	buf[7] = 20;				/* length field lies */
	assert_int_equal(mepp_response_parse(buf, 16), -1);
	mepp_response_build(0, buf);
	buf[12] = 0x80;				/* negative as an int */
	assert_int_equal(mepp_response_parse(buf, 16), -1);
}

static void
test_every_tamper_the_mac_covers_gives_code_5(void **state)
{
	/* 0x02 turns type 0 into 2 and version 0 into 2: the MAC covers both. */
	static const uint8_t flips[] = { 0x01, 0x02, 0x80, 0xff };
	const uint8_t *r1 = vec_get("", "r1")->data;
	const struct vec *rq = vec_get("v1", "request");
	struct mepp_request *req = malloc(sizeof(*req));
	uint8_t buf[256];
	char secret[128];
	size_t i, f, fill_block;
	int rc;

	(void)state;
	assert_non_null(req);
	vec_str("v1", "secret", secret, sizeof(secret));
	/*
	 * v1's plaintext is alice NUL password NUL MAC (40 bytes) and 8 bytes
	 * of fill: its last ciphertext block holds nothing but fill, which no
	 * MAC covers and the published listener never reads. Changing it
	 * changes nothing that matters; every other byte is covered.
	 */
	fill_block = rq->len - 8;
	for (f = 0; f < NELEM(flips); f++) {
		for (i = 0; i < rq->len; i++) {
			memcpy(buf, rq->data, rq->len);
			buf[i] ^= flips[f];
			rc = mepp_request_parse(r1, secret, buf, rq->len, req);
			if (i >= fill_block) {
				if (rc != PSYNC_OK)
					fail_msg("fill byte %zu xor %02x: code "
					    "%d (%s), expected 0", i, flips[f],
					    rc, req->why);
				assert_string_equal(req->user, "alice");
				assert_string_equal(req->password,
				    "N3w-Passw0rd!");
				mepp_request_wipe(req);
				continue;
			}
			if (rc != PSYNC_E_PROTOCOL)
				fail_msg("byte %zu xor %02x: code %d, expected 5",
				    i, flips[f], rc);
			assert_non_null(req->why);
		}
	}
	/* A different R1 (a replay on another connection) fails as well. */
	memcpy(buf, r1, 8);
	buf[0] ^= 1;
	assert_int_equal(mepp_request_parse(buf, secret, rq->data, rq->len, req),
	    PSYNC_E_PROTOCOL);
	free(req);
}

static void
test_truncated_oversized_and_empty_requests_give_code_5(void **state)
{
	const uint8_t *r1 = vec_get("", "r1")->data;
	const struct vec *rq = vec_get("v1", "request");
	struct mepp_request *req = malloc(sizeof(*req));
	uint8_t *buf = calloc(1, MEPP_MAX_REQUEST + 64);
	char secret[128];
	size_t n;

	(void)state;
	assert_non_null(req);
	assert_non_null(buf);
	vec_str("v1", "secret", secret, sizeof(secret));
	assert_int_equal(mepp_request_parse(r1, secret, buf, 0, req),
	    PSYNC_E_PROTOCOL);
	for (n = 0; n < rq->len; n++)
		assert_int_equal(mepp_request_parse(r1, secret, rq->data, n, req),
		    PSYNC_E_PROTOCOL);
	/* One byte, one block more than the length field announces. */
	memcpy(buf, rq->data, rq->len);
	assert_int_equal(mepp_request_parse(r1, secret, buf, rq->len + 1, req),
	    PSYNC_E_PROTOCOL);
	assert_int_equal(mepp_request_parse(r1, secret, buf, rq->len + 8, req),
	    PSYNC_E_PROTOCOL);
	/* A header announcing more than the cap, with that many bytes. */
	buf[4] = 0x00; buf[5] = 0x00; buf[6] = 0x10; buf[7] = 0x08;	/* 4104 */
	assert_int_equal(mepp_request_parse(r1, secret, buf, 4104, req),
	    PSYNC_E_PROTOCOL);
	assert_string_equal(req->why, "length field out of range");
	free(buf);
	free(req);
}

static void
set_total(uint8_t *buf, uint32_t total)
{
	buf[4] = (uint8_t)(total >> 24);
	buf[5] = (uint8_t)(total >> 16);
	buf[6] = (uint8_t)(total >> 8);
	buf[7] = (uint8_t)total;
}

static void
test_header_checks_refuse_lying_lengths_and_types(void **state)
{
	const struct vec *rq = vec_get("v1", "request");
	uint8_t buf[MEPP_HEADER_LEN];
	const char *why = NULL;

	(void)state;
	memcpy(buf, rq->data, sizeof(buf));
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), rq->len);
	assert_int_equal(mepp_request_header(buf, 11, &why), 0);
	set_total(buf, 0);
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), 0);
	set_total(buf, MEPP_MIN_REQUEST - 8);
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), 0);
	set_total(buf, (uint32_t)rq->len + 1);		/* not whole blocks */
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), 0);
	assert_string_equal(why,
	    "ciphertext is not a whole number of 3DES blocks");
	set_total(buf, 0xfffffff4U);
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), 0);
	/* 4096 - 20 is no multiple of 8: 4092 is the largest request. */
	set_total(buf, 4092);
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), 4092);
	set_total(buf, 4100);
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), 0);
	memcpy(buf, rq->data, sizeof(buf));
	buf[11] = MEPP_TYPE_RESPONSE;
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), 0);
	buf[11] = 3;
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), 0);
	/* The version is the MAC's business, not the header check's. */
	memcpy(buf, rq->data, sizeof(buf));
	buf[3] = 1;
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), rq->len);
	buf[0] = 0xff;
	assert_int_equal(mepp_request_header(buf, sizeof(buf), &why), rq->len);
}

/* How forge() makes a request. */
struct forge_opts {
	enum mepp_kdf_form	form;
	uint32_t		version;	/* in the header */
	uint32_t		mac_version;	/* in the MAC input */
	uint32_t		type;
	size_t			fill;		/* bytes after the MAC */
	uint8_t			fillbyte;	/* of the first fill bytes */
	size_t			tail;		/* last bytes of the fill... */
	uint8_t			tailbyte;	/* ...set to this */
};

/*
 * Encrypt a hand-made plaintext with a MAC into a request, so that the
 * framing checks (not the MAC) must catch what is wrong with it.
 */
static size_t
forge_with(const char *secret, const char *user, const char *password,
    const struct forge_opts *o, uint8_t *out)
{
	const uint8_t *r1 = vec_get("", "r1")->data, *r2 = vec_get("", "r2")->data;
	struct mepp_kdf kdf;
	uint8_t pt[512], mac[MEPP_MAC_LEN];
	size_t ulen = strlen(user), plen = strlen(password), n, total;

	n = ulen + 1 + plen + 1 + MEPP_MAC_LEN + o->fill;
	assert_true(n % 8 == 0 && n <= sizeof(pt) && o->tail <= o->fill);
	total = MEPP_HEADER_LEN + MEPP_NONCE_LEN + n;
	assert_int_equal(mepp_kdf_as(r1, secret, r2, o->form, &kdf), 0);
	assert_int_equal(mepp_mac_version(kdf.key, o->mac_version,
	    (uint32_t)total, o->type, user, password, mac), 0);
	memset(pt, 0, sizeof(pt));
	memcpy(pt, user, ulen);
	memcpy(pt + ulen + 1, password, plen);
	memcpy(pt + ulen + 1 + plen + 1, mac, sizeof(mac));
	memset(pt + n - o->fill, o->fillbyte, o->fill);
	memset(pt + n - o->tail, o->tailbyte, o->tail);
	memset(out, 0, MEPP_HEADER_LEN);
	out[0] = (uint8_t)(o->version >> 24);
	out[1] = (uint8_t)(o->version >> 16);
	out[2] = (uint8_t)(o->version >> 8);
	out[3] = (uint8_t)o->version;
	set_total(out, (uint32_t)total);
	out[11] = (uint8_t)o->type;
	memcpy(out + MEPP_HEADER_LEN, r2, MEPP_NONCE_LEN);
	assert_int_equal(mepp_des3_ecb(kdf.key, 1, pt,
	    out + MEPP_HEADER_LEN + MEPP_NONCE_LEN, n), 0);
	return total;
}

static size_t
forge(const char *secret, const char *user, const char *password,
    size_t fill, uint8_t fillbyte, uint8_t *out)
{
	struct forge_opts o;

	memset(&o, 0, sizeof(o));
	o.fill = fill;
	o.fillbyte = fillbyte;
	return forge_with(secret, user, password, &o, out);
}

static void
test_fill_is_ignored_and_one_extra_zero_block_accepted(void **state)
{
	const uint8_t *r1 = vec_get("", "r1")->data;
	struct mepp_request *req = malloc(sizeof(*req));
	struct forge_opts o;
	uint8_t buf[512];
	char secret[128];
	size_t n;

	(void)state;
	assert_non_null(req);
	vec_str("v1", "secret", secret, sizeof(secret));
	/* "alice" "pw12" -> 5+1+4+1+20 = 31 bytes: fill of 1 is right. */
	n = forge(secret, "alice", "pw12", 1, 0, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req), PSYNC_OK);
	assert_string_equal(req->password, "pw12");
	mepp_request_wipe(req);
	/* Non-zero fill: the MAC does not cover it; the legacy listener
	   never reads it. */
	n = forge(secret, "alice", "pw12", 1, 0x41, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req), PSYNC_OK);
	assert_string_equal(req->password, "pw12");
	mepp_request_wipe(req);
	/* A full block of fill (32 bytes before it), not zero. */
	n = forge(secret, "alice", "pw123", 8, 0xa5, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req), PSYNC_OK);
	mepp_request_wipe(req);
	/* One extra all-zero block after the fill. */
	n = forge(secret, "alice", "pw12", 9, 0, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req), PSYNC_OK);
	assert_string_equal(req->user, "alice");
	assert_string_equal(req->password, "pw12");
	mepp_request_wipe(req);
	/* ... after fill bytes that are not zero. */
	memset(&o, 0, sizeof(o));
	o.fill = 16;
	o.fillbyte = 0x77;
	o.tail = 8;
	o.tailbyte = 0;
	n = forge_with(secret, "alice", "pw123", &o, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req), PSYNC_OK);
	mepp_request_wipe(req);

	/* What the MAC does not cover and no legacy client sends: refused. */
	o.fill = 9;		/* extra block not zero */
	o.fillbyte = 0;
	o.tail = 1;
	o.tailbyte = 0x01;
	n = forge_with(secret, "alice", "pw12", &o, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req),
	    PSYNC_E_PROTOCOL);
	assert_string_equal(req->why, "the block after the fill is not zero "
	    "(wrong secret or altered data)");
	/* Two extra zero blocks. */
	n = forge(secret, "alice", "pw12", 17, 0, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req),
	    PSYNC_E_PROTOCOL);
	assert_string_equal(req->why,
	    "wrong fill length (wrong secret or altered data)");
	/* No fill at all: 5+1+5+1+20 = 32 needs a full block of fill. */
	n = forge(secret, "alice", "pw123", 0, 0, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req),
	    PSYNC_E_PROTOCOL);
	/* An empty user name with a valid MAC is a bad user, not success. */
	n = forge(secret, "", "pw12", 6, 0, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req),
	    PSYNC_E_BAD_USER);
	free(req);
}

static void
test_version_word_is_left_to_the_mac(void **state)
{
	const uint8_t *r1 = vec_get("", "r1")->data;
	struct mepp_request *req = malloc(sizeof(*req));
	struct forge_opts o;
	uint8_t buf[512];
	char secret[128];
	size_t n;

	(void)state;
	assert_non_null(req);
	vec_str("v1", "secret", secret, sizeof(secret));
	memset(&o, 0, sizeof(o));
	o.fill = 1;
	/* A client that writes version 3 and MACs what it wrote. */
	o.version = o.mac_version = 3;
	n = forge_with(secret, "alice", "pw12", &o, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req), PSYNC_OK);
	assert_int_equal(req->version, 3);
	assert_string_equal(req->password, "pw12");
	mepp_request_wipe(req);
	o.version = o.mac_version = 0xffffffffU;
	n = forge_with(secret, "alice", "pw12", &o, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req), PSYNC_OK);
	mepp_request_wipe(req);
	/* A version changed on the way (MAC over 0, header says 3). */
	o.version = 3;
	o.mac_version = 0;
	n = forge_with(secret, "alice", "pw12", &o, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req),
	    PSYNC_E_PROTOCOL);
	assert_string_equal(req->why,
	    "MAC mismatch (wrong secret or altered data)");
	free(req);
}

/* SHA-1 with OpenSSL's default context: independent of lib/proto/mepp.c. */
static void
sha1_of(const void *a, size_t alen, const void *b, size_t blen,
    const void *c, size_t clen, const void *d, size_t dlen, uint8_t out[20])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;

	assert_non_null(ctx);
	assert_int_equal(EVP_DigestInit_ex(ctx, EVP_sha1(), NULL), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, a, alen), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, b, blen), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, c, clen), 1);
	assert_int_equal(EVP_DigestUpdate(ctx, d, dlen), 1);
	assert_int_equal(EVP_DigestFinal_ex(ctx, out, &n), 1);
	assert_int_equal(n, 20);
	EVP_MD_CTX_free(ctx);
}

/*
 * The session key as the 64-bit legacy PAM module derives it: two 8-byte
 * zero longs after R2. Written here from SPEC.md, not with lib/proto/mepp.c.
 */
static void
kdf_8byte_by_hand(const uint8_t *r1, const char *secret, const uint8_t *r2,
    uint8_t key[MEPP_KEY_LEN])
{
	static const uint8_t zeros[16];
	uint8_t s[20], pad[64], ka[20], kb[20];
	size_t i;

	sha1_of(r1, 8, secret, strlen(secret), r2, 8, zeros, 16, s);
	memset(pad, 0, sizeof(pad));
	memcpy(pad, s, 20);
	for (i = 0; i < 64; i++)
		pad[i] ^= 0x36;
	sha1_of(pad, 64, "", 0, "", 0, "", 0, ka);
	memset(pad, 0, sizeof(pad));
	memcpy(pad, s, 20);
	for (i = 0; i < 64; i++)
		pad[i] ^= 0x5c;
	sha1_of(pad, 64, "", 0, "", 0, "", 0, kb);
	memcpy(key, ka, 20);
	memcpy(key + 20, kb, 4);
}

/* A request of the 64-bit legacy PAM module, built by hand. */
static size_t
request_8byte_by_hand(const char *secret, uint32_t type, const char *user,
    const char *password, uint8_t *out)
{
	const uint8_t *r1 = vec_get("", "r1")->data, *r2 = vec_get("", "r2")->data;
	uint8_t key[MEPP_KEY_LEN], mac[MEPP_MAC_LEN], pt[512];
	size_t n, total;

	kdf_8byte_by_hand(r1, secret, r2, key);
	n = strlen(user) + 1 + strlen(password) + 1 + MEPP_MAC_LEN;
	n += 8 - n % 8;
	total = MEPP_HEADER_LEN + MEPP_NONCE_LEN + n;
	assert_int_equal(mepp_mac(key, (uint32_t)total, type, user, password,
	    mac), 0);
	assert_int_equal(mepp_plaintext(user, password, mac, pt, sizeof(pt)),
	    n);
	memset(out, 0, MEPP_HEADER_LEN);
	set_total(out, (uint32_t)total);
	out[11] = (uint8_t)type;
	memcpy(out + MEPP_HEADER_LEN, r2, MEPP_NONCE_LEN);
	assert_int_equal(mepp_des3_ecb(key, 1, pt, out + MEPP_HEADER_LEN +
	    MEPP_NONCE_LEN, n), 0);
	return total;
}

static void
test_listener_accepts_both_key_forms_and_says_which(void **state)
{
	const uint8_t *r1 = vec_get("", "r1")->data, *r2 = vec_get("", "r2")->data;
	const struct vec *rq = vec_get("v1", "request");
	struct mepp_request *req = malloc(sizeof(*req));
	struct mepp_kdf kdf;
	struct psync_err err;
	uint8_t buf[512], built[512], key[MEPP_KEY_LEN];
	char secret[128], wrong[128];
	size_t n, m;

	(void)state;
	assert_non_null(req);
	vec_str("v1", "secret", secret, sizeof(secret));
	vec_str("v3", "secret", wrong, sizeof(wrong));

	/* The library's 8-byte form is the one written by hand here. */
	kdf_8byte_by_hand(r1, secret, r2, key);
	assert_int_equal(mepp_kdf_as(r1, secret, r2, MEPP_KDF_WORD8, &kdf), 0);
	assert_memory_equal(kdf.key, key, sizeof(key));
	/* ...and differs from the SPEC form (vector v1). */
	assert_int_equal(mepp_kdf_as(r1, secret, r2, MEPP_KDF_WORD4, &kdf), 0);
	assert_bytes("4-byte form key", kdf.key, sizeof(kdf.key),
	    vec_get("v1", "des3_key"));
	assert_memory_not_equal(kdf.key, key, sizeof(key));

	/* SPEC form: the vector; reported as such. */
	assert_int_equal(mepp_request_parse(r1, secret, rq->data, rq->len, req),
	    PSYNC_OK);
	assert_int_equal(req->form, MEPP_KDF_WORD4);
	mepp_request_wipe(req);

	/* 8-byte form, change and check: accepted, reported. */
	n = request_8byte_by_hand(secret, MEPP_TYPE_UPDATE, "alice",
	    "N3w-Passw0rd!", buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req), PSYNC_OK);
	assert_int_equal(req->form, MEPP_KDF_WORD8);
	assert_string_equal(req->user, "alice");
	assert_string_equal(req->password, "N3w-Passw0rd!");
	assert_int_equal(req->type, MEPP_TYPE_UPDATE);
	mepp_request_wipe(req);
	/* The client side builds the same bytes in the 8-byte form. */
	m = mepp_request_build_form(r1, r2, secret, MEPP_KDF_WORD8,
	    MEPP_TYPE_UPDATE, "alice", "N3w-Passw0rd!", built, sizeof(built),
	    &err);
	assert_int_equal(m, n);
	assert_memory_equal(built, buf, n);
	/* ...and not in the default one. */
	m = mepp_request_build(r1, r2, secret, MEPP_TYPE_UPDATE, "alice",
	    "N3w-Passw0rd!", built, sizeof(built), &err);
	assert_bytes("4-byte form request", built, m, rq);

	n = request_8byte_by_hand(secret, MEPP_TYPE_CHECK, "bob",
	    MEPP_CHECK_PASSWORD, buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req), PSYNC_OK);
	assert_int_equal(req->form, MEPP_KDF_WORD8);
	assert_int_equal(req->type, MEPP_TYPE_CHECK);
	mepp_request_wipe(req);

	/* A wrong secret fails in both forms, with the SPEC form's reason. */
	n = request_8byte_by_hand(wrong, MEPP_TYPE_UPDATE, "alice", "pw", buf);
	assert_int_equal(mepp_request_parse(r1, secret, buf, n, req),
	    PSYNC_E_PROTOCOL);
	assert_non_null(req->why);
	assert_string_equal(req->user, "");
	rq = vec_get("v3", "request");
	assert_int_equal(mepp_request_parse(r1, secret, rq->data, rq->len, req),
	    PSYNC_E_PROTOCOL);
	assert_string_equal(mepp_kdf_form_name(MEPP_KDF_WORD4), "4-byte");
	assert_string_equal(mepp_kdf_form_name(MEPP_KDF_WORD8), "8-byte");
	free(req);
}

static void
test_round_trip_of_random_nonces_and_field_lengths(void **state)
{
	static const char *const passwords[] = {
		"", "x", "1234567", "12345678", "P\xc3\xa4ss\xe2\x82\xac 1",
		"a rather long pass phrase with spaces, 41+",
	};
	uint8_t r1[8], r2[8], out[MEPP_MAX_REQUEST];
	struct mepp_request *req = malloc(sizeof(*req));
	struct psync_err err;
	char *big;
	size_t i, n;

	(void)state;
	assert_non_null(req);
	for (i = 0; i < NELEM(passwords); i++) {
		assert_int_equal(RAND_bytes(r1, sizeof(r1)), 1);
		assert_int_equal(RAND_bytes(r2, sizeof(r2)), 1);
		n = mepp_request_build(r1, r2, "Sec(ret)-Key-0001", MEPP_TYPE_UPDATE,
		    "bob", passwords[i], out, sizeof(out), &err);
		assert_true(n > 0);
		assert_int_equal(n % 8, (MEPP_HEADER_LEN + MEPP_NONCE_LEN) % 8);
		assert_int_equal(mepp_request_parse(r1, "Sec(ret)-Key-0001", out,
		    n, req), PSYNC_OK);
		assert_string_equal(req->user, "bob");
		assert_string_equal(req->password, passwords[i]);
		mepp_request_wipe(req);
	}
	/*
	 * The largest request (4092 bytes: header, R2, 509 blocks) holds
	 * "bob", a 4046-byte password, two NULs, the MAC and one fill byte.
	 */
	big = malloc(MEPP_MAX_REQUEST);
	assert_non_null(big);
	n = 4092 - MEPP_HEADER_LEN - MEPP_NONCE_LEN - 1 - (3 + 1 + 1 + MEPP_MAC_LEN);
	assert_int_equal(n, 4046);
	memset(big, 'p', n);
	big[n] = '\0';
	assert_int_equal(mepp_request_build(r1, r2, "k", MEPP_TYPE_UPDATE, "bob",
	    big, out, sizeof(out), &err), 4092);
	assert_int_equal(mepp_request_parse(r1, "k", out, 4092, req), PSYNC_OK);
	assert_int_equal(strlen(req->password), n);
	mepp_request_wipe(req);
	big[n] = 'p';
	big[n + 1] = '\0';
	assert_int_equal(mepp_request_build(r1, r2, "k", MEPP_TYPE_UPDATE, "bob",
	    big, out, sizeof(out), &err), 0);
	assert_non_null(strstr(err.msg, "too long"));
	secure_wipe(big, MEPP_MAX_REQUEST);
	free(big);
	free(req);
}

static void
test_request_build_refuses_bad_type_and_empty_user(void **state)
{
	uint8_t r[8] = { 0 }, out[MEPP_MAX_REQUEST];
	struct psync_err err;

	(void)state;
	assert_int_equal(mepp_request_build(r, r, "k", MEPP_TYPE_RESPONSE, "bob",
	    "pw", out, sizeof(out), &err), 0);
	assert_non_null(strstr(err.msg, "not a request type"));
	assert_int_equal(mepp_request_build(r, r, "k", 7, "bob", "pw", out,
	    sizeof(out), &err), 0);
	assert_int_equal(mepp_request_build(r, r, "k", MEPP_TYPE_UPDATE, "",
	    "pw", out, sizeof(out), &err), 0);
	assert_int_equal(err.code, PSYNC_E_BAD_USER);
	assert_int_equal(mepp_request_build(r, r, "k", MEPP_TYPE_UPDATE, "bob",
	    "pw", out, 40, &err), 0);
}

static void
test_key_check_accepts_legacy_keys(void **state)
{
	static const char *const good[] = {
		"ABCDZ#efgh$12345",		/* the vectors' key, 16 */
		"abcdefghijklmnop1A",		/* lower, digit, upper */
		"abcdefghijklmnopq1!",		/* lower, digit, other */
		"Abcdefghijklmnopqrs1x",	/* 21 */
		"K\xc3\xa4se-kuchen-2024",	/* UTF-8 counts characters */
	};
	char why[256];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(good); i++) {
		if (mepp_key_check(good[i], why, sizeof(why)) != 0)
			fail_msg("key %zu refused: %s", i, why);
	}
}

static void
test_key_check_names_each_broken_rule(void **state)
{
	static const struct {
		const char	*key;
		const char	*says;
	} bad[] = {
		{ "Abcdef-12345678",		"15 characters" },
		{ "Abcdefghijklmnopqrs1xy",	"22 characters" },
		{ "",				"0 characters" },
		{ "Abcdefgh(12345678",		"'('" },
		{ "Abcdefgh)12345678",		"')'" },
		{ "Abcdefgh,12345678",		"','" },
		{ "abcdefghijklmnopq",		"1 of the four" },
		{ "abcdefghijklmnop12",		"2 of the four" },
		{ "ABCDEFGHIJKLMNOPQ-",		"2 of the four" },
		{ "Abcdefghijk\xc3(123456",	"not valid UTF-8" },
	};
	char why[256];
	size_t i;

	(void)state;
	for (i = 0; i < NELEM(bad); i++) {
		why[0] = '\0';
		if (mepp_key_check(bad[i].key, why, sizeof(why)) != -1)
			fail_msg("key %zu accepted", i);
		if (strstr(why, bad[i].says) == NULL)
			fail_msg("key %zu: \"%s\" does not say \"%s\"", i, why,
			    bad[i].says);
	}
	assert_int_equal(mepp_key_check(NULL, why, sizeof(why)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kdf_reproduces_every_vector),
		cmocka_unit_test(test_key_schedule_is_the_ssleay_layout_big_endian),
		cmocka_unit_test(test_mac_input_and_mac_reproduce_every_vector),
		cmocka_unit_test(test_plaintext_and_ciphertext_reproduce_every_vector),
		cmocka_unit_test(test_request_build_reproduces_every_vector),
		cmocka_unit_test(test_listener_decodes_every_vector_request),
		cmocka_unit_test(test_type2_check_decodes_with_type2),
		cmocka_unit_test(test_response_parser_reads_published_listener_results),
		cmocka_unit_test(test_response_builder_writes_big_endian_type),
		cmocka_unit_test(test_response_parser_refuses_malformed_responses),
		cmocka_unit_test(test_every_tamper_the_mac_covers_gives_code_5),
		cmocka_unit_test(test_truncated_oversized_and_empty_requests_give_code_5),
		cmocka_unit_test(test_header_checks_refuse_lying_lengths_and_types),
		cmocka_unit_test(test_fill_is_ignored_and_one_extra_zero_block_accepted),
		cmocka_unit_test(test_version_word_is_left_to_the_mac),
		cmocka_unit_test(test_listener_accepts_both_key_forms_and_says_which),
		cmocka_unit_test(test_round_trip_of_random_nonces_and_field_lengths),
		cmocka_unit_test(test_request_build_refuses_bad_type_and_empty_user),
		cmocka_unit_test(test_key_check_accepts_legacy_keys),
		cmocka_unit_test(test_key_check_names_each_broken_rule),
	};
	struct psync_err err;

	if (mepp_crypto_init(&err) == -1) {
		fprintf(stderr, "%s\n", err.msg);
		return 1;
	}
	return cmocka_run_group_tests(tests, vectors_load, vectors_free);
}
