/*
 * The config.h that the portable lib/ sources include when they are
 * cross-compiled for Windows (configure's own is for the UNIX build).
 * lib/core/util.c also holds POSIX-only helpers (trusted files, state
 * directories) that the agent never calls: the definitions below only let
 * them compile, and --gc-sections drops them from the executable.
 */
#ifndef PSYNC_WIN_CONFIG_H
#define PSYNC_WIN_CONFIG_H

#include <string.h>
#include <sys/stat.h>
#include <windows.h>

#define explicit_bzero(p, n)	SecureZeroMemory((p), (n))

typedef int uid_t;
#define geteuid()		0
#define O_NOFOLLOW		0
#define O_CLOEXEC		0
#define O_NOCTTY		0
#define O_NONBLOCK		0
#define O_DIRECTORY		0
#define fsync(fd)		_commit(fd)
#include <io.h>
#define lstat(p, st)		stat((p), (st))
#include <direct.h>
#define mkdir(p, m)		_mkdir(p)

#endif
