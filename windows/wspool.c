/* The agent's side of the spool: see wspool.h. */
#include <windows.h>
#include <bcrypt.h>
#include <aclapi.h>
#include <sddl.h>
#include <wincrypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "wspool.h"

static WCHAR base_buf[MAX_PATH];
static WCHAR path_buf[MAX_PATH];

const WCHAR *
wspool_base(void)
{
	DWORD n;

	WCHAR win[MAX_PATH];

	if (base_buf[0] == 0) {
		n = GetSystemWindowsDirectoryW(win, MAX_PATH);
		if (n < 3 || n >= MAX_PATH || win[1] != L':')
			wcscpy(win, L"C:\\");
		_snwprintf(base_buf, MAX_PATH, L"%.3ls%ls", win, PSW_DIR);
	}
	return base_buf;
}

const WCHAR *
wspool_path(const WCHAR *name)
{
	_snwprintf(path_buf, MAX_PATH, L"%ls\\%ls", wspool_base(), name);
	path_buf[MAX_PATH - 1] = 0;
	return path_buf;
}

int
wstr_to_utf8(const WCHAR *in, char *out, size_t outlen)
{
	int n;

	n = WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, in, -1, out,
	    (int)outlen, NULL, NULL);
	return n > 0 ? 0 : -1;
}

int
utf8_to_wstr(const char *in, WCHAR *out, size_t outlen)
{
	int n;

	n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, in, -1, out,
	    (int)outlen);
	return n > 0 ? 0 : -1;
}

static void
win_error(char *err, size_t errlen, const char *what, DWORD code)
{
	char msg[256];
	size_t n;

	if (FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM |
	    FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code, 0, msg, sizeof(msg),
	    NULL) == 0)
		snprintf(msg, sizeof(msg), "error %lu", (unsigned long)code);
	n = strlen(msg);
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' ||
	    msg[n - 1] == ' ' || msg[n - 1] == '.'))
		msg[--n] = 0;
	snprintf(err, errlen, "%s: %s (%lu)", what, msg, (unsigned long)code);
}

static int
prepare_dir(const WCHAR *dir, PSECURITY_DESCRIPTOR sd, char *err,
    size_t errlen)
{
	SECURITY_ATTRIBUTES sa = { sizeof(sa), sd, FALSE };
	char name[MAX_PATH * 3];
	PACL dacl = NULL;
	BOOL present = FALSE, defaulted = FALSE;
	DWORD rc;

	wstr_to_utf8(dir, name, sizeof(name));
	if (!CreateDirectoryW(dir, &sa) &&
	    GetLastError() != ERROR_ALREADY_EXISTS) {
		win_error(err, errlen, name, GetLastError());
		return -1;
	}
	/* An existing directory gets the ACL again: nobody else may write. */
	if (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted))
		return -1;
	rc = SetNamedSecurityInfoW((LPWSTR)dir, SE_FILE_OBJECT,
	    DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
	    NULL, NULL, dacl, NULL);
	if (rc != ERROR_SUCCESS) {
		win_error(err, errlen, name, rc);
		return -1;
	}
	return 0;
}

int
wspool_prepare_dirs(char *err, size_t errlen)
{
	PSECURITY_DESCRIPTOR sd = NULL;
	WCHAR dir[MAX_PATH];
	int rc = -1;

	if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(PSW_SDDL,
	    SDDL_REVISION_1, &sd, NULL)) {
		win_error(err, errlen, "security descriptor", GetLastError());
		return -1;
	}
	if (prepare_dir(wspool_base(), sd, err, errlen) == -1)
		goto done;
	wcscpy(dir, wspool_path(PSW_SPOOL));
	if (prepare_dir(dir, sd, err, errlen) == -1)
		goto done;
	wcscpy(dir, wspool_path(PSW_KEYS));
	if (prepare_dir(dir, sd, err, errlen) == -1)
		goto done;
	rc = 0;
done:
	LocalFree(sd);
	return rc;
}

void
wspool_dir_sddl(const WCHAR *dir, char *out, size_t outlen)
{
	PSECURITY_DESCRIPTOR sd = NULL;
	LPSTR s = NULL;
	char name[MAX_PATH * 3];

	snprintf(out, outlen, "?");
	wstr_to_utf8(dir, name, sizeof(name));
	if (GetNamedSecurityInfoA(name, SE_FILE_OBJECT,
	    DACL_SECURITY_INFORMATION, NULL, NULL, NULL, NULL, &sd) !=
	    ERROR_SUCCESS)
		return;
	if (ConvertSecurityDescriptorToStringSecurityDescriptorA(sd,
	    SDDL_REVISION_1, DACL_SECURITY_INFORMATION, &s, NULL)) {
		snprintf(out, outlen, "%s", s);
		LocalFree(s);
	}
	LocalFree(sd);
}

