/*
 * Policy engine tests: one table of cases over every rule and both
 * directions, plus sync-users parsing, rule combination over peers and the
 * trace that psyncctl policy prints.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "config_file.h"
#include "policy.h"

static const char *const configs[] = {
	/* 0: deny list, deny group, global minimum, three kinds of peer */
	"node-name = \"me\"\n"
	"listen psync {\n}\nlisten mepp {\n}\n"
	"policy {\n sync-users = \"+ALL,-carol,-dave,+dave\"\n"
	" deny-groups = {\"admins\"}\n min-length = 8\n}\n"
	"peer \"win\" {\n protocol = mepp\n address = \"192.0.2.10\"\n"
	" key = \"Abcdef123456789!\"\n min-length = 10\n min-classes = 3\n"
	" reject-username = true\n}\n"
	"peer \"out\" {\n address = \"192.0.2.20\"\n key-file = \"/k\"\n"
	" direction = send\n max-length = 20\n}\n"
	"peer \"in\" {\n address = \"192.0.2.30\"\n key-file = \"/k\"\n"
	" direction = receive\n}\n",
	/* 1: allow list by name, allow group, locked accounts allowed */
	"node-name = \"me\"\nlisten psync {\n}\n"
	"policy {\n sync-users = \"+alice,+Bob\"\n allow-groups = {\"sync\"}\n"
	" skip-locked = false\n min-uid = 500\n}\n"
	"peer \"p\" {\n address = \"192.0.2.40\"\n key-file = \"/k\"\n}\n",
	/* 2: -ALL with exceptions, case-sensitive names */
	"node-name = \"me\"\nlisten psync {\n}\n"
	"policy {\n sync-users = \"-ALL,+erin\"\n case-ignore-name = false\n}\n"
	"peer \"p\" {\n address = \"192.0.2.40\"\n key-file = \"/k\"\n}\n",
};

struct acct_spec {
	const char	*name;
	unsigned int	 uid;
	const char	*groups;	/* comma-separated */
	bool		 locked, disabled, expired;
};

#define A(n, u, g)		{ n, u, g, false, false, false }
#define LOCKED(n)		{ n, 1500, "users", true, false, false }
#define DISABLED(n)		{ n, 1500, "users", false, true, false }
#define EXPIRED(n)		{ n, 1500, "users", false, false, true }
#define NOACCT			{ NULL, 0, NULL, false, false, false }

enum { OUT = POLICY_OUTBOUND, IN = POLICY_INBOUND };

