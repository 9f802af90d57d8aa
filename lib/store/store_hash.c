/*
 * Password hashing for the store: the method and cost from the
 * configuration or from login.defs, salts and hashes through libxcrypt's
 * reentrant calls (never crypt(3)), verification of a password against a
 * stored hash, the well-formedness check for hashes that arrive ready-made,
 * and a small thread pool so that a batch hashes on every core.
 */
#include "config.h"

#include <crypt.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "codes.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

#define LOGIN_DEFS_DEFAULT	"/etc/login.defs"
#define HASH_THREADS_MAX	256

/* One row per method: its prefix and the range its cost may take. */
struct hash_method_info {
	enum hash_method	 method;
	const char		*name;		/* as in login.defs */
	const char		*prefix;
	unsigned long		 cost_min;
	unsigned long		 cost_max;
};

static const struct hash_method_info hash_methods[] = {
	{ HASH_YESCRYPT, "YESCRYPT", "$y$",	1,	11 },
	{ HASH_SHA512,	 "SHA512",   "$6$",	1000,	999999999 },
	{ HASH_SHA256,	 "SHA256",   "$5$",	1000,	999999999 },
	{ HASH_BCRYPT,	 "BCRYPT",   "$2b$",	4,	31 },
};

static const struct hash_method_info *
hash_info(enum hash_method method)
{
	size_t i;

	for (i = 0; i < sizeof(hash_methods) / sizeof(hash_methods[0]); i++)
		if (hash_methods[i].method == method)
			return &hash_methods[i];
	return NULL;
}

/* ---- login.defs ---- */

enum defs_key {
	DEFS_ENCRYPT_METHOD,
	DEFS_YESCRYPT_COST,
	DEFS_SHA_MIN,
	DEFS_SHA_MAX,
	DEFS_BCRYPT_MIN,
	DEFS_BCRYPT_MAX,
};

static const struct {
	const char	*name;
	enum defs_key	 key;
} defs_keys[] = {
	{ "ENCRYPT_METHOD",		DEFS_ENCRYPT_METHOD },
	{ "YESCRYPT_COST_FACTOR",	DEFS_YESCRYPT_COST },
	{ "SHA_CRYPT_MIN_ROUNDS",	DEFS_SHA_MIN },
	{ "SHA_CRYPT_MAX_ROUNDS",	DEFS_SHA_MAX },
	{ "BCRYPT_MIN_ROUNDS",		DEFS_BCRYPT_MIN },
	{ "BCRYPT_MAX_ROUNDS",		DEFS_BCRYPT_MAX },
};

struct defs_values {
	enum hash_method method;
	unsigned long	 v[DEFS_BCRYPT_MAX + 1];	/* 0: not set */
};

static int
defs_number(const char *path, int line, const char *key, const char *val,
    unsigned long *out, struct psync_err *err)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(val, &end, 10);
	if (val[0] < '0' || val[0] > '9' || *end != '\0' || errno != 0 ||
	    v == 0) {
		perr_set(err, PSYNC_E_UPDATE_FAILED,
		    "%s:%d: %s: expected a positive number, got \"%s\"",
		    path, line, key, val);
		return -1;
	}
	*out = v;
	return 0;
}

static int
defs_method(const char *path, int line, const char *val,
    enum hash_method *out, struct psync_err *err)
{
	size_t i;

	for (i = 0; i < sizeof(hash_methods) / sizeof(hash_methods[0]); i++)
		if (strcasecmp(val, hash_methods[i].name) == 0) {
			*out = hash_methods[i].method;
			return 0;
		}
	if (strcasecmp(val, "DES") == 0 || strcasecmp(val, "MD5") == 0) {
		/* Never write a weak hash; SHA-512 is what any host can read. */
		log_warnx("%s:%d: ENCRYPT_METHOD %s is too weak; psync writes "
		    "SHA512 hashes instead", path, line, val);
		*out = HASH_SHA512;
		return 0;
	}
	perr_set(err, PSYNC_E_UPDATE_FAILED,
	    "%s:%d: ENCRYPT_METHOD: unknown method \"%s\" (expected YESCRYPT, "
	    "SHA512, SHA256 or BCRYPT)", path, line, val);
	return -1;
}

