/*
 * psync.conf: the libconfuse option tables, the value parsers and
 * validators that give every error as "FILE:LINE: option 'NAME': expected
 * ...", the cross-checks that need the whole file, and the conversion into
 * the plain structures of config.h.
 */
#include "config.h"

#include <arpa/inet.h>
#include <confuse.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "codes.h"
#include "config_file.h"
#include "log.h"
#include "mepp.h"
#include "policy.h"
#include "util.h"

#ifndef SYSCONFDIR
#define SYSCONFDIR	"/etc"
#endif
#ifndef LOCALSTATEDIR
#define LOCALSTATEDIR	"/var"
#endif
#ifndef RUNSTATEDIR
#define RUNSTATEDIR	"/run"
#endif

/* libconfuse has no user pointer: the load in progress lives here. */
struct loader {
	const char	*name;
	config_report_fn report;
	void		*ctx;
	int		 errors;
	int		 warnings;
	mode_t		 mode;		/* of the file; 0 for a string */
};
static _Thread_local struct loader *cur;

/* ------------------------------------------------------------ reporting */

static void __attribute__((format(printf, 3, 0)))
report(int line, bool error, const char *fmt, va_list ap)
{
	char msg[PSYNC_ERR_LEN], full[PSYNC_ERR_LEN + 300];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line > 0)
		snprintf(full, sizeof(full), "%s:%d: %s%s", cur->name, line,
		    error ? "" : "warning: ", msg);
	else
		snprintf(full, sizeof(full), "%s: %s%s", cur->name,
		    error ? "" : "warning: ", msg);
	if (error)
		cur->errors++;
	else
		cur->warnings++;
	if (cur->report != NULL)
		cur->report(cur->ctx, full);
}

static void __attribute__((format(printf, 2, 3)))
conf_error(int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(line, true, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 2, 3)))
conf_warning(int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(line, false, fmt, ap);
	va_end(ap);
}

/*
 * libconfuse's own messages (syntax, unknown options) come through here;
 * an unknown option also gets what was expected instead.
 */
static void __attribute__((format(printf, 2, 0)))
confuse_errfunc(cfg_t *cfg, const char *fmt, va_list ap)
{
	char msg[PSYNC_ERR_LEN];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (strncmp(msg, "no such option", 14) == 0)
		conf_error(cfg != NULL ? cfg->line : 0, "%s: expected one of the "
		    "options of %s%s%s (psync.conf(5))", msg,
		    cfg != NULL && strcmp(cfg->name, "root") != 0 ?
		    "section '" : "the top level", cfg != NULL &&
		    strcmp(cfg->name, "root") != 0 ? cfg->name : "",
		    cfg != NULL && strcmp(cfg->name, "root") != 0 ? "'" : "");
	else
		conf_error(cfg != NULL ? cfg->line : 0, "%s", msg);
}

/* ------------------------------------------------------------ value parsers */

struct name_value {
	const char	*name;
	long		 value;
};

static const struct name_value store_types[] = {
	{ "files", STORE_FILES }, { "pam", STORE_PAM }, { "samba", STORE_SAMBA },
	{ NULL, 0 }
};
static const struct name_value hash_methods[] = {
	{ "login.defs", HASH_LOGIN_DEFS }, { "yescrypt", HASH_YESCRYPT },
	{ "sha512", HASH_SHA512 }, { "sha256", HASH_SHA256 },
	{ "bcrypt", HASH_BCRYPT }, { NULL, 0 }
};
static const struct name_value protocols[] = {
	{ "psync", PROTO_PSYNC }, { "mepp", PROTO_MEPP }, { NULL, 0 }
};
/* 0 is "not given": only MEPP peers may give it. */
static const struct name_value key_derivations[] = {
	{ "4-byte", 4 }, { "8-byte", 8 }, { NULL, 0 }
};
static const struct name_value directions[] = {
	{ "send", DIR_SEND }, { "receive", DIR_RECEIVE }, { "both", DIR_BOTH },
	{ NULL, 0 }
};

static const char *
nv_name(const struct name_value *t, long value)
{
	for (; t->name != NULL; t++)
		if (t->value == value)
			return t->name;
	return "?";
}

static void
nv_expected(const struct name_value *t, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (; t->name != NULL; t++) {
		int n = snprintf(buf + used, len - used, "%s%s",
		    used > 0 ? (t[1].name == NULL ? " or " : ", ") : "", t->name);

		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
	}
}

static int
parse_enum(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result,
    const struct name_value *table)
{
	const struct name_value *t;
	char expected[128];

	for (t = table; t->name != NULL; t++) {
		if (strcasecmp(t->name, value) == 0) {
			*(long *)result = t->value;
			return 0;
		}
	}
	nv_expected(table, expected, sizeof(expected));
	conf_error(cfg->line, "option '%s': expected %s, got '%s'",
	    cfg_opt_name(opt), expected, value);
	return -1;
}

static int
parse_store_type(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	return parse_enum(cfg, opt, value, result, store_types);
}

static int
parse_hash_method(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	return parse_enum(cfg, opt, value, result, hash_methods);
}

static int
parse_protocol(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	return parse_enum(cfg, opt, value, result, protocols);
}

static int
parse_key_derivation(cfg_t *cfg, cfg_opt_t *opt, const char *value,
    void *result)
{
	return parse_enum(cfg, opt, value, result, key_derivations);
}

static int
parse_direction(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	return parse_enum(cfg, opt, value, result, directions);
}

