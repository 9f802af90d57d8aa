/*
 * psyncd's inbound batch (psyncd/inbound.c) on its own: a real queue, a
 * real files store and policy in a temporary directory, and the monitor's
 * answers to the child recorded instead of sent. Proves the batch rules:
 * the newer of two changes for a user in one batch wins and the older is
 * superseded only if the newer took; an id applied before is answered
 * "already applied"; a change older than the newest applied is
 * superseded; a change made here comes back "already applied"; the
 * policy refuses an excluded account with its log number; a MEPP check
 * is judged and never applied; with case-ignore-name, "ALICE" and "alice"
 * are one user for newer and older, in one batch and across batches.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "codes.h"
#include "psyncd.h"
#include "store.h"

/* ---- what inbound.c calls in the rest of the parent ---------------- */

#define ANSWERS_MAX	64
static struct {
	uint32_t	reqid;
	int		code;
	char		reason[256];
} answers[ANSWERS_MAX];
static size_t n_answers;

void
monitor_answer(struct psyncd *d, uint32_t reqid, int code, const char *fmt,
    ...)
{
	va_list ap;

	(void)d;
	assert_true(n_answers < ANSWERS_MAX);
	answers[n_answers].reqid = reqid;
	answers[n_answers].code = code;
	va_start(ap, fmt);
	vsnprintf(answers[n_answers].reason,
	    sizeof(answers[n_answers].reason), fmt, ap);
	va_end(ap);
	n_answers++;
}

const struct peer_conf *
monitor_inbound_peer(struct psyncd *d, const struct pmsg_inbound *in)
{
	const struct peer_conf *pc = config_find_peer(d->conf, in->peer);

	return pc != NULL && pc->protocol == in->protocol &&
	    (pc->direction & DIR_RECEIVE) ? pc : NULL;
}

size_t
intake_targets(struct psyncd *d, const struct change *c, const char *source,
    const char **out, size_t cap)
{
	(void)d;
	(void)c;
	(void)source;
	(void)out;
	(void)cap;
	return 0;
}

void
id_hex(const uint8_t id[FRAME_ID_LEN], char out[QUEUE_ID_HEX_LEN + 1])
{
	queue_id_hex(id, out);
}

/* ---- the fixture ---------------------------------------------------- */

struct fx {
	char		dir[64];
	struct psyncd	d;
};

static void
put_file(const char *dir, const char *name, const char *text, int mode)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, (mode_t)mode), 0);
}

static void
print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "# %s\n", message);
}

static int
setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct psync_err err;
	char conf[2048], qdir[128];

	if (fx == NULL)
		return -1;
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_inbound-XXXXXX");
	if (mkdtemp(fx->dir) == NULL)
		return -1;
	put_file(fx->dir, "passwd",
	    "root:x:0:0::/root:/bin/sh\n"
	    "sysacct:x:500:500::/:/bin/sh\n"
	    "alice:x:1001:100::/:/bin/sh\n"
	    "bob:x:1002:100::/:/bin/sh\n", 0644);
	put_file(fx->dir, "shadow",
	    "root:$6$x$h:19000:0:99999:7:::\n"
	    "sysacct:$6$x$h:19000:0:99999:7:::\n"
	    "alice:$6$x$h:19000:0:99999:7:::\n"
	    "bob:$6$x$h:19000:0:99999:7:::\n", 0640);
	put_file(fx->dir, "group", "root:x:0:\nusers:x:100:\n", 0644);
	put_file(fx->dir, "login.defs", "ENCRYPT_METHOD SHA512\n", 0644);
	snprintf(conf, sizeof(conf),
	    "node-name = \"A\"\n"
	    "store {\n type = files\n shadow-file = \"%s/shadow\"\n"
	    " passwd-file = \"%s/passwd\"\n group-file = \"%s/group\"\n"
	    " hash-method = sha512\n hash-cost = 1000\n"
	    " login-defs = \"%s/login.defs\"\n fingerprints = false\n}\n"
	    "policy {\n sync-users = \"+ALL\"\n min-uid = 1000\n"
	    " min-classes = 3\n"
	    " case-ignore-name = true\n}\n"
	    "peer \"B\" {\n protocol = psync\n address = \"127.0.0.1\"\n"
	    " key-file = \"%s/b.key\"\n}\n"
	    "peer \"W\" {\n protocol = mepp\n key = \"k\"\n"
	    " trusted-addresses = { \"127.0.0.1\" }\n direction = receive\n}\n"
	    "queue {\n directory = \"%s/queue\"\n}\n", fx->dir, fx->dir,
	    fx->dir,
	    fx->dir, fx->dir, fx->dir);
	fx->d.conf = config_load_string(conf, "inbound-test.conf",
	    print_problem, NULL);
	if (fx->d.conf == NULL)
		return -1;
	fx->d.pol = policy_new(fx->d.conf, &err);
	if (fx->d.pol == NULL)
		return -1;
	memset(fx->d.host_key, 5, sizeof(fx->d.host_key));
	snprintf(qdir, sizeof(qdir), "%s/queue", fx->dir);
	if (queue_open(&fx->d.q, qdir, fx->d.host_key, NULL, &err) != 0) {
		fprintf(stderr, "# queue: %s\n", err.msg);
		return -1;
	}
	n_answers = 0;
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	queue_close(fx->d.q);
	policy_free(fx->d.pol);
	config_free(fx->d.conf);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

