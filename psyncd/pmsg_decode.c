/*
 * The privsep messages' decoder (pmsg.h): what the root parent runs on
 * every byte the network child sends, and so, with monitor.c, the code a
 * reviewer of the privilege separation reads. Decoding goes through a
 * cursor that fails for good on the first overrun, so a field can never
 * be read past the payload; every length, range and flag is checked, and
 * trailing bytes are refused.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "codes.h"
#include "config_file.h"
#include "pmsg.h"

struct rbuf {
	const unsigned char *p;
	size_t		 len;
	size_t		 pos;
	bool		 bad;
	const char	*why;
};

static const unsigned char *
take(struct rbuf *r, size_t n, const char *what)
{
	const unsigned char *p;

	if (r->bad)
		return NULL;
	if (r->len - r->pos < n) {
		r->bad = true;
		r->why = what;
		return NULL;
	}
	p = r->p + r->pos;
	r->pos += n;
	return p;
}

static uint8_t
get_u8(struct rbuf *r, const char *what)
{
	const unsigned char *p = take(r, 1, what);

	return p == NULL ? 0 : p[0];
}

static uint16_t
get_u16(struct rbuf *r, const char *what)
{
	const unsigned char *p = take(r, 2, what);

	return p == NULL ? 0 : (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
get_u32(struct rbuf *r, const char *what)
{
	const unsigned char *p = take(r, 4, what);

	if (p == NULL)
		return 0;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t
get_u64(struct rbuf *r, const char *what)
{
	uint64_t hi = get_u32(r, what);

	return hi << 32 | get_u32(r, what);
}

static void
fail(struct rbuf *r, const char *what)
{
	if (!r->bad) {
		r->bad = true;
		r->why = what;
	}
}

/* A string field: at most max bytes, no NUL inside; empty allowed unless
   nonempty is set. */
static void
get_str(struct rbuf *r, char *out, size_t max, bool nonempty, const char *what)
{
	uint16_t n = get_u16(r, what);
	const unsigned char *p;

	out[0] = '\0';
	if (r->bad)
		return;
	if (n > max || (nonempty && n == 0)) {
		fail(r, what);
		return;
	}
	p = take(r, n, what);
	if (p == NULL)
		return;
	if (memchr(p, '\0', n) != NULL) {
		fail(r, what);
		return;
	}
	memcpy(out, p, n);
	out[n] = '\0';
}

static void
get_id(struct rbuf *r, uint8_t id[FRAME_ID_LEN])
{
	const unsigned char *p = take(r, FRAME_ID_LEN, "change id");

	if (p != NULL)
		memcpy(id, p, FRAME_ID_LEN);
}

static void
get_key(struct rbuf *r, unsigned char key[FRAME_KEY_LEN], const char *what)
{
	const unsigned char *p = take(r, FRAME_KEY_LEN, what);

	if (p != NULL)
		memcpy(key, p, FRAME_KEY_LEN);
}

/* The same rules as the frame codec: a change that could not cross the
   wire may not cross the socketpair either. */
static void
get_change(struct rbuf *r, struct change *c)
{
	struct psync_err why;
	const unsigned char *p;
	uint16_t n;

	get_id(r, c->id);
	get_str(r, c->origin, FRAME_NAME_MAX, true, "change origin");
	c->time_ms = get_u64(r, "change time");
	get_str(r, c->user, FRAME_USER_MAX, true, "change user");
	c->secret_kind = get_u8(r, "secret kind");
	n = get_u16(r, "secret length");
	if (!r->bad && (n == 0 || n > FRAME_SECRET_MAX))
		fail(r, "secret length");
	p = take(r, n, "secret");
	if (p == NULL)
		return;
	memcpy(c->secret, p, n);
	c->secret[n] = '\0';
	c->secret_len = n;
	/* The same rules as every other layer (lib/change/change.c). */
	if (change_check(c, &why) != PSYNC_OK)
		fail(r, "change (user, origin, secret kind or secret)");
}

static bool
type_from(uint32_t type, enum pmsg_from from)
{
	if (type >= PMSG_INBOUND && type <= PMSG_KEY_USED)
		return from == PMSG_FROM_CHILD;
	if (type >= PMSG_PEER && type <= PMSG_KEY_PROPOSE)
		return from == PMSG_FROM_PARENT;
	return false;
}

