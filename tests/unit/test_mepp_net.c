/*
 * MEPP client and listener over loopback (lib/proto/mepp_net.c): answers for
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

#include <poll.h>
#include <time.h>

#include <openssl/rand.h>

#include "mepp_testlib.h"
#include "util.h"

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

/* ------------------------------------------------ key derivation forms */

/* The decide_ex callback: records the form, then answers as test_decide. */
struct form_seen {
	pthread_mutex_t		lock;
	int			calls;
	enum mepp_kdf_form	form;
	char			addr[64];
};

static struct form_seen form_seen = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int
test_decide_ex(void *ctx, const struct mepp_decision *d)
{
	pthread_mutex_lock(&form_seen.lock);
	form_seen.calls++;
	form_seen.form = d->form;
	snprintf(form_seen.addr, sizeof(form_seen.addr), "%s", d->addr);
	pthread_mutex_unlock(&form_seen.lock);
	return test_decide(ctx, d->peer, d->type, d->user, d->password);
}

static void
test_client_and_listener_speak_both_key_forms(void **state)
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
	conf.decide = NULL;
	conf.decide_ex = test_decide_ex;
	start(&r, &conf);
	form_seen.calls = 0;
	client_init(&c, "127.0.0.1", r.port, TEST_SECRET);

	/* The client option selects the form; the listener takes both. */
	c.kdf_form = MEPP_KDF_WORD8;
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_OK);
	assert_int_equal(form_seen.calls, 1);
	assert_int_equal(form_seen.form, MEPP_KDF_WORD8);
	assert_string_equal(form_seen.addr, "127.0.0.1");
	assert_int_equal(mepp_client_check(&c, "alice", &err), PSYNC_OK);
	assert_int_equal(form_seen.form, MEPP_KDF_WORD8);
	c.kdf_form = MEPP_KDF_WORD4;
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_OK);
	assert_int_equal(form_seen.calls, 3);
	assert_int_equal(form_seen.form, MEPP_KDF_WORD4);
	/* A wrong key fails in either form, without a decision. */
	c.secret = "WRONG#secret-9876";
	c.kdf_form = MEPP_KDF_WORD8;
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_E_PROTOCOL);
	assert_int_equal(form_seen.calls, 3);
	assert_int_equal(lrun_stop(&r), 0);
	/* The log says which form a client used, when it was the 8-byte one. */
	if (logcap_count("password change for user alice from host "
	    "win1/127.0.0.1: accepted (8-byte key derivation form", NULL,
	    NULL) != 1 || logcap_count("accepted (8-byte", NULL, NULL) != 2) {
		logcap_dump();
		fail_msg("expected two accepted lines naming the 8-byte form");
	}
	assert_password_never_logged(TEST_PASSWORD);
}

/* ------------------------------------------------------------ half-close */

static void
test_half_closed_partial_request_is_answered_5(void **state)
{
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
	};
	struct mepp_listener_conf conf;
	struct psync_err err;
	struct lrun r;
	uint8_t r1[8], r2[8] = { 0 }, req[MEPP_MAX_REQUEST], resp[32];
	size_t n, cut[] = { 0, 5, 12, 30 };
	size_t i;
	int fd;

	(void)state;
	conf_init(&conf, peers, 1);
	start(&r, &conf);
	for (i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
		fd = raw_connect("127.0.0.1", r.port, 3000);
		assert_true(fd >= 0);
		assert_int_equal(raw_read(fd, r1, sizeof(r1)), 8);
		n = mepp_request_build(r1, r2, TEST_SECRET, MEPP_TYPE_UPDATE,
		    "alice", TEST_PASSWORD, req, sizeof(req), &err);
		assert_true(n > cut[i]);
		if (cut[i] > 0)
			assert_int_equal(send(fd, req, cut[i], MSG_NOSIGNAL),
			    (ssize_t)cut[i]);
		assert_int_equal(shutdown(fd, SHUT_WR), 0);
		/* The answer, then end of stream (not the socket's time-out). */
		if (raw_read(fd, resp, sizeof(resp)) != MEPP_RESPONSE_LEN)
			fail_msg("cut at %zu: no 16-byte answer", cut[i]);
		assert_int_equal(mepp_response_parse(resp, MEPP_RESPONSE_LEN),
		    PSYNC_E_PROTOCOL);
		close(fd);
	}
	assert_int_equal(decider.calls, 0);
	assert_int_equal(lrun_stop(&r), 0);
	if (logcap_count("8199: error in receiving from socket: host "
	    "win1/127.0.0.1: the client closed its side after 30 bytes of a "
	    "request; answering 5", NULL, NULL) != 1 ||
	    logcap_count("8199:", "answering 5", NULL) != 4) {
		logcap_dump();
		fail_msg("expected an 8199 line for each half-closed client");
	}
	secure_wipe(req, sizeof(req));
}

