/*
 * psyncpwd.dll: the LSA notification package. LSASS loads it on every
 * domain controller and calls PasswordChangeNotify with each new password
 * in clear. It only converts the user and password to UTF-8, seals them
 * with AES-256-GCM under the spool key (kept by DPAPI at machine scope),
 * writes one file into the agent's spool directory (temporary name, write,
 * flush, rename), signals the agent, and wipes every buffer.
 *
 * It must never crash, hang or block LSASS: no network, no parsing of
 * anything it did not make itself, one allocation per change that may
 * fail (the change is then dropped, never the process), no C runtime
 * (imports: kernel32, advapi32 and bcrypt only; crypt32 for DPAPI is
 * loaded from the system directory once, by full path). PasswordFilter
 * always allows the change: psync never judges passwords here.
 */
#include <windows.h>
#include <bcrypt.h>
#include <ntsecapi.h>
#include <wincrypt.h>

#include "common.h"
#include "spoolrec.h"

#ifndef STATUS_SUCCESS
#define STATUS_SUCCESS ((NTSTATUS)0)
#endif

/* Built without a C runtime: gcc may still emit calls to these two. */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);

void *
memset(void *d, int c, size_t n)
{
	volatile unsigned char *p = d;

	while (n-- > 0)
		*p++ = (unsigned char)c;
	return d;
}

void *
memcpy(void *d, const void *s, size_t n)
{
	unsigned char *p = d;
	const unsigned char *q = s;

	while (n-- > 0)
		*p++ = *q++;
	return d;
}

typedef BOOL (WINAPI *unprotect_fn)(DATA_BLOB *, LPWSTR *, DATA_BLOB *,
    PVOID, CRYPTPROTECT_PROMPTSTRUCT *, DWORD, DATA_BLOB *);

static SRWLOCK	key_lock = SRWLOCK_INIT;
static BOOL	key_ready;
static UCHAR	spool_key[SPOOLREC_KEY_LEN];
static WCHAR	spool_dir[MAX_PATH];
static volatile LONG file_counter;

static void
wipe(void *p, SIZE_T n)
{
	SecureZeroMemory(p, n);
}

static int
wlen(const WCHAR *s)
{
	int n = 0;

	while (s[n] != 0)
		n++;
	return n;
}

/* dst = a + b; FALSE when it does not fit in cap characters. */
static BOOL
wjoin(WCHAR *dst, size_t cap, const WCHAR *a, const WCHAR *b)
{
	int la = wlen(a), lb = wlen(b), i;

	if ((size_t)la + (size_t)lb + 1 > cap)
		return FALSE;
	for (i = 0; i < la; i++)
		dst[i] = a[i];
	for (i = 0; i < lb; i++)
		dst[la + i] = b[i];
	dst[la + lb] = 0;
	return TRUE;
}

/* Read the DPAPI blob of the spool key and unprotect it. Called with
   key_lock held exclusively. */
static BOOL
load_key(void)
{
	WCHAR base[MAX_PATH], path[MAX_PATH], sysdir[MAX_PATH], crypt32[MAX_PATH];
	UCHAR blob[4096];
	DATA_BLOB in, out, entropy;
	DWORD got = 0, n;
	HANDLE h;
	HMODULE lib;
	unprotect_fn unprotect;
	BOOL ok = FALSE;

	/* ProgramData\psync on the drive of the Windows directory. */
	n = GetSystemWindowsDirectoryW(sysdir, MAX_PATH);
	if (n < 3 || n >= MAX_PATH || sysdir[1] != L':')
		return FALSE;
	sysdir[3] = 0;
	if (!wjoin(base, MAX_PATH, sysdir, PSW_DIR))
		return FALSE;
	if (!wjoin(spool_dir, MAX_PATH, base, L"\\" PSW_SPOOL) ||
	    !wjoin(path, MAX_PATH, base, L"\\" PSW_SPOOL_KEY))
		return FALSE;
	n = GetSystemDirectoryW(sysdir, MAX_PATH);
	if (n == 0 || n >= MAX_PATH ||
	    !wjoin(crypt32, MAX_PATH, sysdir, L"\\crypt32.dll"))
		return FALSE;
	h = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL,
	    OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
	if (h == INVALID_HANDLE_VALUE)
		return FALSE;
	if (!ReadFile(h, blob, sizeof(blob), &got, NULL) || got == 0 ||
	    got == sizeof(blob)) {
		CloseHandle(h);
		return FALSE;
	}
	CloseHandle(h);
	lib = LoadLibraryW(crypt32);
	if (lib == NULL)
		return FALSE;
	unprotect = (unprotect_fn)(void (*)(void))GetProcAddress(lib,
	    "CryptUnprotectData");
	if (unprotect != NULL) {
		in.cbData = got;
		in.pbData = blob;
		entropy.cbData = sizeof(PSW_DPAPI_ENTROPY) - 1;
		entropy.pbData = (BYTE *)PSW_DPAPI_ENTROPY;
		out.cbData = 0;
		out.pbData = NULL;
		if (unprotect(&in, NULL, &entropy, NULL, NULL,
		    CRYPTPROTECT_UI_FORBIDDEN, &out)) {
			if (out.cbData == SPOOLREC_KEY_LEN) {
				memcpy(spool_key, out.pbData, SPOOLREC_KEY_LEN);
				ok = TRUE;
			}
			wipe(out.pbData, out.cbData);
			LocalFree(out.pbData);
		}
	}
	/* crypt32 stays loaded: LSASS uses it anyway, and unloading buys nothing. */
	wipe(blob, sizeof(blob));
	return ok;
}

