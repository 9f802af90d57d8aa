/*
 * A psync peer's keys during rotation (keys.h). The files hold the keys,
 * the queue database's node state holds the ids:
 *
 *   rk:<peer hash>  "<id> <fingerprint>"                 the current key
 *   rp:<peer hash>  "<id> <fingerprint> ours|theirs <ms>" the next key
 *
 * Every step writes the file first and the state second, so a crash
 * between the two is recognised by the fingerprints on the next load: a
 * pending record whose fingerprint is the key file's means the rename of
 * a promotion happened, and the state is completed; a current record that
 * does not match the key file means someone replaced the file by hand,
 * which ends a rotation under way but keeps the id (ids only grow).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "codes.h"
#include "keys.h"
#include "log.h"

#define FP_HEX		16	/* fingerprint: 8 bytes of SHA-256, in hex */
#define STATE_KEY_LEN	(3 + FP_HEX + 1)

static void
hash_hex(const void *p, size_t n, char out[FP_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	size_t i;

	if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen < FP_HEX / 2)
		memset(md, 0, sizeof(md));
	for (i = 0; i < FP_HEX / 2; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[FP_HEX] = '\0';
	secure_wipe(md, sizeof(md));
}

/* State keys are short: a hash of the peer's name stands for it. */
static void
state_key(char kind, const char *peer, char out[STATE_KEY_LEN])
{
	char h[FP_HEX + 1];

	hash_hex(peer, strlen(peer), h);
	snprintf(out, STATE_KEY_LEN, "r%c:%s", kind, h);
}

static int
pending_path(const struct peer_conf *pc, char *out, size_t len,
    struct psync_err *err)
{
	int n = snprintf(out, len, "%s%s", pc->key_file, KEYS_PENDING_SUFFIX);

	if (n < 0 || (size_t)n >= len) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: key file name %s is too "
		    "long", pc->name, pc->key_file);
		return -1;
	}
	return 0;
}

static void
sync_dir_of(const char *path)
{
	struct psync_err err;

	if (dir_fsync_of(path, &err) == -1)
		log_warnx("%s", err.msg);
}

struct rec {
	bool		found;
	uint32_t	id;
	char		fp[FP_HEX + 1];
	bool		ours;
	uint64_t	ms;
};

/* Read one record; a malformed one counts as absent (and is logged). */
static int
rec_get(struct queue *q, char kind, const struct peer_conf *pc,
    struct rec *r, struct psync_err *err)
{
	char key[STATE_KEY_LEN], val[128], who[8];
	unsigned long long ms = 0;
	size_t len = 0;
	unsigned int id;
	int rc, n;

	memset(r, 0, sizeof(*r));
	state_key(kind, pc->name, key);
	rc = queue_state_get(q, key, val, sizeof(val) - 1, &len, err);
	if (rc <= 0)
		return rc;
	val[len] = '\0';
	if (kind == 'k')
		n = sscanf(val, "%u %16[0-9a-f]", &id, r->fp) == 2 ? 4 : 0;
	else
		n = sscanf(val, "%u %16[0-9a-f] %7s %llu", &id, r->fp, who, &ms);
	if (n != 4 || strlen(r->fp) != FP_HEX || (kind == 'p' &&
	    strcmp(who, "ours") != 0 && strcmp(who, "theirs") != 0)) {
		log_warnx("peer %s: malformed key state '%s' ignored",
		    pc->name, val);
		memset(r, 0, sizeof(*r));
		return 0;
	}
	r->found = true;
	r->id = id;
	r->ours = kind == 'p' && strcmp(who, "ours") == 0;
	r->ms = ms;
	return 1;
}

static int
rec_set_current(struct queue *q, const struct peer_conf *pc, uint32_t id,
    const unsigned char k[WIRE_KEY_LEN], struct psync_err *err)
{
	char key[STATE_KEY_LEN], val[64], fp[FP_HEX + 1];

	state_key('k', pc->name, key);
	hash_hex(k, WIRE_KEY_LEN, fp);
	snprintf(val, sizeof(val), "%u %s", id, fp);
	return queue_state_set(q, key, val, strlen(val), err);
}

static int
rec_del_pending(struct queue *q, const struct peer_conf *pc,
    struct psync_err *err)
{
	char key[STATE_KEY_LEN];

	state_key('p', pc->name, key);
	return queue_state_del(q, key, err);
}

static uint64_t
mtime_ms(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return 0;
	return (uint64_t)st.st_mtim.tv_sec * 1000 +
	    (uint64_t)st.st_mtim.tv_nsec / 1000000;
}

/* Drop a pending key that cannot be used: its file and its record. */
static void
discard_pending(struct queue *q, const struct peer_conf *pc,
    const char *path, const char *why)
{
	struct psync_err err;

	log_warnx("peer %s: pending key %s discarded: %s", pc->name, path,
	    why);
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("peer %s: cannot remove %s", pc->name, path);
	if (rec_del_pending(q, pc, &err) == -1)
		log_warnx("peer %s: %s", pc->name, err.msg);
}

int
keys_load(struct queue *q, const struct peer_conf *pc, struct key_state *ks,
    struct psync_err *err)
{
	char path[PATH_MAX], fp[FP_HEX + 1], nfp[FP_HEX + 1];
	struct psync_err perr;
	struct rec cur, pend;
	int rc = -1;

