/*
 * The parent's state, shared by parent.c (the loop, spool, queue, inbound)
 * and control.c (the control socket), which both run in the one thread.
 */
#ifndef PSYNC_PARENT_H
#define PSYNC_PARENT_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config_file.h"
#include "pmsg.h"
#include "policy.h"
#include "psyncd.h"
#include "queue.h"
#include "seal.h"

#define CONTROL_CLIENTS_MAX	16

struct inflight;

struct parent {
	const struct psyncd_opts *opts;
	struct psync_config	*conf;
	struct policy		*pol;
	struct queue		*q;
	unsigned char		 host_key[SEAL_KEY_LEN];
	pid_t			 child_pid;
	int			 child_fd;
	int			 ctl_fd;
	int			 inotify_fd;
	int			 sig_fd;
	unsigned char		*rbuf;
	size_t			 rlen;
	struct queue_item	*items;
	struct inflight		*inflight;
	size_t			 n_inflight;
	bool			 deliver_soon;
	bool			 fatal;
	uint32_t		 next_reqid;
};

struct parent *parent_state(void);
uint64_t now_ms(void);
/* Reload the configuration (SIGHUP, psyncctl set-key); the old one stays
   on any error. */
int	parent_reload(struct psync_err *err);
/* Queue a test change for one peer (psyncctl send). */
int	parent_send_test(const char *user, const char *peer,
	    const char *password, struct sbuf *out);
/* Ask the child to check a peer's channel. */
int	parent_verify(const char *peer, const char *user, uint32_t *reqid,
	    struct sbuf *out);

/* Propose a new key to a peer (psyncctl rotate-key). */
int	parent_rotate(const char *peer, uint32_t *reqid, struct sbuf *out);

/* control.c */
int	control_open(const char *path);
void	control_close_all(void);
void	control_accept(void);
size_t	control_pollfds(struct pollfd *pfd, size_t cap);
void	control_readable(int fd);
void	control_tick(uint64_t now);
void	control_verify_result(uint32_t reqid,
	    const struct pmsg_verify_result *r);
void	control_key_result(uint32_t reqid, bool ok, const char *message);

#endif
