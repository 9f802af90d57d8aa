/*
 * psync-agent.exe: the Windows side of psync's AD-to-UNIX direction.
 *
 *   psync-agent run [-v] [--until-empty]   deliver in this console
 *   psync-agent service                    what the service manager starts
 *   psync-agent install | uninstall        register (or remove) the LSA
 *                                          notification package and service
 *   psync-agent status                     what is configured and running
 *   psync-agent config ...                 node, peers, keys, exclusions
 *   psync-agent spool                      list the sealed changes (no secrets)
 */
#include <winsock2.h>
#include <windows.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "change.h"
#include "common.h"
#include "util.h"
#include "wspool.h"

#define LSA_KEY		L"SYSTEM\\CurrentControlSet\\Control\\Lsa"
#define LSA_VALUE	L"Notification Packages"
#define EVENTLOG_KEY	L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\psync-agent"

static HANDLE stop_event;
static SERVICE_STATUS_HANDLE svc_handle;
static SERVICE_STATUS svc_status;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: psync-agent run [-v] [--until-empty]\n"
	    "       psync-agent install | uninstall | status | spool\n"
	    "       psync-agent config init NODE\n"
	    "       psync-agent config show\n"
	    "       psync-agent config add-peer NAME HOST [PORT]\n"
	    "       psync-agent config remove-peer NAME\n"
	    "       psync-agent config set-key PEER FILE\n"
	    "       psync-agent config deny USER | allow USER\n"
	    "       psync-agent config deny-group GROUP | allow-group GROUP\n"
	    "       psync-agent config set retry-min|retry-max|expire|timeout SECONDS\n");
}

static int
fail(const char *fmt, const char *arg)
{
	fprintf(stderr, "psync-agent: ");
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	return 1;
}

/* ------------------------------------------------------------ config */

static int
load_or_fail(struct agent_conf *c)
{
	char err[512];

	if (conf_load(c, err, sizeof(err)) == -1)
		return fail("%s", err);
	return 0;
}

static int
save_or_fail(const struct agent_conf *c)
{
	char err[512];

	if (conf_save(c, err, sizeof(err)) == -1)
		return fail("%s", err);
	return 0;
}

/* Directories with their ACL, the spool key, and the node name. */
static int
cmd_init(const char *node)
{
	struct agent_conf c;
	char err[512];
	int made;

	if (wspool_prepare_dirs(err, sizeof(err)) == -1)
		return fail("%s", err);
	if ((made = wspool_key_create(err, sizeof(err))) == -1)
		return fail("%s", err);
	if (load_or_fail(&c) != 0)
		return 1;
	if (node != NULL) {
		/* A PSK identity: a node name, and never '#' (key ids). */
		if (!change_node_valid(node) || strchr(node, '#') != NULL)
			return fail("bad node name: %s", node);
		str_copy(c.node, node, sizeof(c.node));
	}
	if (save_or_fail(&c) != 0)
		return 1;
	if (made == 1)
		printf("made the spool key (DPAPI, machine scope)\n");
	printf("configuration in %ls\n", wspool_base());
	return 0;
}