/* One "KEY VALUE" line; unknown keys and comments are ignored. */
static int
defs_line(const char *path, int lineno, char *line, struct defs_values *dv,
    struct psync_err *err)
{
	char *key, *val, *p;
	size_t i, len;

	key = line + strspn(line, " \t");
	if (*key == '#' || *key == '\0')
		return 0;
	p = key + strcspn(key, " \t");
	if (*p == '\0')
		return 0;
	*p++ = '\0';
	val = p + strspn(p, " \t");
	len = strcspn(val, " \t#");
	val[len] = '\0';
	/* shadow-utils allows the value in double quotes. */
	if (len >= 2 && val[0] == '"' && val[len - 1] == '"') {
		val[len - 1] = '\0';
		val++;
	}
	for (i = 0; i < sizeof(defs_keys) / sizeof(defs_keys[0]); i++) {
		if (strcmp(key, defs_keys[i].name) != 0)
			continue;
		if (defs_keys[i].key == DEFS_ENCRYPT_METHOD)
			return defs_method(path, lineno, val, &dv->method, err);
		return defs_number(path, lineno, key, val,
		    &dv->v[defs_keys[i].key], err);
	}
	return 0;
}

/* A [min, max] pair as shadow-utils reads it: either alone is used alone. */
static void
defs_range(unsigned long min, unsigned long max, unsigned long lo,
    unsigned long hi, struct store_hash_params *params)
{
	if (min == 0)
		min = max;
	if (max == 0)
		max = min;
	if (min > max)
		max = min;
	if (min != 0 && min < lo)
		min = lo;
	if (max != 0 && max < lo)
		max = lo;
	if (min > hi)
		min = hi;
	if (max > hi)
		max = hi;
	params->cost = min;
	params->cost_max = max;
}

int
store_login_defs(const char *path, struct store_hash_params *params,
    struct psync_err *err)
{
	struct defs_values dv;
	FILE *f = NULL;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = -1;

	if (path == NULL)
		path = LOGIN_DEFS_DEFAULT;
	memset(&dv, 0, sizeof(dv));
	dv.method = HASH_YESCRYPT;	/* Debian's default */
	f = fopen(path, "re");
	if (f == NULL) {
		if (errno == ENOENT) {
			log_debug("%s: missing; hashing with yescrypt", path);
			goto apply;
		}
		perr_set(err, PSYNC_E_OPEN, "%s: cannot open: %s", path,
		    strerror(errno));
		goto done;
	}
	while ((len = getline(&line, &cap, f)) != -1) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[len - 1] = '\0';
		if (defs_line(path, lineno, line, &dv, err) == -1)
			goto done;
	}
	if (ferror(f)) {
		perr_set(err, PSYNC_E_OPEN, "%s: read error", path);
		goto done;
	}
apply:
	params->method = dv.method;
	params->cost = params->cost_max = 0;
	switch (dv.method) {
	case HASH_YESCRYPT:
		defs_range(dv.v[DEFS_YESCRYPT_COST], 0, 1, 11, params);
		break;
	case HASH_SHA512:
	case HASH_SHA256:
		defs_range(dv.v[DEFS_SHA_MIN], dv.v[DEFS_SHA_MAX], 1000,
		    999999999, params);
		break;
	case HASH_BCRYPT:
		defs_range(dv.v[DEFS_BCRYPT_MIN], dv.v[DEFS_BCRYPT_MAX], 4, 31,
		    params);
		break;
	case HASH_LOGIN_DEFS:
		break;
	}
	rc = 0;
done:
	free(line);
	if (f != NULL)
		fclose(f);
	return rc;
}

int
store_hash_params(const struct store_conf *conf,
    struct store_hash_params *params, struct psync_err *err)
{
	const struct hash_method_info *hi;

