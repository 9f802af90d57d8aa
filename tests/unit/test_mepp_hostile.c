/*
 * The MEPP listener under attack from a trusted address (loopback): 200
 * connections that send garbage, stall with nothing or half a request, or
 * announce huge lengths, while a legitimate client keeps sending changes.
 * Every legitimate change must be answered correctly, every hostile
 * connection must be closed within the (short) deadline, and the process's
 * peak memory must stay bounded.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <time.h>

#include <openssl/rand.h>

#include "mepp_testlib.h"

#define HOSTILE		200
#define WAVES		4
#define LEGIT_CHANGES	40
#define DEADLINE_MS	1000

/*
 * Allowed growth of peak memory under attack. Each connection costs the
 * touched pages of a thread stack and a few kB; a reader that believed the
 * announced lengths would allocate gigabytes. Sanitizer builds keep shadow
 * memory and quarantine, hence their wider margin.
 */
#if defined(__SANITIZE_ADDRESS__)
#define GROWTH_MAX_KB	(256 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GROWTH_MAX_KB	(256 * 1024)
#endif
#endif
#ifndef GROWTH_MAX_KB
#define GROWTH_MAX_KB	(32 * 1024)
#endif

static struct decider decider = { .lock = PTHREAD_MUTEX_INITIALIZER };

struct legit {
	unsigned int	port;
	int		answered_ok;
	int		failures;
	char		first_error[PSYNC_ERR_LEN + 64];
};

/* kB of a field ("VmRSS:", "VmHWM:") of /proc/self/status, or -1. */
static long
status_kb(const char *field)
{
	char line[256];
	long kb = -1;
	FILE *f;

	if ((f = fopen("/proc/self/status", "r")) == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, strlen(field)) == 0)
			kb = strtol(line + strlen(field), NULL, 10);
	fclose(f);
	return kb;
}

static void *
legit_thread(void *arg)
{
	struct legit *lg = arg;
	struct mepp_client c;
	struct psync_err err;
	char password[64];
	int i, rc;

	memset(&c, 0, sizeof(c));
	c.host = "127.0.0.1";
	c.port = lg->port;
	c.secret = TEST_SECRET;
	c.connect_timeout_ms = 3000;
	c.timeout_ms = 5000;
	for (i = 0; i < LEGIT_CHANGES; i++) {
		snprintf(password, sizeof(password), "Legit-%d-%08x", i,
		    (unsigned int)mono_ms());
		rc = mepp_client_change(&c, "alice", password, &err);
		if (rc == PSYNC_OK)
			lg->answered_ok++;
		else if (lg->failures++ == 0)
			snprintf(lg->first_error, sizeof(lg->first_error),
			    "change %d: %d %s", i, rc, rc == -1 ? err.msg : "");
		usleep(25000);
	}
	return NULL;
}

/* One hostile connection of kind k; returns its socket (left open). */
static int
hostile_open(unsigned int port, int k)
{
	static const uint8_t huge[12] = {
		0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xf8, 0, 0, 0, 0,
	};
	/* The first 30 bytes of a plausible request: header, R2, a bit more. */
	static const uint8_t half[30] = {
		0, 0, 0, 0, 0, 0, 0, 0x44, 0, 0, 0, 0,
		0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00,
		0x66, 0xbb, 0xb8, 0x4e, 0x00, 0xad, 0xb3, 0x8d, 0xd9, 0x48,
	};
	uint8_t garbage[300];
	int fd;

	if ((fd = raw_connect("127.0.0.1", port, 100)) == -1)
		return -1;
	switch (k % 4) {
	case 0:
		if (RAND_bytes(garbage, sizeof(garbage)) != 1 ||
		    send(fd, garbage, sizeof(garbage), MSG_NOSIGNAL) == -1)
			goto fail;
		break;
	case 1:
		break;				/* silence */
	case 2:
		if (send(fd, half, sizeof(half), MSG_NOSIGNAL) == -1)
			goto fail;
		break;
	default:
		if (send(fd, huge, sizeof(huge), MSG_NOSIGNAL) == -1)
			goto fail;
		break;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

/* True when the server has closed fd (reading what it sent first). */
static bool
closed_by_server(int fd)
{
	uint8_t buf[64];
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			return true;
		if (n > 0)
			continue;
		return errno == ECONNRESET;
	}
}

static void
test_hostile_clients_do_not_starve_a_legitimate_one(void **state)
{
	static const char *const loopback4[] = { "127.0.0.1" };
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct psync_err err;
	struct legit lg;
	struct lrun r;
	pthread_t tid;
	long rss0, hwm;
	int fds[HOSTILE], i, w, open_left;

	(void)state;
	logcap_start();
	memset(&conf, 0, sizeof(conf));
	conf.address = "127.0.0.1";
	conf.peers = peers;
	conf.n_peers = 1;
	conf.decide = test_decide;
	conf.ctx = &decider;
	conf.request_timeout_ms = DEADLINE_MS;
	conf.max_connections = 2 * HOSTILE + 16;
	if (lrun_start(&r, &conf, &err) == -1)
		fail_msg("listener: %s", err.msg);

	rss0 = status_kb("VmRSS:");
	assert_true(rss0 > 0);
	memset(&lg, 0, sizeof(lg));
	lg.port = r.port;
	assert_int_equal(pthread_create(&tid, NULL, legit_thread, &lg), 0);

	/* Waves of hostile connections while the legitimate client works. */
	for (w = 0; w < WAVES; w++) {
		for (i = w * (HOSTILE / WAVES); i < (w + 1) * (HOSTILE / WAVES); i++) {
			fds[i] = hostile_open(r.port, i);
			assert_true(fds[i] >= 0);
		}
		usleep(150000);
	}
	pthread_join(tid, NULL);

	/* Everything hostile is closed by the listener within its deadline. */
	usleep((DEADLINE_MS + 700) * 1000);
	open_left = 0;
	for (i = 0; i < HOSTILE; i++) {
		if (!closed_by_server(fds[i]))
			open_left++;
		close(fds[i]);
	}
	hwm = status_kb("VmHWM:");
	assert_int_equal(lrun_stop(&r), 0);

	fprintf(stderr, "# legit %d/%d answered 0; RSS before %ld kB, peak "
	    "%ld kB; hostile left open %d; log lines %zu (+%zu dropped)\n",
	    lg.answered_ok, LEGIT_CHANGES, rss0, hwm, open_left, logcap.n,
	    logcap.dropped);
	if (lg.failures != 0)
		fail_msg("%d legitimate changes failed; first: %s", lg.failures,
		    lg.first_error);
	assert_int_equal(lg.answered_ok, LEGIT_CHANGES);
	assert_int_equal(decider.bad_passwords, 0);
	assert_int_equal(decider.calls, LEGIT_CHANGES);
	assert_int_equal(open_left, 0);
	if (hwm - rss0 > GROWTH_MAX_KB)
		fail_msg("peak memory grew by %ld kB under attack", hwm - rss0);
	/* The stalled ones were noticed (8199) and the lying ones refused (8203). */
	assert_true(logcap_count("8199: error in receiving from socket",
	    "timed out", NULL) > 0);
	assert_true(logcap_count("8203:", "length field out of range", NULL) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile_clients_do_not_starve_a_legitimate_one),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
