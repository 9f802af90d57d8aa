/*
 * The psync frame codec. Every message is described by a table of its
 * fields (tag, kind, bounds, where it lives in struct frame); one generic
 * encoder and one generic decoder walk those tables, and both run the same
 * per-field checks, so what we send is exactly what we would accept.
 * The decoder reads untrusted bytes from the network: every length is
 * checked against what is left of the frame before it is used.
 */
#include "config.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "codes.h"
#include "frame.h"
#include "util.h"

enum field_kind {
	FK_U8,
	FK_U16,
	FK_U32,
	FK_U64,
	FK_BYTES,	/* exactly max bytes (ids, keys) */
	FK_NAME,	/* node name: printable ASCII, no spaces */
	FK_USER,	/* user name: UTF-8, no control characters */
	FK_TEXT,	/* reason text: UTF-8, no control characters */
	FK_SECRET,	/* any bytes but NUL; length kept beside it */
};

struct field_spec {
	uint8_t		 tag;
	const char	*name;
	enum field_kind	 kind;
	bool		 required;
	size_t		 off;		/* where the value lives in struct frame */
	size_t		 lenoff;	/* FK_SECRET: where its uint16_t length lives */
	uint64_t	 min;		/* integers: value; others: length in bytes */
	uint64_t	 max;
};

struct msg_spec {
	enum frame_type		 type;
	const char		*name;
	const struct field_spec	*fields;
	size_t			 nfields;
	/* Checks that involve more than one field; NULL when none. */
	int			(*check)(const struct frame *, struct psync_err *);
};

#define OFF(m)	offsetof(struct frame, u.m)
#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const struct field_spec hello_fields[] = {
	{ 1, "node",		FK_NAME, true, OFF(hello.node), 0, 1, FRAME_NAME_MAX },
	{ 2, "version",		FK_U16,	 true, OFF(hello.version), 0, 1, UINT16_MAX },
	{ 3, "capabilities",	FK_U32,	 true, OFF(hello.caps), 0, 0, UINT32_MAX },
};

static const struct field_spec change_fields[] = {
	{ 1, "id",		FK_BYTES, true, OFF(change.id), 0, FRAME_ID_LEN, FRAME_ID_LEN },
	{ 2, "origin",		FK_NAME,  true, OFF(change.origin), 0, 1, FRAME_NAME_MAX },
	{ 3, "time",		FK_U64,	  true, OFF(change.time_ms), 0, 0, UINT64_MAX },
	{ 4, "user",		FK_USER,  true, OFF(change.user), 0, 1, FRAME_USER_MAX },
	{ 5, "secret-kind",	FK_U8,	  true, OFF(change.secret_kind), 0,
	    FRAME_SECRET_CLEARTEXT, FRAME_SECRET_CRYPT },
	{ 6, "secret",		FK_SECRET, true, OFF(change.secret),
	    OFF(change.secret_len), 1, FRAME_SECRET_MAX },
};

static const struct field_spec result_fields[] = {
	{ 1, "id",		FK_BYTES, true, OFF(result.id), 0, FRAME_ID_LEN, FRAME_ID_LEN },
	{ 2, "code",		FK_U16,	  true, OFF(result.code), 0, 0, PSYNC_CODE_MAX },
	{ 3, "reason",		FK_TEXT,  false, OFF(result.reason), 0, 0, FRAME_REASON_MAX },
};

static const struct field_spec ping_fields[] = {
	{ 1, "sequence",	FK_U64,	true, OFF(ping.seq), 0, 0, UINT64_MAX },
};

static const struct field_spec key_propose_fields[] = {
	{ 1, "key-id",		FK_U32,	  true, OFF(key_propose.key_id), 0, 0, UINT32_MAX },
	{ 2, "key",		FK_BYTES, true, OFF(key_propose.key), 0, FRAME_KEY_LEN, FRAME_KEY_LEN },
};

static const struct field_spec key_confirm_fields[] = {
	{ 1, "key-id",		FK_U32,	true, OFF(key_confirm.key_id), 0, 0, UINT32_MAX },
};

static const struct field_spec error_fields[] = {
	{ 1, "code",		FK_U16,	 true, OFF(error.code), 0, 1, PSYNC_CODE_MAX },
	{ 2, "reason",		FK_TEXT, false, OFF(error.reason), 0, 0, FRAME_REASON_MAX },
};

static int	frame_change_check(const struct frame *, struct psync_err *);

