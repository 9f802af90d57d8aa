/*
 * The peer table the network child works from: one PEER message per
 * configured peer (its name, protocol, host, port, keys and trusted
 * addresses), then PEERS-END, which swaps the table in. Sent at start, on
 * every reload (SIGHUP, psyncctl set-key) and when a key rotates. Names are
 * not resolved here: the child asks its resolver (net_resolve.c).
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

void
report_problem(void *ctx, const char *message)
{
	(void)ctx;
	log_warnx("%s", message);
}

/* Read a MEPP key: inline text, or the first line of a private file. */
static int
read_mepp_key(const struct peer_conf *pc, char *out, size_t len,
    struct psync_err *err)
{
	char buf[PMSG_KEYTEXT_MAX + 2];
	ssize_t n;
	int fd, rc = -1;

	if (pc->legacy_key != NULL && pc->legacy_key[0] != '\0') {
		if (strlen(pc->legacy_key) >= len) {
			perr_set(err, PSYNC_E_OPEN, "peer %s: key too long",
			    pc->name);
			return -1;
		}
		str_copy(out, pc->legacy_key, len);
		return 0;
	}
	fd = file_open_trusted(pc->key_file, true, err);
	if (fd == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		perr_set(err, PSYNC_E_OPEN, "%s: %s", pc->key_file,
		    strerror(errno));
		goto done;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	if (buf[0] == '\0' || strlen(buf) >= len) {
		perr_set(err, PSYNC_E_OPEN, "%s: the MEPP key must be one line "
		    "of 1 to %zu characters", pc->key_file, len - 1);
		goto done;
	}
	str_copy(out, buf, len);
	rc = 0;
done:
	secure_wipe(buf, sizeof(buf));
	close(fd);
	return rc;
}

/* Build one PEER message: the child's view of a configured peer. */
static int
peer_msg(struct psyncd *d, const struct peer_conf *pc, struct pmsg *m, struct psync_err *err)
{
	struct pmsg_peer *pe = &m->u.peer;
	struct key_state ks;
	char text[PMSG_KEYTEXT_MAX + 1];
	size_t i;
	int rc = -1;

	memset(m, 0, sizeof(*m));
	memset(&ks, 0, sizeof(ks));
	m->type = PMSG_PEER;
	str_copy(pe->name, pc->name, sizeof(pe->name));
	pe->protocol = (uint8_t)pc->protocol;
	pe->direction = (uint8_t)pc->direction;
	pe->port = (uint16_t)(pc->port != 0 ? pc->port :
	    pc->protocol == PROTO_MEPP ? PSYNC_MEPP_PORT : PSYNC_TLS_PORT);
	pe->connect_timeout = pc->connect_timeout;
	if (pc->address != NULL && strlen(pc->address) > PMSG_HOST_MAX) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: address longer than %d "
		    "characters", pc->name, PMSG_HOST_MAX);
		goto done;
	}
	str_copy(pe->host, pc->address != NULL ? pc->address : "",
	    sizeof(pe->host));
	if (pc->protocol == PROTO_PSYNC) {
		if (pc->key_file != NULL && pc->key_file[0] != '\0') {
			if (keys_load(d->q, pc, &ks, err) == -1)
				goto done;
			memcpy(pe->key, ks.cur, WIRE_KEY_LEN);
			pe->key_len = WIRE_KEY_LEN;
			pe->key_id = ks.cur_id;
			if (ks.has_next) {
				pe->has_next = 1;
				/* A key the peer proposed is one it holds. */
				pe->use_next = ks.next_ours ? 0 : 1;
				pe->next_id = ks.next_id;
				memcpy(pe->next, ks.next, WIRE_KEY_LEN);
			}
		}
	} else {
		if (read_mepp_key(pc, text, sizeof(text), err) == -1)
			goto done;
		pe->key_len = (uint16_t)strlen(text);
		memcpy(pe->key, text, pe->key_len);
	}
	if (pc->n_trusted > PMSG_TRUSTED_MAX) {
		perr_set(err, PSYNC_E_OPEN, "peer %s: more than %d trusted "
		    "addresses", pc->name, PMSG_TRUSTED_MAX);
		goto done;
	}
	for (i = 0; i < pc->n_trusted; i++)
		str_copy(pe->trusted[i], pc->trusted[i], sizeof(pe->trusted[i]));
	pe->n_trusted = (uint8_t)pc->n_trusted;
	pe->mepp_kdf = pc->mepp_key_words == 8 ? 1 : 0;
	rc = 0;
