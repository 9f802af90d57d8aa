/*
 * The delivery engine of psync-agent: reads the sealed changes that
 * psyncpwd.dll leaves in the spool, keeps only the newest per user, drops
 * accounts that are never sent, and sends each change to every configured
 * peer over psync's protocol. A change leaves the spool only when every
 * peer has answered it with a RESULT (whatever the code) or it expired.
 * A peer that cannot be reached is retried with a doubling back-off. The
 * spool is the only state: after a restart every change still there is
 * sent again with its own id, and psyncd answers a repeat without applying
 * it twice.
 */
#include <winsock2.h>
#include <windows.h>
#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "change.h"
#include "codes.h"
#include "common.h"
#include "frame.h"
#include "tls.h"
#include "util.h"
#include "wspool.h"

#define IN_FLIGHT_MAX	128		/* CHANGEs per round to one peer */
#define RESCAN_MS	30000		/* look at the spool even unsignalled */

struct pending {
	struct wspool_change	c;
	WCHAR			name[64];	/* file name, sorts by time */
	bool			done[AGENT_PEERS_MAX];
	char			hex[2 * SPOOLREC_ID_LEN + 1];
};

struct peer_state {
	struct tls_peer		tp;
	bool			key_ok;
	ULONGLONG		next_try;	/* GetTickCount64 */
	unsigned int		backoff;	/* seconds, 0 after a success */
};

static struct agent_conf conf;
static struct peer_state peers[AGENT_PEERS_MAX];
static struct pending **pend;
static size_t npend, cappend;
static uint8_t spool_key[SPOOLREC_KEY_LEN];

