/*
 * Without OpenSSL's legacy provider MEPP cannot work: mepp_crypto_init()
 * and everything built on it must fail and say what is missing, rather
 * than crash or fall back silently. OPENSSL_MODULES points at an empty
 * directory before OpenSSL first looks for its modules.
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
#include <unistd.h>

#include "codes.h"
#include "mepp.h"
#include "mepp_net.h"

static char empty_dir[] = "/tmp/psync-noprov-XXXXXX";

static void
test_missing_legacy_provider_is_reported_by_name(void **state)
{
	uint8_t r[MEPP_NONCE_LEN] = { 0 }, out[MEPP_MAX_REQUEST];
	struct mepp_request *req = malloc(sizeof(*req));
	struct mepp_client c = { "127.0.0.1", 1, "k", 100, 100, MEPP_KDF_WORD4 };
	struct psync_err err;

	(void)state;
	assert_non_null(req);
	assert_int_equal(mepp_crypto_init(&err), -1);
	assert_non_null(strstr(err.msg, "legacy provider is missing"));
	/* Still failing on the second call, from the cached state. */
	assert_int_equal(mepp_crypto_init(&err), -1);
	assert_non_null(strstr(err.msg, "legacy provider"));
	assert_int_equal(mepp_request_build(r, r, "k", MEPP_TYPE_UPDATE, "bob",
	    "pw", out, sizeof(out), &err), 0);
	assert_non_null(strstr(err.msg, "legacy provider"));
	memset(out, 0, sizeof(out));
	out[7] = 0x44;
	assert_int_not_equal(mepp_request_parse(r, "k", out, 0x44, req),
	    PSYNC_OK);
	/* The client fails before any traffic, naming the cause. */
	assert_int_equal(mepp_client_change(&c, "bob", "pw", &err), -1);
	assert_int_equal(err.code, MEPP_STEP_CRYPTO);
	assert_non_null(strstr(err.msg, "legacy provider"));
	free(req);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_missing_legacy_provider_is_reported_by_name),
	};
	int rc;

	if (mkdtemp(empty_dir) == NULL ||
	    setenv("OPENSSL_MODULES", empty_dir, 1) == -1) {
		perror("test_mepp_noprov: set-up");
		return 1;
	}
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(empty_dir);
	return rc;
}
