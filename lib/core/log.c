/*
 * Logging back-end: one formatting path, three sinks (stderr, syslog, a
 * callback for the PAM module and the tests). Peer data is escaped (a name
 * with a newline must not forge a log line) and a peer's repeated warnings
 * are counted instead of flooding the log.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

static enum log_target	 log_target = LOG_TARGET_STDERR;
static const char	*log_ident = "psync";
static int		 log_max = LOG_INFO;
static log_sink_fn	 log_sink;
static void		*log_sink_ctx;

struct log_name {
	const char	*name;
	int		 value;
};

static const struct log_name log_levels[] = {
	{ "error",	LOG_ERR },
	{ "warning",	LOG_WARNING },
	{ "notice",	LOG_NOTICE },
	{ "info",	LOG_INFO },
	{ "debug",	LOG_DEBUG },
};

static const struct log_name log_facilities[] = {
	{ "auth",	LOG_AUTH },
	{ "authpriv",	LOG_AUTHPRIV },
	{ "daemon",	LOG_DAEMON },
	{ "user",	LOG_USER },
	{ "local0",	LOG_LOCAL0 },
	{ "local1",	LOG_LOCAL1 },
	{ "local2",	LOG_LOCAL2 },
	{ "local3",	LOG_LOCAL3 },
	{ "local4",	LOG_LOCAL4 },
	{ "local5",	LOG_LOCAL5 },
	{ "local6",	LOG_LOCAL6 },
	{ "local7",	LOG_LOCAL7 },
};

static int
log_lookup(const struct log_name *table, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcasecmp(table[i].name, name) == 0)
			return table[i].value;
	return -1;
}

int
log_level_from_name(const char *name)
{
	return log_lookup(log_levels, sizeof(log_levels) / sizeof(log_levels[0]), name);
}

int
log_facility_from_name(const char *name)
{
	return log_lookup(log_facilities,
	    sizeof(log_facilities) / sizeof(log_facilities[0]), name);
}

void
log_init(const char *ident, enum log_target target, int facility)
{
	log_ident = ident;
	log_target = target;
	if (target == LOG_TARGET_SYSLOG)
		openlog(ident, LOG_PID | LOG_NDELAY, facility);
}

void
log_set_callback(log_sink_fn sink, void *ctx)
{
	log_sink = sink;
	log_sink_ctx = ctx;
	log_target = sink != NULL ? LOG_TARGET_CALLBACK : LOG_TARGET_STDERR;
}

void
log_set_level(int max_priority)
{
	log_max = max_priority;
}

/* ---- escaping ---- */

/* Length (2-4) and code point of the valid UTF-8 sequence at p; 0: none. */
static size_t
utf8_seq(const unsigned char *p, uint32_t *cp)
{
	size_t n, i;
	uint32_t v, min;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2; v = p[0] & 0x1f; min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3; v = p[0] & 0x0f; min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4; v = p[0] & 0x07; min = 0x10000;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;	/* also stops at the NUL */
		v = (v << 6) | (p[i] & 0x3f);
	}
	if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
		return 0;
	*cp = v;
	return n;
}

/* Appends one piece; false (and nothing written) when it does not fit. */
static bool
esc_put(char *out, size_t outlen, size_t *o, const char *piece, size_t n)
{
	if (*o + n + 1 > outlen)
		return false;
	memcpy(out + *o, piece, n);
	*o += n;
	return true;
}

/*
 * Escape s into out. full: also backslashes and non-ASCII that could
 * mislead (the helper for peer data); otherwise only control bytes (the
 * sinks' last line of defence, which must not double-escape).
 */
static char *
escape(const char *s, char *out, size_t outlen, bool full)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)s;
	char piece[16];
	size_t o = 0, safe = 0, n, k, i;
	uint32_t cp = 0;
	bool bad;

	if (outlen < 4) {
		if (outlen > 0)
			out[0] = '\0';
		return out;
	}
	while (*p != '\0') {
		n = 1;
		k = 0;
		if (*p == '\\' && full) {
			piece[k++] = '\\';
			piece[k++] = '\\';
		} else if (*p == '\n' || *p == '\r' || *p == '\t') {
			piece[k++] = '\\';
			piece[k++] = *p == '\n' ? 'n' : *p == '\r' ? 'r' : 't';
		} else if (*p < 0x20 || *p == 0x7f) {
			piece[k++] = '\\';
			piece[k++] = 'x';
			piece[k++] = hex[*p >> 4];
			piece[k++] = hex[*p & 15];
		} else if (*p < 0x80 || !full) {
			piece[k++] = (char)*p;
		} else {
			n = utf8_seq(p, &cp);
			bad = n == 0 || (cp >= 0x80 && cp <= 0x9f) ||
			    cp == 0x2028 || cp == 0x2029;
			if (n == 0)
				n = 1;
			for (i = 0; i < n; i++) {
				if (bad) {
					piece[k++] = '\\';
					piece[k++] = 'x';
					piece[k++] = hex[p[i] >> 4];
					piece[k++] = hex[p[i] & 15];
				} else {
					piece[k++] = (char)p[i];
				}
			}
		}
		if (!esc_put(out, outlen, &o, piece, k)) {
			o = safe;
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (o + 4 <= outlen)
			safe = o;
		p += n;
	}
	out[o] = '\0';
	return out;
}

char *
log_escape(const char *s, char *out, size_t outlen)
{
	return escape(s != NULL ? s : "(null)", out, outlen, true);
}

