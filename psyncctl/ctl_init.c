/*
 * psyncctl init: a host's first configuration. It gathers the node name and
 * the peers (from flags, or by asking on the terminal), makes a key file
 * for every peer that has none (0600, in a 0700 directory), writes a 0600
 * configuration through a temporary file that must pass the same check as
 * psyncd -t before it takes the real name, and prints what is left to do
 * by hand: the keys to hand over, the PAM stack, the service.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>

#include "config_file.h"
#include "mepp.h"
#include "psyncctl.h"
#include "util.h"
#include "wire.h"

#define INIT_MAX_PEERS	32
#define INIT_NAME_MAX	64	/* psync.conf's limit for node and peer names */
#define INIT_ADDR_MAX	255
#define INIT_MEPP_KEYLEN 20	/* the legacy rules allow 16 to 21 */

struct init_peer {
	char			 name[INIT_NAME_MAX + 1];
	enum peer_protocol	 proto;
	char			 address[INIT_ADDR_MAX + 1];
	enum peer_direction	 dir;
	char			 key_path[PATH_MAX];
	bool			 key_made;	/* created by this run */
};

struct init {
	char			 node[INIT_NAME_MAX + 1];
	const char		*config;
	char			 keys_dir[PATH_MAX];
	bool			 yes;
	bool			 force;
	struct init_peer	 peers[INIT_MAX_PEERS];
	size_t			 n_peers;
};

static const struct {
	const char		*name;
	enum peer_protocol	 proto;
} init_protocols[] = {
	{ "psync",	PROTO_PSYNC },
	{ "mepp",	PROTO_MEPP },
};

static const struct {
	const char		*name;
	enum peer_direction	 dir;
} init_directions[] = {
	{ "send",	DIR_SEND },
	{ "receive",	DIR_RECEIVE },
	{ "both",	DIR_BOTH },
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const char *
proto_name(enum peer_protocol p)
{
	size_t i;

	for (i = 0; i < NELEM(init_protocols); i++)
		if (init_protocols[i].proto == p)
			return init_protocols[i].name;
	return "?";
}

static const char *
dir_name(enum peer_direction d)
{
	size_t i;

	for (i = 0; i < NELEM(init_directions); i++)
		if (init_directions[i].dir == d)
			return init_directions[i].name;
	return "?";
}

static int
parse_proto(const char *s, enum peer_protocol *out)
{
	size_t i;

	for (i = 0; i < NELEM(init_protocols); i++)
		if (strcmp(s, init_protocols[i].name) == 0) {
			*out = init_protocols[i].proto;
			return 0;
		}
	return -1;
}

static int
parse_dir(const char *s, enum peer_direction *out)
{
	size_t i;

	for (i = 0; i < NELEM(init_directions); i++)
		if (strcmp(s, init_directions[i].name) == 0) {
			*out = init_directions[i].dir;
			return 0;
		}
	return -1;
}

/* The rule psync.conf applies to node and peer names (they name files too). */
static bool
valid_name(const char *s)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > INIT_NAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && strchr("._-", s[i]) == NULL)
			return false;
	return true;
}

/* Values go between double quotes in the file: no quote, backslash,
   control character or space can be written back unchanged. */
static bool
quotable(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s <= ' ' ||
		    *s == 0x7f)
			return false;
	return true;
}

static bool
is_ip_literal(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 ||
	    inet_pton(AF_INET6, s, buf) == 1;
}

/* Check one peer against the rules and the peers before it; 0 or -1. */
static int
check_peer(const struct init *in, const struct init_peer *p)
{
	size_t i;

	if (!valid_name(p->name)) {
		fprintf(stderr, "psyncctl init: peer '%s': expected a name of 1 "
		    "to 64 letters, digits, '.', '_' or '-'\n", p->name);
		return -1;
	}
	if (strcmp(p->name, in->node) == 0) {
		fprintf(stderr, "psyncctl init: peer '%s' has this node's own "
		    "name\n", p->name);
		return -1;
	}
	for (i = 0; i < in->n_peers; i++)
		if (&in->peers[i] != p && strcmp(in->peers[i].name, p->name) == 0) {
			fprintf(stderr, "psyncctl init: peer '%s' is given "
			    "twice\n", p->name);
			return -1;
		}
	if (p->address[0] == '\0' || !quotable(p->address)) {
		fprintf(stderr, "psyncctl init: peer '%s': expected a host name "
		    "or address without spaces or quotes, got '%s'\n", p->name,
		    p->address);
		return -1;
	}
	/* A Windows server that sends to us is told apart by its address. */
	if (p->proto == PROTO_MEPP && (p->dir & DIR_RECEIVE) &&
	    !is_ip_literal(p->address)) {
		fprintf(stderr, "psyncctl init: peer '%s': a mepp peer that "
		    "sends to this host must be given by its IP address (psyncd "
		    "accepts it only from there), got '%s'\n", p->name,
		    p->address);
		return -1;
	}
	return 0;
}

