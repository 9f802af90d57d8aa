/*
 * Plays LSASS for psyncpwd.dll under wine: loads the DLL, calls
 * InitializeChangeNotify, then for each case PasswordFilter (which must
 * allow) and PasswordChangeNotify, timing each PasswordChangeNotify call.
 *
 *   lsa-loader DLL [-n REPEAT] USER=SPEC...
 *
 * SPEC gives the password as UTF-16 code units, so that surrogate pairs
 * reach the DLL exactly as LSASS would pass them:
 *   hex:0061d83dde000062   units in hex, 4 digits each
 *   rep:N:0061             N copies of one unit
 *   empty                  the empty password
 * Prints "call USER units=N us=T at_ms=M" per call (M: the wall clock in
 * milliseconds since 1970 just before the call), and with -n the p50 and p99
 * of all calls ("p50_us=... p99_us=..."). Exit 0 when every call went
 * through and PasswordFilter allowed every change.
 */
#include <windows.h>
#include <ntsecapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef BOOLEAN (NTAPI *init_fn)(void);
typedef BOOLEAN (NTAPI *filter_fn)(PUNICODE_STRING, PUNICODE_STRING,
    PUNICODE_STRING, BOOLEAN);
typedef NTSTATUS (NTAPI *notify_fn)(PUNICODE_STRING, ULONG, PUNICODE_STRING);

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
unit(const char *s)
{
	int i, v = 0, d;

	for (i = 0; i < 4; i++) {
		if ((d = hexval(s[i])) < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* The password of a SPEC into a fresh buffer; -1 on a bad SPEC. */
static long
parse_spec(const char *spec, WCHAR **out)
{
	size_t n, i;
	WCHAR *w;
	int u;

	if (strcmp(spec, "empty") == 0) {
		*out = calloc(1, sizeof(WCHAR));
		return 0;
	}
	if (strncmp(spec, "hex:", 4) == 0) {
		spec += 4;
		if (strlen(spec) % 4 != 0)
			return -1;
		n = strlen(spec) / 4;
		w = calloc(n + 1, sizeof(WCHAR));
		for (i = 0; i < n; i++) {
			if ((u = unit(spec + 4 * i)) < 0)
				return -1;
			w[i] = (WCHAR)u;
		}
		*out = w;
		return (long)n;
	}
	if (strncmp(spec, "rep:", 4) == 0) {
		char *end;

		n = strtoul(spec + 4, &end, 10);
		if (*end != ':' || n > 32767 || (u = unit(end + 1)) < 0)
			return -1;
		w = calloc(n + 1, sizeof(WCHAR));
		for (i = 0; i < n; i++)
			w[i] = (WCHAR)u;
		*out = w;
		return (long)n;
	}
	return -1;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	HMODULE dll;
	init_fn init;
	filter_fn filter;
	notify_fn notify;
	LARGE_INTEGER freq, t0, t1;
	double *times;
	int i, r, repeat = 1, first = 2, ncalls = 0, failed = 0;

	if (argc < 3) {
		fprintf(stderr, "usage: lsa-loader DLL [-n REPEAT] USER=SPEC...\n");
		return 2;
	}
	if (strcmp(argv[2], "-n") == 0 && argc > 4) {
		repeat = atoi(argv[3]);
		first = 4;
	}
	dll = LoadLibraryA(argv[1]);
	if (dll == NULL) {
		fprintf(stderr, "lsa-loader: cannot load %s: error %lu\n",
		    argv[1], (unsigned long)GetLastError());
		return 1;
	}
	init = (init_fn)(void (*)(void))GetProcAddress(dll, "InitializeChangeNotify");
	filter = (filter_fn)(void (*)(void))GetProcAddress(dll, "PasswordFilter");
	notify = (notify_fn)(void (*)(void))GetProcAddress(dll, "PasswordChangeNotify");
	if (init == NULL || filter == NULL || notify == NULL) {
		fprintf(stderr, "lsa-loader: an export is missing\n");
		return 1;
	}
	if (!init()) {
		fprintf(stderr, "lsa-loader: InitializeChangeNotify said FALSE\n");
		return 1;
	}
	printf("init ok\n");
	QueryPerformanceFrequency(&freq);
	times = calloc((size_t)(argc - first) * (size_t)repeat + 1, sizeof(double));
	for (i = first; i < argc; i++) {
		char user[256];
		const char *eq = strchr(argv[i], '=');
		WCHAR wuser[256], *pw = NULL;
		UNICODE_STRING us, ps, full;
		long units;
		size_t k;

		if (eq == NULL || eq - argv[i] >= 255 ||
		    (units = parse_spec(eq + 1, &pw)) < 0) {
			fprintf(stderr, "lsa-loader: bad case %s\n", argv[i]);
			return 2;
		}
		memcpy(user, argv[i], (size_t)(eq - argv[i]));
		user[eq - argv[i]] = 0;
		for (k = 0; k <= strlen(user); k++)
			wuser[k] = (WCHAR)(unsigned char)user[k];
		us.Buffer = wuser;
		us.Length = us.MaximumLength = (USHORT)(strlen(user) * 2);
		ps.Buffer = pw;
		ps.Length = (USHORT)(units * 2);
		ps.MaximumLength = (USHORT)(units * 2);
		full = us;
		for (r = 0; r < repeat; r++) {
			FILETIME ft;
			ULONGLONG at;

			if (!filter(&us, &full, &ps, TRUE)) {
				printf("PasswordFilter refused %s\n", user);
				failed++;
			}
			GetSystemTimeAsFileTime(&ft);
			at = ((((ULONGLONG)ft.dwHighDateTime << 32) |
			    ft.dwLowDateTime) - 116444736000000000ULL) / 10000;
			QueryPerformanceCounter(&t0);
			notify(&us, 1000 + (ULONG)i, &ps);
			QueryPerformanceCounter(&t1);
			times[ncalls] = (double)(t1.QuadPart - t0.QuadPart) *
			    1e6 / (double)freq.QuadPart;
			if (repeat == 1)
				printf("call %s units=%ld us=%.0f at_ms=%llu\n", user,
				    units, times[ncalls], at);
			ncalls++;
		}
		SecureZeroMemory(pw, (size_t)units * sizeof(WCHAR));
		free(pw);
	}
	if (repeat > 1 && ncalls > 0) {
		qsort(times, (size_t)ncalls, sizeof(double), cmp_double);
		printf("calls=%d p50_us=%.0f p99_us=%.0f max_us=%.0f\n", ncalls,
		    times[ncalls / 2], times[(ncalls * 99) / 100 < ncalls ?
		    (ncalls * 99) / 100 : ncalls - 1], times[ncalls - 1]);
	}
	free(times);
	FreeLibrary(dll);
	return failed == 0 ? 0 : 1;
}