static uint64_t
now_ms(void)
{
	FILETIME ft;
	ULONGLONG t;

	GetSystemTimeAsFileTime(&ft);
	t = ((ULONGLONG)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
	return (t - 116444736000000000ULL) / 10000;
}

static void
pending_free(struct pending *p)
{
	wspool_change_wipe(&p->c);
	SecureZeroMemory(p, sizeof(*p));
	free(p);
}

/* Remove entry i from the table and its file from the spool. */
static void
pending_drop(size_t i, bool delete_file)
{
	struct pending *p = pend[i];

	if (delete_file && !DeleteFileW(p->c.file))
		alog(LOG_WARN_, 0, "cannot remove spool file of change %s: "
		    "error %lu", p->hex, (unsigned long)GetLastError());
	pending_free(p);
	memmove(&pend[i], &pend[i + 1], (npend - i - 1) * sizeof(pend[0]));
	npend--;
}

static bool
known(const WCHAR *name)
{
	size_t i;

	for (i = 0; i < npend; i++)
		if (wcscmp(pend[i]->name, name) == 0)
			return true;
	return false;
}

static bool
newer(const struct pending *a, const struct pending *b)
{
	if (a->c.time_ms != b->c.time_ms)
		return a->c.time_ms > b->c.time_ms;
	return wcscmp(a->name, b->name) > 0;
}

/* Take one new spool file in, or drop it with a reason. */
static void
admit(const WCHAR *name)
{
	WCHAR path[MAX_PATH], bad[MAX_PATH];
	struct pending *p;
	const char *why;
	char err[256], fname[MAX_PATH * 3];
	struct psync_err perr;
	size_t i;
	int msgno;

	_snwprintf(path, MAX_PATH, L"%ls\\%ls", wspool_path(PSW_SPOOL), name);
	path[MAX_PATH - 1] = 0;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return;
	if (wspool_read(path, spool_key, &p->c, err, sizeof(err)) == -1) {
		wstr_to_utf8(name, fname, sizeof(fname));
		alog(LOG_ERR_, 0, "spool file %s: %s; set aside as .bad", fname,
		    err);
		_snwprintf(bad, MAX_PATH, L"%ls.bad", path);
		bad[MAX_PATH - 1] = 0;
		MoveFileExW(path, bad, MOVEFILE_REPLACE_EXISTING);
		pending_free(p);
		return;
	}
	wcsncpy(p->name, name, 63);
	hex_encode(p->c.id, SPOOLREC_ID_LEN, p->hex);
	if ((why = agent_excluded(&conf, p->c.user, &msgno)) != NULL) {
		if (msgno != 0)
			alog(LOG_WARN_, msgno, "%d: change %s for %s not sent: "
			    "user refused by policy (%s)", msgno, p->hex,
			    p->c.user, why);
		else
			alog(LOG_INFO_, 0, "change %s for %s not sent: %s",
			    p->hex, p->c.user, why);
		DeleteFileW(path);
		pending_free(p);
		return;
	}
	/* Denied groups: read when the change is taken, so membership is
	   that of the moment. If they cannot be read, the change waits (it
	   is read again at the next scan) until it expires. */
	if (conf.ndeny_groups > 0) {
		char group[AGENT_GROUP_MAX + 1];
		int r = agent_group_denied(&conf, p->c.user, group, sizeof(group),
		    err, sizeof(err));

		if (r == 1) {
			alog(LOG_WARN_, PSYNC_MSG_DENIED, "%d: change %s for %s "
			    "not sent: user refused by policy (member of the "
			    "denied group %s)", PSYNC_MSG_DENIED, p->hex,
			    p->c.user, group);
			DeleteFileW(path);
			pending_free(p);
			return;
		}
		if (r == -1) {
			if (now_ms() > p->c.time_ms && now_ms() - p->c.time_ms >
			    (uint64_t)conf.expire * 1000) {
				alog(LOG_ERR_, 0, "change %s for %s expired: %s; "
				    "given up", p->hex, p->c.user, err);
				DeleteFileW(path);
			} else {
				alog(LOG_ERR_, 0, "change %s for %s held: %s; "
				    "read again at the next scan", p->hex,
				    p->c.user, err);
			}
			pending_free(p);
			return;
		}
	}
	/* What every psync layer would refuse (lib/change/change.c) is dropped here. */
	if (!change_user_valid(p->c.user)) {
		alog(LOG_WARN_, 0, "change %s not sent: code %d (%s): the user "
		    "name is not 1 to %d bytes of UTF-8 without control "
		    "characters", p->hex, PSYNC_E_BAD_USER,
		    code_reason(PSYNC_E_BAD_USER), CHANGE_USER_MAX);
		DeleteFileW(path);
		pending_free(p);
		return;
	}
	if (change_secret_check(CHANGE_SECRET_CLEARTEXT,
	    (const unsigned char *)p->c.pass, p->c.pass_len, &perr) != PSYNC_OK) {
		alog(LOG_WARN_, 0, "change %s for %s not sent: code %d (%s): %s",
		    p->hex, p->c.user, PSYNC_E_BAD_PASSWORD,
		    code_reason(PSYNC_E_BAD_PASSWORD), perr.msg);
		DeleteFileW(path);
		pending_free(p);
		return;
	}
	/* Only the newest change per user is sent. */
	for (i = 0; i < npend; i++) {
		if (_stricmp(pend[i]->c.user, p->c.user) != 0)
			continue;
		if (newer(p, pend[i])) {
			alog(LOG_INFO_, 0, "change %s for %s superseded by "
			    "change %s", pend[i]->hex, p->c.user, p->hex);
			pending_drop(i, true);
			break;
		}
		alog(LOG_INFO_, 0, "change %s for %s superseded by change %s",
		    p->hex, p->c.user, pend[i]->hex);
		DeleteFileW(path);
		pending_free(p);
		return;
	}
	if (npend == cappend) {
		size_t ncap = cappend == 0 ? 64 : cappend * 2;
		struct pending **np = realloc(pend, ncap * sizeof(*np));

		if (np == NULL) {
			pending_free(p);	/* stays in the spool for later */
			return;
		}
		pend = np;
		cappend = ncap;
	}
	pend[npend++] = p;
	alog(LOG_INFO_, 0, "change %s for %s taken from the spool", p->hex,
	    p->c.user);
}

/*
 * A temporary file the DLL never renamed: LSASS stopped between the write
 * and the rename (a crash, a power cut). It holds no whole change; once it
 * is older than any write could take, remove it.
 */
#define STALE_TMP_MS	(10ULL * 60 * 1000)

static void
sweep_tmp(void)
{
	WIN32_FIND_DATAW fd;
	WCHAR pattern[MAX_PATH], path[MAX_PATH];
	char name[MAX_PATH * 3];
	FILETIME now;
	ULONGLONG t_now, t_file;
	HANDLE h;

	_snwprintf(pattern, MAX_PATH, L"%ls\\*.tmp", wspool_path(PSW_SPOOL));
	pattern[MAX_PATH - 1] = 0;
	h = FindFirstFileW(pattern, &fd);
	if (h == INVALID_HANDLE_VALUE)
		return;
	GetSystemTimeAsFileTime(&now);
	t_now = ((ULONGLONG)now.dwHighDateTime << 32) | now.dwLowDateTime;
	do {
		t_file = ((ULONGLONG)fd.ftLastWriteTime.dwHighDateTime << 32) |
		    fd.ftLastWriteTime.dwLowDateTime;
		if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY ||
		    t_file > t_now || (t_now - t_file) / 10000 < STALE_TMP_MS)
			continue;
		_snwprintf(path, MAX_PATH, L"%ls\\%ls", wspool_path(PSW_SPOOL),
		    fd.cFileName);
		path[MAX_PATH - 1] = 0;
		wstr_to_utf8(fd.cFileName, name, sizeof(name));
		if (DeleteFileW(path))
			alog(LOG_WARN_, 0, "spool: removed %s, a change the "
			    "notification package never finished writing", name);
	} while (FindNextFileW(h, &fd));
	FindClose(h);
}

