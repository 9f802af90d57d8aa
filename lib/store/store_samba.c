/*
 * The samba back-end: each change replaces the account's unicodePwd
 * through Samba's privileged ldapi socket, found by sAMAccountName (which
 * AD matches case-insensitively). OpenLDAP's client library speaks to the
 * socket directly; libldb's own ldapi backend is a wrapper around the same
 * library and would pull in talloc and tevent for nothing, and running
 * ldbmodify would mean parsing its output.
 *
 * Samba enforces the domain's password policy on this path too, and says
 * why it refused in the LDAP diagnostic text; that text becomes the
 * change's reason. "unchanged" is found without a login attempt: as the
 * system, root can read unicodePwd (the NT hash) and compare it with the
 * hash of the new password.
 */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <ldap.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/provider.h>

#include "codes.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "samba_applied.h"
#include "store_samba.h"
#include "util.h"

#define SAMBA_LDAPI_PATH	"/ldap_priv/ldapi"
#define SAMBA_TIMEOUT_S		10
#define SAMBA_URL_MAX		1024
#define SAMBA_DN_MAX		1024

int
store_samba_unicodepwd(const char *password, unsigned char *out, size_t cap,
    size_t *outlen, struct psync_err *err)
{
	const unsigned char *p = (const unsigned char *)password;
	size_t o = 0, need, k;
	uint32_t cp, min;
	uint16_t units[2];
	int rc = -1, nu, extra, i;

	*outlen = 0;
	if (cap < 4)
		goto toolong;
	out[o++] = '"';
	out[o++] = 0;
	while (*p != '\0') {
		if (*p < 0x80) {
			cp = *p;
			extra = 0;
			min = 0;
		} else if ((*p & 0xe0) == 0xc0) {
			cp = *p & 0x1f;
			extra = 1;
			min = 0x80;
		} else if ((*p & 0xf0) == 0xe0) {
			cp = *p & 0x0f;
			extra = 2;
			min = 0x800;
		} else if ((*p & 0xf8) == 0xf0) {
			cp = *p & 0x07;
			extra = 3;
			min = 0x10000;
		} else {
			goto bad;
		}
		p++;
		for (i = 0; i < extra; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				goto bad;
			cp = cp << 6 | (*p & 0x3f);
		}
		/* Overlong forms, surrogates and beyond Unicode are not text. */
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			goto bad;
		if (cp >= 0x10000) {
			cp -= 0x10000;
			units[0] = (uint16_t)(0xd800 | (cp >> 10));
			units[1] = (uint16_t)(0xdc00 | (cp & 0x3ff));
			nu = 2;
		} else {
			units[0] = (uint16_t)cp;
			nu = 1;
		}
		need = 2 * (size_t)nu + 2;	/* and the closing quote */
		if (cap - o < need)
			goto toolong;
		for (k = 0; k < (size_t)nu; k++) {
			out[o++] = (unsigned char)(units[k] & 0xff);
			out[o++] = (unsigned char)(units[k] >> 8);
		}
	}
	out[o++] = '"';
	out[o++] = 0;
	*outlen = o;
	rc = 0;
	goto done;
bad:
	perr_set(err, PSYNC_E_BAD_PASSWORD, "the password is not valid UTF-8");
	goto done;
toolong:
	perr_set(err, PSYNC_E_BAD_PASSWORD, "the password is too long for "
	    "unicodePwd");
done:
	if (rc == -1)
		secure_wipe(out, cap);
	units[0] = units[1] = 0;
	cp = 0;
	return rc;
}

int
store_samba_nthash(const char *password, unsigned char out[SAMBA_NTHASH_LEN],
    struct psync_err *err)
{
	unsigned char buf[SAMBA_UNICODEPWD_MAX];
	OSSL_LIB_CTX *ctx = NULL;
	OSSL_PROVIDER *legacy = NULL;
	EVP_MD *md = NULL;
	size_t len = 0;
	unsigned int mdlen = 0;
	int rc = -1;

