/*
 * The files back-end: a batch of password changes into the shadow file (or
 * passwd, when the host keeps hashes there) with one rewrite.
 *
 * The expensive part, hashing, runs before the lock on every core, against
 * a snapshot of the file read without the lock, so that passwd and
 * pam_unix are never kept waiting behind a big batch. Under the lock the
 * file is read again; a user whose entry changed since the snapshot is
 * checked and hashed again there. The new file is written beside the old
 * one, with its owner, mode and SELinux label, synced and renamed over it;
 * the old file stays as "FILE-", as shadow-utils keeps it. Every byte of
 * every line the batch does not change is copied as it was.
 *
 * psync never unlocks an account: the lock markers at the start of a stored
 * field ("!", "*LK*", "*") stay in front of the new hash, and a field that
 * holds no usable hash and no marker (empty, "x") gets a "!".
 *
 * A new password is verified against the stored hash first ("unchanged")
 * only when the caller says an echo is plausible (check_unchanged): the
 * verify is one run of the slow hash, as costly as hashing the new
 * password, and for a real change it never matches. Nothing derived from a
 * password is kept anywhere but in the file itself.
 *
 * Locking. glibc's lckpwdf() takes a whole-file fcntl write lock on
 * /etc/.pwd.lock (waiting up to 15 s, with SIGALRM); pam_unix and
 * shadow-utils both call it (shadow-utils additionally creates
 * "FILE.lock" by link(2), holding its pid). psync takes the same fcntl
 * lock itself, on ".pwd.lock" in the directory of the file: for
 * /etc/shadow that is exactly lckpwdf's lock, so psync, passwd, chpasswd
 * and useradd exclude each other, and for a file elsewhere (tests, a
 * chroot) it is the equivalent lock beside it. Taking it directly gives a
 * bounded wait (lock_timeout) without an alarm signal in a threaded
 * daemon. psync does not create "FILE.lock": shadow-utils treats such a
 * file without a live pid in it as a lock held by someone, so a lock file
 * of that name kept by psync would block useradd and vipw.
 */
#include "config.h"

#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_SELINUX
#include <selinux/selinux.h>
#endif

#include "codes.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "util.h"

#define LOCK_NAME	".pwd.lock"
#define TEMP_TAG	".psync-"	/* temp files: ".<base>.psync-XXXXXX" */
#define FILE_MAX	(256L * 1024 * 1024)
#define LOCK_POLL_NS	(20 * 1000 * 1000)

/* Serialises batches of one process: fcntl locks do not exclude threads. */
pthread_mutex_t store_process_lock = PTHREAD_MUTEX_INITIALIZER;

/* One change the batch will act on (the last one for its user). */
struct fchange {
	size_t		 idx;		/* into changes[] and results[] */
	const char	*user;
	enum store_secret_kind kind;
	const char	*secret;
	/* Before the lock, from the snapshot. */
	char		*snap_hash;	/* without a lock prefix; NULL: none */
	bool		 matched;	/* the password verifies against it */
	char		 newhash[CRYPT_OUTPUT_SIZE];
	struct psync_err herr;		/* hashing failed: why */
	bool		 check;		/* verify first: an echo is plausible */
	unsigned int	 nverified;	/* verifies run */
	/* Under the lock. */
	int		 seen;		/* lines found for this user */
	bool		 malformed;
	struct store_line line;
	size_t		 lockpfx;	/* lock markers of the stored hash */
	bool		 addlock;	/* no usable hash, no marker: add "!" */
	bool		 write;
};

struct ffile {
	char		*buf;
	size_t		 len;
	struct stat	 st;
	int		 fd;
};

struct fctx {
	const struct store_conf		*conf;
	struct store_hash_params	 params;
	struct hash_limits		 lim;	/* of hash costs */
	const char			*path;
	char				 dir[PATH_MAX];
	char				 base[NAME_MAX + 1];
	bool				 shadow;
	struct fchange			*fc;
	size_t				 nfc;
};

