/*
 * Unit tests for the Samba AD DC side: unicodePwd and NT hash encoding,
 * the ldapi URL, the mapping of Samba's refusals, the LDIF parser of
 * psync-samba-hook and its decisions, and the "applied from a peer" notes.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codes.h"
#include "queue.h"
#include "samba_applied.h"
#include "samba_ldif.h"
#include "store_samba.h"
#include "util.h"

static void
test_unicodepwd_is_quoted_utf16le(void **state)
{
	unsigned char out[64];
	struct psync_err err;
	size_t len = 0;
	/* "Pä€" then U+1F511 (a surrogate pair). */
	static const unsigned char want[] = {
		'"', 0, 'P', 0, 0xe4, 0x00, 0xac, 0x20,
		0x3d, 0xd8, 0x11, 0xdd, '"', 0,
	};

	(void)state;
	assert_int_equal(store_samba_unicodepwd("P\xc3\xa4\xe2\x82\xac"
	    "\xf0\x9f\x94\x91", out, sizeof(out), &len, &err), 0);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void
test_unicodepwd_refuses_bad_utf8_and_small_buffers(void **state)
{
	unsigned char out[8];
	struct psync_err err;
	size_t len = 0;

	(void)state;
	assert_int_equal(store_samba_unicodepwd("\xc0\xaf", out, sizeof(out),
	    &len, &err), -1);
	assert_int_equal(err.code, PSYNC_E_BAD_PASSWORD);
	assert_int_equal(store_samba_unicodepwd("\xed\xa0\x80", out,
	    sizeof(out), &len, &err), -1);
	/* "abc" needs 2 + 6 + 2 bytes. */
	assert_int_equal(store_samba_unicodepwd("abc", out, sizeof(out), &len,
	    &err), -1);
	assert_int_equal(store_samba_unicodepwd("ab", out, sizeof(out), &len,
	    &err), 0);
	assert_int_equal(len, 8);
}

static void
test_nthash_matches_the_known_value(void **state)
{
	/* The NT hash of "password", as every AD tool shows it. */
	static const unsigned char want[16] = {
		0x88, 0x46, 0xf7, 0xea, 0xee, 0x8f, 0xb1, 0x17,
		0xad, 0x06, 0xbd, 0xd8, 0x30, 0xb7, 0x58, 0x6c,
	};
	unsigned char out[16];
	struct psync_err err;

	(void)state;
	assert_int_equal(store_samba_nthash("password", out, &err), 0);
	assert_memory_equal(out, want, sizeof(want));
}

static void
test_ldapi_url_percent_encodes_the_socket_path(void **state)
{
	char url[128];

	(void)state;
	assert_int_equal(store_samba_ldapi_url("/var/lib/samba/private", url,
	    sizeof(url)), 0);
	assert_string_equal(url, "ldapi://%2Fvar%2Flib%2Fsamba%2Fprivate"
	    "%2Fldap_priv%2Fldapi");
	assert_int_equal(store_samba_ldapi_url("/var/lib/samba/private", url,
	    20), -1);
}

static void
test_samba_refusals_map_to_their_codes(void **state)
{
	static const struct {
		const char	*diag;
		int		 code;
	} cases[] = {
		{ "0000052D: Constraint violation - check_password_restrictions: "
		  "the password is too short. It should be equal or longer "
		  "than 7 characters!", PSYNC_E_TOO_SHORT },
		{ "0000052D: Constraint violation - check_password_restrictions: "
		  "the password does not meet the complexity criteria!",
		  PSYNC_E_BAD_PASSWORD },
		{ "0000052D: Constraint violation - check_password_restrictions: "
		  "the password was already used (in history)!",
		  PSYNC_E_HISTORY },
		{ "0000052D: Constraint violation - check_password_restrictions: "
		  "password is too young to change!", PSYNC_E_TOO_RECENT },
		{ "some other constraint", PSYNC_E_BAD_PASSWORD },
	};
	char reason[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(store_samba_map_error(19, cases[i].diag,
		    reason, sizeof(reason)), cases[i].code);
		/* AD's own words reach the reason. */
		assert_non_null(strstr(reason, cases[i].diag));
	}
	assert_int_equal(store_samba_map_error(32, NULL, reason,
	    sizeof(reason)), PSYNC_E_NO_USER);
	assert_int_equal(store_samba_map_error(-1, NULL, reason,
	    sizeof(reason)), PSYNC_E_OPEN);
	assert_int_equal(store_samba_map_error(80, "odd", reason,
	    sizeof(reason)), PSYNC_E_UPDATE_FAILED);
}

