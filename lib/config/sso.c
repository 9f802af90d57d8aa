/*
 * sso.conf importer. Three passes: read every KEY=VALUE line into a table
 * (refusing malformed lines with their number), check the values now that
 * the file's mode is known (a bad value of a key that matters is refused, of
 * one that cannot matter is a warning), then write psync.conf text from the
 * table, one section at a time, warnings first as comments.
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codes.h"
#include "policy.h"
#include "sso.h"

#define SSO_LINE_MAX	4096
#define SSO_MAX_HOSTS	64
#define SSO_MAX_WARN	32
#define SSO_WARN_LEN	384

enum sso_key {
	K_SYNC_HOSTS, K_ENCRYPT_KEY, K_PORT_NUMBER, K_FILE_PATH, K_USE_SHADOW,
	K_TEMP_FILE_PATH, K_CASE_IGNORE_NAME, K_USE_NIS, K_NIS_UPDATE_PATH,
	K_SYNC_USERS, K_SYNC_RETRIES, K_SYNC_DELAY, K_IGNORE_PROPAGATION_ERRORS,
	K_COUNT
};

static const char *const sso_keys[K_COUNT] = {
	"SYNC_HOSTS", "ENCRYPT_KEY", "PORT_NUMBER", "FILE_PATH", "USE_SHADOW",
	"TEMP_FILE_PATH", "CASE_IGNORE_NAME", "USE_NIS", "NIS_UPDATE_PATH",
	"SYNC_USERS", "SYNC_RETRIES", "SYNC_DELAY", "IGNORE_PROPAGATION_ERRORS",
};

struct sso_host {
	char	host[256];
	char	port[16];	/* empty: PORT_NUMBER */
	char	key[128];	/* empty: ENCRYPT_KEY */
};

struct sso {
	const char	*name;		/* of the file, for messages */
	char		*value[K_COUNT];
	int		 line[K_COUNT];
	int		 dup_line[K_COUNT];	/* a second setting, or 0 */
	struct sso_host	 hosts[SSO_MAX_HOSTS];
	size_t		 n_hosts;
	char		 unknown[SSO_LINE_MAX];	/* unknown keys, for a comment */
	char		 warn[SSO_MAX_WARN][SSO_WARN_LEN];
	int		 warn_line[SSO_MAX_WARN];	/* for the file's order */
	size_t		 n_warn;
	size_t		 n_warn_lost;	/* beyond SSO_MAX_WARN */
	sso_warn_fn	 warn_fn;
	void		*warn_ctx;
};

/* A warning: for the callback and for a comment atop the output. */
static void
sso_warn(struct sso *s, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
sso_warn(struct sso *s, int line, const char *fmt, ...)
{
	char msg[SSO_WARN_LEN], text[SSO_WARN_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	/* A long value is cut: a warning names it, it need not hold it. */
	if ((line > 0 ? snprintf(msg, sizeof(msg), "%s:%d: warning: %s",
	    s->name, line, text) : snprintf(msg, sizeof(msg), "%s: warning: %s",
	    s->name, text)) < 0)
		str_copy(msg, "warning", sizeof(msg));
	if (s->n_warn == SSO_MAX_WARN) {
		s->n_warn_lost++;
		return;
	}
	/* Warnings about the whole file come after those about a line. */
	s->warn_line[s->n_warn] = line > 0 ? line : INT_MAX;
	str_copy(s->warn[s->n_warn++], msg, SSO_WARN_LEN);
}

/* The warnings in the order of their lines, to the caller's callback. */
static void
sso_warn_sort(struct sso *s)
{
	char tmp[SSO_WARN_LEN];
	size_t i, j;
	int line;

	for (i = 1; i < s->n_warn; i++) {
		for (j = i; j > 0 && s->warn_line[j] < s->warn_line[j - 1]; j--) {
			line = s->warn_line[j];
			s->warn_line[j] = s->warn_line[j - 1];
			s->warn_line[j - 1] = line;
			memcpy(tmp, s->warn[j], sizeof(tmp));
			memcpy(s->warn[j], s->warn[j - 1], sizeof(tmp));
			memcpy(s->warn[j - 1], tmp, sizeof(tmp));
		}
	}
	if (s->n_warn_lost > 0 && s->n_warn > 0)
		snprintf(s->warn[s->n_warn - 1], SSO_WARN_LEN, "%s: warning: "
		    "%zu more warnings not shown", s->name, s->n_warn_lost + 1);
	if (s->warn_fn != NULL)
		for (i = 0; i < s->n_warn; i++)
			s->warn_fn(s->warn_ctx, s->warn[i]);
}

static void
sso_free(struct sso *s)
{
	int i;

	for (i = 0; i < K_COUNT; i++) {
		if (s->value[i] != NULL)
			secure_wipe(s->value[i], strlen(s->value[i]));
		free(s->value[i]);
	}
	secure_wipe(s->hosts, sizeof(s->hosts));
}

static char *
trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static bool
is_number(const char *s, long lo, long hi)
{
	char *end;
	long n;

	if (!isdigit((unsigned char)*s))
		return false;
	n = strtol(s, &end, 10);
	return *end == '\0' && n >= lo && n <= hi;
}

/* 1/TRUE/YES and 0/FALSE/NO; -1 for anything else. */
static int
sso_bool(const char *v)
{
	if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
	    strcasecmp(v, "yes") == 0)
		return 1;
	if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 ||
	    strcasecmp(v, "no") == 0)
		return 0;
	return -1;
}

