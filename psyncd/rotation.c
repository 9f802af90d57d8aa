/*
 * psync key rotation (doc/psyncd.md, "Key rotation"): our proposals, the
 * peer's proposals, confirmations, promotions, and the automatic timer.
 * Keys live in key files and queue state (keys.c); the child only ever
 * sees them through the peer table.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "account.h"
#include "codes.h"
#include "keys.h"
#include "log.h"
#include "mepp.h"
#include "mepp_net.h"
#include "names.h"
#include "pmsg.h"
#include "policy.h"
#include "psyncd.h"
#include "queue.h"
#include "samba_applied.h"
#include "seal.h"
#include "spool.h"
#include "store.h"
#include "wire.h"

#define ROT_TIMEOUT_MS		(120 * 1000)
#define ROT_RETRY_MS		(60 * 1000)	/* re-propose a pending key */
#define ROT_CHECK_MS		(60 * 1000)	/* automatic rotation check */
#define DAY_SECONDS		(24 * 3600)

/*
 * Test knobs, read only when psyncd runs with -d: PSYNCD_TEST_DAY_SECONDS
 * makes key-rotation-days count in units of that many seconds, and
 * PSYNCD_TEST_CRASH=key-stored|key-confirmed|key-promoted kills the parent
 * at that point of a rotation, as a power cut would.
 */
static unsigned int
day_seconds(struct psyncd *d)
{
	const char *v;
	unsigned long n;
	char *end;

	if (!d->opts->debug || (v = getenv("PSYNCD_TEST_DAY_SECONDS")) == NULL)
		return DAY_SECONDS;
	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno != 0 || *end != '\0' || n == 0 || n > DAY_SECONDS)
		return DAY_SECONDS;
	return (unsigned int)n;
}

void
test_crash(struct psyncd *d, const char *point)
{
	const char *v;

	if (!d->opts->debug || (v = getenv("PSYNCD_TEST_CRASH")) == NULL ||
	    strcmp(v, point) != 0)
		return;
	log_warnx("PSYNCD_TEST_CRASH=%s: killing psyncd here", point);
	(void)raise(SIGKILL);
}

static struct rotation *
rot_find(struct psyncd *d, uint32_t reqid)
{
	size_t i;

	for (i = 0; i < d->n_rots; i++)
		if (d->rots[i].reqid == reqid)
			return &d->rots[i];
	return NULL;
}

static bool
rot_busy(struct psyncd *d, const char *peer, uint64_t now)
{
	size_t i;

	for (i = 0; i < d->n_rots; i++) {
		if (now - d->rots[i].sent_ms > ROT_TIMEOUT_MS) {
			d->rots[i--] = d->rots[--d->n_rots];
			continue;
		}
		if (strcmp(d->rots[i].peer, peer) == 0)
			return true;
	}
	return false;
}

bool
rotatable(const struct peer_conf *pc)
{
	return pc->protocol == PROTO_PSYNC && pc->key_file != NULL &&
	    pc->key_file[0] != '\0' && (pc->ca_file == NULL ||
	    pc->ca_file[0] == '\0');
}

/*
 * Propose a next key to a peer: the pending one again when our earlier
 * proposal was not confirmed, else a new one. The key is on disk before
 * it leaves, so whatever happens next, both ends can go on.
 */
static int
propose(struct psyncd *d, const struct peer_conf *pc, bool control, uint32_t *reqid,
    struct sbuf *out)
{
	struct key_state ks;
	struct psync_err err;
	struct rotation *r;
	struct pmsg m;
	uint64_t now = clock_wall_ms();
	int rc = -1;

	memset(&m, 0, sizeof(m));
	if (rot_busy(d, pc->name, now) || d->n_rots >= ROT_MAX) {
		sbuf_printf(out, "a key proposal to peer %s is already under "
		    "way\n", pc->name);
		goto done;
	}
	if (keys_load(d->q, pc, &ks, &err) == -1) {
		sbuf_printf(out, "cannot read the keys of peer %s: %s\n",
		    pc->name, err.msg);
		goto done;
	}
	if (ks.has_next && !ks.next_ours) {
		sbuf_printf(out, "peer %s proposed key id %u itself; it becomes "
		    "current at the next connection between the two nodes\n",
		    pc->name, ks.next_id);
		goto done;
	}
	if (!ks.has_next) {
		if (ks.cur_id == UINT32_MAX) {
			sbuf_printf(out, "peer %s: key ids are exhausted; give "
			    "both nodes a new key with set-key\n", pc->name);
			goto done;
		}
		ks.next_id = ks.cur_id + 1;
		if (keyfile_generate(ks.next, &err) == -1 ||
		    keys_set_next(d->q, pc, ks.next_id, ks.next, true,
		    &err) == -1 || peers_resend(d, &err) == -1) {
			sbuf_printf(out, "cannot store a new key for peer %s: "
			    "%s\n", pc->name, err.msg);
			goto done;
		}
		log_info("peer %s: new key id %u stored as pending; proposing "
		    "it", pc->name, ks.next_id);
	} else {
		log_info("peer %s: proposing the pending key id %u again",
		    pc->name, ks.next_id);
	}
	m.type = PMSG_KEY_PROPOSE;
	m.reqid = ++d->next_reqid;
	str_copy(m.u.kpropose.peer, pc->name, sizeof(m.u.kpropose.peer));
	m.u.kpropose.key_id = ks.next_id;
	memcpy(m.u.kpropose.key, ks.next, WIRE_KEY_LEN);
	r = &d->rots[d->n_rots++];
	memset(r, 0, sizeof(*r));
	str_copy(r->peer, pc->name, sizeof(r->peer));
	r->reqid = m.reqid;
	r->key_id = ks.next_id;
	r->sent_ms = now;
	r->control = control;
	if (reqid != NULL)
		*reqid = m.reqid;
	monitor_send(d, &m);
	rc = 0;
done:
	pmsg_wipe(&m);
	keys_wipe(&ks);
	return rc;
}

