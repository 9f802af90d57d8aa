/*
 * Fingerprints: knowing that a new password differs from the stored one
 * without running the slow hash.
 *
 * Before it hashes a new password, the files store verifies it against the
 * stored hash: a password that is already there is "unchanged", and that
 * is what stops sync loops. The verify is one run of the slow hash, as
 * costly as hashing the new password, and in a batch of real changes it
 * never matches: it doubles the work. So for every password it writes, or
 * finds already stored, the store keeps a fingerprint: 4 bits of
 * HMAC-SHA256 over the user name, the stored hash and the password, under
 * a key derived from the host key, together with a digest of that stored
 * hash. When the next change for the user finds the same stored hash and
 * its fingerprint differs, the password is certainly a different one and
 * is hashed at once. When the fingerprint matches (the same password, or by
 * chance one in 16 others), or the stored hash is not the one the
 * fingerprint belongs to (passwd ran since), or nothing is known, the
 * verify runs as before: "unchanged" means exactly what it meant.
 *
 * What this gives away: whoever holds the host key, this database and the
 * shadow file can rule out 15 of 16 guesses at a password psync has seen
 * with an HMAC instead of a run of the slow hash (4 bits, no more).
 * Without the host key a fingerprint says nothing. The store option
 * "fingerprints = false" turns them off.
 *
 * The database is only a shortcut: when it cannot be opened, read or
 * written, the store says why in the log and verifies every change.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sqlite3.h>

#include "codes.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

#define FP_DB_NAME	"fingerprints.db"
#define FP_VERSION	1
#define FP_BUSY_MS	2000
#define FP_TAG_MASK	0x0fu

static const char fp_key_label[] = "psync store fingerprint key v1";
static const char fp_id_label[] = "psync store fingerprint key id";

static const char fp_schema[] =
	"CREATE TABLE IF NOT EXISTS meta ("
	"  name TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS fingerprint ("
	"  user TEXT PRIMARY KEY, hash_digest BLOB NOT NULL,"
	"  tag INTEGER NOT NULL) WITHOUT ROWID;";

/* Set by store_fp_enable() before any batch; read-only while batches run. */
static pthread_mutex_t fp_state_lock = PTHREAD_MUTEX_INITIALIZER;
static char fp_path[PATH_MAX];
static unsigned char fp_key[32];
static bool fp_on;

struct store_fp {
	sqlite3		*db;
	sqlite3_stmt	*get;
	sqlite3_stmt	*put;
	bool		 in_txn;
};

static void
fp_dberr(sqlite3 *db, const char *path, const char *what,
    struct psync_err *err)
{
	perr_set(err, PSYNC_E_OPEN, "fingerprints %s: %s: %s", path, what,
	    db != NULL ? sqlite3_errmsg(db) : "out of memory");
}

static int
fp_connect(const char *path, sqlite3 **dbp, struct psync_err *err)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;

#ifdef SQLITE_OPEN_NOFOLLOW
	flags |= SQLITE_OPEN_NOFOLLOW;
#endif
	*dbp = NULL;
	if (state_db_prepare(path, "fingerprints", err) == -1)
		return -1;
	if (sqlite3_open_v2(path, dbp, flags, NULL) != SQLITE_OK ||
	    sqlite3_busy_timeout(*dbp, FP_BUSY_MS) != SQLITE_OK ||
	    sqlite3_db_config(*dbp, SQLITE_DBCONFIG_DEFENSIVE, 1,
	    NULL) != SQLITE_OK ||
	    sqlite3_exec(*dbp, "PRAGMA synchronous = NORMAL", NULL, NULL,
	    NULL) != SQLITE_OK) {
		fp_dberr(*dbp, path, "cannot open", err);
		sqlite3_close(*dbp);
		*dbp = NULL;
		return -1;
	}
	return 0;
}

static int
fp_user_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st,
	    NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : -1;
}

/*
 * Fingerprints made under another host key mean nothing under this one:
 * forget them. Returns 0, or -1 with err.
 */