	memset(ks, 0, sizeof(*ks));
	if (pending_path(pc, path, sizeof(path), err) == -1)
		goto done;
	if (keyfile_read(pc->key_file, ks->cur, err) == -1)
		goto done;
	ks->cur_since_ms = mtime_ms(pc->key_file);
	hash_hex(ks->cur, WIRE_KEY_LEN, fp);
	if (rec_get(q, 'k', pc, &cur, err) == -1 ||
	    rec_get(q, 'p', pc, &pend, err) == -1)
		goto done;
	if (pend.found && strcmp(pend.fp, fp) == 0) {
		/* A promotion renamed the file, then stopped: finish it. */
		ks->cur_id = pend.id;
		if (rec_set_current(q, pc, pend.id, ks->cur, err) == -1 ||
		    rec_del_pending(q, pc, err) == -1)
			goto done;
		log_info("peer %s: key id %u completed after an interruption",
		    pc->name, pend.id);
		rc = 0;
		goto done;
	}
	if (!cur.found) {
		/* First sight of this key: it is id 0 from now on. */
		if (rec_set_current(q, pc, 0, ks->cur, err) == -1)
			goto done;
	} else if (strcmp(cur.fp, fp) == 0) {
		ks->cur_id = cur.id;
	} else {
		/* The key file was replaced by hand (keygen, set-key): it
		   keeps the id, since ids only grow, and a rotation under
		   way is over. */
		ks->cur_id = cur.id;
		log_info("peer %s: %s was written by hand: key id %u", pc->name,
		    pc->key_file, cur.id);
		if (pend.found)
			discard_pending(q, pc, path, "the key file was "
			    "replaced by hand");
		if (rec_set_current(q, pc, cur.id, ks->cur, err) == -1)
			goto done;
		rc = 0;
		goto done;
	}
	if (!pend.found) {
		rc = 0;
		goto done;
	}
	if (keyfile_read(path, ks->next, &perr) == -1) {
		discard_pending(q, pc, path, perr.msg);
		rc = 0;
		goto done;
	}
	hash_hex(ks->next, WIRE_KEY_LEN, nfp);
	if (strcmp(nfp, pend.fp) != 0 || pend.id <= ks->cur_id) {
		secure_wipe(ks->next, sizeof(ks->next));
		discard_pending(q, pc, path, "it does not match its record");
		rc = 0;
		goto done;
	}
	ks->has_next = true;
	ks->next_ours = pend.ours;
	ks->next_id = pend.id;
	ks->next_since_ms = pend.ms;
	rc = 0;
done:
	if (rc == -1)
		keys_wipe(ks);
	return rc;
}

int
keys_set_next(struct queue *q, const struct peer_conf *pc, uint32_t id,
    const unsigned char key[WIRE_KEY_LEN], bool ours, struct psync_err *err)
{
	char path[PATH_MAX], skey[STATE_KEY_LEN], val[96], fp[FP_HEX + 1];

	if (pending_path(pc, path, sizeof(path), err) == -1)
		return -1;
	if (keyfile_write(path, key, true, err) == -1)
		return -1;
	hash_hex(key, WIRE_KEY_LEN, fp);
	state_key('p', pc->name, skey);
	snprintf(val, sizeof(val), "%u %s %s %" PRIu64, id, fp,
	    ours ? "ours" : "theirs", clock_wall_ms());
	return queue_state_set(q, skey, val, strlen(val), err);
}

int
keys_promote(struct queue *q, const struct peer_conf *pc,
    struct psync_err *err)
{
	struct key_state ks;
	char path[PATH_MAX];
	int rc = -1;

	if (keys_load(q, pc, &ks, err) == -1)
		return -1;
	if (!ks.has_next) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: no pending key to make "
		    "current", pc->name);
		goto done;
	}
	if (pending_path(pc, path, sizeof(path), err) == -1)
		goto done;
	if (rename(path, pc->key_file) == -1) {
		perr_set(err, PSYNC_E_WRITE, "peer %s: cannot rename %s to %s: "
		    "%s", pc->name, path, pc->key_file, strerror(errno));
		goto done;
	}
	sync_dir_of(pc->key_file);
	/* The key's age starts now, not when it was proposed. */
	if (utimensat(AT_FDCWD, pc->key_file, NULL, 0) == -1)
		log_warn("peer %s: cannot set the time of %s", pc->name,
		    pc->key_file);
	if (rec_set_current(q, pc, ks.next_id, ks.next, err) == -1 ||
	    rec_del_pending(q, pc, err) == -1)
		goto done;
	rc = 0;
done:
	keys_wipe(&ks);
	return rc;
}

int
keys_drop_next(struct queue *q, const struct peer_conf *pc,
    struct psync_err *err)
{
	char path[PATH_MAX];

	if (pending_path(pc, path, sizeof(path), err) == -1)
		return -1;
	if (unlink(path) == -1 && errno != ENOENT) {
		perr_set(err, PSYNC_E_WRITE, "peer %s: cannot remove %s: %s",
		    pc->name, path, strerror(errno));
		return -1;
	}
	return rec_del_pending(q, pc, err);
}

void
keys_wipe(struct key_state *ks)
{
	secure_wipe(ks, sizeof(*ks));
}