	if (store_samba_unicodepwd(password, buf, sizeof(buf), &len, err) == -1)
		goto done;
	/*
	 * MD4 lives in OpenSSL's legacy provider; a private library context
	 * keeps it away from everything else in the process.
	 */
	if ((ctx = OSSL_LIB_CTX_new()) == NULL ||
	    (legacy = OSSL_PROVIDER_load(ctx, "legacy")) == NULL ||
	    (md = EVP_MD_fetch(ctx, "MD4", NULL)) == NULL) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "MD4 is not available "
		    "(OpenSSL legacy provider)");
		goto done;
	}
	/* The hash is over the UTF-16LE without the quotes. */
	if (EVP_Digest(buf + 2, len - 4, out, &mdlen, md, NULL) != 1 ||
	    mdlen != SAMBA_NTHASH_LEN) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "MD4 failed");
		goto done;
	}
	rc = 0;
done:
	secure_wipe(buf, sizeof(buf));
	EVP_MD_free(md);
	if (legacy != NULL)
		OSSL_PROVIDER_unload(legacy);
	OSSL_LIB_CTX_free(ctx);
	return rc;
}

int
store_samba_ldapi_url(const char *private_dir, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	char path[SAMBA_URL_MAX];
	const unsigned char *p;
	size_t o;
	int n;

	n = snprintf(path, sizeof(path), "%s%s", private_dir, SAMBA_LDAPI_PATH);
	if (n < 0 || (size_t)n >= sizeof(path) || cap < 8)
		return -1;
	memcpy(out, "ldapi://", 8);
	o = 8;
	for (p = (const unsigned char *)path; *p != '\0'; p++) {
		if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' ||
		    *p == '~') {
			if (cap - o < 2)
				return -1;
			out[o++] = (char)*p;
		} else {
			if (cap - o < 4)
				return -1;
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 0x0f];
		}
	}
	out[o] = '\0';
	return 0;
}

/* Samba's words for its refusals (source4 password_hash), in order. */
static const struct {
	const char	*needle;
	int		 code;
} ad_refusals[] = {
	{ "too short",		PSYNC_E_TOO_SHORT },
	{ "too long",		PSYNC_E_BAD_PASSWORD },
	{ "complexity",		PSYNC_E_BAD_PASSWORD },
	{ "history",		PSYNC_E_HISTORY },
	{ "already used",	PSYNC_E_HISTORY },
	{ "too young",		PSYNC_E_TOO_RECENT },
};

/* LDAP result codes other than a policy refusal. */
static const struct {
	int		 rc;
	int		 code;
	const char	*what;
} ldap_codes[] = {
	{ LDAP_NO_SUCH_OBJECT,		PSYNC_E_NO_USER, "no such account" },
	{ LDAP_INSUFFICIENT_ACCESS,	PSYNC_E_REFUSED, "access denied" },
	{ LDAP_UNWILLING_TO_PERFORM,	PSYNC_E_REFUSED, "unwilling" },
	{ LDAP_SERVER_DOWN,		PSYNC_E_OPEN, "directory unreachable" },
	{ LDAP_CONNECT_ERROR,		PSYNC_E_OPEN, "directory unreachable" },
	{ LDAP_TIMEOUT,			PSYNC_E_OPEN, "directory timed out" },
	{ LDAP_BUSY,			PSYNC_E_OPEN, "directory busy" },
	{ LDAP_UNAVAILABLE,		PSYNC_E_OPEN, "directory unavailable" },
};

static bool
contains_nocase(const char *hay, const char *needle)
{
	size_t n = strlen(needle);

	for (; *hay != '\0'; hay++)
		if (strncasecmp(hay, needle, n) == 0)
			return true;
	return false;
}

int
store_samba_map_error(int ldap_rc, const char *diag, char *reason, size_t cap)
{
	const char *text = diag != NULL && diag[0] != '\0' ? diag :
	    ldap_err2string(ldap_rc);
	size_t i;
	int code = PSYNC_E_UPDATE_FAILED;

	if (ldap_rc == LDAP_CONSTRAINT_VIOLATION) {
		/* Any other constraint is still a refusal of this password. */
		code = PSYNC_E_BAD_PASSWORD;
		for (i = 0; i < sizeof(ad_refusals) / sizeof(ad_refusals[0]);
		    i++) {
			if (contains_nocase(text, ad_refusals[i].needle)) {
				code = ad_refusals[i].code;
				break;
			}
		}
		snprintf(reason, cap, "Active Directory refused the password: "
		    "%s", text);
		return code;
	}
	for (i = 0; i < sizeof(ldap_codes) / sizeof(ldap_codes[0]); i++) {
		if (ldap_codes[i].rc == ldap_rc) {
			snprintf(reason, cap, "Active Directory: %s: %s",
			    ldap_codes[i].what, text);
			return ldap_codes[i].code;
		}
	}
	snprintf(reason, cap, "Active Directory: LDAP error %d: %s", ldap_rc,
	    text);
	return code;
}