long
config_parse_duration(const char *text)
{
	static const struct { char unit; long mult; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
		{ 'w', 604800 },
	};
	char *end;
	long n;
	size_t i;

	if (text == NULL || !isdigit((unsigned char)text[0]))
		return -1;
	errno = 0;
	n = strtol(text, &end, 10);
	if (errno != 0 || n < 0)
		return -1;
	if (*end == '\0')
		return n;
	if (end[1] != '\0')
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (*end == units[i].unit) {
			if (n > LONG_MAX / units[i].mult)
				return -1;
			return n * units[i].mult;
		}
	}
	return -1;
}

static int
parse_duration(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	long n = config_parse_duration(value);

	if (n < 0 || n > UINT_MAX) {
		conf_error(cfg->line, "option '%s': expected a duration such as "
		    "90, 90s, 15m, 2h, 7d or 1w, got '%s'", cfg_opt_name(opt), value);
		return -1;
	}
	*(long *)result = n;
	return 0;
}

static int
parse_count(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(value, &end, 10);
	if (!isdigit((unsigned char)value[0]) || *end != '\0' || errno != 0 ||
	    n > UINT_MAX) {
		conf_error(cfg->line, "option '%s': expected a whole number of 0 "
		    "or more, got '%s'", cfg_opt_name(opt), value);
		return -1;
	}
	*(long *)result = n;
	return 0;
}

static int
parse_facility(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	int f = log_facility_from_name(value);

	if (f < 0) {
		conf_error(cfg->line, "option '%s': expected a syslog facility "
		    "(auth, authpriv, daemon, user, local0 to local7), got '%s'",
		    cfg_opt_name(opt), value);
		return -1;
	}
	*(long *)result = f;
	return 0;
}

static int
parse_level(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	int l = log_level_from_name(value);

	if (l < 0) {
		conf_error(cfg->line, "option '%s': expected error, warning, "
		    "notice, info or debug, got '%s'", cfg_opt_name(opt), value);
		return -1;
	}
	*(long *)result = l;
	return 0;
}

/* ------------------------------------------------------------ validators */

static int
check_range(cfg_t *cfg, const char *name, long lo, long hi)
{
	long v = cfg_getint(cfg, name);

	if (v < lo || v > hi) {
		conf_error(cfg->line, "option '%s': expected a value from %ld to "
		    "%ld, got %ld", name, lo, hi, v);
		return -1;
	}
	return 0;
}

static int
validate_port(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, cfg_opt_name(opt), 0, 65535);
}

static int
validate_classes(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, cfg_opt_name(opt), 0, 4);
}

static int
validate_bcrypt_cost(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, cfg_opt_name(opt), 4, 31);
}

static int
validate_rounds(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, cfg_opt_name(opt), 1000, 999999999);
}

static int
validate_yescrypt_cost(cfg_t *cfg, cfg_opt_t *opt)
{
	return check_range(cfg, cfg_opt_name(opt), 1, 11);
}

static int
validate_abs_path(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *v = cfg_opt_getnstr(opt, 0);

	if (v != NULL && v[0] != '\0' && v[0] != '/') {
		conf_error(cfg->line, "option '%s': expected an absolute path, "
		    "got '%s'", cfg_opt_name(opt), v);
		return -1;
	}
	return 0;
}

/* An option that no longer does anything: accepted, with a warning. */
static int
validate_deprecated(cfg_t *cfg, cfg_opt_t *opt)
{
	conf_warning(cfg->line, "option '%s' is deprecated and ignored: the "
	    "store keeps no fingerprints any more; remove it",
	    cfg_opt_name(opt));
	return 0;
}

static bool
is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

static int
validate_addresses(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned int i;

	for (i = 0; i < cfg_opt_size(opt); i++) {
		const char *a = cfg_opt_getnstr(opt, i);

		if (!is_ip_literal(a)) {
			conf_error(cfg->line, "option '%s': expected IPv4 or "
			    "IPv6 addresses, got '%s'", cfg_opt_name(opt), a);
			return -1;
		}
	}
	return 0;
}

static bool
valid_node_name(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > 64)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL)
			return false;
	return true;
}

static int
validate_node_name(cfg_t *cfg, cfg_opt_t *opt)
{
	const char *v = cfg_opt_getnstr(opt, 0);

	if (v != NULL && v[0] != '\0' && !valid_node_name(v)) {
		conf_error(cfg->line, "option '%s': expected 1 to 64 letters, "
		    "digits, '.', '_' or '-', got '%s'", cfg_opt_name(opt), v);
		return -1;
	}
	return 0;
}

static int
validate_rules(cfg_t *cfg)
{
	long lo = cfg_getint(cfg, "min-length");
	long hi = cfg_getint(cfg, "max-length");

	if (hi != 0 && lo > hi) {
		conf_error(cfg->line, "option 'min-length': expected at most "
		    "max-length (%ld), got %ld", hi, lo);
		return -1;
	}
	return 0;
}

static int
validate_policy(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);

	(void)cfg;
	return validate_rules(sec);
}

static int
validate_sync_users(cfg_t *cfg, cfg_opt_t *opt)
{
	struct psync_err err;

	if (policy_sync_users_match(cfg_opt_getnstr(opt, 0), NULL, true,
	    &err) == -1) {
		conf_error(cfg->line, "option '%s': %s", cfg_opt_name(opt),
		    err.msg);
		return -1;
	}
	return 0;
}

