/*
 * The change type's one validation (change.h).
 */
#include "config.h"

#include <string.h>

#include "change.h"
#include "codes.h"

bool
change_user_valid(const char *user)
{
	size_t len = strnlen(user, CHANGE_USER_MAX + 1), i;

	if (len == 0 || len > CHANGE_USER_MAX)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)user[i] < 0x20 || user[i] == 0x7f)
			return false;
	return utf8_length(user) >= 0;
}

bool
change_node_valid(const char *node)
{
	size_t len = strnlen(node, CHANGE_NODE_MAX + 1), i;

	if (len == 0 || len > CHANGE_NODE_MAX)
		return false;
	for (i = 0; i < len; i++)
		if ((unsigned char)node[i] <= 0x20 ||
		    (unsigned char)node[i] > 0x7e)
			return false;
	return true;
}

int
change_secret_check(int kind, const unsigned char *secret, size_t len,
    struct psync_err *err)
{
	size_t i;

	if (kind != CHANGE_SECRET_CLEARTEXT && kind != CHANGE_SECRET_CRYPT) {
		perr_set(err, PSYNC_E_BAD_PASSWORD, "unknown secret kind %d",
		    kind);
		return PSYNC_E_BAD_PASSWORD;
	}
	if (len == 0 || len > CHANGE_SECRET_MAX) {
		perr_set(err, PSYNC_E_BAD_PASSWORD, "%s of %zu bytes: must be "
		    "1 to %d", kind == CHANGE_SECRET_CRYPT ? "crypt hash" :
		    "password", len, CHANGE_SECRET_MAX);
		return PSYNC_E_BAD_PASSWORD;
	}
	if (memchr(secret, '\0', len) != NULL) {
		perr_set(err, PSYNC_E_BAD_PASSWORD, "%s contains a NUL byte",
		    kind == CHANGE_SECRET_CRYPT ? "crypt hash" : "password");
		return PSYNC_E_BAD_PASSWORD;
	}
	if (kind != CHANGE_SECRET_CRYPT)
		return PSYNC_OK;
	/* It goes into the shadow file as it is. */
	if (secret[0] != '$') {
		perr_set(err, PSYNC_E_BAD_PASSWORD, "crypt hash does not start "
		    "with '$'");
		return PSYNC_E_BAD_PASSWORD;
	}
	for (i = 0; i < len; i++) {
		if (secret[i] <= 0x20 || secret[i] > 0x7e || secret[i] == ':') {
			perr_set(err, PSYNC_E_BAD_PASSWORD, "crypt hash has a "
			    "forbidden byte at offset %zu", i);
			return PSYNC_E_BAD_PASSWORD;
		}
	}
	return PSYNC_OK;
}

int
change_check(const struct change *c, struct psync_err *err)
{
	int code;

	if (!change_node_valid(c->origin)) {
		perr_set(err, PSYNC_E_PROTOCOL, "change with an invalid origin "
		    "node name");
		return PSYNC_E_PROTOCOL;
	}
	if (!change_user_valid(c->user)) {
		perr_set(err, PSYNC_E_BAD_USER, "change with an invalid user "
		    "name (empty, over %d bytes, a control character or not "
		    "UTF-8)", CHANGE_USER_MAX);
		return PSYNC_E_BAD_USER;
	}
	code = change_secret_check(c->secret_kind, c->secret, c->secret_len,
	    err);
	if (code != PSYNC_OK) {
		char why[sizeof(err->msg)];

		str_copy(why, err->msg, sizeof(why));
		perr_set(err, code, "change for %s: %s", c->user, why);
	}
	return code;
}

void
change_wipe(struct change *c)
{
	secure_wipe(c, sizeof(*c));
}
