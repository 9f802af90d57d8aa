/*
 * Key files: the 32-byte pre-shared keys of psync peers and the host key
 * that seals secrets at rest. A key file holds 64 hex digits and an
 * optional newline (what psyncctl keygen writes), or exactly 32 raw bytes;
 * it must be a private, root-owned file. Kept apart from the TLS code so
 * that pam_psync, which only seals, does not load libssl.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "codes.h"
#include "keyfile.h"
#include "util.h"

int
keyfile_read(const char *path, unsigned char key[WIRE_KEY_LEN],
    struct psync_err *err)
{
	unsigned char buf[2 * WIRE_KEY_LEN + 2];
	size_t len = 0, i;
	ssize_t n;
	int fd, rc = -1;

	fd = file_open_trusted(path, true, err);
	if (fd == -1)
		goto done;
	/* Read one byte more than any valid file, to notice a longer one. */
	while (len < sizeof(buf)) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			perr_set(err, PSYNC_E_OPEN, "%s: cannot read key file: %s",
			    path, strerror(errno));
			goto done;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len == WIRE_KEY_LEN) {
		memcpy(key, buf, WIRE_KEY_LEN);
		rc = 0;
		goto done;
	}
	if (len == 2 * WIRE_KEY_LEN ||
	    (len == 2 * WIRE_KEY_LEN + 1 && buf[2 * WIRE_KEY_LEN] == '\n')) {
		for (i = 0; i < WIRE_KEY_LEN; i++) {
			int hi = hex_digit(buf[2 * i]), lo = hex_digit(buf[2 * i + 1]);

			if (hi < 0 || lo < 0) {
				perr_set(err, PSYNC_E_DECRYPT, "%s: key file: "
				    "character %zu is not a hex digit", path,
				    hi < 0 ? 2 * i + 1 : 2 * i + 2);
				secure_wipe(key, WIRE_KEY_LEN);
				goto done;
			}
			key[i] = (unsigned char)(hi << 4 | lo);
		}
		rc = 0;
		goto done;
	}
	perr_set(err, PSYNC_E_DECRYPT, "%s: key file holds %s%zu bytes; it "
	    "must hold 64 hex digits (and an optional newline) or 32 raw "
	    "bytes", path, len == sizeof(buf) ? "more than " : "",
	    len == sizeof(buf) ? len - 1 : len);
done:
	secure_wipe(buf, sizeof(buf));
	if (fd != -1)
		close(fd);
	return rc;
}

int
keyfile_write(const char *path, const unsigned char key[WIRE_KEY_LEN],
    bool replace, struct psync_err *err)
{
	static const char digits[] = "0123456789abcdef";
	char text[2 * WIRE_KEY_LEN + 1], tmp[PATH_MAX];
	size_t i, off = 0;
	ssize_t n;
	int fd = -1, rc = -1;

	for (i = 0; i < WIRE_KEY_LEN; i++) {
		text[2 * i] = digits[key[i] >> 4];
		text[2 * i + 1] = digits[key[i] & 0x0f];
	}
	text[2 * WIRE_KEY_LEN] = '\n';
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp)) {
		perr_set(err, PSYNC_E_WRITE, "%s: path too long", path);
		goto done;
	}
	/* mkstemp creates with O_EXCL and mode 0600. */
	fd = mkstemp(tmp);
	if (fd == -1 || fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: cannot create a temporary "
		    "key file: %s", path, strerror(errno));
		goto done;
	}
	if (fchmod(fd, S_IRUSR | S_IWUSR) == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: cannot set mode 0600: %s",
		    tmp, strerror(errno));
		goto done;
	}
	while (off < sizeof(text)) {
		n = write(fd, text + off, sizeof(text) - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			perr_set(err, PSYNC_E_WRITE, "%s: cannot write key: %s",
			    tmp, strerror(errno));
			goto done;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: cannot sync key: %s", tmp,
		    strerror(errno));
		goto done;
	}
	if (replace) {
		if (rename(tmp, path) == -1) {
			perr_set(err, PSYNC_E_WRITE, "%s: cannot install key "
			    "file: %s", path, strerror(errno));
			goto done;
		}
	} else {
		/* link() fails if path exists: no window where it is replaced. */
		if (link(tmp, path) == -1) {
			perr_set(err, PSYNC_E_WRITE, "%s: cannot create key "
			    "file: %s", path, errno == EEXIST ?
			    "it already exists" : strerror(errno));
			goto done;
		}
		unlink(tmp);
	}
	tmp[0] = '\0';
	if (dir_fsync_of(path, err) == -1)
		goto done;
	rc = 0;
done:
	secure_wipe(text, sizeof(text));
	if (fd != -1)
		close(fd);
	if (tmp[0] != '\0' && fd != -1)
		unlink(tmp);
	return rc;
}

int
keyfile_generate(unsigned char key[WIRE_KEY_LEN], struct psync_err *err)
{
	char buf[256];

	if (RAND_priv_bytes(key, WIRE_KEY_LEN) != 1) {
		ERR_error_string_n(ERR_get_error(), buf, sizeof(buf));
		perr_set(err, PSYNC_E_WRITE, "cannot generate a key: %s", buf);
		return -1;
	}
	return 0;
}

