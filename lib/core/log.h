/*
 * Logging for every part of psync. The daemon logs to syslog (or stderr in
 * the foreground), the PAM module routes messages through pam_syslog, and
 * tests capture them. Nothing logged here may contain a password: callers
 * pass user names, peers and codes, never secrets.
 */
#ifndef PSYNC_LOG_H
#define PSYNC_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
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

/*
 * Strings from the network (user names, peer names, reasons) go into a log
 * line through log_escape() or log_str(): a backslash becomes "\\", a
 * newline "\n", a carriage return "\r", a tab "\t", every other control
 * byte, C1 control, U+2028/U+2029 and byte of invalid UTF-8 "\xNN"; valid
 * UTF-8 stays as it is. The result is cut (ending in "...") to fit.
 * log_escape() writes into out (outlen >= 4) and returns it. log_str()
 * returns one of LOG_STR_SLOTS thread-local buffers of LOG_STR_LEN bytes,
 * in turn: up to that many may appear in one log call. NULL gives "(null)".
 *
 * Whatever a caller forgets, the sinks never write a control byte either:
 * log_vmsg() escapes any that reach it, so one message is one line.
 */
#define LOG_STR_SLOTS	8
#define LOG_STR_LEN	512
char	*log_escape(const char *s, char *out, size_t outlen);
const char *log_str(const char *s);

/*
 * Warnings about one peer, rate-limited: the first of a kind is logged at
 * once; identical ones from the same peer within LOG_REPEAT_WINDOW seconds
 * are counted, and the count comes out as "MESSAGE (repeated N times)" at
 * the next identical one after the window, at log_repeats_flush(), or when
 * the entry is evicted (LOG_REPEAT_SLOTS kinds are tracked). The message
 * must not hold a secret; peer data in it goes through log_str().
 * log_repeats_flush(false) reports the windows that ended, true all of them
 * (at exit); psyncd calls it now and then, e.g. once a second.
 */
#define LOG_REPEAT_WINDOW	60
#define LOG_REPEAT_SLOTS	64
void	log_peer_msg(int priority, const char *peer, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	log_peer_warnx(const char *peer, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	log_repeats_flush(bool all);
/* Replace the monotonic clock (seconds) of the rate limit; for tests. */
void	log_set_clock(double (*clock_fn)(void));

#endif