static const struct msg_spec msg_specs[] = {
	{ FRAME_HELLO,	     "HELLO",	    hello_fields,	NELEM(hello_fields), NULL },
	{ FRAME_CHANGE,	     "CHANGE",	    change_fields,	NELEM(change_fields), frame_change_check },
	{ FRAME_RESULT,	     "RESULT",	    result_fields,	NELEM(result_fields), NULL },
	{ FRAME_PING,	     "PING",	    ping_fields,	NELEM(ping_fields), NULL },
	{ FRAME_PONG,	     "PONG",	    ping_fields,	NELEM(ping_fields), NULL },
	{ FRAME_KEY_PROPOSE, "KEY-PROPOSE", key_propose_fields, NELEM(key_propose_fields), NULL },
	{ FRAME_KEY_CONFIRM, "KEY-CONFIRM", key_confirm_fields, NELEM(key_confirm_fields), NULL },
	{ FRAME_ERROR,	     "ERROR",	    error_fields,	NELEM(error_fields), NULL },
};

static const struct msg_spec *
msg_lookup(int type)
{
	size_t i;

	for (i = 0; i < NELEM(msg_specs); i++)
		if ((int)msg_specs[i].type == type)
			return &msg_specs[i];
	return NULL;
}

const char *
frame_type_name(int type)
{
	const struct msg_spec *m = msg_lookup(type);

	return m != NULL ? m->name : "unknown";
}

void
frame_wipe(struct frame *f)
{
	if (f != NULL)
		secure_wipe(f, sizeof(*f));
}

static uint64_t
get_be(const unsigned char *p, size_t n)
{
	uint64_t v = 0;
	size_t i;

	for (i = 0; i < n; i++)
		v = (v << 8) | p[i];
	return v;
}

static void
put_be(unsigned char *p, uint64_t v, size_t n)
{
	size_t i;

	for (i = n; i > 0; i--) {
		p[i - 1] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

static size_t
int_width(enum field_kind kind)
{
	switch (kind) {
	case FK_U8:
		return 1;
	case FK_U16:
		return 2;
	case FK_U32:
		return 4;
	case FK_U64:
		return 8;
	case FK_BYTES:
	case FK_NAME:
	case FK_USER:
	case FK_TEXT:
	case FK_SECRET:
		break;
	}
	return 0;
}

/*
 * Character rules of the string kinds. Names end up in logs and as TLS PSK
 * identities, user names in logs and in the shadow file: control
 * characters (log forging, line breaks) are refused everywhere.
 */
static int
string_check(const struct msg_spec *m, const struct field_spec *fs,
    const unsigned char *v, size_t len, struct psync_err *err)
{
	char buf[FRAME_REASON_MAX + 1];
	size_t i;

	if (memchr(v, '\0', len) != NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u (%s): "
		    "contains a NUL byte", m->name, fs->tag, fs->name);
		return -1;
	}
	for (i = 0; i < len; i++) {
		bool bad = v[i] < 0x20 || v[i] == 0x7f ||
		    (fs->kind == FK_NAME && (v[i] == ' ' || v[i] > 0x7e));

		if (bad) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u "
			    "(%s): forbidden byte 0x%02x at offset %zu",
			    m->name, fs->tag, fs->name, v[i], i);
			return -1;
		}
	}
	if (fs->kind == FK_NAME)
		return 0;
	/* FK_USER and FK_TEXT are at most FRAME_REASON_MAX bytes. */
	memcpy(buf, v, len);
	buf[len] = '\0';
	if (utf8_length(buf) < 0) {
		perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u (%s): "
		    "not valid UTF-8", m->name, fs->tag, fs->name);
		return -1;
	}
	return 0;
}

