/*
 * Name resolution for the network child. The chrooted child cannot read
 * /etc/resolv.conf or /etc/hosts, and the root parent must never wait on
 * the network, so a small process of its own does it: forked by the child
 * right after its exec (before it holds any key), it keeps only its end
 * of a SOCK_SEQPACKET pair, becomes the same unprivileged user (without
 * the chroot, which would hide the resolver's files) and answers lookups,
 * each in a thread of its own so that a slow name delays no other.
 *
 * Request: a 32-bit id and the name. Answer: the id, one byte (0 found,
 * 1 not) and the numeric address or the reason. The child keeps answers
 * for a minute (failures for ten seconds).
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codes.h"
#include "log.h"
#include "net.h"
#include "util.h"

#define DNS_FD			3	/* in the resolver process */
#define DNS_WAIT_MS		30000	/* a lookup's answer, at most */
#define DNS_OK_TTL_MS		60000
#define DNS_FAIL_TTL_MS		10000
#define DNS_CACHE		64
#define DNS_THREADS_MAX		16
#define DNS_MSG_MAX		(4 + 1 + PMSG_TEXT_MAX + 1)

struct dns_entry {
	char		host[PMSG_HOST_MAX + 1];
	char		address[PMSG_ADDR_MAX + 1];	/* "" : failed */
	char		error[PMSG_TEXT_MAX + 1];
	uint64_t	expires_ms;
};

static struct dns_entry cache[DNS_CACHE];
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- the resolver process ------------------------------------------ */

struct lookup {
	uint32_t	id;
	char		host[PMSG_HOST_MAX + 1];
};

static pthread_mutex_t busy_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned int busy;

static void
dns_answer(uint32_t id, bool ok, const char *text)
{
	unsigned char msg[DNS_MSG_MAX];
	size_t len = strnlen(text, PMSG_TEXT_MAX);

	msg[0] = (unsigned char)(id >> 24);
	msg[1] = (unsigned char)(id >> 16);
	msg[2] = (unsigned char)(id >> 8);
	msg[3] = (unsigned char)id;
	msg[4] = ok ? 0 : 1;
	memcpy(msg + 5, text, len);
	if (send(DNS_FD, msg, 5 + len, MSG_NOSIGNAL) == -1)
		_exit(0);	/* the child is gone */
}

static void *
lookup_thread(void *arg)
{
	struct lookup *l = arg;
	struct addrinfo hints, *res = NULL;
	char addr[PMSG_ADDR_MAX + 1], why[PMSG_TEXT_MAX + 1];
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(l->host, NULL, &hints, &res);
	if (rc != 0 || res == NULL) {
		snprintf(why, sizeof(why), "cannot resolve %.255s: %s",
		    l->host, rc != 0 ? gai_strerror(rc) : "no address");
		dns_answer(l->id, false, why);
	} else if ((rc = getnameinfo(res->ai_addr, res->ai_addrlen, addr,
	    sizeof(addr), NULL, 0, NI_NUMERICHOST)) != 0) {
		snprintf(why, sizeof(why), "cannot print the address of "
		    "%.255s: %s", l->host, gai_strerror(rc));
		dns_answer(l->id, false, why);
	} else {
		dns_answer(l->id, true, addr);
	}
	if (res != NULL)
		freeaddrinfo(res);
	free(l);
	pthread_mutex_lock(&busy_lock);
	busy--;
	pthread_mutex_unlock(&busy_lock);
	return NULL;
}