static int
fc_cmp_user(const void *a, const void *b)
{
	const struct fchange *x = a, *y = b;
	int c = strcmp(x->user, y->user);

	if (c != 0)
		return c;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The change for the user named by the first len bytes of name, if any. */
static struct fchange *
fc_find(struct fctx *fx, const char *name, size_t len)
{
	size_t lo = 0, hi = fx->nfc, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strncmp(fx->fc[mid].user, name, len);
		if (c == 0 && fx->fc[mid].user[len] != '\0')
			c = 1;
		if (c == 0)
			return &fx->fc[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static void
ffile_close(struct ffile *f)
{
	free(f->buf);
	f->buf = NULL;
	if (f->fd != -1)
		close(f->fd);
	f->fd = -1;
}

static int
ffile_read(const char *path, struct ffile *f, struct psync_err *err)
{
	size_t cap;
	ssize_t r;
	char *nb;
	int rc = -1;

	f->buf = NULL;
	f->len = 0;
	f->fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (f->fd == -1) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot open: %s", path,
		    strerror(errno));
		goto done;
	}
	if (fstat(f->fd, &f->st) == -1) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot stat: %s", path,
		    strerror(errno));
		goto done;
	}
	if (!S_ISREG(f->st.st_mode)) {
		perr_set(err, PSYNC_E_OPEN, "%s: not a regular file", path);
		goto done;
	}
	if (f->st.st_size > FILE_MAX) {
		perr_set(err, PSYNC_E_OPEN, "%s: larger than %ld bytes", path,
		    FILE_MAX);
		goto done;
	}
	cap = (size_t)f->st.st_size + 1;
	f->buf = malloc(cap);
	if (f->buf == NULL) {
		perr_set(err, PSYNC_E_OPEN, "%s: out of memory", path);
		goto done;
	}
	for (;;) {
		if (f->len == cap) {
			if (cap > (size_t)FILE_MAX) {
				perr_set(err, PSYNC_E_OPEN,
				    "%s: larger than %ld bytes", path, FILE_MAX);
				goto done;
			}
			nb = realloc(f->buf, cap * 2);
			if (nb == NULL) {
				perr_set(err, PSYNC_E_OPEN, "%s: out of memory",
				    path);
				goto done;
			}
			f->buf = nb;
			cap *= 2;
		}
		r = read(f->fd, f->buf + f->len, cap - f->len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			perr_set(err, PSYNC_E_OPEN, "%s: read error: %s", path,
			    strerror(errno));
			goto done;
		}
		if (r == 0)
			break;
		f->len += (size_t)r;
	}
	rc = 0;
done:
	if (rc == -1)
		ffile_close(f);
	return rc;
}

/* Calls fn for every line (without its newline). */
static void
each_line(const char *buf, size_t len,
    void (*fn)(struct fctx *, const char *, size_t), struct fctx *fx)
{
	const char *p = buf, *end = buf + len, *eol;

	while (p < end) {
		eol = memchr(p, '\n', (size_t)(end - p));
		fn(fx, p, eol != NULL ? (size_t)(eol - p) : (size_t)(end - p));
		p = eol != NULL ? eol + 1 : end;
	}
}

/*
 * The lock markers at the start of a stored hash field, which a new hash
 * keeps in front of it: any run of "!" (passwd -l, usermod -L), then
 * "*LK*" (the Solaris lock) or a "*" (no password: "*" alone is a field of
 * just the marker).
 */
static size_t
lock_prefix(const char *hash, size_t len)
{
	size_t n = 0;

	while (n < len && hash[n] == '!')
		n++;
	if (len - n >= 4 && memcmp(hash + n, "*LK*", 4) == 0)
		n += 4;
	else if (n < len && hash[n] == '*')
		n++;
	return n;
}

/*
 * A field without a marker that holds no usable hash either (empty, "x",
 * "NP"): no password logs in, as lib/config/account.c judges it. A new hash there
 * would make one usable, so it gets a "!" in front. In a passwd file that
 * keeps the hashes, "x" is only the usual placeholder and is replaced.
 */