static DATA_BLOB
entropy_blob(void)
{
	DATA_BLOB b;

	b.cbData = sizeof(PSW_DPAPI_ENTROPY) - 1;
	b.pbData = (BYTE *)PSW_DPAPI_ENTROPY;
	return b;
}

int
wspool_key_create(char *err, size_t errlen)
{
	uint8_t key[SPOOLREC_KEY_LEN];
	DATA_BLOB in, out, ent = entropy_blob();
	WCHAR path[MAX_PATH], tmp[MAX_PATH];
	HANDLE h;
	DWORD put = 0;
	BOOL ok;

	wcscpy(path, wspool_path(PSW_SPOOL_KEY));
	if (GetFileAttributesW(path) != INVALID_FILE_ATTRIBUTES)
		return 0;
	if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, key, sizeof(key),
	    BCRYPT_USE_SYSTEM_PREFERRED_RNG))) {
		snprintf(err, errlen, "no random bytes for the spool key");
		return -1;
	}
	in.cbData = sizeof(key);
	in.pbData = key;
	ok = CryptProtectData(&in, L"psync spool key", &ent, NULL, NULL,
	    CRYPTPROTECT_LOCAL_MACHINE | CRYPTPROTECT_UI_FORBIDDEN, &out);
	SecureZeroMemory(key, sizeof(key));
	if (!ok) {
		win_error(err, errlen, "DPAPI (machine scope)", GetLastError());
		return -1;
	}
	_snwprintf(tmp, MAX_PATH, L"%ls.tmp", path);
	tmp[MAX_PATH - 1] = 0;
	h = CreateFileW(tmp, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS,
	    FILE_ATTRIBUTE_NORMAL, NULL);
	if (h == INVALID_HANDLE_VALUE) {
		win_error(err, errlen, "spool.key", GetLastError());
		LocalFree(out.pbData);
		return -1;
	}
	ok = WriteFile(h, out.pbData, out.cbData, &put, NULL) &&
	    put == out.cbData && FlushFileBuffers(h);
	CloseHandle(h);
	LocalFree(out.pbData);
	if (!ok || !MoveFileExW(tmp, path, MOVEFILE_WRITE_THROUGH)) {
		win_error(err, errlen, "spool.key", GetLastError());
		DeleteFileW(tmp);
		return -1;
	}
	return 1;
}

/* The whole file into a heap buffer (at most max bytes). */
static uint8_t *
read_all(const WCHAR *path, size_t max, size_t *len, char *err, size_t errlen)
{
	LARGE_INTEGER sz;
	uint8_t *buf;
	DWORD got = 0;
	HANDLE h;
	char name[MAX_PATH * 3];

	wstr_to_utf8(path, name, sizeof(name));
	h = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL,
	    OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
	if (h == INVALID_HANDLE_VALUE) {
		win_error(err, errlen, name, GetLastError());
		return NULL;
	}
	if (!GetFileSizeEx(h, &sz) || sz.QuadPart < 0 ||
	    (uint64_t)sz.QuadPart > max) {
		snprintf(err, errlen, "%s: size out of bounds", name);
		CloseHandle(h);
		return NULL;
	}
	buf = malloc((size_t)sz.QuadPart + 1);
	if (buf == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		CloseHandle(h);
		return NULL;
	}
	if (sz.QuadPart > 0 && (!ReadFile(h, buf, (DWORD)sz.QuadPart, &got,
	    NULL) || got != (DWORD)sz.QuadPart)) {
		win_error(err, errlen, name, GetLastError());
		free(buf);
		CloseHandle(h);
		return NULL;
	}
	CloseHandle(h);
	*len = (size_t)sz.QuadPart;
	return buf;
}