void
net_resolver_main(int fd)
{
	unsigned char msg[4 + PMSG_HOST_MAX + 1];
	pthread_attr_t attr;
	struct lookup *l;
	pthread_t t;
	ssize_t r;
	size_t i;

	if (fd != DNS_FD && (dup2(fd, DNS_FD) == -1 || close(fd) == -1))
		_exit(1);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		r = recv(DNS_FD, msg, sizeof(msg), 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			_exit(0);
		if (r < 5 || (size_t)r > 4 + PMSG_HOST_MAX)
			continue;	/* the child sends no such thing */
		l = calloc(1, sizeof(*l));
		if (l == NULL)
			continue;
		l->id = (uint32_t)msg[0] << 24 | (uint32_t)msg[1] << 16 |
		    (uint32_t)msg[2] << 8 | msg[3];
		memcpy(l->host, msg + 4, (size_t)r - 4);
		for (i = 0; i < (size_t)r - 4; i++)
			if (l->host[i] == '\0')
				l->host[i] = '?';
		pthread_mutex_lock(&busy_lock);
		if (busy >= DNS_THREADS_MAX) {
			pthread_mutex_unlock(&busy_lock);
			dns_answer(l->id, false, "too many lookups at once");
			free(l);
			continue;
		}
		busy++;
		pthread_mutex_unlock(&busy_lock);
		if (pthread_create(&t, &attr, lookup_thread, l) != 0) {
			pthread_mutex_lock(&busy_lock);
			busy--;
			pthread_mutex_unlock(&busy_lock);
			dns_answer(l->id, false, "cannot start a lookup");
			free(l);
		}
	}
}

/* ---- the child's side ---------------------------------------------- */

static void *
reader_thread(void *arg)
{
	struct net *n = arg;
	unsigned char msg[DNS_MSG_MAX + 1];
	char text[PMSG_TEXT_MAX + 1];
	uint32_t id;
	ssize_t r;

	for (;;) {
		r = recv(n->dns_fd, msg, sizeof(msg), 0);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (r < 5 || r > DNS_MSG_MAX)
			continue;
		id = (uint32_t)msg[0] << 24 | (uint32_t)msg[1] << 16 |
		    (uint32_t)msg[2] << 8 | msg[3];
		memcpy(text, msg + 5, (size_t)r - 5);
		text[r - 5] = '\0';
		net_waiter_answer(n, id, msg[4], text);
	}
	if (!atomic_load(&n->stopping))
		log_warnx("network child: the resolver process is gone; "
		    "names are no longer resolved");
	return NULL;
}

int
net_resolver_start(struct net *n, const char *user)
{
	struct passwd *pw;
	int sv[2];
	pid_t pid;

	pw = getpwnam(user);
	if (pw == NULL || pw->pw_uid == 0)
		return -1;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		log_warn("network child: socketpair for the resolver");
		return -1;
	}
	pid = fork();
	if (pid == -1) {
		log_warn("network child: fork of the resolver");
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	if (pid == 0) {
		/* Keep only our end; nothing else was secret yet, but
		   nothing else is needed either. */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null == -1 || dup2(null, 0) == -1 || dup2(null, 1) == -1 ||
		    dup2(null, 2) == -1 || dup2(sv[1], DNS_FD) == -1 ||
		    close_range(DNS_FD + 1, ~0U, 0) == -1)
			_exit(1);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == -1 ||
		    setgroups(1, &pw->pw_gid) == -1 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1 ||
		    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1 ||
		    setuid(0) != -1)
			_exit(1);
		(void)prctl(PR_SET_NAME, "psyncd-dns", 0, 0, 0);
		net_resolver_main(DNS_FD);
	}
	close(sv[1]);
	n->dns_fd = sv[0];
	if (pthread_create(&n->dns_thread, NULL, reader_thread, n) != 0) {
		close(n->dns_fd);
		n->dns_fd = -1;
		return -1;
	}
	n->dns_running = true;
	return 0;
}

void
net_resolver_stop(struct net *n)
{
	if (n->dns_fd != -1)
		(void)shutdown(n->dns_fd, SHUT_RDWR);
	if (n->dns_running)
		pthread_join(n->dns_thread, NULL);
	n->dns_running = false;
	if (n->dns_fd != -1)
		close(n->dns_fd);
	n->dns_fd = -1;
}

