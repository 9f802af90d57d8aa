/*
 * pam_psync through the real libpam: a service file in a temporary
 * directory (pam_start_confdir) stacks the check role, pam_permit in place
 * of pam_unix, and the forwarding role; the conversation answers the
 * password prompts. Accounts, spool and host key live in the same
 * temporary directory, so nothing here reads or writes /etc.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <security/pam_appl.h>

#include "frame.h"
#include "seal.h"
#include "spool.h"

static char dir[64];
static char spooldir[128];

/* What the "user" types, in order, and what PAM showed them. */
struct script {
	const char	*answers[8];
	int		 next;
	char		 shown[2048];
};

static int
converse(int n, const struct pam_message **msg, struct pam_response **resp,
    void *data)
{
	struct script *s = data;
	struct pam_response *r;
	int i;

	r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (i = 0; i < n; i++) {
		size_t used = strlen(s->shown);

		snprintf(s->shown + used, sizeof(s->shown) - used, "%s\n",
		    msg[i]->msg);
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
		    msg[i]->msg_style == PAM_PROMPT_ECHO_ON) {
			if (s->answers[s->next] == NULL) {
				free(r);
				return PAM_CONV_ERR;
			}
			r[i].resp = strdup(s->answers[s->next++]);
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static void
put(const char *name, const char *text, mode_t mode)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* The service file: check role options, forward role options; a strict
   forwarding role is stacked "required" so that its failure counts. */
static void
service(const char *check_opts, const char *forward_opts)
{
	const char *control = strstr(forward_opts, "strict") != NULL ?
	    "required" : "optional";
	const char *top = getenv("top_builddir");
	char text[4096], module[512];

	snprintf(module, sizeof(module), "%s/pam_psync/.libs/pam_psync.so",
	    top != NULL ? top : "../..");
	snprintf(text, sizeof(text),
	    "password requisite %s check config=%s/psync.conf %s\n"
	    "password required pam_permit.so\n"
	    "password %s %s config=%s/psync.conf %s\n",
	    module, dir, check_opts, control, module, dir, forward_opts);
	put("psync-test", text, 0644);
}

static int
setup(void **state)
{
	char conf[2048];

	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/psync-pam-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(spooldir, sizeof(spooldir), "%s/spool", dir);
	put("passwd", "root:x:0:0::/root:/bin/sh\n"
	    "alice:x:1001:1001::/home/alice:/bin/sh\n"
	    "bob:x:1002:1002::/home/bob:/bin/sh\n"
	    "svc:x:999:999::/:/bin/sh\n", 0644);
	put("shadow", "root:$y$j9T$a$b:19000::::::\n"
	    "alice:$y$j9T$a$b:19000::::::\n"
	    "bob:$y$j9T$a$b:19000::::::\n"
	    "svc:$y$j9T$a$b:19000::::::\n", 0600);
	put("group", "root:x:0:\nalice:x:1001:\nbob:x:1002:\nsudo:x:27:bob\n", 0644);
	snprintf(conf, sizeof(conf),
	    "node-name = \"unix1\"\n"
	    "store {\n shadow-file = \"%s/shadow\"\n passwd-file = \"%s/passwd\"\n"
	    " group-file = \"%s/group\"\n}\n"
	    "policy {\n deny-groups = { \"sudo\" }\n}\n"
	    "peer \"win\" {\n protocol = mepp\n address = \"192.0.2.10\"\n"
	    " key = \"Abcdef123456789!\"\n direction = send\n min-length = 10\n"
	    " min-classes = 3\n}\n"
	    "queue {\n spool-directory = \"%s\"\n host-key-file = \"%s/host.key\"\n}\n",
	    dir, dir, dir, spooldir, dir);
	put("psync.conf", conf, 0600);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static int
change(const char *user, struct script *s, const char *env)
{
	struct pam_conv conv = { converse, s };
	pam_handle_t *pamh = NULL;
	int rc;

	assert_int_equal(pam_start_confdir("psync-test", user, &conv, dir,
	    &pamh), PAM_SUCCESS);
	if (env != NULL)
		assert_int_equal(pam_putenv(pamh, env), PAM_SUCCESS);
	rc = pam_chauthtok(pamh, 0);
	pam_end(pamh, rc);
	return rc;
}

static size_t
spool_count(void)
{
	struct psync_err err;
	char **names;
	size_t n;

	if (spool_list(spooldir, &names, &n, &err) == -1)
		return 0;
	spool_list_free(names, n);
	return n;
}

static void
clear_spool(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", spooldir);
	assert_int_equal(system(cmd), 0);
}

static void
test_check_refuses_a_password_a_peer_would_refuse(void **state)
{
	struct script s = { { "weakpassword1", "weakpassword1", NULL }, 0, "" };

	(void)state;
	clear_spool();
	service("retry=1", "");
	assert_int_equal(change("alice", &s, NULL), PAM_AUTHTOK_ERR);
	assert_non_null(strstr(s.shown, "BAD PASSWORD: peer win needs at least 3 "
	    "of these: upper case, lower case, digits, symbols"));
	assert_null(strstr(s.shown, "weakpassword1"));
	assert_int_equal(spool_count(), 0);
}

static void
test_retry_then_accept_leaves_exactly_one_sealed_entry(void **state)
{
	struct script s = { { "short", "short", "Str0ng-Enough!", "Str0ng-Enough!",
	    NULL }, 0, "" };
	unsigned char key[SEAL_KEY_LEN];
	struct psync_err err;
	struct frame f;
	char **names;
	size_t n;

	(void)state;
	clear_spool();
	service("", "");
	assert_int_equal(change("alice", &s, NULL), PAM_SUCCESS);
	assert_non_null(strstr(s.shown, "needs passwords of at least 10"));
	assert_int_equal(spool_list(spooldir, &names, &n, &err), 0);
	assert_int_equal(n, 1);
	{
		char hk[128];

		snprintf(hk, sizeof(hk), "%s/host.key", dir);
		assert_int_equal(seal_key_load(hk, 0, key, &err), 0);
	}
	assert_int_equal(spool_read(spooldir, names[0], key, &f, &err), 0);
	assert_string_equal(f.u.change.user, "alice");
	assert_string_equal(f.u.change.origin, "unix1");
	assert_string_equal((char *)f.u.change.secret, "Str0ng-Enough!");
	frame_wipe(&f);
	spool_list_free(names, n);
}

static void
test_excluded_users_leave_no_entry(void **state)
{
	const char *users[] = { "root", "svc", "bob", "nosuchuser" };
	size_t i;

	(void)state;
	service("", "");
	for (i = 0; i < sizeof(users) / sizeof(users[0]); i++) {
		struct script s = { { "x", "x", NULL }, 0, "" };

		clear_spool();
		/* Not judged by the check role either: "x" passes through. */
		assert_int_equal(change(users[i], &s, NULL), PAM_SUCCESS);
		assert_int_equal(spool_count(), 0);
	}
}

static void
test_change_applied_by_psyncd_is_not_forwarded(void **state)
{
	struct script s = { { "Str0ng-Enough!", "Str0ng-Enough!", NULL }, 0, "" };

	(void)state;
	clear_spool();
	service("", "");
	assert_int_equal(change("alice", &s, "PSYNC_APPLYING=1"), PAM_SUCCESS);
	assert_int_equal(spool_count(), 0);
}

static void
test_strict_fails_when_the_change_cannot_be_kept(void **state)
{
	struct script s1 = { { "Str0ng-Enough!", "Str0ng-Enough!", NULL }, 0, "" };
	struct script s2 = { { "Str0ng-Enough!", "Str0ng-Enough!", NULL }, 0, "" };
	char path[256];

	(void)state;
	clear_spool();
	/* A file where the spool directory should be: nothing can be written. */
	snprintf(path, sizeof(path), "%s", spooldir);
	put("spool", "not a directory\n", 0600);
	service("", "strict");
	assert_int_equal(change("alice", &s1, NULL), PAM_AUTHTOK_ERR);
	service("", "");
	assert_int_equal(change("alice", &s2, NULL), PAM_SUCCESS);
	assert_int_equal(unlink(path), 0);
}

static void
test_use_authtok_without_a_token_fails_without_prompting(void **state)
{
	struct script s = { { NULL }, 0, "" };

	(void)state;
	clear_spool();
	service("use_authtok", "");
	assert_int_equal(change("alice", &s, NULL), PAM_AUTHTOK_ERR);
	assert_int_equal(s.next, 0);
}

/* pam_unix after the check role takes the token with use_authtok: stand-in. */
static void
service_use_authtok(const char *check_opts)
{
	const char *top = getenv("top_builddir");
	char text[4096];

	snprintf(text, sizeof(text),
	    "password requisite %s/pam_psync/.libs/pam_psync.so check %s\n"
	    "password required %s/tests/.libs/authtok_probe.so\n",
	    top != NULL ? top : "../..", check_opts, top != NULL ? top : "../..");
	put("psync-test", text, 0644);
}

static void
test_check_role_still_hands_on_the_token_when_it_steps_aside(void **state)
{
	struct script s1 = { { "x", "x", NULL }, 0, "" };
	struct script s2 = { { "Str0ng-Enough!", "Str0ng-Enough!", NULL }, 0, "" };
	struct script s3 = { { "Str0ng-Enough!", "Str0ng-Enough!", NULL }, 0, "" };
	char conf[128];

	(void)state;
	/* Excluded user: not judged, but the token is there for pam_unix. */
	snprintf(conf, sizeof(conf), "config=%s/psync.conf", dir);
	service_use_authtok(conf);
	assert_int_equal(change("root", &s1, NULL), PAM_SUCCESS);
	/* psyncd's own pam store applying a change. */
	assert_int_equal(change("alice", &s2, "PSYNC_APPLYING=1"), PAM_SUCCESS);
	/* A configuration that cannot be read must not block the change. */
	service_use_authtok("config=/nonexistent/psync.conf");
	assert_int_equal(change("alice", &s3, NULL), PAM_SUCCESS);
}

static void
test_unknown_options_are_not_fatal(void **state)
{
	struct script s = { { "Str0ng-Enough!", "Str0ng-Enough!", NULL }, 0, "" };

	(void)state;
	clear_spool();
	service("frobnicate debug try_first_pass", "bogus=1 debug");
	assert_int_equal(change("alice", &s, NULL), PAM_SUCCESS);
	assert_int_equal(spool_count(), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check_refuses_a_password_a_peer_would_refuse),
		cmocka_unit_test(test_retry_then_accept_leaves_exactly_one_sealed_entry),
		cmocka_unit_test(test_excluded_users_leave_no_entry),
		cmocka_unit_test(test_change_applied_by_psyncd_is_not_forwarded),
		cmocka_unit_test(test_strict_fails_when_the_change_cannot_be_kept),
		cmocka_unit_test(test_use_authtok_without_a_token_fails_without_prompting),
		cmocka_unit_test(test_check_role_still_hands_on_the_token_when_it_steps_aside),
		cmocka_unit_test(test_unknown_options_are_not_fatal),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
