/*
 * MEPP client and listener over loopback (lib/mepp_net.c): answers for
 * trusted peers through a decision callback, the legacy log numbers,
 * silence for untrusted addresses, time-outs, connect failures, the
 * connection cap and stopping. Traffic goes to 127.0.0.1 and ::1 only.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "mepp_testlib.h"

static const char *const loopback4[] = { "127.0.0.1" };

static struct decider decider = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
decider_reset(void)
{
	pthread_mutex_lock(&decider.lock);
	decider.calls = decider.checks = decider.bad_passwords = 0;
	decider.peer[0] = decider.user[0] = '\0';
	decider.type = -1;
	pthread_mutex_unlock(&decider.lock);
}

static void
conf_init(struct mepp_listener_conf *conf, const struct mepp_peer *peers,
    size_t n)
{
	memset(conf, 0, sizeof(*conf));
	conf->address = "127.0.0.1";
	conf->port = 0;
	conf->peers = peers;
	conf->n_peers = n;
	conf->decide = test_decide;
	conf->ctx = &decider;
	conf->request_timeout_ms = 2000;
}

static void
client_init(struct mepp_client *c, const char *host, unsigned int port,
    const char *secret)
{
	memset(c, 0, sizeof(*c));
	c->host = host;
	c->port = port;
	c->secret = secret;
	c->connect_timeout_ms = 2000;
	c->timeout_ms = 3000;
}

static void
start(struct lrun *r, struct mepp_listener_conf *conf)
{
	struct psync_err err;

	logcap_start();
	decider_reset();
	if (lrun_start(r, conf, &err) == -1)
		fail_msg("listener: %s", err.msg);
	assert_true(r->port > 0);
}

/* No captured line may contain the password. */
static void
assert_password_never_logged(const char *password)
{
	if (logcap_count(password, NULL, NULL) != 0) {
		logcap_dump();
		fail_msg("a log line contains the password");
	}
}

static void
test_trusted_client_gets_each_decision_with_its_log_number(void **state)
{
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct mepp_client c;
	struct psync_err err;
	struct lrun r;

	(void)state;
	conf_init(&conf, peers, 1);
	start(&r, &conf);
	client_init(&c, "127.0.0.1", r.port, TEST_SECRET);

	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_OK);
	assert_int_equal(decider.calls, 1);
	assert_string_equal(decider.peer, "win1");
	assert_string_equal(decider.user, "alice");
	assert_int_equal(decider.type, MEPP_TYPE_UPDATE);
	assert_int_equal(decider.bad_passwords, 0);

	assert_int_equal(mepp_client_change(&c, "nosuchuser", TEST_PASSWORD,
	    &err), PSYNC_E_NO_USER);
	assert_int_equal(logcap_count("8201: user nosuchuser does not exist",
	    "win1/127.0.0.1", NULL), 1);

	assert_int_equal(mepp_client_change(&c, "carol", TEST_PASSWORD, &err),
	    PSYNC_E_REFUSED);
	assert_int_equal(logcap_count("12294: password propagation denied "
	    "for the remote user carol", "win1/127.0.0.1", NULL), 1);

	/* The check asks, with type 2; the callback sees the type. */
	assert_int_equal(mepp_client_check(&c, "alice", &err), PSYNC_OK);
	assert_int_equal(decider.checks, 1);
	assert_int_equal(decider.type, MEPP_TYPE_CHECK);
	assert_int_equal(mepp_client_check(&c, "nosuchuser", &err),
	    PSYNC_E_NO_USER);

	/* A wrong password reaches the callback intact (it answers 9). */
	assert_int_equal(mepp_client_change(&c, "alice", "other-Pass-1", &err),
	    PSYNC_E_BAD_PASSWORD);
	assert_int_equal(decider.bad_passwords, 1);

	/* "localhost" goes through the resolver (/etc/hosts). */
	client_init(&c, "localhost", r.port, TEST_SECRET);
	c.host = "localhost";
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_OK);

	assert_int_equal(lrun_stop(&r), 0);
	assert_password_never_logged(TEST_PASSWORD);
	assert_password_never_logged("other-Pass-1");
}

