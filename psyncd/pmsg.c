/*
 * The privsep message codec (pmsg.h): big-endian integers, strings as a
 * 16-bit length and bytes without NUL, and exactly one layout per type.
 * This file encodes, and holds the blocking read and write helpers; the
 * decoder, which the root parent runs on the child's bytes, is
 * pmsg_decode.c.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codes.h"
#include "config_file.h"
#include "pmsg.h"

struct wbuf {
	unsigned char	*p;
	size_t		 cap;
	size_t		 len;
	bool		 bad;
};

static void
put(struct wbuf *w, const void *src, size_t n)
{
	if (w->bad || w->cap - w->len < n) {
		w->bad = true;
		return;
	}
	memcpy(w->p + w->len, src, n);
	w->len += n;
}

static void
put_u8(struct wbuf *w, uint8_t v)
{
	put(w, &v, 1);
}

static void
put_u16(struct wbuf *w, uint16_t v)
{
	unsigned char b[2] = { (unsigned char)(v >> 8), (unsigned char)v };

	put(w, b, 2);
}

static void
put_u32(struct wbuf *w, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)(v >> 24), (unsigned char)(v >> 16),
	    (unsigned char)(v >> 8), (unsigned char)v };

	put(w, b, 4);
}

static void
put_u64(struct wbuf *w, uint64_t v)
{
	put_u32(w, (uint32_t)(v >> 32));
	put_u32(w, (uint32_t)v);
}

static void
put_str(struct wbuf *w, const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max) {
		w->bad = true;
		return;
	}
	put_u16(w, (uint16_t)n);
	put(w, s, n);
}

static void
put_bytes(struct wbuf *w, const void *p, size_t n, size_t max)
{
	if (n > max) {
		w->bad = true;
		return;
	}
	put_u16(w, (uint16_t)n);
	put(w, p, n);
}

static void
put_change(struct wbuf *w, const struct change *c)
{
	put(w, c->id, FRAME_ID_LEN);
	put_str(w, c->origin, FRAME_NAME_MAX);
	put_u64(w, c->time_ms);
	put_str(w, c->user, FRAME_USER_MAX);
	put_u8(w, c->secret_kind);
	put_bytes(w, c->secret, c->secret_len, FRAME_SECRET_MAX);
}

long
pmsg_encode(const struct pmsg *m, unsigned char *buf, size_t cap,
    struct psync_err *err)
{
	struct wbuf w = { buf, cap, PMSG_HDR_LEN, cap < PMSG_HDR_LEN };
	const struct pmsg_peer *pe;
	size_t i, body;

	switch (m->type) {
	case PMSG_INBOUND:
		put_u8(&w, m->u.inbound.protocol);
		put_u8(&w, m->u.inbound.mepp_type);
		put_str(&w, m->u.inbound.peer, FRAME_NAME_MAX);
		put_change(&w, &m->u.inbound.change);
		break;
	case PMSG_DELIVERY_RESULT:
		put(&w, m->u.dresult.id, FRAME_ID_LEN);
		put_str(&w, m->u.dresult.peer, FRAME_NAME_MAX);
		put_u32(&w, (uint32_t)m->u.dresult.code);
		put_str(&w, m->u.dresult.reason, PMSG_TEXT_MAX);
		break;
	case PMSG_VERIFY_RESULT:
		put_u8(&w, m->u.vresult.step);
		put_u32(&w, (uint32_t)m->u.vresult.code);
		put_str(&w, m->u.vresult.message, PMSG_TEXT_MAX);
		break;
	case PMSG_PEER:
		pe = &m->u.peer;
		put_str(&w, pe->name, FRAME_NAME_MAX);
		put_u8(&w, pe->protocol);
		put_u8(&w, pe->direction);
		put_u16(&w, pe->port);
		put_u32(&w, pe->connect_timeout);
		put_str(&w, pe->host, PMSG_HOST_MAX);
		put_bytes(&w, pe->key, pe->key_len, PMSG_KEYTEXT_MAX);
		if (pe->n_trusted > PMSG_TRUSTED_MAX)
			w.bad = true;
		put_u8(&w, pe->n_trusted);
		for (i = 0; i < pe->n_trusted && i < PMSG_TRUSTED_MAX; i++)
			put_str(&w, pe->trusted[i], PMSG_ADDR_MAX);
		put_u32(&w, pe->key_id);
		put_u8(&w, pe->mepp_kdf);
		put_u8(&w, pe->has_next);
		if (pe->has_next) {
			put_u8(&w, pe->use_next);
			put_u32(&w, pe->next_id);
			put(&w, pe->next, FRAME_KEY_LEN);
		}
		break;
	case PMSG_PEERS_END:
		put_str(&w, m->u.peers_end.node, FRAME_NAME_MAX);
		put_u32(&w, m->u.peers_end.n_peers);
		break;
	case PMSG_INBOUND_RESULT:
		put_u16(&w, m->u.iresult.code);
		put_str(&w, m->u.iresult.reason, PMSG_TEXT_MAX);
		break;
	case PMSG_DELIVER:
		put_str(&w, m->u.deliver.peer, FRAME_NAME_MAX);
		put_change(&w, &m->u.deliver.change);
		break;
	case PMSG_VERIFY:
		put_str(&w, m->u.verify.peer, FRAME_NAME_MAX);
		put_str(&w, m->u.verify.user, FRAME_USER_MAX);
		break;
	case PMSG_SHUTDOWN:
		break;
	case PMSG_KEY_PROPOSED:
		put_str(&w, m->u.kproposed.peer, FRAME_NAME_MAX);
		put_u32(&w, m->u.kproposed.auth_id);
		put_u32(&w, m->u.kproposed.key_id);
		put(&w, m->u.kproposed.key, FRAME_KEY_LEN);
		break;
	case PMSG_KEY_RESULT:
		put_str(&w, m->u.kresult.peer, FRAME_NAME_MAX);
		put_u32(&w, m->u.kresult.key_id);
		put_u32(&w, (uint32_t)m->u.kresult.code);
		put_str(&w, m->u.kresult.reason, PMSG_TEXT_MAX);
		break;
	case PMSG_KEY_USED:
		put_str(&w, m->u.kused.peer, FRAME_NAME_MAX);
		put_u32(&w, m->u.kused.key_id);
		break;
	case PMSG_KEY_PROPOSE:
		put_str(&w, m->u.kpropose.peer, FRAME_NAME_MAX);
		put_u32(&w, m->u.kpropose.key_id);
		put(&w, m->u.kpropose.key, FRAME_KEY_LEN);
		break;
	default:
		perr_set(err, PSYNC_E_PROTOCOL, "cannot encode message type %u",
		    m->type);
		return -1;
	}
	body = w.len - PMSG_HDR_LEN;
	if (w.bad || body > PMSG_MAX) {
		secure_wipe(buf, cap < w.len ? cap : w.len);
		perr_set(err, PSYNC_E_PROTOCOL, "%s message does not fit the "
		    "rules (a field too long or a buffer too small)",
		    pmsg_type_name(m->type));
		return -1;
	}
	w.len = 0;
	put_u32(&w, m->type);
	put_u32(&w, (uint32_t)body);
	put_u32(&w, m->reqid);
	return (long)(body + PMSG_HDR_LEN);
}

void
pmsg_wipe(struct pmsg *m)
{
	secure_wipe(m, sizeof(*m));
}

const char *
pmsg_type_name(uint32_t type)
{
	static const struct {
		uint32_t	 type;
		const char	*name;
	} names[] = {
		{ PMSG_INBOUND,		"INBOUND" },
		{ PMSG_DELIVERY_RESULT,	"DELIVERY-RESULT" },
		{ PMSG_VERIFY_RESULT,	"VERIFY-RESULT" },
		{ PMSG_PEER,		"PEER" },
		{ PMSG_PEERS_END,	"PEERS-END" },
		{ PMSG_INBOUND_RESULT,	"INBOUND-RESULT" },
		{ PMSG_DELIVER,		"DELIVER" },
		{ PMSG_VERIFY,		"VERIFY" },
		{ PMSG_SHUTDOWN,	"SHUTDOWN" },
		{ PMSG_KEY_PROPOSED,	"KEY-PROPOSED" },
		{ PMSG_KEY_RESULT,	"KEY-RESULT" },
		{ PMSG_KEY_USED,	"KEY-USED" },
		{ PMSG_KEY_PROPOSE,	"KEY-PROPOSE" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].type == type)
			return names[i].name;
	return "unknown";
}

int
pmsg_identity_parse(const char *identity, char *name, size_t len,
    uint32_t *key_id)
{
	const char *hash = strchr(identity, '#');
	uint64_t v = 0;
	size_t n;
	const char *p;

	*key_id = 0;
	n = hash != NULL ? (size_t)(hash - identity) : strlen(identity);
	if (n == 0 || n >= len)
		return -1;
	if (hash != NULL) {
		/* 1 to 10 digits without a leading zero, at most 2^32-1. */
		p = hash + 1;
		if (*p < '1' || *p > '9' || strlen(p) > 10)
			return -1;
		for (; *p != '\0'; p++) {
			if (*p < '0' || *p > '9')
				return -1;
			v = v * 10 + (uint64_t)(*p - '0');
		}
		if (v > UINT32_MAX)
			return -1;
	}
	memcpy(name, identity, n);
	name[n] = '\0';
	*key_id = (uint32_t)v;
	return 0;
}

