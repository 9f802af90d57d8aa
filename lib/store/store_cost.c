/*
 * The cost of a crypt hash, read without running it. A hash from a peer
 * carries its own cost parameters, and running crypt on it (to store it and
 * later to verify a password against it) costs whatever they say: a
 * "$2b$31$" or "$6$rounds=999999999$" hash takes hours, a yescrypt one can
 * ask for gigabytes. This file is the one place that reads those
 * parameters from untrusted bytes (fuzzed by tests/fuzz/fuzz_hash_cost), for
 * every form libxcrypt knows, and refuses a hash whose cost is above the
 * store's limits (store options hash-max-bcrypt-cost, hash-max-rounds,
 * hash-max-yescrypt-cost). Forms with a fixed, small cost (DES, MD5, NT)
 * pass here; whether the store takes them is store_hash_check()'s say.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "codes.h"
#include "store.h"
#include "util.h"

static const char itoa64[] =
	"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* Value of one crypt base-64 character; 64 when it is not one. */
static unsigned int
a64(char c)
{
	const char *p;

	if (c == '\0')
		return 64;
	p = strchr(itoa64, c);
	return p != NULL ? (unsigned int)(p - itoa64) : 64;
}

/*
 * yescrypt's variable-length number: the first character says how many
 * follow. Returns the characters used, 0 when malformed or too large.
 */
static size_t
dec_var(const char *s, uint64_t min, uint64_t *out)
{
	unsigned int start = 0, end = 47, chars = 1, bits = 0, c;
	uint64_t v;
	size_t used = 1;

	c = a64(s[0]);
	if (c > 63)
		return 0;
	v = min;
	while (c > end) {
		v += (uint64_t)(end + 1 - start) << bits;
		start = end + 1;
		end = start + (62 - end) / 2;
		chars++;
		bits += 6;
	}
	v += (uint64_t)(c - start) << bits;
	while (--chars > 0) {
		c = a64(s[used]);
		if (c > 63)
			return 0;
		bits -= 6;
		v += (uint64_t)c << bits;
		used++;
	}
	if (v > UINT32_MAX)
		return 0;
	*out = v;
	return used;
}

/* scrypt's fixed 30-bit numbers: five characters, least significant first. */
static bool
dec_fixed30(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned int i, c;

	for (i = 0; i < 5; i++) {
		c = a64(s[i]);
		if (c > 63)
			return false;
		v |= (uint64_t)c << (6 * i);
	}
	*out = v;
	return true;
}

