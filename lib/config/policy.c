/*
 * The policy engine. policy_check() walks a fixed table of rules in order;
 * the first rule that fails decides the code, and every rule can report
 * its outcome to a trace callback so that `psyncctl policy` can explain a
 * decision. Rules read only the configuration, the account record and the
 * password; nothing here logs, and no reason ever quotes the password.
 */
#include "config.h"

#include <ctype.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <wctype.h>

#include "change.h"
#include "codes.h"
#include "names.h"
#include "policy.h"

struct policy {
	const struct psync_config *conf;
	struct name_map		  *map;
};

/* ------------------------------------------------------------ sync-users */

/*
 * The legacy SYNC_USERS syntax: comma-separated entries, each "+name",
 * "-name" or "name" (same as "+"), with ALL meaning every user. A "-"
 * entry for a name always wins, so a name both + and - is excluded; -ALL
 * excludes everybody who is not named with "+"; a list of only "-" entries
 * includes everybody else. With user NULL only the syntax is checked.
 */
int
policy_sync_users_match(const char *spec, const char *user, bool case_ignore,
    struct psync_err *err)
{
	bool plus_all = false, minus_all = false, plus = false, minus = false;
	bool any_plus = false;
	const char *p = spec;

	perr_clear(err);
	if (strspn(spec, " \t") == strlen(spec)) {
		perr_set(err, PSYNC_E_BAD_USER, "sync-users is empty: expected "
		    "entries like +ALL,-root (+ALL for everybody, -ALL for nobody)");
		return -1;
	}
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		char entry[NAME_MAX_LEN + 2], *name;
		bool neg = false;

		while (len > 0 && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len > 0 && isspace((unsigned char)p[len - 1]))
			len--;
		if (len == 0 || len >= sizeof(entry)) {
			perr_set(err, PSYNC_E_BAD_USER, "sync-users '%s': expected "
			    "comma-separated entries like +ALL,-root,+alice "
			    "(empty or overlong entry)", spec);
			return -1;
		}
		memcpy(entry, p, len);
		entry[len] = '\0';
		name = entry;
		if (*name == '+' || *name == '-') {
			neg = *name == '-';
			name++;
		}
		if (!names_valid(name)) {
			perr_set(err, PSYNC_E_BAD_USER, "sync-users '%s': '%s' is "
			    "not a user name or ALL", spec, entry);
			return -1;
		}
		if (strcmp(name, "ALL") == 0) {
			if (neg)
				minus_all = true;
			else
				plus_all = true;
		} else if (user != NULL && names_equal(name, user, case_ignore)) {
			if (neg)
				minus = true;
			else
				plus = true;
		}
		if (!neg)
			any_plus = true;
		p = end != NULL ? end + 1 : p + strlen(p);
		if (end != NULL && end[1] == '\0') {
			perr_set(err, PSYNC_E_BAD_USER, "sync-users '%s': expected "
			    "an entry after the last comma", spec);
			return -1;
		}
	}
	if (!any_plus && !minus_all && !minus) {
		/* Only "-" entries: everybody else is in, as with +ALL. */
		plus_all = true;
	}
	if (user == NULL)
		return 0;
	if (minus || (minus_all && !plus))
		return PSYNC_MSG_DENY_LIST;
	if (minus_all && plus)
		return 0;
	if (plus || plus_all)
		return 0;
	return PSYNC_MSG_NOT_ALLOWED;
}

/* ------------------------------------------------------------ set-up */

struct policy *
policy_new(const struct psync_config *conf, struct psync_err *err)
{
	struct policy *pol;

	if (policy_sync_users_match(conf->policy.sync_users, NULL,
	    conf->policy.case_ignore_name, err) == -1)
		return NULL;
	pol = calloc(1, sizeof(*pol));
	if (pol == NULL) {
		perr_set(err, PSYNC_E_NOT_UPDATED, "out of memory");
		return NULL;
	}
	pol->conf = conf;
	if (conf->policy.name_map_file != NULL) {
		pol->map = names_map_load(conf->policy.name_map_file,
		    conf->policy.case_ignore_name, err);
		if (pol->map == NULL) {
			free(pol);
			return NULL;
		}
	}
	return pol;
}

