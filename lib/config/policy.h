/*
 * The one policy engine: "may this change for this user go to (or come
 * from) this peer, with this password?" The PAM module, the listener and
 * the forwarder all ask here, and get a result code from the MEPP table,
 * the legacy log number where one applies, and a sentence for a person.
 */
#ifndef PSYNC_POLICY_H
#define PSYNC_POLICY_H

#include <stdbool.h>

#include "account.h"
#include "config_file.h"
#include "names.h"

enum policy_direction {
	POLICY_OUTBOUND,	/* a local change going to a peer */
	POLICY_INBOUND,		/* a peer's change arriving here */
};

enum rule_outcome {
	RULE_PASS,
	RULE_FAIL,
	RULE_SKIP,		/* not configured, or not applicable */
};

struct policy;

struct policy_request {
	const char		*user;		/* the local (UNIX) name */
	const struct account	*account;	/* NULL: no such local user */
	const struct peer_conf	*peer;		/* NULL: every peer the user syncs to */
	enum policy_direction	 direction;
	const char		*password;	/* NULL: do not judge a password */
};

struct policy_verdict {
	int	code;		/* PSYNC_OK or a PSYNC_E_* code */
	int	msgno;		/* legacy log number, 0 if none */
	char	rule[32];	/* the rule that decided */
	char	reason[320];	/* for a person; never holds the password */
};

/* Called once per rule, in order, when a caller wants the whole story. */
typedef void (*policy_trace_fn)(void *ctx, const char *rule,
	    enum rule_outcome outcome, const char *detail);

/*
 * Build the engine from the configuration (parses sync-users and loads the
 * name map). The configuration must outlive the policy.
 */
struct policy *policy_new(const struct psync_config *conf, struct psync_err *err);
void	policy_free(struct policy *pol);

/* Judge a request; returns verdict->code. trace may be NULL. */
int	policy_check(const struct policy *pol, const struct policy_request *req,
	    struct policy_verdict *verdict, policy_trace_fn trace, void *ctx);

/* The strictest password rules over the global rules and the given peer, or
 * (peer NULL) over every peer a local change of this user would go to. */
void	policy_rules_for(const struct policy *pol, const struct peer_conf *peer,
	    struct pw_rules *out, const char **strictest_peer);

/* Judge a password alone against rules; fills reason naming the rule. */
int	policy_check_password(const struct pw_rules *rules, const char *user,
	    const char *password, const char *who, char *reason, size_t len);

/* Map a peer's name for a user to the local name (reduce + map file). */
int	policy_local_name(const struct policy *pol, const char *peer_name,
	    char *out, size_t outlen);
/* Map a local name to what peers call the user. */
int	policy_peer_name(const struct policy *pol, const char *local,
	    char *out, size_t outlen);

/* sync-users alone (exposed for tests and the importer): 0 included,
 * 12289 denied by a "-" entry, 12290 not in an allow list. */
int	policy_sync_users_match(const char *spec, const char *user,
	    bool case_ignore, struct psync_err *err);

/* Does PEER take part in this direction? */
bool	policy_peer_direction_ok(const struct peer_conf *peer,
	    enum policy_direction dir);

#endif