/* ----------------------------------------------------------------- probe */

/*
 * A listener that behaves like the published UNIX-side one, as far as a
 * probe can see: it MACs with type 0 whatever the header says, so it
 * answers 5 to every type 2 request; it derives the session key in one
 * form only (the 64-bit build in the 8-byte form) and answers 5 when the
 * MAC fails; it applies through PAM, which fails for a user it does not
 * know: 4. It knows alice (0). Its response type is host-order 1.
 */
struct fake_legacy {
	int			lfd;
	int			stop[2];
	pthread_t		tid;
	unsigned int		port;
	const char		*secret;
	enum mepp_kdf_form	form;
	pthread_mutex_t		lock;
	int			type0;
	int			type2;
	int			serve_max;	/* then refuse; 0: no limit */
	char			last_user[128];
};

static void
fake_legacy_serve(struct fake_legacy *f, int fd)
{
	static struct mepp_request req;
	uint8_t r1[8], buf[MEPP_MAX_REQUEST], resp[MEPP_RESPONSE_LEN];
	const char *why;
	size_t total;
	int code = PSYNC_E_PROTOCOL;

	assert_int_equal(RAND_bytes(r1, sizeof(r1)), 1);
	if (send(fd, r1, sizeof(r1), MSG_NOSIGNAL) != (ssize_t)sizeof(r1))
		return;
	if (raw_read(fd, buf, MEPP_HEADER_LEN) != MEPP_HEADER_LEN)
		goto answer;
	if ((total = mepp_request_header(buf, MEPP_HEADER_LEN, &why)) == 0)
		goto answer;
	if (raw_read(fd, buf + MEPP_HEADER_LEN, total - MEPP_HEADER_LEN) !=
	    (ssize_t)(total - MEPP_HEADER_LEN))
		goto answer;
	pthread_mutex_lock(&f->lock);
	if (buf[11] == MEPP_TYPE_CHECK)
		f->type2++;
	else
		f->type0++;
	pthread_mutex_unlock(&f->lock);
	if (buf[11] == MEPP_TYPE_CHECK)
		goto answer;		/* MAC over type 0 never matches */
	if (mepp_request_parse(r1, f->secret, buf, total, &req) != PSYNC_OK ||
	    req.form != f->form)
		goto answer;
	pthread_mutex_lock(&f->lock);
	str_copy(f->last_user, req.user, sizeof(f->last_user));
	pthread_mutex_unlock(&f->lock);
	code = strcmp(req.user, "alice") == 0 ? PSYNC_OK : PSYNC_E_NOT_UPDATED;
answer:
	mepp_request_wipe(&req);
	secure_wipe(buf, sizeof(buf));
	mepp_response_build(code, resp);
	resp[8] = 1;			/* host order, as on x86 */
	resp[11] = 0;
	(void)send(fd, resp, sizeof(resp), MSG_NOSIGNAL);
}

static void *
fake_legacy_thread(void *arg)
{
	struct fake_legacy *f = arg;
	struct pollfd pfd[2];
	int fd;

	int served = 0;

	pfd[0].fd = f->lfd;
	pfd[0].events = POLLIN;
	pfd[1].fd = f->stop[0];
	pfd[1].events = POLLIN;
	for (;;) {
		/* Gone after serve_max connections: later connects are refused. */
		if (f->serve_max > 0 && served == f->serve_max) {
			close(f->lfd);
			f->lfd = -1;
			(void)poll(&pfd[1], 1, -1);
			break;
		}
		if (poll(pfd, 2, -1) == -1)
			break;
		if (pfd[1].revents != 0)
			break;
		if ((fd = accept(f->lfd, NULL, NULL)) == -1)
			continue;
		fake_legacy_serve(f, fd);
		close(fd);
		served++;
	}
	return NULL;
}

