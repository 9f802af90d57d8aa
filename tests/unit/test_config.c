/*
 * Configuration tests: the example file loads with its defaults, and every
 * kind of error is reported with file, line, option and what was expected,
 * word for word.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "config_file.h"

struct messages {
	int	n;
	char	text[16][600];
};

static void
collect(void *ctx, const char *message)
{
	struct messages *m = ctx;

	if (m->n < 16)
		snprintf(m->text[m->n], sizeof(m->text[0]), "%s", message);
	m->n++;
}

static char *
example_path(void)
{
	const char *top = getenv("top_srcdir");
	static char path[4096];

	snprintf(path, sizeof(path), "%s/conf/psync.conf.example",
	    top != NULL ? top : "../..");
	return path;
}

static void
test_example_loads_with_documented_values(void **state)
{
	struct messages m = { 0 };
	struct psync_config *c;
	const struct peer_conf *p;

	(void)state;
	c = config_load(example_path(), false, collect, &m);
	assert_non_null(c);
	assert_string_equal(c->node_name, "unix1");
	assert_int_equal(c->store.type, STORE_FILES);
	assert_string_equal(c->store.shadow_file, "/etc/shadow");
	assert_int_equal(c->store.hash_method, HASH_LOGIN_DEFS);
	assert_int_equal(c->store.lock_timeout, 15);
	assert_null(c->store.nis_make_dir);
	assert_string_equal(c->policy.sync_users, "+ALL");
	assert_int_equal(c->policy.min_uid, 1000);
	assert_true(c->policy.case_ignore_name);
	assert_true(c->listen_psync.enabled);
	assert_int_equal(c->listen_psync.port, 6678);
	assert_int_equal(c->listen_mepp.port, 6677);
	assert_int_equal(c->n_peers, 2);
	p = config_find_peer(c, "winsrv1");
	assert_non_null(p);
	assert_int_equal(p->protocol, PROTO_MEPP);
	assert_int_equal(p->direction, DIR_BOTH);
	assert_int_equal(p->n_trusted, 1);
	assert_string_equal(p->trusted[0], "192.0.2.10");
	assert_int_equal(p->rules.min_classes, 3);
	assert_true(p->rules.reject_username);
	assert_int_equal(p->mepp_key_words, 4);
	p = config_find_peer(c, "unix2");
	assert_non_null(p);
	assert_int_equal(p->connect_timeout, 10);
	assert_int_equal(c->queue.max_age, 7 * 86400);
	assert_int_equal(c->queue.max_retry_interval, 3600);
	assert_int_equal(c->log.facility, LOG_AUTHPRIV);
	assert_int_equal(c->log.level, LOG_INFO);
	assert_null(config_find_peer(c, "nobody"));
	config_free(c);
}

static void
test_empty_file_gives_defaults(void **state)
{
	struct messages m = { 0 };
	struct psync_config *c;

	(void)state;
	c = config_load_string("", "empty.conf", collect, &m);
	assert_non_null(c);
	assert_int_equal(m.n, 0);
	assert_true(c->node_name[0] != '\0');	/* the host name */
	assert_false(c->listen_psync.enabled);
	assert_int_equal(c->n_peers, 0);
	assert_int_equal(c->queue.retry_interval, 30);
	config_free(c);
}

