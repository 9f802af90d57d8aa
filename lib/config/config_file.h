/*
 * psync.conf: the configuration every part reads. config_load() parses a
 * libconfuse file into the plain structures below, checks every value and
 * every cross-reference, and reports each problem as "FILE:LINE: option
 * 'NAME': what was expected". The structures are read-only after loading.
 */
#ifndef PSYNC_CONFIG_FILE_H
#define PSYNC_CONFIG_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define PSYNC_DEFAULT_CONFIG	"/etc/psync/psync.conf"
#define PSYNC_MEPP_PORT		6677
#define PSYNC_TLS_PORT		6678

enum store_type {
	STORE_FILES,		/* shadow/passwd files */
	STORE_PAM,		/* through a PAM service (LDAP, NIS behind PAM) */
	STORE_SAMBA,		/* the directory of a Samba AD DC */
};

enum hash_method {
	HASH_LOGIN_DEFS,	/* whatever /etc/login.defs says */
	HASH_YESCRYPT,
	HASH_SHA512,
	HASH_SHA256,
	HASH_BCRYPT,
};

enum peer_protocol {
	PROTO_PSYNC,		/* psync over TLS 1.3 */
	PROTO_MEPP,		/* legacy Windows Password Synchronization */
};

/* Bits: a peer we send to, receive from, or both. */
enum peer_direction {
	DIR_SEND	= 1,
	DIR_RECEIVE	= 2,
	DIR_BOTH	= 3,
};

/* Password rules; 0 means "no rule". Global rules and per-peer rules. */
struct pw_rules {
	unsigned int	min_length;	/* characters, not bytes */
	unsigned int	max_length;
	unsigned int	min_classes;	/* of upper, lower, digit, other */
	bool		reject_username;	/* AD: password must not contain the name */
};

/*
 * Highest cost of a crypt hash the store takes from a peer (0: the default,
 * lib/store/store.h). Anything costlier is refused before crypt ever runs on it.
 */
struct hash_limits {
	unsigned int	 bcrypt_cost;	/* log2 rounds */
	unsigned long	 rounds;	/* SHA-crypt, Sun MD5, SHA-1, BSDi */
	unsigned int	 yescrypt_cost;	/* login.defs terms: memory x runs */
};

struct store_conf {
	enum store_type	 type;
	char		*shadow_file;
	char		*passwd_file;
	char		*group_file;
	bool		 hashes_in_passwd;	/* the host keeps hashes in passwd */
	enum hash_method hash_method;
	unsigned int	 hash_cost;	/* rounds / cost factor; 0: login.defs or default */
	char		*login_defs;
	char		*nis_make_dir;	/* NULL: no NIS */
	char		*pam_service;
	char		*samba_private_dir;
	unsigned int	 lock_timeout;	/* seconds to wait for lckpwdf */
	unsigned int	 hash_threads;	/* 0: one per core */
	bool		 fingerprints;	/* deprecated, ignored: read for old files */
	char		*state_dir;	/* the queue directory: old state to retire */
	struct hash_limits hash_limits;
};

struct policy_conf {
	char		*sync_users;	/* legacy syntax: "+ALL,-root" */
	char		**allow_groups;
	size_t		 n_allow_groups;
	char		**deny_groups;
	size_t		 n_deny_groups;
	unsigned int	 min_uid;
	bool		 skip_locked;	/* locked, disabled or expired accounts */
	bool		 case_ignore_name;
	unsigned int	 max_clock_skew;	/* seconds a change may be ahead */
	char		*name_map_file;	/* NULL: no map */
	struct pw_rules	 rules;
};

struct listen_conf {
	bool		 enabled;
	char		*address;
	unsigned int	 port;
};

struct peer_conf {
	char		*name;
	enum peer_protocol protocol;
	char		*address;	/* host name or address to connect to */
	unsigned int	 port;
	char		*key_file;	/* psync: 32-byte PSK; mepp: key text */
	char		*legacy_key;	/* mepp only: key text inline */
	unsigned int	 mepp_key_words;	/* mepp: zero words of the session
					   key's hash, 4 (SPEC) or 8 (64-bit
					   legacy PAM module): key-derivation */
	char		**trusted;	/* addresses allowed to connect as this peer */
	size_t		 n_trusted;
	enum peer_direction direction;
	bool		 relay;		/* forward changes received from others */
	bool		 accept_hashes;	/* take crypt hashes, not only passwords */
	char		*ca_file;	/* X.509 mutual TLS instead of the PSK */
	char		*cert_file;
	char		*cert_key_file;
	unsigned int	 key_rotation_days;	/* 0: no automatic rotation */
	unsigned int	 connect_timeout;	/* seconds */
	struct pw_rules	 rules;		/* this peer's own rules (0: none) */
	int		 line;		/* where the section ends, for messages */
};

struct queue_conf {
	char		*directory;	/* queue database and state */
	char		*spool_directory;	/* where pam_psync drops changes */
	char		*host_key_file;	/* AES-256-GCM key sealing queued secrets */
	unsigned int	 retry_interval;	/* seconds */
	unsigned int	 max_retry_interval;
	unsigned int	 max_age;
	unsigned int	 retention;	/* finished records kept (queue_maintain) */
	unsigned int	 warn_depth;
	unsigned int	 warn_age;
};

struct log_conf {
	int		 facility;	/* syslog facility */
	int		 level;		/* syslog priority */
};

struct psync_config {
	char		*path;
	char		*node_name;
	char		*control_socket;
	struct store_conf store;
	struct policy_conf policy;
	struct listen_conf listen_mepp;
	struct listen_conf listen_psync;
	char		*tls_ca_file;	/* listener side of X.509 mutual TLS */
	char		*tls_cert_file;
	char		*tls_key_file;
	struct peer_conf *peers;
	size_t		 n_peers;
	struct queue_conf queue;
	struct log_conf	 log;
};

/* How config_load() reports: every problem goes through the callback. */
typedef void (*config_report_fn)(void *ctx, const char *message);

/*
 * Parse and check PATH. Problems (errors and warnings) go to report, one
 * message each, already prefixed with "PATH:LINE: ". Returns NULL when the
 * file has any error; warnings alone do not fail the load. When
 * check_owner is set the file must be root-owned and not group/world-writable.
 */
struct psync_config *config_load(const char *path, bool check_owner,
	    config_report_fn report, void *ctx);
/* The same from a string (tests, fuzzing); name is used in messages. */
struct psync_config *config_load_string(const char *text, const char *name,
	    config_report_fn report, void *ctx);
void	config_free(struct psync_config *conf);

const struct peer_conf *config_find_peer(const struct psync_config *conf,
	    const char *name);

/* Parse "90", "90s", "15m", "2h", "7d", "1w" into seconds; -1 on error. */
long	config_parse_duration(const char *text);

const char *config_store_name(enum store_type type);
const char *config_hash_name(enum hash_method method);
const char *config_protocol_name(enum peer_protocol proto);
const char *config_direction_name(enum peer_direction dir);

#endif