static void
fake_legacy_start(struct fake_legacy *f, const char *secret,
    enum mepp_kdf_form form, int serve_max)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(f, 0, sizeof(*f));
	pthread_mutex_init(&f->lock, NULL);
	f->secret = secret;
	f->form = form;
	f->serve_max = serve_max;
	f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(f->lfd, 8), 0);
	assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&sin, &len), 0);
	f->port = ntohs(sin.sin_port);
	assert_int_equal(pipe(f->stop), 0);
	assert_int_equal(pthread_create(&f->tid, NULL, fake_legacy_thread, f), 0);
}

static void
fake_legacy_stop(struct fake_legacy *f)
{
	assert_int_equal(write(f->stop[1], "x", 1), 1);
	pthread_join(f->tid, NULL);
	close(f->stop[0]);
	close(f->stop[1]);
	if (f->lfd != -1)
		close(f->lfd);
	pthread_mutex_destroy(&f->lock);
}

static void
test_probe_tells_right_from_wrong_key_at_a_legacy_listener(void **state)
{
	struct fake_legacy f;
	struct mepp_client c;
	struct mepp_probe pr;
	struct psync_err err;

	(void)state;
	fake_legacy_start(&f, TEST_SECRET, MEPP_KDF_WORD4, 0);
	client_init(&c, "127.0.0.1", f.port, TEST_SECRET);

	/* Why a type 2 check cannot tell: 5 even with the right key. */
	assert_int_equal(mepp_client_check(&c, "alice", &err), PSYNC_E_PROTOCOL);
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_OK);

	/* Right key: the listener read the request and answered 4. */
	assert_int_equal(mepp_client_probe(&c, "win1", &pr),
	    MEPP_PROBE_KEY_RIGHT);
	assert_int_equal(pr.step, MEPP_PROBE_STEP_NONE);
	assert_int_equal(pr.code, PSYNC_E_NOT_UPDATED);
	assert_int_equal(pr.form, MEPP_KDF_WORD4);
	assert_non_null(strstr(pr.message, "peer win1 read our request"));
	assert_non_null(strstr(pr.message, "the MEPP keys match"));
	/* A change (type 0) for a name no account can have, nothing else. */
	assert_string_equal(f.last_user, MEPP_PROBE_USER);
	assert_non_null(strchr(MEPP_PROBE_USER, ':'));
	assert_int_equal(f.type2, 1);		/* the check above */
	assert_int_equal(f.type0, 2);		/* the change and the probe */

	/* Wrong key: 5 in both forms (two exchanges). */
	c.secret = "WRONG#secret-9876";
	assert_int_equal(mepp_client_probe(&c, "win1", &pr),
	    MEPP_PROBE_KEY_WRONG);
	assert_int_equal(pr.step, MEPP_PROBE_STEP_NONE);
	assert_int_equal(pr.code, PSYNC_E_PROTOCOL);
	assert_non_null(strstr(pr.message, "8203: secret key mismatch"));
	assert_non_null(strstr(pr.message, "on host win1"));
	assert_non_null(strstr(pr.message, "with either key derivation form"));
	assert_int_equal(f.type0, 4);
	assert_int_equal(f.type2, 1);
	fake_legacy_stop(&f);

	/* The other form unanswered (the peer went away): said so. */
	fake_legacy_start(&f, TEST_SECRET, MEPP_KDF_WORD4, 1);
	client_init(&c, "127.0.0.1", f.port, "WRONG#secret-9876");
	assert_int_equal(mepp_client_probe(&c, "win1", &pr),
	    MEPP_PROBE_KEY_WRONG);
	assert_int_equal(pr.code, PSYNC_E_PROTOCOL);
	assert_non_null(strstr(pr.message,
	    "(the other key derivation form got no answer)"));
	fake_legacy_stop(&f);
}