/* a * b, saturating. */
static uint64_t
mul_sat(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

/* Decimal digits up to end (one of ends), at most 10; 0 when malformed. */
static size_t
dec_digits(const char *s, const char *ends, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;

	while (s[n] >= '0' && s[n] <= '9') {
		if (n == 10)
			return 0;
		v = v * 10 + (uint64_t)(s[n] - '0');
		n++;
	}
	if (n == 0 || s[n] == '\0' || strchr(ends, s[n]) == NULL)
		return 0;
	*out = v;
	return n;
}

static const char *
cost_malformed(struct store_hash_cost *c, const char *what)
{
	c->kind = STORE_COST_MALFORMED;
	return what;
}

/* $y$, $gy$, $sm3y$: flavor, N, r, then optional p, t, g, NROM. */
static const char *
cost_yescrypt(const char *p, struct store_hash_cost *c)
{
	uint64_t flavor, nlog2, r, have, par = 1, t = 0, g = 0, nrom;
	size_t k;

	if ((k = dec_var(p, 0, &flavor)) == 0)
		return cost_malformed(c, "bad yescrypt flavor");
	p += k;
	if ((k = dec_var(p, 1, &nlog2)) == 0 || nlog2 > 63)
		return cost_malformed(c, "bad yescrypt N");
	p += k;
	if ((k = dec_var(p, 1, &r)) == 0)
		return cost_malformed(c, "bad yescrypt r");
	p += k;
	if (*p != '$') {
		if ((k = dec_var(p, 1, &have)) == 0 || have > 15)
			return cost_malformed(c, "bad yescrypt parameter set");
		p += k;
		if ((have & 1) && (k = dec_var(p, 2, &par)) == 0)
			return cost_malformed(c, "bad yescrypt p");
		p += (have & 1) ? k : 0;
		if ((have & 2) && (k = dec_var(p, 1, &t)) == 0)
			return cost_malformed(c, "bad yescrypt t");
		p += (have & 2) ? k : 0;
		if ((have & 4) && (k = dec_var(p, 1, &g)) == 0)
			return cost_malformed(c, "bad yescrypt g");
		p += (have & 4) ? k : 0;
		if ((have & 8) && ((k = dec_var(p, 1, &nrom)) == 0 ||
		    nrom > 63))
			return cost_malformed(c, "bad yescrypt NROM");
		p += (have & 8) ? k : 0;
		/* Upgrades and a ROM: never made by libxcrypt, not costed. */
		if (g != 0 || (have & 8))
			return cost_malformed(c, "yescrypt upgrades or ROM "
			    "parameters are not accepted");
	}
	if (*p != '$')
		return cost_malformed(c, "bad yescrypt parameters");
	c->kind = STORE_COST_MEMORY;
	c->n_log2 = (unsigned int)nlog2;
	c->r = r;
	c->p = par;
	c->t = t;
	/* 128 bytes per r per N, for each of p, t + 1 times over. */
	c->value = mul_sat(mul_sat(mul_sat(128 * r, (uint64_t)1 << nlog2),
	    par), t + 1);
	return NULL;
}

/* $7$: one character N_log2, five r, five p. */
static const char *
cost_scrypt(const char *p, struct store_hash_cost *c)
{
	uint64_t r, par;
	unsigned int nlog2 = a64(p[0]);

	if (nlog2 < 1 || nlog2 > 63)
		return cost_malformed(c, "bad scrypt N");
	if (!dec_fixed30(p + 1, &r) || !dec_fixed30(p + 6, &par) ||
	    r == 0 || par == 0)
		return cost_malformed(c, "bad scrypt r or p");
	c->kind = STORE_COST_MEMORY;
	c->n_log2 = nlog2;
	c->r = r;
	c->p = par;
	c->t = 0;
	c->value = mul_sat(mul_sat(128 * r, (uint64_t)1 << nlog2), par);
	return NULL;
}

static const char *
cost_bcrypt(const char *p, struct store_hash_cost *c)
{
	if (p[0] < '0' || p[0] > '9' || p[1] < '0' || p[1] > '9' ||
	    p[2] != '$')
		return cost_malformed(c, "bad bcrypt cost");
	c->kind = STORE_COST_LOG2;
	c->value = (uint64_t)((p[0] - '0') * 10 + (p[1] - '0'));
	return NULL;
}

/* $5$, $6$: "rounds=N$" or nothing (5000). */
static const char *
cost_sha(const char *p, struct store_hash_cost *c)
{
	uint64_t v = 5000;

	if (strncmp(p, "rounds=", 7) == 0 &&
	    dec_digits(p + 7, "$", &v) == 0)
		return cost_malformed(c, "bad rounds");
	c->kind = STORE_COST_ROUNDS;
	c->value = v;
	return NULL;
}

/* $md5,rounds=N$ or $md5$rounds=N$ (Sun MD5): 4096 + N rounds. */
static const char *
cost_sunmd5(const char *p, struct store_hash_cost *c)
{
	uint64_t v = 0;

	if ((*p == ',' || *p == '$') && strncmp(p + 1, "rounds=", 7) == 0 &&
	    dec_digits(p + 8, "$,", &v) == 0)
		return cost_malformed(c, "bad rounds");
	c->kind = STORE_COST_ROUNDS;
	c->value = 4096 + v;
	return NULL;
}

/* $sha1$N$: PBKDF1-SHA1 with N rounds. */
static const char *
cost_sha1(const char *p, struct store_hash_cost *c)
{
	uint64_t v;

	if (dec_digits(p, "$", &v) == 0)
		return cost_malformed(c, "bad rounds");
	c->kind = STORE_COST_ROUNDS;
	c->value = v;
	return NULL;
}

/* _CCCCSSSS: BSDi extended DES, a 24-bit count of DES runs. */
static const char *
cost_bsdi(const char *p, struct store_hash_cost *c)
{
	uint64_t v = 0;
	unsigned int i, d;

	for (i = 0; i < 4; i++) {
		d = a64(p[i]);
		if (d > 63)
			return cost_malformed(c, "bad BSDi count");
		v |= (uint64_t)d << (6 * i);
	}
	c->kind = STORE_COST_ROUNDS;
	c->value = v;
	return NULL;
}

static const char *
cost_fixed(const char *p, struct store_hash_cost *c)
{
	(void)p;
	c->kind = STORE_COST_FIXED;
	c->value = 0;
	return NULL;
}

/* Longest prefixes first where one starts another. */
static const struct {
	const char	*prefix;
	const char	*name;
	const char	*(*parse)(const char *, struct store_hash_cost *);
} cost_forms[] = {
	{ "$y$",	"yescrypt",		cost_yescrypt },
	{ "$gy$",	"gost-yescrypt",	cost_yescrypt },
	{ "$sm3y$",	"sm3-yescrypt",		cost_yescrypt },
	{ "$7$",	"scrypt",		cost_scrypt },
	{ "$2b$",	"bcrypt",		cost_bcrypt },
	{ "$2y$",	"bcrypt",		cost_bcrypt },
	{ "$2a$",	"bcrypt",		cost_bcrypt },
	{ "$2x$",	"bcrypt",		cost_bcrypt },
	{ "$6$",	"SHA-512",		cost_sha },
	{ "$5$",	"SHA-256",		cost_sha },
	{ "$sm3$",	"SM3",			cost_sha },
	{ "$md5",	"Sun MD5",		cost_sunmd5 },
	{ "$sha1$",	"SHA-1",		cost_sha1 },
	{ "$1$",	"MD5",			cost_fixed },
	{ "$3$",	"NT",			cost_fixed },
	{ "_",		"BSDi DES",		cost_bsdi },
};

static bool
is_des(const char *h)
{
	size_t i, n = strlen(h);

	/* Traditional DES is 13 characters, bigcrypt 13 + 11k. */
	if (n < 13 || (n - 13) % 11 != 0)
		return false;
	for (i = 0; i < n; i++)
		if (a64(h[i]) > 63)
			return false;
	return true;
}

int
store_hash_cost(const char *hash, struct store_hash_cost *c,
    struct psync_err *err)
{
	const char *why;
	size_t i, plen;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < sizeof(cost_forms) / sizeof(cost_forms[0]); i++) {
		plen = strlen(cost_forms[i].prefix);
		if (strncmp(hash, cost_forms[i].prefix, plen) != 0)
			continue;
		c->method = cost_forms[i].name;
		why = cost_forms[i].parse(hash + plen, c);
		if (why != NULL) {
			perr_set(err, PSYNC_E_BAD_PASSWORD, "malformed %s hash: "
			    "%s", c->method, why);
			return -1;
		}
		return 0;
	}
	if (is_des(hash)) {
		c->method = "DES";
		c->kind = STORE_COST_FIXED;
		return 0;
	}
	c->method = "unknown";
	c->kind = STORE_COST_MALFORMED;
	perr_set(err, PSYNC_E_BAD_PASSWORD, "not a crypt hash psync knows");
	return -1;
}

