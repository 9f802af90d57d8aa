/*
 * psyncd's root parent: the loop and the life of the process. It owns the
 * configuration, the policy, the host key, the queue and the store, and
 * does only the privileged work. One poll() serves the network child's
 * socketpair (monitor.c), the control socket (control.c), the spool
 * (intake.c, inotify), signals (signalfd) and a timer for deliveries
 * (outbound.c) and rotation (rotation.c).
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
id_hex(const uint8_t id[FRAME_ID_LEN], char out[QUEUE_ID_HEX_LEN + 1])
{
	queue_id_hex(id, out);
}

static void
sd_notify_ready(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return;
	if (sendto(fd, "READY=1", 7, MSG_NOSIGNAL, (struct sockaddr *)&sun,
	    len) == -1)
		log_warn("sd_notify to %s", path);
	close(fd);
}

static int
setup_signals(struct psyncd *d)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
		return -1;
	d->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return d->sig_fd == -1 ? -1 : 0;
}

static bool
handle_signals(struct psyncd *d)
{
	struct signalfd_siginfo si;
	struct psync_err err;
	int status;
	pid_t pid;

	while (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			log_info("SIGHUP: reloading %s", d->opts->config_path);
			(void)peers_reload(d, &err);
			break;
		case SIGTERM:
		case SIGINT:
			log_info("signal %u: stopping", si.ssi_signo);
			return false;
		case SIGCHLD:
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				if (pid != d->child_pid)
					continue;
				d->child_pid = 0;
				monitor_child_dead(d, WIFSIGNALED(status) ?
				    "killed by a signal" : "exited");
			}
			break;
		}
	}
	return !d->fatal;
}

static void
loop(struct psyncd *d)
{
	struct pollfd pfd[4 + CONTROL_CLIENTS_MAX];
	uint64_t last_tick = 0, last_warn = 0, now;
	char ev[4096];
	size_t nfd, i, nctl;
	int timeout;

	while (!d->fatal) {
		nfd = 0;
		pfd[nfd++] = (struct pollfd){ d->sig_fd, POLLIN, 0 };
		pfd[nfd++] = (struct pollfd){ d->child_fd, POLLIN, 0 };
		pfd[nfd++] = (struct pollfd){ d->inotify_fd, POLLIN, 0 };
		pfd[nfd++] = (struct pollfd){ d->ctl.listen_fd, POLLIN, 0 };
		nctl = control_pollfds(d, &pfd[nfd], CONTROL_CLIENTS_MAX);
		nfd += nctl;
		timeout = d->deliver_soon ? 0 : TICK_MS;
		if (poll(pfd, nfd, timeout) == -1 && errno != EINTR) {
			log_warn("poll");
			break;
		}
		if (pfd[0].revents & POLLIN && !handle_signals(d))
			break;
		if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
			monitor_readable(d);
		if (d->fatal)
			break;
		if (pfd[2].revents & POLLIN) {
			while (read(d->inotify_fd, ev, sizeof(ev)) > 0)
				;
			intake_scan(d);
		}
		if (pfd[3].revents & POLLIN)
			control_accept(d);
		for (i = 0; i < nctl; i++)
			if (pfd[4 + i].revents != 0)
				control_readable(d, pfd[4 + i].fd);
		now = clock_wall_ms();
		if (d->deliver_soon || now - last_tick >= TICK_MS) {
			d->deliver_soon = false;
			if (d->spool_backlog && now - last_tick >= TICK_MS)
				intake_scan(d);
			outbound_due(d);
			rotation_tick(d, now);
			control_tick(d, now);
			last_tick = now;
		}
		if (now - last_warn >= WARN_EVERY_MS) {
			outbound_housekeeping(d);
			last_warn = now;
		}
	}
}

int
parent_main(const struct psyncd_opts *opts)
{
	struct psyncd state;
	struct psyncd *d = &state;
	struct queue_limits lim;
	struct psync_err err;
	int rc = 1;

	memset(d, 0, sizeof(*d));
	d->opts = opts;
	d->child_fd = d->ctl.listen_fd = d->inotify_fd = d->sig_fd = -1;
	d->conf = config_load(opts->config_path, true, report_problem, NULL);
	if (d->conf == NULL) {
		log_warnx("%s: cannot start with this configuration",
		    opts->config_path);
		goto done;
	}
	log_init("psyncd", opts->foreground ? LOG_TARGET_STDERR :
	    LOG_TARGET_SYSLOG, d->conf->log.facility);
	log_set_level(opts->debug ? LOG_DEBUG : d->conf->log.level);
	d->rbuf = malloc(RBUF_CAP);
	d->items = calloc(DUE_BATCH, sizeof(*d->items));
	d->inflight = calloc(INFLIGHT_MAX, sizeof(*d->inflight));
	if (d->rbuf == NULL || d->items == NULL || d->inflight == NULL) {
		log_warnx("out of memory");
		goto done;
	}
	if (setup_signals(d) == -1) {
		log_warn("signals");
		goto done;
	}
	if (seal_key_load(d->conf->queue.host_key_file, 1, d->host_key,
	    &err) == -1) {
		log_warnx("host key: %s", err.msg);
		goto done;
	}
	memset(&lim, 0, sizeof(lim));
	lim.retry_interval = d->conf->queue.retry_interval;
	lim.max_retry_interval = d->conf->queue.max_retry_interval;
	lim.max_age = d->conf->queue.max_age;
	if (queue_open(&d->q, d->conf->queue.directory, d->host_key, &lim,
	    &err) == -1) {
		log_warnx("queue: %s", err.msg);
		goto done;
	}
	peers_fingerprints(d);
	d->pol = policy_new(d->conf, &err);
	if (d->pol == NULL) {
		log_warnx("policy: %s", err.msg);
		goto done;
	}
	if (spool_prepare(d->conf->queue.spool_directory, &err) == -1) {
		log_warnx("spool: %s", err.msg);
		goto done;
	}
	d->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->inotify_fd == -1 || inotify_add_watch(d->inotify_fd,
	    d->conf->queue.spool_directory, IN_MOVED_TO | IN_CLOSE_WRITE) == -1) {
		log_warn("inotify on %s", d->conf->queue.spool_directory);
		goto done;
	}
	if (control_open(d, d->conf->control_socket) == -1)
		goto done;
	if (spawn_child(d) == -1)
		goto done;
	intake_clean_stale(d);
	intake_scan(d);
	sd_notify_ready();
	log_info("psyncd %s ready: node %s, %zu peers", PACKAGE_VERSION,
	    d->conf->node_name, d->conf->n_peers);
	loop(d);
	rc = d->fatal ? 1 : 0;
done:
	spawn_stop(d);
	control_close_all(d);
	if (d->conf != NULL && d->ctl.listen_fd != -1)
		(void)unlink(d->conf->control_socket);
	if (d->inotify_fd != -1)
		close(d->inotify_fd);
	if (d->sig_fd != -1)
		close(d->sig_fd);
	if (d->child_fd != -1)
		close(d->child_fd);
	store_fp_disable();
	queue_close(d->q);
	policy_free(d->pol);
	config_free(d->conf);
	secure_wipe(d->host_key, sizeof(d->host_key));
	if (d->rbuf != NULL)
		secure_wipe(d->rbuf, RBUF_CAP);
	free(d->rbuf);
	free(d->items);
	free(d->inflight);
	log_info("psyncd stopped (exit %d)", rc);
	return rc;
}
