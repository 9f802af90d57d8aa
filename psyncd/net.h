/*
 * psyncd's network child: everything that talks to the network, and
 * nothing else. The root parent re-executes psyncd with "-R net"
 * (spawn.c); the child gets its listening sockets and the socketpair at
 * fixed descriptor numbers, starts its resolver (net_resolve.c), chroots
 * into an empty directory, becomes an unprivileged user, checks that it
 * cannot become root again, and then works from the peer table the
 * parent sends. It owns no store, no queue, no host key and no key file.
 *
 * Each peer protocol is one file behind struct net_proto (net_psync.c,
 * net_mepp.c): its listener, its delivery, its channel check. net.c holds
 * what they share: the table, the parent's channel, the workers.
 */
#ifndef PSYNC_NET_H
#define PSYNC_NET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "frame.h"
#include "pmsg.h"

/* The descriptors the parent hands over (spawn.c). */
#define NET_FD_PARENT		3
#define NET_FD_PSYNC		4
#define NET_FD_MEPP		5

#define CHILD_MAX_CONNS		64	/* inbound psync connections */
#define CHILD_BATCH_MAX		64	/* changes forwarded per round */
#define CHILD_REPLY_TIMEOUT_MS	60000	/* waiting for the parent */
#define CHILD_RESULT_TIMEOUT_MS	30000	/* waiting for a peer's RESULT */
#define CHILD_HELLO_TIMEOUT_MS	10000
#define CHILD_TABLE_WAIT_MS	10000	/* for the promoted key's table */
#define CHILD_CAPS		(FRAME_CAP_CRYPT_HASH | FRAME_CAP_KEY_ROTATION)

struct net;
struct mepp_listener;
struct wire_conn;
struct wire_server;

/* How the child was started (psyncd -R net ...). */
struct net_setup {
	const char	*user;
	const char	*chroot_dir;
	int		 log_level;
	int		 log_facility;
	bool		 foreground;
};

/* Someone waiting for the parent's (or the resolver's) answer. */
struct waiter {
	uint32_t	 reqid;
	bool		 done;
	int		 code;
	char		 reason[PMSG_TEXT_MAX + 1];
	struct waiter	*next;
};

/* One outbound change waiting in a worker. */
struct job {
	struct change	 change;
	struct job		*next;
};

/* A peer's delivery thread. */
struct worker {
	struct net	*net;
	char		 peer[FRAME_NAME_MAX + 1];
	pthread_t	 thread;
	struct job	*head, *tail;
	bool		 stop;
	bool		 rekeyed;	/* its keys changed: drop the connection */
	bool		 has_prop;	/* a key proposal to make */
	uint32_t	 prop_reqid;
	struct pmsg_key_propose prop;
	struct wire_conn *conn;
	uint32_t	 conn_caps;	/* the peer's HELLO capabilities */
	struct worker	*next;
};

/* A peer protocol: one file, one row of net_protos[]. */
struct net_proto {
	int		 protocol;	/* enum peer_protocol */
	const char	*name;
	int		 listen_fd;	/* its listening socket's number */
	/* Before the chroot: get ready to serve listen_fd; -1 on error. */
	int		(*listen_prepare)(struct net *n);
	/* Once the first peer table is in: serve it in threads of its own. */
	void		(*listen_start)(struct net *n);
	void		(*listen_stop)(struct net *n);
	/* A new peer table is in (keys may have changed). */
	void		(*table_changed)(struct net *n);
	/* Send these changes; every job gets a net_report(). */
	void		(*deliver)(struct net *n, struct worker *w,
			    const struct pmsg_peer *p, struct job *jobs);
	/* Check the channel to p; fills step, code and message. */
	void		(*verify)(struct net *n, const struct pmsg_peer *p,
			    const char *user, struct pmsg_verify_result *out);
	/* Key rotation, for protocols that have it; NULL otherwise. */
	void		(*propose)(struct net *n, struct worker *w,
			    const struct pmsg_peer *p, uint32_t reqid,
			    const struct pmsg_key_propose *kp);
	/* The worker stops: close what it keeps open. */
	void		(*worker_end)(struct worker *w);
};

struct net {
	int			 sock;		/* to the parent */
	const char		*node;
	char			 node_buf[FRAME_NAME_MAX + 1];
	pthread_mutex_t		 write_lock;
	pthread_mutex_t		 lock;		/* everything below */
	pthread_cond_t		 cond;
	struct pmsg_peer	*peers;
	size_t			 n_peers;
	struct pmsg_peer	*staging;
	size_t			 n_staging;
	struct waiter		*waiters;
	uint32_t		 next_reqid;
	struct worker		*workers;
	unsigned int		 conns;
	atomic_bool		 stopping;
	/* psync */
	struct wire_server	*srv;
	pthread_t		 psync_thread;
	bool			 psync_running;
	/* MEPP */
	struct mepp_listener	*mepp;
	pthread_t		 mepp_thread;
	bool			 mepp_running;
	/* the resolver */
	int			 dns_fd;
	pthread_t		 dns_thread;
	bool			 dns_running;
};

extern const struct net_proto net_psync;
extern const struct net_proto net_mepp;
extern const struct net_proto *const net_protos[];
const struct net_proto *net_proto_of(int protocol);

/* net.c */
_Noreturn void net_main(const struct net_setup *s);
int	net_send_parent(struct net *n, struct pmsg *m);
int	net_peer_copy(struct net *n, const char *name, struct pmsg_peer *out);
void	net_deadline(struct timespec *ts, int ms);
void	net_waiter_add(struct net *n, struct waiter *w);
void	net_waiters_wait(struct net *n, struct waiter *ws, size_t count,
	    int timeout_ms);
void	net_waiter_answer(struct net *n, uint32_t reqid, int code,
	    const char *reason);
void	net_report(struct net *n, const uint8_t id[FRAME_ID_LEN],
	    const char *peer, int code, const char *reason);
void	net_key_result(struct net *n, uint32_t reqid, const char *peer,
	    uint32_t id, int code, const char *reason);
void	net_key_used(struct net *n, const char *peer, uint32_t id);
void	net_jobs_free(struct job *j);

/* net_resolve.c: the resolver is a process of its own. */
int	net_resolver_start(struct net *n, const char *user);
void	net_resolver_stop(struct net *n);
/* Fill p->address (numeric) or p->resolve_error from p->host. */
void	net_resolve(struct net *n, struct pmsg_peer *p);
/* The resolver process's own main loop (in the forked process). */
_Noreturn void net_resolver_main(int fd);

#endif