const char *
log_str(const char *s)
{
	static _Thread_local char ring[LOG_STR_SLOTS][LOG_STR_LEN];
	static _Thread_local unsigned int next;

	return log_escape(s, ring[next++ % LOG_STR_SLOTS], LOG_STR_LEN);
}

void
log_vmsg(int priority, const char *fmt, va_list ap)
{
	char raw[1024], buf[1200];
	int saved = errno;

	if (priority > log_max)
		goto done;
	vsnprintf(raw, sizeof(raw), fmt, ap);
	escape(raw, buf, sizeof(buf), false);
	switch (log_target) {
	case LOG_TARGET_SYSLOG:
		syslog(priority, "%s", buf);
		break;
	case LOG_TARGET_CALLBACK:
		if (log_sink != NULL)
			log_sink(log_sink_ctx, priority, buf);
		break;
	case LOG_TARGET_STDERR:
		fprintf(stderr, "%s: %s\n", log_ident, buf);
		break;
	}
done:
	errno = saved;
}

void
log_msg(int priority, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(priority, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 3, 0)))
log_with_errno(int priority, int err, const char *fmt, va_list ap)
{
	char buf[900];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	log_msg(priority, "%s: %s", buf, strerror(err));
}

void
log_warn(const char *fmt, ...)
{
	va_list ap;
	int err = errno;

	va_start(ap, fmt);
	log_with_errno(LOG_WARNING, err, fmt, ap);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_INFO, fmt, ap);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_DEBUG, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;
	int err = errno;

	va_start(ap, fmt);
	log_with_errno(LOG_CRIT, err, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, fmt, ap);
	va_end(ap);
	exit(1);
}

/* ---- a peer's repeated warnings ---- */

struct repeat {
	bool		 used;
	int		 priority;
	uint64_t	 key;
	char		 peer[64];
	char		 msg[512];
	double		 first;		/* start of the window */
	double		 last;		/* last seen, for eviction */
	unsigned long	 count;		/* suppressed in this window */
};

static pthread_mutex_t repeat_lock = PTHREAD_MUTEX_INITIALIZER;
static struct repeat repeats[LOG_REPEAT_SLOTS];

static double
clock_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double (*repeat_clock)(void) = clock_mono;

void
log_set_clock(double (*clock_fn)(void))
{
	pthread_mutex_lock(&repeat_lock);
	repeat_clock = clock_fn != NULL ? clock_fn : clock_mono;
	memset(repeats, 0, sizeof(repeats));
	pthread_mutex_unlock(&repeat_lock);
}

static uint64_t
fnv(uint64_t h, const char *s)
{
	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ull;
	}
	return h * 0x100000001b3ull;
}

/* Called with repeat_lock held. */
static void
repeat_report(struct repeat *r)
{
	if (r->count > 0)
		log_msg(r->priority, "%s (repeated %lu time%s)", r->msg,
		    r->count, r->count == 1 ? "" : "s");
	r->count = 0;
}

static void __attribute__((format(printf, 3, 0)))
log_peer_vmsg(int priority, const char *peer, const char *fmt, va_list ap)
{
	char msg[sizeof(((struct repeat *)0)->msg)], pname[64];
	struct repeat *r = NULL, *victim = NULL;
	uint64_t key;
	double now;
	size_t i;

	if (priority > log_max)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	snprintf(pname, sizeof(pname), "%s", peer != NULL ? peer : "");
	key = fnv(fnv(0xcbf29ce484222325ull, pname), msg);
	pthread_mutex_lock(&repeat_lock);
	now = repeat_clock();
	for (i = 0; i < LOG_REPEAT_SLOTS; i++) {
		if (!repeats[i].used) {
			if (victim == NULL || victim->used)
				victim = &repeats[i];
			continue;
		}
		if (repeats[i].key == key && repeats[i].priority == priority &&
		    strcmp(repeats[i].peer, pname) == 0 &&
		    strcmp(repeats[i].msg, msg) == 0) {
			r = &repeats[i];
			break;
		}
		if (victim == NULL || (victim->used && repeats[i].last <
		    victim->last))
			victim = &repeats[i];
	}
	if (r != NULL) {
		r->last = now;
		if (now - r->first < LOG_REPEAT_WINDOW) {
			r->count++;
			goto done;
		}
		/* The window ended: its count, then this one anew. */
		repeat_report(r);
		r->first = now;
		log_msg(priority, "%s", msg);
		goto done;
	}
	if (victim->used)
		repeat_report(victim);
	memset(victim, 0, sizeof(*victim));
	victim->used = true;
	victim->priority = priority;
	victim->key = key;
	memcpy(victim->peer, pname, sizeof(victim->peer));
	memcpy(victim->msg, msg, sizeof(victim->msg));
	victim->first = victim->last = now;
	log_msg(priority, "%s", msg);
done:
	pthread_mutex_unlock(&repeat_lock);
}

void
log_peer_msg(int priority, const char *peer, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_peer_vmsg(priority, peer, fmt, ap);
	va_end(ap);
}

void
log_peer_warnx(const char *peer, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_peer_vmsg(LOG_WARNING, peer, fmt, ap);
	va_end(ap);
}

void
log_repeats_flush(bool all)
{
	double now;
	size_t i;

	pthread_mutex_lock(&repeat_lock);
	now = repeat_clock();
	for (i = 0; i < LOG_REPEAT_SLOTS; i++) {
		if (!repeats[i].used)
			continue;
		if (all || now - repeats[i].first >= LOG_REPEAT_WINDOW) {
			repeat_report(&repeats[i]);
			repeats[i].used = false;
		}
	}
	pthread_mutex_unlock(&repeat_lock);
}
