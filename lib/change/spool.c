/* The incoming spool of sealed changes: write, list, read. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "codes.h"
#include "spool.h"

#define SPOOL_MAGIC	"PSYNCSP1"
#define SPOOL_MAGIC_LEN	8
#define SPOOL_AAD	"psync spool change v1"
#define SPOOL_FILE_MAX	(SPOOL_MAGIC_LEN + FRAME_BUF_MAX + SEAL_OVERHEAD)

int
spool_prepare(const char *dir, struct psync_err *err)
{
	struct stat st;

	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		perr_set(err, PSYNC_E_OPEN, "spool %s: cannot create: %s", dir,
		    strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) == -1) {
		perr_set(err, PSYNC_E_OPEN, "spool %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		perr_set(err, PSYNC_E_OPEN, "spool %s: not a directory", dir);
		return -1;
	}
	if ((st.st_uid != 0 && st.st_uid != geteuid()) ||
	    (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		perr_set(err, PSYNC_E_OPEN, "spool %s: refused: must be owned by "
		    "root and writable by nobody else (mode %04o, uid %u)", dir,
		    (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
		return -1;
	}
	return 0;
}

int
spool_name_valid(const char *name)
{
	size_t i;

	if (strlen(name) != SPOOL_NAME_LEN || name[16] != '-' ||
	    strcmp(name + 49, ".chg") != 0)
		return 0;
	for (i = 0; i < 16; i++)
		if (!isdigit((unsigned char)name[i]))
			return 0;
	for (i = 17; i < 49; i++)
		if (!isxdigit((unsigned char)name[i]) || isupper((unsigned char)name[i]))
			return 0;
	return 1;
}

static int
write_all(int fd, const unsigned char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
spool_write(const char *dir, const unsigned char key[SEAL_KEY_LEN],
    const struct frame *change, char *name, struct psync_err *err)
{
	unsigned char *plain = NULL, *file = NULL;
	char idhex[2 * FRAME_ID_LEN + 1], tmp[PATH_MAX], final[PATH_MAX];
	long plen, slen;
	int fd = -1, rc = -1;
	bool leftover = false;	/* a temporary file to remove on failure */

	if (change->type != FRAME_CHANGE) {
		perr_set(err, PSYNC_E_PROTOCOL, "spool: only CHANGE frames go "
		    "into the spool");
		return -1;
	}
	plain = malloc(FRAME_BUF_MAX);
	file = malloc(SPOOL_FILE_MAX);
	if (plain == NULL || file == NULL) {
		perr_set(err, PSYNC_E_WRITE, "spool: out of memory");
		goto done;
	}
	plen = frame_encode(change, plain, FRAME_BUF_MAX, err);
	if (plen < 0)
		goto done;
	memcpy(file, SPOOL_MAGIC, SPOOL_MAGIC_LEN);
	slen = seal(key, SPOOL_AAD, plain, (size_t)plen, file + SPOOL_MAGIC_LEN, err);
	if (slen < 0)
		goto done;
	hex_encode(change->u.change.id, FRAME_ID_LEN, idhex);
	snprintf(name, SPOOL_NAME_LEN + 1, "%016llu-%s.chg",
	    (unsigned long long)change->u.change.time_ms, idhex);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(final, sizeof(final), "%s/%s", dir, name);

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1) {
		perr_set(err, PSYNC_E_OPEN, "spool: cannot create %s: %s", tmp,
		    strerror(errno));
		goto done;
	}
	leftover = true;
	if (write_all(fd, file, SPOOL_MAGIC_LEN + (size_t)slen) == -1 ||
	    fsync(fd) == -1) {
		perr_set(err, PSYNC_E_WRITE, "spool: cannot write %s: %s", tmp,
		    strerror(errno));
		goto done;
	}
	if (close(fd) == -1) {
		fd = -1;
		perr_set(err, PSYNC_E_WRITE, "spool: cannot write %s: %s", tmp,
		    strerror(errno));
		goto done;
	}
	fd = -1;
	if (rename(tmp, final) == -1) {
		perr_set(err, PSYNC_E_WRITE, "spool: cannot rename %s: %s", tmp,
		    strerror(errno));
		goto done;
	}
	leftover = false;
	if (dir_fsync(dir, err) == -1)
		goto done;
	rc = 0;
done:
	if (fd != -1)
		close(fd);
	if (leftover)
		(void)unlink(tmp);
	if (plain != NULL)
		secure_wipe(plain, FRAME_BUF_MAX);
	free(plain);
	if (file != NULL)
		secure_wipe(file, SPOOL_FILE_MAX);
	free(file);
	return rc;
}

