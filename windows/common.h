/*
 * Names shared by psyncpwd.dll and psync-agent.exe: where the agent keeps
 * its state (under %ProgramData%) and the event that wakes it up.
 */
#ifndef PSYNC_WIN_COMMON_H
#define PSYNC_WIN_COMMON_H

/*
 * The agent's directory: ProgramData\psync on the system drive (the drive
 * of the Windows directory). Not from the environment: LSASS, the service
 * and an administrator's console must agree, and wine for one gives its
 * services another %ProgramData% than its consoles.
 */
#define PSW_DIR		L"ProgramData\\psync"
#define PSW_SPOOL	L"spool"		/* sealed changes, one file each */
#define PSW_KEYS	L"keys"			/* PEER.key, 64 hex digits */
#define PSW_CONF	L"agent.conf"
#define PSW_SPOOL_KEY	L"spool.key"		/* DPAPI blob (machine scope) */
#define PSW_SPOOL_SUFFIX L".chg"
/* Entropy given to DPAPI with the spool key: binds the blob to its use. */
#define PSW_DPAPI_ENTROPY "psync spool key v1"
/* Set by the DLL after each new spool file; the agent waits on it. */
#define PSW_EVENT	L"Global\\psync-agent-spool"
#define PSW_SERVICE	L"psync-agent"
#define PSW_DLL_NAME	L"psyncpwd"
/* SYSTEM and Administrators only, inherited by everything below. */
#define PSW_SDDL	L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"

#endif