void
policy_free(struct policy *pol)
{
	if (pol == NULL)
		return;
	names_map_free(pol->map);
	free(pol);
}

int
policy_local_name(const struct policy *pol, const char *peer_name, char *out,
    size_t outlen)
{
	return names_to_unix(pol->map, peer_name, out, outlen);
}

int
policy_peer_name(const struct policy *pol, const char *local, char *out,
    size_t outlen)
{
	return names_to_peer(pol->map, local, out, outlen);
}

bool
policy_peer_direction_ok(const struct peer_conf *peer, enum policy_direction dir)
{
	return (peer->direction & (dir == POLICY_OUTBOUND ? DIR_SEND : DIR_RECEIVE)) != 0;
}

/* ------------------------------------------------------------ password rules */

static void
rules_merge(struct pw_rules *into, const struct pw_rules *r)
{
	if (r->min_length > into->min_length)
		into->min_length = r->min_length;
	if (r->max_length != 0 &&
	    (into->max_length == 0 || r->max_length < into->max_length))
		into->max_length = r->max_length;
	if (r->min_classes > into->min_classes)
		into->min_classes = r->min_classes;
	into->reject_username = into->reject_username || r->reject_username;
}

static bool
rules_stricter(const struct pw_rules *a, const struct pw_rules *b)
{
	return a->min_length > b->min_length || a->min_classes > b->min_classes ||
	    (a->reject_username && !b->reject_username) ||
	    (a->max_length != 0 && (b->max_length == 0 || a->max_length < b->max_length));
}

void
policy_rules_for(const struct policy *pol, const struct peer_conf *peer,
    struct pw_rules *out, const char **strictest_peer)
{
	const struct psync_config *c = pol->conf;
	struct pw_rules before;
	size_t i;

	*out = c->policy.rules;
	if (strictest_peer != NULL)
		*strictest_peer = NULL;
	for (i = 0; i < c->n_peers; i++) {
		const struct peer_conf *p = &c->peers[i];

		if (peer != NULL ? p != peer : !(p->direction & DIR_SEND))
			continue;
		before = *out;
		rules_merge(out, &p->rules);
		if (strictest_peer != NULL && rules_stricter(out, &before))
			*strictest_peer = p->name;
	}
}

/* Character classes of one code point, with Unicode letters classified. */
enum { CLASS_UPPER = 1, CLASS_LOWER = 2, CLASS_DIGIT = 4, CLASS_OTHER = 8 };

static locale_t
utf8_locale(void)
{
	static locale_t loc;

	if (loc == (locale_t)0)
		loc = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	return loc;
}

static unsigned int
classify(unsigned int cp)
{
	locale_t loc;

	if (cp < 0x80) {
		if (isupper((int)cp))
			return CLASS_UPPER;
		if (islower((int)cp))
			return CLASS_LOWER;
		if (isdigit((int)cp))
			return CLASS_DIGIT;
		return CLASS_OTHER;
	}
	loc = utf8_locale();
	if (loc != (locale_t)0) {
		if (iswupper_l((wint_t)cp, loc))
			return CLASS_UPPER;
		if (iswlower_l((wint_t)cp, loc))
			return CLASS_LOWER;
		if (iswdigit_l((wint_t)cp, loc))
			return CLASS_DIGIT;
	}
	return CLASS_OTHER;
}

/* Classes present in a valid UTF-8 string. */
static unsigned int
password_classes(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned int seen = 0;

	while (*p != '\0') {
		unsigned int cp = *p;
		int extra = 0, i;

		if (cp >= 0xf0) {
			extra = 3;
			cp &= 0x07;
		} else if (cp >= 0xe0) {
			extra = 2;
			cp &= 0x0f;
		} else if (cp >= 0xc0) {
			extra = 1;
			cp &= 0x1f;
		}
		for (i = 1; i <= extra && p[i] != '\0'; i++)
			cp = (cp << 6) | (p[i] & 0x3f);
		seen |= classify(cp);
		p += i;
	}
	return seen;
}