static void
test_peer_names_are_escaped_and_repeats_are_counted(void **state)
{
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct mepp_client c;
	struct psync_err err;
	struct lrun r;
	size_t i;
	int k;

	(void)state;
	conf_init(&conf, peers, 1);
	start(&r, &conf);
	client_init(&c, "127.0.0.1", r.port, TEST_SECRET);
	for (k = 0; k < 3; k++)
		assert_int_equal(mepp_client_change(&c,
		    "DOM\\ev\npsyncd[1]: forged", TEST_PASSWORD, &err),
		    PSYNC_E_NO_USER);
	assert_int_equal(lrun_stop(&r), 0);
	/* One line, the name escaped in it; the repeats held back. */
	assert_int_equal(logcap_count("8201: user DOM\\\\ev", "forged does "
	    "not exist on host win1/127.0.0.1", NULL), 1);
	log_repeats_flush(true);
	assert_int_equal(logcap_count("8201: user DOM\\\\ev",
	    "(repeated 2 times)", NULL), 1);
	pthread_mutex_lock(&logcap.lock);
	for (i = 0; i < logcap.n; i++)
		assert_null(strchr(logcap.lines[i], '\n'));
	pthread_mutex_unlock(&logcap.lock);
}

static void
test_wrong_secret_gets_code_5_and_log_8203_without_a_decision(void **state)
{
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct mepp_client c;
	struct psync_err err;
	struct lrun r;

	(void)state;
	conf_init(&conf, peers, 1);
	start(&r, &conf);
	client_init(&c, "127.0.0.1", r.port, "WRONG#secret-9876");
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_E_PROTOCOL);
	assert_int_equal(decider.calls, 0);
	assert_int_equal(lrun_stop(&r), 0);
	/* The user is not known when the MAC fails: never trust those bytes. */
	if (logcap_count("8203: secret key mismatch or packet error for user "
	    "(unknown) on host win1/127.0.0.1", NULL, NULL) != 1) {
		logcap_dump();
		fail_msg("no 8203 line");
	}
	assert_password_never_logged(TEST_PASSWORD);
}

static void
test_peers_sharing_an_address_are_told_apart_by_secret(void **state)
{
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
		{ "win2", "Second#Key-0002x", loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct mepp_client c;
	struct psync_err err;
	struct lrun r;

	(void)state;
	conf_init(&conf, peers, 2);
	start(&r, &conf);
	client_init(&c, "127.0.0.1", r.port, "Second#Key-0002x");
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_OK);
	assert_string_equal(decider.peer, "win2");
	assert_int_equal(lrun_stop(&r), 0);
}

static void
test_untrusted_client_is_closed_without_a_byte(void **state)
{
	static const char *const elsewhere[] = { "192.0.2.55", "2001:db8::5" };
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, elsewhere, 2 },
	};
	struct mepp_listener_conf conf;
	struct mepp_client c;
	struct psync_err err;
	struct lrun r;
	uint8_t buf[16];
	int fd;

	(void)state;
	conf_init(&conf, peers, 1);
	start(&r, &conf);
	fd = raw_connect("127.0.0.1", r.port, 3000);
	assert_true(fd >= 0);
	/* End of stream, not a time-out: the listener closed at once. */
	assert_int_equal(raw_read(fd, buf, sizeof(buf)), 0);
	close(fd);

	client_init(&c, "127.0.0.1", r.port, TEST_SECRET);
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    -1);
	assert_int_equal(err.code, MEPP_STEP_SHORT_READ);
	assert_non_null(strstr(err.msg, "after 0 of the 8 bytes of R1"));
	assert_int_equal(decider.calls, 0);
	assert_int_equal(lrun_stop(&r), 0);
	assert_int_equal(logcap_count("refused a connection from 127.0.0.1",
	    "no MEPP peer trusts", NULL), 2);
}

static void
test_client_times_out_against_a_silent_listener(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct mepp_client c;
	struct psync_err err;
	char where[64];
	long long t0, elapsed;
	int lfd;

	(void)state;
	/* Accepts in the kernel's backlog, never says a word. */
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&sin, &len), 0);

	client_init(&c, "127.0.0.1", ntohs(sin.sin_port), TEST_SECRET);
	c.timeout_ms = 300;
	t0 = mono_ms();
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    -1);
	elapsed = mono_ms() - t0;
	assert_int_equal(err.code, MEPP_STEP_TIMEOUT);
	snprintf(where, sizeof(where), "127.0.0.1:%u", ntohs(sin.sin_port));
	assert_non_null(strstr(err.msg, where));
	assert_non_null(strstr(err.msg, "timed out waiting for R1"));
	assert_true(elapsed >= 250 && elapsed < 2000);
	close(lfd);
}

static void
test_client_reports_connect_failure_on_a_closed_port(void **state)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct mepp_client c;
	struct psync_err err;
	int fd;

	(void)state;
	/* A port that was free a moment ago and has no listener. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);

	client_init(&c, "127.0.0.1", ntohs(sin.sin_port), TEST_SECRET);
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    -1);
	assert_int_equal(err.code, MEPP_STEP_CONNECT);
	assert_non_null(strstr(err.msg, "connect failed"));
	assert_non_null(strstr(err.msg, "refused"));

	/* Arguments are checked before any traffic. */
	c.port = 0;
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    -1);
	assert_int_equal(err.code, MEPP_STEP_ARGS);
}