static const struct {
	int			 conf;
	const char		*user;
	struct acct_spec	 acct;
	const char		*peer;	/* NULL: every peer */
	int			 dir;
	const char		*password;
	int			 code;
	int			 msgno;
	const char		*rule;	/* deciding rule, "all" when synced */
} cases[] = {
	/* users and accounts */
	{ 0, "alice", A("alice", 1001, "users"), "win", OUT, NULL, 0, 0, "all" },
	{ 0, "alice", A("alice", 1001, "users"), "win", IN, NULL, 0, 0, "all" },
	{ 0, "root", A("root", 0, "root"), "win", OUT, NULL, 14, 12294, "root" },
	{ 0, "root", A("root", 0, "root"), "win", IN, NULL, 14, 12294, "root" },
	{ 0, "toor", A("toor", 0, "users"), "win", IN, NULL, 14, 12294, "root" },
	{ 0, "daemon", A("daemon", 1, "daemon"), "win", OUT, NULL, 14, 12294, "min-uid" },
	{ 0, "www-data", A("www-data", 33, "www-data"), "win", IN, NULL, 14, 12294, "min-uid" },
	{ 0, "edge", A("edge", 999, "users"), "win", IN, NULL, 14, 12294, "min-uid" },
	{ 0, "edge2", A("edge2", 1000, "users"), "win", IN, NULL, 0, 0, "all" },
	{ 0, "ghost", NOACCT, "win", IN, NULL, 12, 8201, "account" },
	{ 0, "ghost", NOACCT, "win", OUT, NULL, 12, 8201, "account" },
	{ 0, "bad:name", NOACCT, "win", IN, NULL, 6, 0, "user-name" },
	{ 0, "", NOACCT, "win", IN, NULL, 6, 0, "user-name" },
	{ 0, "carol", A("carol", 1002, "users"), "win", OUT, NULL, 14, 12289, "sync-users" },
	{ 0, "carol", A("carol", 1002, "users"), "win", IN, NULL, 14, 12289, "sync-users" },
	{ 0, "CAROL", A("CAROL", 1002, "users"), "win", IN, NULL, 14, 12289, "sync-users" },
	{ 0, "dave", A("dave", 1003, "users"), "win", OUT, NULL, 14, 12289, "sync-users" },
	{ 0, "frank", A("frank", 1004, "users,admins"), "win", OUT, NULL, 14, 12289, "deny-groups" },
	{ 0, "frank", A("frank", 1004, "admins"), "win", IN, NULL, 14, 12289, "deny-groups" },
	{ 0, "gina", LOCKED("gina"), "win", OUT, NULL, 13, 12294, "account-state" },
	{ 0, "gina", LOCKED("gina"), "win", IN, NULL, 13, 12294, "account-state" },
	{ 0, "hank", DISABLED("hank"), "win", IN, NULL, 13, 12294, "account-state" },
	{ 0, "ivy", EXPIRED("ivy"), "win", OUT, NULL, 13, 12294, "account-state" },
	/* directions */
	{ 0, "alice", A("alice", 1001, "users"), "out", OUT, NULL, 0, 0, "all" },
	{ 0, "alice", A("alice", 1001, "users"), "out", IN, NULL, 14, 12294, "direction" },
	{ 0, "alice", A("alice", 1001, "users"), "in", IN, NULL, 0, 0, "all" },
	{ 0, "alice", A("alice", 1001, "users"), "in", OUT, NULL, 14, 12294, "direction" },
	{ 0, "root", A("root", 0, "root"), "in", OUT, NULL, 14, 12294, "direction" },
	/* passwords: outbound to one peer, to every peer, and inbound */
	{ 0, "alice", A("alice", 1001, "users"), "win", OUT, "Str0ng-enough", 0, 0, "all" },
	{ 0, "alice", A("alice", 1001, "users"), "win", OUT, "Sh0rt!x", 24, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), "win", OUT, "alllowercase1", 9, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), "win", OUT, "xxALICE-2024yy", 9, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), "win", OUT, "\xc3\x84pfel-baum1", 0, 0, "all" },
	{ 0, "alice", A("alice", 1001, "users"), "win", OUT, "\xc3\x84\xc3\x96\xc3\x9c\xc3\xa4\xc3\xb6\xc3\xbc\xc3\x9f\xc3\x84\xc3\x96\xc3\x9c", 9, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), "out", OUT, "only lowercase", 0, 0, "all" },
	{ 0, "alice", A("alice", 1001, "users"), "out", OUT, "short", 24, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), "out", OUT, "much-too-long-for-out-peer", 9, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), NULL, OUT, "Str0ng-enough", 0, 0, "all" },
	{ 0, "alice", A("alice", 1001, "users"), NULL, OUT, "lowercase-long", 9, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), NULL, OUT, "Str0ng-but-far-too-long", 9, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), "win", IN, "lowercase", 0, 0, "all" },
	{ 0, "alice", A("alice", 1001, "users"), "win", IN, "short", 24, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), "win", IN, "\xff\xfe-invalid", 9, 0, "password" },
	{ 0, "alice", A("alice", 1001, "users"), "win", IN, "", 9, 0, "password" },
	/* allow lists, allow groups, locked allowed */
	{ 1, "alice", A("alice", 600, "sync"), "p", OUT, NULL, 0, 0, "all" },
	{ 1, "bob", A("bob", 601, "sync"), "p", IN, NULL, 0, 0, "all" },
	{ 1, "carl", A("carl", 602, "sync"), "p", OUT, NULL, 14, 12290, "sync-users" },
	{ 1, "alice", A("alice", 600, "users"), "p", IN, NULL, 14, 12290, "allow-groups" },
	{ 1, "alice", A("alice", 499, "sync"), "p", IN, NULL, 14, 12294, "min-uid" },
	{ 1, "alice", { "alice", 600, "sync", true, false, false }, "p", IN, NULL, 0, 0, "all" },
	{ 1, "alice", A("alice", 600, "sync"), "p", IN, "x", 0, 0, "all" },
	/* -ALL with an exception, case kept */
	{ 2, "erin", A("erin", 1005, "users"), "p", OUT, NULL, 0, 0, "all" },
	{ 2, "Erin", A("Erin", 1006, "users"), "p", OUT, NULL, 14, 12289, "sync-users" },
	{ 2, "zed", A("zed", 1007, "users"), "p", IN, NULL, 14, 12289, "sync-users" },
};

