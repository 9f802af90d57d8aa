/*
 * The LDIF parser behind psync-samba-hook. The input comes from
 * samba-tool, but it names an account and carries its password, so it is
 * parsed as untrusted bytes: every length is checked, nothing is taken
 * twice, and only the handful of attributes the hook needs are kept.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codes.h"
#include "samba_ldif.h"
#include "util.h"

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

long
samba_base64_decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i, o = 0, pad = 0;
	uint32_t acc;
	int v[4], k;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		for (k = 0; k < 4; k++) {
			if (p[i + k] == '=' && i + 4 == len && k >= 2) {
				v[k] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[k] = b64_value(p[i + k])) < 0)
				return -1;
		}
		acc = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		    (uint32_t)v[2] << 6 | (uint32_t)v[3];
		if (cap - o < 3 - pad)
			return -1;
		out[o++] = (unsigned char)(acc >> 16);
		if (pad < 2)
			out[o++] = (unsigned char)(acc >> 8);
		if (pad < 1)
			out[o++] = (unsigned char)acc;
	}
	return (long)o;
}

/* Where one kept attribute goes. */
enum ldif_field {
	F_DN,
	F_USER,
	F_UAC,
	F_DELETED,
	F_CLEARTEXT,
	F_HASH,
};

static const struct {
	const char	*name;
	enum ldif_field	 field;
} ldif_attrs[] = {
	{ "dn",				F_DN },
	{ "sAMAccountName",		F_USER },
	{ "userAccountControl",		F_UAC },
	{ "isDeleted",			F_DELETED },
	{ "isRecycled",			F_DELETED },
	{ "virtualClearTextUTF8",	F_CLEARTEXT },
	{ "virtualCryptSHA512",		F_HASH },
};

/* State while parsing: which fields were seen, for "given twice". */
struct ldif_state {
	struct samba_ldif	*o;
	unsigned int		 seen;	/* bit per enum ldif_field */
	bool			 deleted_seen[2];
};

static int
set_string(char *dst, size_t cap, const unsigned char *v, size_t len,
    const char *what, struct psync_err *err)
{
	if (len >= cap) {
		perr_set(err, PSYNC_E_PROTOCOL, "%s longer than %zu bytes",
		    what, cap - 1);
		return -1;
	}
	if (memchr(v, '\0', len) != NULL || memchr(v, '\n', len) != NULL ||
	    memchr(v, '\r', len) != NULL) {
		perr_set(err, PSYNC_E_PROTOCOL, "%s holds a NUL or line break",
		    what);
		return -1;
	}
	memcpy(dst, v, len);
	dst[len] = '\0';
	return 0;
}

static int
take_value(struct ldif_state *st, enum ldif_field f, const char *name,
    const unsigned char *v, size_t len, struct psync_err *err)
{
	struct samba_ldif *o = st->o;
	char num[24];
	char *end;
	size_t i;

	/* isDeleted and isRecycled share a field but not a "twice" bit. */
	if (f != F_DELETED) {
		if (st->seen & (1u << f)) {
			perr_set(err, PSYNC_E_PROTOCOL, "attribute %s given "
			    "twice", name);
			return -1;
		}
		st->seen |= 1u << f;
	}
	switch (f) {
	case F_DN:
		/* Only for messages: a long DN is cut, not refused. */
		if (len > SAMBA_LDIF_DN_MAX)
			len = SAMBA_LDIF_DN_MAX;
		for (i = 0; i < len; i++)
			o->dn[i] = v[i] < ' ' || v[i] == 0x7f ? '?' : (char)v[i];
		o->dn[len] = '\0';
		return 0;
	case F_USER:
		if (len == 0) {
			perr_set(err, PSYNC_E_PROTOCOL, "empty sAMAccountName");
			return -1;
		}
		o->have_user = true;
		return set_string(o->user, sizeof(o->user), v, len,
		    "sAMAccountName", err);
	case F_UAC:
		if (len == 0 || len >= sizeof(num)) {
			perr_set(err, PSYNC_E_PROTOCOL, "userAccountControl is "
			    "not a number");
			return -1;
		}
		memcpy(num, v, len);
		num[len] = '\0';
		/* AD writes it as a signed 32-bit number. */
		if (num[0] == '-')
			o->uac = (unsigned long)(uint32_t)strtol(num, &end, 10);
		else
			o->uac = strtoul(num, &end, 10);
		if (*end != '\0' || ((num[0] < '0' || num[0] > '9') &&
		    num[0] != '-')) {
			perr_set(err, PSYNC_E_PROTOCOL, "userAccountControl is "
			    "not a number");
			return -1;
		}
		o->have_uac = true;
		return 0;
	case F_DELETED:
		if (len == 4 && strncasecmp((const char *)v, "TRUE", 4) == 0)
			o->deleted = true;
		return 0;
	case F_CLEARTEXT:
		o->have_cleartext = true;
		return set_string(o->cleartext, sizeof(o->cleartext), v, len,
		    "virtualClearTextUTF8", err);
	case F_HASH:
		/* Samba writes {CRYPT}$6$...; a shadow file wants $6$... */
		if (len >= 7 && strncasecmp((const char *)v, "{CRYPT}", 7) == 0) {
			v += 7;
			len -= 7;
		}
		if (len == 0) {
			perr_set(err, PSYNC_E_PROTOCOL, "empty "
			    "virtualCryptSHA512");
			return -1;
		}
		o->have_hash = true;
		return set_string(o->hash, sizeof(o->hash), v, len,
		    "virtualCryptSHA512", err);
	}
	return 0;
}