static int
fp_check_key(sqlite3 *db, const char *path, const unsigned char id[16],
    struct psync_err *err)
{
	sqlite3_stmt *st = NULL;
	bool same = false;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE name = "
	    "'key-id'", -1, &st, NULL) != SQLITE_OK)
		goto fail;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		same = sqlite3_column_bytes(st, 0) == 16 &&
		    memcmp(sqlite3_column_blob(st, 0), id, 16) == 0;
	else if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(st);
	st = NULL;
	if (same)
		return 0;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE; DELETE FROM fingerprint;",
	    NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO meta (name, value) "
	    "VALUES ('key-id', ?1)", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_bind_blob(st, 1, id, 16, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_DONE ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_finalize(st);
	return 0;
fail:
	fp_dberr(db, path, "cannot set up", err);
	sqlite3_finalize(st);
	(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Create or check the schema. Returns 0, or -1 with err. */
static int
fp_setup(const char *path, const unsigned char id[16], struct psync_err *err)
{
	sqlite3 *db = NULL;
	int version = -1, rc = -1;

	if (fp_connect(path, &db, err) == -1)
		return -1;
	if (sqlite3_exec(db, "PRAGMA journal_mode = WAL", NULL, NULL,
	    NULL) != SQLITE_OK || fp_user_version(db, &version) == -1) {
		fp_dberr(db, path, "cannot read", err);
		goto done;
	}
	if (version > FP_VERSION) {
		perr_set(err, PSYNC_E_OPEN, "fingerprints %s: made by a newer "
		    "psync (version %d); move it away", path, version);
		goto done;
	}
	if (sqlite3_exec(db, fp_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA user_version = 1", NULL, NULL,
	    NULL) != SQLITE_OK) {
		fp_dberr(db, path, "cannot create the tables", err);
		goto done;
	}
	rc = fp_check_key(db, path, id, err);
done:
	sqlite3_close(db);
	return rc;
}

static void
fp_remove(const char *path)
{
	char side[PATH_MAX + 8];

	(void)unlink(path);
	snprintf(side, sizeof(side), "%s-wal", path);
	(void)unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	(void)unlink(side);
}

int
store_fp_enable(const char *dir, const unsigned char host_key[32],
    struct psync_err *err)
{
	unsigned char key[32], id[32];
	unsigned int klen = sizeof(key), ilen = sizeof(id);
	char path[PATH_MAX];
	int rc = -1;

	store_fp_disable();
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
	    FP_DB_NAME) >= sizeof(path)) {
		perr_set(err, PSYNC_E_OPEN, "fingerprints in %s: path too long",
		    dir);
		return -1;
	}
	if (HMAC(EVP_sha256(), host_key, 32, (const unsigned char *)fp_key_label,
	    sizeof(fp_key_label) - 1, key, &klen) == NULL ||
	    HMAC(EVP_sha256(), key, sizeof(key),
	    (const unsigned char *)fp_id_label, sizeof(fp_id_label) - 1, id,
	    &ilen) == NULL) {
		perr_set(err, PSYNC_E_OPEN, "fingerprints: HMAC-SHA256 failed");
		goto done;
	}
	if (state_dir_prepare(dir, "fingerprints", err) == -1)
		goto done;
	if (fp_setup(path, id, err) == -1) {
		/* Only a shortcut: a damaged database is made anew. */
		if (strstr(err->msg, "malformed") == NULL &&
		    strstr(err->msg, "not a database") == NULL)
			goto done;
		log_warnx("store: %s; starting a new one", err->msg);
		fp_remove(path);
		if (fp_setup(path, id, err) == -1)
			goto done;
	}
	pthread_mutex_lock(&fp_state_lock);
	memcpy(fp_key, key, sizeof(fp_key));
	str_copy(fp_path, path, sizeof(fp_path));
	fp_on = true;
	pthread_mutex_unlock(&fp_state_lock);
	rc = 0;
done:
	secure_wipe(key, sizeof(key));
	return rc;
}

void
store_fp_disable(void)
{
	pthread_mutex_lock(&fp_state_lock);
	fp_on = false;
	secure_wipe(fp_key, sizeof(fp_key));
	fp_path[0] = '\0';
	pthread_mutex_unlock(&fp_state_lock);
}