static bool
safe_field(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void	peer_name(const char *host, char *out, size_t len);

/* Two hosts that would make the same peer name are one host listed twice. */
static bool
host_listed(const struct sso *s, const char *host)
{
	char a[80], b[80];
	size_t i;

	peer_name(host, a, sizeof(a));
	for (i = 0; i < s->n_hosts; i++) {
		peer_name(s->hosts[i].host, b, sizeof(b));
		if (strcmp(a, b) == 0)
			return true;
	}
	return false;
}

/* "(host[,port[,key]])(host2)..." */
static int
parse_hosts(struct sso *s, const char *v, const char *name, int line,
    struct psync_err *err)
{
	const char *p = v;

	while (*p != '\0') {
		const char *close;
		char group[SSO_LINE_MAX], *f[3] = { NULL, NULL, NULL }, *save = NULL;
		struct sso_host *h;
		size_t len;
		int n = 0;

		while (isspace((unsigned char)*p))
			p++;
		if (*p == '\0')
			break;
		if (*p != '(' || (close = strchr(p, ')')) == NULL) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: SYNC_HOSTS: "
			    "expected (host[,port[,key]]) groups", name, line);
			return -1;
		}
		len = (size_t)(close - p - 1);
		if (len == 0 || len >= sizeof(group) || memchr(p + 1, '(', len)) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: SYNC_HOSTS: "
			    "empty or malformed group", name, line);
			return -1;
		}
		if (s->n_hosts == SSO_MAX_HOSTS) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: SYNC_HOSTS: "
			    "more than %d hosts", name, line, SSO_MAX_HOSTS);
			return -1;
		}
		memcpy(group, p + 1, len);
		group[len] = '\0';
		/* Split on commas by hand: empty fields count (host,,key). */
		f[n++] = group;
		for (save = group; *save != '\0'; save++) {
			if (*save == ',') {
				*save = '\0';
				if (n == 3) {
					n = 4;
					break;
				}
				f[n++] = save + 1;
			}
		}
		h = &s->hosts[s->n_hosts];
		if (n > 3) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: SYNC_HOSTS: "
			    "expected (host[,port[,key]]), got more than 3 fields",
			    name, line);
			return -1;
		}
		if (*trim(f[0]) == '\0' ||
		    str_copy(h->host, trim(f[0]), sizeof(h->host)) >= sizeof(h->host) ||
		    !safe_field(h->host) || strpbrk(h->host, " \t\"\\") != NULL) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: SYNC_HOSTS: "
			    "expected a host name or address first in each group",
			    name, line);
			return -1;
		}
		if (n >= 2 && *trim(f[1]) != '\0') {
			if (!is_number(trim(f[1]), 1, 65535)) {
				perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: "
				    "SYNC_HOSTS: port of %s must be 1 to 65535",
				    name, line, h->host);
				return -1;
			}
			str_copy(h->port, trim(f[1]), sizeof(h->port));
		}
		if (n == 3 && *trim(f[2]) != '\0') {
			if (str_copy(h->key, trim(f[2]), sizeof(h->key)) >=
			    sizeof(h->key) || !safe_field(h->key)) {
				perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: "
				    "SYNC_HOSTS: key for %s is too long or has "
				    "control characters", name, line, h->host);
				return -1;
			}
		}
		secure_wipe(group, sizeof(group));
		if (host_listed(s, h->host)) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: SYNC_HOSTS: "
			    "%s is listed twice", name, line, h->host);
			return -1;
		}
		s->n_hosts++;
		p = close + 1;
	}
	return 0;
}