int
pmsg_identity_make(const char *name, uint32_t key_id, char *out, size_t len)
{
	int n;

	if (strchr(name, '#') != NULL)
		return -1;
	if (key_id == 0)
		n = snprintf(out, len, "%s", name);
	else
		n = snprintf(out, len, "%s#%u", name, key_id);
	if (n < 0 || (size_t)n >= len || (size_t)n > PMSG_IDENTITY_MAX) {
		if (len > 0)
			out[0] = '\0';
		return -1;
	}
	return 0;
}

const char *
pmsg_step_name(int step)
{
	static const char *const names[] = {
		"none", "name resolution", "TCP connect", "TLS handshake",
		"protocol version", "policy", "other", "MEPP exchange",
	};

	if (step < 0 || step > VERIFY_STEP_MAX)
		return "unknown";
	return names[step];
}

int
pmsg_write(int fd, const struct pmsg *m, struct psync_err *err)
{
	unsigned char buf[PMSG_HDR_LEN + PMSG_MAX];
	long len;
	size_t off = 0;
	ssize_t n;
	int rc = -1;

	len = pmsg_encode(m, buf, sizeof(buf), err);
	if (len < 0)
		return -1;
	while (off < (size_t)len) {
		n = write(fd, buf + off, (size_t)len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			struct pollfd p = { fd, POLLOUT, 0 };

			(void)poll(&p, 1, 1000);
			continue;
		}
		if (n <= 0) {
			perr_set(err, PSYNC_E_WRITE, "writing a %s message: %s",
			    pmsg_type_name(m->type), n < 0 ? strerror(errno) :
			    "nothing written");
			goto done;
		}
		off += (size_t)n;
	}
	rc = 0;
done:
	secure_wipe(buf, (size_t)len);
	return rc;
}