/*
 * NAME:PROTOCOL:ADDRESS[:DIRECTION]. An IPv6 address may be bracketed
 * ([2001:db8::1]:both); unbracketed, a last field that is a direction
 * name is taken as the direction.
 */
static int
parse_peer_spec(const char *spec, struct init_peer *p)
{
	char buf[INIT_NAME_MAX + INIT_ADDR_MAX + 32];
	char *name, *proto, *rest, *end, *colon, *dir = NULL;

	memset(p, 0, sizeof(*p));
	p->dir = DIR_BOTH;
	if (str_copy(buf, spec, sizeof(buf)) >= sizeof(buf))
		goto bad;
	name = buf;
	if ((proto = strchr(name, ':')) == NULL)
		goto bad;
	*proto++ = '\0';
	if ((rest = strchr(proto, ':')) == NULL)
		goto bad;
	*rest++ = '\0';
	if (rest[0] == '[') {
		rest++;
		if ((end = strchr(rest, ']')) == NULL)
			goto bad;
		*end++ = '\0';
		if (*end == ':')
			dir = end + 1;
		else if (*end != '\0')
			goto bad;
	} else if ((colon = strrchr(rest, ':')) != NULL &&
	    parse_dir(colon + 1, &p->dir) == 0) {
		*colon = '\0';
	}
	if (dir != NULL && parse_dir(dir, &p->dir) == -1) {
		fprintf(stderr, "psyncctl init: peer '%s': direction '%s': "
		    "expected send, receive or both\n", name, dir);
		return -1;
	}
	if (parse_proto(proto, &p->proto) == -1) {
		fprintf(stderr, "psyncctl init: peer '%s': protocol '%s': "
		    "expected psync or mepp\n", name, proto);
		return -1;
	}
	if (str_copy(p->name, name, sizeof(p->name)) >= sizeof(p->name) ||
	    str_copy(p->address, rest, sizeof(p->address)) >= sizeof(p->address))
		goto bad;
	return 0;
bad:
	fprintf(stderr, "psyncctl init: --peer '%s': expected "
	    "NAME:PROTOCOL:ADDRESS[:DIRECTION], such as "
	    "unix2:psync:192.0.2.20:both\n", spec);
	return -1;
}

/* Ask on standard error, read a line from standard input; -1 at EOF. */
static int
ask(const char *prompt, const char *def, char *out, size_t outlen)
{
	char *line = NULL, *s, *e;
	const char *answer;
	size_t cap = 0;
	ssize_t n;
	int rc = -1;

	if (def != NULL && def[0] != '\0')
		fprintf(stderr, "%s [%s]: ", prompt, def);
	else
		fprintf(stderr, "%s: ", prompt);
	fflush(stderr);
	n = getline(&line, &cap, stdin);
	if (n < 0) {
		fprintf(stderr, "\npsyncctl init: no answer (end of input); "
		    "nothing written\n");
		goto done;
	}
	for (s = line; *s == ' ' || *s == '\t'; s++)
		;
	e = s + strlen(s);
	while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' ||
	    e[-1] == '\t'))
		*--e = '\0';
	answer = (*s == '\0' && def != NULL) ? def : s;
	if (str_copy(out, answer, outlen) >= outlen) {
		fprintf(stderr, "psyncctl init: answer too long (at most %zu "
		    "characters)\n", outlen - 1);
		out[0] = '\0';
	}
	rc = 0;
done:
	free(line);
	return rc;
}

