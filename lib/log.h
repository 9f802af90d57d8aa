/*
 * Logging for every part of psync. The daemon logs to syslog (or stderr in
 * the foreground), the PAM module routes messages through pam_syslog, and
 * tests capture them. Nothing logged here may contain a password: callers
 * pass user names, peers and codes, never secrets.
 */
#ifndef PSYNC_LOG_H
#define PSYNC_LOG_H

#include <stdarg.h>
#include <syslog.h>

enum log_target {
	LOG_TARGET_STDERR,
	LOG_TARGET_SYSLOG,
	LOG_TARGET_CALLBACK,
};

typedef void (*log_sink_fn)(void *ctx, int priority, const char *message);

void	log_init(const char *ident, enum log_target target, int facility);
void	log_set_callback(log_sink_fn sink, void *ctx);
void	log_set_level(int max_priority);
int	log_level_from_name(const char *name);
int	log_facility_from_name(const char *name);

void	log_vmsg(int priority, const char *fmt, va_list ap)
	    __attribute__((format(printf, 2, 0)));
void	log_msg(int priority, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* log_warn appends strerror(errno); log_warnx does not. */
void	log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