/* The work a yescrypt cost factor (login.defs terms, 1-11) stands for. */
static uint64_t
yescrypt_cost_bytes(unsigned int cost)
{
	if (cost < 3)
		return 128ull * 8 << (cost + 9);
	if (cost > 20)
		cost = 20;
	return 128ull * 32 << (cost + 7);
}

void
store_hash_limits_resolve(const struct hash_limits *in, struct hash_limits *out)
{
	out->bcrypt_cost = in != NULL && in->bcrypt_cost != 0 ?
	    in->bcrypt_cost : STORE_DEFAULT_MAX_BCRYPT_COST;
	out->rounds = in != NULL && in->rounds != 0 ?
	    in->rounds : STORE_DEFAULT_MAX_ROUNDS;
	out->yescrypt_cost = in != NULL && in->yescrypt_cost != 0 ?
	    in->yescrypt_cost : STORE_DEFAULT_MAX_YESCRYPT_COST;
}

int
store_hash_limits(const struct store_conf *conf, struct hash_limits *out,
    struct psync_err *err)
{
	struct store_hash_params hp;
	unsigned long v;
	int rc = 0;

	store_hash_limits_resolve(&conf->hash_limits, out);
	if (store_hash_params(conf, &hp, err) == -1)
		return -1;
	/* Above what this host makes itself, where it makes more. */
	switch (hp.method) {
	case HASH_YESCRYPT:
		v = (hp.cost != 0 ? hp.cost : 5) + 1;
		if (conf->hash_limits.yescrypt_cost == 0 && v > out->yescrypt_cost)
			out->yescrypt_cost = v > 11 ? 11 : (unsigned int)v;
		break;
	case HASH_SHA512:
	case HASH_SHA256:
		v = (hp.cost_max > hp.cost ? hp.cost_max : hp.cost);
		v = (v != 0 ? v : 5000) * 2;
		if (conf->hash_limits.rounds == 0 && v > out->rounds)
			out->rounds = v > 999999999 ? 999999999 : v;
		break;
	case HASH_BCRYPT:
		v = (hp.cost_max > hp.cost ? hp.cost_max : hp.cost) + 1;
		if (conf->hash_limits.bcrypt_cost == 0 && v > out->bcrypt_cost)
			out->bcrypt_cost = v > 31 ? 31 : (unsigned int)v;
		break;
	case HASH_LOGIN_DEFS:
	default:
		break;
	}
	return rc;
}

