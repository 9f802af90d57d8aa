/*
 * Small helpers shared by every part: error records, wiping secrets,
 * checking that a file holding keys or configuration is safe to trust,
 * UTF-8 lengths.
 */
#ifndef PSYNC_UTIL_H
#define PSYNC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PSYNC_ERR_LEN	512

/* What went wrong, as a result code and a sentence for a person. */
struct psync_err {
	int	code;
	char	msg[PSYNC_ERR_LEN];
};

void	perr_set(struct psync_err *err, int code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	perr_clear(struct psync_err *err);

/* Wipe memory that held a secret; never optimised away. */
void	secure_wipe(void *p, size_t len);
/* Wipe and free a NUL-terminated secret; NULL is fine. */
void	secure_free_str(char *s);

/*
 * Refuse a file that someone other than root could have written: it must be
 * a regular file owned by root (or by the euid when running as a non-root
 * test) and not group- or world-writable. With private, also not readable by
 * group or others (key files). On failure fills err and returns -1.
 */
int	file_check_trusted(int fd, const char *path, bool private,
	    struct psync_err *err);
/* Open a file for reading without following a final symlink, then check it. */
int	file_open_trusted(const char *path, bool private, struct psync_err *err);

/*
 * State kept under a directory such as the queue directory. what names
 * the state in messages ("queue"). state_dir_prepare() creates dir 0700
 * when missing and refuses one that is not root's or that others can
 * write; state_db_prepare() creates the database file 0600 (SQLite would
 * honour the umask) and refuses it, or a leftover -wal/-shm file, when
 * others could write it.
 */
int	state_dir_prepare(const char *dir, const char *what,
	    struct psync_err *err);
int	state_db_prepare(const char *path, const char *what,
	    struct psync_err *err);

/*
 * Number of characters in a UTF-8 string, or -1 when it is not valid UTF-8
 * (overlong forms, surrogates and truncated sequences are invalid).
 */
long	utf8_length(const char *s);

/* Lower-case hex of n bytes into out (2n + 1 bytes, NUL-terminated). */
void	hex_encode(const unsigned char *in, size_t n, char *out);
/* The value of one hex digit (either case), or -1. */
int	hex_digit(int c);

/* Copy at most dstlen-1 bytes and NUL-terminate; returns strlen(src). */
size_t	str_copy(char *dst, const char *src, size_t dstlen);

/*
 * The one clock, in milliseconds: wall time is what changes are stamped
 * and stored with; monotonic time is for deadlines and durations.
 */
uint64_t clock_wall_ms(void);
int64_t	clock_mono_ms(void);

/*
 * Make a rename or a new file in dir durable: fsync the directory (or the
 * directory of path). -1 with err (PSYNC_E_WRITE) naming it.
 */
int	dir_fsync(const char *dir, struct psync_err *err);
int	dir_fsync_of(const char *path, struct psync_err *err);

#endif