/* A change from B (or a MEPP request from W when mepp_type >= 0). */
static void
mk(struct pending_in *p, uint32_t reqid, const char *user, uint64_t t,
    uint8_t idbyte, const char *pw, int mepp_type)
{
	memset(p, 0, sizeof(*p));
	p->reqid = reqid;
	p->in.protocol = mepp_type >= 0 ? PROTO_MEPP : PROTO_PSYNC;
	p->in.mepp_type = (uint8_t)(mepp_type >= 0 ? mepp_type : 0);
	str_copy(p->in.peer, mepp_type >= 0 ? "W" : "B", sizeof(p->in.peer));
	memset(p->in.change.id, idbyte, FRAME_ID_LEN);
	str_copy(p->in.change.origin, mepp_type >= 0 ? "W" : "B",
	    sizeof(p->in.change.origin));
	p->in.change.time_ms = t;
	str_copy(p->in.change.user, user, sizeof(p->in.change.user));
	p->in.change.secret_kind = pw[0] == '$' ? CHANGE_SECRET_CRYPT :
	    CHANGE_SECRET_CLEARTEXT;
	p->in.change.secret_len = (uint16_t)strlen(pw);
	memcpy(p->in.change.secret, pw, strlen(pw));
}

static const char *
answer_for(uint32_t reqid, int *code)
{
	size_t i;

	for (i = 0; i < n_answers; i++) {
		if (answers[i].reqid == reqid) {
			*code = answers[i].code;
			return answers[i].reason;
		}
	}
	fail_msg("no answer for request %u", reqid);
	return NULL;
}

/* Does the shadow file hold a hash of pw for user? */
static bool
holds(struct fx *fx, const char *user, const char *pw)
{
	char path[128], line[512], *hash, *end;
	bool ok = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/shadow", fx->dir);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, user, strlen(user)) != 0 ||
		    line[strlen(user)] != ':')
			continue;
		hash = line + strlen(user) + 1;
		end = strchr(hash, ':');
		assert_non_null(end);
		*end = '\0';
		ok = store_hash_verify(pw, hash);
	}
	fclose(f);
	return ok;
}

static void
test_newer_in_a_batch_wins_and_the_older_is_superseded(void **state)
{
	struct fx *fx = *state;
	struct pending_in p[2];
	int code;

	mk(&p[0], 1, "alice", 2000, 0x11, "Newer-Pass-1", -1);
	mk(&p[1], 2, "ALICE", 1000, 0x22, "Older-Pass-1", -1);
	inbound_batch(&fx->d, p, 2);
	assert_string_equal(answer_for(1, &code), "applied");
	assert_int_equal(code, PSYNC_OK);
	assert_string_equal(answer_for(2, &code), "superseded");
	assert_int_equal(code, PSYNC_OK);
	assert_true(holds(fx, "alice", "Newer-Pass-1"));
	assert_false(holds(fx, "alice", "Older-Pass-1"));
}