int
spool_read(const char *dir, const char *name, const unsigned char key[SEAL_KEY_LEN],
    struct frame *f, struct psync_err *err)
{
	unsigned char *file = NULL, *plain = NULL;
	char path[PATH_MAX];
	size_t len = 0;
	long plen;
	ssize_t n;
	int fd = -1, rc = -1;

	frame_wipe(f);
	if (!spool_name_valid(name)) {
		perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "spool: '%s' is not a "
		    "spool file name", name);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = file_open_trusted(path, true, err);
	if (fd == -1)
		goto done;
	file = malloc(SPOOL_FILE_MAX + 1);
	plain = malloc(SPOOL_FILE_MAX);
	if (file == NULL || plain == NULL) {
		perr_set(err, PSYNC_E_OPEN, "spool: out of memory");
		goto done;
	}
	while (len <= SPOOL_FILE_MAX &&
	    (n = read(fd, file + len, SPOOL_FILE_MAX + 1 - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			perr_set(err, PSYNC_E_OPEN, "spool: cannot read %s: %s",
			    path, strerror(errno));
			goto done;
		}
		len += (size_t)n;
	}
	if (len > SPOOL_FILE_MAX || len < SPOOL_MAGIC_LEN ||
	    memcmp(file, SPOOL_MAGIC, SPOOL_MAGIC_LEN) != 0) {
		perr_set(err, PSYNC_E_DECRYPT, "spool: %s is not a psync spool "
		    "file", path);
		goto done;
	}
	plen = unseal(key, SPOOL_AAD, file + SPOOL_MAGIC_LEN,
	    len - SPOOL_MAGIC_LEN, plain, err);
	if (plen < 0) {
		char why[PSYNC_ERR_LEN];

		str_copy(why, err->msg, sizeof(why));
		perr_set(err, PSYNC_E_DECRYPT, "spool: %s: %s", path, why);
		goto done;
	}
	if (frame_decode(plain, (size_t)plen, f, err) != plen ||
	    f->type != FRAME_CHANGE) {
		frame_wipe(f);
		perr_set(err, PSYNC_E_DECRYPT, "spool: %s does not hold one "
		    "CHANGE", path);
		goto done;
	}
	rc = 0;
done:
	if (fd != -1)
		close(fd);
	if (file != NULL)
		secure_wipe(file, SPOOL_FILE_MAX + 1);
	free(file);
	if (plain != NULL)
		secure_wipe(plain, SPOOL_FILE_MAX);
	free(plain);
	return rc;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void
spool_list_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
}

int
spool_list(const char *dir, char ***names, size_t *n, struct psync_err *err)
{
	DIR *d;
	struct dirent *de;
	char **v = NULL, **nv;
	size_t count = 0;

	*names = NULL;
	*n = 0;
	d = opendir(dir);
	if (d == NULL) {
		perr_set(err, PSYNC_E_OPEN, "spool %s: %s", dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		if (!spool_name_valid(de->d_name))
			continue;
		nv = realloc(v, (count + 1) * sizeof(*v));
		if (nv == NULL)
			goto oom;
		v = nv;
		v[count] = strdup(de->d_name);
		if (v[count] == NULL)
			goto oom;
		count++;
	}
	closedir(d);
	if (count > 0)
		qsort(v, count, sizeof(*v), cmp_names);
	*names = v;
	*n = count;
	return 0;
oom:
	closedir(d);
	spool_list_free(v, count);
	perr_set(err, PSYNC_E_OPEN, "spool %s: out of memory", dir);
	return -1;
}

int
spool_submit(const char *dir, const unsigned char key[SEAL_KEY_LEN],
    const char *node, const char *user, int kind, const char *secret,
    char *name, struct psync_err *err)
{
	uint8_t id[FRAME_ID_LEN];
	struct frame f;
	int rc = -1;

	memset(&f, 0, sizeof(f));
	if (spool_prepare(dir, err) == -1)
		goto done;
	if (RAND_bytes(id, sizeof(id)) != 1) {
		perr_set(err, PSYNC_E_UPDATE_FAILED, "no random bytes for the "
		    "change id");
		goto done;
	}
	if (frame_set_change(&f, id, node, clock_wall_ms(), user,
	    (enum change_secret_kind)kind, secret, strlen(secret), err) == -1)
		goto done;
	rc = spool_write(dir, key, &f, name, err);
done:
	frame_wipe(&f);
	return rc;
}