static unsigned int
popcount4(unsigned int v)
{
	return (v & 1) + ((v >> 1) & 1) + ((v >> 2) & 1) + ((v >> 3) & 1);
}

int
policy_check_password(const struct pw_rules *r, const char *user,
    const char *password, const char *who, char *reason, size_t len)
{
	long chars = utf8_length(password);
	unsigned int classes;
	size_t bytes = strlen(password);

	/* What every layer can carry and every store take (lib/change/change.c). */
	if (bytes > CHANGE_SECRET_MAX) {
		snprintf(reason, len, "the password has %zu bytes; psync "
		    "carries at most %d", bytes, CHANGE_SECRET_MAX);
		return PSYNC_E_BAD_PASSWORD;
	}
	if (chars < 0) {
		snprintf(reason, len, "the password is not valid UTF-8");
		return PSYNC_E_BAD_PASSWORD;
	}
	if (chars == 0) {
		snprintf(reason, len, "the password is empty");
		return PSYNC_E_BAD_PASSWORD;
	}
	if (r->min_length != 0 && (unsigned long)chars < r->min_length) {
		snprintf(reason, len, "%s needs passwords of at least %u "
		    "characters", who, r->min_length);
		return PSYNC_E_BELOW_MINIMUM;
	}
	if (r->max_length != 0 && (unsigned long)chars > r->max_length) {
		snprintf(reason, len, "%s takes passwords of at most %u "
		    "characters", who, r->max_length);
		return PSYNC_E_BAD_PASSWORD;
	}
	classes = popcount4(password_classes(password));
	if (r->min_classes != 0 && classes < r->min_classes) {
		snprintf(reason, len, "%s needs at least %u of these: upper "
		    "case, lower case, digits, symbols (this password has %u)",
		    who, r->min_classes, classes);
		return PSYNC_E_BAD_PASSWORD;
	}
	if (r->reject_username && user != NULL && strlen(user) >= 3 &&
	    strcasestr(password, user) != NULL) {
		snprintf(reason, len, "%s refuses a password that contains the "
		    "user name", who);
		return PSYNC_E_BAD_PASSWORD;
	}
	return PSYNC_OK;
}

/* ------------------------------------------------------------ the rules */

struct judge {
	const struct policy		*pol;
	const struct policy_request	*req;
	struct policy_verdict		*v;
	policy_trace_fn			 trace;
	void				*ctx;
	char				 detail[320];
};

/* Each rule fills j->detail and returns RULE_PASS/FAIL/SKIP; on FAIL it
 * also sets the verdict's code and log number. */
typedef enum rule_outcome (*rule_fn)(struct judge *j);

static enum rule_outcome
fail(struct judge *j, int code, int msgno)
{
	j->v->code = code;
	j->v->msgno = msgno;
	return RULE_FAIL;
}

static const char *
peer_label(const struct policy_request *r)
{
	return r->peer != NULL ? r->peer->name : "every peer";
}

static enum rule_outcome
rule_name(struct judge *j)
{
	if (!names_valid(j->req->user)) {
		snprintf(j->detail, sizeof(j->detail), "'%s' is not a valid user "
		    "name", j->req->user);
		return fail(j, PSYNC_E_BAD_USER, 0);
	}
	snprintf(j->detail, sizeof(j->detail), "'%s' is a valid name", j->req->user);
	return RULE_PASS;
}

static enum rule_outcome
rule_direction(struct judge *j)
{
	const struct policy_request *r = j->req;
	const char *way = r->direction == POLICY_OUTBOUND ? "send to" : "receive from";

	if (r->peer == NULL) {
		snprintf(j->detail, sizeof(j->detail), "no single peer named");
		return RULE_SKIP;
	}
	if (!policy_peer_direction_ok(r->peer, r->direction)) {
		snprintf(j->detail, sizeof(j->detail), "peer %s is configured "
		    "with direction %s: this node does not %s it", r->peer->name,
		    config_direction_name(r->peer->direction), way);
		return fail(j, PSYNC_E_REFUSED, PSYNC_MSG_DENIED);
	}
	snprintf(j->detail, sizeof(j->detail), "this node may %s peer %s", way,
	    r->peer->name);
	return RULE_PASS;
}