static struct psync_config *loaded[3];
static struct policy *policies[3];

static int
setup(void **state)
{
	struct psync_err err;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		loaded[i] = config_load_string(configs[i], "policy-test.conf",
		    NULL, NULL);
		if (loaded[i] == NULL)
			return -1;
		policies[i] = policy_new(loaded[i], &err);
		if (policies[i] == NULL)
			return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++) {
		policy_free(policies[i]);
		config_free(loaded[i]);
	}
	return 0;
}

static void
make_account(const struct acct_spec *s, struct account *a)
{
	char groups[256], *g, *save = NULL;

	memset(a, 0, sizeof(*a));
	snprintf(a->name, sizeof(a->name), "%s", s->name);
	a->uid = s->uid;
	a->gid = s->uid;
	a->locked = s->locked;
	a->disabled = s->disabled;
	a->expired = s->expired;
	a->has_shadow = true;
	snprintf(groups, sizeof(groups), "%s", s->groups);
	a->groups = calloc(8, sizeof(char *));
	assert_non_null(a->groups);
	for (g = strtok_r(groups, ",", &save); g != NULL && a->n_groups < 8;
	    g = strtok_r(NULL, ",", &save))
		a->groups[a->n_groups++] = strdup(g);
}

static void
test_policy_table(void **state)
{
	size_t i, failures = 0;

	(void)state;
	assert_true(sizeof(cases) / sizeof(cases[0]) >= 40);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct policy_request req;
		struct policy_verdict v;
		struct account a;
		const struct psync_config *c = loaded[cases[i].conf];

		memset(&req, 0, sizeof(req));
		req.user = cases[i].user;
		if (cases[i].acct.name != NULL) {
			make_account(&cases[i].acct, &a);
			req.account = &a;
		}
		req.peer = cases[i].peer != NULL ?
		    config_find_peer(c, cases[i].peer) : NULL;
		req.direction = (enum policy_direction)cases[i].dir;
		req.password = cases[i].password;
		policy_check(policies[cases[i].conf], &req, &v, NULL, NULL);
		if (v.code != cases[i].code || v.msgno != cases[i].msgno ||
		    strcmp(v.rule, cases[i].rule) != 0) {
			print_error("case %zu (%s %s %s): expected code %d log %d "
			    "rule %s, got code %d log %d rule %s: %s\n", i,
			    cases[i].user, cases[i].dir == OUT ? "to" : "from",
			    cases[i].peer != NULL ? cases[i].peer : "all",
			    cases[i].code, cases[i].msgno, cases[i].rule, v.code,
			    v.msgno, v.rule, v.reason);
			failures++;
		}
		if (cases[i].password != NULL && cases[i].password[0] != '\0')
			assert_null(strstr(v.reason, cases[i].password));
		if (req.account != NULL)
			account_clear(&a);
	}
	assert_int_equal(failures, 0);
}

static void
test_password_refusal_names_the_rule_and_peer(void **state)
{
	struct policy_request req;
	struct policy_verdict v;
	struct account a;
	struct acct_spec s = A("alice", 1001, "users");

	(void)state;
	make_account(&s, &a);
	memset(&req, 0, sizeof(req));
	req.user = "alice";
	req.account = &a;
	req.direction = POLICY_OUTBOUND;
	req.password = "alllowercase1";
	policy_check(policies[0], &req, &v, NULL, NULL);
	assert_string_equal(v.reason, "peer win needs at least 3 of these: "
	    "upper case, lower case, digits, symbols (this password has 2)");
	req.password = "Sh0rt!xyz";
	policy_check(policies[0], &req, &v, NULL, NULL);
	assert_string_equal(v.reason, "peer win needs passwords of at least 10 "
	    "characters");
	req.password = "Sh0rt!x";
	policy_check(policies[0], &req, &v, NULL, NULL);
	assert_string_equal(v.reason, "the password policy needs passwords of "
	    "at least 8 characters");
	account_clear(&a);
}

