/*
 * psyncd, the sync node: what its root parent's files share. The parent's
 * whole state is one struct psyncd, made in parent_main() and handed to
 * every function that needs it; each file does one job:
 *
 *   parent.c    the loop, signals and the life of the process
 *   spawn.c     starting the network child (fork + exec) and stopping it
 *   monitor.c   the one reader of the child: decode, dispatch table
 *   peers.c     the peer table sent to the child, and reloads
 *   intake.c    the spool: pam_psync's and the Samba hook's changes
 *   outbound.c  deliveries: what is due, in flight, and their results
 *   inbound.c   judging and applying the changes peers send
 *   rotation.c  psync key rotation
 *   control.c   the control socket and its commands
 *
 * The network child (net*.c) shares only pmsg.h and net.h with them.
 */
#ifndef PSYNC_PSYNCD_H
#define PSYNC_PSYNCD_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config_file.h"
#include "frame.h"
#include "pmsg.h"
#include "policy.h"
#include "queue.h"
#include "seal.h"

#define PSYNCD_DEFAULT_USER	"psync"
#define PSYNCD_USER_ENV		"PSYNC_USER"

#define TICK_MS			1000
#define DUE_BATCH		256
#define INFLIGHT_MAX		4096
#define INFLIGHT_TIMEOUT_MS	(120 * 1000)
/*
 * CHANGEs in flight to one peer. The network child does not read while a
 * write blocks, so the bytes in flight each way must fit in the sockets'
 * buffers (doc/protocol.md, "Pipelining"): 128 ordinary CHANGEs are ~40 KB.
 */
#define PEER_INFLIGHT_MAX	128
#define WARN_EVERY_MS		(60 * 1000)
#define STALE_TMP_SECONDS	60
#define INBOUND_BATCH_MAX	512
#define CHILD_GRACE_MS		5000
#define RBUF_CAP		(4 * (PMSG_HDR_LEN + PMSG_MAX))
#define ROT_MAX			64	/* proposals in flight */
#define CONTROL_CLIENTS_MAX	16

struct psyncd_opts {
	const char	*config_path;
	bool		 foreground;	/* -f: stay attached, log to stderr */
	const char	*user;		/* the network child's user */
	int		 debug;		/* -d: log debug messages */
};

/* A delivery handed to the child, until its result comes back. */
struct inflight {
	uint8_t		id[FRAME_ID_LEN];
	char		peer[FRAME_NAME_MAX + 1];
	char		user[FRAME_USER_MAX + 1];
	uint64_t	sent_ms;
};

/* One of our key proposals, waiting for the child's KEY_RESULT. */
struct rotation {
	char		peer[FRAME_NAME_MAX + 1];
	uint32_t	reqid;
	uint32_t	key_id;
	uint64_t	sent_ms;
	bool		control;	/* a psyncctl client waits for it */
};

/* An INBOUND message of the batch being read from the child. */
struct pending_in {
	uint32_t		reqid;
	struct pmsg_inbound	in;
};

/* A psyncctl connection. */
struct control_client {
	int		 fd;
	unsigned char	*buf;
	size_t		 len;
	uint32_t	 verify_reqid;	/* 0: none pending (verify or rotate) */
	bool		 rotating;	/* the pending request is rotate-key */
	char		 verify_peer[FRAME_NAME_MAX + 1];
	uint64_t	 deadline;
};

struct control {
	int			listen_fd;
	struct control_client	clients[CONTROL_CLIENTS_MAX];
	size_t			n_clients;
};

enum child_state {
	CHILD_NONE,		/* not started, or gone */
	CHILD_RUNNING,		/* it has a peer table */
	CHILD_STOPPING,		/* SHUTDOWN sent */
};