static bool
cache_get(struct pmsg_peer *p, uint64_t now)
{
	size_t i;
	bool hit = false;

	pthread_mutex_lock(&cache_lock);
	for (i = 0; i < DNS_CACHE; i++) {
		if (cache[i].host[0] == '\0' || cache[i].expires_ms <= now ||
		    strcmp(cache[i].host, p->host) != 0)
			continue;
		str_copy(p->address, cache[i].address, sizeof(p->address));
		str_copy(p->resolve_error, cache[i].error,
		    sizeof(p->resolve_error));
		hit = true;
		break;
	}
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

static void
cache_put(const struct pmsg_peer *p, uint64_t now)
{
	size_t i, slot = 0;

	pthread_mutex_lock(&cache_lock);
	for (i = 0; i < DNS_CACHE; i++) {
		if (strcmp(cache[i].host, p->host) == 0) {
			slot = i;
			break;
		}
		if (cache[i].expires_ms < cache[slot].expires_ms)
			slot = i;
	}
	str_copy(cache[slot].host, p->host, sizeof(cache[slot].host));
	str_copy(cache[slot].address, p->address,
	    sizeof(cache[slot].address));
	str_copy(cache[slot].error, p->resolve_error,
	    sizeof(cache[slot].error));
	cache[slot].expires_ms = now + (p->address[0] != '\0' ?
	    DNS_OK_TTL_MS : DNS_FAIL_TTL_MS);
	pthread_mutex_unlock(&cache_lock);
}

void
net_resolve(struct net *n, struct pmsg_peer *p)
{
	unsigned char msg[4 + PMSG_HOST_MAX];
	unsigned char bin[sizeof(struct in6_addr)];
	struct waiter w;
	size_t len = strlen(p->host);
	uint64_t now = (uint64_t)clock_mono_ms();

	p->address[0] = '\0';
	p->resolve_error[0] = '\0';
	if (len == 0) {
		str_copy(p->resolve_error, "no address configured",
		    sizeof(p->resolve_error));
		return;
	}
	if (inet_pton(AF_INET, p->host, bin) == 1 ||
	    inet_pton(AF_INET6, p->host, bin) == 1) {
		str_copy(p->address, p->host, sizeof(p->address));
		return;
	}
	if (cache_get(p, now))
		return;
	if (n->dns_fd == -1 || len > PMSG_HOST_MAX) {
		snprintf(p->resolve_error, sizeof(p->resolve_error), "cannot "
		    "resolve %.255s: no resolver process", p->host);
		return;
	}
	net_waiter_add(n, &w);
	msg[0] = (unsigned char)(w.reqid >> 24);
	msg[1] = (unsigned char)(w.reqid >> 16);
	msg[2] = (unsigned char)(w.reqid >> 8);
	msg[3] = (unsigned char)w.reqid;
	memcpy(msg + 4, p->host, len);
	if (send(n->dns_fd, msg, 4 + len, MSG_NOSIGNAL) == -1) {
		w.done = true;
		w.code = 1;
		snprintf(w.reason, sizeof(w.reason), "cannot resolve %.255s: "
		    "the resolver process is gone", p->host);
	}
	net_waiters_wait(n, &w, 1, DNS_WAIT_MS);
	if (w.code == 0 && w.reason[0] != '\0' &&
	    strlen(w.reason) <= PMSG_ADDR_MAX)
		str_copy(p->address, w.reason, sizeof(p->address));
	else if (w.code == PSYNC_E_UPDATE_FAILED)
		snprintf(p->resolve_error, sizeof(p->resolve_error), "cannot "
		    "resolve %.255s: no answer within %d s", p->host,
		    DNS_WAIT_MS / 1000);
	else
		str_copy(p->resolve_error, w.reason[0] != '\0' ? w.reason :
		    "no address", sizeof(p->resolve_error));
	if (w.code != PSYNC_E_UPDATE_FAILED)
		cache_put(p, now);
}