/* One connection for one batch. */
struct samba_conn {
	LDAP	*ld;
	char	 base[SAMBA_DN_MAX];	/* defaultNamingContext */
	char	 url[SAMBA_URL_MAX];
};

static void
samba_diag(LDAP *ld, int rc, char *out, size_t cap)
{
	char *msg = NULL;

	if (ld != NULL && ldap_get_option(ld, LDAP_OPT_DIAGNOSTIC_MESSAGE,
	    &msg) == LDAP_OPT_SUCCESS && msg != NULL && msg[0] != '\0')
		str_copy(out, msg, cap);
	else
		str_copy(out, ldap_err2string(rc), cap);
	ldap_memfree(msg);
}

static int
samba_connect(const struct store_conf *conf, struct samba_conn *c,
    struct psync_err *err)
{
	struct timeval tv = { SAMBA_TIMEOUT_S, 0 };
	char *attrs[] = { (char *)(uintptr_t)"defaultNamingContext", NULL };
	char diag[256];
	LDAPMessage *res = NULL, *e;
	struct berval **vals = NULL;
	int version = LDAP_VERSION3, rc, ret = -1;

	if (conf->samba_private_dir == NULL || store_samba_ldapi_url(
	    conf->samba_private_dir, c->url, sizeof(c->url)) == -1) {
		perr_set(err, PSYNC_E_OPEN, "samba-private-dir is not set or "
		    "too long");
		goto done;
	}
	if ((rc = ldap_initialize(&c->ld, c->url)) != LDAP_SUCCESS) {
		perr_set(err, PSYNC_E_OPEN, "%s: %s", c->url,
		    ldap_err2string(rc));
		goto done;
	}
	if (ldap_set_option(c->ld, LDAP_OPT_PROTOCOL_VERSION, &version) !=
	    LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) !=
	    LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) !=
	    LDAP_OPT_SUCCESS ||
	    ldap_set_option(c->ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot set LDAP options",
		    c->url);
		goto done;
	}
	/* No bind: on the privileged socket, Samba makes us the system. */
	rc = ldap_search_ext_s(c->ld, "", LDAP_SCOPE_BASE, "(objectClass=*)",
	    attrs, 0, NULL, NULL, &tv, 1, &res);
	if (rc != LDAP_SUCCESS) {
		samba_diag(c->ld, rc, diag, sizeof(diag));
		perr_set(err, PSYNC_E_OPEN, "%s: reading the root DSE: %s",
		    c->url, diag);
		goto done;
	}
	if ((e = ldap_first_entry(c->ld, res)) == NULL ||
	    (vals = ldap_get_values_len(c->ld, e, attrs[0])) == NULL ||
	    vals[0] == NULL || vals[0]->bv_len == 0 ||
	    vals[0]->bv_len >= sizeof(c->base)) {
		perr_set(err, PSYNC_E_OPEN, "%s: no defaultNamingContext in "
		    "the root DSE (is this an AD DC?)", c->url);
		goto done;
	}
	memcpy(c->base, vals[0]->bv_val, vals[0]->bv_len);
	c->base[vals[0]->bv_len] = '\0';
	ret = 0;
done:
	ldap_value_free_len(vals);
	ldap_msgfree(res);
	return ret;
}

/*
 * Find user's DN and NT hash. 0 found (have_hash says whether unicodePwd
 * came back), -1 with r filled.
 */