/* One bad file, the exact first message it must produce. */
static const struct {
	const char	*text;
	const char	*message;
} bad[] = {
	{ "store {\n type = nfs\n}\n",
	  "t.conf:2: option 'type': expected files, pam or samba, got 'nfs'" },
	{ "store {\n hash-method = md5\n}\n",
	  "t.conf:2: option 'hash-method': expected login.defs, yescrypt, "
	  "sha512, sha256 or bcrypt, got 'md5'" },
	{ "policy {\n min-uid = -4\n}\n",
	  "t.conf:2: option 'min-uid': expected a whole number of 0 or more, "
	  "got '-4'" },
	{ "queue {\n\n max-age = 3days\n}\n",
	  "t.conf:3: option 'max-age': expected a duration such as 90, 90s, "
	  "15m, 2h, 7d or 1w, got '3days'" },
	{ "# comment\n# comment\nlisten psync {\n port = 70000\n}\n",
	  "t.conf:4: option 'port': expected a value from 0 to 65535, got 70000" },
	{ "policy {\n min-classes = 5\n}\n",
	  "t.conf:2: option 'min-classes': expected a value from 0 to 4, got 5" },
	{ "policy {\n min-length = 20\n max-length = 10\n}\n",
	  "t.conf:4: option 'min-length': expected at most max-length (10), "
	  "got 20" },
	{ "policy {\n sync-users = \"+ALL,,-root\"\n}\n",
	  "t.conf:2: option 'sync-users': sync-users '+ALL,,-root': expected "
	  "comma-separated entries like +ALL,-root,+alice (empty or overlong "
	  "entry)" },
	{ "store {\n shadow-file = \"shadow\"\n}\n",
	  "t.conf:2: option 'shadow-file': expected an absolute path, got "
	  "'shadow'" },
	{ "node-name = \"my host\"\n",
	  "t.conf:1: option 'node-name': expected 1 to 64 letters, digits, '.', "
	  "'_' or '-', got 'my host'" },
	{ "listen smtp {\n}\n",
	  "t.conf:2: section 'listen smtp': expected 'listen psync' or "
	  "'listen mepp'" },
	{ "listen psync {\n address = \"any\"\n}\n",
	  "t.conf:3: listen psync: option 'address': expected an IPv4 or IPv6 "
	  "address to bind, got 'any'" },
	{ "peer \"a\" {\n protocol = smb\n}\n",
	  "t.conf:2: option 'protocol': expected psync or mepp, got 'smb'" },
	{ "peer \"a\" {\n direction = sideways\n}\n",
	  "t.conf:2: option 'direction': expected send, receive or both, got "
	  "'sideways'" },
	{ "peer \"a\" {\n key-file = \"/k\"\n}\n",
	  "t.conf:3: peer 'a': option 'address': expected the host to send to "
	  "(direction is both)" },
	{ "peer \"a\" {\n address = \"192.0.2.1\"\n}\n",
	  "t.conf:3: peer 'a': option 'key-file': expected the pre-shared key "
	  "file (or X.509 'ca-file', 'cert-file', 'cert-key-file')" },
	{ "peer \"w\" {\n protocol = mepp\n address = \"192.0.2.1\"\n}\n",
	  "t.conf:4: peer 'w': expected option 'key' or 'key-file' with the "
	  "legacy MEPP key" },
	{ "peer \"w\" {\n protocol = mepp\n address = \"win.example\"\n"
	  " key = \"Abcdefgh12345678\"\n}\n",
	  "t.conf:5: peer 'w': option 'trusted-addresses': expected the "
	  "addresses this Windows server connects from (direction is both)" },
	{ "peer \"w\" {\n protocol = mepp\n address = \"192.0.2.1\"\n"
	  " key = \"Abcdefgh12345678\"\n key-derivation = 64bit\n}\n",
	  "t.conf:5: option 'key-derivation': expected 4-byte or 8-byte, got "
	  "'64bit'" },
	{ "peer \"p\" {\n address = \"192.0.2.1\"\n key-file = \"/k\"\n"
	  " key-derivation = 8-byte\n}\n",
	  "t.conf:5: peer 'p': option 'key-derivation': only MEPP peers derive "
	  "a session key from a legacy key (protocol is psync)" },
	{ "peer \"w\" {\n address = \"192.0.2.1\"\n key = \"x\"\n key-file = \"/k\"\n}\n",
	  "t.conf:5: peer 'w': option 'key': only MEPP peers have an inline key; "
	  "psync peers use 'key-file' (32 random bytes, psyncctl keygen)" },
	{ "peer \"a\" {\n address = \"192.0.2.1\"\n trusted-addresses = "
	  "{\"192.0.2.1\", \"host\"}\n key-file = \"/k\"\n}\n",
	  "t.conf:3: option 'trusted-addresses': expected IPv4 or IPv6 addresses, "
	  "got 'host'" },
	{ "peer \"a b\" {\n address = \"192.0.2.1\"\n key-file = \"/k\"\n}\n",
	  "t.conf:4: peer 'a b': expected a name of 1 to 64 letters, digits, "
	  "'.', '_' or '-'" },
	{ "node-name = \"n1\"\npeer \"n1\" {\n address = \"192.0.2.1\"\n"
	  " key-file = \"/k\"\n}\n",
	  "t.conf:5: peer 'n1': expected a name other than this node's own name" },
	{ "log {\n level = loud\n}\n",
	  "t.conf:2: option 'level': expected error, warning, notice, info or "
	  "debug, got 'loud'" },
	{ "log {\n facility = kern\n}\n",
	  "t.conf:2: option 'facility': expected a syslog facility (auth, "
	  "authpriv, daemon, user, local0 to local7), got 'kern'" },
	{ "store {\n type = files\n",
	  "t.conf:3: unexpected end of file: the '{' on line 1 is never closed" },
	{ "}\n", "t.conf:1: expected an option or a section, got '}' with no "
	  "section open" },
	{ "node-name = \"abc\n", "t.conf:2: unexpected end of file inside a "
	  "quoted string" },
	{ "/* open\n comment\n", "t.conf:3: unexpected end of file inside a "
	  "/* comment */" },
	{ "# a\n// b\n/* c\n d */\nbogus = 1\n", "t.conf:5: no such option 'bogus': "
	  "expected one of the options of the top level (psync.conf(5))" },
	{ "store {\n shadow = \"/etc/shadow\"\n}\n", "t.conf:2: no such option "
	  "'shadow': expected one of the options of section 'store' (psync.conf(5))" },
};