static int
check_value(struct sso *s, enum sso_key k, const char *v, const char *name,
    int line, struct psync_err *err)
{
	switch (k) {
	case K_SYNC_HOSTS:
		return parse_hosts(s, v, name, line, err);
	case K_PORT_NUMBER:
	case K_SYNC_RETRIES:
	case K_SYNC_DELAY:
		if (!is_number(v, k == K_PORT_NUMBER ? 1 : 0,
		    k == K_PORT_NUMBER ? 65535 : 1000000)) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: %s: expected "
			    "a number, got '%s'", name, line, sso_keys[k], v);
			return -1;
		}
		return 0;
	case K_USE_SHADOW:
	case K_CASE_IGNORE_NAME:
	case K_USE_NIS:
	case K_IGNORE_PROPAGATION_ERRORS:
		if (sso_bool(v) == -1) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: %s: expected "
			    "1 or 0, got '%s'", name, line, sso_keys[k], v);
			return -1;
		}
		return 0;
	case K_FILE_PATH:
	case K_TEMP_FILE_PATH:
	case K_NIS_UPDATE_PATH:
		if (v[0] != '/' || strpbrk(v, "\"\\") != NULL) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: %s: expected "
			    "an absolute path, got '%s'", name, line, sso_keys[k], v);
			return -1;
		}
		return 0;
	case K_SYNC_USERS:
		if (policy_sync_users_match(v, NULL, true, err) == -1) {
			char why[PSYNC_ERR_LEN];

			str_copy(why, err->msg, sizeof(why));
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: SYNC_USERS: "
			    "%s", name, line, why);
			return -1;
		}
		return 0;
	case K_ENCRYPT_KEY:
	case K_COUNT:
		return 0;
	}
	return 0;
}

static int
sso_read(struct sso *s, const char *text, const char *name, struct psync_err *err)
{
	const char *p = text;
	int lineno = 0;

	while (*p != '\0') {
		const char *nl = strchr(p, '\n');
		size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		char buf[SSO_LINE_MAX], *line, *eq, *key, *val;
		int k;

		lineno++;
		if (len >= sizeof(buf)) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: line longer "
			    "than %d bytes", name, lineno, SSO_LINE_MAX - 1);
			return -1;
		}
		memcpy(buf, p, len);
		buf[len] = '\0';
		p = nl != NULL ? nl + 1 : p + len;
		line = trim(buf);
		if (*line == '\0' || *line == '#')
			continue;
		if (memchr(buf, '\0', len) != NULL && strlen(buf) != len) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: NUL byte",
			    name, lineno);
			return -1;
		}
		eq = strchr(line, '=');
		if (eq == NULL || eq == line || !safe_field(line)) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: expected "
			    "KEY=VALUE", name, lineno);
			return -1;
		}
		*eq = '\0';
		key = trim(line);
		val = trim(eq + 1);
		for (k = 0; k < K_COUNT; k++)
			if (strcmp(key, sso_keys[k]) == 0)
				break;
		if (k == K_COUNT) {
			size_t used = strlen(s->unknown);

			if (used + strlen(key) + 2 < sizeof(s->unknown) &&
			    strpbrk(key, "\"\\") == NULL)
				snprintf(s->unknown + used, sizeof(s->unknown) -
				    used, "%s%s", used > 0 ? " " : "", key);
			continue;
		}
		if (s->line[k] > 0) {
			if (k == K_SYNC_HOSTS) {
				perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: %s "
				    "is already set on line %d", name, lineno, key,
				    s->line[k]);
				return -1;
			}
			/* Refused or not once the mode is known. */
			if (s->dup_line[k] == 0)
				s->dup_line[k] = lineno;
			secure_wipe(buf, sizeof(buf));
			continue;
		}
		if (val[0] == '\0') {
			/* KEY= : the legacy default, as if the line were not there. */
			s->line[k] = lineno;
			if (k != K_SYNC_HOSTS)
				sso_warn(s, lineno, "%s is empty, as if it were "
				    "not set", key);
			continue;
		}
		if (k == K_SYNC_HOSTS &&
		    check_value(s, (enum sso_key)k, val, name, lineno, err) == -1)
			return -1;
		s->value[k] = strdup(val);
		s->line[k] = lineno;
		secure_wipe(buf, sizeof(buf));
		if (s->value[k] == NULL) {
			perr_set(err, PSYNC_E_NOT_UPDATED, "out of memory");
			return -1;
		}
	}
	return 0;
}