int
store_hash_cost_check(const char *hash, const struct hash_limits *limits,
    struct psync_err *err)
{
	struct store_hash_cost c;
	struct hash_limits lim;
	uint64_t cap;

	store_hash_limits_resolve(limits, &lim);
	if (store_hash_cost(hash, &c, err) == -1)
		return -1;
	switch (c.kind) {
	case STORE_COST_LOG2:
		if (c.value <= lim.bcrypt_cost)
			return 0;
		perr_set(err, PSYNC_E_BAD_PASSWORD, "%s cost %llu is above "
		    "the limit %u (store option hash-max-bcrypt-cost)",
		    c.method, (unsigned long long)c.value, lim.bcrypt_cost);
		return -1;
	case STORE_COST_ROUNDS:
		if (c.value <= lim.rounds)
			return 0;
		perr_set(err, PSYNC_E_BAD_PASSWORD, "%s rounds %llu are above "
		    "the limit %lu (store option hash-max-rounds)", c.method,
		    (unsigned long long)c.value, lim.rounds);
		return -1;
	case STORE_COST_MEMORY:
		cap = yescrypt_cost_bytes(lim.yescrypt_cost);
		if (c.value <= cap)
			return 0;
		perr_set(err, PSYNC_E_BAD_PASSWORD, "%s cost N=2^%u r=%llu "
		    "p=%llu t=%llu (%llu MiB of memory times runs) is above "
		    "the limit of cost %u, %llu MiB (store option "
		    "hash-max-yescrypt-cost)", c.method, c.n_log2,
		    (unsigned long long)c.r, (unsigned long long)c.p,
		    (unsigned long long)c.t,
		    (unsigned long long)(c.value >> 20), lim.yescrypt_cost,
		    (unsigned long long)(cap >> 20));
		return -1;
	case STORE_COST_FIXED:
		return 0;
	case STORE_COST_MALFORMED:
	default:
		perr_set(err, PSYNC_E_BAD_PASSWORD, "%s hash: cost unknown",
		    c.method);
		return -1;
	}
}