static int
cmd_set_key(const char *peer, const char *file)
{
	unsigned char buf[2 * FRAME_KEY_LEN + 3], key[FRAME_KEY_LEN];
	WCHAR wpeer[FRAME_NAME_MAX + 1], name[MAX_PATH], path[MAX_PATH],
	    tmp[MAX_PATH], wfile[MAX_PATH];
	char hex[2 * FRAME_KEY_LEN + 2];
	struct agent_conf c;
	size_t n;
	FILE *f;
	int ok;

	if (load_or_fail(&c) != 0)
		return 1;
	if (utf8_to_wstr(peer, wpeer, FRAME_NAME_MAX + 1) == -1 ||
	    utf8_to_wstr(file, wfile, MAX_PATH) == -1)
		return fail("bad name: %s", peer);
	f = _wfopen(wfile, L"rb");
	if (f == NULL)
		return fail("cannot read %s", file);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	ok = key_parse(buf, n, key) == 0;
	secure_wipe(buf, sizeof(buf));
	if (!ok)
		return fail("%s: neither 64 hex digits nor 32 bytes", file);
	hex_encode(key, FRAME_KEY_LEN, hex);
	secure_wipe(key, sizeof(key));
	strcat(hex, "\n");
	_snwprintf(name, MAX_PATH, L"%ls\\%ls.key", PSW_KEYS, wpeer);
	name[MAX_PATH - 1] = 0;
	wcscpy(path, wspool_path(name));
	_snwprintf(tmp, MAX_PATH, L"%ls.tmp", path);
	tmp[MAX_PATH - 1] = 0;
	f = _wfopen(tmp, L"wb");
	if (f == NULL) {
		secure_wipe(hex, sizeof(hex));
		return fail("cannot write the key of %s", peer);
	}
	ok = fwrite(hex, 1, strlen(hex), f) == strlen(hex) && fflush(f) == 0 &&
	    _commit(_fileno(f)) == 0;
	ok = fclose(f) == 0 && ok;
	secure_wipe(hex, sizeof(hex));
	if (!ok || !MoveFileExW(tmp, path, MOVEFILE_REPLACE_EXISTING |
	    MOVEFILE_WRITE_THROUGH)) {
		DeleteFileW(tmp);
		return fail("cannot write the key of %s", peer);
	}
	printf("key for peer %s stored\n", peer);
	return 0;
}

static int
cmd_config(int argc, char **argv)
{
	struct agent_conf c;
	int i;

	if (argc < 1) {
		usage();
		return 2;
	}
	if (strcmp(argv[0], "init") == 0 && argc <= 2)
		return cmd_init(argc == 2 ? argv[1] : NULL);
	if (load_or_fail(&c) != 0)
		return 1;
	if (strcmp(argv[0], "show") == 0 && argc == 1) {
		printf("node %s\n", c.node[0] != 0 ? c.node : "(none)");
		for (i = 0; i < c.npeers; i++)
			printf("peer %s %s %u\n", c.peers[i].name,
			    c.peers[i].host, c.peers[i].port);
		for (i = 0; i < c.ndeny; i++)
			printf("deny %s\n", c.deny[i]);
		for (i = 0; i < c.ndeny_groups; i++)
			printf("deny-group %s\n", c.deny_groups[i]);
		printf("retry-min %u\nretry-max %u\nexpire %u\ntimeout %u\n",
		    c.retry_min, c.retry_max, c.expire, c.timeout);
		return 0;
	}
	if (strcmp(argv[0], "add-peer") == 0 && (argc == 3 || argc == 4)) {
		char err[512];

		if (conf_set_peer(&c, argv[1], argv[2], argc == 4 ? argv[3] :
		    "6678", err, sizeof(err)) == -1)
			return fail("%s", err);
		return save_or_fail(&c);
	}
	if (strcmp(argv[0], "remove-peer") == 0 && argc == 2) {
		for (i = 0; i < c.npeers; i++)
			if (strcmp(c.peers[i].name, argv[1]) == 0)
				break;
		if (i == c.npeers)
			return fail("no peer %s", argv[1]);
		memmove(&c.peers[i], &c.peers[i + 1],
		    (size_t)(c.npeers - i - 1) * sizeof(c.peers[0]));
		c.npeers--;
		return save_or_fail(&c);
	}
	if (strcmp(argv[0], "set-key") == 0 && argc == 3)
		return cmd_set_key(argv[1], argv[2]);
	if (strcmp(argv[0], "deny") == 0 && argc == 2) {
		for (i = 0; i < c.ndeny; i++)
			if (_stricmp(c.deny[i], argv[1]) == 0)
				return 0;
		if (c.ndeny == AGENT_DENY_MAX || strlen(argv[1]) > FRAME_USER_MAX ||
		    strchr(argv[1], ' ') != NULL)
			return fail("cannot deny %s", argv[1]);
		str_copy(c.deny[c.ndeny++], argv[1], sizeof(c.deny[0]));
		return save_or_fail(&c);
	}
	if (strcmp(argv[0], "allow") == 0 && argc == 2) {
		for (i = 0; i < c.ndeny; i++) {
			if (_stricmp(c.deny[i], argv[1]) == 0) {
				memmove(&c.deny[i], &c.deny[i + 1],
				    (size_t)(c.ndeny - i - 1) * sizeof(c.deny[0]));
				c.ndeny--;
				return save_or_fail(&c);
			}
		}
		return 0;
	}
	if (strcmp(argv[0], "deny-group") == 0 && argc == 2) {
		for (i = 0; i < c.ndeny_groups; i++)
			if (_stricmp(c.deny_groups[i], argv[1]) == 0)
				return 0;
		if (c.ndeny_groups == AGENT_DENY_MAX || !conf_group_valid(argv[1]))
			return fail("cannot deny the group %s", argv[1]);
		str_copy(c.deny_groups[c.ndeny_groups++], argv[1],
		    sizeof(c.deny_groups[0]));
		return save_or_fail(&c);
	}
	if (strcmp(argv[0], "allow-group") == 0 && argc == 2) {
		for (i = 0; i < c.ndeny_groups; i++) {
			if (_stricmp(c.deny_groups[i], argv[1]) == 0) {
				memmove(&c.deny_groups[i], &c.deny_groups[i + 1],
				    (size_t)(c.ndeny_groups - i - 1) *
				    sizeof(c.deny_groups[0]));
				c.ndeny_groups--;
				return save_or_fail(&c);
			}
		}
		return 0;
	}
	if (strcmp(argv[0], "set") == 0 && argc == 3) {
		char *end;
		unsigned long v = strtoul(argv[2], &end, 10);

		if (*end != 0 || v == 0 || v > 100000000UL)
			return fail("bad number of seconds: %s", argv[2]);
		if (strcmp(argv[1], "retry-min") == 0)
			c.retry_min = (unsigned int)v;
		else if (strcmp(argv[1], "retry-max") == 0)
			c.retry_max = (unsigned int)v;
		else if (strcmp(argv[1], "expire") == 0)
			c.expire = (unsigned int)v;
		else if (strcmp(argv[1], "timeout") == 0 && v <= 3600)
			c.timeout = (unsigned int)v;
		else
			return fail("unknown setting %s", argv[1]);
		return save_or_fail(&c);
	}
	usage();
	return 2;
}

