/*
 * Result codes and log message numbers. Both protocols carry the MEPP result
 * codes (../shared/mepp/SPEC.md), and psync logs the message numbers that
 * administrators of the legacy tools still search for.
 */
#ifndef PSYNC_CODES_H
#define PSYNC_CODES_H

enum psync_code {
	PSYNC_OK			= 0,
	PSYNC_E_FILE_NOT_FOUND		= 1,
	PSYNC_E_LOCK			= 2,
	PSYNC_E_OPEN			= 3,
	PSYNC_E_NOT_UPDATED		= 4,
	PSYNC_E_PROTOCOL		= 5,
	PSYNC_E_BAD_USER		= 6,
	PSYNC_E_DECRYPT			= 7,
	PSYNC_E_VERSION			= 8,
	PSYNC_E_BAD_PASSWORD		= 9,
	PSYNC_E_NIS			= 10,
	PSYNC_E_WRITE			= 11,
	PSYNC_E_NO_USER			= 12,
	PSYNC_E_DISABLED		= 13,
	PSYNC_E_REFUSED			= 14,
	PSYNC_E_EXPIRED			= 15,
	PSYNC_E_CANT_CHANGE		= 16,
	PSYNC_E_HISTORY			= 17,
	PSYNC_E_TOO_SHORT		= 18,
	PSYNC_E_TOO_RECENT		= 19,
	PSYNC_E_BAD_PASSWD_FILE		= 20,
	PSYNC_E_BAD_SHADOW		= 21,
	PSYNC_E_LASTCHG			= 22,
	PSYNC_E_VERSION_MISMATCH	= 23,
	PSYNC_E_BELOW_MINIMUM		= 24,
	PSYNC_E_UPDATE_FAILED		= 25,
	PSYNC_CODE_MAX			= 25,
};

/* Message numbers of the legacy tools, logged where the meaning is the same. */
enum psync_msgno {
	PSYNC_MSG_RECV		= 8199,
	PSYNC_MSG_NO_USER	= 8201,
	PSYNC_MSG_KEY_MISMATCH	= 8203,
	PSYNC_MSG_DENY_LIST	= 12289,
	PSYNC_MSG_NOT_ALLOWED	= 12290,
	PSYNC_MSG_DENIED	= 12294,
};

/* Every log number above, for checks that each has its explanation. */
extern const int psync_msg_numbers[];
#define PSYNC_MSG_COUNT		6

/* A short reason for a code ("no user entry"); never NULL. */
const char	*code_reason(int code);
/* The symbolic name of a code ("no-user"), for logs and --json; never NULL. */
const char	*code_name(int code);

#endif