struct store_fp *
store_fp_open(void)
{
	struct store_fp *fp;
	struct psync_err err;
	char path[PATH_MAX];
	bool on;

	pthread_mutex_lock(&fp_state_lock);
	on = fp_on;
	str_copy(path, fp_path, sizeof(path));
	pthread_mutex_unlock(&fp_state_lock);
	if (!on)
		return NULL;
	if ((fp = calloc(1, sizeof(*fp))) == NULL) {
		log_warnx("store: fingerprints: out of memory; verifying every "
		    "change");
		return NULL;
	}
	perr_clear(&err);
	if (fp_connect(path, &fp->db, &err) == -1)
		goto fail;
	if (sqlite3_prepare_v2(fp->db, "SELECT hash_digest, tag FROM "
	    "fingerprint WHERE user = ?1", -1, &fp->get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(fp->db, "INSERT OR REPLACE INTO fingerprint "
	    "(user, hash_digest, tag) VALUES (?1, ?2, ?3)", -1, &fp->put,
	    NULL) != SQLITE_OK) {
		fp_dberr(fp->db, path, "cannot read", &err);
		goto fail;
	}
	return fp;
fail:
	log_warnx("store: %s; verifying every change", err.msg);
	store_fp_close(fp);
	return NULL;
}

void
store_fp_close(struct store_fp *fp)
{
	if (fp == NULL)
		return;
	if (fp->in_txn)
		(void)sqlite3_exec(fp->db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_finalize(fp->get);
	sqlite3_finalize(fp->put);
	sqlite3_close(fp->db);
	free(fp);
}

bool
store_fp_get(struct store_fp *fp, const char *user,
    unsigned char digest[STORE_FP_DIGEST_LEN], unsigned int *tag)
{
	bool found = false;

	if (sqlite3_bind_text(fp->get, 1, user, -1, SQLITE_STATIC) == SQLITE_OK &&
	    sqlite3_step(fp->get) == SQLITE_ROW &&
	    sqlite3_column_bytes(fp->get, 0) == STORE_FP_DIGEST_LEN) {
		memcpy(digest, sqlite3_column_blob(fp->get, 0),
		    STORE_FP_DIGEST_LEN);
		*tag = (unsigned int)sqlite3_column_int(fp->get, 1) &
		    FP_TAG_MASK;
		found = true;
	}
	sqlite3_reset(fp->get);
	sqlite3_clear_bindings(fp->get);
	return found;
}

int
store_fp_put(struct store_fp *fp, const char *user,
    const unsigned char digest[STORE_FP_DIGEST_LEN], unsigned int tag)
{
	int rc;

	if (!fp->in_txn) {
		if (sqlite3_exec(fp->db, "BEGIN IMMEDIATE", NULL, NULL,
		    NULL) != SQLITE_OK)
			return -1;
		fp->in_txn = true;
	}
	if (sqlite3_bind_text(fp->put, 1, user, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_blob(fp->put, 2, digest, STORE_FP_DIGEST_LEN,
	    SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_int(fp->put, 3, (int)(tag & FP_TAG_MASK)) != SQLITE_OK)
		rc = SQLITE_ERROR;
	else
		rc = sqlite3_step(fp->put);
	sqlite3_reset(fp->put);
	sqlite3_clear_bindings(fp->put);
	return rc == SQLITE_DONE ? 0 : -1;
}

int
store_fp_commit(struct store_fp *fp)
{
	if (!fp->in_txn)
		return 0;
	fp->in_txn = false;
	if (sqlite3_exec(fp->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
		return 0;
	(void)sqlite3_exec(fp->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

const char *
store_fp_error(struct store_fp *fp)
{
	return sqlite3_errmsg(fp->db);
}

void
store_fp_digest(const char *hash, unsigned char digest[STORE_FP_DIGEST_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (EVP_Digest(hash, strlen(hash), md, &len, EVP_sha256(), NULL) != 1 ||
	    len < STORE_FP_DIGEST_LEN) {
		/* Never equal to a stored digest of a real hash. */
		memset(digest, 0, STORE_FP_DIGEST_LEN);
		return;
	}
	memcpy(digest, md, STORE_FP_DIGEST_LEN);
}

int
store_fp_tag(const char *user, const char *hash, const char *password)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	size_t ulen = strlen(user), hlen = strlen(hash), plen = strlen(password);
	unsigned char *msg;
	int tag = -1;

	/* user NUL hash NUL password: neither name nor hash holds a NUL. */
	msg = malloc(ulen + hlen + plen + 2);
	if (msg == NULL)
		return -1;
	memcpy(msg, user, ulen + 1);
	memcpy(msg + ulen + 1, hash, hlen + 1);
	memcpy(msg + ulen + hlen + 2, password, plen);
	if (HMAC(EVP_sha256(), fp_key, sizeof(fp_key), msg,
	    ulen + hlen + plen + 2, md, &len) != NULL && len > 0)
		tag = (int)(md[0] & FP_TAG_MASK);
	secure_wipe(msg, ulen + hlen + plen + 2);
	free(msg);
	secure_wipe(md, sizeof(md));
	return tag;
}