int
rotation_start(struct psyncd *d, const char *peer, uint32_t *reqid, struct sbuf *out)
{
	const struct peer_conf *pc;

	pc = config_find_peer(d->conf, peer);
	if (pc == NULL) {
		sbuf_printf(out, "no peer '%s' in %s\n", peer, d->conf->path);
		return -1;
	}
	if (!rotatable(pc)) {
		sbuf_printf(out, "peer %s has no psync key-file to rotate (MEPP "
		    "keys and certificates are not rotated by psync)\n", peer);
		return -1;
	}
	return propose(d, pc, true, reqid, out);
}

/* Make the next key current and tell the child; logs either way. */
static void
promote(struct psyncd *d, const struct peer_conf *pc, uint32_t id, const char *why)
{
	struct psync_err err;

	if (keys_promote(d->q, pc, &err) == -1) {
		log_warnx("peer %s: cannot make key id %u current: %s; both "
		    "keys stay accepted", pc->name, id, err.msg);
		return;
	}
	log_info("peer %s: key id %u is now current (%s); the old key is "
	    "refused from now on", pc->name, id, why);
	test_crash(d, "key-promoted");
	if (peers_resend(d, &err) == -1)
		log_warnx("peer %s: %s", pc->name, err.msg);
}

void
rotation_proposed(struct psyncd *d, uint32_t reqid, const struct pmsg_key_proposed *kp)
{
	const struct peer_conf *pc;
	struct key_state ks;
	struct psync_err err;
	int code = PSYNC_E_REFUSED;
	char why[PMSG_TEXT_MAX + 1];

	memset(&ks, 0, sizeof(ks));
	why[0] = '\0';
	/* monitor.c checked that it is a rotatable psync peer. */
	pc = config_find_peer(d->conf, kp->peer);
	if (pc == NULL)
		goto done;
	if (keys_load(d->q, pc, &ks, &err) == -1) {
		code = PSYNC_E_OPEN;
		snprintf(why, sizeof(why), "%s", err.msg);
		goto done;
	}
	/* The child names the peer its TLS handshake authenticated (the
	   PSK identity's name, checked against the key we hold for it); the
	   identity's id only says which of our keys it used. */
	if (ks.has_next && kp->auth_id == ks.next_id)
		log_debug("peer %s proposes over a connection made with our "
		    "next key id %u", pc->name, kp->auth_id);
	/* Ids only grow; the peer's count may be ahead of ours (a key file
	   copied by hand), never behind, or the ids would mix up. */
	if (kp->key_id <= ks.cur_id) {
		snprintf(why, sizeof(why), "key id %u is not above the current "
		    "id %u here; rotate from %s instead", kp->key_id,
		    ks.cur_id, d->conf->node_name);
		goto done;
	}
	if (ks.has_next && ks.next_ours) {
		/* Both proposed at once: the smaller node name wins. */
		if (strcmp(pc->name, d->conf->node_name) > 0) {
			snprintf(why, sizeof(why), "%s proposed key id %u "
			    "itself; its proposal wins", d->conf->node_name,
			    ks.next_id);
			goto done;
		}
		log_info("peer %s: its proposal of key id %u wins over ours",
		    pc->name, kp->key_id);
	}
	if (!(ks.has_next && !ks.next_ours && memcmp(ks.next, kp->key,
	    WIRE_KEY_LEN) == 0)) {
		if (keys_set_next(d->q, pc, kp->key_id, kp->key, false,
		    &err) == -1) {
			code = PSYNC_E_WRITE;
			snprintf(why, sizeof(why), "%s", err.msg);
			goto done;
		}
	}
	test_crash(d, "key-stored");
	if (peers_resend(d, &err) == -1) {
		code = PSYNC_E_OPEN;
		snprintf(why, sizeof(why), "%s", err.msg);
		goto done;
	}
	log_info("peer %s proposed key id %u: stored as pending; both keys "
	    "are accepted until the peer uses the new one", pc->name,
	    kp->key_id);
	code = PSYNC_OK;
done:
	if (code != PSYNC_OK)
		log_warnx("peer %s: key proposal refused: %s", kp->peer, why);
	monitor_answer(d, reqid, code, "%s", code == PSYNC_OK ? "stored" : why);
	keys_wipe(&ks);
}