done:
	keys_wipe(&ks);
	secure_wipe(text, sizeof(text));
	return rc;
}

/* Check every peer's keys now, so a reload with a bad key file fails. */
struct pmsg *
peers_build(struct psyncd *d, const struct psync_config *conf, struct psync_err *err)
{
	struct pmsg *t;
	size_t i;

	t = calloc(conf->n_peers + 1, sizeof(*t));
	if (t == NULL) {
		perr_set(err, PSYNC_E_OPEN, "out of memory");
		return NULL;
	}
	for (i = 0; i < conf->n_peers; i++) {
		if (peer_msg(d, &conf->peers[i], &t[i], err) == -1) {
			secure_wipe(t, (conf->n_peers + 1) * sizeof(*t));
			free(t);
			return NULL;
		}
	}
	return t;
}

void
peers_send(struct psyncd *d, struct pmsg *t, size_t n)
{
	struct pmsg end;
	size_t i;

	for (i = 0; i < n; i++)
		monitor_send(d, &t[i]);
	memset(&end, 0, sizeof(end));
	end.type = PMSG_PEERS_END;
	str_copy(end.u.peers_end.node, d->conf->node_name,
	    sizeof(end.u.peers_end.node));
	end.u.peers_end.n_peers = (uint32_t)n;
	monitor_send(d, &end);
}

/* The store's fingerprints (lib/store_fp.c), as the configuration says. */
void
peers_fingerprints(struct psyncd *d)
{
	struct psync_err err;

	store_fp_disable();
	if (d->conf->store.type == STORE_FILES && d->conf->store.fingerprints &&
	    store_fp_enable(d->conf->queue.directory, d->host_key, &err) == -1)
		log_warnx("store: %s; every change is verified against the "
		    "stored hash", err.msg);
}

int
peers_reload(struct psyncd *d, struct psync_err *err)
{
	struct psync_config *conf = NULL;
	struct policy *pol = NULL;
	struct pmsg *table = NULL;

	conf = config_load(d->opts->config_path, true, report_problem, NULL);
	if (conf == NULL) {
		perr_set(err, PSYNC_E_OPEN, "%s has errors (logged); the old "
		    "configuration stays", d->opts->config_path);
		goto fail;
	}
	if (strcmp(conf->queue.directory, d->conf->queue.directory) != 0 ||
	    strcmp(conf->queue.spool_directory,
	    d->conf->queue.spool_directory) != 0 ||
	    strcmp(conf->control_socket, d->conf->control_socket) != 0)
		log_warnx("reload: queue, spool and control socket paths only "
		    "change on a restart");
	pol = policy_new(conf, err);
	if (pol == NULL)
		goto fail;
	table = peers_build(d, conf, err);
	if (table == NULL)
		goto fail;
	policy_free(d->pol);
	config_free(d->conf);
	d->conf = conf;
	d->pol = pol;
	log_set_level(d->opts->debug ? LOG_DEBUG : conf->log.level);
	peers_fingerprints(d);
	peers_send(d, table, conf->n_peers);
	free(table);
	log_info("configuration %s reloaded: %zu peers", conf->path,
	    conf->n_peers);
	return 0;
fail:
	policy_free(pol);
	config_free(conf);
	log_warnx("reload failed: %s", err->msg);
	return -1;
}

/* The keys changed: the child gets the whole table again. */
int
peers_resend(struct psyncd *d, struct psync_err *err)
{
	struct pmsg *table;

	table = peers_build(d, d->conf, err);
	if (table == NULL)
		return -1;
	peers_send(d, table, d->conf->n_peers);
	free(table);
	return 0;
}
