/*
 * Account lookups for the policy. The files store reads the configured
 * passwd, shadow and group files (so a test host or a chroot can point
 * elsewhere); the other stores ask NSS.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdint.h>
#include <shadow.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "account.h"
#include "codes.h"

void
account_classify_hash(const char *hash, bool *locked, bool *disabled)
{
	*locked = hash != NULL && hash[0] == '!';
	/* "*", "x" or an empty field in shadow: no usable password, no login. */
	*disabled = hash == NULL || hash[0] == '*' ||
	    (hash[0] != '!' && hash[0] != '$' && strlen(hash) < 13);
}

void
account_clear(struct account *a)
{
	size_t i;

	for (i = 0; a->groups != NULL && i < a->n_groups; i++)
		free(a->groups[i]);
	free(a->groups);
	memset(a, 0, sizeof(*a));
}

bool
account_in_group(const struct account *a, const char *group)
{
	size_t i;

	for (i = 0; i < a->n_groups; i++)
		if (strcmp(a->groups[i], group) == 0)
			return true;
	return false;
}

static int
add_group(struct account *a, const char *name)
{
	char **ng;

	if (account_in_group(a, name) || a->n_groups >= ACCOUNT_MAX_GROUPS)
		return 0;
	ng = realloc(a->groups, (a->n_groups + 1) * sizeof(*ng));
	if (ng == NULL)
		return -1;
	a->groups = ng;
	a->groups[a->n_groups] = strdup(name);
	if (a->groups[a->n_groups] == NULL)
		return -1;
	a->n_groups++;
	return 0;
}

static bool
expired_now(long expire_days)
{
	long today = (long)(time(NULL) / 86400);

	return expire_days >= 0 && expire_days <= today;
}

/*
 * passwd: an exact match wins; otherwise, with case_ignore, exactly one
 * case-insensitive match is accepted and two are an ambiguity.
 */
static int
files_passwd(const char *path, const char *name, bool case_ignore,
    struct account *a, char *pw_hash, size_t hashlen, struct psync_err *err)
{
	FILE *f;
	struct passwd *pw;
	char other[NAME_MAX_LEN] = "";
	int folded = 0, rc = -1;
	bool exact = false;

	f = fopen(path, "re");
	if (f == NULL) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	while ((pw = fgetpwent(f)) != NULL) {
		exact = strcmp(pw->pw_name, name) == 0;
		if (!exact && !(case_ignore && strcasecmp(pw->pw_name, name) == 0))
			continue;
		if (!exact && folded++ > 0) {
			str_copy(other, pw->pw_name, sizeof(other));
			continue;
		}
		str_copy(a->name, pw->pw_name, sizeof(a->name));
		a->uid = pw->pw_uid;
		a->gid = pw->pw_gid;
		str_copy(pw_hash, pw->pw_passwd, hashlen);
		if (exact)
			break;
	}
	if (!exact && folded > 1) {
		perr_set(err, PSYNC_E_BAD_USER, "user name '%s' matches both "
		    "'%s' and '%s' when case is ignored", name, a->name, other);
		goto done;
	}
	rc = exact || folded == 1 ? 0 : 1;
	if (rc == 1)
		perr_set(err, PSYNC_E_NO_USER, "user %s does not exist", name);
done:
	fclose(f);
	return rc;
}

static int
files_shadow(const char *path, struct account *a, struct psync_err *err)
{
	FILE *f;
	struct spwd *sp;

	f = fopen(path, "re");
	if (f == NULL) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	while ((sp = fgetspent(f)) != NULL) {
		if (strcmp(sp->sp_namp, a->name) != 0)
			continue;
		a->has_shadow = true;
		account_classify_hash(sp->sp_pwdp, &a->locked, &a->disabled);
		a->expired = expired_now(sp->sp_expire);
		break;
	}
	fclose(f);
	return 0;
}

