/*
 * The store's front door: checks each change, hands the batch to the
 * back-end the configuration names, then pushes NIS maps when the batch
 * changed anything. Also the line parser for shadow and passwd files, kept
 * here in one place so that it can be fuzzed on its own.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "change.h"
#include "codes.h"
#include "names.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "store_samba.h"
#include "util.h"

#define NIS_OUTPUT_MAX	8192

static const char *const outcome_names[] = {
	[STORE_FAILED]		= "failed",
	[STORE_APPLIED]		= "applied",
	[STORE_UNCHANGED]	= "unchanged",
	[STORE_SUPERSEDED]	= "superseded",
};

const char *
store_outcome_name(enum store_outcome outcome)
{
	if ((size_t)outcome >= sizeof(outcome_names) / sizeof(outcome_names[0]))
		return "unknown";
	return outcome_names[outcome];
}

void
store_result_set(struct store_result *r, int code, enum store_outcome outcome,
    const char *fmt, ...)
{
	va_list ap;

	r->code = code;
	r->outcome = outcome;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

/* A local account name: the one rule of lib/core/names.c. */
bool
store_user_valid(const char *user)
{
	return names_valid(user);
}

size_t
store_line_name(const char *line, size_t len)
{
	const char *colon = memchr(line, ':', len);

	return colon != NULL ? (size_t)(colon - line) : len;
}

int
store_line_parse(const char *line, size_t len, bool shadow,
    struct store_line *out)
{
	const char *field[9];
	size_t flen[9], nf = 0, need = shadow ? 9 : 7, i, start = 0;

	memset(out, 0, sizeof(*out));
	if (len == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-')
		return -1;
	if (memchr(line, '\0', len) != NULL || memchr(line, '\n', len) != NULL)
		return -1;
	for (i = 0; i <= len; i++) {
		if (i < len && line[i] != ':')
			continue;
		if (nf == need)
			return -1;	/* too many fields */
		field[nf] = line + start;
		flen[nf] = i - start;
		nf++;
		start = i + 1;
	}
	if (nf != need || flen[0] == 0)
		return -1;
	if (shadow) {
		if (flen[2] > 11)
			return -1;
		for (i = 0; i < flen[2]; i++)
			if (field[2][i] < '0' || field[2][i] > '9')
				return -1;
		out->lastchg = field[2];
		out->lastchg_len = flen[2];
	}
	out->name = field[0];
	out->name_len = flen[0];
	out->hash = field[1];
	out->hash_len = flen[1];
	return 0;
}

/* The checks every back-end needs; failures are final for that change. */
static bool
check_change(const struct hash_limits *lim, const struct store_change *c,
    struct store_result *r)
{
	struct psync_err err;

	if (c->user == NULL || !store_user_valid(c->user)) {
		store_result_set(r, PSYNC_E_BAD_USER, STORE_FAILED,
		    "invalid user name");
		return false;
	}
	/* The change type's rules (lib/change/change.c), as in every layer. */
	if (c->secret == NULL || change_secret_check(c->kind ==
	    STORE_SECRET_HASH ? CHANGE_SECRET_CRYPT : CHANGE_SECRET_CLEARTEXT,
	    (const unsigned char *)c->secret, strnlen(c->secret,
	    CHANGE_SECRET_MAX + 1), &err) != PSYNC_OK) {
		store_result_set(r, PSYNC_E_BAD_PASSWORD, STORE_FAILED,
		    "%s for %s", c->secret == NULL ? "no password" : err.msg,
		    c->user);
		return false;
	}
	switch (c->kind) {
	case STORE_SECRET_CLEARTEXT:
		break;
	case STORE_SECRET_HASH:
		perr_clear(&err);
		if (store_hash_cost_check(c->secret, lim, &err) == -1 ||
		    store_hash_check(c->secret, &err) == -1) {
			store_result_set(r, err.code, STORE_FAILED,
			    "hash for %s: %s", c->user, err.msg);
			return false;
		}
		break;
	default:
		store_result_set(r, PSYNC_E_BAD_PASSWORD, STORE_FAILED,
		    "unknown secret kind for %s", c->user);
		return false;
	}
	return true;
}

static size_t
files_apply(const struct store_conf *conf, const struct store_env *env,
    const struct store_change *changes, size_t n,
    struct store_result *results)
{
	(void)env;
	return store_files_apply(conf, changes, n, results);
}

static size_t
pam_apply(const struct store_conf *conf, const struct store_env *env,
    const struct store_change *changes, size_t n,
    struct store_result *results)
{
	(void)env;
	return store_pam_apply(conf, changes, n, results);
}

/* Every back-end; a new one is one file and one row. */
static const struct store_backend backends[] = {
	{ STORE_FILES,	"files",	files_apply },
	{ STORE_PAM,	"pam",		pam_apply },
	{ STORE_SAMBA,	"samba",	store_samba_backend_apply },
};

size_t
store_apply(const struct store_conf *conf, const struct store_change *changes,
    size_t n, struct store_result *results)
{
	return store_apply_env(conf, NULL, changes, n, results);
}

size_t
store_apply_env(const struct store_conf *conf, const struct store_env *env,
    const struct store_change *changes, size_t n,
    struct store_result *results)
{
	const struct store_backend *be = NULL;
	struct psync_err err;
	struct hash_limits lim;
	size_t i, failed = 0, applied = 0;
	bool any_valid = false;