/* Can a key's value change what the converted file says in this mode? */
static bool
sso_matters(const struct sso *s, enum sso_key k)
{
	/* No equivalent in psync: only ever a comment. */
	if (k == K_TEMP_FILE_PATH || k == K_SYNC_RETRIES ||
	    k == K_IGNORE_PROPAGATION_ERRORS)
		return false;
	/* Only with NIS (and when USE_NIS is bad, which is refused anyway). */
	if (k == K_NIS_UPDATE_PATH)
		return s->value[K_USE_NIS] != NULL &&
		    sso_bool(s->value[K_USE_NIS]) != 0;
	return true;
}

/*
 * The values, in the order of their lines: a bad value or a second
 * setting of a key that matters is an error; of one that cannot matter in
 * this file's mode, a warning (the first value is kept, and only shows in
 * comments).
 */
static int
sso_check(struct sso *s, struct psync_err *err)
{
	struct psync_err why;
	int order[K_COUNT], n = 0, i, j, k;

	for (k = 0; k < K_COUNT; k++)
		if (s->value[k] != NULL && k != K_SYNC_HOSTS)
			order[n++] = k;
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && s->line[order[j]] < s->line[order[j - 1]]; j--) {
			k = order[j];
			order[j] = order[j - 1];
			order[j - 1] = k;
		}
	for (i = 0; i < n; i++) {
		k = order[i];
		if (check_value(s, (enum sso_key)k, s->value[k], s->name,
		    s->line[k], &why) == -1) {
			if (sso_matters(s, (enum sso_key)k)) {
				*err = why;
				return -1;
			}
			/* why.msg is "NAME:LINE: KEY: ..."; keep the part after. */
			sso_warn(s, s->line[k], "%s; ignored: %s", strstr(why.msg,
			    sso_keys[k]) != NULL ? strstr(why.msg, sso_keys[k]) :
			    sso_keys[k], k == K_NIS_UPDATE_PATH ? "USE_NIS is "
			    "off" : "psync has no equivalent");
		}
	}
	for (k = 0; k < K_COUNT; k++) {
		if (s->dup_line[k] == 0)
			continue;
		if (sso_matters(s, (enum sso_key)k)) {
			perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s:%d: %s is already "
			    "set on line %d", s->name, s->dup_line[k], sso_keys[k],
			    s->line[k]);
			return -1;
		}
		sso_warn(s, s->dup_line[k], "%s is already set on line %d; the "
		    "first value is kept", sso_keys[k], s->line[k]);
	}
	return 0;
}

/* A libconfuse double-quoted string; "${" would expand the environment. */
static void
put_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s != '\0'; s++) {
		if (*s == '"' || *s == '\\' || *s == '$')
			fputc('\\', out);
		fputc(*s, out);
	}
	fputc('"', out);
}

static bool
is_ip(const char *s)
{
	unsigned char b[16];

	return inet_pton(AF_INET, s, b) == 1 || inet_pton(AF_INET6, s, b) == 1;
}

static void
peer_name(const char *host, char *out, size_t len)
{
	size_t i;

	str_copy(out, host, len);
	for (i = 0; out[i] != '\0'; i++)
		if (!isalnum((unsigned char)out[i]) && strchr("._-", out[i]) == NULL)
			out[i] = '-';
	if (strlen(out) > 64)
		out[64] = '\0';
}