static void
test_every_error_names_file_line_option_and_expectation(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct messages m = { 0 };
		struct psync_config *c;

		c = config_load_string(bad[i].text, "t.conf", collect, &m);
		if (c != NULL || m.n == 0 || strcmp(m.text[0], bad[i].message) != 0)
			fail_msg("case %zu: expected\n  %s\ngot %s\n  %s", i,
			    bad[i].message, c != NULL ? "a loaded config and" : "",
			    m.n > 0 ? m.text[0] : "(no message)");
		config_free(c);
	}
}

static void
test_weak_setups_warn_but_load(void **state)
{
	struct messages m = { 0 };
	struct psync_config *c;

	(void)state;
	c = config_load_string("listen mepp {\n}\n", "t.conf", collect, &m);
	assert_non_null(c);
	assert_int_equal(m.n, 1);
	assert_string_equal(m.text[0], "t.conf: warning: 'listen mepp' is enabled "
	    "but no peer uses protocol mepp: every client will be refused");
	config_free(c);

	memset(&m, 0, sizeof(m));
	c = config_load_string("peer \"b\" {\n address = \"192.0.2.2\"\n"
	    " key-file = \"/nonexistent/b.key\"\n}\n", "t.conf", collect, &m);
	assert_non_null(c);
	assert_int_equal(m.n, 1);
	assert_string_equal(m.text[0], "t.conf:4: warning: peer 'b': receives "
	    "over psync but no 'listen psync' section is enabled: nothing will "
	    "arrive from it");
	config_free(c);
}

static void
test_legacy_mepp_keys_and_peers_are_warned_about(void **state)
{
	struct messages m = { 0 };
	struct psync_config *c;

	(void)state;
	c = config_load_string("listen mepp {\n}\npeer \"w1\" {\n protocol = mepp\n"
	    " address = \"192.0.2.1\"\n key = \"short\"\n}\npeer \"w2\" {\n"
	    " protocol = mepp\n address = \"192.0.2.2\"\n key = \"Abcdefgh123456789\"\n}\n",
	    "t.conf", collect, &m);
	assert_non_null(c);
	assert_int_equal(m.n, 2);
	assert_string_equal(m.text[0], "t.conf:7: warning: peer 'w1': option 'key': "
	    "the key has 5 characters; legacy MEPP peers need 16 to 21 (old "
	    "deployments have such keys; the Windows side may refuse to set them)");
	assert_string_equal(m.text[1], "t.conf: warning: MEPP is weak (3DES, SHA-1, "
	    "a key derived from the shared text, no forward secrecy); it is used "
	    "only with the legacy peers w1, w2");
	config_free(c);
}