/* One unfolded line: "name: value", "name:: base64" or "name:< url". */
static int
parse_line(struct ldif_state *st, char *line, size_t len, unsigned char *tmp,
    size_t tmpcap, struct psync_err *err)
{
	char *colon, *semi;
	const unsigned char *v;
	size_t namelen, vlen, i;
	long dl;
	bool b64 = false;
	int rc = -1;

	if (len > 0 && line[0] == '#')
		return 0;
	colon = memchr(line, ':', len);
	if (colon == NULL || colon == line) {
		perr_set(err, PSYNC_E_PROTOCOL, "LDIF line without "
		    "\"attribute:\"");
		return -1;
	}
	namelen = (size_t)(colon - line);
	for (i = 0; i < namelen; i++) {
		unsigned char c = (unsigned char)line[i];

		if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
		    !(c >= '0' && c <= '9') && c != '-' && c != ';' &&
		    c != '=' && c != '.') {
			perr_set(err, PSYNC_E_PROTOCOL, "bad character in an "
			    "LDIF attribute name");
			return -1;
		}
	}
	/* Options (";rounds=5000") do not change which attribute it is. */
	semi = memchr(line, ';', namelen);
	if (semi != NULL)
		namelen = (size_t)(semi - line);
	v = (const unsigned char *)colon + 1;
	vlen = len - (size_t)(v - (const unsigned char *)line);
	if (vlen > 0 && *v == ':') {
		b64 = true;
		v++;
		vlen--;
	} else if (vlen > 0 && *v == '<') {
		perr_set(err, PSYNC_E_PROTOCOL, "LDIF values by URL are not "
		    "accepted");
		return -1;
	}
	while (vlen > 0 && *v == ' ') {
		v++;
		vlen--;
	}
	for (i = 0; i < sizeof(ldif_attrs) / sizeof(ldif_attrs[0]); i++) {
		if (strlen(ldif_attrs[i].name) != namelen ||
		    strncasecmp(ldif_attrs[i].name, line, namelen) != 0)
			continue;
		if (b64) {
			dl = samba_base64_decode((const char *)v, vlen, tmp,
			    tmpcap);
			if (dl < 0) {
				perr_set(err, PSYNC_E_PROTOCOL, "bad base64 "
				    "in attribute %s", ldif_attrs[i].name);
				goto done;
			}
			v = tmp;
			vlen = (size_t)dl;
		}
		rc = take_value(st, ldif_attrs[i].field, ldif_attrs[i].name,
		    v, vlen, err);
		goto done;
	}
	rc = 0;		/* an attribute the hook does not need */
done:
	if (b64)
		secure_wipe(tmp, tmpcap);
	return rc;
}