static void
test_length_header_out_of_bounds_is_answered_5_without_reading_on(void **state)
{
	static const uint8_t huge[12] = {
		0, 0, 0, 0, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0,
	};
	static const uint8_t tiny[12] = {
		0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 0,
	};
	const uint8_t *hdrs[2] = { huge, tiny };
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct lrun r;
	uint8_t buf[32];
	size_t i;
	int fd;

	(void)state;
	conf_init(&conf, peers, 1);
	start(&r, &conf);
	for (i = 0; i < 2; i++) {
		fd = raw_connect("127.0.0.1", r.port, 3000);
		assert_true(fd >= 0);
		assert_int_equal(raw_read(fd, buf, 8), 8);	/* R1 */
		assert_int_equal(send(fd, hdrs[i], 12, 0), 12);
		/* The answer, then end of stream. */
		assert_int_equal(raw_read(fd, buf, sizeof(buf)), 16);
		assert_int_equal(mepp_response_parse(buf, 16), PSYNC_E_PROTOCOL);
		assert_int_equal(buf[11], 1);
		close(fd);
	}
	assert_int_equal(lrun_stop(&r), 0);
	/* The same warning from the same peer twice: once, then a count. */
	assert_int_equal(logcap_count("8203:", "length field out of range",
	    NULL), 1);
	log_repeats_flush(true);
	assert_int_equal(logcap_count("8203:", "length field out of range",
	    "(repeated 1 time)"), 1);
	assert_int_equal(decider.calls, 0);
}

static void
test_connection_cap_closes_the_excess_at_once(void **state)
{
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct mepp_client c;
	struct psync_err err;
	struct lrun r;
	uint8_t buf[8];
	long long t0;
	int held[2], fd, i;

	(void)state;
	conf_init(&conf, peers, 1);
	conf.max_connections = 2;
	conf.request_timeout_ms = 5000;
	start(&r, &conf);
	for (i = 0; i < 2; i++) {
		held[i] = raw_connect("127.0.0.1", r.port, 3000);
		assert_true(held[i] >= 0);
		assert_int_equal(raw_read(held[i], buf, 8), 8);	/* served */
	}
	t0 = mono_ms();
	fd = raw_connect("127.0.0.1", r.port, 3000);
	assert_true(fd >= 0);
	assert_int_equal(raw_read(fd, buf, 8), 0);
	assert_true(mono_ms() - t0 < 1000);
	close(fd);
	assert_int_equal(logcap_count("2 connections already open",
	    "closed a new one from 127.0.0.1", NULL), 1);

	/* Once the stalled ones go, there is room again. */
	close(held[0]);
	close(held[1]);
	client_init(&c, "127.0.0.1", r.port, TEST_SECRET);
	for (i = 0; i < 50; i++) {
		if (mepp_client_change(&c, "alice", TEST_PASSWORD, &err) ==
		    PSYNC_OK)
			break;
		usleep(20000);	/* the server notices the closes */
	}
	assert_true(i < 50);
	assert_int_equal(lrun_stop(&r), 0);
}

static void
test_stop_returns_promptly_despite_a_stalled_client(void **state)
{
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct lrun r;
	uint8_t buf[8];
	long long t0;
	int fd;

	(void)state;
	conf_init(&conf, peers, 1);
	conf.request_timeout_ms = 30000;
	start(&r, &conf);
	fd = raw_connect("127.0.0.1", r.port, 3000);
	assert_true(fd >= 0);
	assert_int_equal(raw_read(fd, buf, 8), 8);
	t0 = mono_ms();
	assert_int_equal(lrun_stop(&r), 0);
	assert_true(mono_ms() - t0 < 2000);
	/* The stalled connection was closed, without an answer. */
	assert_int_equal(raw_read(fd, buf, sizeof(buf)), 0);
	close(fd);
}

static int
ipv6_loopback_usable(void)
{
	struct sockaddr_in6 sin6;
	int fd, ok;

	if ((fd = socket(AF_INET6, SOCK_STREAM, 0)) == -1)
		return 0;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_addr = in6addr_loopback;
	ok = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == 0;
	close(fd);
	return ok;
}

