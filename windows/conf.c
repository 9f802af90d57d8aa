/*
 * The agent's configuration (%ProgramData%\psync\agent.conf), its keys
 * (keys\PEER.key), its log (standard error in a console, the Windows event
 * log always, with the UNIX message numbers as event ids), and the rule of
 * which accounts are never sent.
 *
 * agent.conf is written by "psync-agent config ..." and lives in a
 * directory only SYSTEM and Administrators can write; one setting a line:
 *   node NAME | peer NAME HOST PORT | deny USER | deny-group GROUP NAME
 *   retry-min S | retry-max S | expire S | timeout S
 */
#include <windows.h>
#include <lm.h>
#include <ctype.h>
#include <stdarg.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "codes.h"
#include "common.h"
#include "util.h"
#include "wspool.h"

bool agent_verbose;
static HANDLE event_source;
static FILE *log_file;

/* The service has no console: it also writes agent.log (no secrets ever
   reach the log), which a test under wine can read. */
void
alog_open_file(void)
{
	if (log_file == NULL)
		log_file = _wfopen(wspool_path(L"agent.log"), L"a");
}

void
alog_open_eventlog(void)
{
	if (event_source == NULL)
		event_source = RegisterEventSourceW(NULL, PSW_SERVICE);
}

void
alog(int level, int msgno, const char *fmt, ...)
{
	static const char *names[] = { "debug", "info", "warning", "error" };
	char msg[1024];
	const char *strs[1];
	SYSTEMTIME t;
	va_list ap;
	WORD type;

	if (level == LOG_DEBUG_ && !agent_verbose)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	GetSystemTime(&t);
	fprintf(stderr, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ psync-agent %s: %s\n",
	    t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute, t.wSecond,
	    t.wMilliseconds, names[level], msg);
	fflush(stderr);
	if (log_file != NULL) {
		fprintf(log_file, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ psync-agent "
		    "%s: %s\n", t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute,
		    t.wSecond, t.wMilliseconds, names[level], msg);
		fflush(log_file);
	}
	if (event_source != NULL && level > LOG_DEBUG_) {
		type = level == LOG_ERR_ ? EVENTLOG_ERROR_TYPE : level ==
		    LOG_WARN_ ? EVENTLOG_WARNING_TYPE : EVENTLOG_INFORMATION_TYPE;
		strs[0] = msg;
		ReportEventA(event_source, type, 0,
		    msgno != 0 ? (DWORD)msgno : 1000, NULL, 1, 0, strs, NULL);
	}
}

void
conf_defaults(struct agent_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->retry_min = 5;
	c->retry_max = 600;
	c->expire = 7 * 24 * 3600;
	c->timeout = 10;
}

static bool
printable_word(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (; *s != 0; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

static int
parse_uint(const char *s, unsigned int *out)
{
	char *end;
	unsigned long v;

	if (*s == 0 || !isdigit((unsigned char)*s))
		return -1;
	v = strtoul(s, &end, 10);
	if (*end != 0 || v > 100000000UL)
		return -1;
	*out = (unsigned int)v;
	return 0;
}

static struct agent_peer *
find_peer(struct agent_conf *c, const char *name)
{
	int i;

	for (i = 0; i < c->npeers; i++)
		if (strcmp(c->peers[i].name, name) == 0)
			return &c->peers[i];
	return NULL;
}

int
conf_set_peer(struct agent_conf *c, const char *name, const char *host,
    const char *port, char *err, size_t errlen)
{
	struct agent_peer *pe;
	unsigned int p;

	if (!printable_word(name, FRAME_NAME_MAX) || strchr(name, '#') != NULL) {
		snprintf(err, errlen, "bad peer name \"%s\": 1 to %d printable "
		    "characters, no space or '#'", name, FRAME_NAME_MAX);
		return -1;
	}
	if (!printable_word(host, sizeof(c->peers[0].host) - 1)) {
		snprintf(err, errlen, "bad address \"%s\" for peer %s", host, name);
		return -1;
	}
	if (parse_uint(port, &p) == -1 || p == 0 || p > 65535) {
		snprintf(err, errlen, "bad port \"%s\" for peer %s: 1 to 65535",
		    port, name);
		return -1;
	}
	if ((pe = find_peer(c, name)) == NULL) {
		if (c->npeers == AGENT_PEERS_MAX) {
			snprintf(err, errlen, "more than %d peers", AGENT_PEERS_MAX);
			return -1;
		}
		pe = &c->peers[c->npeers++];
		memset(pe, 0, sizeof(*pe));
	}
	str_copy(pe->name, name, sizeof(pe->name));
	str_copy(pe->host, host, sizeof(pe->host));
	pe->port = p;
	return 0;
}

bool
conf_group_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > AGENT_GROUP_MAX || name[0] == ' ' || name[n - 1] == ' ')
		return false;
	for (; *name != 0; name++)
		if ((unsigned char)*name < 0x20 || *name == 0x7f)
			return false;
	return true;
}

