/* Shared helpers: error records, secret wiping, trusted files, UTF-8. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "codes.h"
#include "util.h"

void
perr_set(struct psync_err *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL)
		return;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

void
perr_clear(struct psync_err *err)
{
	if (err == NULL)
		return;
	err->code = PSYNC_OK;
	err->msg[0] = '\0';
}

void
secure_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		explicit_bzero(p, len);
}

void
secure_free_str(char *s)
{
	if (s == NULL)
		return;
	secure_wipe(s, strlen(s));
	free(s);
}

int
file_check_trusted(int fd, const char *path, bool private, struct psync_err *err)
{
	struct stat st;
	uid_t owner_ok = geteuid();

	if (fstat(fd, &st) == -1) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot stat: %s", path,
		    strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		perr_set(err, PSYNC_E_OPEN, "%s: not a regular file", path);
		return -1;
	}
	/* Root-owned in production; a test running unprivileged owns its files. */
	if (st.st_uid != 0 && st.st_uid != owner_ok) {
		perr_set(err, PSYNC_E_OPEN,
		    "%s: refused: owned by uid %u, must be owned by root",
		    path, (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		perr_set(err, PSYNC_E_OPEN,
		    "%s: refused: group- or world-writable (mode %04o); "
		    "run chmod go-w on it", path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	if (private && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		perr_set(err, PSYNC_E_OPEN,
		    "%s: refused: key file readable by group or others "
		    "(mode %04o); run chmod 600 on it", path,
		    (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

int
file_open_trusted(const char *path, bool private, struct psync_err *err)
{
	int fd;

	/* Non-blocking: a FIFO planted where a file is expected must not
	   block the caller in open(); the checks below then refuse it. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK);
	if (fd == -1) {
		perr_set(err, errno == ENOENT ? PSYNC_E_FILE_NOT_FOUND : PSYNC_E_OPEN,
		    "%s: cannot open: %s", path, strerror(errno));
		return -1;
	}
	if (file_check_trusted(fd, path, private, err) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

long
utf8_length(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	long n = 0;

	while (*p != '\0') {
		unsigned int c = *p, cp;
		int extra, i;

		if (c < 0x80) {
			p++;
			n++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			extra = 1;
			cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			extra = 2;
			cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			extra = 3;
			cp = c & 0x07;
		} else {
			return -1;
		}
		for (i = 1; i <= extra; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return -1;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((extra == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (extra == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return -1;
		p += extra + 1;
		n++;
	}
	return n;
}

void
hex_encode(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int
hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t
str_copy(char *dst, const char *src, size_t dstlen)
{
	size_t len = strlen(src);

	if (dstlen > 0) {
		size_t n = len < dstlen - 1 ? len : dstlen - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

/* A directory others could write would let them swap our database. */
int
state_dir_prepare(const char *dir, const char *what, struct psync_err *err)
{
	struct stat st;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		perr_set(err, PSYNC_E_OPEN, "%s directory %s: cannot create: "
		    "%s", what, dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) == -1) {
		perr_set(err, PSYNC_E_OPEN, "%s directory %s: %s", what, dir,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		perr_set(err, PSYNC_E_OPEN, "%s directory %s: not a "
		    "directory", what, dir);
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		perr_set(err, PSYNC_E_OPEN, "%s directory %s: refused: owned "
		    "by uid %u, must be owned by root", what, dir,
		    (unsigned)st.st_uid);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		perr_set(err, PSYNC_E_OPEN, "%s directory %s: refused: group- "
		    "or world-writable (mode %04o); run chmod go-w on it", what,
		    dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/*
 * Create the database file 0600 ourselves (SQLite would honour the umask),
 * and refuse one, or a leftover journal, that others can write.
 */
int
state_db_prepare(const char *path, const char *what, struct psync_err *err)
{
	static const char *const suffixes[] = { "-wal", "-shm" };
	char side[PATH_MAX];
	size_t i;
	int fd, rc;

	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY,
	    0600);
	if (fd == -1) {
		perr_set(err, PSYNC_E_OPEN, "%s %s: cannot open: %s", what, path,
		    strerror(errno));
		return -1;
	}
	rc = file_check_trusted(fd, path, false, err);
	close(fd);
	if (rc == -1)
		return -1;
	for (i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if ((size_t)snprintf(side, sizeof(side), "%s%s", path,
		    suffixes[i]) >= sizeof(side)) {
			perr_set(err, PSYNC_E_OPEN, "%s %s: path too long",
			    what, path);
			return -1;
		}
		fd = open(side, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
		if (fd == -1) {
			if (errno == ENOENT)
				continue;
			perr_set(err, PSYNC_E_OPEN, "%s %s: cannot open: %s",
			    what, side, strerror(errno));
			return -1;
		}
		rc = file_check_trusted(fd, side, false, err);
		close(fd);
		if (rc == -1)
			return -1;
	}
	return 0;
}

uint64_t
clock_wall_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int64_t
clock_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
dir_fsync(const char *dir, struct psync_err *err)
{
	int fd, rc = -1;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1 || fsync(fd) == -1)
		perr_set(err, PSYNC_E_WRITE, "cannot sync directory %s: %s",
		    dir, strerror(errno));
	else
		rc = 0;
	if (fd != -1)
		close(fd);
	return rc;
}

int
dir_fsync_of(const char *path, struct psync_err *err)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	if (slash == NULL)
		str_copy(dir, ".", sizeof(dir));
	else if (slash == path)
		str_copy(dir, "/", sizeof(dir));
	else if ((size_t)(slash - path) < sizeof(dir)) {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	} else {
		perr_set(err, PSYNC_E_WRITE, "%s: path too long", path);
		return -1;
	}
	return dir_fsync(dir, err);
}