static bool
needs_lock(const char *hash, size_t len, size_t lockpfx, bool shadow)
{
	if (!shadow && len == 1 && hash[0] == 'x')
		return false;
	return lockpfx == 0 && (len == 0 || (hash[0] != '$' && len < 13));
}

static void
snap_line(struct fctx *fx, const char *line, size_t len)
{
	struct store_line pl;
	struct fchange *c;
	size_t pfx;

	c = fc_find(fx, line, store_line_name(line, len));
	if (c == NULL || c->snap_hash != NULL)
		return;
	if (store_line_parse(line, len, fx->shadow, &pl) == -1)
		return;
	pfx = lock_prefix(pl.hash, pl.hash_len);
	/* Out of memory only costs a second hashing under the lock. */
	c->snap_hash = strndup(pl.hash + pfx, pl.hash_len - pfx);
}

static void
locked_line(struct fctx *fx, const char *line, size_t len)
{
	struct fchange *c;

	c = fc_find(fx, line, store_line_name(line, len));
	if (c == NULL)
		return;
	if (c->seen++ > 0)
		return;
	if (store_line_parse(line, len, fx->shadow, &c->line) == -1) {
		c->malformed = true;
		return;
	}
	c->lockpfx = lock_prefix(c->line.hash, c->line.hash_len);
	c->addlock = needs_lock(c->line.hash, c->line.hash_len, c->lockpfx,
	    fx->shadow);
}

unsigned long store_stat_verified;

/*
 * Hash the new password; when the caller asked, verify it against the
 * stored hash first and hash only when it does not match.
 */
static void
fc_hash(struct fctx *fx, struct fchange *c, const char *stored,
    struct crypt_data *cd)
{
	struct psync_err e;

	c->matched = false;
	c->newhash[0] = '\0';
	perr_clear(&c->herr);
	/*
	 * Never run crypt on a stored hash costlier than the limits (one a
	 * peer sent before they existed): it cannot be verified, so the
	 * password is taken as new.
	 */
	if (stored != NULL && c->check &&
	    store_hash_cost_check(stored, &fx->lim, &e) == 0) {
		c->nverified++;
		if (store_hash_verify_cd(c->secret, stored, cd)) {
			c->matched = true;
			return;
		}
	}
	(void)store_hash_one(&fx->params, c->secret, cd, c->newhash,
	    sizeof(c->newhash), &c->herr);
}

static void
hash_job(void *ctx, size_t i, struct crypt_data *cd)
{
	struct fctx *fx = ctx;
	struct fchange *c = &fx->fc[i];

	/* A user missing from the snapshot is hashed under the lock, if at all. */
	if (c->kind == STORE_SECRET_CLEARTEXT && c->snap_hash != NULL)
		fc_hash(fx, c, c->snap_hash, cd);
}

static double
now_mono(void)
{
	int64_t ms = clock_mono_ms();

	return (double)ms / 1e3;
}

static void
nap(void)
{
	struct timespec ts = { 0, LOCK_POLL_NS };

	nanosleep(&ts, NULL);
}

/* Returns the lock file's descriptor, or -1 with err (code 2 or 3). */
static int
lock_take(struct fctx *fx, struct psync_err *err)
{
	struct flock fl;
	char path[PATH_MAX];
	double deadline = now_mono() + fx->conf->lock_timeout;
	bool have_mutex = false;
	int fd = -1;

	while (pthread_mutex_trylock(&store_process_lock) != 0) {
		if (now_mono() >= deadline) {
			perr_set(err, PSYNC_E_LOCK, "%s: another batch of this "
			    "process holds the lock", fx->path);
			goto fail;
		}
		nap();
	}
	have_mutex = true;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", fx->dir,
	    LOCK_NAME) >= sizeof(path)) {
		perr_set(err, PSYNC_E_OPEN, "%s: lock path too long", fx->dir);
		goto fail;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY,
	    0600);
	if (fd == -1) {
		perr_set(err, PSYNC_E_OPEN, "%s: cannot open lock file: %s",
		    path, strerror(errno));
		goto fail;
	}
	for (;;) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return fd;
		if (errno != EAGAIN && errno != EACCES && errno != EINTR) {
			perr_set(err, PSYNC_E_LOCK, "%s: cannot lock: %s", path,
			    strerror(errno));
			goto fail;
		}
		if (now_mono() >= deadline) {
			memset(&fl, 0, sizeof(fl));
			fl.l_type = F_WRLCK;
			fl.l_whence = SEEK_SET;
			if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK)
				perr_set(err, PSYNC_E_LOCK, "%s: busy: locked "
				    "by pid %ld for more than %u s", path,
				    (long)fl.l_pid, fx->conf->lock_timeout);
			else
				perr_set(err, PSYNC_E_LOCK, "%s: busy for more "
				    "than %u s", path, fx->conf->lock_timeout);
			goto fail;
		}
		nap();
	}
