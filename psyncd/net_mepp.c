/*
 * The MEPP peer protocol in the network child: the listener for legacy
 * Windows peers (its socket bound by the parent, its peer table and keys
 * from the parent's table, swapped on every reload), the delivery of
 * outbound changes (one connection per change), and the channel check.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "config_file.h"
#include "log.h"
#include "mepp.h"
#include "mepp_net.h"
#include "net.h"

/* The listener's decision: the parent judges, as for every change. */
static int
mepp_decide(void *ctx, const char *peer, int type, const char *user,
    const char *password)
{
	struct net *n = ctx;
	struct psync_err err;
	struct waiter w;
	struct pmsg m;
	size_t plen = strlen(password);
	int code;

	if (strlen(user) == 0 || strlen(user) > FRAME_USER_MAX ||
	    strlen(peer) == 0 || strlen(peer) > FRAME_NAME_MAX)
		return PSYNC_E_BAD_USER;
	if (plen == 0 || plen > FRAME_SECRET_MAX)
		return PSYNC_E_BAD_PASSWORD;
	memset(&m, 0, sizeof(m));
	m.type = PMSG_INBOUND;
	m.u.inbound.protocol = PROTO_MEPP;
	m.u.inbound.mepp_type = type == MEPP_TYPE_CHECK ? 2 : 0;
	str_copy(m.u.inbound.peer, peer, sizeof(m.u.inbound.peer));
	/* The parent gives a MEPP change its id and time. */
	str_copy(m.u.inbound.change.origin, peer,
	    sizeof(m.u.inbound.change.origin));
	str_copy(m.u.inbound.change.user, user, sizeof(m.u.inbound.change.user));
	m.u.inbound.change.secret_kind = FRAME_SECRET_CLEARTEXT;
	memcpy(m.u.inbound.change.secret, password, plen);
	m.u.inbound.change.secret_len = (uint16_t)plen;
	/* The change type's rules, here: the parent takes a change that
	   breaks them as a sign of a broken child, and stops. */
	code = change_check(&m.u.inbound.change, &err);
	if (code != PSYNC_OK) {
		log_peer_warnx(peer, "MEPP: a change from %s refused: %s",
		    peer, log_str(err.msg));
		pmsg_wipe(&m);
		return code;
	}
	net_waiter_add(n, &w);
	m.reqid = w.reqid;
	if (net_send_parent(n, &m) == -1) {
		w.done = true;
		w.code = PSYNC_E_UPDATE_FAILED;
	}
	net_waiters_wait(n, &w, 1, CHILD_REPLY_TIMEOUT_MS);
	return w.code;
}

static int
mepp_prepare(struct net *n)
{
	struct mepp_listener_conf lc;
	struct psync_err err;

	memset(&lc, 0, sizeof(lc));
	lc.decide = mepp_decide;
	lc.ctx = n;
	/* Requests that arrive together reach the parent together and are
	   applied as one batch, hashed on every core. */
	lc.concurrent_decisions = true;
	n->mepp = mepp_listener_adopt(NET_FD_MEPP, &lc, &err);
	if (n->mepp == NULL) {
		log_warnx("network child: %s", err.msg);
		return -1;
	}
	return 0;
}

static void *
mepp_listen_thread(void *arg)
{
	struct net *n = arg;

	if (mepp_listener_run(n->mepp) == -1)
		log_warnx("MEPP listener stopped on an error");
	return NULL;
}

static void
mepp_start(struct net *n)
{
	if (n->mepp == NULL)
		return;
	if (pthread_create(&n->mepp_thread, NULL, mepp_listen_thread, n) != 0)
		fatalx("network child: cannot start the MEPP listener");
	n->mepp_running = true;
}

static void
mepp_stop(struct net *n)
{
	if (n->mepp == NULL)
		return;
	mepp_listener_stop(n->mepp);
	if (n->mepp_running)
		pthread_join(n->mepp_thread, NULL);
	n->mepp_running = false;
	mepp_listener_free(n->mepp);
	n->mepp = NULL;
}