static void
test_rules_combine_to_the_strictest(void **state)
{
	struct pw_rules r;
	const char *who = NULL;

	(void)state;
	policy_rules_for(policies[0], NULL, &r, &who);
	assert_int_equal(r.min_length, 10);
	assert_int_equal(r.max_length, 20);
	assert_int_equal(r.min_classes, 3);
	assert_true(r.reject_username);
	policy_rules_for(policies[0], config_find_peer(loaded[0], "in"), &r, &who);
	assert_int_equal(r.min_length, 8);	/* the global rule alone */
	assert_int_equal(r.min_classes, 0);
	assert_null(who);
}

static void
test_sync_users_syntax(void **state)
{
	struct psync_err err;

	(void)state;
	assert_int_equal(policy_sync_users_match("+ALL", "x", true, &err), 0);
	assert_int_equal(policy_sync_users_match("+ALL,-root", "root", true, &err), 12289);
	assert_int_equal(policy_sync_users_match("-ALL", "x", true, &err), 12289);
	assert_int_equal(policy_sync_users_match("+alice,+bob", "bob", true, &err), 0);
	assert_int_equal(policy_sync_users_match("+alice,+bob", "eve", true, &err), 12290);
	assert_int_equal(policy_sync_users_match("ALL,-carol", "carol", true, &err), 12289);
	assert_int_equal(policy_sync_users_match("ALL,-carol", "dan", true, &err), 0);
	assert_int_equal(policy_sync_users_match("+x,-x", "x", true, &err), 12289);
	assert_int_equal(policy_sync_users_match("-root", "alice", true, &err), 0);
	assert_int_equal(policy_sync_users_match(" +ALL , -root ", "root", true, &err), 12289);
	assert_int_equal(policy_sync_users_match("+Alice", "alice", false, &err), 12290);
	assert_int_equal(policy_sync_users_match("+ALL,", "x", true, &err), -1);
	assert_string_equal(err.msg, "sync-users '+ALL,': expected an entry after "
	    "the last comma");
	assert_int_equal(policy_sync_users_match("+a:b", "x", true, &err), -1);
	assert_int_equal(policy_sync_users_match("", "x", true, &err), -1);
	assert_int_equal(policy_sync_users_match(" ", "x", true, &err), -1);
}

struct trace_log {
	int	n;
	char	lines[16][400];
};

static void
record(void *ctx, const char *rule, enum rule_outcome o, const char *detail)
{
	struct trace_log *t = ctx;

	if (t->n < 16)
		snprintf(t->lines[t->n], sizeof(t->lines[0]), "%s %d %s", rule,
		    (int)o, detail);
	t->n++;
}

static void
test_trace_reports_every_rule_in_order(void **state)
{
	struct policy_request req;
	struct policy_verdict v;
	struct account a;
	struct acct_spec s = A("alice", 1001, "users");
	struct trace_log t = { 0 };

	(void)state;
	make_account(&s, &a);
	memset(&req, 0, sizeof(req));
	req.user = "alice";
	req.account = &a;
	req.peer = config_find_peer(loaded[0], "win");
	req.direction = POLICY_INBOUND;
	policy_check(policies[0], &req, &v, record, &t);
	assert_int_equal(v.code, 0);
	assert_int_equal(t.n, 10);
	assert_string_equal(t.lines[0], "user-name 0 'alice' is a valid name");
	assert_string_equal(t.lines[1], "direction 0 this node may receive from peer win");
	assert_string_equal(t.lines[7], "allow-groups 2 no allow-groups configured");
	assert_string_equal(t.lines[9], "password 2 no password given");
	assert_string_equal(v.reason, "changes of alice would sync from win");
	account_clear(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_table),
		cmocka_unit_test(test_password_refusal_names_the_rule_and_peer),
		cmocka_unit_test(test_rules_combine_to_the_strictest),
		cmocka_unit_test(test_sync_users_syntax),
		cmocka_unit_test(test_trace_reports_every_rule_in_order),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