/* ------------------------------------------------------------ spool */

static int
cmd_spool(void)
{
	uint8_t key[SPOOLREC_KEY_LEN];
	struct wspool_change ch;
	WIN32_FIND_DATAW fd;
	WCHAR pattern[MAX_PATH], path[MAX_PATH];
	char err[256], hex[2 * SPOOLREC_ID_LEN + 1], name[MAX_PATH * 3];
	HANDLE h;
	int n = 0, bad = 0;

	if (wspool_key_load(key, err, sizeof(err)) == -1)
		return fail("%s", err);
	_snwprintf(pattern, MAX_PATH, L"%ls\\*", wspool_path(PSW_SPOOL));
	pattern[MAX_PATH - 1] = 0;
	h = FindFirstFileW(pattern, &fd);
	if (h != INVALID_HANDLE_VALUE) {
		do {
			if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
				continue;
			wstr_to_utf8(fd.cFileName, name, sizeof(name));
			_snwprintf(path, MAX_PATH, L"%ls\\%ls",
			    wspool_path(PSW_SPOOL), fd.cFileName);
			path[MAX_PATH - 1] = 0;
			if (wspool_read(path, key, &ch, err, sizeof(err)) == -1) {
				printf("%s: %s\n", name, err);
				bad++;
				continue;
			}
			hex_encode(ch.id, SPOOLREC_ID_LEN, hex);
			printf("%s: change %s user %s time %llu rid %lu "
			    "password %lu bytes\n", name, hex, ch.user,
			    (unsigned long long)ch.time_ms,
			    (unsigned long)ch.rid, (unsigned long)ch.pass_len);
			wspool_change_wipe(&ch);
			n++;
		} while (FindNextFileW(h, &fd));
		FindClose(h);
	}
	SecureZeroMemory(key, sizeof(key));
	printf("%d change%s, %d unreadable\n", n, n == 1 ? "" : "s", bad);
	return bad == 0 ? 0 : 1;
}