static void
test_older_gets_the_newers_failure(void **state)
{
	struct fx *fx = *state;
	struct pending_in p[2];
	int code;

	/* The newer one is a hash the store refuses (not a crypt form). */
	mk(&p[0], 1, "bob", 1000, 0x31, "Older-Bob-1", -1);
	mk(&p[1], 2, "bob", 2000, 0x32, "$zz$not-a-known-method", -1);
	inbound_batch(&fx->d, p, 2);
	answer_for(2, &code);
	assert_int_not_equal(code, PSYNC_OK);
	assert_non_null(strstr(answer_for(1, &code), "a newer change for bob "
	    "failed here"));
	assert_int_not_equal(code, PSYNC_OK);
	assert_false(holds(fx, "bob", "Older-Bob-1"));
}

static void
test_applied_ids_and_older_changes_are_not_applied_again(void **state)
{
	struct fx *fx = *state;
	struct pending_in p[1];
	int code;

	mk(&p[0], 1, "alice", 5000, 0x41, "Alice-Five-1", -1);
	inbound_batch(&fx->d, p, 1);
	assert_string_equal(answer_for(1, &code), "applied");
	n_answers = 0;
	mk(&p[0], 2, "alice", 5000, 0x41, "Alice-Five-1", -1);
	inbound_batch(&fx->d, p, 1);
	assert_string_equal(answer_for(2, &code), "already applied");
	n_answers = 0;
	/* Older, spelled otherwise: the same account (case-ignore-name). */
	mk(&p[0], 3, "ALICE", 4000, 0x42, "Alice-Four-1", -1);
	inbound_batch(&fx->d, p, 1);
	assert_string_equal(answer_for(3, &code), "superseded");
	assert_true(holds(fx, "alice", "Alice-Five-1"));
	n_answers = 0;
	/* A change whose origin is this node came back around. */
	mk(&p[0], 4, "alice", 9000, 0x43, "Alice-Nine-1", -1);
	str_copy(p[0].in.change.origin, "A", sizeof(p[0].in.change.origin));
	inbound_batch(&fx->d, p, 1);
	assert_string_equal(answer_for(4, &code), "already applied (made here)");
	assert_true(holds(fx, "alice", "Alice-Five-1"));
}

static void
test_policy_refuses_excluded_accounts(void **state)
{
	struct fx *fx = *state;
	struct pending_in p[2];
	int code;

	mk(&p[0], 1, "sysacct", 1000, 0x51, "Sys-Pass-1", -1);
	mk(&p[1], 2, "root", 1000, 0x52, "Root-Pass-1", -1);
	inbound_batch(&fx->d, p, 2);
	answer_for(1, &code);
	assert_int_equal(code, PSYNC_E_REFUSED);
	answer_for(2, &code);
	assert_int_equal(code, PSYNC_E_REFUSED);
	assert_false(holds(fx, "sysacct", "Sys-Pass-1"));
	assert_false(holds(fx, "root", "Root-Pass-1"));
}

static void
test_mepp_check_is_judged_not_applied(void **state)
{
	struct fx *fx = *state;
	struct pending_in p[2];
	int code;

	/* "temppass" has one class of three: a check never judges it. */
	mk(&p[0], 1, "bob", 0, 0, "temppass", 2);
	mk(&p[1], 2, "root", 0, 0, "temppass", 2);
	inbound_batch(&fx->d, p, 2);
	assert_string_equal(answer_for(1, &code), "would be accepted");
	assert_int_equal(code, PSYNC_OK);
	answer_for(2, &code);
	assert_int_equal(code, PSYNC_E_REFUSED);
	assert_false(holds(fx, "bob", "temppass"));
}

static void
test_unknown_peer_is_refused(void **state)
{
	struct fx *fx = *state;
	struct pending_in p[1];
	int code;

	mk(&p[0], 1, "bob", 1000, 0x61, "Bob-Pass-9", -1);
	str_copy(p[0].in.peer, "nobody-we-know", sizeof(p[0].in.peer));
	inbound_batch(&fx->d, p, 1);
	answer_for(1, &code);
	assert_int_equal(code, PSYNC_E_REFUSED);
	assert_false(holds(fx, "bob", "Bob-Pass-9"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_newer_in_a_batch_wins_and_the_older_is_superseded,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_older_gets_the_newers_failure, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_applied_ids_and_older_changes_are_not_applied_again,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_policy_refuses_excluded_accounts, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_mepp_check_is_judged_not_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_unknown_peer_is_refused, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
