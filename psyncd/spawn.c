/*
 * Starting the network child. The parent binds the listening sockets,
 * then forks and re-executes psyncd itself with the internal role flag
 * (-R net), so that the child starts clean: a new memory image with no
 * host key, no queue, no store, no configuration and no control socket,
 * and only the descriptors it is given (the socketpair and the listening
 * sockets at fixed numbers). Everything else it gets over the socketpair.
 */
#define _GNU_SOURCE 1	/* close_range */
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

static int
prepare_empty_dir(struct psyncd *d, char *out, size_t len)
{
	struct stat st;

	snprintf(out, len, "%s/empty", d->conf->queue.directory);
	if (mkdir(out, 0755) == -1 && errno != EEXIST) {
		log_warn("cannot create the network child's root %s", out);
		return -1;
	}
	if (lstat(out, &st) == -1 || !S_ISDIR(st.st_mode) || st.st_uid != 0 ||
	    (st.st_mode & 022) != 0) {
		log_warnx("%s must be a root-owned directory that others cannot "
		    "write", out);
		return -1;
	}
	return 0;
}

/*
 * The descriptors the child gets, at fixed numbers; every other one is
 * closed before the exec.
 */
#define NET_FD_PARENT	3
#define NET_FD_PSYNC	4
#define NET_FD_MEPP	5
#define NET_FD_FIRST_FREE 6

/* Move fds[i] to number 3 + i (or close that number for -1). */
static int
fds_place(const int *fds, size_t n)
{
	int high[8];
	size_t i;

	/* First out of the way, so that no move overwrites a source. */
	for (i = 0; i < n; i++) {
		high[i] = -1;
		if (fds[i] != -1 &&
		    (high[i] = fcntl(fds[i], F_DUPFD, 64)) == -1)
			return -1;
	}
	for (i = 0; i < n; i++) {
		if (high[i] == -1)
			(void)close(3 + (int)i);
		else if (dup2(high[i], 3 + (int)i) == -1)
			return -1;
	}
	return 0;
}

/* In the forked process: become the network child, or die. */
static _Noreturn void
exec_child(struct psyncd *d, const int *fds, size_t n, const char *root)
{
	char level[16], facility[16];
	const char *args[16];
	char *argv[16];
	char *envp[] = { NULL };
	size_t a = 0, i;

	if (fds_place(fds, n) == -1)
		_exit(127);
	if (close_range(3 + (unsigned int)n, ~0U, 0) == -1) {
		/* Older kernels: close them one by one. */
		long max = sysconf(_SC_OPEN_MAX);
		int fd;

		for (fd = 3 + (int)n; fd < (max > 0 ? max : 1024); fd++)
			(void)close(fd);
	}
	snprintf(level, sizeof(level), "%d",
	    d->opts->debug ? LOG_DEBUG : d->conf->log.level);
	snprintf(facility, sizeof(facility), "%d", d->conf->log.facility);
	args[a++] = "psyncd";
	args[a++] = "-R";
	args[a++] = "net";
	args[a++] = "-u";
	args[a++] = d->opts->user;
	args[a++] = "-C";
	args[a++] = root;
	args[a++] = "-l";
	args[a++] = level;
	args[a++] = "-F";
	args[a++] = facility;
	if (d->opts->foreground)
		args[a++] = "-f";
	/* execve() wants them writable; this process ends here anyway. */
	for (i = 0; i < a; i++)
		if ((argv[i] = strdup(args[i])) == NULL)
			_exit(127);
	argv[a] = NULL;
	/* The same program: this process's own image, whatever its path. */
	execve("/proc/self/exe", argv, envp);
	_exit(127);
}

typedef int (*listen_fn)(const char *address, unsigned int port,
    struct psync_err *err);

static int
wire_listen_fn(const char *address, unsigned int port, struct psync_err *err)
{
	return wire_listen(address, port, NULL, err);
}

static int
mepp_listen_fn(const char *address, unsigned int port, struct psync_err *err)
{
	return mepp_listen(address, port, err);
}

/*
 * A psyncd killed a moment ago leaves its child holding the port until
 * the kernel has delivered its death signal (PR_SET_PDEATHSIG): try again
 * for up to LISTEN_RETRY_MS while the address is in use.
 */
#define LISTEN_RETRY_MS		3000
static int
listen_retry(const char *address, unsigned int port, listen_fn fn,
    struct psync_err *err)
{
	int fd, waited = 0;