/* ------------------------------------------------------------ install */

/* The multi-string value of the LSA key, and whether it names psyncpwd. */
static WCHAR *
lsa_packages(DWORD *bytes)
{
	WCHAR *buf;
	DWORD sz = 0;

	if (RegGetValueW(HKEY_LOCAL_MACHINE, LSA_KEY, LSA_VALUE, RRF_RT_REG_MULTI_SZ,
	    NULL, NULL, &sz) != ERROR_SUCCESS)
		sz = 0;
	buf = calloc(1, sz + 2 * sizeof(WCHAR) + sizeof(PSW_DLL_NAME));
	if (buf == NULL)
		return NULL;
	if (sz > 0 && RegGetValueW(HKEY_LOCAL_MACHINE, LSA_KEY, LSA_VALUE,
	    RRF_RT_REG_MULTI_SZ, NULL, buf, &sz) != ERROR_SUCCESS)
		sz = 0;
	*bytes = sz;
	return buf;
}

static bool
multi_has(const WCHAR *m, const WCHAR *s)
{
	for (; *m != 0; m += wcslen(m) + 1)
		if (_wcsicmp(m, s) == 0)
			return true;
	return false;
}

static int
lsa_register(bool add)
{
	WCHAR *old, *new, *p, *q;
	DWORD bytes = 0, len = 0;
	HKEY k;
	LONG rc;

	old = lsa_packages(&bytes);
	if (old == NULL)
		return -1;
	new = calloc(1, bytes + 2 * sizeof(WCHAR) + sizeof(PSW_DLL_NAME));
	if (new == NULL) {
		free(old);
		return -1;
	}
	q = new;
	for (p = old; *p != 0; p += wcslen(p) + 1) {
		if (_wcsicmp(p, PSW_DLL_NAME) == 0)
			continue;
		wcscpy(q, p);
		q += wcslen(p) + 1;
	}
	if (add) {
		wcscpy(q, PSW_DLL_NAME);
		q += wcslen(PSW_DLL_NAME) + 1;
	}
	*q++ = 0;
	len = (DWORD)((q - new) * sizeof(WCHAR));
	rc = RegCreateKeyExW(HKEY_LOCAL_MACHINE, LSA_KEY, 0, NULL, 0,
	    KEY_SET_VALUE, NULL, &k, NULL);
	if (rc == ERROR_SUCCESS) {
		rc = RegSetValueExW(k, LSA_VALUE, 0, REG_MULTI_SZ,
		    (const BYTE *)new, len);
		RegCloseKey(k);
	}
	free(old);
	free(new);
	return rc == ERROR_SUCCESS ? 0 : -1;
}

static int
eventlog_register(bool add)
{
	WCHAR exe[MAX_PATH];
	DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE |
	    EVENTLOG_INFORMATION_TYPE;
	HKEY k;
	LONG rc;

	if (!add)
		return RegDeleteKeyW(HKEY_LOCAL_MACHINE, EVENTLOG_KEY) ==
		    ERROR_SUCCESS ? 0 : -1;
	GetModuleFileNameW(NULL, exe, MAX_PATH);
	rc = RegCreateKeyExW(HKEY_LOCAL_MACHINE, EVENTLOG_KEY, 0, NULL, 0,
	    KEY_SET_VALUE, NULL, &k, NULL);
	if (rc != ERROR_SUCCESS)
		return -1;
	RegSetValueExW(k, L"TypesSupported", 0, REG_DWORD, (const BYTE *)&types,
	    sizeof(types));
	/* The agent carries the message table (messages.mc). */
	RegSetValueExW(k, L"EventMessageFile", 0, REG_EXPAND_SZ,
	    (const BYTE *)exe, (DWORD)((wcslen(exe) + 1) * sizeof(WCHAR)));
	RegCloseKey(k);
	return 0;
}