static enum rule_outcome
rule_exists(struct judge *j)
{
	if (j->req->account == NULL) {
		snprintf(j->detail, sizeof(j->detail), "user %s does not exist "
		    "on this host", j->req->user);
		return fail(j, PSYNC_E_NO_USER, PSYNC_MSG_NO_USER);
	}
	snprintf(j->detail, sizeof(j->detail), "local account %s, uid %u",
	    j->req->account->name, (unsigned)j->req->account->uid);
	return RULE_PASS;
}

static enum rule_outcome
rule_root(struct judge *j)
{
	if (j->req->account->uid == 0) {
		snprintf(j->detail, sizeof(j->detail), "uid 0 never syncs");
		return fail(j, PSYNC_E_REFUSED, PSYNC_MSG_DENIED);
	}
	snprintf(j->detail, sizeof(j->detail), "not uid 0");
	return RULE_PASS;
}

static enum rule_outcome
rule_min_uid(struct judge *j)
{
	unsigned int min = j->pol->conf->policy.min_uid;

	if (j->req->account->uid < min) {
		snprintf(j->detail, sizeof(j->detail), "uid %u is below min-uid "
		    "%u (a system account)", (unsigned)j->req->account->uid, min);
		return fail(j, PSYNC_E_REFUSED, PSYNC_MSG_DENIED);
	}
	snprintf(j->detail, sizeof(j->detail), "uid %u >= min-uid %u",
	    (unsigned)j->req->account->uid, min);
	return RULE_PASS;
}

static enum rule_outcome
rule_sync_users(struct judge *j)
{
	const struct policy_conf *pc = &j->pol->conf->policy;
	int m = policy_sync_users_match(pc->sync_users, j->req->account->name,
	    pc->case_ignore_name, NULL);

	if (m == PSYNC_MSG_DENY_LIST) {
		snprintf(j->detail, sizeof(j->detail), "sync-users '%s' excludes "
		    "%s (deny list)", pc->sync_users, j->req->account->name);
		return fail(j, PSYNC_E_REFUSED, PSYNC_MSG_DENY_LIST);
	}
	if (m != 0) {
		snprintf(j->detail, sizeof(j->detail), "sync-users '%s' does not "
		    "include %s (allow list)", pc->sync_users, j->req->account->name);
		return fail(j, PSYNC_E_REFUSED, PSYNC_MSG_NOT_ALLOWED);
	}
	snprintf(j->detail, sizeof(j->detail), "sync-users '%s' includes %s",
	    pc->sync_users, j->req->account->name);
	return RULE_PASS;
}

static enum rule_outcome
rule_deny_groups(struct judge *j)
{
	const struct policy_conf *pc = &j->pol->conf->policy;
	size_t i;

	if (pc->n_deny_groups == 0) {
		snprintf(j->detail, sizeof(j->detail), "no deny-groups configured");
		return RULE_SKIP;
	}
	for (i = 0; i < pc->n_deny_groups; i++) {
		if (account_in_group(j->req->account, pc->deny_groups[i])) {
			snprintf(j->detail, sizeof(j->detail), "member of denied "
			    "group %s", pc->deny_groups[i]);
			return fail(j, PSYNC_E_REFUSED, PSYNC_MSG_DENY_LIST);
		}
	}
	snprintf(j->detail, sizeof(j->detail), "in none of the deny-groups");
	return RULE_PASS;
}

static enum rule_outcome
rule_allow_groups(struct judge *j)
{
	const struct policy_conf *pc = &j->pol->conf->policy;
	size_t i;

	if (pc->n_allow_groups == 0) {
		snprintf(j->detail, sizeof(j->detail), "no allow-groups configured");
		return RULE_SKIP;
	}
	for (i = 0; i < pc->n_allow_groups; i++) {
		if (account_in_group(j->req->account, pc->allow_groups[i])) {
			snprintf(j->detail, sizeof(j->detail), "member of allowed "
			    "group %s", pc->allow_groups[i]);
			return RULE_PASS;
		}
	}
	snprintf(j->detail, sizeof(j->detail), "in none of the allow-groups");
	return fail(j, PSYNC_E_REFUSED, PSYNC_MSG_NOT_ALLOWED);
}