static void
test_mepp_peer_key_derivation_defaults_to_4_byte_and_takes_8_byte(void **state)
{
	struct messages m = { 0 };
	struct psync_config *c;

	(void)state;
	c = config_load_string("peer \"w1\" {\n protocol = mepp\n"
	    " address = \"192.0.2.1\"\n key = \"Abcdefgh123456789\"\n"
	    " key-derivation = 8-byte\n}\npeer \"w2\" {\n protocol = mepp\n"
	    " address = \"192.0.2.2\"\n key = \"Abcdefgh123456789\"\n}\n"
	    "peer \"w3\" {\n protocol = mepp\n address = \"192.0.2.3\"\n"
	    " key = \"Abcdefgh123456789\"\n key-derivation = \"4-byte\"\n}\n",
	    "t.conf", collect, &m);
	assert_non_null(c);
	assert_int_equal(config_find_peer(c, "w1")->mepp_key_words, 8);
	assert_int_equal(config_find_peer(c, "w2")->mepp_key_words, 4);
	assert_int_equal(config_find_peer(c, "w3")->mepp_key_words, 4);
	config_free(c);
}

static void
test_durations_take_units(void **state)
{
	(void)state;
	assert_int_equal(config_parse_duration("90"), 90);
	assert_int_equal(config_parse_duration("90s"), 90);
	assert_int_equal(config_parse_duration("15m"), 900);
	assert_int_equal(config_parse_duration("2h"), 7200);
	assert_int_equal(config_parse_duration("7d"), 604800);
	assert_int_equal(config_parse_duration("1w"), 604800);
	assert_int_equal(config_parse_duration("1y"), -1);
	assert_int_equal(config_parse_duration("m"), -1);
	assert_int_equal(config_parse_duration("5ms"), -1);
	assert_int_equal(config_parse_duration("-5"), -1);
	assert_int_equal(config_parse_duration("99999999999999999999"), -1);
}

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
test_unsafe_files_are_refused(void **state)
{
	char dir[] = "/tmp/psync-conf-XXXXXX", conf[128], key[128], text[512];
	struct messages m = { 0 };
	struct psync_config *c;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(conf, sizeof(conf), "%s/psync.conf", dir);
	snprintf(key, sizeof(key), "%s/b.key", dir);
	snprintf(text, sizeof(text), "listen psync {\n}\npeer \"b\" {\n"
	    " address = \"192.0.2.2\"\n key-file = \"%s\"\n}\n", key);

	/* A group-writable configuration is refused as a whole. */
	write_file(conf, text, 0664);
	c = config_load(conf, true, collect, &m);
	assert_null(c);
	assert_int_equal(m.n, 1);
	assert_non_null(strstr(m.text[0], "refused: group- or world-writable"));
	assert_non_null(strstr(m.text[0], conf));

	/* Mode 0644 is fine; a key file readable by others is not. */
	write_file(conf, text, 0644);
	write_file(key, "00", 0644);
	memset(&m, 0, sizeof(m));
	c = config_load(conf, true, collect, &m);
	assert_null(c);
	assert_int_equal(m.n, 1);
	assert_non_null(strstr(m.text[0], ":6: peer 'b': option 'key-file': "));
	assert_non_null(strstr(m.text[0], "readable by group or others"));

	write_file(key, "00", 0600);
	memset(&m, 0, sizeof(m));
	c = config_load(conf, true, collect, &m);
	assert_non_null(c);
	assert_int_equal(m.n, 0);
	config_free(c);

	memset(&m, 0, sizeof(m));
	assert_null(config_load("/nonexistent/psync.conf", true, collect, &m));
	assert_string_equal(m.text[0], "/nonexistent/psync.conf: cannot open: "
	    "No such file or directory");
	unlink(key);
	unlink(conf);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_example_loads_with_documented_values),
		cmocka_unit_test(test_empty_file_gives_defaults),
		cmocka_unit_test(test_every_error_names_file_line_option_and_expectation),
		cmocka_unit_test(test_weak_setups_warn_but_load),
		cmocka_unit_test(test_legacy_mepp_keys_and_peers_are_warned_about),
		cmocka_unit_test(test_mepp_peer_key_derivation_defaults_to_4_byte_and_takes_8_byte),
		cmocka_unit_test(test_durations_take_units),
		cmocka_unit_test(test_unsafe_files_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