fail:
	if (fd != -1)
		close(fd);
	if (have_mutex)
		pthread_mutex_unlock(&store_process_lock);
	return -1;
}

static void
lock_release(int fd)
{
	/* Closing the descriptor drops the fcntl lock. */
	close(fd);
	pthread_mutex_unlock(&store_process_lock);
}

/* Temp files left by a writer that died; only called under the lock. */
static void
remove_stale(struct fctx *fx)
{
	struct dirent *de;
	char prefix[NAME_MAX + 16];
	size_t plen;
	DIR *d;

	plen = (size_t)snprintf(prefix, sizeof(prefix), ".%s%s", fx->base,
	    TEMP_TAG);
	d = opendir(fx->dir);
	if (d == NULL) {
		log_warn("store: %s: cannot list for stale temp files", fx->dir);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) != 0 ||
		    strlen(de->d_name) != plen + 6)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == -1)
			log_warn("store: %s/%s: cannot remove stale temp file",
			    fx->dir, de->d_name);
		else
			log_info("store: removed stale temp file %s/%s left by "
			    "an interrupted write", fx->dir, de->d_name);
	}
	closedir(d);
}

static int
copy_label(int from, int to, const char *path, struct psync_err *err)
{
#ifdef HAVE_SELINUX
	char *con = NULL;
	int rc = -1;

	if (is_selinux_enabled() <= 0)
		return 0;
	if (fgetfilecon(from, &con) < 0) {
		if (errno == ENOTSUP || errno == ENODATA)
			return 0;
		perr_set(err, PSYNC_E_WRITE, "%s: cannot read SELinux label: %s",
		    path, strerror(errno));
		return -1;
	}
	if (fsetfilecon(to, con) < 0) {
		perr_set(err, PSYNC_E_WRITE, "%s: cannot set SELinux label on "
		    "the new file: %s", path, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	freecon(con);
	return rc;
#else
	(void)from;
	(void)to;
	(void)path;
	(void)err;
	return 0;
#endif
}

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t w;

	while (len > 0) {
		w = write(fd, buf, len);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		if (w == 0) {
			errno = EIO;
			return -1;
		}
		buf += w;
		len -= (size_t)w;
	}
	return 0;
}

/*
 * A complete, synced file with data, the owner, mode and label of the file
 * open on orig, under a temp name in the directory. Returns the temp name
 * in tmp, or -1 with err (code 11) and no temp file left.
 */
static int
write_temp(struct fctx *fx, const struct ffile *orig, const char *data,
    size_t len, char *tmp, size_t tmplen, struct psync_err *err)
{
	int fd = -1, rc = -1;

	if ((size_t)snprintf(tmp, tmplen, "%s/.%s%sXXXXXX", fx->dir, fx->base,
	    TEMP_TAG) >= tmplen) {
		perr_set(err, PSYNC_E_WRITE, "%s: path too long", fx->path);
		tmp[0] = '\0';
		return -1;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: cannot create a temp file "
		    "in %s: %s", fx->path, fx->dir, strerror(errno));
		tmp[0] = '\0';
		return -1;
	}
	/* Owner first: changing the owner may clear mode bits. */
	if (fchown(fd, orig->st.st_uid, orig->st.st_gid) == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: cannot give the new file "
		    "owner %u:%u: %s", fx->path, (unsigned)orig->st.st_uid,
		    (unsigned)orig->st.st_gid, strerror(errno));
		goto done;
	}
	if (fchmod(fd, orig->st.st_mode & 07777) == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: cannot give the new file mode "
		    "%04o: %s", fx->path, (unsigned)(orig->st.st_mode & 07777),
		    strerror(errno));
		goto done;
	}
	if (copy_label(orig->fd, fd, fx->path, err) == -1)
		goto done;
	if (write_all(fd, data, len) == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: writing the new file failed, "
		    "file left unchanged: %s", fx->path, strerror(errno));
		goto done;
	}
	if (fsync(fd) == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: fsync of the new file failed, "
		    "file left unchanged: %s", fx->path, strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (close(fd) == -1 && rc == 0) {
		perr_set(err, PSYNC_E_WRITE, "%s: closing the new file failed, "
		    "file left unchanged: %s", fx->path, strerror(errno));
		rc = -1;
	}
	if (rc == -1) {
		unlink(tmp);
		tmp[0] = '\0';
	}
	return rc;
}