void
rotation_result(struct psyncd *d, uint32_t reqid, const struct pmsg_key_result *kr)
{
	const struct peer_conf *pc;
	struct rotation r, *rp;
	struct key_state ks;
	struct psync_err err;
	char msg[PMSG_TEXT_MAX + FRAME_NAME_MAX + 256];
	bool ok = false;

	memset(&ks, 0, sizeof(ks));
	rp = rot_find(d, reqid);
	if (rp == NULL || strcmp(rp->peer, kr->peer) != 0 ||
	    rp->key_id != kr->key_id) {
		log_warnx("network child reported a key result for peer %s "
		    "that was not asked for; ignored", kr->peer);
		return;
	}
	r = *rp;
	*rp = d->rots[--d->n_rots];
	pc = config_find_peer(d->conf, kr->peer);
	if (kr->code != 0) {
		snprintf(msg, sizeof(msg), "peer %s did not confirm key id %u: "
		    "%s; the new key stays pending and both are accepted",
		    kr->peer, kr->key_id, kr->reason);
		log_warnx("%s", msg);
		goto done;
	}
	if (pc == NULL || keys_load(d->q, pc, &ks, &err) == -1) {
		snprintf(msg, sizeof(msg), "peer %s confirmed key id %u, but "
		    "its keys cannot be read here: %s", kr->peer, kr->key_id,
		    pc == NULL ? "no longer configured" : err.msg);
		log_warnx("%s", msg);
		goto done;
	}
	log_info("peer %s confirmed key id %u", pc->name, kr->key_id);
	test_crash(d, "key-confirmed");
	if (ks.has_next && ks.next_ours && ks.next_id == kr->key_id)
		promote(d, pc, kr->key_id, "confirmed by the peer");
	keys_wipe(&ks);
	if (keys_load(d->q, pc, &ks, &err) == 0 && ks.cur_id == kr->key_id &&
	    !ks.has_next) {
		snprintf(msg, sizeof(msg), "Key for peer %s rotated: key id %u "
		    "confirmed by the peer and now current", pc->name,
		    kr->key_id);
		ok = true;
	} else {
		snprintf(msg, sizeof(msg), "peer %s confirmed key id %u, but "
		    "it could not be made current here (logged)", pc->name,
		    kr->key_id);
	}
done:
	keys_wipe(&ks);
	if (r.control)
		control_key_result(d, reqid, ok, msg);
}

void
rotation_used(struct psyncd *d, const struct pmsg_key_used *ku)
{
	const struct peer_conf *pc;
	struct key_state ks;
	struct psync_err err;

	/* monitor.c checked that it is a rotatable psync peer. */
	pc = config_find_peer(d->conf, ku->peer);
	if (pc == NULL)
		return;
	if (keys_load(d->q, pc, &ks, &err) == -1) {
		log_warnx("peer %s: %s", pc->name, err.msg);
		return;
	}
	if (ks.has_next && ks.next_id == ku->key_id)
		promote(d, pc, ku->key_id, "the peer authenticated with it");
	else if (ks.cur_id != ku->key_id)
		log_warnx("network child: peer %s used key id %u, which is "
		    "neither current (%u) nor pending; ignored", pc->name,
		    ku->key_id, ks.cur_id);
	keys_wipe(&ks);
}

/* Automatic rotation, and another try for an unconfirmed proposal. */
void
rotation_tick(struct psyncd *d, uint64_t now)
{
	const struct peer_conf *pc;
	struct sbuf out = { NULL, 0, 0, false };
	struct key_state ks;
	struct psync_err err;
	uint64_t day_ms = (uint64_t)day_seconds(d) * 1000, check;
	size_t i;

	check = day_ms < ROT_CHECK_MS ? day_ms / 2 : ROT_CHECK_MS;
	if (now - d->rot_last_check < check)
		return;
	d->rot_last_check = now;
	for (i = 0; i < d->conf->n_peers; i++) {
		pc = &d->conf->peers[i];
		if (!rotatable(pc) || pc->key_rotation_days == 0 ||
		    pc->address == NULL || pc->address[0] == '\0' ||
		    rot_busy(d, pc->name, now))
			continue;
		if (keys_load(d->q, pc, &ks, &err) == -1) {
			log_warnx("automatic key rotation: %s", err.msg);
			continue;
		}
		if ((ks.has_next && ks.next_ours && now - ks.next_since_ms >=
		    (ROT_RETRY_MS < day_ms ? ROT_RETRY_MS : day_ms)) ||
		    (!ks.has_next && now - ks.cur_since_ms >=
		    (uint64_t)pc->key_rotation_days * day_ms)) {
			log_info("peer %s: key id %u is older than %u days "
			    "(key-rotation-days): rotating", pc->name,
			    ks.cur_id, pc->key_rotation_days);
			if (propose(d, pc, false, NULL, &out) == -1)
				log_warnx("automatic key rotation: %s",
				    out.p != NULL ? out.p : "failed");
			sbuf_free(&out);
		}
		keys_wipe(&ks);
	}
}
