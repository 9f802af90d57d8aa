/* The table behind the result codes: one row a code, in code order. */
#include "config.h"

#include <stddef.h>

#include "codes.h"

struct code_row {
	const char	*name;
	const char	*reason;
};

static const struct code_row code_table[PSYNC_CODE_MAX + 1] = {
	[PSYNC_OK]			= { "ok",		"success" },
	[PSYNC_E_FILE_NOT_FOUND]	= { "file-not-found",	"file not found" },
	[PSYNC_E_LOCK]			= { "lock",		"lock violation" },
	[PSYNC_E_OPEN]			= { "open",		"cannot open file" },
	[PSYNC_E_NOT_UPDATED]		= { "not-updated",	"password not updated" },
	[PSYNC_E_PROTOCOL]		= { "protocol",		"protocol error" },
	[PSYNC_E_BAD_USER]		= { "bad-user",		"bad user name" },
	[PSYNC_E_DECRYPT]		= { "decrypt",		"error decrypting data" },
	[PSYNC_E_VERSION]		= { "version",		"version not supported" },
	[PSYNC_E_BAD_PASSWORD]		= { "bad-password",	"bad password" },
	[PSYNC_E_NIS]			= { "nis",		"cannot make NIS maps" },
	[PSYNC_E_WRITE]			= { "write",		"write fault" },
	[PSYNC_E_NO_USER]		= { "no-user",		"no user entry" },
	[PSYNC_E_DISABLED]		= { "disabled",		"user login disabled" },
	[PSYNC_E_REFUSED]		= { "refused",		"user refused by policy" },
	[PSYNC_E_EXPIRED]		= { "expired",		"password expired" },
	[PSYNC_E_CANT_CHANGE]		= { "cant-change",	"password can't change" },
	[PSYNC_E_HISTORY]		= { "history",		"history conflict" },
	[PSYNC_E_TOO_SHORT]		= { "too-short",	"password too short" },
	[PSYNC_E_TOO_RECENT]		= { "too-recent",	"too recent change of password" },
	[PSYNC_E_BAD_PASSWD_FILE]	= { "bad-passwd-file",	"bad password file" },
	[PSYNC_E_BAD_SHADOW]		= { "bad-shadow-file",	"bad shadow file" },
	[PSYNC_E_LASTCHG]		= { "lastchg",		"error computing the last-change field" },
	[PSYNC_E_VERSION_MISMATCH]	= { "version-mismatch",	"version number mismatch" },
	[PSYNC_E_BELOW_MINIMUM]		= { "below-minimum",	"password shorter than the minimum" },
	[PSYNC_E_UPDATE_FAILED]		= { "update-failed",	"failed to update password" },
};

const int psync_msg_numbers[PSYNC_MSG_COUNT] = {
	PSYNC_MSG_RECV, PSYNC_MSG_NO_USER, PSYNC_MSG_KEY_MISMATCH,
	PSYNC_MSG_DENY_LIST, PSYNC_MSG_NOT_ALLOWED, PSYNC_MSG_DENIED,
};

const char *
code_reason(int code)
{
	if (code < 0 || code > PSYNC_CODE_MAX)
		return "unknown result code";
	return code_table[code].reason;
}

const char *
code_name(int code)
{
	if (code < 0 || code > PSYNC_CODE_MAX)
		return "unknown";
	return code_table[code].name;
}