static enum rule_outcome
rule_account_state(struct judge *j)
{
	const struct account *a = j->req->account;
	const char *state = a->locked ? "locked" : a->disabled ? "disabled" :
	    a->expired ? "expired" : NULL;

	if (!j->pol->conf->policy.skip_locked) {
		snprintf(j->detail, sizeof(j->detail), "skip-locked is off");
		return RULE_SKIP;
	}
	if (state != NULL) {
		snprintf(j->detail, sizeof(j->detail), "the account is %s", state);
		return fail(j, PSYNC_E_DISABLED, PSYNC_MSG_DENIED);
	}
	snprintf(j->detail, sizeof(j->detail), "the account is usable");
	return RULE_PASS;
}

/* Global rules first, then each peer the change goes to (global + its own). */
static enum rule_outcome
rule_password(struct judge *j)
{
	const struct policy_request *r = j->req;
	const struct psync_config *c = j->pol->conf;
	struct pw_rules rules;
	char who[128];
	size_t i;
	int code;

	if (r->password == NULL) {
		snprintf(j->detail, sizeof(j->detail), "no password given");
		return RULE_SKIP;
	}
	code = policy_check_password(&c->policy.rules, r->account->name,
	    r->password, "the password policy", j->detail, sizeof(j->detail));
	if (code != PSYNC_OK)
		return fail(j, code, 0);
	/* What arrives must satisfy this host's own rules only. */
	for (i = 0; r->direction == POLICY_OUTBOUND && i < c->n_peers; i++) {
		const struct peer_conf *p = &c->peers[i];

		if (r->peer != NULL ? p != r->peer : !(p->direction & DIR_SEND))
			continue;
		rules = c->policy.rules;
		rules_merge(&rules, &p->rules);
		snprintf(who, sizeof(who), "peer %s", p->name);
		code = policy_check_password(&rules, r->account->name,
		    r->password, who, j->detail, sizeof(j->detail));
		if (code != PSYNC_OK)
			return fail(j, code, 0);
	}
	snprintf(j->detail, sizeof(j->detail), "the password meets the rules "
	    "of %s", r->direction == POLICY_INBOUND ? "this host" : peer_label(r));
	return RULE_PASS;
}

static const struct {
	const char	*name;
	rule_fn		 fn;
	bool		 needs_account;
} rules[] = {
	{ "user-name",		rule_name,		false },
	{ "direction",		rule_direction,		false },
	{ "account",		rule_exists,		false },
	{ "root",		rule_root,		true },
	{ "min-uid",		rule_min_uid,		true },
	{ "sync-users",		rule_sync_users,	true },
	{ "deny-groups",	rule_deny_groups,	true },
	{ "allow-groups",	rule_allow_groups,	true },
	{ "account-state",	rule_account_state,	true },
	{ "password",		rule_password,		true },
};

int
policy_check(const struct policy *pol, const struct policy_request *req,
    struct policy_verdict *v, policy_trace_fn trace, void *ctx)
{
	struct judge j = { pol, req, v, trace, ctx, "" };
	size_t i;

	memset(v, 0, sizeof(*v));
	v->code = PSYNC_OK;
	for (i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		enum rule_outcome o;

		if (rules[i].needs_account && req->account == NULL)
			break;
		j.detail[0] = '\0';
		o = rules[i].fn(&j);
		if (trace != NULL)
			trace(ctx, rules[i].name, o, j.detail);
		if (o == RULE_FAIL) {
			str_copy(v->rule, rules[i].name, sizeof(v->rule));
			str_copy(v->reason, j.detail, sizeof(v->reason));
			return v->code;
		}
	}
	str_copy(v->rule, "all", sizeof(v->rule));
	snprintf(v->reason, sizeof(v->reason), "%s of %s would sync %s %s",
	    req->password != NULL ? "a password change" : "changes", req->user,
	    req->direction == POLICY_OUTBOUND ? "to" : "from", peer_label(req));
	return PSYNC_OK;
}