static int
cmp_names(const void *a, const void *b)
{
	return wcscmp((const WCHAR *)a, (const WCHAR *)b);
}

/* Admit every spool file not yet known, oldest first. */
static void
scan(void)
{
	WIN32_FIND_DATAW fd;
	WCHAR pattern[MAX_PATH], (*names)[64] = NULL;
	size_t n = 0, cap = 0, i;
	HANDLE h;

	_snwprintf(pattern, MAX_PATH, L"%ls\\*%ls", wspool_path(PSW_SPOOL),
	    PSW_SPOOL_SUFFIX);
	pattern[MAX_PATH - 1] = 0;
	h = FindFirstFileW(pattern, &fd);
	if (h == INVALID_HANDLE_VALUE)
		return;
	do {
		if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY ||
		    wcslen(fd.cFileName) >= 64 || known(fd.cFileName))
			continue;
		if (n == cap) {
			size_t ncap = cap == 0 ? 64 : cap * 2;
			void *nn = realloc(names, ncap * sizeof(*names));

			if (nn == NULL)
				break;
			names = nn;
			cap = ncap;
		}
		wcscpy(names[n++], fd.cFileName);
	} while (FindNextFileW(h, &fd));
	FindClose(h);
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++)
		admit(names[i]);
	free(names);
}

static struct pending *
find_id(const uint8_t *id)
{
	size_t i;

	for (i = 0; i < npend; i++)
		if (memcmp(pend[i]->c.id, id, SPOOLREC_ID_LEN) == 0)
			return pend[i];
	return NULL;
}

static void
got_result(int pi, const struct frame_result *r)
{
	struct pending *p = find_id(r->id);
	const char *peer = conf.peers[pi].name;

	if (p == NULL || p->done[pi]) {
		alog(LOG_DEBUG_, 0, "peer %s: RESULT for a change not in flight",
		    peer);
		return;
	}
	p->done[pi] = true;
	if (r->code == PSYNC_OK)
		alog(LOG_INFO_, 0, "change %s for %s delivered to peer %s%s%s",
		    p->hex, p->c.user, peer, r->reason[0] != 0 ? ": " : "",
		    r->reason);
	else if (r->code == PSYNC_E_NO_USER)
		alog(LOG_WARN_, PSYNC_MSG_NO_USER, "%d: user %s does not exist "
		    "on peer %s; change %s given up", PSYNC_MSG_NO_USER,
		    p->c.user, peer, p->hex);
	else
		alog(LOG_WARN_, r->code == PSYNC_E_REFUSED ? PSYNC_MSG_DENIED :
		    0, "change %s for %s given up for peer %s: code %d (%s): %s",
		    p->hex, p->c.user, peer, r->code, code_reason(r->code),
		    r->reason);
}

/* One round with one peer: connect, send what it still lacks, collect the
   RESULTs. 0 when the round went through, -1 when the peer failed. */