/* The rules every field value obeys, on the bytes as they travel. */
static int
field_check(const struct msg_spec *m, const struct field_spec *fs,
    const unsigned char *v, size_t len, struct psync_err *err)
{
	size_t width = int_width(fs->kind);
	uint64_t x;

	if (width != 0) {
		if (len != width) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u "
			    "(%s): %zu bytes, must be %zu", m->name, fs->tag,
			    fs->name, len, width);
			return -1;
		}
		x = get_be(v, width);
		if (x < fs->min || x > fs->max) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u "
			    "(%s): value %llu outside %llu..%llu", m->name,
			    fs->tag, fs->name, (unsigned long long)x,
			    (unsigned long long)fs->min,
			    (unsigned long long)fs->max);
			return -1;
		}
		return 0;
	}
	if (len < fs->min || len > fs->max) {
		if (fs->min == fs->max)
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u "
			    "(%s): %zu bytes, must be %llu", m->name, fs->tag,
			    fs->name, len, (unsigned long long)fs->max);
		else
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u "
			    "(%s): %zu bytes, must be %llu..%llu", m->name,
			    fs->tag, fs->name, len,
			    (unsigned long long)fs->min,
			    (unsigned long long)fs->max);
		return -1;
	}
	switch (fs->kind) {
	case FK_NAME:
	case FK_USER:
	case FK_TEXT:
		return string_check(m, fs, v, len, err);
	case FK_SECRET:
		if (memchr(v, '\0', len) != NULL) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u "
			    "(%s): contains a NUL byte", m->name, fs->tag,
			    fs->name);
			return -1;
		}
		return 0;
	case FK_U8:
	case FK_U16:
	case FK_U32:
	case FK_U64:
	case FK_BYTES:
		break;
	}
	return 0;
}

/* A CHANGE obeys the change type's rules (lib/change/change.c), as everywhere. */
static int
frame_change_check(const struct frame *f, struct psync_err *err)
{
	struct psync_err why;

	if (change_check(&f->u.change, &why) == PSYNC_OK)
		return 0;
	perr_set(err, PSYNC_E_PROTOCOL, "CHANGE frame: %s", why.msg);
	return -1;
}

static void
field_store(struct frame *f, const struct field_spec *fs,
    const unsigned char *v, size_t len)
{
	unsigned char *dst = (unsigned char *)f + fs->off;
	uint64_t x;
	uint32_t x32;
	uint16_t x16;
	uint8_t x8;

	switch (fs->kind) {
	case FK_U8:
		x8 = v[0];
		memcpy(dst, &x8, sizeof(x8));
		break;
	case FK_U16:
		x16 = (uint16_t)get_be(v, 2);
		memcpy(dst, &x16, sizeof(x16));
		break;
	case FK_U32:
		x32 = (uint32_t)get_be(v, 4);
		memcpy(dst, &x32, sizeof(x32));
		break;
	case FK_U64:
		x = get_be(v, 8);
		memcpy(dst, &x, sizeof(x));
		break;
	case FK_BYTES:
		memcpy(dst, v, len);
		break;
	case FK_NAME:
	case FK_USER:
	case FK_TEXT:
		memcpy(dst, v, len);
		dst[len] = '\0';
		break;
	case FK_SECRET:
		memcpy(dst, v, len);
		dst[len] = '\0';
		x16 = (uint16_t)len;
		memcpy((unsigned char *)f + fs->lenoff, &x16, sizeof(x16));
		break;
	}
}

/*
 * The bytes a field's value travels as; for strings and bytes a pointer
 * into f, for integers the big-endian form in tmp. Returns the length or
 * -1 when a string in f is longer than its field allows.
 */
static long
field_bytes(const struct frame *f, const struct msg_spec *m,
    const struct field_spec *fs, unsigned char tmp[8],
    const unsigned char **v, struct psync_err *err)
{
	const unsigned char *src = (const unsigned char *)f + fs->off;
	size_t width = int_width(fs->kind), len;
	uint64_t x = 0;
	uint32_t x32;
	uint16_t x16;

	switch (fs->kind) {
	case FK_U8:
		x = src[0];
		break;
	case FK_U16:
		memcpy(&x16, src, sizeof(x16));
		x = x16;
		break;
	case FK_U32:
		memcpy(&x32, src, sizeof(x32));
		x = x32;
		break;
	case FK_U64:
		memcpy(&x, src, sizeof(x));
		break;
	case FK_BYTES:
		*v = src;
		return (long)fs->max;
	case FK_NAME:
	case FK_USER:
	case FK_TEXT:
		len = strnlen((const char *)src, fs->max + 1);
		if (len > fs->max) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u "
			    "(%s): longer than %llu bytes", m->name, fs->tag,
			    fs->name, (unsigned long long)fs->max);
			return -1;
		}
		*v = src;
		return (long)len;
	case FK_SECRET:
		memcpy(&x16, (const unsigned char *)f + fs->lenoff, sizeof(x16));
		*v = src;
		return (long)x16;
	}
	put_be(tmp, x, width);
	*v = tmp;
	return (long)width;
}

long
frame_encode(const struct frame *f, unsigned char *buf, size_t cap,
    struct psync_err *err)
{
	const struct msg_spec *m;
	const unsigned char *v;
	unsigned char tmp[8];
	size_t i, pos;
	long n, rc = -1;

