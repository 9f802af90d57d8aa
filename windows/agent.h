/*
 * psync-agent.exe: configuration, logging and the delivery engine shared by
 * the console mode, the service and the management commands.
 */
#ifndef PSYNC_WIN_AGENT_H
#define PSYNC_WIN_AGENT_H

#include <stdbool.h>
#include <stdint.h>
#include <windows.h>

#include "frame.h"

#define AGENT_PEERS_MAX		16
#define AGENT_DENY_MAX		256
#define AGENT_GROUP_MAX		256	/* GNLEN: a Windows group name */

struct agent_peer {
	char		name[FRAME_NAME_MAX + 1];
	char		host[256];
	unsigned int	port;
};

struct agent_conf {
	char		node[FRAME_NAME_MAX + 1];
	struct agent_peer peers[AGENT_PEERS_MAX];
	int		npeers;
	char		deny[AGENT_DENY_MAX][FRAME_USER_MAX + 1];
	int		ndeny;
	char		deny_groups[AGENT_DENY_MAX][AGENT_GROUP_MAX + 1];
	int		ndeny_groups;
	unsigned int	retry_min;	/* seconds, first back-off */
	unsigned int	retry_max;	/* seconds, longest back-off */
	unsigned int	expire;		/* seconds a change may wait */
	unsigned int	timeout;	/* seconds: connect, handshake, each read */
};

enum { LOG_DEBUG_, LOG_INFO_, LOG_WARN_, LOG_ERR_ };

void	alog(int level, int msgno, const char *fmt, ...)
	    __attribute__((format(gnu_printf, 3, 4)));
void	alog_open_eventlog(void);
void	alog_open_file(void);
extern bool agent_verbose;

void	conf_defaults(struct agent_conf *c);
/* Load agent.conf; a missing file gives the defaults (rc 1). 0, 1 or -1. */
int	conf_load(struct agent_conf *c, char *err, size_t errlen);
int	conf_save(const struct agent_conf *c, char *err, size_t errlen);
/* Add or change a peer after checking name, address and port. */
int	conf_set_peer(struct agent_conf *c, const char *name, const char *host,
	    const char *port, char *err, size_t errlen);
int	conf_key_load(const char *peer, unsigned char key[FRAME_KEY_LEN],
	    char *err, size_t errlen);
/* Parse a key file's text: 64 hex digits and an optional newline, or 32
   raw bytes. */
int	key_parse(const unsigned char *buf, size_t len,
	    unsigned char key[FRAME_KEY_LEN]);

/* Would a change for this user never be sent? Returns the reason, or NULL. */
const char *agent_excluded(const struct agent_conf *c, const char *user,
	    int *msgno);
/* A group name as deny-group takes it: 1 to 256 characters, no control
   character, no space at either end. */
bool	conf_group_valid(const char *name);
/*
 * Is the user a member of a denied group? The groups are the local and
 * domain local groups of the user, indirect memberships through global
 * groups included (NetUserGetLocalGroups, LG_INCLUDE_INDIRECT). 1 with the
 * group's name, 0, or -1 when the groups cannot be read (err says why).
 */
int	agent_group_denied(const struct agent_conf *c, const char *user,
	    char *group, size_t grouplen, char *err, size_t errlen);

/*
 * The delivery engine: runs until stop is signalled (or, with until_empty,
 * until the spool holds nothing left to deliver). 0, or -1 when it cannot
 * start (no key, no spool directory).
 */
int	agent_run(HANDLE stop, bool until_empty);

#endif