/* The DLL belongs in the system directory, where LSASS looks for it. */
static int
place_dll(void)
{
	WCHAR exe[MAX_PATH], src[MAX_PATH], dst[MAX_PATH], sys[MAX_PATH], *slash;

	GetSystemDirectoryW(sys, MAX_PATH);
	_snwprintf(dst, MAX_PATH, L"%ls\\%ls.dll", sys, PSW_DLL_NAME);
	dst[MAX_PATH - 1] = 0;
	GetModuleFileNameW(NULL, exe, MAX_PATH);
	slash = wcsrchr(exe, L'\\');
	if (slash != NULL)
		*slash = 0;
	_snwprintf(src, MAX_PATH, L"%ls\\%ls.dll", exe, PSW_DLL_NAME);
	src[MAX_PATH - 1] = 0;
	if (_wcsicmp(src, dst) != 0 &&
	    GetFileAttributesW(src) != INVALID_FILE_ATTRIBUTES &&
	    !CopyFileW(src, dst, FALSE))
		return -1;
	return GetFileAttributesW(dst) != INVALID_FILE_ATTRIBUTES ? 0 : -1;
}

static int
cmd_install(void)
{
	WCHAR exe[MAX_PATH], cmd[MAX_PATH + 16];
	SC_HANDLE scm, svc;
	SERVICE_FAILURE_ACTIONSW fa;
	SC_ACTION actions[3];
	SERVICE_DESCRIPTIONW desc;
	char err[512];

	if (wspool_prepare_dirs(err, sizeof(err)) == -1 ||
	    wspool_key_create(err, sizeof(err)) == -1)
		return fail("%s", err);
	if (place_dll() == -1)
		return fail("cannot place psyncpwd.dll in the system directory%s", "");
	if (lsa_register(true) == -1)
		return fail("cannot register the notification package%s", "");
	eventlog_register(true);
	GetModuleFileNameW(NULL, exe, MAX_PATH);
	_snwprintf(cmd, MAX_PATH + 16, L"\"%ls\" service", exe);
	cmd[MAX_PATH + 15] = 0;
	scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_ALL_ACCESS);
	if (scm == NULL)
		return fail("cannot open the service manager (run as an "
		    "administrator)%s", "");
	svc = CreateServiceW(scm, PSW_SERVICE, L"psync password agent",
	    SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS, SERVICE_AUTO_START,
	    SERVICE_ERROR_NORMAL, cmd, NULL, NULL, NULL, NULL, NULL);
	if (svc == NULL && GetLastError() == ERROR_SERVICE_EXISTS) {
		svc = OpenServiceW(scm, PSW_SERVICE, SERVICE_ALL_ACCESS);
		if (svc != NULL)
			ChangeServiceConfigW(svc, SERVICE_WIN32_OWN_PROCESS,
			    SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, cmd, NULL,
			    NULL, NULL, NULL, NULL, L"psync password agent");
	}
	if (svc == NULL) {
		CloseServiceHandle(scm);
		return fail("cannot create the service%s", "");
	}
	desc.lpDescription = L"Sends password changes made on this domain "
	    "controller to psync peers.";
	ChangeServiceConfig2W(svc, SERVICE_CONFIG_DESCRIPTION, &desc);
	/* Restart after a crash: a minute, then again, then every 5 minutes. */
	actions[0].Type = actions[1].Type = actions[2].Type = SC_ACTION_RESTART;
	actions[0].Delay = actions[1].Delay = 60000;
	actions[2].Delay = 300000;
	memset(&fa, 0, sizeof(fa));
	fa.dwResetPeriod = 86400;
	fa.cActions = 3;
	fa.lpsaActions = actions;
	ChangeServiceConfig2W(svc, SERVICE_CONFIG_FAILURE_ACTIONS, &fa);
	CloseServiceHandle(svc);
	CloseServiceHandle(scm);
	printf("installed: service %ls (automatic start) and notification "
	    "package %ls\n", PSW_SERVICE, PSW_DLL_NAME);
	printf("LSASS loads psyncpwd.dll at the next reboot: restart this "
	    "domain controller\n");
	return 0;
}