static int
validate_listen(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	const char *title = cfg_title(sec);
	const char *addr = cfg_getstr(sec, "address");

	(void)cfg;
	if (strcmp(title, "psync") != 0 && strcmp(title, "mepp") != 0) {
		conf_error(sec->line, "section 'listen %s': expected 'listen "
		    "psync' or 'listen mepp'", title);
		return -1;
	}
	if (!is_ip_literal(addr)) {
		conf_error(sec->line, "listen %s: option 'address': expected an "
		    "IPv4 or IPv6 address to bind, got '%s'", title, addr);
		return -1;
	}
	return 0;
}

static int
validate_peer(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	const char *name = cfg_title(sec);
	long proto = cfg_getint(sec, "protocol");
	long dir = cfg_getint(sec, "direction");
	const char *address = cfg_getstr(sec, "address");
	const char *key = cfg_getstr(sec, "key");
	const char *key_file = cfg_getstr(sec, "key-file");
	bool x509 = cfg_getstr(sec, "cert-file")[0] != '\0';
	int rc = 0;

	(void)cfg;
	if (!valid_node_name(name)) {
		conf_error(sec->line, "peer '%s': expected a name of 1 to 64 "
		    "letters, digits, '.', '_' or '-'", name);
		return -1;
	}
	if ((dir & DIR_SEND) && address[0] == '\0') {
		conf_error(sec->line, "peer '%s': option 'address': expected the "
		    "host to send to (direction is %s)", name,
		    nv_name(directions, dir));
		rc = -1;
	}
	if (proto == PROTO_MEPP) {
		if (key[0] == '\0' && key_file[0] == '\0') {
			conf_error(sec->line, "peer '%s': expected option 'key' "
			    "or 'key-file' with the legacy MEPP key", name);
			rc = -1;
		} else if (key[0] != '\0' && key_file[0] != '\0') {
			conf_error(sec->line, "peer '%s': expected only one of "
			    "'key' and 'key-file'", name);
			rc = -1;
		}
		if (x509) {
			conf_error(sec->line, "peer '%s': option 'cert-file': "
			    "MEPP has no certificates (protocol is mepp)", name);
			rc = -1;
		}
		if ((dir & DIR_RECEIVE) && cfg_size(sec, "trusted-addresses") == 0 &&
		    !is_ip_literal(address)) {
			conf_error(sec->line, "peer '%s': option "
			    "'trusted-addresses': expected the addresses this "
			    "Windows server connects from (direction is %s)",
			    name, nv_name(directions, dir));
			rc = -1;
		}
	} else {
		if (cfg_getint(sec, "key-derivation") != 0) {
			conf_error(sec->line, "peer '%s': option 'key-derivation': "
			    "only MEPP peers derive a session key from a legacy "
			    "key (protocol is psync)", name);
			rc = -1;
		}
		if (key[0] != '\0') {
			conf_error(sec->line, "peer '%s': option 'key': only MEPP "
			    "peers have an inline key; psync peers use 'key-file' "
			    "(32 random bytes, psyncctl keygen)", name);
			rc = -1;
		}
		if (x509 && (cfg_getstr(sec, "cert-key-file")[0] == '\0' ||
		    cfg_getstr(sec, "ca-file")[0] == '\0')) {
			conf_error(sec->line, "peer '%s': expected 'ca-file', "
			    "'cert-file' and 'cert-key-file' together", name);
			rc = -1;
		}
		if (!x509 && key_file[0] == '\0') {
			conf_error(sec->line, "peer '%s': option 'key-file': "
			    "expected the pre-shared key file (or X.509 "
			    "'ca-file', 'cert-file', 'cert-key-file')", name);
			rc = -1;
		}
	}
	if (validate_rules(sec) == -1)
		rc = -1;
	return rc;
}

/* ------------------------------------------------------------ option tables */

/* libconfuse wants a writable default for lists. */
static char empty_list[] = "{}";

#define RULE_OPTS \
	CFG_INT_CB("min-length",	0,	CFGF_NONE, parse_count), \
	CFG_INT_CB("max-length",	0,	CFGF_NONE, parse_count), \
	CFG_INT_CB("min-classes",	0,	CFGF_NONE, parse_count), \
	CFG_BOOL("reject-username",	cfg_false, CFGF_NONE)

static cfg_opt_t store_opts[] = {
	CFG_INT_CB("type",		STORE_FILES,	CFGF_NONE, parse_store_type),
	CFG_STR("shadow-file",		"/etc/shadow",	CFGF_NONE),
	CFG_STR("passwd-file",		"/etc/passwd",	CFGF_NONE),
	CFG_STR("group-file",		"/etc/group",	CFGF_NONE),
	CFG_BOOL("hashes-in-passwd",	cfg_false,	CFGF_NONE),
	CFG_INT_CB("hash-method",	HASH_LOGIN_DEFS, CFGF_NONE, parse_hash_method),
	CFG_INT_CB("hash-cost",		0,		CFGF_NONE, parse_count),
	CFG_STR("login-defs",		"/etc/login.defs", CFGF_NONE),
	CFG_STR("nis-make-dir",		"",		CFGF_NONE),
	CFG_STR("pam-service",		"psync",	CFGF_NONE),
	CFG_STR("samba-private-dir",	"/var/lib/samba/private", CFGF_NONE),
	CFG_INT_CB("lock-timeout",	15,		CFGF_NONE, parse_duration),
	CFG_INT_CB("hash-threads",	0,		CFGF_NONE, parse_count),
	CFG_BOOL("fingerprints",	cfg_true,	CFGF_NONE),
	/* 0: the default, raised above this host's own cost (lib/store/store.h). */
	CFG_INT_CB("hash-max-bcrypt-cost", 0,		CFGF_NONE, parse_count),
	CFG_INT_CB("hash-max-rounds",	0,		CFGF_NONE, parse_count),
	CFG_INT_CB("hash-max-yescrypt-cost", 0,		CFGF_NONE, parse_count),
	CFG_END()
};