/* The dialogue: node name, then peers until an empty name. */
static int
interview(struct init *in)
{
	struct init_peer *p;
	char answer[INIT_ADDR_MAX + 1];

	for (;;) {
		if (ask("Node name of this host", in->node, answer,
		    sizeof(answer)) == -1)
			return -1;
		if (valid_name(answer)) {
			str_copy(in->node, answer, sizeof(in->node));
			break;
		}
		fprintf(stderr, "  expected 1 to 64 letters, digits, '.', '_' "
		    "or '-'\n");
	}
	while (in->n_peers < INIT_MAX_PEERS) {
		p = &in->peers[in->n_peers];
		memset(p, 0, sizeof(*p));
		if (ask("Peer name (empty: no more peers)", NULL, p->name,
		    sizeof(p->name)) == -1)
			return -1;
		if (p->name[0] == '\0')
			break;
		for (;;) {
			if (ask("  protocol, psync or mepp", "psync", answer,
			    sizeof(answer)) == -1)
				return -1;
			if (parse_proto(answer, &p->proto) == 0)
				break;
			fprintf(stderr, "  expected psync or mepp\n");
		}
		if (ask("  address (host name or IP address)", NULL, p->address,
		    sizeof(p->address)) == -1)
			return -1;
		for (;;) {
			if (ask("  direction, send, receive or both", "both",
			    answer, sizeof(answer)) == -1)
				return -1;
			if (parse_dir(answer, &p->dir) == 0)
				break;
			fprintf(stderr, "  expected send, receive or both\n");
		}
		if (check_peer(in, p) == -1)
			continue;	/* asked again */
		in->n_peers++;
	}
	return 0;
}

/* A legacy key: printable, no '(', ')' or ',', passing mepp_key_check. */
static int
mepp_key_generate(char *key, size_t keylen)
{
	static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789!#%+-.:=@_~";
	const size_t na = sizeof(alphabet) - 1;
	const size_t limit = 256 - 256 % na;	/* no modulo bias */
	unsigned char r[64];
	char why[128];
	size_t i, k;
	int tries, rc = -1;

	for (tries = 0; tries < 100; tries++) {
		if (RAND_priv_bytes(r, sizeof(r)) != 1) {
			fprintf(stderr, "psyncctl init: the random generator "
			    "failed\n");
			goto done;
		}
		for (i = 0, k = 0; i < sizeof(r) && k + 1 < keylen &&
		    k < INIT_MEPP_KEYLEN; i++)
			if (r[i] < limit)
				key[k++] = alphabet[r[i] % na];
		key[k] = '\0';
		if (k == INIT_MEPP_KEYLEN &&
		    mepp_key_check(key, why, sizeof(why)) == 0) {
			rc = 0;
			goto done;
		}
	}
	fprintf(stderr, "psyncctl init: could not make a legacy key\n");
done:
	secure_wipe(r, sizeof(r));
	if (rc == -1)
		secure_wipe(key, keylen);
	return rc;
}

