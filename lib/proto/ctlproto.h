/*
 * The control protocol between psyncctl and psyncd, in one place for both
 * sides. A request is a 32-bit big-endian length and words separated by
 * newlines, the command first; the answer is a 32-bit length, a status
 * byte ('0' done, '1' failed) and text for a person (or JSON). Every
 * command psyncd takes is a row of ctlproto_cmds[]: its name, how many
 * words it takes, and whether its answer waits for the network child.
 */
#ifndef PSYNC_CTLPROTO_H
#define PSYNC_CTLPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define CTLPROTO_HDR_LEN	4
#define CTLPROTO_MSG_MAX	(64 * 1024)		/* request body */
#define CTLPROTO_REPLY_MAX	(4 * 1024 * 1024)	/* answer text */
#define CTLPROTO_WORDS_MAX	8

enum ctlproto_id {
	CTL_CMD_STATUS,
	CTL_CMD_QUEUE_LIST,
	CTL_CMD_QUEUE_RETRY,
	CTL_CMD_QUEUE_DROP,
	CTL_CMD_QUEUE_PURGE,
	CTL_CMD_QUEUE_CLEAR_LOST,
	CTL_CMD_SEND,
	CTL_CMD_VERIFY,
	CTL_CMD_ROTATE_KEY,
	CTL_CMD_RELOAD,
};

struct ctlproto_cmd {
	enum ctlproto_id id;
	const char	*name;		/* the first word */
	unsigned int	 min_args;	/* words after the name */
	unsigned int	 max_args;
	bool		 waits_child;	/* answered when the child reports */
	const char	*args;		/* for messages: the arguments */
};

extern const struct ctlproto_cmd ctlproto_cmds[];

/* The row of a command name; NULL for none. */
const struct ctlproto_cmd *ctlproto_find(const char *name);

/*
 * Build a request from words (the command first): a malloc'd frame in
 * *out of *len bytes. -1 with err for an unknown command, a wrong number
 * of words, a word with a newline or NUL, or one over the size cap.
 */
int	ctlproto_request(const char *const *words, size_t n,
	    unsigned char **out, size_t *len, struct psync_err *err);

/*
 * The length a request header announces: 0 while fewer than 4 bytes are
 * there; -1 with err when it is 0 or over CTLPROTO_MSG_MAX.
 */
long	ctlproto_request_len(const unsigned char *buf, size_t have,
	    struct psync_err *err);

/*
 * Split a request body of len bytes (modified in place, and body[len]
 * must exist: it becomes the last word's NUL) into words;
 * returns the command's row, with w[0..*nw-1] set, or NULL with err.
 */
const struct ctlproto_cmd *ctlproto_parse(char *body, size_t len,
	    char *w[CTLPROTO_WORDS_MAX], size_t *nw, struct psync_err *err);

/* The answer's header for text of len bytes. */
void	ctlproto_reply_header(size_t len, bool ok,
	    unsigned char hdr[CTLPROTO_HDR_LEN + 1]);

/* The answer's length from its header: -1 if malformed. */
long	ctlproto_reply_len(const unsigned char hdr[CTLPROTO_HDR_LEN]);

#endif