static void
test_base64_decodes_strictly(void **state)
{
	unsigned char out[16];

	(void)state;
	assert_int_equal(samba_base64_decode("YWxpY2U=", 8, out, sizeof(out)),
	    5);
	assert_memory_equal(out, "alice", 5);
	assert_int_equal(samba_base64_decode("YWI=", 4, out, sizeof(out)), 2);
	assert_int_equal(samba_base64_decode("YQ==", 4, out, sizeof(out)), 1);
	assert_int_equal(samba_base64_decode("YQ=", 3, out, sizeof(out)), -1);
	assert_int_equal(samba_base64_decode("Y=Q=", 4, out, sizeof(out)), -1);
	assert_int_equal(samba_base64_decode("YQ==YWI=", 8, out, sizeof(out)),
	    -1);
	assert_int_equal(samba_base64_decode("YW*=", 4, out, sizeof(out)), -1);
	assert_int_equal(samba_base64_decode("YWxpY2U=", 8, out, 4), -1);
}

/* What syncpasswords writes, with a folded line and base64 values. */
static const char report_cleartext[] =
    "dn: CN=Alice Example,CN=Users,DC=samba,DC=psync,DC=te\n"
    " st\n"
    "objectGUID: 8b0f6f3e-0000-4000-8000-000000000001\n"
    "sAMAccountName: Alice\n"
    "userAccountControl: 512\n"
    "virtualClearTextUTF8:: TmV3LUFsaWNlLVB3OSM=\n"
    "virtualCryptSHA512;rounds=5000: {CRYPT}$6$rounds=5000$abc$de\n"
    " f\n"
    "\n";

static void
test_ldif_unfolds_and_decodes(void **state)
{
	struct samba_ldif o;
	struct psync_err err;
	const char *why;

	(void)state;
	assert_int_equal(samba_ldif_parse(report_cleartext,
	    sizeof(report_cleartext) - 1, &o, &err), 0);
	assert_string_equal(o.dn,
	    "CN=Alice Example,CN=Users,DC=samba,DC=psync,DC=test");
	assert_string_equal(o.user, "Alice");
	assert_int_equal(o.uac, 512);
	assert_string_equal(o.cleartext, "New-Alice-Pw9#");
	assert_string_equal(o.hash, "$6$rounds=5000$abc$def");
	/* Cleartext wins: each peer hashes with its own method. */
	assert_int_equal(samba_ldif_decide(&o, &why), SAMBA_SEND_CLEARTEXT);
	samba_ldif_wipe(&o);
}

static void
test_ldif_hash_only_report_sends_the_hash(void **state)
{
	static const char in[] =
	    "dn: CN=bob,CN=Users,DC=x\r\n"
	    "sAMAccountName: bob\r\n"
	    "virtualCryptSHA512: {CRYPT}$6$salt$hash\r\n";
	struct samba_ldif o;
	struct psync_err err;
	const char *why;

	(void)state;
	assert_int_equal(samba_ldif_parse(in, sizeof(in) - 1, &o, &err), 0);
	assert_int_equal(samba_ldif_decide(&o, &why), SAMBA_SEND_HASH);
	assert_string_equal(o.hash, "$6$salt$hash");
	samba_ldif_wipe(&o);
}

static void
test_ldif_disabled_deleted_and_secretless_reports_are_skipped(void **state)
{
	static const char disabled[] =
	    "dn: CN=c,DC=x\nsAMAccountName: c\nuserAccountControl: 514\n"
	    "virtualClearTextUTF8: Whatever-1\n";
	static const char deleted[] =
	    "dn: CN=d\\0ADEL:1234,CN=Deleted Objects,DC=x\nisDeleted: TRUE\n"
	    "sAMAccountName: d\n";
	static const char nosecret[] =
	    "dn: CN=e,DC=x\nsAMAccountName: e\nuserAccountControl: 512\n";
	struct samba_ldif o;
	struct psync_err err;
	const char *why;

	(void)state;
	assert_int_equal(samba_ldif_parse(disabled, sizeof(disabled) - 1, &o,
	    &err), 0);
	assert_int_equal(samba_ldif_decide(&o, &why), SAMBA_SKIP_DISABLED);
	samba_ldif_wipe(&o);
	assert_int_equal(samba_ldif_parse(deleted, sizeof(deleted) - 1, &o,
	    &err), 0);
	assert_int_equal(samba_ldif_decide(&o, &why), SAMBA_SKIP_DELETED);
	assert_int_equal(samba_ldif_parse(nosecret, sizeof(nosecret) - 1, &o,
	    &err), 0);
	assert_int_equal(samba_ldif_decide(&o, &why), SAMBA_SKIP_NO_SECRET);
}