static int
samba_find(struct samba_conn *c, const char *user, char *dn, size_t dncap,
    unsigned char nthash[SAMBA_NTHASH_LEN], bool *have_hash,
    struct store_result *r)
{
	struct timeval tv = { SAMBA_TIMEOUT_S, 0 };
	char *attrs[] = { (char *)(uintptr_t)"unicodePwd", NULL };
	struct berval in, esc = { 0, NULL };
	struct berval **vals = NULL;
	LDAPMessage *res = NULL, *e;
	char filter[2 * STORE_USER_MAX * 3 + 64], diag[256], *d = NULL;
	int rc, ret = -1, n;

	*have_hash = false;
	in.bv_val = (char *)(uintptr_t)user;
	in.bv_len = strlen(user);
	if (ldap_bv2escaped_filter_value(&in, &esc) != 0) {
		store_result_set(r, PSYNC_E_UPDATE_FAILED, STORE_FAILED,
		    "cannot escape the name %s for an LDAP filter", user);
		goto done;
	}
	n = snprintf(filter, sizeof(filter),
	    "(&(objectClass=user)(sAMAccountName=%s))", esc.bv_val);
	if (n < 0 || (size_t)n >= sizeof(filter)) {
		store_result_set(r, PSYNC_E_BAD_USER, STORE_FAILED,
		    "user name %s too long for a search", user);
		goto done;
	}
	rc = ldap_search_ext_s(c->ld, c->base, LDAP_SCOPE_SUBTREE, filter,
	    attrs, 0, NULL, NULL, &tv, 2, &res);
	if (rc != LDAP_SUCCESS) {
		samba_diag(c->ld, rc, diag, sizeof(diag));
		store_result_set(r, PSYNC_E_OPEN, STORE_FAILED, "searching "
		    "the directory for %s: %s", user, diag);
		goto done;
	}
	n = ldap_count_entries(c->ld, res);
	if (n == 0) {
		store_result_set(r, PSYNC_E_NO_USER, STORE_FAILED, "no account "
		    "with sAMAccountName %s in %s", user, c->base);
		goto done;
	}
	if (n > 1) {
		store_result_set(r, PSYNC_E_BAD_USER, STORE_FAILED, "%d "
		    "accounts match sAMAccountName %s", n, user);
		goto done;
	}
	e = ldap_first_entry(c->ld, res);
	if (e == NULL || (d = ldap_get_dn(c->ld, e)) == NULL ||
	    str_copy(dn, d, dncap) >= dncap) {
		store_result_set(r, PSYNC_E_UPDATE_FAILED, STORE_FAILED,
		    "no usable DN for %s", user);
		goto done;
	}
	vals = ldap_get_values_len(c->ld, e, attrs[0]);
	if (vals != NULL && vals[0] != NULL &&
	    vals[0]->bv_len == SAMBA_NTHASH_LEN) {
		memcpy(nthash, vals[0]->bv_val, SAMBA_NTHASH_LEN);
		*have_hash = true;
	}
	ret = 0;
done:
	if (vals != NULL) {
		if (vals[0] != NULL)
			secure_wipe(vals[0]->bv_val, vals[0]->bv_len);
		ldap_value_free_len(vals);
	}
	ldap_memfree(d);
	ldap_memfree(esc.bv_val);
	ldap_msgfree(res);
	return ret;
}

static void
samba_apply_one(struct samba_conn *c, const struct store_change *ch,
    struct store_result *r)
{
	unsigned char value[SAMBA_UNICODEPWD_MAX];
	unsigned char have[SAMBA_NTHASH_LEN], want[SAMBA_NTHASH_LEN];
	char dn[SAMBA_DN_MAX], reason[STORE_REASON_LEN], diag[256];
	struct berval bv, *bvals[2] = { &bv, NULL };
	LDAPMod mod, *mods[2] = { &mod, NULL };
	struct psync_err err;
	bool have_hash = false;
	size_t len = 0;
	int rc, code;