static int
cmd_uninstall(void)
{
	SC_HANDLE scm, svc;
	SERVICE_STATUS st;
	int rc = 0;

	if (lsa_register(false) == -1)
		rc = fail("cannot remove the notification package%s", "");
	eventlog_register(false);
	scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_ALL_ACCESS);
	if (scm != NULL) {
		svc = OpenServiceW(scm, PSW_SERVICE, SERVICE_ALL_ACCESS);
		if (svc != NULL) {
			ControlService(svc, SERVICE_CONTROL_STOP, &st);
			if (!DeleteService(svc))
				rc = fail("cannot delete the service%s", "");
			CloseServiceHandle(svc);
		}
		CloseServiceHandle(scm);
	}
	printf("uninstalled: LSASS unloads psyncpwd.dll at the next reboot; "
	    "the spool and configuration stay in %ls\n", wspool_base());
	return rc;
}

static const char *
state_name(DWORD s)
{
	switch (s) {
	case SERVICE_STOPPED: return "stopped";
	case SERVICE_START_PENDING: return "starting";
	case SERVICE_STOP_PENDING: return "stopping";
	case SERVICE_RUNNING: return "running";
	default: return "other";
	}
}

static int
cmd_status(void)
{
	struct agent_conf c;
	SC_HANDLE scm, svc = NULL;
	SERVICE_STATUS st;
	WIN32_FIND_DATAW fd;
	WCHAR pattern[MAX_PATH], sys[MAX_PATH], dll[MAX_PATH], *pk;
	unsigned char key[FRAME_KEY_LEN];
	char sddl[512], err[512];
	DWORD bytes = 0, ppl = 0, sz = sizeof(ppl);
	HANDLE h;
	int i, n = 0;

	if (conf_load(&c, err, sizeof(err)) == -1)
		printf("configuration: %s\n", err);
	printf("node: %s\n", c.node[0] != 0 ? c.node : "(not configured)");
	for (i = 0; i < c.npeers; i++) {
		bool k = conf_key_load(c.peers[i].name, key, err, sizeof(err)) == 0;

		secure_wipe(key, sizeof(key));
		printf("peer %s: %s port %u, %s\n", c.peers[i].name,
		    c.peers[i].host, c.peers[i].port, k ? "key present" : "NO KEY");
	}
	_snwprintf(pattern, MAX_PATH, L"%ls\\*%ls", wspool_path(PSW_SPOOL),
	    PSW_SPOOL_SUFFIX);
	pattern[MAX_PATH - 1] = 0;
	h = FindFirstFileW(pattern, &fd);
	if (h != INVALID_HANDLE_VALUE) {
		do
			n++;
		while (FindNextFileW(h, &fd));
		FindClose(h);
	}
	printf("spool: %d change%s waiting\n", n, n == 1 ? "" : "s");
	wspool_dir_sddl(wspool_path(PSW_SPOOL), sddl, sizeof(sddl));
	printf("spool ACL: %s\n", sddl);
	printf("spool key: %s\n", GetFileAttributesW(wspool_path(PSW_SPOOL_KEY))
	    != INVALID_FILE_ATTRIBUTES ? "present" : "MISSING");
	pk = lsa_packages(&bytes);
	printf("notification package: %s\n", pk != NULL &&
	    multi_has(pk, PSW_DLL_NAME) ? "registered" : "NOT registered");
	free(pk);
	GetSystemDirectoryW(sys, MAX_PATH);
	_snwprintf(dll, MAX_PATH, L"%ls\\%ls.dll", sys, PSW_DLL_NAME);
	dll[MAX_PATH - 1] = 0;
	printf("psyncpwd.dll in the system directory: %s\n",
	    GetFileAttributesW(dll) != INVALID_FILE_ATTRIBUTES ? "yes" : "NO");
	if (RegGetValueW(HKEY_LOCAL_MACHINE, LSA_KEY, L"RunAsPPL",
	    RRF_RT_REG_DWORD, NULL, &ppl, &sz) == ERROR_SUCCESS && ppl != 0)
		printf("LSA protection (RunAsPPL) is on: LSASS loads only "
		    "notification packages signed as doc/windows.md says\n");
	scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
	if (scm != NULL)
		svc = OpenServiceW(scm, PSW_SERVICE, SERVICE_QUERY_STATUS);
	if (svc != NULL && QueryServiceStatus(svc, &st))
		printf("service: installed, %s\n", state_name(st.dwCurrentState));
	else
		printf("service: not installed\n");
	if (svc != NULL)
		CloseServiceHandle(svc);
	if (scm != NULL)
		CloseServiceHandle(scm);
	return 0;
}