/*
 * Keep the current file as "FILE-". A hard link keeps it byte for byte
 * with its owner, mode, label and times, without copying; where links are
 * not possible, a copy with the same owner and mode.
 */
static int
write_backup(struct fctx *fx, const struct ffile *orig, struct psync_err *err)
{
	char tmp[PATH_MAX], backup[PATH_MAX];
	int fd, rc = -1;

	if ((size_t)snprintf(backup, sizeof(backup), "%s-", fx->path) >=
	    sizeof(backup) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s%sXXXXXX", fx->dir,
	    fx->base, TEMP_TAG) >= sizeof(tmp)) {
		perr_set(err, PSYNC_E_WRITE, "%s: path too long", fx->path);
		return -1;
	}
	/* Reserve a unique name, then put the link in its place. */
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: cannot create a temp file "
		    "in %s: %s", fx->path, fx->dir, strerror(errno));
		return -1;
	}
	close(fd);
	if (unlink(tmp) == 0 && link(fx->path, tmp) == 0) {
		rc = 0;
	} else {
		unlink(tmp);
		if (write_temp(fx, orig, orig->buf, orig->len, tmp, sizeof(tmp),
		    err) == -1)
			return -1;
		rc = 0;
	}
	if (rename(tmp, backup) == -1) {
		perr_set(err, PSYNC_E_WRITE, "%s: cannot keep the backup %s: %s",
		    fx->path, backup, strerror(errno));
		rc = -1;
	}
	/*
	 * After a writer died between keeping the backup and renaming the
	 * new file, FILE- and FILE are one inode; rename(2) of two links to
	 * the same file does nothing and leaves the temp name behind.
	 */
	if (unlink(tmp) == -1 && errno != ENOENT)
		log_warn("store: %s: cannot remove temp file", tmp);
	return rc;
}

static int
fsync_dir(struct fctx *fx, struct psync_err *err)
{
	struct psync_err why;

	if (dir_fsync(fx->dir, &why) == 0)
		return 0;
	perr_set(err, PSYNC_E_WRITE, "%s: the new file is in place but %s",
	    fx->path, why.msg);
	return -1;
}

static int
fc_cmp_pos(const void *a, const void *b)
{
	const struct fchange *const *x = a, *const *y = b;

	return (*x)->line.name < (*y)->line.name ? -1 :
	    (*x)->line.name > (*y)->line.name;
}