	if (conf->hash_method == HASH_LOGIN_DEFS)
		return store_login_defs(conf->login_defs, params, err);
	hi = hash_info(conf->hash_method);
	if (hi == NULL) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "unknown hash method %d",
		    (int)conf->hash_method);
		return -1;
	}
	if (conf->hash_cost != 0 &&
	    (conf->hash_cost < hi->cost_min || conf->hash_cost > hi->cost_max)) {
		perr_set(err, PSYNC_E_UPDATE_FAILED,
		    "hash cost %u is out of range for %s (%lu to %lu)",
		    conf->hash_cost, hi->name, hi->cost_min, hi->cost_max);
		return -1;
	}
	params->method = conf->hash_method;
	params->cost = params->cost_max = conf->hash_cost;
	return 0;
}

/* ---- hashing ---- */

int
store_hash_one(const struct store_hash_params *params, const char *password,
    struct crypt_data *cd, char *out, size_t outlen, struct psync_err *err)
{
	const struct hash_method_info *hi = hash_info(params->method);
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	unsigned long count = params->cost;
	uint32_t r;
	const char *h;
	int rc = -1;

	if (hi == NULL) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "no hash method chosen");
		goto done;
	}
	if (strlen(password) >= CRYPT_MAX_PASSPHRASE_SIZE) {
		perr_set(err, PSYNC_E_BAD_PASSWORD,
		    "password longer than %d bytes", CRYPT_MAX_PASSPHRASE_SIZE - 1);
		goto done;
	}
	if (params->cost_max > params->cost &&
	    getrandom(&r, sizeof(r), 0) == (ssize_t)sizeof(r))
		count += r % (params->cost_max - params->cost + 1);
	if (crypt_gensalt_rn(hi->prefix, count, NULL, 0, salt,
	    (int)sizeof(salt)) == NULL) {
		perr_set(err, PSYNC_E_UPDATE_FAILED,
		    "cannot make a %s salt (cost %lu): %s", hi->name, count,
		    strerror(errno));
		goto done;
	}
	h = crypt_rn(password, salt, cd, (int)sizeof(*cd));
	if (h == NULL || h[0] == '*') {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "%s hashing failed: %s",
		    hi->name, strerror(errno));
		goto done;
	}
	if (str_copy(out, h, outlen) >= outlen) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "%s hash too long",
		    hi->name);
		goto done;
	}
	rc = 0;
done:
	secure_wipe(cd, sizeof(*cd));
	return rc;
}

int
store_hash_password(const struct store_hash_params *params,
    const char *password, char *out, size_t outlen, struct psync_err *err)
{
	struct crypt_data *cd;
	int rc;

	cd = calloc(1, sizeof(*cd));
	if (cd == NULL) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "out of memory");
		return -1;
	}
	rc = store_hash_one(params, password, cd, out, outlen, err);
	free(cd);
	return rc;
}