	memset(value, 0, sizeof(value));
	if (ch->kind == STORE_SECRET_HASH) {
		store_result_set(r, PSYNC_E_BAD_PASSWORD, STORE_FAILED,
		    "Active Directory cannot take a crypt hash for %s: it "
		    "needs the password itself", ch->user);
		goto done;
	}
	perr_clear(&err);
	if (store_samba_unicodepwd(ch->secret, value, sizeof(value), &len,
	    &err) == -1) {
		store_result_set(r, err.code, STORE_FAILED, "password of %s: "
		    "%s", ch->user, err.msg);
		goto done;
	}
	if (samba_find(c, ch->user, dn, sizeof(dn), have, &have_hash, r) == -1)
		goto done;
	if (have_hash) {
		if (store_samba_nthash(ch->secret, want, &err) == -1)
			log_warnx("store: %s: cannot tell whether the password "
			    "is unchanged: %s", ch->user, err.msg);
		else if (CRYPTO_memcmp(have, want, sizeof(have)) == 0) {
			store_result_set(r, PSYNC_OK, STORE_UNCHANGED,
			    "unchanged");
			goto done;
		}
	}
	bv.bv_val = (char *)value;
	bv.bv_len = len;
	mod.mod_op = LDAP_MOD_REPLACE | LDAP_MOD_BVALUES;
	mod.mod_type = (char *)(uintptr_t)"unicodePwd";
	mod.mod_bvalues = bvals;
	rc = ldap_modify_ext_s(c->ld, dn, mods, NULL, NULL);
	if (rc != LDAP_SUCCESS) {
		samba_diag(c->ld, rc, diag, sizeof(diag));
		code = store_samba_map_error(rc, diag, reason, sizeof(reason));
		store_result_set(r, code, STORE_FAILED, "%s (%s): %s",
		    ch->user, dn, reason);
		goto done;
	}
	store_result_set(r, PSYNC_OK, STORE_APPLIED, "applied");
done:
	secure_wipe(value, sizeof(value));
	secure_wipe(have, sizeof(have));
	secure_wipe(want, sizeof(want));
	secure_wipe(&bv, sizeof(bv));
}

size_t
store_samba_apply(const struct store_conf *conf,
    const struct store_change *changes, size_t n, struct store_result *results)
{
	struct samba_conn c;
	struct psync_err err;
	size_t i, failed = 0;
	bool connected = false, tried = false;

	memset(&c, 0, sizeof(c));
	perr_clear(&err);
	for (i = 0; i < n; i++) {
		/* Changes the front door already refused keep their result. */
		if (results[i].code != PSYNC_E_UPDATE_FAILED ||
		    results[i].outcome != STORE_FAILED)
			continue;
		if (changes[i].kind == STORE_SECRET_CLEARTEXT && !tried) {
			tried = true;
			perr_clear(&err);
			connected = samba_connect(conf, &c, &err) == 0;
			if (!connected)
				log_warnx("store: samba: %s", err.msg);
		}
		if (changes[i].kind == STORE_SECRET_CLEARTEXT && !connected) {
			store_result_set(&results[i], PSYNC_E_OPEN,
			    STORE_FAILED, "cannot reach the directory for %s: "
			    "%s", changes[i].user, err.msg);
			continue;
		}
		samba_apply_one(&c, &changes[i], &results[i]);
	}
	for (i = 0; i < n; i++)
		if (results[i].outcome == STORE_FAILED)
			failed++;
	if (c.ld != NULL)
		ldap_unbind_ext_s(c.ld, NULL, NULL);
	return failed;
}

size_t
store_samba_backend_apply(const struct store_conf *conf,
    const struct store_env *env, const struct store_change *changes,
    size_t n, struct store_result *results)
{
	struct psync_err err;
	size_t i, failed;
	bool notes = env != NULL && env->q != NULL && env->host_key != NULL;

	/* Note first, so that the hook never misses it. */
	for (i = 0; notes && i < n; i++)
		if (results[i].code == PSYNC_E_UPDATE_FAILED &&
		    results[i].outcome == STORE_FAILED &&
		    changes[i].kind == STORE_SECRET_CLEARTEXT &&
		    samba_applied_note(env->q, env->host_key, changes[i].user,
		    changes[i].secret, env->now_ms, &err) == -1)
			log_warnx("queue: noting change for %s as applied from a "
			    "peer: %s", changes[i].user, err.msg);
	failed = store_samba_apply(conf, changes, n, results);
	for (i = 0; notes && i < n; i++)
		if (results[i].outcome != STORE_APPLIED &&
		    samba_applied_forget(env->q, changes[i].user, &err) == -1)
			log_warnx("queue: %s", err.msg);
	return failed;
}