static int
files_groups(const char *path, struct account *a, struct psync_err *err)
{
	FILE *f;
	struct group *gr;
	char **m;
	int rc = 0;

	f = fopen(path, "re");
	if (f == NULL) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot open: %s", path,
		    strerror(errno));
		return -1;
	}
	while (rc == 0 && (gr = fgetgrent(f)) != NULL) {
		if (gr->gr_gid == a->gid) {
			rc = add_group(a, gr->gr_name);
			continue;
		}
		for (m = gr->gr_mem; m != NULL && *m != NULL; m++) {
			if (strcmp(*m, a->name) == 0) {
				rc = add_group(a, gr->gr_name);
				break;
			}
		}
	}
	fclose(f);
	if (rc == -1)
		perr_set(err, PSYNC_E_NOT_UPDATED, "out of memory reading %s", path);
	return rc;
}

static int
lookup_files(const struct store_conf *store, const char *name, bool case_ignore,
    struct account *a, struct psync_err *err)
{
	char pw_hash[512] = "";
	int rc;

	rc = files_passwd(store->passwd_file, name, case_ignore, a, pw_hash,
	    sizeof(pw_hash), err);
	if (rc != 0)
		goto done;
	if (store->hashes_in_passwd) {
		a->has_shadow = true;
		account_classify_hash(pw_hash, &a->locked, &a->disabled);
	} else if ((rc = files_shadow(store->shadow_file, a, err)) != 0) {
		goto done;
	}
	rc = files_groups(store->group_file, a, err);
done:
	secure_wipe(pw_hash, sizeof(pw_hash));
	return rc;
}