	for (;;) {
		errno = 0;
		fd = fn(address, port, err);
		if (fd != -1 || errno != EADDRINUSE || waited >= LISTEN_RETRY_MS)
			return fd;
		if (waited == 0)
			log_info("port %u is still in use; waiting for the "
			    "previous psyncd's network child to go", port);
		usleep(100000);
		waited += 100;
	}
}

int
spawn_child(struct psyncd *d)
{
	struct psync_err err;
	struct passwd *pw;
	struct pmsg *table;
	char empty[PATH_MAX];
	int sv[2] = { -1, -1 }, fds[3], psync_fd = -1, mepp_fd = -1;
	unsigned int port;
	sigset_t none;
	pid_t pid;

	pw = getpwnam(d->opts->user);
	if (pw == NULL) {
		log_warnx("the network child's user '%s' does not exist; "
		    "create it (useradd --system %s) or name another with -u",
		    d->opts->user, d->opts->user);
		return -1;
	}
	if (pw->pw_uid == 0) {
		log_warnx("the network child's user '%s' is root; refusing",
		    d->opts->user);
		return -1;
	}
	if (prepare_empty_dir(d, empty, sizeof(empty)) == -1)
		return -1;
	table = peers_build(d, d->conf, &err);
	if (table == NULL) {
		log_warnx("%s", err.msg);
		return -1;
	}
	if (d->conf->listen_psync.enabled) {
		port = d->conf->listen_psync.port != 0 ?
		    d->conf->listen_psync.port : PSYNC_TLS_PORT;
		psync_fd = listen_retry(d->conf->listen_psync.address, port,
		    wire_listen_fn, &err);
		if (psync_fd == -1) {
			log_warnx("psync listener: %s", err.msg);
			goto fail;
		}
	}
	if (d->conf->listen_mepp.enabled) {
		port = d->conf->listen_mepp.port != 0 ?
		    d->conf->listen_mepp.port : PSYNC_MEPP_PORT;
		mepp_fd = listen_retry(d->conf->listen_mepp.address, port,
		    mepp_listen_fn, &err);
		if (mepp_fd == -1) {
			log_warnx("%s", err.msg);
			goto fail;
		}
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("socketpair");
		goto fail;
	}
	pid = fork();
	if (pid == -1) {
		log_warn("fork");
		goto fail;
	}
	if (pid == 0) {
		/* The parent blocks these for its signalfd; the child must
		   not inherit that. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		fds[NET_FD_PARENT - 3] = sv[1];
		fds[NET_FD_PSYNC - 3] = psync_fd;
		fds[NET_FD_MEPP - 3] = mepp_fd;
		exec_child(d, fds, 3, empty);
	}
	close(sv[1]);
	d->child_pid = pid;
	d->child_fd = sv[0];
	if (fcntl(d->child_fd, F_SETFL, O_NONBLOCK) == -1)
		log_warn("fcntl O_NONBLOCK on the child channel");
	if (psync_fd != -1)
		close(psync_fd);
	if (mepp_fd != -1)
		close(mepp_fd);
	peers_send(d, table, d->conf->n_peers);
	free(table);
	d->child_state = CHILD_RUNNING;
	log_info("network child %ld started as %s", (long)pid, d->opts->user);
	return 0;
fail:
	if (sv[0] != -1)
		close(sv[0]);
	if (sv[1] != -1)
		close(sv[1]);
	if (psync_fd != -1)
		close(psync_fd);
	if (mepp_fd != -1)
		close(mepp_fd);
	secure_wipe(table, (d->conf->n_peers + 1) * sizeof(*table));
	free(table);
	return -1;
}

void
spawn_stop(struct psyncd *d)
{
	struct pmsg m;
	int status, waited = 0;
	pid_t r;

	if (d->child_pid <= 0)
		return;
	memset(&m, 0, sizeof(m));
	m.type = PMSG_SHUTDOWN;
	d->child_state = CHILD_STOPPING;
	if (!d->fatal)
		monitor_send(d, &m);
	while (waited < CHILD_GRACE_MS) {
		r = waitpid(d->child_pid, &status, WNOHANG);
		if (r == d->child_pid || (r == -1 && errno == ECHILD))
			goto reaped;
		usleep(50000);
		waited += 50;
	}
	log_warnx("network child %ld did not stop within %d s; killing it",
	    (long)d->child_pid, CHILD_GRACE_MS / 1000);
	(void)kill(d->child_pid, SIGKILL);
	(void)waitpid(d->child_pid, &status, 0);
reaped:
	d->child_pid = 0;
	d->child_state = CHILD_NONE;
}