static const char *
val(const struct sso *s, enum sso_key k, const char *dflt)
{
	return s->value[k] != NULL ? s->value[k] : dflt;
}

/*
 * The legacy daemon read FILE_PATH as the directory that holds passwd and
 * shadow (its sample file says FILE_PATH=/etc). A path that ends in
 * /passwd or /shadow names one of those files: its directory is taken.
 * Fills dir (no trailing '/', except for "/") and says which it was.
 */
static void
file_dir(const char *fp, char *dir, size_t len, bool *named_file)
{
	size_t n;
	char *base;

	str_copy(dir, fp, len);
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = '\0';
	base = strrchr(dir, '/');
	*named_file = base != NULL && (strcmp(base + 1, "passwd") == 0 ||
	    strcmp(base + 1, "shadow") == 0);
	if (*named_file)
		base[base == dir ? 1 : 0] = '\0';
}

/* shadow-file = "DIR/FILE" and the like. */
static void
put_path(FILE *out, const char *option, const char *dir, const char *file)
{
	char path[SSO_LINE_MAX + 16];

	snprintf(path, sizeof(path), "%s%s%s", dir, strcmp(dir, "/") == 0 ?
	    "" : "/", file);
	fprintf(out, "\t%s = ", option);
	put_str(out, path);
	fprintf(out, "\n");
}

static void
write_store(const struct sso *s, FILE *out)
{
	bool shadow = sso_bool(val(s, K_USE_SHADOW, "1")) == 1;
	bool nis = sso_bool(val(s, K_USE_NIS, "0")) == 1;
	char dir[SSO_LINE_MAX];
	bool named_file;

	fprintf(out, "store {\n\ttype = files\n");
	if (s->value[K_FILE_PATH] != NULL) {
		file_dir(s->value[K_FILE_PATH], dir, sizeof(dir), &named_file);
		if (named_file)
			fprintf(out, "\t# FILE_PATH=%s names a file; the legacy "
			    "daemon read FILE_PATH as the directory of passwd "
			    "and shadow: %s\n", s->value[K_FILE_PATH], dir);
		else
			fprintf(out, "\t# FILE_PATH=%s: the directory of passwd "
			    "and shadow, as the legacy daemon read it\n",
			    s->value[K_FILE_PATH]);
	} else
		str_copy(dir, "/etc", sizeof(dir));
	if (!shadow)
		fprintf(out, "\t# USE_SHADOW=0: this host keeps hashes in "
		    "passwd\n\thashes-in-passwd = true\n");
	put_path(out, "passwd-file", dir, "passwd");
	if (shadow)
		put_path(out, "shadow-file", dir, "shadow");
	if (s->value[K_TEMP_FILE_PATH] != NULL)
		fprintf(out, "\t# TEMP_FILE_PATH has no equivalent: psync writes "
		    "its temporary file beside the file it replaces\n");
	if (nis) {
		fprintf(out, "\tnis-make-dir = ");
		put_str(out, val(s, K_NIS_UPDATE_PATH, "/var/yp"));
		fprintf(out, "\n");
	} else if (s->value[K_NIS_UPDATE_PATH] != NULL) {
		fprintf(out, "\t# NIS_UPDATE_PATH ignored: USE_NIS is off\n");
	}
	fprintf(out, "}\n\n");
}

static void
write_policy(const struct sso *s, FILE *out)
{
	fprintf(out, "policy {\n\tsync-users = ");
	put_str(out, val(s, K_SYNC_USERS, "+ALL"));
	fprintf(out, "\n\tcase-ignore-name = %s\n}\n\n",
	    sso_bool(val(s, K_CASE_IGNORE_NAME, "1")) == 1 ? "true" : "false");
}