static bool
const_equal(const char *a, const char *b, size_t len)
{
	unsigned char d = 0;
	size_t i;

	for (i = 0; i < len; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

bool
store_hash_verify_cd(const char *password, const char *hash,
    struct crypt_data *cd)
{
	const char *h;
	size_t len = strlen(hash);
	bool ok = false;

	/* Locked ("!"), disabled ("*") and empty hashes match nothing. */
	if (hash[0] != '$' || strlen(password) >= CRYPT_MAX_PASSPHRASE_SIZE)
		goto done;
	h = crypt_rn(password, hash, cd, (int)sizeof(*cd));
	if (h == NULL || h[0] == '*' || strlen(h) != len)
		goto done;
	ok = const_equal(h, hash, len);
done:
	secure_wipe(cd, sizeof(*cd));
	return ok;
}

bool
store_hash_verify(const char *password, const char *hash)
{
	struct crypt_data *cd;
	bool ok;

	cd = calloc(1, sizeof(*cd));
	if (cd == NULL)
		return false;
	ok = store_hash_verify_cd(password, hash, cd);
	free(cd);
	return ok;
}

/* ---- the accepted forms of ready-made hashes ---- */

static bool
is_b64(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '.' || c == '/';
}

/* Length of the run of crypt base-64 characters at p. */
static size_t
b64_span(const char *p)
{
	size_t n = 0;

	while (is_b64(p[n]))
		n++;
	return n;
}

/* $y$PARAMS$SALT$HASH43 */
static const char *
check_yescrypt(const char *p)
{
	size_t n;

	n = b64_span(p);
	if (n == 0 || p[n] != '$')
		return "bad yescrypt parameters";
	p += n + 1;
	n = b64_span(p);
	if (n == 0 || n > 86 || p[n] != '$')
		return "bad yescrypt salt";
	p += n + 1;
	if (b64_span(p) != 43 || p[43] != '\0')
		return "yescrypt hash part is not 43 characters";
	return NULL;
}

/* [rounds=N$]SALT$HASH, SALT 1-16 characters, HASH hashlen characters. */
static const char *
check_sha(const char *p, size_t hashlen)
{
	unsigned long rounds;
	size_t n;
	char *end;

	if (strncmp(p, "rounds=", 7) == 0) {
		p += 7;
		if (*p < '1' || *p > '9')
			return "bad rounds";
		errno = 0;
		rounds = strtoul(p, &end, 10);
		if (errno != 0 || *end != '$' || rounds < 1000 ||
		    rounds > 999999999)
			return "rounds out of range (1000-999999999)";
		p = end + 1;
	}
	n = b64_span(p);
	if (n == 0 || n > 16 || p[n] != '$')
		return "bad salt (1 to 16 characters of ./0-9A-Za-z)";
	p += n + 1;
	if (b64_span(p) != hashlen || p[hashlen] != '\0')
		return hashlen == 86 ? "hash part is not 86 characters" :
		    "hash part is not 43 characters";
	return NULL;
}

static const char *
check_sha512(const char *p)
{
	return check_sha(p, 86);
}

static const char *
check_sha256(const char *p)
{
	return check_sha(p, 43);
}

/* NN$ then 22 salt and 31 hash characters. */
static const char *
check_bcrypt(const char *p)
{
	int cost;

	if (p[0] < '0' || p[0] > '3' || p[1] < '0' || p[1] > '9' ||
	    p[2] != '$')
		return "bad bcrypt cost";
	cost = (p[0] - '0') * 10 + (p[1] - '0');
	if (cost < 4 || cost > 31)
		return "bcrypt cost out of range (04-31)";
	p += 3;
	if (b64_span(p) != 53 || p[53] != '\0')
		return "bcrypt salt and hash are not 53 characters";
	return NULL;
}

static const struct {
	const char	*prefix;
	const char	*name;
	const char	*(*check)(const char *);
} hash_forms[] = {
	{ "$y$",	"yescrypt",	check_yescrypt },
	{ "$6$",	"SHA-512",	check_sha512 },
	{ "$5$",	"SHA-256",	check_sha256 },
	{ "$2b$",	"bcrypt",	check_bcrypt },
	{ "$2y$",	"bcrypt",	check_bcrypt },
	{ "$2a$",	"bcrypt",	check_bcrypt },
};

int
store_hash_check(const char *hash, struct psync_err *err)
{
	const char *why;
	size_t i, plen;
	int cs;

	for (i = 0; i < sizeof(hash_forms) / sizeof(hash_forms[0]); i++) {
		plen = strlen(hash_forms[i].prefix);
		if (strncmp(hash, hash_forms[i].prefix, plen) != 0)
			continue;
		why = hash_forms[i].check(hash + plen);
		if (why != NULL) {
			perr_set(err, PSYNC_E_BAD_PASSWORD,
			    "malformed %s hash: %s", hash_forms[i].name, why);
			return -1;
		}
		cs = crypt_checksalt(hash);
		if (cs == CRYPT_SALT_INVALID ||
		    cs == CRYPT_SALT_METHOD_DISABLED) {
			perr_set(err, PSYNC_E_BAD_PASSWORD,
			    "%s hash refused by libxcrypt (%s)",
			    hash_forms[i].name, cs == CRYPT_SALT_INVALID ?
			    "invalid setting" : "method disabled");
			return -1;
		}
		return 0;
	}
	perr_set(err, PSYNC_E_BAD_PASSWORD,
	    "unsupported hash form (accepted: yescrypt $y$, SHA-512 $6$, "
	    "SHA-256 $5$, bcrypt $2b$/$2y$/$2a$)");
	return -1;
}

/* ---- a batch on every core ---- */

struct pool {
	store_job_fn	 fn;
	void		*ctx;
	size_t		 n;
	atomic_size_t	 next;
	atomic_size_t	 nomem;
};

static void *
pool_worker(void *arg)
{
	struct pool *p = arg;
	struct crypt_data *cd;
	size_t i;

	cd = calloc(1, sizeof(*cd));
	if (cd == NULL) {
		atomic_fetch_add(&p->nomem, 1);
		return NULL;
	}
	while ((i = atomic_fetch_add(&p->next, 1)) < p->n)
		p->fn(p->ctx, i, cd);
	secure_wipe(cd, sizeof(*cd));
	free(cd);
	return NULL;
}

int
store_parallel(size_t n, unsigned int threads, store_job_fn fn, void *ctx)
{
	struct pool p;
	pthread_t *tids = NULL;
	size_t started = 0, i;
	long cpus;
	int rc = -1;

	if (threads == 0) {
		cpus = sysconf(_SC_NPROCESSORS_ONLN);
		threads = cpus > 0 ? (unsigned int)cpus : 1;
	}
	if (threads > HASH_THREADS_MAX)
		threads = HASH_THREADS_MAX;
	if (threads > n)
		threads = (unsigned int)n;
	p.fn = fn;
	p.ctx = ctx;
	p.n = n;
	atomic_init(&p.next, 0);
	atomic_init(&p.nomem, 0);
	if (n == 0)
		return 0;
	if (threads > 1) {
		tids = calloc(threads, sizeof(*tids));
		if (tids == NULL)
			threads = 1;
	}
	/* The calling thread works too; failing to start more is not fatal. */
	for (i = 1; i < threads; i++) {
		if (pthread_create(&tids[i], NULL, pool_worker, &p) != 0) {
			log_warnx("store: cannot start hashing thread %zu; "
			    "continuing with %zu", i, started + 1);
			break;
		}
		started++;
	}
	pool_worker(&p);
	for (i = 1; i <= started; i++)
		pthread_join(tids[i], NULL);
	if (atomic_load(&p.nomem) > started) {
		log_warnx("store: out of memory for hashing");
		goto done;
	}
	rc = atomic_load(&p.next) >= n ? 0 : -1;
done:
	free(tids);
	return rc;
}

struct many_ctx {
	const struct store_hash_params	*params;
	const char *const		*passwords;
	char				**out;
	atomic_size_t			 failed;
};

static void
many_job(void *ctx, size_t i, struct crypt_data *cd)
{
	struct many_ctx *m = ctx;
	struct psync_err err;
	char buf[CRYPT_OUTPUT_SIZE];

	perr_clear(&err);
	if (store_hash_one(m->params, m->passwords[i], cd, buf, sizeof(buf),
	    &err) == -1) {
		log_warnx("store: hashing password %zu: %s", i, err.msg);
		atomic_fetch_add(&m->failed, 1);
		return;
	}
	m->out[i] = strdup(buf);
	if (m->out[i] == NULL)
		atomic_fetch_add(&m->failed, 1);
}

size_t
store_hash_many(const struct store_hash_params *params,
    const char *const *passwords, char **out, size_t n, unsigned int threads)
{
	struct many_ctx m;
	size_t i, m_failed;

	m.params = params;
	m.passwords = passwords;
	m.out = out;
	atomic_init(&m.failed, 0);
	for (i = 0; i < n; i++)
		out[i] = NULL;
	if (store_parallel(n, threads, many_job, &m) == -1)
		log_warnx("store: the hashing pool did not finish");
	m_failed = 0;
	for (i = 0; i < n; i++)
		if (out[i] == NULL)
			m_failed++;
	return m_failed;
}