static int
deliver(int pi)
{
	struct peer_state *ps = &peers[pi];
	struct tls_conn *c;
	struct frame f;
	struct psync_err perr;
	char err[768];
	size_t i, sent = 0;
	enum tls_status st;
	int rc = -1;

	c = tls_connect(&ps->tp, err, sizeof(err));
	if (c == NULL) {
		alog(LOG_WARN_, strncmp(err, "8203:", 5) == 0 ?
		    PSYNC_MSG_KEY_MISMATCH : 0, "%s", err);
		return -1;
	}
	alog(LOG_DEBUG_, 0, "peer %s (%s): connected", ps->tp.name,
	    tls_address(c));
	for (i = 0; i < npend && sent < IN_FLIGHT_MAX; i++) {
		struct pending *p = pend[i];

		if (p->done[pi])
			continue;
		if (frame_set_change(&f, p->c.id, conf.node, p->c.time_ms,
		    p->c.user, FRAME_SECRET_CLEARTEXT, p->c.pass, p->c.pass_len,
		    &perr) == -1) {
			/* The codec refuses this user name: never sendable. */
			alog(LOG_WARN_, 0, "change %s not sent: code %d (%s): %s",
			    p->hex, PSYNC_E_BAD_USER,
			    code_reason(PSYNC_E_BAD_USER), perr.msg);
			p->done[pi] = true;
			continue;
		}
		if (tls_send(c, &f, err, sizeof(err)) == -1) {
			frame_wipe(&f);
			alog(LOG_WARN_, 0, "%s", err);
			goto done;
		}
		frame_wipe(&f);
		sent++;
	}
	while (sent > 0) {
		st = tls_recv(c, &f, err, sizeof(err));
		if (st != TLS_FRAME) {
			if (st == TLS_CLOSED)
				alog(LOG_WARN_, 0, "peer %s (%s): closed the "
				    "connection with changes in flight",
				    ps->tp.name, tls_address(c));
			else
				alog(LOG_WARN_, strncmp(err, "8203:", 5) == 0 ?
				    PSYNC_MSG_KEY_MISMATCH : 0, "%s", err);
			goto done;
		}
		switch (f.type) {
		case FRAME_RESULT:
			got_result(pi, &f.u.result);
			sent--;
			break;
		case FRAME_PING:
			frame_set_ping(&f, true, f.u.ping.seq);
			if (tls_send(c, &f, err, sizeof(err)) == -1)
				goto done;
			break;
		case FRAME_CHANGE: {
			uint8_t id[FRAME_ID_LEN];

			memcpy(id, f.u.change.id, sizeof(id));
			frame_wipe(&f);
			if (frame_set_result(&f, id, PSYNC_E_REFUSED, "the "
			    "Windows agent only sends changes", &perr) == 0 &&
			    tls_send(c, &f, err, sizeof(err)) == -1)
				goto done;
			break;
		}
		case FRAME_ERROR:
			alog(LOG_WARN_, 0, "peer %s (%s): ERROR code %u (%s): %s",
			    ps->tp.name, tls_address(c), f.u.error.code,
			    code_reason(f.u.error.code), f.u.error.reason);
			goto done;
		default:
			break;
		}
		frame_wipe(&f);
	}
	rc = 0;
done:
	frame_wipe(&f);
	tls_close(c);
	return rc;
}

static bool
peer_wants(int pi)
{
	size_t i;

	for (i = 0; i < npend; i++)
		if (!pend[i]->done[pi])
			return true;
	return false;
}

/* Drop what every peer answered, and what expired. */
static void
reap(void)
{
	uint64_t now = now_ms();
	size_t i = 0;
	int pi;
	bool all;

	while (i < npend) {
		struct pending *p = pend[i];

		all = true;
		for (pi = 0; pi < conf.npeers; pi++)
			all = all && p->done[pi];
		if (all && conf.npeers > 0) {
			alog(LOG_DEBUG_, 0, "change %s for %s answered by every "
			    "peer; removed from the spool", p->hex, p->c.user);
			pending_drop(i, true);
			continue;
		}
		if (now > p->c.time_ms &&
		    now - p->c.time_ms > (uint64_t)conf.expire * 1000) {
			char left[512] = "";

			for (pi = 0; pi < conf.npeers; pi++) {
				if (p->done[pi])
					continue;
				if (left[0] != 0)
					strncat(left, ", ", sizeof(left) -
					    strlen(left) - 1);
				strncat(left, conf.peers[pi].name, sizeof(left) -
				    strlen(left) - 1);
			}
			alog(LOG_ERR_, 0, "change %s for %s expired after %u s "
			    "without an answer from %s; given up", p->hex,
			    p->c.user, conf.expire, left);
			pending_drop(i, true);
			continue;
		}
		i++;
	}
}

