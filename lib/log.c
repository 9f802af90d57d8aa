/*
 * Logging back-end: one formatting path, three sinks (stderr, syslog, a
 * callback for the PAM module and the tests).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

void
log_vmsg(int priority, const char *fmt, va_list ap)
{
	char buf[1024];
	int saved = errno;

	if (priority > log_max)
		goto done;
	vsnprintf(buf, sizeof(buf), fmt, ap);
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

static void log_with_errno(int, int, const char *, va_list)
    __attribute__((format(printf, 3, 0)));

static void
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