/* The listener takes the MEPP peers that may send to us, keys and all. */
static void
mepp_table_changed(struct net *n)
{
	struct mepp_peer *mp = NULL;
	const char **trusted = NULL;
	struct psync_err err;
	size_t i, j, k = 0, nt = 0;

	if (n->mepp == NULL)
		return;
	pthread_mutex_lock(&n->lock);
	for (i = 0; i < n->n_peers; i++)
		nt += n->peers[i].n_trusted;
	mp = calloc(n->n_peers + 1, sizeof(*mp));
	trusted = calloc(nt + 1, sizeof(*trusted));
	if (mp == NULL || trusted == NULL) {
		pthread_mutex_unlock(&n->lock);
		log_warnx("MEPP listener: out of memory; the old keys stay");
		goto done;
	}
	nt = 0;
	for (i = 0; i < n->n_peers; i++) {
		const struct pmsg_peer *p = &n->peers[i];

		if (p->protocol != PROTO_MEPP || !(p->direction & DIR_RECEIVE))
			continue;
		mp[k].name = p->name;
		mp[k].secret = (const char *)p->key;
		mp[k].trusted = &trusted[nt];
		for (j = 0; j < p->n_trusted; j++)
			trusted[nt++] = p->trusted[j];
		mp[k].n_trusted = p->n_trusted;
		k++;
	}
	/* The listener copies the table: the lock is held while it does. */
	if (mepp_listener_set_peers(n->mepp, mp, k, &err) == -1)
		log_warnx("%s; the old keys stay", err.msg);
	else
		log_debug("MEPP listener: %zu peer%s", k, k == 1 ? "" : "s");
	pthread_mutex_unlock(&n->lock);
done:
	free(trusted);
	free(mp);
}

static void
mepp_deliver(struct net *n, struct worker *w, const struct pmsg_peer *p,
    struct job *jobs)
{
	struct mepp_client mc;
	struct psync_err err;
	struct job *j;
	int code;

	(void)w;
	memset(&mc, 0, sizeof(mc));
	mc.host = p->address;
	mc.port = p->port;
	mc.secret = (const char *)p->key;
	mc.connect_timeout_ms = (int)(p->connect_timeout > 0 ?
	    p->connect_timeout : 10) * 1000;
	mc.kdf_form = p->mepp_kdf ? MEPP_KDF_WORD8 : MEPP_KDF_WORD4;
	for (j = jobs; j != NULL; j = j->next) {
		if (p->address[0] == '\0') {
			net_report(n, j->change.id, p->name, -1,
			    p->resolve_error);
			continue;
		}
		if (j->change.secret_kind != FRAME_SECRET_CLEARTEXT) {
			net_report(n, j->change.id, p->name,
			    PSYNC_E_BAD_PASSWORD, "a MEPP peer needs the "
			    "password, not a hash");
			continue;
		}
		code = mepp_client_change(&mc, j->change.user,
		    (const char *)j->change.secret, &err);
		if (code == -1)
			net_report(n, j->change.id, p->name, -1, err.msg);
		else
			net_report(n, j->change.id, p->name, code,
			    mepp_result_reason(code));
	}
}

/*
 * A MEPP channel check changes no password: a type 0 change for a user no
 * system can have (mepp_client_probe), to which the right key gets "no
 * such user" and a wrong one 5, at the legacy listener (which answers 5
 * to every type 2) and at a Windows server alike. The user named with
 * --user is judged by the local policy in the parent, not sent.
 */
static void
mepp_verify(struct net *n, const struct pmsg_peer *p, const char *user,
    struct pmsg_verify_result *out)
{
	struct mepp_client mc;
	struct mepp_probe pr;

	(void)n;
	(void)user;
	memset(&mc, 0, sizeof(mc));
	mc.host = p->address;
	mc.port = p->port;
	mc.secret = (const char *)p->key;
	mc.kdf_form = p->mepp_kdf ? MEPP_KDF_WORD8 : MEPP_KDF_WORD4;
	mc.connect_timeout_ms = (int)(p->connect_timeout > 0 ?
	    p->connect_timeout : 10) * 1000;
	(void)mepp_client_probe(&mc, p->name, &pr);
	str_copy(out->message, pr.message, sizeof(out->message));
	out->code = pr.code > 0 ? pr.code : 0;
	switch (pr.outcome) {
	case MEPP_PROBE_FAILED:
		out->step = pr.step == MEPP_PROBE_STEP_CONNECT ?
		    (pr.io_step == MEPP_STEP_RESOLVE ? VERIFY_RESOLVE :
		    VERIFY_CONNECT) : VERIFY_EXCHANGE;
		break;
	case MEPP_PROBE_KEY_WRONG:
	case MEPP_PROBE_FORM_MISMATCH:
		out->step = VERIFY_EXCHANGE;
		break;
	case MEPP_PROBE_OTHER_CODE:
		out->step = VERIFY_OTHER;
		break;
	case MEPP_PROBE_KEY_RIGHT:
		out->step = VERIFY_OK;
		out->code = 0;
		out->message[0] = '\0';
		break;
	}
}

const struct net_proto net_mepp = {
	.protocol	= PROTO_MEPP,
	.name		= "MEPP",
	.listen_fd	= NET_FD_MEPP,
	.listen_prepare	= mepp_prepare,
	.listen_start	= mepp_start,
	.listen_stop	= mepp_stop,
	.table_changed	= mepp_table_changed,
	.deliver	= mepp_deliver,
	.verify		= mepp_verify,
	.propose	= NULL,
	.worker_end	= NULL,
};