static int
lookup_nss(const char *name, struct account *a, struct psync_err *err)
{
	struct passwd pwbuf, *pw = NULL;
	struct spwd spbuf, *sp = NULL;
	struct group grbuf, *gr = NULL;
	char buf[16384];
	gid_t gids[ACCOUNT_MAX_GROUPS];
	int ngids = ACCOUNT_MAX_GROUPS, i, e;

	e = getpwnam_r(name, &pwbuf, buf, sizeof(buf), &pw);
	if (pw == NULL) {
		if (e != 0 && e != ENOENT) {
			perr_set(err, PSYNC_E_OPEN, "looking up user %s: %s",
			    name, strerror(e));
			return -1;
		}
		perr_set(err, PSYNC_E_NO_USER, "user %s does not exist", name);
		return 1;
	}
	str_copy(a->name, pw->pw_name, sizeof(a->name));
	a->uid = pw->pw_uid;
	a->gid = pw->pw_gid;
	if (getspnam_r(a->name, &spbuf, buf, sizeof(buf), &sp) == 0 && sp != NULL) {
		a->has_shadow = true;
		account_classify_hash(sp->sp_pwdp, &a->locked, &a->disabled);
		a->expired = expired_now(sp->sp_expire);
	}
	secure_wipe(buf, sizeof(buf));
	if (getgrouplist(a->name, a->gid, gids, &ngids) == -1)
		ngids = ACCOUNT_MAX_GROUPS;
	for (i = 0; i < ngids; i++) {
		if (getgrgid_r(gids[i], &grbuf, buf, sizeof(buf), &gr) == 0 &&
		    gr != NULL && add_group(a, gr->gr_name) == -1) {
			perr_set(err, PSYNC_E_NOT_UPDATED, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ bulk lookups */

struct wanted {
	const char	*key;	/* the requested name */
	size_t		 index;
};

static bool case_fold;

static int
cmp_wanted(const void *a, const void *b)
{
	const struct wanted *x = a, *y = b;

	return case_fold ? strcasecmp(x->key, y->key) : strcmp(x->key, y->key);
}

/* Every requested index whose name matches, as a range of the sorted array. */
static size_t
wanted_range(const struct wanted *w, size_t n, const char *name, size_t *first)
{
	struct wanted probe = { name, 0 };
	const struct wanted *hit;
	size_t lo, hi;

	hit = bsearch(&probe, w, n, sizeof(*w), cmp_wanted);
	if (hit == NULL)
		return 0;
	lo = hi = (size_t)(hit - w);
	while (lo > 0 && cmp_wanted(&w[lo - 1], &probe) == 0)
		lo--;
	while (hi + 1 < n && cmp_wanted(&w[hi + 1], &probe) == 0)
		hi++;
	*first = lo;
	return hi - lo + 1;
}

/*
 * One passwd line's first four fields, in place (the line is modified):
 * 0, or -1 for what fgetpwent(3) would skip (comments, NIS "+"/"-"
 * entries, too few fields, a uid or gid that is not a number). Faster than
 * fgetpwent, which seeks once per entry: a batch against a host with
 * 10,000 accounts reads the file in a few milliseconds.
 */
static int
pw_fields(char *line, struct passwd *pw)
{
	char *f[4], *p = line, *end;
	unsigned long v[2];
	size_t i;

	line[strcspn(line, "\n")] = '\0';
	if (line[0] == '\0' || line[0] == '#' || line[0] == '+' ||
	    line[0] == '-')
		return -1;
	for (i = 0; i < 4; i++) {
		f[i] = p;
		p = strchr(p, ':');
		if (p == NULL)
			return -1;
		*p++ = '\0';
	}
	for (i = 0; i < 2; i++) {
		errno = 0;
		v[i] = strtoul(f[2 + i], &end, 10);
		if (f[2 + i][0] == '\0' || *end != '\0' || errno != 0 ||
		    v[i] > UINT32_MAX)
			return -1;
	}
	memset(pw, 0, sizeof(*pw));
	pw->pw_name = f[0];
	pw->pw_passwd = f[1];
	pw->pw_uid = (uid_t)v[0];
	pw->pw_gid = (gid_t)v[1];
	return 0;
}

/*
 * One shadow line: the name, the hash and the expiry day (-1: none), in
 * place; -1 for a line fgetspent(3) would skip. The same reason as above.
 */
static int
sp_fields(char *line, char **name, char **hash, long *expire)
{
	char *f[9], *p = line, *end;
	size_t i;

	line[strcspn(line, "\n")] = '\0';
	if (line[0] == '\0' || line[0] == '#' || line[0] == '+' ||
	    line[0] == '-')
		return -1;
	for (i = 0; i < 9; i++) {
		f[i] = p;
		p = strchr(p, ':');
		if (p == NULL) {
			if (i != 8)
				return -1;
			break;
		}
		*p++ = '\0';
	}
	*name = f[0];
	*hash = f[1];
	*expire = -1;
	if (f[7][0] != '\0') {
		errno = 0;
		*expire = strtol(f[7], &end, 10);
		if (*end != '\0' || errno != 0)
			return -1;
	}
	return 0;
}

static int
many_passwd(const struct store_conf *store, struct wanted *w, size_t n,
    bool case_ignore, struct account *acct, int *rc, char **hashes,
    struct psync_err *err)
{
	FILE *f;
	struct passwd pwbuf, *pw = &pwbuf;
	char *line = NULL;
	size_t cap = 0, first, k, i;

	f = fopen(store->passwd_file, "re");
	if (f == NULL) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot open: %s",
		    store->passwd_file, strerror(errno));
		return -1;
	}
	while (getline(&line, &cap, f) != -1) {
		if (pw_fields(line, pw) == -1)
			continue;
		k = wanted_range(w, n, pw->pw_name, &first);
		for (i = first; i < first + k; i++) {
			size_t x = w[i].index;
			bool exact = strcmp(w[i].key, pw->pw_name) == 0;

			if (!case_ignore && !exact)
				continue;
			/* An exact match wins; a second folded match is ambiguous. */
			if (rc[x] == 0 && strcmp(acct[x].name, w[i].key) == 0)
				continue;
			if (rc[x] == 0 && !exact) {
				rc[x] = -1;
				continue;
			}
			if (rc[x] == -1 && !exact)
				continue;
			str_copy(acct[x].name, pw->pw_name, sizeof(acct[x].name));
			acct[x].uid = pw->pw_uid;
			acct[x].gid = pw->pw_gid;
			free(hashes[x]);
			hashes[x] = strdup(pw->pw_passwd);
			rc[x] = 0;
		}
	}
	free(line);
	fclose(f);
	return 0;
}

int
account_lookup_many(const struct store_conf *store, const char *const *names,
    size_t n, bool case_ignore, struct account *acct, int *rc,
    struct psync_err *err)
{
	struct wanted *w = NULL, *found = NULL;
	char **hashes = NULL;
	size_t i, nf = 0, first, k, j;
	FILE *f = NULL;
	int ret = -1;

	perr_clear(err);
	for (i = 0; i < n; i++) {
		memset(&acct[i], 0, sizeof(acct[i]));
		rc[i] = 1;
	}
	if (store->type != STORE_FILES) {
		for (i = 0; i < n; i++) {
			rc[i] = account_lookup(store, names[i], case_ignore,
			    &acct[i], err);
			if (rc[i] == -1 && err->code != PSYNC_E_BAD_USER)
				return -1;
		}
		return 0;
	}
	w = calloc(n + 1, sizeof(*w));
	hashes = calloc(n + 1, sizeof(*hashes));
	found = calloc(n + 1, sizeof(*found));
	if (w == NULL || hashes == NULL || found == NULL) {
		perr_set(err, PSYNC_E_NOT_UPDATED, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		w[i].key = names[i];
		w[i].index = i;
	}
	case_fold = case_ignore;
	qsort(w, n, sizeof(*w), cmp_wanted);
	if (many_passwd(store, w, n, case_ignore, acct, rc, hashes, err) == -1)
		goto done;

	/* From here on, look up by the store's own spelling of each name. */
	for (i = 0; i < n; i++) {
		if (rc[i] != 0)
			continue;
		found[nf].key = acct[i].name;
		found[nf++].index = i;
	}
	case_fold = false;
	qsort(found, nf, sizeof(*found), cmp_wanted);
	if (store->hashes_in_passwd) {
		for (i = 0; i < n; i++) {
			if (rc[i] != 0)
				continue;
			acct[i].has_shadow = true;
			account_classify_hash(hashes[i], &acct[i].locked,
			    &acct[i].disabled);
		}
	} else {
		char *line = NULL, *sname, *shash;
		size_t cap = 0;
		long expire;

		f = fopen(store->shadow_file, "re");
		if (f == NULL) {
			perr_set(err, PSYNC_E_OPEN, "%s: cannot open: %s",
			    store->shadow_file, strerror(errno));
			goto done;
		}
		while (getline(&line, &cap, f) != -1) {
			if (sp_fields(line, &sname, &shash, &expire) == -1)
				continue;
			k = wanted_range(found, nf, sname, &first);
			for (j = first; j < first + k; j++) {
				struct account *a = &acct[found[j].index];

				a->has_shadow = true;
				account_classify_hash(shash, &a->locked,
				    &a->disabled);
				a->expired = expired_now(expire);
			}
		}
		if (line != NULL)
			secure_wipe(line, cap);
		free(line);
		fclose(f);
		f = NULL;
	}
	{
		struct group *gr;
		char **m;

		f = fopen(store->group_file, "re");
		if (f == NULL) {
			perr_set(err, PSYNC_E_OPEN, "%s: cannot open: %s",
			    store->group_file, strerror(errno));
			goto done;
		}
		while ((gr = fgetgrent(f)) != NULL) {
			for (i = 0; i < nf; i++) {
				struct account *a = &acct[found[i].index];

				if (a->gid == gr->gr_gid && add_group(a, gr->gr_name) == -1)
					goto oom;
			}
			for (m = gr->gr_mem; m != NULL && *m != NULL; m++) {
				k = wanted_range(found, nf, *m, &first);
				for (j = first; j < first + k; j++)
					if (add_group(&acct[found[j].index],
					    gr->gr_name) == -1)
						goto oom;
			}
		}
	}
	ret = 0;
	goto done;
oom:
	perr_set(err, PSYNC_E_NOT_UPDATED, "out of memory reading %s",
	    store->group_file);
done:
	if (f != NULL)
		fclose(f);
	for (i = 0; hashes != NULL && i < n; i++) {
		if (hashes[i] != NULL)
			secure_wipe(hashes[i], strlen(hashes[i]));
		free(hashes[i]);
	}
	free(hashes);
	free(found);
	free(w);
	if (ret == -1)
		for (i = 0; i < n; i++)
			account_clear(&acct[i]);
	return ret;
}

int
account_lookup(const struct store_conf *store, const char *name,
    bool case_ignore, struct account *a, struct psync_err *err)
{
	int rc;

	memset(a, 0, sizeof(*a));
	perr_clear(err);
	if (store->type == STORE_FILES)
		rc = lookup_files(store, name, case_ignore, a, err);
	else
		rc = lookup_nss(name, a, err);
	if (rc != 0) {
		int code = err != NULL ? err->code : 0;

		account_clear(a);
		if (err != NULL)
			err->code = code;
	}
	return rc;
}