static void
test_ldif_refuses_malformed_input(void **state)
{
	static const char *const bad[] = {
		" starts with a continuation\n",
		"no colon here\n",
		"sAMAccountName: a\nsAMAccountName: b\n",	/* twice */
		"sAMAccountName:: YQBi\n",			/* NUL inside */
		"virtualClearTextUTF8:: not base64!\n",
		"virtualClearTextUTF8:< file:///etc/shadow\n",
		"userAccountControl: 12x\n",
		"sAMAccountName:\n",
		"bad name!: x\n",
	};
	struct samba_ldif o;
	struct psync_err err;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (samba_ldif_parse(bad[i], strlen(bad[i]), &o, &err) != -1)
			fail_msg("accepted bad LDIF %zu: %s", i, bad[i]);
		assert_int_equal(err.code, PSYNC_E_PROTOCOL);
		assert_false(o.have_user);
	}
}

static void
test_ldif_stops_at_the_end_of_the_first_record(void **state)
{
	static const char in[] =
	    "# a comment\n\ndn: CN=f\nsAMAccountName: f\n\n"
	    "dn: CN=g\nsAMAccountName: g\n";
	struct samba_ldif o;
	struct psync_err err;

	(void)state;
	assert_int_equal(samba_ldif_parse(in, sizeof(in) - 1, &o, &err), 0);
	assert_string_equal(o.user, "f");
}

/* The notes, on a queue in a temporary directory. */
static void
test_applied_note_matches_once_and_only_its_password(void **state)
{
	char dir[] = "/tmp/psync-samba-test-XXXXXX", cmd[64];
	unsigned char key[SEAL_KEY_LEN];
	struct crypt_data cd;
	struct queue *q = NULL;
	struct psync_err err;
	const char *h;

	(void)state;
	memset(key, 7, sizeof(key));
	assert_non_null(mkdtemp(dir));
	if (queue_open(&q, dir, key, NULL, &err) != 0)
		fail_msg("queue_open %s: %s", dir, err.msg);
	assert_int_equal(samba_applied_note(q, key, "Alice", "Pw-One-1",
	    1000, &err), 0);
	/* Another password, or another account: no match. */
	assert_int_equal(samba_applied_match(q, key, "alice", "Pw-Two-2", 0,
	    2000, &err), 0);
	assert_int_equal(samba_applied_match(q, key, "bob", "Pw-One-1", 0,
	    2000, &err), 0);
	/* The same password, the name in another case: a match, once. */
	assert_int_equal(samba_applied_match(q, key, "ALICE", "Pw-One-1", 0,
	    2000, &err), 1);
	assert_int_equal(samba_applied_match(q, key, "alice", "Pw-One-1", 0,
	    2000, &err), 0);
	/* Hash-only reports match through crypt. */
	memset(&cd, 0, sizeof(cd));
	h = crypt_r("Pw-One-1", "$6$saltsalt$", &cd);
	assert_non_null(h);
	assert_int_equal(samba_applied_note(q, key, "alice", "Pw-One-1", 1000,
	    &err), 0);
	assert_int_equal(samba_applied_match(q, key, "alice", h, 1, 2000,
	    &err), 1);
	/* A stale note matches nothing. */
	assert_int_equal(samba_applied_note(q, key, "alice", "Pw-One-1", 1000,
	    &err), 0);
	assert_int_equal(samba_applied_match(q, key, "alice", "Pw-One-1", 0,
	    1000 + SAMBA_APPLIED_TTL_MS + 1, &err), 0);
	/* Forget drops it. */
	assert_int_equal(samba_applied_note(q, key, "alice", "Pw-One-1", 1000,
	    &err), 0);
	assert_int_equal(samba_applied_forget(q, "alice", &err), 0);
	assert_int_equal(samba_applied_match(q, key, "alice", "Pw-One-1", 0,
	    2000, &err), 0);
	queue_close(q);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unicodepwd_is_quoted_utf16le),
		cmocka_unit_test(test_unicodepwd_refuses_bad_utf8_and_small_buffers),
		cmocka_unit_test(test_nthash_matches_the_known_value),
		cmocka_unit_test(test_ldapi_url_percent_encodes_the_socket_path),
		cmocka_unit_test(test_samba_refusals_map_to_their_codes),
		cmocka_unit_test(test_base64_decodes_strictly),
		cmocka_unit_test(test_ldif_unfolds_and_decodes),
		cmocka_unit_test(test_ldif_hash_only_report_sends_the_hash),
		cmocka_unit_test(test_ldif_disabled_deleted_and_secretless_reports_are_skipped),
		cmocka_unit_test(test_ldif_refuses_malformed_input),
		cmocka_unit_test(test_ldif_stops_at_the_end_of_the_first_record),
		cmocka_unit_test(test_applied_note_matches_once_and_only_its_password),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