static void
write_peers(const struct sso *s, FILE *out)
{
	const char *port = val(s, K_PORT_NUMBER, "6677");
	size_t i;

	fprintf(out, "listen mepp {\n\taddress = \"0.0.0.0\"\n\tport = %s\n}\n\n",
	    port);
	for (i = 0; i < s->n_hosts; i++) {
		const struct sso_host *h = &s->hosts[i];
		const char *key = h->key[0] != '\0' ? h->key :
		    val(s, K_ENCRYPT_KEY, "");
		char name[80];

		peer_name(h->host, name, sizeof(name));
		fprintf(out, "peer ");
		put_str(out, name);
		fprintf(out, " {\n\tprotocol = mepp\n\taddress = ");
		put_str(out, h->host);
		fprintf(out, "\n\tport = %s\n", h->port[0] != '\0' ? h->port : port);
		if (key[0] != '\0') {
			fprintf(out, "\tkey = ");
			put_str(out, key);
			fprintf(out, "\n");
		} else {
			fprintf(out, "\t# no ENCRYPT_KEY: put the legacy key in "
			    "this file, mode 0600\n\tkey-file = \"/etc/psync/"
			    "keys/%s.key\"\n", name);
		}
		if (is_ip(h->host)) {
			fprintf(out, "\tdirection = both\n");
		} else {
			fprintf(out, "\t# %s is a host name: list the addresses it "
			    "connects from in trusted-addresses, then set direction "
			    "= both to accept its changes\n\tdirection = send\n",
			    h->host);
		}
		fprintf(out, "}\n\n");
	}
}

static void
write_queue(const struct sso *s, FILE *out)
{
	fprintf(out, "queue {\n");
	if (s->value[K_SYNC_DELAY] != NULL)
		fprintf(out, "\tretry-interval = %s\n", s->value[K_SYNC_DELAY]);
	if (s->value[K_SYNC_RETRIES] != NULL)
		fprintf(out, "\t# SYNC_RETRIES=%s has no equivalent: psync retries "
		    "with back-off until max-age\n", s->value[K_SYNC_RETRIES]);
	fprintf(out, "}\n");
	if (s->value[K_IGNORE_PROPAGATION_ERRORS] != NULL)
		fprintf(out, "\n# IGNORE_PROPAGATION_ERRORS=%s: psync never fails the "
		    "local change for a peer's error;\n# changes wait in the queue. "
		    "pam_psync's 'strict' option fails a change that\n# cannot be "
		    "queued.\n", s->value[K_IGNORE_PROPAGATION_ERRORS]);
}

int
sso_convert(const char *text, const char *name, FILE *out, struct psync_err *err)
{
	return sso_convert_warn(text, name, out, NULL, NULL, err);
}

int
sso_convert_warn(const char *text, const char *name, FILE *out,
    sso_warn_fn warn, void *ctx, struct psync_err *err)
{
	struct sso *sp;
	size_t i;
	int rc = -1;

	/* Big (hosts, warnings): on the heap, not the caller's stack. */
	if ((sp = calloc(1, sizeof(*sp))) == NULL) {
		perr_set(err, PSYNC_E_WRITE, "%s: out of memory", name);
		return -1;
	}
	sp->name = name;
	sp->warn_fn = warn;
	sp->warn_ctx = ctx;
	perr_clear(err);
	if (sso_read(sp, text, name, err) == -1 || sso_check(sp, err) == -1)
		goto done;
	if (sp->n_hosts == 0) {
		perr_set(err, PSYNC_E_BAD_PASSWD_FILE, "%s: SYNC_HOSTS is missing "
		    "or empty: there is no Windows server to sync with", name);
		goto done;
	}
	fprintf(out, "# psync.conf converted from %s by psyncctl import-sso.\n"
	    "# The legacy key is kept inline as 'key': keep this file mode 0600.\n\n",
	    name);
	if (sp->unknown[0] != '\0') {
		sso_warn(sp, 0, "unknown keys, not converted: %s", sp->unknown);
		fprintf(out, "# Unknown legacy keys, not converted: %s\n\n",
		    sp->unknown);
	}
	sso_warn_sort(sp);
	if (sp->n_warn > 0) {
		fprintf(out, "# The import warned:\n");
		for (i = 0; i < sp->n_warn; i++)
			fprintf(out, "#   %s\n", sp->warn[i]);
		fprintf(out, "\n");
	}
	write_store(sp, out);
	write_policy(sp, out);
	write_peers(sp, out);
	write_queue(sp, out);
	rc = ferror(out) ? -1 : 0;
	if (rc == -1)
		perr_set(err, PSYNC_E_WRITE, "%s: cannot write the converted "
		    "configuration", name);
done:
	sso_free(sp);
	free(sp);
	return rc;
}