static int
write_new_file(const char *path, const char *text, size_t len)
{
	int fd, rc = -1;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		fprintf(stderr, "psyncctl init: %s: cannot create: %s\n", path,
		    strerror(errno));
		return -1;
	}
	if (write(fd, text, len) != (ssize_t)len || fsync(fd) == -1) {
		fprintf(stderr, "psyncctl init: %s: cannot write: %s\n", path,
		    strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (close(fd) == -1 && rc == 0) {
		fprintf(stderr, "psyncctl init: %s: cannot write: %s\n", path,
		    strerror(errno));
		rc = -1;
	}
	if (rc == -1)
		unlink(path);
	return rc;
}

/* Make the key directory (0700) and a key for each peer without one. */
static int
make_keys(struct init *in)
{
	unsigned char key[WIRE_KEY_LEN];
	char mkey[INIT_MEPP_KEYLEN + 2];
	struct psync_err err;
	struct init_peer *p;
	struct stat st;
	size_t i;
	int rc = -1;

	if (mkdir(in->keys_dir, 0700) == -1 && errno != EEXIST) {
		fprintf(stderr, "psyncctl init: %s: cannot create the key "
		    "directory: %s\n", in->keys_dir, strerror(errno));
		goto done;
	}
	if (stat(in->keys_dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "psyncctl init: %s: not a directory\n",
		    in->keys_dir);
		goto done;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		fprintf(stderr, "psyncctl init: %s: refused: the key directory "
		    "is group- or world-writable\n", in->keys_dir);
		goto done;
	}
	for (i = 0; i < in->n_peers; i++) {
		p = &in->peers[i];
		if ((size_t)snprintf(p->key_path, sizeof(p->key_path), "%s/%s.key",
		    in->keys_dir, p->name) >= sizeof(p->key_path)) {
			fprintf(stderr, "psyncctl init: peer %s: key file path "
			    "too long\n", p->name);
			goto done;
		}
		if (lstat(p->key_path, &st) == 0) {
			/* Never replace a key a peer may already hold. */
			if (p->proto == PROTO_PSYNC &&
			    keyfile_read(p->key_path, key, &err) == -1) {
				fprintf(stderr, "psyncctl init: peer %s: %s\n",
				    p->name, err.msg);
				goto done;
			}
			continue;
		}
		if (p->proto == PROTO_PSYNC) {
			if (keyfile_generate(key, &err) == -1 ||
			    keyfile_write(p->key_path, key, false,
			    &err) == -1) {
				fprintf(stderr, "psyncctl init: peer %s: %s\n",
				    p->name, err.msg);
				goto done;
			}
		} else {
			if (mepp_key_generate(mkey, sizeof(mkey) - 1) == -1)
				goto done;
			strcat(mkey, "\n");
			if (write_new_file(p->key_path, mkey, strlen(mkey)) == -1)
				goto done;
		}
		p->key_made = true;
	}
	rc = 0;
done:
	secure_wipe(key, sizeof(key));
	secure_wipe(mkey, sizeof(mkey));
	return rc;
}

static void
remove_made_keys(struct init *in)
{
	size_t i;

	for (i = 0; i < in->n_peers; i++)
		if (in->peers[i].key_made && unlink(in->peers[i].key_path) == -1)
			fprintf(stderr, "psyncctl init: %s: cannot remove: %s\n",
			    in->peers[i].key_path, strerror(errno));
}

static bool
listener_needed(const struct init *in, enum peer_protocol proto)
{
	size_t i;

	for (i = 0; i < in->n_peers; i++)
		if (in->peers[i].proto == proto && (in->peers[i].dir & DIR_RECEIVE))
			return true;
	return false;
}

static void
config_text(const struct init *in, FILE *f)
{
	const struct init_peer *p;
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	size_t i;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm) == 0)
		str_copy(when, "?", sizeof(when));
	fprintf(f, "# psync.conf of node %s, written by psyncctl init on %s.\n"
	    "# Options not set here have their defaults: see psync.conf(5) "
	    "and the\n# example, which shows every option. Check with: "
	    "psyncd -t\n\n", in->node, when);
	fprintf(f, "node-name = \"%s\"\n\n", in->node);
	/* A listener only for peers that connect to this host. */
	fprintf(f, "listen psync {\n\tenabled = %s\n}\n\n",
	    listener_needed(in, PROTO_PSYNC) ? "true" : "false");
	fprintf(f, "listen mepp {\n\tenabled = %s\n}\n",
	    listener_needed(in, PROTO_MEPP) ? "true" : "false");
	for (i = 0; i < in->n_peers; i++) {
		p = &in->peers[i];
		fprintf(f, "\npeer \"%s\" {\n\tprotocol = %s\n\taddress = \"%s\"\n"
		    "\tkey-file = \"%s\"\n\tdirection = %s\n", p->name,
		    proto_name(p->proto), p->address, p->key_path,
		    dir_name(p->dir));
		if (p->proto == PROTO_MEPP)
			fprintf(f, "\t# The domain's password rules, so that "
			    "pam_psync refuses what Windows\n\t# would refuse "
			    "(Active Directory's defaults shown):\n"
			    "\t#min-length = 7\n\t#min-classes = 3\n"
			    "\t#reject-username = true\n");
		fprintf(f, "}\n");
	}
}

static void
print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "psyncctl init: %s\n", message);
}

/*
 * Write the text to a temporary file beside the configuration, check it as
 * psyncd -t would, then give it the real name: with link(), which fails if
 * a file appeared meanwhile, or with rename() under --force.
 */