/* The new file: the old bytes with the changed fields replaced. */
static char *
build_output(struct fctx *fx, const struct ffile *f, size_t nwrite,
    size_t *outlen, struct psync_err *err)
{
	struct fchange **w = NULL;
	char *out = NULL, day[24];
	const char *cur = f->buf, *end = f->buf + f->len;
	size_t i, k = 0, cap, dlen, o = 0;
	struct fchange *c;

	dlen = (size_t)snprintf(day, sizeof(day), "%lld",
	    (long long)(time(NULL) / 86400));
	w = calloc(nwrite, sizeof(*w));
	cap = f->len + 1 + nwrite * (sizeof(((struct fchange *)0)->newhash) +
	    sizeof(day) + 1);
	out = malloc(cap);
	if (w == NULL || out == NULL) {
		perr_set(err, PSYNC_E_WRITE, "%s: out of memory", fx->path);
		free(out);
		out = NULL;
		goto done;
	}
	for (i = 0; i < fx->nfc; i++)
		if (fx->fc[i].write)
			w[k++] = &fx->fc[i];
	qsort(w, k, sizeof(*w), fc_cmp_pos);
	for (i = 0; i < k; i++) {
		c = w[i];
		/* Everything up to and including the lock prefix. */
		memcpy(out + o, cur, (size_t)(c->line.hash - cur) + c->lockpfx);
		o += (size_t)(c->line.hash - cur) + c->lockpfx;
		if (c->addlock)
			out[o++] = '!';
		memcpy(out + o, c->newhash, strlen(c->newhash));
		o += strlen(c->newhash);
		if (fx->shadow) {
			out[o++] = ':';
			memcpy(out + o, day, dlen);
			o += dlen;
			cur = c->line.lastchg + c->line.lastchg_len;
		} else {
			cur = c->line.hash + c->line.hash_len;
		}
	}
	memcpy(out + o, cur, (size_t)(end - cur));
	o += (size_t)(end - cur);
	*outlen = o;
done:
	free(w);
	return out;
}

/* Decide each change against the file as read under the lock. */
static size_t
decide(struct fctx *fx, struct crypt_data *cd, struct store_result *results)
{
	struct fchange *c;
	struct store_result *r;
	char cur[CRYPT_OUTPUT_SIZE + 8];
	size_t i, nwrite = 0, clen;

	for (i = 0; i < fx->nfc; i++) {
		c = &fx->fc[i];
		r = &results[c->idx];
		if (c->seen == 0) {
			store_result_set(r, PSYNC_E_NO_USER, STORE_FAILED,
			    "no user %s in %s", c->user, fx->path);
			continue;
		}
		if (c->seen > 1) {
			store_result_set(r, PSYNC_E_BAD_SHADOW, STORE_FAILED,
			    "user %s has %d entries in %s; fix the file",
			    c->user, c->seen, fx->path);
			continue;
		}
		if (c->malformed) {
			store_result_set(r, PSYNC_E_BAD_SHADOW, STORE_FAILED,
			    "the entry of %s in %s cannot be parsed (expected "
			    "%d fields%s)", c->user, fx->path,
			    fx->shadow ? 9 : 7,
			    fx->shadow ? ", a numeric last-change day" : "");
			continue;
		}
		clen = c->line.hash_len - c->lockpfx;
		if (clen >= sizeof(cur)) {
			/* No hash is this long; it cannot match anything. */
			cur[0] = '\0';
		} else {
			memcpy(cur, c->line.hash + c->lockpfx, clen);
			cur[clen] = '\0';
		}
		if (c->kind == STORE_SECRET_HASH) {
			if (strcmp(cur, c->secret) == 0) {
				store_result_set(r, PSYNC_OK, STORE_UNCHANGED,
				    "%s already holds this hash for %s",
				    fx->path, c->user);
				continue;
			}
			str_copy(c->newhash, c->secret, sizeof(c->newhash));
		} else {
			/*
			 * Changed since the snapshot (passwd ran): verify
			 * again. Without the verify, a hash made before the
			 * lock is as good as one made now.
			 */
			if (c->snap_hash == NULL ||
			    (c->check && strcmp(cur, c->snap_hash) != 0) ||
			    (!c->check && c->newhash[0] == '\0'))
				fc_hash(fx, c, cur, cd);
			if (c->matched) {
				store_result_set(r, PSYNC_OK, STORE_UNCHANGED,
				    "%s already holds this password for %s",
				    fx->path, c->user);
				continue;
			}
			if (c->newhash[0] == '\0') {
				store_result_set(r, c->herr.code, STORE_FAILED,
				    "hashing the password of %s: %s", c->user,
				    c->herr.msg);
				continue;
			}
		}
		c->write = true;
		nwrite++;
		store_result_set(r, PSYNC_OK, STORE_APPLIED,
		    "password of %s changed in %s%s", c->user, fx->path,
		    c->lockpfx > 0 || c->addlock ? "; the account stays "
		    "locked" : "");
	}
	return nwrite;
}