int
wspool_key_load(uint8_t key[SPOOLREC_KEY_LEN], char *err, size_t errlen)
{
	DATA_BLOB in, out, ent = entropy_blob();
	uint8_t *blob;
	size_t len = 0;
	int rc = -1;

	blob = read_all(wspool_path(PSW_SPOOL_KEY), 4096, &len, err, errlen);
	if (blob == NULL)
		return -1;
	in.cbData = (DWORD)len;
	in.pbData = blob;
	if (!CryptUnprotectData(&in, NULL, &ent, NULL, NULL,
	    CRYPTPROTECT_UI_FORBIDDEN, &out)) {
		win_error(err, errlen, "spool.key: DPAPI", GetLastError());
	} else {
		if (out.cbData == SPOOLREC_KEY_LEN) {
			memcpy(key, out.pbData, SPOOLREC_KEY_LEN);
			rc = 0;
		} else {
			snprintf(err, errlen, "spool.key: not a 32-byte key");
		}
		SecureZeroMemory(out.pbData, out.cbData);
		LocalFree(out.pbData);
	}
	free(blob);
	return rc;
}

int
wspool_read(const WCHAR *path, const uint8_t key[SPOOLREC_KEY_LEN],
    struct wspool_change *c, char *err, size_t errlen)
{
	BCRYPT_ALG_HANDLE alg = NULL;
	BCRYPT_KEY_HANDLE kh = NULL;
	BCRYPT_AUTHENTICATED_CIPHER_MODE_INFO info;
	struct spoolrec rec;
	uint8_t *file, *plain = NULL;
	size_t len = 0;
	long plen;
	ULONG done = 0;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	wcsncpy(c->file, path, MAX_PATH - 1);
	file = read_all(path, SPOOLREC_FILE_MAX, &len, err, errlen);
	if (file == NULL)
		return -1;
	plen = spoolrec_check_file_head(file, len);
	if (plen < 0) {
		snprintf(err, errlen, "not a psync spool file");
		goto done;
	}
	plain = malloc((size_t)plen);
	if (plain == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	if (!BCRYPT_SUCCESS(BCryptOpenAlgorithmProvider(&alg,
	    BCRYPT_AES_ALGORITHM, NULL, 0)) ||
	    !BCRYPT_SUCCESS(BCryptSetProperty(alg, BCRYPT_CHAINING_MODE,
	    (PUCHAR)BCRYPT_CHAIN_MODE_GCM, sizeof(BCRYPT_CHAIN_MODE_GCM), 0)) ||
	    !BCRYPT_SUCCESS(BCryptGenerateSymmetricKey(alg, &kh, NULL, 0,
	    (PUCHAR)key, SPOOLREC_KEY_LEN, 0))) {
		snprintf(err, errlen, "AES-GCM is not available");
		goto done;
	}
	BCRYPT_INIT_AUTH_MODE_INFO(info);
	info.pbNonce = file + 4;
	info.cbNonce = SPOOLREC_NONCE_LEN;
	info.pbAuthData = file;
	info.cbAuthData = SPOOLREC_HEAD_LEN;
	info.pbTag = file + SPOOLREC_HEAD_LEN + plen;
	info.cbTag = SPOOLREC_TAG_LEN;
	if (!BCRYPT_SUCCESS(BCryptDecrypt(kh, file + SPOOLREC_HEAD_LEN,
	    (ULONG)plen, &info, NULL, 0, plain, (ULONG)plen, &done, 0)) ||
	    done != (ULONG)plen) {
		snprintf(err, errlen, "sealed with another key, or damaged");
		goto done;
	}
	if (spoolrec_parse(plain, (size_t)plen, &rec) == -1) {
		snprintf(err, errlen, "malformed record");
		goto done;
	}
	c->pass = malloc(rec.pass_len + 1);
	if (c->pass == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	memcpy(c->id, rec.id, sizeof(c->id));
	c->time_ms = rec.time_ms;
	c->rid = rec.rid;
	memcpy(c->user, rec.user, rec.user_len);
	c->user[rec.user_len] = 0;
	memcpy(c->pass, rec.pass, rec.pass_len);
	c->pass[rec.pass_len] = 0;
	c->pass_len = rec.pass_len;
	rc = 0;
done:
	if (kh != NULL)
		BCryptDestroyKey(kh);
	if (alg != NULL)
		BCryptCloseAlgorithmProvider(alg, 0);
	if (plain != NULL) {
		SecureZeroMemory(plain, (size_t)(plen > 0 ? plen : 0));
		free(plain);
	}
	free(file);
	if (rc == -1)
		wspool_change_wipe(c);
	return rc;
}

void
wspool_change_wipe(struct wspool_change *c)
{
	if (c->pass != NULL) {
		SecureZeroMemory(c->pass, c->pass_len);
		free(c->pass);
	}
	c->pass = NULL;
	c->pass_len = 0;
	SecureZeroMemory(c->user, sizeof(c->user));
}