static cfg_opt_t policy_opts[] = {
	CFG_STR("sync-users",		"+ALL",		CFGF_NONE),
	CFG_STR_LIST("allow-groups",	empty_list,		CFGF_NONE),
	CFG_STR_LIST("deny-groups",	empty_list,		CFGF_NONE),
	CFG_INT_CB("min-uid",		1000,		CFGF_NONE, parse_count),
	CFG_BOOL("skip-locked",		cfg_true,	CFGF_NONE),
	CFG_BOOL("case-ignore-name",	cfg_true,	CFGF_NONE),
	CFG_INT_CB("max-clock-skew",	300,		CFGF_NONE, parse_duration),
	CFG_STR("name-map",		"",		CFGF_NONE),
	RULE_OPTS,
	CFG_END()
};

static cfg_opt_t listen_opts[] = {
	CFG_BOOL("enabled",		cfg_true,	CFGF_NONE),
	CFG_STR("address",		"::",		CFGF_NONE),
	CFG_INT_CB("port",		0,		CFGF_NONE, parse_count),
	CFG_END()
};

static cfg_opt_t peer_opts[] = {
	CFG_INT_CB("protocol",		PROTO_PSYNC,	CFGF_NONE, parse_protocol),
	CFG_STR("address",		"",		CFGF_NONE),
	CFG_INT_CB("port",		0,		CFGF_NONE, parse_count),
	CFG_STR("key-file",		"",		CFGF_NONE),
	CFG_STR("key",			"",		CFGF_NONE),
	CFG_INT_CB("key-derivation",	0,		CFGF_NONE, parse_key_derivation),
	CFG_STR_LIST("trusted-addresses", empty_list,		CFGF_NONE),
	CFG_INT_CB("direction",		DIR_BOTH,	CFGF_NONE, parse_direction),
	CFG_BOOL("relay",		cfg_false,	CFGF_NONE),
	CFG_BOOL("accept-hashes",	cfg_false,	CFGF_NONE),
	CFG_STR("ca-file",		"",		CFGF_NONE),
	CFG_STR("cert-file",		"",		CFGF_NONE),
	CFG_STR("cert-key-file",	"",		CFGF_NONE),
	CFG_INT_CB("key-rotation-days",	0,		CFGF_NONE, parse_count),
	CFG_INT_CB("connect-timeout",	10,		CFGF_NONE, parse_duration),
	RULE_OPTS,
	CFG_END()
};

static cfg_opt_t queue_opts[] = {
	CFG_STR("directory",		LOCALSTATEDIR "/lib/psync", CFGF_NONE),
	CFG_STR("spool-directory",	LOCALSTATEDIR "/spool/psync", CFGF_NONE),
	CFG_STR("host-key-file",	SYSCONFDIR "/psync/host.key", CFGF_NONE),
	CFG_INT_CB("retry-interval",	30,		CFGF_NONE, parse_duration),
	CFG_INT_CB("max-retry-interval", 3600,		CFGF_NONE, parse_duration),
	CFG_INT_CB("max-age",		604800,		CFGF_NONE, parse_duration),
	CFG_INT_CB("retention",		30 * 86400,	CFGF_NONE, parse_duration),
	CFG_INT_CB("warn-depth",	1000,		CFGF_NONE, parse_count),
	CFG_INT_CB("warn-age",		3600,		CFGF_NONE, parse_duration),
	CFG_END()
};

static cfg_opt_t log_opts[] = {
	CFG_INT_CB("facility",		LOG_AUTHPRIV,	CFGF_NONE, parse_facility),
	CFG_INT_CB("level",		LOG_INFO,	CFGF_NONE, parse_level),
	CFG_END()
};