int
agent_run(HANDLE stop, bool until_empty)
{
	HANDLE ev, waits[2];
	SECURITY_ATTRIBUTES sa = { sizeof(sa), NULL, FALSE };
	PSECURITY_DESCRIPTOR sd = NULL;
	char err[512];
	int pi, rc;
	DWORD wait;

	if ((rc = conf_load(&conf, err, sizeof(err))) == -1) {
		alog(LOG_ERR_, 0, "%s", err);
		return -1;
	}
	if (rc == 1 || conf.node[0] == 0) {
		alog(LOG_ERR_, 0, "not configured: no node name in %ls\\agent.conf "
		    "(psync-agent config init NODE)", wspool_base());
		return -1;
	}
	if (wspool_key_load(spool_key, err, sizeof(err)) == -1) {
		alog(LOG_ERR_, 0, "the spool key: %s", err);
		return -1;
	}
	if (tls_init() == -1) {
		alog(LOG_ERR_, 0, "cannot start Winsock or OpenSSL");
		return -1;
	}
	for (pi = 0; pi < conf.npeers; pi++) {
		struct peer_state *ps = &peers[pi];
		struct agent_peer *ap = &conf.peers[pi];

		memset(ps, 0, sizeof(*ps));
		ps->tp.name = ap->name;
		ps->tp.host = ap->host;
		ps->tp.port = ap->port;
		ps->tp.identity = conf.node;
		ps->tp.timeout_ms = (int)conf.timeout * 1000;
		if (conf_key_load(ap->name, ps->tp.key, err, sizeof(err)) == 0)
			ps->key_ok = true;
		else
			alog(LOG_ERR_, 0, "%s", err);
	}
	if (ConvertStringSecurityDescriptorToSecurityDescriptorW(
	    L"D:(A;;GA;;;SY)(A;;GA;;;BA)", 1, &sd, NULL))
		sa.lpSecurityDescriptor = sd;
	ev = CreateEventW(&sa, FALSE, FALSE, PSW_EVENT);
	if (sd != NULL)
		LocalFree(sd);
	if (ev == NULL) {
		alog(LOG_ERR_, 0, "cannot create the spool event: error %lu",
		    (unsigned long)GetLastError());
		return -1;
	}
	alog(LOG_INFO_, 0, "ready: node %s, %d peer%s", conf.node, conf.npeers,
	    conf.npeers == 1 ? "" : "s");
	sweep_tmp();
	waits[0] = stop;
	waits[1] = ev;
	for (;;) {
		ULONGLONG now;

		scan();
		now = GetTickCount64();
		wait = RESCAN_MS;
		for (pi = 0; pi < conf.npeers; pi++) {
			struct peer_state *ps = &peers[pi];

			if (!ps->key_ok || !peer_wants(pi))
				continue;
			if (now < ps->next_try) {
				if (ps->next_try - now < wait)
					wait = (DWORD)(ps->next_try - now);
				continue;
			}
			if (deliver(pi) == 0) {
				ps->backoff = 0;
				ps->next_try = 0;
				if (peer_wants(pi))
					wait = 0;
			} else {
				ps->backoff = ps->backoff == 0 ? conf.retry_min :
				    ps->backoff * 2 > conf.retry_max ?
				    conf.retry_max : ps->backoff * 2;
				ps->next_try = GetTickCount64() +
				    (ULONGLONG)ps->backoff * 1000;
				alog(LOG_INFO_, 0, "peer %s: next try in %u s",
				    ps->tp.name, ps->backoff);
				if ((DWORD)ps->backoff * 1000 < wait)
					wait = ps->backoff * 1000;
			}
		}
		reap();
		if (until_empty && npend == 0)
			break;
		if (WaitForMultipleObjects(2, waits, FALSE, wait) == WAIT_OBJECT_0)
			break;
	}
	alog(LOG_INFO_, 0, "stopping: %u change%s left in the spool",
	    (unsigned)npend, npend == 1 ? "" : "s");
	while (npend > 0)
		pending_drop(npend - 1, false);
	SecureZeroMemory(spool_key, sizeof(spool_key));
	for (pi = 0; pi < conf.npeers; pi++)
		SecureZeroMemory(peers[pi].tp.key, sizeof(peers[pi].tp.key));
	CloseHandle(ev);
	return 0;
}