	m = msg_lookup((int)f->type);
	if (m == NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "cannot encode a frame of "
		    "unknown type %d", (int)f->type);
		goto done;
	}
	if (cap < FRAME_PREFIX_LEN + 1) {
		perr_set(err, PSYNC_E_PROTOCOL, "%s frame: buffer of %zu "
		    "bytes too small", m->name, cap);
		goto done;
	}
	pos = FRAME_PREFIX_LEN;
	buf[pos++] = (unsigned char)m->type;
	for (i = 0; i < m->nfields; i++) {
		const struct field_spec *fs = &m->fields[i];

		n = field_bytes(f, m, fs, tmp, &v, err);
		if (n < 0)
			goto done;
		/* Empty optional texts are left out rather than sent empty. */
		if (!fs->required && n == 0)
			continue;
		if (field_check(m, fs, v, (size_t)n, err) == -1)
			goto done;
		if (cap - pos < 3 + (size_t)n) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: buffer of "
			    "%zu bytes too small", m->name, cap);
			goto done;
		}
		buf[pos] = fs->tag;
		put_be(buf + pos + 1, (uint64_t)n, 2);
		memcpy(buf + pos + 3, v, (size_t)n);
		pos += 3 + (size_t)n;
	}
	if (m->check != NULL && m->check(f, err) == -1)
		goto done;
	if (pos - FRAME_PREFIX_LEN > FRAME_LEN_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "%s frame: %zu bytes, over the "
		    "cap of %u", m->name, pos - FRAME_PREFIX_LEN, FRAME_LEN_MAX);
		goto done;
	}
	put_be(buf, pos - FRAME_PREFIX_LEN, FRAME_PREFIX_LEN);
	rc = (long)pos;
done:
	secure_wipe(tmp, sizeof(tmp));
	if (rc == -1 && cap > 0)
		secure_wipe(buf, cap < FRAME_BUF_MAX ? cap : FRAME_BUF_MAX);
	return rc;
}

long
frame_decode(const unsigned char *buf, size_t len, struct frame *f,
    struct psync_err *err)
{
	const struct msg_spec *m;
	const unsigned char *p, *end;
	uint32_t seen = 0;
	uint64_t flen;
	size_t i, framelen;
	long rc = -1;

	frame_wipe(f);
	if (len < FRAME_PREFIX_LEN)
		return 0;
	framelen = (size_t)get_be(buf, FRAME_PREFIX_LEN);
	if (framelen == 0) {
		perr_set(err, PSYNC_E_PROTOCOL, "frame length 0: a frame "
		    "holds at least its type byte");
		goto done;
	}
	if (framelen > FRAME_LEN_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "frame length %zu over the "
		    "cap of %u bytes", framelen, FRAME_LEN_MAX);
		goto done;
	}
	if (len - FRAME_PREFIX_LEN < framelen)
		return 0;
	p = buf + FRAME_PREFIX_LEN;
	end = p + framelen;
	m = msg_lookup(*p);
	if (m == NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "unknown message type %u", *p);
		goto done;
	}
	f->type = m->type;
	p++;
	while (p < end) {
		const struct field_spec *fs = NULL;
		size_t off = (size_t)(p - buf);

		if (end - p < 3) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field header "
			    "at offset %zu cut short by the end of the frame",
			    m->name, off);
			goto done;
		}
		flen = get_be(p + 1, 2);
		if (flen > (uint64_t)(end - p - 3)) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u at "
			    "offset %zu claims %llu bytes, only %td left in the "
			    "frame", m->name, p[0], off,
			    (unsigned long long)flen, end - p - 3);
			goto done;
		}
		for (i = 0; i < m->nfields; i++)
			if (m->fields[i].tag == p[0])
				fs = &m->fields[i];
		if (fs == NULL) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: unknown field "
			    "tag %u at offset %zu", m->name, p[0], off);
			goto done;
		}
		i = (size_t)(fs - m->fields);
		if ((seen & (1u << i)) != 0) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: field %u "
			    "(%s) appears twice", m->name, fs->tag, fs->name);
			goto done;
		}
		seen |= 1u << i;
		if (field_check(m, fs, p + 3, (size_t)flen, err) == -1)
			goto done;
		field_store(f, fs, p + 3, (size_t)flen);
		p += 3 + flen;
	}
	for (i = 0; i < m->nfields; i++) {
		if (m->fields[i].required && (seen & (1u << i)) == 0) {
			perr_set(err, PSYNC_E_PROTOCOL, "%s frame: required field "
			    "%u (%s) is missing", m->name, m->fields[i].tag,
			    m->fields[i].name);
			goto done;
		}
	}
	if (m->check != NULL && m->check(f, err) == -1)
		goto done;
	rc = (long)(FRAME_PREFIX_LEN + framelen);