	/* Without login.defs the static defaults hold; hashing will say why. */
	perr_clear(&err);
	if (store_hash_limits(conf, &lim, &err) == -1)
		store_hash_limits_resolve(&conf->hash_limits, &lim);
	for (i = 0; i < n; i++) {
		store_result_set(&results[i], PSYNC_E_UPDATE_FAILED,
		    STORE_FAILED, "not processed");
		if (check_change(&lim, &changes[i], &results[i]))
			any_valid = true;
	}
	for (i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
		if (backends[i].type == conf->type)
			be = &backends[i];
	if (any_valid && be != NULL) {
		be->apply(conf, env, changes, n, results);
	} else if (any_valid) {
		for (i = 0; i < n; i++)
			if (results[i].code == PSYNC_E_UPDATE_FAILED)
				store_result_set(&results[i],
				    PSYNC_E_UPDATE_FAILED, STORE_FAILED,
				    "store type %d is not handled by the local "
				    "store", (int)conf->type);
	}
	for (i = 0; i < n; i++)
		if (results[i].outcome == STORE_APPLIED)
			applied++;
	if (applied > 0 && conf->nis_make_dir != NULL) {
		perr_clear(&err);
		if (store_nis_make(conf->nis_make_dir, &err) == -1) {
			for (i = 0; i < n; i++)
				if (results[i].outcome == STORE_APPLIED)
					store_result_set(&results[i],
					    PSYNC_E_NIS, STORE_APPLIED,
					    "stored, but NIS maps not pushed: "
					    "%s", err.msg);
		}
	}
	for (i = 0; i < n; i++)
		if (results[i].code != PSYNC_OK)
			failed++;
	return failed;
}

/* ---- retired fingerprints ---- */

int
store_retire_fingerprints(const char *dir, struct psync_err *err)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	char path[PATH_MAX];
	size_t i;
	int removed = 0, rc = 0;

	if (dir == NULL || dir[0] == '\0')
		return 0;
	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		if ((size_t)snprintf(path, sizeof(path), "%s/%s%s", dir,
		    STORE_FP_DB_NAME, suffix[i]) >= sizeof(path)) {
			perr_set(err, PSYNC_E_OPEN, "%s: path too long", dir);
			return -1;
		}
		if (unlink(path) == 0) {
			removed = 1;
		} else if (errno != ENOENT) {
			perr_set(err, PSYNC_E_WRITE, "%s: cannot remove the "
			    "retired fingerprint database: %s", path,
			    strerror(errno));
			rc = -1;
		}
	}
	if (removed)
		log_info("store: removed %s/%s: the store no longer keeps "
		    "fingerprints of passwords", dir, STORE_FP_DB_NAME);
	return rc == -1 ? -1 : removed;
}

/* ---- NIS ---- */

/* Log make's output line by line so that each line stays readable. */
static void
nis_log_output(const char *dir, char *buf, bool failed)
{
	char *line, *save = NULL;

	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (failed)
			log_warnx("NIS make in %s: %s", dir, line);
		else
			log_debug("NIS make in %s: %s", dir, line);
	}
}

int
store_nis_make(const char *dir, struct psync_err *err)
{
	char *const argv[] = { (char *)(uintptr_t)"make", NULL };
	char buf[NIS_OUTPUT_MAX], drain[512];
	size_t len = 0;
	ssize_t r;
	int fds[2] = { -1, -1 }, status, devnull, rc = -1;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) == -1) {
		perr_set(err, PSYNC_E_NIS, "NIS make in %s: pipe: %s", dir,
		    strerror(errno));
		goto done;
	}
	pid = fork();
	if (pid == -1) {
		perr_set(err, PSYNC_E_NIS, "NIS make in %s: fork: %s", dir,
		    strerror(errno));
		goto done;
	}
	if (pid == 0) {
		/* Only async-signal-safe calls from here on. */
		devnull = open("/dev/null", O_RDONLY);
		if (devnull == -1 || dup2(devnull, 0) == -1 ||
		    dup2(fds[1], 1) == -1 || dup2(fds[1], 2) == -1 ||
		    chdir(dir) == -1) {
			if (write(fds[1], "cannot set up make\n", 19) < 0)
				_exit(126);
			_exit(126);
		}
		execvp("make", argv);
		if (write(fds[1], "cannot run make\n", 16) < 0)
			_exit(127);
		_exit(127);
	}
	close(fds[1]);
	fds[1] = -1;
	for (;;) {
		if (len < sizeof(buf) - 1)
			r = read(fds[0], buf + len, sizeof(buf) - 1 - len);
		else
			r = read(fds[0], drain, sizeof(drain));
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if (len < sizeof(buf) - 1)
			len += (size_t)r;
	}
	buf[len] = '\0';
	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR) {
			perr_set(err, PSYNC_E_NIS, "NIS make in %s: waitpid: %s",
			    dir, strerror(errno));
			goto done;
		}
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		nis_log_output(dir, buf, false);
		rc = 0;
		goto done;
	}
	nis_log_output(dir, buf, true);
	if (WIFEXITED(status))
		perr_set(err, PSYNC_E_NIS, "make in %s exited with status %d",
		    dir, WEXITSTATUS(status));
	else
		perr_set(err, PSYNC_E_NIS, "make in %s killed by signal %d",
		    dir, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
done:
	if (fds[0] != -1)
		close(fds[0]);
	if (fds[1] != -1)
		close(fds[1]);
	return rc;
}