/* Every change still pending gets the batch's failure. */
static void
fail_pending(struct fctx *fx, struct store_result *results,
    const struct psync_err *err)
{
	size_t i;

	for (i = 0; i < fx->nfc; i++)
		store_result_set(&results[fx->fc[i].idx], err->code,
		    STORE_FAILED, "%s", err->msg);
}

/* The changes that survive validation and de-duplication, sorted by user. */
static int
collect(struct fctx *fx, const struct store_change *changes, size_t n,
    struct store_result *results)
{
	size_t i, k = 0;

	fx->fc = calloc(n, sizeof(*fx->fc));
	if (fx->fc == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		/* store_apply() marked the valid ones "not processed". */
		if (results[i].code != PSYNC_E_UPDATE_FAILED ||
		    results[i].outcome != STORE_FAILED)
			continue;
		fx->fc[k].idx = i;
		fx->fc[k].user = changes[i].user;
		fx->fc[k].kind = changes[i].kind;
		fx->fc[k].secret = changes[i].secret;
		fx->fc[k].check = changes[i].check_unchanged;
		k++;
	}
	qsort(fx->fc, k, sizeof(*fx->fc), fc_cmp_user);
	/* Of several changes for one user, the last in the batch wins. */
	fx->nfc = 0;
	for (i = 0; i < k; i++) {
		if (i + 1 < k && strcmp(fx->fc[i].user, fx->fc[i + 1].user) == 0) {
			store_result_set(&results[fx->fc[i].idx], PSYNC_OK,
			    STORE_SUPERSEDED, "superseded by a later change "
			    "for %s in the same batch", fx->fc[i].user);
			continue;
		}
		fx->fc[fx->nfc++] = fx->fc[i];
	}
	return 0;
}

static int
split_path(struct fctx *fx, struct psync_err *err)
{
	char tmp[PATH_MAX];

	if (fx->path == NULL || fx->path[0] == '\0') {
		perr_set(err, PSYNC_E_OPEN, "no %s file configured",
		    fx->shadow ? "shadow" : "passwd");
		return -1;
	}
	if (str_copy(tmp, fx->path, sizeof(tmp)) >= sizeof(tmp) ||
	    str_copy(fx->dir, dirname(tmp), sizeof(fx->dir)) >= sizeof(fx->dir)) {
		perr_set(err, PSYNC_E_OPEN, "%s: path too long", fx->path);
		return -1;
	}
	str_copy(tmp, fx->path, sizeof(tmp));
	if (str_copy(fx->base, basename(tmp), sizeof(fx->base)) >=
	    sizeof(fx->base)) {
		perr_set(err, PSYNC_E_OPEN, "%s: name too long", fx->path);
		return -1;
	}
	return 0;
}