static void
test_ipv6_and_ipv4_mapped_addresses_are_matched_in_binary(void **state)
{
	/* Written unusually on purpose: matching is on the binary address. */
	static const char *const mapped[] = { "::FFFF:127.0.0.1" };
	static const char *const six[] = { "0:0:0:0:0:0:0:1" };
	const struct mepp_peer peers_mapped[] = {
		{ "win1", TEST_SECRET, mapped, 1 },
	};
	const struct mepp_peer peers_six[] = {
		{ "win6", TEST_SECRET, six, 1 },
	};
	struct mepp_listener_conf conf;
	struct mepp_client c;
	struct psync_err err;
	struct lrun r;

	(void)state;
	/* Dual-stack listener: an IPv4 client arrives as ::ffff:127.0.0.1. */
	conf_init(&conf, peers_mapped, 1);
	conf.address = ipv6_loopback_usable() ? NULL : "127.0.0.1";
	start(&r, &conf);
	client_init(&c, "127.0.0.1", r.port, TEST_SECRET);
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_OK);
	assert_int_equal(lrun_stop(&r), 0);
	assert_int_equal(logcap_count("accepted", "win1/127.0.0.1", NULL), 1);

	if (!ipv6_loopback_usable()) {
		fprintf(stderr, "# no IPv6 loopback here: ::1 part skipped\n");
		return;
	}
	conf_init(&conf, peers_six, 1);
	conf.address = "::1";
	start(&r, &conf);
	client_init(&c, "::1", r.port, TEST_SECRET);
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_OK);
	assert_string_equal(decider.peer, "win6");
	assert_int_equal(lrun_stop(&r), 0);
	assert_int_equal(logcap_count("accepted", "win6/::1", NULL), 1);
}

static void
test_listener_open_names_the_bad_peer_entry(void **state)
{
	static const char *const names[] = { "127.0.0.1", "win1.example" };
	const struct mepp_peer bad_addr[] = {
		{ "win1", TEST_SECRET, names, 2 },
	};
	const struct mepp_peer no_trust[] = {
		{ "win2", TEST_SECRET, NULL, 0 },
	};
	const struct mepp_peer no_secret[] = {
		{ "win3", "", loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct psync_err err;

	(void)state;
	conf_init(&conf, bad_addr, 1);
	assert_null(mepp_listener_open(&conf, &err));
	assert_non_null(strstr(err.msg, "peer win1"));
	assert_non_null(strstr(err.msg, "\"win1.example\" is not an IPv4 or "
	    "IPv6 address literal"));
	conf_init(&conf, no_trust, 1);
	assert_null(mepp_listener_open(&conf, &err));
	assert_non_null(strstr(err.msg, "peer win2 has no trusted addresses"));
	conf_init(&conf, no_secret, 1);
	assert_null(mepp_listener_open(&conf, &err));
	assert_non_null(strstr(err.msg, "peer win3"));
	conf_init(&conf, no_secret, 0);
	assert_null(mepp_listener_open(&conf, &err));
	assert_non_null(strstr(err.msg, "no MEPP peers"));
	/* An address this machine does not have: the bind fails, and says so. */
	conf_init(&conf, bad_addr, 1);
	conf.n_peers = 0;
	conf.peers = NULL;
	{
		const struct mepp_peer ok[] = { { "win1", TEST_SECRET, loopback4, 1 } };

		conf.peers = ok;
		conf.n_peers = 1;
		conf.address = "198.51.100.77";
		assert_null(mepp_listener_open(&conf, &err));
		assert_non_null(strstr(err.msg, "198.51.100.77"));
		assert_non_null(strstr(err.msg, "cannot listen"));
	}
}

static void
test_result_reasons_come_from_the_code_table(void **state)
{
	(void)state;
	assert_string_equal(mepp_result_reason(PSYNC_E_NO_USER), "no user entry");
	assert_string_equal(mepp_result_reason(PSYNC_E_PROTOCOL),
	    code_reason(PSYNC_E_PROTOCOL));
	assert_string_equal(mepp_result_reason(1000), "unknown result code");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trusted_client_gets_each_decision_with_its_log_number),
		cmocka_unit_test(test_peer_names_are_escaped_and_repeats_are_counted),
		cmocka_unit_test(test_wrong_secret_gets_code_5_and_log_8203_without_a_decision),
		cmocka_unit_test(test_peers_sharing_an_address_are_told_apart_by_secret),
		cmocka_unit_test(test_untrusted_client_is_closed_without_a_byte),
		cmocka_unit_test(test_client_times_out_against_a_silent_listener),
		cmocka_unit_test(test_client_reports_connect_failure_on_a_closed_port),
		cmocka_unit_test(test_length_header_out_of_bounds_is_answered_5_without_reading_on),
		cmocka_unit_test(test_connection_cap_closes_the_excess_at_once),
		cmocka_unit_test(test_stop_returns_promptly_despite_a_stalled_client),
		cmocka_unit_test(test_ipv6_and_ipv4_mapped_addresses_are_matched_in_binary),
		cmocka_unit_test(test_listener_open_names_the_bad_peer_entry),
		cmocka_unit_test(test_result_reasons_come_from_the_code_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