static int
read_full(int fd, unsigned char *p, size_t n, struct psync_err *err)
{
	size_t off = 0;
	ssize_t r;

	while (off < n) {
		r = read(fd, p + off, n - off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			perr_set(err, PSYNC_E_OPEN, "reading a message: %s",
			    strerror(errno));
			return -1;
		}
		if (r == 0) {
			perr_set(err, PSYNC_OK, "the other process closed the "
			    "channel");
			return -1;
		}
		off += (size_t)r;
	}
	return 0;
}

int
pmsg_read(int fd, unsigned char *buf, enum pmsg_from from, struct pmsg *m,
    struct psync_err *err)
{
	uint32_t body;
	long used;

	if (read_full(fd, buf, PMSG_HDR_LEN, err) == -1)
		return -1;
	body = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 |
	    (uint32_t)buf[6] << 8 | buf[7];
	if (body > PMSG_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "message of %u bytes is over "
		    "the cap of %d", body, PMSG_MAX);
		return -1;
	}
	if (read_full(fd, buf + PMSG_HDR_LEN, body, err) == -1)
		return -1;
	used = pmsg_decode(buf, PMSG_HDR_LEN + body, from, m, err);
	secure_wipe(buf, PMSG_HDR_LEN + body);
	if (used <= 0) {
		if (used == 0)
			perr_set(err, PSYNC_E_PROTOCOL, "truncated message");
		return -1;
	}
	return 0;
}