static int
write_config(const struct init *in)
{
	struct psync_config *conf = NULL;
	char tmp[PATH_MAX], dir[PATH_MAX], *slash;
	FILE *f = NULL;
	struct psync_err err;
	int fd = -1, rc = -1;
	bool made = false;

	str_copy(dir, in->config, sizeof(dir));
	slash = strrchr(dir, '/');
	if (slash == NULL)
		str_copy(dir, ".", sizeof(dir));
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.psync.conf.XXXXXX", dir) >=
	    sizeof(tmp)) {
		fprintf(stderr, "psyncctl init: %s: path too long\n", in->config);
		goto done;
	}
	if ((fd = mkstemp(tmp)) == -1) {
		fprintf(stderr, "psyncctl init: %s: cannot create a temporary "
		    "file: %s\n", dir, strerror(errno));
		goto done;
	}
	made = true;
	if (fchmod(fd, 0600) == -1 || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "psyncctl init: %s: %s\n", tmp, strerror(errno));
		goto done;
	}
	fd = -1;
	config_text(in, f);
	if (fflush(f) == EOF || fsync(fileno(f)) == -1 || ferror(f)) {
		fprintf(stderr, "psyncctl init: %s: cannot write: %s\n", tmp,
		    strerror(errno));
		goto done;
	}
	if (fclose(f) == EOF) {
		f = NULL;
		fprintf(stderr, "psyncctl init: %s: cannot write: %s\n", tmp,
		    strerror(errno));
		goto done;
	}
	f = NULL;
	conf = config_load(tmp, true, print_problem, NULL);
	if (conf == NULL) {
		fprintf(stderr, "psyncctl init: the configuration does not "
		    "pass the check above; nothing written\n");
		goto done;
	}
	if (in->force) {
		if (rename(tmp, in->config) == -1) {
			fprintf(stderr, "psyncctl init: %s: cannot replace: %s\n",
			    in->config, strerror(errno));
			goto done;
		}
	} else {
		if (link(tmp, in->config) == -1) {
			fprintf(stderr, "psyncctl init: %s: cannot create: %s%s\n",
			    in->config, strerror(errno), errno == EEXIST ?
			    " (--force replaces it)" : "");
			goto done;
		}
		unlink(tmp);
	}
	made = false;
	/* The new name must survive a crash too. */
	if (dir_fsync(dir, &err) == -1)
		fprintf(stderr, "psyncctl init: warning: %s\n", err.msg);
	rc = 0;
done:
	if (f != NULL)
		fclose(f);
	if (fd != -1)
		close(fd);
	if (made)
		unlink(tmp);
	config_free(conf);
	return rc;
}

static void
print_next_steps(const struct init *in)
{
	const struct init_peer *p;
	const char *c = strcmp(in->config, PSYNC_DEFAULT_CONFIG) == 0 ? "" :
	    in->config;
	size_t i;
	int step = 1;

	printf("wrote %s (mode 0600): node %s, %zu peer%s\n", in->config,
	    in->node, in->n_peers, in->n_peers == 1 ? "" : "s");
	for (i = 0; i < in->n_peers; i++) {
		p = &in->peers[i];
		printf("  peer %s (%s, %s, %s): %s key %s\n", p->name,
		    proto_name(p->proto), p->address, dir_name(p->dir),
		    p->key_made ? "new" : "existing", p->key_path);
	}
	printf("\nNext steps:\n");
	if (in->n_peers > 0) {
		printf("%d. Give each peer its key, over a channel you trust "
		    "(scp or a console, not e-mail):\n", step++);
		for (i = 0; i < in->n_peers; i++) {
			p = &in->peers[i];
			if (p->proto == PROTO_PSYNC)
				printf("   %s: copy %s there and run\n"
				    "      psyncctl set-key %s < %s.key\n"
				    "   (its peer \"%s\" must exist: psyncctl init "
				    "there, with --peer %s:psync:THIS-HOST)\n",
				    p->name, p->key_path, in->node, p->name,
				    in->node, in->node);
			else
				printf("   %s: enter the text of %s as the "
				    "encryption key of this host in the Password "
				    "Synchronization\n   settings of %s (port "
				    "%d)\n", p->name, p->key_path, p->name,
				    PSYNC_MEPP_PORT);
		}
	} else {
		printf("%d. Add peers: run psyncctl init --force with --peer, or "
		    "edit the file (psync.conf(5))\n", step++);
	}
	printf("%d. Check the configuration:\n      psyncd -t%s%s\n", step++,
	    c[0] != '\0' ? " -c " : "", c);
	printf("%d. Put pam_psync into the password stack:\n"
	    "      pam-auth-update --enable psync psync-check\n", step++);
	printf("%d. Start the node:\n      systemctl enable --now psyncd\n",
	    step++);
	if (in->n_peers > 0)
		printf("%d. Check each peer's channel:\n"
		    "      psyncctl verify %s\n", step, in->peers[0].name);
}

