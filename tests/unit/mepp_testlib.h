/*
 * Helpers shared by the MEPP network tests: capture log lines, run a
 * listener in a thread on 127.0.0.1, a decision callback with known
 * answers, and raw loopback sockets for misbehaving clients.
 */
#ifndef PSYNC_MEPP_TESTLIB_H
#define PSYNC_MEPP_TESTLIB_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "codes.h"
#include "log.h"
#include "mepp.h"
#include "mepp_net.h"

#define LOGCAP_LINES	1024
#define LOGCAP_LEN	512

#define TEST_SECRET	"ABCDZ#efgh$12345"
#define TEST_PASSWORD	"N3w-Passw0rd!"

/* Log lines captured through log_set_callback (from any thread). */
struct logcap {
	pthread_mutex_t	lock;
	char		lines[LOGCAP_LINES][LOGCAP_LEN];
	size_t		n;
	size_t		dropped;
};

static struct logcap logcap = { .lock = PTHREAD_MUTEX_INITIALIZER };

static inline void
logcap_sink(void *ctx, int priority, const char *message)
{
	struct logcap *lc = ctx;

	(void)priority;
	pthread_mutex_lock(&lc->lock);
	if (lc->n < LOGCAP_LINES)
		snprintf(lc->lines[lc->n++], LOGCAP_LEN, "%s", message);
	else
		lc->dropped++;
	pthread_mutex_unlock(&lc->lock);
}

static inline void
logcap_start(void)
{
	pthread_mutex_lock(&logcap.lock);
	logcap.n = 0;
	logcap.dropped = 0;
	pthread_mutex_unlock(&logcap.lock);
	log_set_level(LOG_DEBUG);
	log_set_callback(logcap_sink, &logcap);
	/* Each test starts with no warning counted as a repeat. */
	log_set_clock(NULL);
}

/* How many captured lines contain every one of up to three needles. */
static inline size_t
logcap_count(const char *a, const char *b, const char *c)
{
	size_t i, n = 0;

	pthread_mutex_lock(&logcap.lock);
	for (i = 0; i < logcap.n; i++)
		if (strstr(logcap.lines[i], a) != NULL &&
		    (b == NULL || strstr(logcap.lines[i], b) != NULL) &&
		    (c == NULL || strstr(logcap.lines[i], c) != NULL))
			n++;
	pthread_mutex_unlock(&logcap.lock);
	return n;
}

static inline void
logcap_dump(void)
{
	size_t i;

	pthread_mutex_lock(&logcap.lock);
	for (i = 0; i < logcap.n; i++)
		fprintf(stderr, "# log: %s\n", logcap.lines[i]);
	pthread_mutex_unlock(&logcap.lock);
}

/* The decision callback's record of what it was asked. */
struct decider {
	pthread_mutex_t	lock;
	int		calls;
	int		checks;
	int		bad_passwords;
	char		peer[64];
	char		user[64];
	int		type;
};

/*
 * alice: accepted when the password is TEST_PASSWORD or starts with
 * "Legit-" (9 otherwise); carol: refused by policy (14); anyone else: no
 * such user (12). A check (type 2) only answers.
 */
static inline int
test_decide(void *ctx, const char *peer, int type, const char *user,
    const char *password)
{
	struct decider *d = ctx;
	int code;

	pthread_mutex_lock(&d->lock);
	d->calls++;
	d->type = type;
	snprintf(d->peer, sizeof(d->peer), "%s", peer);
	snprintf(d->user, sizeof(d->user), "%s", user);
	if (type == MEPP_TYPE_CHECK) {
		d->checks++;
		code = strcmp(user, "alice") == 0 &&
		    strcmp(password, MEPP_CHECK_PASSWORD) == 0 ? PSYNC_OK :
		    PSYNC_E_NO_USER;
	} else if (strcmp(user, "alice") == 0) {
		code = strcmp(password, TEST_PASSWORD) == 0 ||
		    strncmp(password, "Legit-", 6) == 0 ? PSYNC_OK :
		    PSYNC_E_BAD_PASSWORD;
		if (code != PSYNC_OK)
			d->bad_passwords++;
	} else if (strcmp(user, "carol") == 0)
		code = PSYNC_E_REFUSED;
	else
		code = PSYNC_E_NO_USER;
	pthread_mutex_unlock(&d->lock);
	return code;
}

/* A listener running in its own thread. */
struct lrun {
	struct mepp_listener	*l;
	pthread_t		 tid;
	int			 rc;
	unsigned int		 port;
};

static inline void *
lrun_thread(void *arg)
{
	struct lrun *r = arg;

	r->rc = mepp_listener_run(r->l);
	return NULL;
}

/* Open and start; returns -1 (with err) when open fails. */
static inline int
lrun_start(struct lrun *r, const struct mepp_listener_conf *conf,
    struct psync_err *err)
{
	memset(r, 0, sizeof(*r));
	r->l = mepp_listener_open(conf, err);
	if (r->l == NULL)
		return -1;
	r->port = mepp_listener_port(r->l);
	if (pthread_create(&r->tid, NULL, lrun_thread, r) != 0) {
		mepp_listener_free(r->l);
		return -1;
	}
	return 0;
}

static inline int
lrun_stop(struct lrun *r)
{
	mepp_listener_stop(r->l);
	pthread_join(r->tid, NULL);
	mepp_listener_free(r->l);
	r->l = NULL;
	return r->rc;
}

/* A blocking loopback socket with a receive time-out. */
static inline int
raw_connect(const char *addr, unsigned int port, int rcv_timeout_ms)
{
	struct sockaddr_in sin;
	struct timeval tv;
	int fd;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return -1;
	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	tv.tv_sec = rcv_timeout_ms / 1000;
	tv.tv_usec = (rcv_timeout_ms % 1000) * 1000;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Read until len bytes, EOF, or the socket's time-out; returns the count. */
static inline ssize_t
raw_read(int fd, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got < len) {
		n = recv(fd, (char *)buf + got, len - got, 0);
		if (n == 0)
			break;
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return got > 0 ? (ssize_t)got : -1;
		}
		got += (size_t)n;
	}
	return (ssize_t)got;
}

/* Milliseconds on the monotonic clock. */
static inline long long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

#endif