size_t
store_files_apply(const struct store_conf *conf,
    const struct store_change *changes, size_t n, struct store_result *results)
{
	struct fctx fx;
	struct ffile snap = { .buf = NULL, .fd = -1 };
	struct ffile cur = { .buf = NULL, .fd = -1 };
	struct psync_err err;
	struct crypt_data *cd = NULL;
	char tmp[PATH_MAX], *out = NULL;
	size_t i, nwrite, outlen = 0, failed = 0;
	unsigned long verified = 0;
	int lockfd = -1;

	memset(&fx, 0, sizeof(fx));
	perr_clear(&err);
	fx.conf = conf;
	fx.shadow = !conf->hashes_in_passwd;
	fx.path = fx.shadow ? conf->shadow_file : conf->passwd_file;
	if (collect(&fx, changes, n, results) == -1) {
		for (i = 0; i < n; i++)
			if (results[i].code == PSYNC_E_UPDATE_FAILED)
				store_result_set(&results[i],
				    PSYNC_E_UPDATE_FAILED, STORE_FAILED,
				    "out of memory for the batch");
		goto done;
	}
	if (fx.nfc == 0)
		goto done;
	if (store_retire_fingerprints(conf->state_dir, &err) == -1) {
		log_warnx("store: %s", err.msg);
		perr_clear(&err);
	}
	if (split_path(&fx, &err) == -1 ||
	    store_hash_params(conf, &fx.params, &err) == -1 ||
	    store_hash_limits(conf, &fx.lim, &err) == -1)
		goto fail;
	cd = calloc(1, sizeof(*cd));
	if (cd == NULL) {
		perr_set(&err, PSYNC_E_UPDATE_FAILED, "out of memory");
		goto fail;
	}

	/* Hash against a snapshot, without holding anyone up. */
	if (ffile_read(fx.path, &snap, &err) == -1)
		goto fail;
	each_line(snap.buf, snap.len, snap_line, &fx);
	ffile_close(&snap);
	if (store_parallel(fx.nfc, conf->hash_threads, hash_job, &fx) == -1) {
		perr_set(&err, PSYNC_E_UPDATE_FAILED, "hashing the batch "
		    "failed (out of memory)");
		goto fail;
	}

	lockfd = lock_take(&fx, &err);
	if (lockfd == -1)
		goto fail;
	remove_stale(&fx);
	if (ffile_read(fx.path, &cur, &err) == -1)
		goto fail;
	if (memchr(cur.buf, '\0', cur.len) != NULL) {
		perr_set(&err, PSYNC_E_BAD_SHADOW, "%s: contains a NUL byte; "
		    "not a %s file, left as it is", fx.path,
		    fx.shadow ? "shadow" : "passwd");
		goto fail;
	}
	each_line(cur.buf, cur.len, locked_line, &fx);
	nwrite = decide(&fx, cd, results);
	if (nwrite == 0)
		goto done;
	out = build_output(&fx, &cur, nwrite, &outlen, &err);
	if (out == NULL || write_backup(&fx, &cur, &err) == -1 ||
	    write_temp(&fx, &cur, out, outlen, tmp, sizeof(tmp), &err) == -1)
		goto fail_written;
	if (rename(tmp, fx.path) == -1) {
		perr_set(&err, PSYNC_E_WRITE, "%s: cannot move the new file in "
		    "place, file left unchanged: %s", fx.path, strerror(errno));
		unlink(tmp);
		goto fail_written;
	}
	if (fsync_dir(&fx, &err) == -1) {
		/* The rename happened; only its durability is in doubt. */
		log_warnx("store: %s", err.msg);
	}
	log_info("store: %s: %zu password%s changed", fx.path, nwrite,
	    nwrite == 1 ? "" : "s");
	goto done;

fail_written:
	/* Only the changes that were going to be written failed. */
	for (i = 0; i < fx.nfc; i++)
		if (fx.fc[i].write)
			store_result_set(&results[fx.fc[i].idx], err.code,
			    STORE_FAILED, "%s", err.msg);
	log_warnx("store: %s", err.msg);
	goto done;
fail:
	fail_pending(&fx, results, &err);
	log_warnx("store: %s", err.msg);
done:
	if (lockfd != -1)
		lock_release(lockfd);
	for (i = 0; i < fx.nfc; i++)
		verified += fx.fc[i].nverified;
	__atomic_add_fetch(&store_stat_verified, verified, __ATOMIC_RELAXED);
	if (fx.nfc > 0)
		log_debug("store: %s: %zu change%s, %lu verified against the "
		    "stored hash", fx.path, fx.nfc, fx.nfc == 1 ? "" : "s",
		    verified);
	ffile_close(&snap);
	ffile_close(&cur);
	free(out);
	free(cd);
	for (i = 0; i < fx.nfc; i++) {
		free(fx.fc[i].snap_hash);
		secure_wipe(fx.fc[i].newhash, sizeof(fx.fc[i].newhash));
	}
	free(fx.fc);
	for (i = 0; i < n; i++)
		if (results[i].code != PSYNC_OK)
			failed++;
	return failed;
}