static void
init_usage(FILE *out)
{
	fprintf(out, "usage: psyncctl init [--node NAME] "
	    "[--peer NAME:PROTOCOL:ADDRESS[:DIRECTION]]...\n"
	    "         [--config FILE] [--keys DIR] [--yes] [--force]\n"
	    "  PROTOCOL: psync or mepp; DIRECTION: send, receive or both "
	    "(default both)\n"
	    "  without --yes, asks for whatever the flags do not give\n");
}

int
cmd_init(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "node",	required_argument,	NULL, 'n' },
		{ "peer",	required_argument,	NULL, 'p' },
		{ "config",	required_argument,	NULL, 'C' },
		{ "keys",	required_argument,	NULL, 'k' },
		{ "yes",	no_argument,		NULL, 'y' },
		{ "force",	no_argument,		NULL, 'f' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 }
	};
	struct init *in;
	const char *keys = NULL, *node = NULL;
	char host[256], *slash;
	size_t i;
	int ch, rc = CTL_USAGE;

	if ((in = calloc(1, sizeof(*in))) == NULL) {
		fprintf(stderr, "psyncctl init: out of memory\n");
		return CTL_FAIL;
	}
	in->config = ctl->config_path;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
		case 'C':
			in->config = optarg;
			break;
		case 'n':
			node = optarg;
			break;
		case 'p':
			if (in->n_peers == INIT_MAX_PEERS) {
				fprintf(stderr, "psyncctl init: at most %d "
				    "peers\n", INIT_MAX_PEERS);
				goto done;
			}
			if (parse_peer_spec(optarg, &in->peers[in->n_peers]) == -1)
				goto done;
			in->n_peers++;
			break;
		case 'k':
			keys = optarg;
			break;
		case 'y':
			in->yes = true;
			break;
		case 'f':
			in->force = true;
			break;
		case 'h':
			init_usage(stdout);
			rc = CTL_OK;
			goto done;
		default:
			init_usage(stderr);
			goto done;
		}
	}
	if (optind != argc) {
		init_usage(stderr);
		goto done;
	}
	rc = CTL_FAIL;
	if (!quotable(in->config) || (keys != NULL && !quotable(keys))) {
		fprintf(stderr, "psyncctl init: paths with spaces, quotes or "
		    "backslashes are not supported\n");
		goto done;
	}
	/* Refuse before asking anything. */
	if (!in->force && access(in->config, F_OK) == 0) {
		fprintf(stderr, "psyncctl init: %s exists; --force replaces it "
		    "(its peers' key files are kept)\n", in->config);
		goto done;
	}
	if (keys == NULL) {
		str_copy(in->keys_dir, in->config, sizeof(in->keys_dir));
		slash = strrchr(in->keys_dir, '/');
		if (slash == NULL)
			str_copy(in->keys_dir, "keys", sizeof(in->keys_dir));
		else
			str_copy(slash + 1, "keys",
			    sizeof(in->keys_dir) - (size_t)(slash + 1 - in->keys_dir));
	} else if (str_copy(in->keys_dir, keys, sizeof(in->keys_dir)) >=
	    sizeof(in->keys_dir)) {
		fprintf(stderr, "psyncctl init: --keys: path too long\n");
		goto done;
	}
	if (node != NULL) {
		str_copy(in->node, node, sizeof(in->node));
	} else if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		if (valid_name(host))
			str_copy(in->node, host, sizeof(in->node));
	}
	if (!in->yes && (node == NULL || in->n_peers == 0) &&
	    interview(in) == -1)
		goto done;
	if (!valid_name(in->node)) {
		fprintf(stderr, "psyncctl init: node name '%s': expected 1 to "
		    "64 letters, digits, '.', '_' or '-' (--node)\n", in->node);
		goto done;
	}
	for (i = 0; i < in->n_peers; i++)
		if (check_peer(in, &in->peers[i]) == -1)
			goto done;
	if (make_keys(in) == -1 || write_config(in) == -1) {
		remove_made_keys(in);
		goto done;
	}
	print_next_steps(in);
	rc = CTL_OK;
done:
	free(in);
	return rc;
}