done:
	if (rc == -1)
		frame_wipe(f);
	return rc;
}

/* Copy a string into a fixed field, refusing rather than truncating. */
static int
set_string(char *dst, size_t max, const char *src, const char *what,
    struct psync_err *err)
{
	size_t len = strlen(src);

	if (len > max) {
		perr_set(err, PSYNC_E_PROTOCOL, "%s: %zu bytes, at most %zu",
		    what, len, max);
		return -1;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

int
frame_set_hello(struct frame *f, const char *node, uint16_t version,
    uint32_t caps, struct psync_err *err)
{
	frame_wipe(f);
	f->type = FRAME_HELLO;
	f->u.hello.version = version;
	f->u.hello.caps = caps;
	return set_string(f->u.hello.node, FRAME_NAME_MAX, node,
	    "HELLO node name", err);
}

int
frame_set_change(struct frame *f, const uint8_t id[FRAME_ID_LEN],
    const char *origin, uint64_t time_ms, const char *user,
    enum change_secret_kind kind, const void *secret, size_t secret_len,
    struct psync_err *err)
{
	int rc = -1;

	frame_wipe(f);
	f->type = FRAME_CHANGE;
	memcpy(f->u.change.id, id, FRAME_ID_LEN);
	f->u.change.time_ms = time_ms;
	f->u.change.secret_kind = (uint8_t)kind;
	if (set_string(f->u.change.origin, FRAME_NAME_MAX, origin,
	    "CHANGE origin", err) == -1)
		goto done;
	if (set_string(f->u.change.user, FRAME_USER_MAX, user,
	    "CHANGE user name", err) == -1)
		goto done;
	if (secret_len > FRAME_SECRET_MAX) {
		perr_set(err, PSYNC_E_BAD_PASSWORD, "CHANGE for user %s: secret "
		    "of %zu bytes, at most %u", user, secret_len,
		    FRAME_SECRET_MAX);
		goto done;
	}
	memcpy(f->u.change.secret, secret, secret_len);
	f->u.change.secret[secret_len] = '\0';
	f->u.change.secret_len = (uint16_t)secret_len;
	if (change_check(&f->u.change, err) != PSYNC_OK)
		goto done;
	rc = 0;
done:
	if (rc == -1)
		frame_wipe(f);
	return rc;
}

int
frame_set_result(struct frame *f, const uint8_t id[FRAME_ID_LEN], int code,
    const char *reason, struct psync_err *err)
{
	frame_wipe(f);
	f->type = FRAME_RESULT;
	memcpy(f->u.result.id, id, FRAME_ID_LEN);
	f->u.result.code = (uint16_t)code;
	if (code < 0 || code > PSYNC_CODE_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "RESULT: unknown code %d", code);
		return -1;
	}
	return set_string(f->u.result.reason, FRAME_REASON_MAX,
	    reason != NULL ? reason : "", "RESULT reason", err);
}

int
frame_set_ping(struct frame *f, bool pong, uint64_t seq)
{
	frame_wipe(f);
	f->type = pong ? FRAME_PONG : FRAME_PING;
	f->u.ping.seq = seq;
	return 0;
}

int
frame_set_key_propose(struct frame *f, uint32_t key_id,
    const unsigned char key[FRAME_KEY_LEN])
{
	frame_wipe(f);
	f->type = FRAME_KEY_PROPOSE;
	f->u.key_propose.key_id = key_id;
	memcpy(f->u.key_propose.key, key, FRAME_KEY_LEN);
	return 0;
}

int
frame_set_key_confirm(struct frame *f, uint32_t key_id)
{
	frame_wipe(f);
	f->type = FRAME_KEY_CONFIRM;
	f->u.key_confirm.key_id = key_id;
	return 0;
}

int
frame_set_error(struct frame *f, int code, const char *reason,
    struct psync_err *err)
{
	frame_wipe(f);
	f->type = FRAME_ERROR;
	if (code <= 0 || code > PSYNC_CODE_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "ERROR: unknown code %d", code);
		return -1;
	}
	f->u.error.code = (uint16_t)code;
	return set_string(f->u.error.reason, FRAME_REASON_MAX,
	    reason != NULL ? reason : "", "ERROR reason", err);
}