static cfg_opt_t root_opts[] = {
	CFG_STR("node-name",		"",		CFGF_NONE),
	CFG_STR("control-socket",	RUNSTATEDIR "/psync/control.sock", CFGF_NONE),
	CFG_STR("tls-ca-file",		"",		CFGF_NONE),
	CFG_STR("tls-cert-file",	"",		CFGF_NONE),
	CFG_STR("tls-key-file",		"",		CFGF_NONE),
	CFG_SEC("store",		store_opts,	CFGF_NONE),
	CFG_SEC("policy",		policy_opts,	CFGF_NONE),
	CFG_SEC("listen",		listen_opts,
	    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_SEC("peer",			peer_opts,
	    CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_SEC("queue",		queue_opts,	CFGF_NONE),
	CFG_SEC("log",			log_opts,	CFGF_NONE),
	CFG_END()
};

/* Validators per option path, installed on every parse. */
static const struct {
	const char		*path;
	cfg_validate_callback_t	 fn;
} validators[] = {
	{ "node-name",			validate_node_name },
	{ "control-socket",		validate_abs_path },
	{ "tls-ca-file",		validate_abs_path },
	{ "tls-cert-file",		validate_abs_path },
	{ "tls-key-file",		validate_abs_path },
	{ "store|shadow-file",		validate_abs_path },
	{ "store|passwd-file",		validate_abs_path },
	{ "store|group-file",		validate_abs_path },
	{ "store|login-defs",		validate_abs_path },
	{ "store|nis-make-dir",		validate_abs_path },
	{ "store|samba-private-dir",	validate_abs_path },
	{ "store|fingerprints",		validate_deprecated },
	{ "store|hash-max-bcrypt-cost",	validate_bcrypt_cost },
	{ "store|hash-max-rounds",	validate_rounds },
	{ "store|hash-max-yescrypt-cost", validate_yescrypt_cost },
	{ "policy",			validate_policy },
	{ "policy|min-classes",		validate_classes },
	{ "policy|sync-users",		validate_sync_users },
	{ "policy|name-map",		validate_abs_path },
	{ "listen",			validate_listen },
	{ "listen|port",		validate_port },
	{ "peer",			validate_peer },
	{ "peer|port",			validate_port },
	{ "peer|min-classes",		validate_classes },
	{ "peer|trusted-addresses",	validate_addresses },
	{ "peer|key-file",		validate_abs_path },
	{ "peer|ca-file",		validate_abs_path },
	{ "peer|cert-file",		validate_abs_path },
	{ "peer|cert-key-file",		validate_abs_path },
	{ "queue|directory",		validate_abs_path },
	{ "queue|spool-directory",	validate_abs_path },
	{ "queue|host-key-file",	validate_abs_path },
};

/* ------------------------------------------------------------ conversion */

static char *
dup_or_null(const char *s)
{
	if (s == NULL || s[0] == '\0')
		return NULL;
	return strdup(s);
}

static char *
dup_str(const char *s)
{
	return strdup(s != NULL ? s : "");
}

static char **
dup_list(cfg_t *cfg, const char *name, size_t *n)
{
	unsigned int i, size = cfg_size(cfg, name);
	char **v;

	*n = 0;
	v = calloc(size + 1, sizeof(*v));
	if (v == NULL)
		return NULL;
	for (i = 0; i < size; i++)
		v[i] = dup_str(cfg_getnstr(cfg, name, i));
	*n = size;
	return v;
}

static void
free_list(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
get_rules(cfg_t *sec, struct pw_rules *r)
{
	r->min_length = (unsigned int)cfg_getint(sec, "min-length");
	r->max_length = (unsigned int)cfg_getint(sec, "max-length");
	r->min_classes = (unsigned int)cfg_getint(sec, "min-classes");
	r->reject_username = cfg_getbool(sec, "reject-username");
}

static void
convert_listen(cfg_t *root, const char *which, unsigned int default_port,
    struct listen_conf *l)
{
	cfg_t *sec = cfg_gettsec(root, "listen", which);

	l->enabled = sec != NULL && cfg_getbool(sec, "enabled");
	l->address = dup_str(sec != NULL ? cfg_getstr(sec, "address") : "::");
	l->port = default_port;
	if (sec != NULL && cfg_getint(sec, "port") != 0)
		l->port = (unsigned int)cfg_getint(sec, "port");
}

static int
convert_peer(cfg_t *sec, struct peer_conf *p)
{
	p->name = dup_str(cfg_title(sec));
	p->protocol = (enum peer_protocol)(int)cfg_getint(sec, "protocol");
	p->address = dup_or_null(cfg_getstr(sec, "address"));
	p->port = (unsigned int)cfg_getint(sec, "port");
	if (p->port == 0)
		p->port = p->protocol == PROTO_MEPP ? PSYNC_MEPP_PORT : PSYNC_TLS_PORT;
	p->key_file = dup_or_null(cfg_getstr(sec, "key-file"));
	p->legacy_key = dup_or_null(cfg_getstr(sec, "key"));
	p->mepp_key_words = cfg_getint(sec, "key-derivation") == 8 ? 8 : 4;
	p->trusted = dup_list(sec, "trusted-addresses", &p->n_trusted);
	/* An address given as a literal is trusted by default. */
	if (p->n_trusted == 0 && p->address != NULL && is_ip_literal(p->address)) {
		free(p->trusted);
		p->trusted = calloc(2, sizeof(*p->trusted));
		if (p->trusted == NULL)
			return -1;
		p->trusted[0] = strdup(p->address);
		p->n_trusted = 1;
	}
	p->direction = (enum peer_direction)(int)cfg_getint(sec, "direction");
	p->relay = cfg_getbool(sec, "relay");
	p->accept_hashes = cfg_getbool(sec, "accept-hashes");
	p->ca_file = dup_or_null(cfg_getstr(sec, "ca-file"));
	p->cert_file = dup_or_null(cfg_getstr(sec, "cert-file"));
	p->cert_key_file = dup_or_null(cfg_getstr(sec, "cert-key-file"));
	p->key_rotation_days = (unsigned int)cfg_getint(sec, "key-rotation-days");
	p->connect_timeout = (unsigned int)cfg_getint(sec, "connect-timeout");
	get_rules(sec, &p->rules);
	p->line = sec->line;
	return p->name == NULL || p->trusted == NULL ? -1 : 0;
}

static struct psync_config *
convert(cfg_t *root, const char *path)
{
	struct psync_config *c;
	cfg_t *s;
	unsigned int i;
	char host[256];

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->path = dup_str(path);
	if (cfg_getstr(root, "node-name")[0] != '\0') {
		c->node_name = dup_str(cfg_getstr(root, "node-name"));
	} else {
		if (gethostname(host, sizeof(host)) == -1)
			str_copy(host, "localhost", sizeof(host));
		host[sizeof(host) - 1] = '\0';
		c->node_name = dup_str(host);
	}
	c->control_socket = dup_str(cfg_getstr(root, "control-socket"));
	c->tls_ca_file = dup_or_null(cfg_getstr(root, "tls-ca-file"));
	c->tls_cert_file = dup_or_null(cfg_getstr(root, "tls-cert-file"));
	c->tls_key_file = dup_or_null(cfg_getstr(root, "tls-key-file"));

	s = cfg_getsec(root, "store");
	c->store.type = (enum store_type)(int)cfg_getint(s, "type");
	c->store.shadow_file = dup_str(cfg_getstr(s, "shadow-file"));
	c->store.passwd_file = dup_str(cfg_getstr(s, "passwd-file"));
	c->store.group_file = dup_str(cfg_getstr(s, "group-file"));
	c->store.hashes_in_passwd = cfg_getbool(s, "hashes-in-passwd");
	c->store.hash_method = (enum hash_method)(int)cfg_getint(s, "hash-method");
	c->store.hash_cost = (unsigned int)cfg_getint(s, "hash-cost");
	c->store.login_defs = dup_str(cfg_getstr(s, "login-defs"));
	c->store.nis_make_dir = dup_or_null(cfg_getstr(s, "nis-make-dir"));
	c->store.pam_service = dup_str(cfg_getstr(s, "pam-service"));
	c->store.samba_private_dir = dup_str(cfg_getstr(s, "samba-private-dir"));
	c->store.lock_timeout = (unsigned int)cfg_getint(s, "lock-timeout");
	c->store.hash_threads = (unsigned int)cfg_getint(s, "hash-threads");
	c->store.fingerprints = cfg_getbool(s, "fingerprints");
	c->store.hash_limits.bcrypt_cost =
	    (unsigned int)cfg_getint(s, "hash-max-bcrypt-cost");
	c->store.hash_limits.rounds =
	    (unsigned long)cfg_getint(s, "hash-max-rounds");
	c->store.hash_limits.yescrypt_cost =
	    (unsigned int)cfg_getint(s, "hash-max-yescrypt-cost");

	s = cfg_getsec(root, "policy");
	c->policy.sync_users = dup_str(cfg_getstr(s, "sync-users"));
	c->policy.allow_groups = dup_list(s, "allow-groups", &c->policy.n_allow_groups);
	c->policy.deny_groups = dup_list(s, "deny-groups", &c->policy.n_deny_groups);
	c->policy.min_uid = (unsigned int)cfg_getint(s, "min-uid");
	c->policy.skip_locked = cfg_getbool(s, "skip-locked");
	c->policy.case_ignore_name = cfg_getbool(s, "case-ignore-name");
	c->policy.max_clock_skew = (unsigned int)cfg_getint(s, "max-clock-skew");
	c->policy.name_map_file = dup_or_null(cfg_getstr(s, "name-map"));
	get_rules(s, &c->policy.rules);

	convert_listen(root, "mepp", PSYNC_MEPP_PORT, &c->listen_mepp);
	convert_listen(root, "psync", PSYNC_TLS_PORT, &c->listen_psync);

	c->n_peers = cfg_size(root, "peer");
	c->peers = calloc(c->n_peers + 1, sizeof(*c->peers));
	if (c->peers == NULL)
		goto fail;
	for (i = 0; i < c->n_peers; i++)
		if (convert_peer(cfg_getnsec(root, "peer", i), &c->peers[i]) == -1)
			goto fail;

	s = cfg_getsec(root, "queue");
	c->queue.directory = dup_str(cfg_getstr(s, "directory"));
	c->store.state_dir = dup_str(c->queue.directory);
	c->queue.spool_directory = dup_str(cfg_getstr(s, "spool-directory"));
	c->queue.host_key_file = dup_str(cfg_getstr(s, "host-key-file"));
	c->queue.retry_interval = (unsigned int)cfg_getint(s, "retry-interval");
	c->queue.max_retry_interval = (unsigned int)cfg_getint(s, "max-retry-interval");
	c->queue.max_age = (unsigned int)cfg_getint(s, "max-age");
	c->queue.retention = (unsigned int)cfg_getint(s, "retention");
	c->queue.warn_depth = (unsigned int)cfg_getint(s, "warn-depth");
	c->queue.warn_age = (unsigned int)cfg_getint(s, "warn-age");

	s = cfg_getsec(root, "log");
	c->log.facility = (int)cfg_getint(s, "facility");
	c->log.level = (int)cfg_getint(s, "level");

	if (c->path == NULL || c->node_name == NULL || c->store.shadow_file == NULL ||
	    c->policy.sync_users == NULL || c->queue.directory == NULL ||
	    c->store.state_dir == NULL ||
	    c->policy.allow_groups == NULL || c->policy.deny_groups == NULL)
		goto fail;
	return c;
fail:
	config_free(c);
	return NULL;
}

/* ------------------------------------------------------------ whole-file checks */

/* Key files: missing is a warning (created later), unsafe is an error. */
static void
check_key_file(const char *peer, const char *path, int line)
{
	struct psync_err err;
	int fd;

	if (path == NULL)
		return;
	if (access(path, F_OK) == -1 && errno == ENOENT) {
		conf_warning(line, "peer '%s': key file %s does not exist yet "
		    "(psyncctl keygen or set-key creates it)", peer, path);
		return;
	}
	fd = file_open_trusted(path, true, &err);
	if (fd == -1) {
		conf_error(line, "peer '%s': option 'key-file': %s", peer, err.msg);
		return;
	}
	close(fd);
}

static bool
rules_set(const struct pw_rules *r)
{
	return r->min_length != 0 || r->max_length != 0 ||
	    r->min_classes != 0 || r->reject_username;
}

static void
check_whole(const struct psync_config *c, bool check_files)
{
	size_t i;
	bool any_mepp = false;

	for (i = 0; i < c->n_peers; i++) {
		const struct peer_conf *p = &c->peers[i];
		char why[256];

		if (strcmp(p->name, c->node_name) == 0)
			conf_error(p->line, "peer '%s': expected a name other "
			    "than this node's own name", p->name);
		if (p->protocol == PROTO_MEPP) {
			any_mepp = true;
			/* An inline key is a key file: private, or refused. */
			if (p->legacy_key != NULL &&
			    (cur->mode & (S_IRGRP | S_IROTH)) != 0)
				conf_error(p->line, "peer '%s': option 'key': "
				    "refused: the key is written in a file "
				    "readable by group or others (mode %04o); "
				    "make the file mode 0600 or put the key in "
				    "a key-file", p->name,
				    (unsigned)(cur->mode & 07777));
			if (p->legacy_key != NULL &&
			    mepp_key_check(p->legacy_key, why, sizeof(why)) == -1)
				conf_warning(p->line, "peer '%s': option 'key': "
				    "%s (old deployments have such keys; the "
				    "Windows side may refuse to set them)", p->name,
				    why);
			if ((p->direction & DIR_RECEIVE) && !c->listen_mepp.enabled)
				conf_warning(p->line, "peer '%s': receives over "
				    "MEPP but no 'listen mepp' section is enabled: "
				    "nothing will arrive from it", p->name);
		} else if ((p->direction & DIR_RECEIVE) && !c->listen_psync.enabled) {
			conf_warning(p->line, "peer '%s': receives over psync "
			    "but no 'listen psync' section is enabled: nothing "
			    "will arrive from it", p->name);
		}
		/* A hash cannot be held to password rules. */
		if (p->accept_hashes && (p->direction & DIR_RECEIVE) &&
		    rules_set(&c->policy.rules))
			conf_warning(p->line, "peer '%s': accept-hashes = true: "
			    "its crypt hashes are stored without this host's "
			    "password rules (min-length, min-classes...), which "
			    "only a password can be checked against", p->name);
		if (check_files) {
			check_key_file(p->name, p->key_file, p->line);
			check_key_file(p->name, p->cert_key_file, p->line);
		}
	}
	if (any_mepp) {
		char names[512] = "";
		size_t used = 0;

		for (i = 0; i < c->n_peers && used < sizeof(names); i++) {
			int w;

			if (c->peers[i].protocol != PROTO_MEPP)
				continue;
			w = snprintf(names + used, sizeof(names) - used, "%s%s",
			    used > 0 ? ", " : "", c->peers[i].name);
			if (w > 0)
				used += (size_t)w;
		}
		conf_warning(0, "MEPP is weak (3DES, SHA-1, a key derived from "
		    "the shared text, no forward secrecy); it is used only with "
		    "the legacy peers %s", names);
	}
	if (c->listen_mepp.enabled && !any_mepp)
		conf_warning(0, "'listen mepp' is enabled but no peer uses "
		    "protocol mepp: every client will be refused");
}

/* ------------------------------------------------------------ entry points */

#define CONFIG_MAX_SIZE	(1024 * 1024)

/*
 * libconfuse 3.3 miscounts lines after comments, and accepts a file that
 * ends inside a section. Blank out comments here (keeping every newline, so
 * line numbers stay true) and check that every '{' is closed, outside
 * quoted strings. Returns a new string, or NULL after reporting.
 */
static char *
preprocess(const char *text)
{
	size_t len = strlen(text), i, depth = 0;
	int line = 1, open_line[64];
	char *out, quote = 0;

	out = strdup(text);
	if (out == NULL) {
		conf_error(0, "out of memory");
		return NULL;
	}
	for (i = 0; i < len; i++) {
		char c = out[i];

		if (c == '\n')
			line++;
		if (quote != 0) {
			if (c == '\\' && i + 1 < len && out[i + 1] != '\n')
				i++;
			else if (c == quote)
				quote = 0;
			continue;
		}
		if (c == '"' || c == '\'') {
			quote = c;
		} else if (c == '#' || (c == '/' && out[i + 1] == '/')) {
			while (i < len && out[i] != '\n')
				out[i++] = ' ';
			i--;
		} else if (c == '/' && out[i + 1] == '*') {
			out[i++] = ' ';
			out[i++] = ' ';
			while (i < len && !(out[i] == '*' && out[i + 1] == '/')) {
				if (out[i] == '\n')
					line++;
				else
					out[i] = ' ';
				i++;
			}
			if (i >= len) {
				conf_error(line, "unexpected end of file inside a "
				    "/* comment */");
				goto fail;
			}
			out[i++] = ' ';
			out[i] = ' ';
		} else if (c == '{') {
			if (depth == sizeof(open_line) / sizeof(open_line[0])) {
				conf_error(line, "sections nested too deeply");
				goto fail;
			}
			open_line[depth++] = line;
		} else if (c == '}') {
			if (depth == 0) {
				conf_error(line, "expected an option or a section, "
				    "got '}' with no section open");
				goto fail;
			}
			depth--;
		}
	}
	if (quote != 0) {
		conf_error(line, "unexpected end of file inside a quoted string");
		goto fail;
	}
	if (depth > 0) {
		conf_error(line, "unexpected end of file: the '{' on line %d is "
		    "never closed", open_line[depth - 1]);
		goto fail;
	}
	return out;
fail:
	free(out);
	return NULL;
}

static struct psync_config *
load_text(const char *text, const char *name, bool check_files)
{
	struct psync_config *c = NULL;
	cfg_t *cfg = NULL;
	char *clean;

	clean = preprocess(text);
	if (clean == NULL)
		return NULL;
	cfg = cfg_init(root_opts, CFGF_NONE);
	if (cfg == NULL) {
		conf_error(0, "out of memory");
		goto done;
	}
	cfg_set_error_function(cfg, confuse_errfunc);
	for (size_t i = 0; i < sizeof(validators) / sizeof(validators[0]); i++)
		cfg_set_validate_func(cfg, validators[i].path, validators[i].fn);
	if (cfg_parse_buf(cfg, clean) != CFG_SUCCESS || cur->errors > 0) {
		if (cur->errors == 0)
			conf_error(0, "cannot parse the configuration");
		goto done;
	}
	c = convert(cfg, name);
	if (c == NULL) {
		conf_error(0, "out of memory while loading the configuration");
		goto done;
	}
	check_whole(c, check_files);
	if (cur->errors > 0) {
		config_free(c);
		c = NULL;
	}
done:
	if (cfg != NULL)
		cfg_free(cfg);
	free(clean);
	return c;
}

struct psync_config *
config_load(const char *path, bool check_owner, config_report_fn rep, void *ctx)
{
	struct loader ld = { path, rep, ctx, 0, 0, 0 };
	struct psync_config *c = NULL;
	struct psync_err err;
	struct stat st;
	char *text = NULL;
	ssize_t n;
	size_t len = 0;
	int fd;

	cur = &ld;
	if (check_owner) {
		fd = file_open_trusted(path, false, &err);
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd == -1)
			perr_set(&err, PSYNC_E_OPEN, "%s: cannot open: %s", path,
			    strerror(errno));
	}
	if (fd == -1) {
		if (rep != NULL)
			rep(ctx, err.msg);
		goto done;
	}
	if (fstat(fd, &st) == -1) {
		conf_error(0, "cannot stat: %s", strerror(errno));
		goto done;
	}
	ld.mode = st.st_mode;
	text = malloc(CONFIG_MAX_SIZE + 1);
	if (text == NULL) {
		conf_error(0, "out of memory");
		goto done;
	}
	while (len <= CONFIG_MAX_SIZE &&
	    (n = read(fd, text + len, CONFIG_MAX_SIZE + 1 - len)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			conf_error(0, "cannot read: %s", strerror(errno));
			goto done;
		}
		len += (size_t)n;
	}
	if (len > CONFIG_MAX_SIZE) {
		conf_error(0, "larger than %d bytes: not a configuration file",
		    CONFIG_MAX_SIZE);
		goto done;
	}
	text[len] = '\0';
	if (strlen(text) != len) {
		conf_error(0, "contains a NUL byte: not a configuration file");
		goto done;
	}
	c = load_text(text, path, check_owner);
done:
	if (fd != -1)
		close(fd);
	if (text != NULL)
		secure_wipe(text, len);	/* it may hold legacy keys */
	free(text);
	cur = NULL;
	return c;
}

struct psync_config *
config_load_string(const char *text, const char *name, config_report_fn rep,
    void *ctx)
{
	struct loader ld = { name, rep, ctx, 0, 0, 0 };
	struct psync_config *c;

	cur = &ld;
	c = load_text(text, name, false);
	cur = NULL;
	return c;
}

void
config_free(struct psync_config *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->path);
	free(c->node_name);
	free(c->control_socket);
	free(c->tls_ca_file);
	free(c->tls_cert_file);
	free(c->tls_key_file);
	free(c->store.shadow_file);
	free(c->store.passwd_file);
	free(c->store.group_file);
	free(c->store.login_defs);
	free(c->store.nis_make_dir);
	free(c->store.pam_service);
	free(c->store.samba_private_dir);
	free(c->store.state_dir);
	free(c->policy.sync_users);
	free_list(c->policy.allow_groups, c->policy.n_allow_groups);
	free_list(c->policy.deny_groups, c->policy.n_deny_groups);
	free(c->policy.name_map_file);
	free(c->listen_mepp.address);
	free(c->listen_psync.address);
	for (i = 0; c->peers != NULL && i < c->n_peers; i++) {
		struct peer_conf *p = &c->peers[i];

		free(p->name);
		free(p->address);
		free(p->key_file);
		secure_free_str(p->legacy_key);
		free_list(p->trusted, p->n_trusted);
		free(p->ca_file);
		free(p->cert_file);
		free(p->cert_key_file);
	}
	free(c->peers);
	free(c->queue.directory);
	free(c->queue.spool_directory);
	free(c->queue.host_key_file);
	free(c);
}

const struct peer_conf *
config_find_peer(const struct psync_config *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_peers; i++)
		if (strcmp(c->peers[i].name, name) == 0)
			return &c->peers[i];
	return NULL;
}

const char *
config_store_name(enum store_type t)
{
	return nv_name(store_types, t);
}

const char *
config_hash_name(enum hash_method m)
{
	return nv_name(hash_methods, m);
}

const char *
config_protocol_name(enum peer_protocol p)
{
	return nv_name(protocols, p);
}

const char *
config_direction_name(enum peer_direction d)
{
	return nv_name(directions, d);
}