int
samba_ldif_parse(const char *buf, size_t len, struct samba_ldif *o,
    struct psync_err *err)
{
	struct ldif_state st;
	char *line = NULL;
	unsigned char *tmp = NULL;
	size_t pos = 0, ll = 0, plen;
	const char *nl;
	bool have_line = false, started = false;
	int rc = -1;

	memset(o, 0, sizeof(*o));
	memset(&st, 0, sizeof(st));
	st.o = o;
	if (len > SAMBA_LDIF_MAX) {
		perr_set(err, PSYNC_E_PROTOCOL, "LDIF larger than %d bytes",
		    SAMBA_LDIF_MAX);
		goto done;
	}
	line = malloc(SAMBA_LDIF_LINE_MAX);
	tmp = malloc(SAMBA_LDIF_LINE_MAX);
	if (line == NULL || tmp == NULL) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "out of memory");
		goto done;
	}
	for (;;) {
		const char *p = buf + pos;
		bool end = pos >= len;

		if (!end) {
			nl = memchr(p, '\n', len - pos);
			plen = nl != NULL ? (size_t)(nl - p) : len - pos;
			pos += plen + (nl != NULL ? 1 : 0);
			if (plen > 0 && p[plen - 1] == '\r')
				plen--;
		} else {
			plen = 0;
		}
		/* A folded line goes on after one leading space. */
		if (!end && plen > 0 && p[0] == ' ' && have_line) {
			if (plen - 1 > SAMBA_LDIF_LINE_MAX - ll) {
				perr_set(err, PSYNC_E_PROTOCOL, "LDIF line "
				    "longer than %d bytes", SAMBA_LDIF_LINE_MAX);
				goto done;
			}
			memcpy(line + ll, p + 1, plen - 1);
			ll += plen - 1;
			continue;
		}
		if (have_line) {
			if (parse_line(&st, line, ll, tmp, SAMBA_LDIF_LINE_MAX,
			    err) == -1)
				goto done;
			have_line = false;
			ll = 0;
		}
		if (end)
			break;
		if (plen == 0) {
			/* A blank line ends the record once it began. */
			if (started)
				break;
			continue;
		}
		if (p[0] == ' ') {
			perr_set(err, PSYNC_E_PROTOCOL, "LDIF continuation line "
			    "with nothing to continue");
			goto done;
		}
		if (plen > SAMBA_LDIF_LINE_MAX) {
			perr_set(err, PSYNC_E_PROTOCOL, "LDIF line longer than "
			    "%d bytes", SAMBA_LDIF_LINE_MAX);
			goto done;
		}
		memcpy(line, p, plen);
		ll = plen;
		have_line = true;
		if (p[0] != '#')
			started = true;
	}
	rc = 0;
done:
	if (line != NULL) {
		secure_wipe(line, SAMBA_LDIF_LINE_MAX);
		free(line);
	}
	if (tmp != NULL) {
		secure_wipe(tmp, SAMBA_LDIF_LINE_MAX);
		free(tmp);
	}
	if (rc == -1)
		samba_ldif_wipe(o);
	return rc;
}

enum samba_ldif_action
samba_ldif_decide(const struct samba_ldif *o, const char **why)
{
	if (o->deleted) {
		*why = "deleted account";
		return SAMBA_SKIP_DELETED;
	}
	if (!o->have_user) {
		*why = "no sAMAccountName in the report";
		return SAMBA_SKIP_NO_USER;
	}
	if (o->have_uac && (o->uac & SAMBA_UAC_DISABLED) != 0) {
		*why = "disabled account";
		return SAMBA_SKIP_DISABLED;
	}
	/* The cleartext lets each peer hash with its own method. */
	if (o->have_cleartext && o->cleartext[0] != '\0') {
		*why = "new password";
		return SAMBA_SEND_CLEARTEXT;
	}
	if (o->have_hash) {
		*why = "new password hash";
		return SAMBA_SEND_HASH;
	}
	*why = "no password in the report";
	return SAMBA_SKIP_NO_SECRET;
}

void
samba_ldif_wipe(struct samba_ldif *o)
{
	secure_wipe(o, sizeof(*o));
}