static void
test_probe_finds_a_legacy_listener_of_the_other_key_form(void **state)
{
	struct fake_legacy f;
	struct mepp_client c;
	struct mepp_probe pr;
	struct psync_err err;

	(void)state;
	/* A 64-bit legacy listener: 8-byte form only. */
	fake_legacy_start(&f, TEST_SECRET, MEPP_KDF_WORD8, 0);
	client_init(&c, "127.0.0.1", f.port, TEST_SECRET);
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_E_PROTOCOL);
	c.kdf_form = MEPP_KDF_WORD8;
	assert_int_equal(mepp_client_change(&c, "alice", TEST_PASSWORD, &err),
	    PSYNC_OK);

	c.kdf_form = MEPP_KDF_WORD4;
	assert_int_equal(mepp_client_probe(&c, "win64", &pr),
	    MEPP_PROBE_FORM_MISMATCH);
	assert_int_equal(pr.form, MEPP_KDF_WORD8);
	assert_int_equal(pr.code, PSYNC_E_NOT_UPDATED);
	assert_non_null(strstr(pr.message,
	    "set key-derivation = \"8-byte\" for it"));
	c.kdf_form = MEPP_KDF_WORD8;
	assert_int_equal(mepp_client_probe(&c, "win64", &pr),
	    MEPP_PROBE_KEY_RIGHT);
	/* A wrong key is still a wrong key, whatever the form. */
	c.secret = "WRONG#secret-9876";
	assert_int_equal(mepp_client_probe(&c, "win64", &pr),
	    MEPP_PROBE_KEY_WRONG);
	fake_legacy_stop(&f);
}

static void
test_probe_at_a_psync_listener_and_the_failed_steps(void **state)
{
	static const char *const elsewhere[] = { "192.0.2.55" };
	const struct mepp_peer peers[] = {
		{ "win1", TEST_SECRET, loopback4, 1 },
	};
	const struct mepp_peer untrusting[] = {
		{ "win1", TEST_SECRET, elsewhere, 1 },
	};
	struct mepp_listener_conf conf;
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	struct mepp_client c;
	struct mepp_probe pr;
	struct lrun r;
	int fd;

	(void)state;
	conf_init(&conf, peers, 1);
	start(&r, &conf);
	client_init(&c, "127.0.0.1", r.port, TEST_SECRET);
	/* psync answers 12 for a user it does not have. */
	assert_int_equal(mepp_client_probe(&c, "win1", &pr),
	    MEPP_PROBE_KEY_RIGHT);
	assert_int_equal(pr.code, PSYNC_E_NO_USER);
	assert_string_equal(decider.user, MEPP_PROBE_USER);
	assert_int_equal(decider.type, MEPP_TYPE_UPDATE);
	c.secret = "WRONG#secret-9876";
	assert_int_equal(mepp_client_probe(&c, "win1", &pr),
	    MEPP_PROBE_KEY_WRONG);
	assert_int_equal(decider.calls, 1);
	assert_int_equal(lrun_stop(&r), 0);

	/* Connected, then closed without R1: the exchange failed. */
	conf_init(&conf, untrusting, 1);
	start(&r, &conf);
	client_init(&c, "127.0.0.1", r.port, TEST_SECRET);
	assert_int_equal(mepp_client_probe(&c, "win1", &pr), MEPP_PROBE_FAILED);
	assert_int_equal(pr.step, MEPP_PROBE_STEP_EXCHANGE);
	assert_int_equal(pr.io_step, MEPP_STEP_SHORT_READ);
	assert_int_equal(pr.code, -1);
	assert_non_null(strstr(pr.message, "does it trust this host's address"));
	assert_int_equal(lrun_stop(&r), 0);

	/* Nobody listening: the connect step failed. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	client_init(&c, "127.0.0.1", ntohs(sin.sin_port), TEST_SECRET);
	assert_int_equal(mepp_client_probe(&c, "win1", &pr), MEPP_PROBE_FAILED);
	assert_int_equal(pr.step, MEPP_PROBE_STEP_CONNECT);
	assert_int_equal(pr.io_step, MEPP_STEP_CONNECT);
	assert_non_null(strstr(pr.message, "connect failed"));
	assert_string_equal(mepp_probe_outcome_name(MEPP_PROBE_KEY_WRONG),
	    "key wrong");
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
		cmocka_unit_test(test_client_and_listener_speak_both_key_forms),
		cmocka_unit_test(test_half_closed_partial_request_is_answered_5),
		cmocka_unit_test(test_probe_tells_right_from_wrong_key_at_a_legacy_listener),
		cmocka_unit_test(test_probe_finds_a_legacy_listener_of_the_other_key_form),
		cmocka_unit_test(test_probe_at_a_psync_listener_and_the_failed_steps),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
