/*
 * The control protocol's table and codec, shared by psyncctl and psyncd
 * (ctlproto.h). psyncd parses what any local root process sends, so the
 * parser checks everything and is fuzzed (tests/fuzz/fuzz_ctlproto.c).
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "ctlproto.h"

const struct ctlproto_cmd ctlproto_cmds[] = {
	{ CTL_CMD_STATUS,	"status",	0, 1, false, "[json]" },
	{ CTL_CMD_QUEUE_LIST,	"queue-list",	0, 1, false, "[all]" },
	{ CTL_CMD_QUEUE_RETRY,	"queue-retry",	0, 1, false, "[ID]" },
	{ CTL_CMD_QUEUE_DROP,	"queue-drop",	1, 2, false, "ID [PEER]" },
	{ CTL_CMD_QUEUE_PURGE,	"queue-purge",	0, 0, false, "" },
	{ CTL_CMD_QUEUE_CLEAR_LOST, "queue-clear-lost", 0, 0, false, "" },
	{ CTL_CMD_SEND,		"send",		3, 3, false,
	    "USER PEER PASSWORD" },
	{ CTL_CMD_VERIFY,	"verify",	1, 2, true, "PEER [USER]" },
	{ CTL_CMD_ROTATE_KEY,	"rotate-key",	1, 1, true, "PEER" },
	{ CTL_CMD_RELOAD,	"reload",	0, 0, false, "" },
	{ 0, NULL, 0, 0, false, NULL },
};

const struct ctlproto_cmd *
ctlproto_find(const char *name)
{
	size_t i;

	for (i = 0; ctlproto_cmds[i].name != NULL; i++)
		if (strcmp(ctlproto_cmds[i].name, name) == 0)
			return &ctlproto_cmds[i];
	return NULL;
}

static void
put_be32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

static uint32_t
get_be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static bool
args_fit(const struct ctlproto_cmd *c, size_t nargs)
{
	return nargs >= c->min_args && nargs <= c->max_args;
}

int
ctlproto_request(const char *const *words, size_t n, unsigned char **out,
    size_t *len, struct psync_err *err)
{
	const struct ctlproto_cmd *c;
	unsigned char *buf;
	size_t body = 0, i, off, wl;

	*out = NULL;
	*len = 0;
	if (n == 0 || (c = ctlproto_find(words[0])) == NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "unknown control command '%s'",
		    n == 0 ? "" : words[0]);
		return -1;
	}
	if (!args_fit(c, n - 1)) {
		perr_set(err, PSYNC_E_PROTOCOL, "control command %s takes %s",
		    c->name, c->args[0] != '\0' ? c->args : "no arguments");
		return -1;
	}
	for (i = 0; i < n; i++) {
		wl = strlen(words[i]);
		if (memchr(words[i], '\n', wl) != NULL) {
			perr_set(err, PSYNC_E_PROTOCOL, "control command %s: an "
			    "argument holds a newline", c->name);
			return -1;
		}
		body += wl + (i + 1 < n ? 1 : 0);
	}
	if (body == 0 || body > CTLPROTO_MSG_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "control command %s: request "
		    "too long", c->name);
		return -1;
	}
	buf = malloc(CTLPROTO_HDR_LEN + body);
	if (buf == NULL) {
		perr_set(err, PSYNC_E_OPEN, "out of memory");
		return -1;
	}
	put_be32(buf, (uint32_t)body);
	for (i = 0, off = CTLPROTO_HDR_LEN; i < n; i++) {
		wl = strlen(words[i]);
		memcpy(buf + off, words[i], wl);
		off += wl;
		if (i + 1 < n)
			buf[off++] = '\n';
	}
	*out = buf;
	*len = CTLPROTO_HDR_LEN + body;
	return 0;
}

long
ctlproto_request_len(const unsigned char *buf, size_t have,
    struct psync_err *err)
{
	uint32_t want;

	if (have < CTLPROTO_HDR_LEN)
		return 0;
	want = get_be32(buf);
	if (want == 0 || want > CTLPROTO_MSG_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "control request of %u bytes "
		    "refused", want);
		return -1;
	}
	return (long)want;
}

const struct ctlproto_cmd *
ctlproto_parse(char *body, size_t len, char *w[CTLPROTO_WORDS_MAX],
    size_t *nw, struct psync_err *err)
{
	const struct ctlproto_cmd *c;
	size_t n = 0, i, start = 0;

	*nw = 0;
	if (len == 0 || memchr(body, '\0', len) != NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "malformed request");
		return NULL;
	}
	for (i = 0; i < len; i++) {
		if (body[i] != '\n')
			continue;
		if (n == CTLPROTO_WORDS_MAX - 1) {
			perr_set(err, PSYNC_E_PROTOCOL, "malformed request: "
			    "more than %d words", CTLPROTO_WORDS_MAX);
			return NULL;
		}
		body[i] = '\0';
		w[n++] = body + start;
		start = i + 1;
	}
	body[len] = '\0';
	w[n++] = body + start;
	c = ctlproto_find(w[0]);
	if (c == NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "unknown request '%.64s'", w[0]);
		return NULL;
	}
	if (!args_fit(c, n - 1)) {
		perr_set(err, PSYNC_E_PROTOCOL, "%s takes %s", c->name,
		    c->args[0] != '\0' ? c->args : "no arguments");
		return NULL;
	}
	*nw = n;
	return c;
}

void
ctlproto_reply_header(size_t len, bool ok,
    unsigned char hdr[CTLPROTO_HDR_LEN + 1])
{
	put_be32(hdr, (uint32_t)(len + 1));
	hdr[CTLPROTO_HDR_LEN] = ok ? '0' : '1';
}

long
ctlproto_reply_len(const unsigned char hdr[CTLPROTO_HDR_LEN])
{
	uint32_t len = get_be32(hdr);

	if (len == 0 || len > CTLPROTO_REPLY_MAX + 1)
		return -1;
	return (long)len;
}