/* deny-group takes the rest of the line: group names hold spaces. */
static int
conf_deny_group(struct agent_conf *c, const char *rest, char *err,
    size_t errlen)
{
	char name[AGENT_GROUP_MAX + 2];
	size_t n;
	int i;

	while (*rest == ' ' || *rest == '\t')
		rest++;
	n = strcspn(rest, "\r\n");
	while (n > 0 && (rest[n - 1] == ' ' || rest[n - 1] == '\t'))
		n--;
	if (n == 0 || n > AGENT_GROUP_MAX) {
		snprintf(err, errlen, "deny-group: a group name of 1 to %d "
		    "characters", AGENT_GROUP_MAX);
		return -1;
	}
	memcpy(name, rest, n);
	name[n] = 0;
	if (!conf_group_valid(name)) {
		snprintf(err, errlen, "deny-group: bad group name");
		return -1;
	}
	for (i = 0; i < c->ndeny_groups; i++)
		if (_stricmp(c->deny_groups[i], name) == 0)
			return 0;
	if (c->ndeny_groups == AGENT_DENY_MAX) {
		snprintf(err, errlen, "more than %d denied groups", AGENT_DENY_MAX);
		return -1;
	}
	str_copy(c->deny_groups[c->ndeny_groups++], name,
	    sizeof(c->deny_groups[0]));
	return 0;
}

static int
conf_line(struct agent_conf *c, char *line, char *err, size_t errlen)
{
	char *w[6];
	int n = 0;
	char *p = line, *save = NULL;

	if (strncmp(line, "deny-group", 10) == 0 &&
	    (line[10] == ' ' || line[10] == '\t'))
		return conf_deny_group(c, line + 10, err, errlen);

	for (p = strtok_r(line, " \t\r\n", &save); p != NULL && n < 6;
	    p = strtok_r(NULL, " \t\r\n", &save))
		w[n++] = p;
	if (n == 0 || w[0][0] == '#')
		return 0;
	if (strcmp(w[0], "node") == 0 && n == 2 &&
	    printable_word(w[1], FRAME_NAME_MAX)) {
		str_copy(c->node, w[1], sizeof(c->node));
	} else if (strcmp(w[0], "peer") == 0 && n == 4) {
		return conf_set_peer(c, w[1], w[2], w[3], err, errlen);
	} else if (strcmp(w[0], "deny") == 0 && n == 2 &&
	    strlen(w[1]) <= FRAME_USER_MAX) {
		if (c->ndeny == AGENT_DENY_MAX) {
			snprintf(err, errlen, "more than %d denied users",
			    AGENT_DENY_MAX);
			return -1;
		}
		str_copy(c->deny[c->ndeny++], w[1], sizeof(c->deny[0]));
	} else if (n == 2 && strcmp(w[0], "retry-min") == 0) {
		if (parse_uint(w[1], &c->retry_min) == -1 || c->retry_min == 0)
			goto bad;
	} else if (n == 2 && strcmp(w[0], "retry-max") == 0) {
		if (parse_uint(w[1], &c->retry_max) == -1 || c->retry_max == 0)
			goto bad;
	} else if (n == 2 && strcmp(w[0], "expire") == 0) {
		if (parse_uint(w[1], &c->expire) == -1 || c->expire == 0)
			goto bad;
	} else if (n == 2 && strcmp(w[0], "timeout") == 0) {
		if (parse_uint(w[1], &c->timeout) == -1 || c->timeout == 0 ||
		    c->timeout > 3600)
			goto bad;
	} else {
		goto bad;
	}
	return 0;
bad:
	snprintf(err, errlen, "cannot understand \"%s\"", w[0]);
	return -1;
}

int
conf_load(struct agent_conf *c, char *err, size_t errlen)
{
	char line[1024], why[256];
	FILE *f;
	int lineno = 0;

	conf_defaults(c);
	f = _wfopen(wspool_path(PSW_CONF), L"r");
	if (f == NULL)
		return 1;
	while (fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		if (conf_line(c, line, why, sizeof(why)) == -1) {
			snprintf(err, errlen, "agent.conf line %d: %s", lineno, why);
			fclose(f);
			return -1;
		}
	}
	fclose(f);
	if (c->retry_max < c->retry_min)
		c->retry_max = c->retry_min;
	return 0;
}

