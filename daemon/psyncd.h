/*
 * psyncd: declarations shared by the parent (parent.c), the network child
 * (child.c) and the control socket (control.c).
 */
#ifndef PSYNC_PSYNCD_H
#define PSYNC_PSYNCD_H

#include <stdbool.h>
#include <sys/types.h>

#include "config_file.h"

#define PSYNCD_DEFAULT_USER	"psync"
#define PSYNCD_USER_ENV		"PSYNC_USER"

struct psyncd_opts {
	const char	*config_path;
	bool		 foreground;	/* -f: stay attached, log to stderr */
	const char	*user;		/* the network child's user */
	int		 debug;		/* -d: log debug messages */
};

/* What the parent hands the network child when it forks it. */
struct child_setup {
	int		 sock;		/* the socketpair end */
	int		 psync_fd;	/* listening psync socket, or -1 */
	struct mepp_listener *mepp;	/* opened MEPP listener, or NULL */
	const char	*chroot_dir;
	uid_t		 uid;
	gid_t		 gid;
	const char	*user;
	const char	*node;
};

/* The parent: runs until SIGTERM; returns the exit status. */
int	parent_main(const struct psyncd_opts *opts);
/* The network child; never returns. */
_Noreturn void child_main(const struct child_setup *setup);

/* The MEPP listener's decision callback: asks the parent (child side). */
int	child_mepp_decide(void *ctx, const char *peer, int type,
	    const char *user, const char *password);

/* A control request: the command words and the client's output. */
struct sbuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	bool	 oom;
};

void	sbuf_printf(struct sbuf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	sbuf_free(struct sbuf *b);

#define CONTROL_MSG_MAX		(64 * 1024)
#define CONTROL_REPLY_MAX	(4 * 1024 * 1024)

#endif