static BOOL
ensure_key(void)
{
	BOOL ready;

	AcquireSRWLockShared(&key_lock);
	ready = key_ready;
	ReleaseSRWLockShared(&key_lock);
	if (ready)
		return TRUE;
	AcquireSRWLockExclusive(&key_lock);
	if (!key_ready)
		key_ready = load_key();
	ready = key_ready;
	ReleaseSRWLockExclusive(&key_lock);
	return ready;
}

static BOOL
seal(UCHAR *file, const UCHAR *plain, ULONG plain_len)
{
	BCRYPT_ALG_HANDLE alg = NULL;
	BCRYPT_KEY_HANDLE key = NULL;
	BCRYPT_AUTHENTICATED_CIPHER_MODE_INFO info;
	UCHAR nonce[SPOOLREC_NONCE_LEN];
	ULONG done = 0;
	BOOL ok = FALSE;

	if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, nonce, sizeof(nonce),
	    BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
		return FALSE;
	spoolrec_put_file_head(file, nonce, plain_len);
	if (!BCRYPT_SUCCESS(BCryptOpenAlgorithmProvider(&alg,
	    BCRYPT_AES_ALGORITHM, NULL, 0)))
		return FALSE;
	if (!BCRYPT_SUCCESS(BCryptSetProperty(alg, BCRYPT_CHAINING_MODE,
	    (PUCHAR)BCRYPT_CHAIN_MODE_GCM, sizeof(BCRYPT_CHAIN_MODE_GCM), 0)))
		goto done;
	AcquireSRWLockShared(&key_lock);
	if (!BCRYPT_SUCCESS(BCryptGenerateSymmetricKey(alg, &key, NULL, 0,
	    spool_key, SPOOLREC_KEY_LEN, 0)))
		key = NULL;
	ReleaseSRWLockShared(&key_lock);
	if (key == NULL)
		goto done;
	BCRYPT_INIT_AUTH_MODE_INFO(info);
	info.pbNonce = nonce;
	info.cbNonce = sizeof(nonce);
	info.pbAuthData = file;
	info.cbAuthData = SPOOLREC_HEAD_LEN;
	info.pbTag = file + SPOOLREC_HEAD_LEN + plain_len;
	info.cbTag = SPOOLREC_TAG_LEN;
	ok = BCRYPT_SUCCESS(BCryptEncrypt(key, (PUCHAR)plain, plain_len, &info,
	    NULL, 0, file + SPOOLREC_HEAD_LEN, plain_len, &done, 0)) &&
	    done == plain_len;
done:
	if (key != NULL)
		BCryptDestroyKey(key);
	BCryptCloseAlgorithmProvider(alg, 0);
	return ok;
}

static void
hex_w(WCHAR *out, ULONGLONG v, int digits)
{
	static const WCHAR hx[] = L"0123456789abcdef";
	int i;

	for (i = digits - 1; i >= 0; i--) {
		out[i] = hx[v & 0xf];
		v >>= 4;
	}
}

/* Write the sealed file under a temporary name, flush, rename into place. */
static BOOL
spool_write(const UCHAR *file, ULONG len, ULONGLONG time_ms)
{
	WCHAR name[48], tmp[MAX_PATH], final[MAX_PATH];
	UCHAR rnd[4];
	ULONG r;
	DWORD put = 0;
	HANDLE h;
	BOOL ok;

	if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, rnd, sizeof(rnd),
	    BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
		return FALSE;
	r = ((ULONG)rnd[0] << 24) | ((ULONG)rnd[1] << 16) |
	    ((ULONG)rnd[2] << 8) | rnd[3];
	/* \TTTTTTTTTTTTTTTT-CCCCCCCC-RRRRRRRR.tmp: sorts by time. */
	name[0] = L'\\';
	hex_w(name + 1, time_ms, 16);
	name[17] = L'-';
	hex_w(name + 18, (ULONG)InterlockedIncrement(&file_counter), 8);
	name[26] = L'-';
	hex_w(name + 27, r, 8);
	name[35] = 0;
	if (!wjoin(final, MAX_PATH, spool_dir, name) ||
	    !wjoin(tmp, MAX_PATH, final, L".tmp") ||
	    !wjoin(final, MAX_PATH, final, PSW_SPOOL_SUFFIX))
		return FALSE;
	h = CreateFileW(tmp, GENERIC_WRITE, 0, NULL, CREATE_NEW,
	    FILE_ATTRIBUTE_NORMAL, NULL);
	if (h == INVALID_HANDLE_VALUE)
		return FALSE;
	ok = WriteFile(h, file, len, &put, NULL) && put == len &&
	    FlushFileBuffers(h);
	CloseHandle(h);
	if (ok)
		ok = MoveFileExW(tmp, final, MOVEFILE_WRITE_THROUGH);
	if (!ok)
		DeleteFileW(tmp);
	return ok;
}