int
conf_save(const struct agent_conf *c, char *err, size_t errlen)
{
	WCHAR path[MAX_PATH], tmp[MAX_PATH];
	FILE *f;
	int i, ok;

	wcscpy(path, wspool_path(PSW_CONF));
	_snwprintf(tmp, MAX_PATH, L"%ls.tmp", path);
	tmp[MAX_PATH - 1] = 0;
	f = _wfopen(tmp, L"w");
	if (f == NULL) {
		snprintf(err, errlen, "cannot write agent.conf: %s",
		    strerror(errno));
		return -1;
	}
	fprintf(f, "# psync agent configuration: change it with "
	    "\"psync-agent config ...\"\n");
	if (c->node[0] != 0)
		fprintf(f, "node %s\n", c->node);
	for (i = 0; i < c->npeers; i++)
		fprintf(f, "peer %s %s %u\n", c->peers[i].name,
		    c->peers[i].host, c->peers[i].port);
	for (i = 0; i < c->ndeny; i++)
		fprintf(f, "deny %s\n", c->deny[i]);
	for (i = 0; i < c->ndeny_groups; i++)
		fprintf(f, "deny-group %s\n", c->deny_groups[i]);
	fprintf(f, "retry-min %u\nretry-max %u\nexpire %u\ntimeout %u\n",
	    c->retry_min, c->retry_max, c->expire, c->timeout);
	ok = fflush(f) == 0 && _commit(_fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	if (!ok || !MoveFileExW(tmp, path, MOVEFILE_REPLACE_EXISTING |
	    MOVEFILE_WRITE_THROUGH)) {
		snprintf(err, errlen, "cannot write agent.conf");
		DeleteFileW(tmp);
		return -1;
	}
	return 0;
}

int
key_parse(const unsigned char *buf, size_t len, unsigned char key[FRAME_KEY_LEN])
{
	size_t i;
	int hi, lo;

	if (len == FRAME_KEY_LEN) {
		memcpy(key, buf, FRAME_KEY_LEN);
		return 0;
	}
	if (len == 2 * FRAME_KEY_LEN + 2 && buf[len - 2] == '\r' &&
	    buf[len - 1] == '\n')
		len -= 2;
	else if (len == 2 * FRAME_KEY_LEN + 1 && buf[len - 1] == '\n')
		len--;
	if (len != 2 * FRAME_KEY_LEN)
		return -1;
	for (i = 0; i < FRAME_KEY_LEN; i++) {
		hi = hex_digit(buf[2 * i]);
		lo = hex_digit(buf[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			secure_wipe(key, FRAME_KEY_LEN);
			return -1;
		}
		key[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int
conf_key_load(const char *peer, unsigned char key[FRAME_KEY_LEN], char *err,
    size_t errlen)
{
	WCHAR wpeer[FRAME_NAME_MAX + 1], name[MAX_PATH];
	unsigned char buf[2 * FRAME_KEY_LEN + 3];
	size_t n;
	FILE *f;
	int rc;

	if (utf8_to_wstr(peer, wpeer, FRAME_NAME_MAX + 1) == -1)
		return -1;
	_snwprintf(name, MAX_PATH, L"%ls\\%ls.key", PSW_KEYS, wpeer);
	name[MAX_PATH - 1] = 0;
	f = _wfopen(wspool_path(name), L"rb");
	if (f == NULL) {
		snprintf(err, errlen, "peer %s: no key (psync-agent config "
		    "set-key %s FILE)", peer, peer);
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	rc = key_parse(buf, n, key);
	secure_wipe(buf, sizeof(buf));
	if (rc == -1)
		snprintf(err, errlen, "peer %s: the key file holds neither 64 hex "
		    "digits nor 32 bytes", peer);
	return rc;
}

const char *
agent_excluded(const struct agent_conf *c, const char *user, int *msgno)
{
	size_t n = strlen(user);
	int i;

	*msgno = 0;
	if (n > 0 && user[n - 1] == '$')
		return "a machine account";
	if (_stricmp(user, "krbtgt") == 0)
		return "the Kerberos service account";
	for (i = 0; i < c->ndeny; i++) {
		if (_stricmp(user, c->deny[i]) == 0) {
			*msgno = PSYNC_MSG_DENIED;
			return "in the deny list";
		}
	}
	return NULL;
}

int
agent_group_denied(const struct agent_conf *c, const char *user, char *group,
    size_t grouplen, char *err, size_t errlen)
{
	LOCALGROUP_USERS_INFO_0 *groups = NULL;
	WCHAR wuser[FRAME_USER_MAX + 1], wdeny[AGENT_GROUP_MAX + 1];
	DWORD read = 0, total = 0, k;
	NET_API_STATUS rc;
	int i, found = 0;

	if (c->ndeny_groups == 0)
		return 0;
	if (utf8_to_wstr(user, wuser, FRAME_USER_MAX + 1) == -1) {
		snprintf(err, errlen, "the user name is not valid UTF-8");
		return -1;
	}
	rc = NetUserGetLocalGroups(NULL, wuser, 0, LG_INCLUDE_INDIRECT,
	    (LPBYTE *)&groups, MAX_PREFERRED_LENGTH, &read, &total);
	if (rc != NERR_Success) {
		snprintf(err, errlen, "cannot read the groups of %s: error %lu",
		    user, (unsigned long)rc);
		if (groups != NULL)
			NetApiBufferFree(groups);
		return -1;
	}
	for (i = 0; i < c->ndeny_groups && !found; i++) {
		if (utf8_to_wstr(c->deny_groups[i], wdeny, AGENT_GROUP_MAX + 1) == -1)
			continue;
		for (k = 0; k < read; k++) {
			if (groups[k].lgrui0_name != NULL &&
			    _wcsicmp(groups[k].lgrui0_name, wdeny) == 0) {
				str_copy(group, c->deny_groups[i], grouplen);
				found = 1;
				break;
			}
		}
	}
	NetApiBufferFree(groups);
	return found;
}