/* The root parent's state. */
struct psyncd {
	const struct psyncd_opts *opts;
	struct psync_config	*conf;
	struct policy		*pol;
	struct queue		*q;
	unsigned char		 host_key[SEAL_KEY_LEN];
	pid_t			 child_pid;
	enum child_state	 child_state;
	int			 child_fd;
	int			 inotify_fd;
	int			 sig_fd;
	unsigned char		*rbuf;		/* bytes from the child */
	size_t			 rlen;
	struct queue_item	*items;		/* DUE_BATCH */
	struct inflight		*inflight;	/* INFLIGHT_MAX */
	size_t			 n_inflight;
	struct rotation		 rots[ROT_MAX];
	size_t			 n_rots;
	uint64_t		 rot_last_check;
	struct control		 ctl;
	bool			 deliver_soon;
	bool			 spool_backlog;	/* a spool file waits for the queue */
	bool			 fatal;
	uint32_t		 next_reqid;
};

/* A control request's answer text. */
struct sbuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	bool	 oom;
};

void	sbuf_printf(struct sbuf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	sbuf_free(struct sbuf *b);

/* parent.c */
int	parent_main(const struct psyncd_opts *opts);
void	id_hex(const uint8_t id[FRAME_ID_LEN], char out[QUEUE_ID_HEX_LEN + 1]);

/* spawn.c: the network child is psyncd itself, re-executed. */
int	spawn_child(struct psyncd *d);
void	spawn_stop(struct psyncd *d);

/* monitor.c */
void	monitor_readable(struct psyncd *d);
void	monitor_send(struct psyncd *d, struct pmsg *m);
void	monitor_answer(struct psyncd *d, uint32_t reqid, int code,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void	monitor_child_dead(struct psyncd *d, const char *why);
/* The configured peer an INBOUND may come from, or NULL. */
const struct peer_conf *monitor_inbound_peer(struct psyncd *d,
	    const struct pmsg_inbound *in);

/* peers.c */
void	report_problem(void *ctx, const char *message);
struct pmsg *peers_build(struct psyncd *d, const struct psync_config *conf,
	    struct psync_err *err);
void	peers_send(struct psyncd *d, struct pmsg *t, size_t n);
void	peers_fingerprints(struct psyncd *d);
int	peers_reload(struct psyncd *d, struct psync_err *err);
int	peers_resend(struct psyncd *d, struct psync_err *err);

/* intake.c */
size_t	intake_targets(struct psyncd *d, const struct change *c,
	    const char *source, const char **out, size_t cap);
void	intake_scan(struct psyncd *d);
void	intake_clean_stale(struct psyncd *d);

/* outbound.c */
void	outbound_due(struct psyncd *d);
void	outbound_result(struct psyncd *d,
	    const struct pmsg_delivery_result *r);
void	outbound_housekeeping(struct psyncd *d);
int	outbound_send_test(struct psyncd *d, const char *user,
	    const char *peer, const char *password, struct sbuf *out);

/* inbound.c */
void	inbound_batch(struct psyncd *d, struct pending_in *pend, size_t n);

/* rotation.c */
int	rotation_start(struct psyncd *d, const char *peer, uint32_t *reqid,
	    struct sbuf *out);
void	rotation_proposed(struct psyncd *d, uint32_t reqid,
	    const struct pmsg_key_proposed *kp);
void	rotation_result(struct psyncd *d, uint32_t reqid,
	    const struct pmsg_key_result *kr);
void	rotation_used(struct psyncd *d, const struct pmsg_key_used *ku);
void	rotation_tick(struct psyncd *d, uint64_t now);
void	test_crash(struct psyncd *d, const char *point);
bool	rotatable(const struct peer_conf *pc);

/* control.c */
int	control_open(struct psyncd *d, const char *path);
void	control_close_all(struct psyncd *d);
void	control_accept(struct psyncd *d);
size_t	control_pollfds(struct psyncd *d, struct pollfd *pfd, size_t cap);
void	control_readable(struct psyncd *d, int fd);
void	control_tick(struct psyncd *d, uint64_t now);
void	control_verify_result(struct psyncd *d, uint32_t reqid,
	    const struct pmsg_verify_result *r);
void	control_key_result(struct psyncd *d, uint32_t reqid, bool ok,
	    const char *message);
int	control_verify_start(struct psyncd *d, const char *peer,
	    const char *user, uint32_t *reqid, struct sbuf *out);

#endif