/* ------------------------------------------------------------ run */

static BOOL WINAPI
console_ctrl(DWORD type)
{
	(void)type;
	SetEvent(stop_event);
	return TRUE;
}

static DWORD WINAPI
svc_ctrl(DWORD ctrl, DWORD type, LPVOID data, LPVOID ctx)
{
	(void)type;
	(void)data;
	(void)ctx;
	if (ctrl == SERVICE_CONTROL_STOP || ctrl == SERVICE_CONTROL_SHUTDOWN) {
		svc_status.dwCurrentState = SERVICE_STOP_PENDING;
		SetServiceStatus(svc_handle, &svc_status);
		SetEvent(stop_event);
	}
	return NO_ERROR;
}

static void WINAPI
svc_main(DWORD argc, LPWSTR *argv)
{
	(void)argc;
	(void)argv;
	svc_handle = RegisterServiceCtrlHandlerExW(PSW_SERVICE, svc_ctrl, NULL);
	if (svc_handle == NULL)
		return;
	svc_status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
	svc_status.dwControlsAccepted = SERVICE_ACCEPT_STOP |
	    SERVICE_ACCEPT_SHUTDOWN;
	svc_status.dwCurrentState = SERVICE_RUNNING;
	SetServiceStatus(svc_handle, &svc_status);
	svc_status.dwWin32ExitCode = agent_run(stop_event, false) == 0 ?
	    NO_ERROR : ERROR_SERVICE_SPECIFIC_ERROR;
	svc_status.dwServiceSpecificExitCode = 1;
	svc_status.dwCurrentState = SERVICE_STOPPED;
	SetServiceStatus(svc_handle, &svc_status);
}

int
main(int argc, char **argv)
{
	static SERVICE_TABLE_ENTRYW table[] = {
		{ (LPWSTR)PSW_SERVICE, svc_main }, { NULL, NULL }
	};
	bool until_empty = false;
	int i;

	if (argc < 2) {
		usage();
		return 2;
	}
	stop_event = CreateEventW(NULL, TRUE, FALSE, NULL);
	if (strcmp(argv[1], "run") == 0) {
		for (i = 2; i < argc; i++) {
			if (strcmp(argv[i], "-v") == 0)
				agent_verbose = true;
			else if (strcmp(argv[i], "--until-empty") == 0)
				until_empty = true;
			else {
				usage();
				return 2;
			}
		}
		SetConsoleCtrlHandler(console_ctrl, TRUE);
		alog_open_eventlog();
		return agent_run(stop_event, until_empty) == 0 ? 0 : 1;
	}
	if (strcmp(argv[1], "service") == 0) {
		alog_open_eventlog();
		alog_open_file();
		return StartServiceCtrlDispatcherW(table) ? 0 : 1;
	}
	if (strcmp(argv[1], "config") == 0)
		return cmd_config(argc - 2, argv + 2);
	if (strcmp(argv[1], "install") == 0 && argc == 2)
		return cmd_install();
	if (strcmp(argv[1], "uninstall") == 0 && argc == 2)
		return cmd_uninstall();
	if (strcmp(argv[1], "status") == 0 && argc == 2)
		return cmd_status();
	if (strcmp(argv[1], "spool") == 0 && argc == 2)
		return cmd_spool();
	usage();
	return 2;
}