static bool
protocol_ok(uint8_t p)
{
	return p == PROTO_PSYNC || p == PROTO_MEPP;
}

long
pmsg_decode(const unsigned char *buf, size_t len, enum pmsg_from from,
    struct pmsg *m, struct psync_err *err)
{
	struct rbuf r;
	struct pmsg_peer *pe;
	uint32_t type, body, code;
	size_t i;

	pmsg_wipe(m);
	if (len < PMSG_HDR_LEN)
		return 0;
	type = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
	body = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 |
	    (uint32_t)buf[6] << 8 | buf[7];
	if (!type_from(type, from)) {
		perr_set(err, PSYNC_E_PROTOCOL, "message type %u may not come "
		    "from the %s", type, from == PMSG_FROM_CHILD ? "child" :
		    "parent");
		return -1;
	}
	if (body > PMSG_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "%s message of %u bytes is over "
		    "the cap of %d", pmsg_type_name(type), body, PMSG_MAX);
		return -1;
	}
	if (len - PMSG_HDR_LEN < body)
		return 0;
	m->type = type;
	m->reqid = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 |
	    (uint32_t)buf[10] << 8 | buf[11];
	r = (struct rbuf){ buf + PMSG_HDR_LEN, body, 0, false, NULL };

	switch (type) {
	case PMSG_INBOUND:
		m->u.inbound.protocol = get_u8(&r, "protocol");
		if (!r.bad && !protocol_ok(m->u.inbound.protocol))
			fail(&r, "protocol");
		m->u.inbound.mepp_type = get_u8(&r, "MEPP type");
		if (!r.bad && m->u.inbound.mepp_type != 0 &&
		    (m->u.inbound.protocol != PROTO_MEPP ||
		    m->u.inbound.mepp_type != 2))
			fail(&r, "MEPP type");
		get_str(&r, m->u.inbound.peer, FRAME_NAME_MAX, true, "peer");
		get_change(&r, &m->u.inbound.change);
		break;
	case PMSG_DELIVERY_RESULT:
		get_id(&r, m->u.dresult.id);
		get_str(&r, m->u.dresult.peer, FRAME_NAME_MAX, true, "peer");
		code = get_u32(&r, "code");
		m->u.dresult.code = (int32_t)code;
		if (!r.bad && (m->u.dresult.code < -1 ||
		    m->u.dresult.code > PSYNC_CODE_MAX))
			fail(&r, "code");
		get_str(&r, m->u.dresult.reason, PMSG_TEXT_MAX, false, "reason");
		break;
	case PMSG_VERIFY_RESULT:
		m->u.vresult.step = get_u8(&r, "step");
		if (!r.bad && m->u.vresult.step > VERIFY_STEP_MAX)
			fail(&r, "step");
		m->u.vresult.code = (int32_t)get_u32(&r, "code");
		get_str(&r, m->u.vresult.message, PMSG_TEXT_MAX, false,
		    "message");
		break;
	case PMSG_PEER:
		pe = &m->u.peer;
		get_str(&r, pe->name, FRAME_NAME_MAX, true, "peer name");
		pe->protocol = get_u8(&r, "protocol");
		if (!r.bad && !protocol_ok(pe->protocol))
			fail(&r, "protocol");
		pe->direction = get_u8(&r, "direction");
		if (!r.bad && (pe->direction < DIR_SEND ||
		    pe->direction > DIR_BOTH))
			fail(&r, "direction");
		pe->port = get_u16(&r, "port");
		pe->connect_timeout = get_u32(&r, "connect timeout");
		get_str(&r, pe->host, PMSG_HOST_MAX, false, "host");
		pe->key_len = get_u16(&r, "key length");
		if (!r.bad && pe->key_len > PMSG_KEYTEXT_MAX)
			fail(&r, "key length");
		if (!r.bad) {
			const unsigned char *p = take(&r, pe->key_len, "key");

			if (p != NULL) {
				memcpy(pe->key, p, pe->key_len);
				pe->key[pe->key_len] = '\0';
			}
		}
		pe->n_trusted = get_u8(&r, "trusted count");
		if (!r.bad && pe->n_trusted > PMSG_TRUSTED_MAX)
			fail(&r, "trusted count");
		for (i = 0; !r.bad && i < pe->n_trusted; i++)
			get_str(&r, pe->trusted[i], PMSG_ADDR_MAX, true,
			    "trusted address");
		pe->key_id = get_u32(&r, "key id");
		pe->mepp_kdf = get_u8(&r, "MEPP key derivation");
		if (!r.bad && pe->mepp_kdf > 1)
			fail(&r, "MEPP key derivation");
		pe->has_next = get_u8(&r, "next key flag");
		if (!r.bad && pe->has_next > 1)
			fail(&r, "next key flag");
		if (!r.bad && pe->has_next == 1) {
			pe->use_next = get_u8(&r, "use next flag");
			if (!r.bad && pe->use_next > 1)
				fail(&r, "use next flag");
			pe->next_id = get_u32(&r, "next key id");
			/* Key ids only grow. */
			if (!r.bad && pe->next_id <= pe->key_id)
				fail(&r, "next key id");
			get_key(&r, pe->next, "next key");
		}
		break;
	case PMSG_PEERS_END:
		get_str(&r, m->u.peers_end.node, FRAME_NAME_MAX, true, "node");
		m->u.peers_end.n_peers = get_u32(&r, "peer count");
		break;
	case PMSG_INBOUND_RESULT:
		m->u.iresult.code = get_u16(&r, "code");
		if (!r.bad && m->u.iresult.code > PSYNC_CODE_MAX)
			fail(&r, "code");
		get_str(&r, m->u.iresult.reason, PMSG_TEXT_MAX, false, "reason");
		break;
	case PMSG_DELIVER:
		get_str(&r, m->u.deliver.peer, FRAME_NAME_MAX, true, "peer");
		get_change(&r, &m->u.deliver.change);
		break;
	case PMSG_VERIFY:
		get_str(&r, m->u.verify.peer, FRAME_NAME_MAX, true, "peer");
		get_str(&r, m->u.verify.user, FRAME_USER_MAX, false, "user");
		break;
	case PMSG_SHUTDOWN:
		break;
	case PMSG_KEY_PROPOSED:
		get_str(&r, m->u.kproposed.peer, FRAME_NAME_MAX, true, "peer");
		m->u.kproposed.auth_id = get_u32(&r, "authenticated key id");
		m->u.kproposed.key_id = get_u32(&r, "key id");
		if (!r.bad && m->u.kproposed.key_id == 0)
			fail(&r, "key id (0 is never proposed)");
		get_key(&r, m->u.kproposed.key, "key");
		break;
	case PMSG_KEY_RESULT:
		get_str(&r, m->u.kresult.peer, FRAME_NAME_MAX, true, "peer");
		m->u.kresult.key_id = get_u32(&r, "key id");
		if (!r.bad && m->u.kresult.key_id == 0)
			fail(&r, "key id (0 is never proposed)");
		m->u.kresult.code = (int32_t)get_u32(&r, "code");
		if (!r.bad && (m->u.kresult.code < -1 ||
		    m->u.kresult.code > PSYNC_CODE_MAX))
			fail(&r, "code");
		get_str(&r, m->u.kresult.reason, PMSG_TEXT_MAX, false, "reason");
		break;
	case PMSG_KEY_USED:
		get_str(&r, m->u.kused.peer, FRAME_NAME_MAX, true, "peer");
		m->u.kused.key_id = get_u32(&r, "key id");
		if (!r.bad && m->u.kused.key_id == 0)
			fail(&r, "key id (a next key is never 0)");
		break;
	case PMSG_KEY_PROPOSE:
		get_str(&r, m->u.kpropose.peer, FRAME_NAME_MAX, true, "peer");
		m->u.kpropose.key_id = get_u32(&r, "key id");
		if (!r.bad && m->u.kpropose.key_id == 0)
			fail(&r, "key id (0 is never proposed)");
		get_key(&r, m->u.kpropose.key, "key");
		break;
	}
	if (!r.bad && r.pos != r.len)
		fail(&r, "trailing bytes");
	if (r.bad) {
		perr_set(err, PSYNC_E_PROTOCOL, "malformed %s message: bad %s",
		    pmsg_type_name(type), r.why != NULL ? r.why : "field");
		pmsg_wipe(m);
		return -1;
	}
	return (long)(PMSG_HDR_LEN + body);
}