static void
signal_agent(void)
{
	HANDLE ev = OpenEventW(EVENT_MODIFY_STATE, FALSE, PSW_EVENT);

	if (ev != NULL) {
		SetEvent(ev);
		CloseHandle(ev);
	}
}

/* Is every surrogate paired? (Not all WideCharToMultiByte refuse them.) */
static BOOL
valid_utf16(const WCHAR *w, ULONG n)
{
	ULONG i;

	for (i = 0; i < n; i++) {
		if (w[i] >= 0xd800 && w[i] <= 0xdbff) {
			if (i + 1 == n || w[i + 1] < 0xdc00 || w[i + 1] > 0xdfff)
				return FALSE;
			i++;
		} else if (w[i] >= 0xdc00 && w[i] <= 0xdfff) {
			return FALSE;
		}
	}
	return TRUE;
}

/* UTF-16 units to UTF-8 bytes; unpaired surrogates fail (-1). */
static int
utf8_len(const UNICODE_STRING *s)
{
	if (s->Length == 0)
		return 0;
	if (!valid_utf16(s->Buffer, s->Length / sizeof(WCHAR)))
		return -1;
	return WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, s->Buffer,
	    s->Length / sizeof(WCHAR), NULL, 0, NULL, NULL);
}

static BOOL
to_utf8(const UNICODE_STRING *s, UCHAR *out, int n)
{
	if (n == 0)
		return TRUE;
	return WideCharToMultiByte(CP_UTF8, WC_ERR_INVALID_CHARS, s->Buffer,
	    s->Length / sizeof(WCHAR), (LPSTR)out, n, NULL, NULL) == n;
}

BOOLEAN NTAPI
InitializeChangeNotify(void)
{
	/* Never refuse to load: a key that is not there yet is read later. */
	(void)ensure_key();
	return TRUE;
}

BOOLEAN NTAPI
PasswordFilter(PUNICODE_STRING account, PUNICODE_STRING full_name,
    PUNICODE_STRING password, BOOLEAN set_operation)
{
	(void)account;
	(void)full_name;
	(void)password;
	(void)set_operation;
	return TRUE;
}

NTSTATUS NTAPI
PasswordChangeNotify(PUNICODE_STRING user, ULONG rid, PUNICODE_STRING password)
{
	UCHAR id[SPOOLREC_ID_LEN];
	UCHAR *mem = NULL, *plain, *file;
	SIZE_T plain_len = 0, file_len, mem_len = 0;
	size_t uoff, poff;
	FILETIME ft;
	ULONGLONG t;
	int ulen, plen;

	if (user == NULL || password == NULL || user->Buffer == NULL ||
	    (password->Length > 0 && password->Buffer == NULL))
		return STATUS_SUCCESS;
	if (!ensure_key())
		return STATUS_SUCCESS;
	ulen = utf8_len(user);
	plen = utf8_len(password);
	if (ulen <= 0 || plen < 0)
		return STATUS_SUCCESS;
	plain_len = spoolrec_plain_len((uint32_t)ulen, (uint32_t)plen);
	if (plain_len == 0)
		return STATUS_SUCCESS;
	file_len = SPOOLREC_HEAD_LEN + plain_len + SPOOLREC_TAG_LEN;
	mem_len = plain_len + file_len;
	mem = HeapAlloc(GetProcessHeap(), 0, mem_len);
	if (mem == NULL)
		return STATUS_SUCCESS;
	plain = mem;
	file = mem + plain_len;
	if (!BCRYPT_SUCCESS(BCryptGenRandom(NULL, id, sizeof(id),
	    BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
		goto done;
	GetSystemTimeAsFileTime(&ft);
	t = ((ULONGLONG)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
	/* 100 ns ticks since 1601 to milliseconds since 1970. */
	t = (t - 116444736000000000ULL) / 10000;
	spoolrec_put_header(plain, id, t, rid, (uint32_t)ulen, (uint32_t)plen,
	    &uoff, &poff);
	if (!to_utf8(user, plain + uoff, ulen) ||
	    !to_utf8(password, plain + poff, plen))
		goto done;
	if (!seal(file, plain, (ULONG)plain_len))
		goto done;
	if (spool_write(file, (ULONG)file_len, t))
		signal_agent();
done:
	wipe(mem, mem_len);
	HeapFree(GetProcessHeap(), 0, mem);
	return STATUS_SUCCESS;
}

BOOL WINAPI
DllMain(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
	(void)reserved;
	if (reason == DLL_PROCESS_ATTACH)
		DisableThreadLibraryCalls(inst);
	if (reason == DLL_PROCESS_DETACH)
		wipe(spool_key, sizeof(spool_key));
	return TRUE;
}
