/*
 * psyncctl commands that talk to the running psyncd over its control
 * socket (status, queue, send, verify, rotate-key, set-key's reload), and
 * the two that only handle key files (keygen, set-key). The socket
 * protocol is lib/proto/ctlproto.c, shared with psyncd.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "psyncctl.h"
#include "ctlproto.h"
#include "util.h"
#include "wire.h"

/* Send the request words; print the answer; return CTL_OK / CTL_FAIL. */
static int
ctl_request(const char *sock, const char *const *words, size_t n)
{
	struct sockaddr_un sun;
	struct psync_err err;
	unsigned char hdr[CTLPROTO_HDR_LEN], *req = NULL;
	char *ans = NULL;
	size_t len = 0, off;
	long alen;
	ssize_t r;
	int fd = -1, rc = CTL_FAIL;

	if (ctlproto_request(words, n, &req, &len, &err) == -1) {
		fprintf(stderr, "psyncctl: %s\n", err.msg);
		goto done;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	str_copy(sun.sun_path, sock, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "psyncctl: psyncd is not running (cannot "
		    "connect to %s: %s)\n", sock, strerror(errno));
		goto done;
	}
	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len) {
		fprintf(stderr, "psyncctl: sending to psyncd: %s\n",
		    strerror(errno));
		goto done;
	}
	for (off = 0; off < sizeof(hdr); off += (size_t)r) {
		r = read(fd, hdr + off, sizeof(hdr) - off);
		if (r <= 0) {
			fprintf(stderr, "psyncctl: psyncd closed the connection "
			    "without an answer (is this user root?)\n");
			goto done;
		}
	}
	alen = ctlproto_reply_len(hdr);
	if (alen == -1) {
		fprintf(stderr, "psyncctl: malformed answer from psyncd\n");
		goto done;
	}
	ans = malloc((size_t)alen);
	if (ans == NULL)
		goto done;
	for (off = 0; off < (size_t)alen; off += (size_t)r) {
		r = read(fd, ans + off, (size_t)alen - off);
		if (r <= 0) {
			fprintf(stderr, "psyncctl: short answer from psyncd\n");
			goto done;
		}
	}
	fwrite(ans + 1, 1, (size_t)alen - 1, ans[0] == '0' ? stdout : stderr);
	rc = ans[0] == '0' ? CTL_OK : CTL_FAIL;
done:
	if (fd != -1)
		close(fd);
	if (req != NULL)
		secure_wipe(req, len);
	free(req);
	free(ans);
	return rc;
}

/* Common: parse -c and --help, load the configuration for the socket. */
static int
ctl_simple(struct ctl *ctl, int argc, char **argv, const char *usage,
    int min_args, int max_args, const char *const *longopt_names,
    bool *flags, struct psync_config **confp)
{
	struct option longopts[6];
	size_t i, nl = 0;
	int ch;

	for (i = 0; longopt_names != NULL && longopt_names[i] != NULL &&
	    nl < 4; i++) {
		longopts[nl] = (struct option){ longopt_names[i], no_argument,
		    NULL, 'A' + (int)i };
		nl++;
	}
	longopts[nl++] = (struct option){ "help", no_argument, NULL, 'h' };
	longopts[nl] = (struct option){ NULL, 0, NULL, 0 };
	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		if (ch == 'c') {
			ctl->config_path = optarg;
		} else if (ch == 'h') {
			printf("usage: psyncctl %s\n", usage);
			return CTL_OK + 100;
		} else if (ch >= 'A' && ch < 'A' + 4 && flags != NULL) {
			flags[ch - 'A'] = true;
		} else {
			fprintf(stderr, "usage: psyncctl %s\n", usage);
			return CTL_USAGE;
		}
	}
	if (argc - optind < min_args || argc - optind > max_args) {
		fprintf(stderr, "usage: psyncctl %s\n", usage);
		return CTL_USAGE;
	}
	if (confp != NULL) {
		*confp = ctl_load_config(ctl);
		if (*confp == NULL)
			return CTL_FAIL;
	}
	return -1;
}

int
cmd_status(struct ctl *ctl, int argc, char **argv)
{
	static const char *const names[] = { "json", NULL };
	struct psync_config *conf = NULL;
	bool flags[4] = { false };
	const char *w[2] = { "status", "json" };
	int rc;

	rc = ctl_simple(ctl, argc, argv, "status [--json]", 0, 0, names, flags,
	    &conf);
	if (rc != -1)
		return rc == CTL_OK + 100 ? CTL_OK : rc;
	rc = ctl_request(conf->control_socket, w, flags[0] ? 2 : 1);
	config_free(conf);
	return rc;
}

int
cmd_queue(struct ctl *ctl, int argc, char **argv)
{
	static const char *const names[] = { "all", NULL };
	static const char *const usage = "queue list [--all] | retry [ID] | "
	    "drop ID [PEER] | purge | clear-lost";
	struct psync_config *conf = NULL;
	bool flags[4] = { false };
	const char *w[3];
	char cmd[32];
	size_t n = 1;
	int rc, i;

	rc = ctl_simple(ctl, argc, argv, usage, 1, 3, names, flags, &conf);
	if (rc != -1)
		return rc == CTL_OK + 100 ? CTL_OK : rc;
	/* The subcommands are the queue-* rows of the control protocol. */
	snprintf(cmd, sizeof(cmd), "queue-%s", argv[optind]);
	if (ctlproto_find(cmd) == NULL) {
		fprintf(stderr, "usage: psyncctl %s\n", usage);
		config_free(conf);
		return CTL_USAGE;
	}
	w[0] = cmd;
	if (strcmp(argv[optind], "list") == 0 && flags[0])
		w[n++] = "all";
	for (i = optind + 1; i < argc && n < 3; i++)
		w[n++] = argv[i];
	rc = ctl_request(conf->control_socket, w, n);
	config_free(conf);
	return rc;
}

int
cmd_send(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "peer", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct psync_config *conf = NULL;
	const char *peer = NULL, *w[4];
	char *password = NULL;
	int ch, rc = CTL_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl->config_path = optarg;
			break;
		case 'p':
			peer = optarg;
			break;
		case 'h':
			printf("usage: psyncctl send USER --peer NAME "
			    "(the password on standard input)\n");
			return CTL_OK;
		default:
			return CTL_USAGE;
		}
	}
	if (argc - optind != 1 || peer == NULL) {
		fprintf(stderr, "usage: psyncctl send USER --peer NAME\n");
		return CTL_USAGE;
	}
	conf = ctl_load_config(ctl);
	if (conf == NULL)
		goto done;
	password = ctl_read_secret_line("the password");
	if (password == NULL)
		goto done;
	if (password[0] == '\0' || strchr(password, '\n') != NULL) {
		fprintf(stderr, "psyncctl send: empty password\n");
		goto done;
	}
	w[0] = "send";
	w[1] = argv[optind];
	w[2] = peer;
	w[3] = password;
	rc = ctl_request(conf->control_socket, w, 4);
done:
	secure_free_str(password);
	config_free(conf);
	return rc;
}

int
cmd_verify(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "user", required_argument, NULL, 'U' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	struct psync_config *conf = NULL;
	const char *user = NULL, *w[3];
	int ch, rc = CTL_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl->config_path = optarg;
			break;
		case 'U':
			user = optarg;
			break;
		case 'h':
			printf("usage: psyncctl verify PEER [--user USER]\n");
			return CTL_OK;
		default:
			return CTL_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "usage: psyncctl verify PEER [--user USER]\n");
		return CTL_USAGE;
	}
	conf = ctl_load_config(ctl);
	if (conf == NULL)
		return CTL_FAIL;
	w[0] = "verify";
	w[1] = argv[optind];
	w[2] = user;
	rc = ctl_request(conf->control_socket, w, user != NULL ? 3 : 2);
	config_free(conf);
	return rc;
}

int
cmd_keygen(struct ctl *ctl, int argc, char **argv)
{
	unsigned char key[WIRE_KEY_LEN];
	struct psync_err err;
	size_t i;
	int rc;

	rc = ctl_simple(ctl, argc, argv, "keygen [FILE]", 0, 1, NULL, NULL,
	    NULL);
	if (rc != -1)
		return rc == CTL_OK + 100 ? CTL_OK : rc;
	rc = CTL_FAIL;
	if (keyfile_generate(key, &err) == -1) {
		fprintf(stderr, "psyncctl keygen: %s\n", err.msg);
		goto done;
	}
	if (optind < argc) {
		if (keyfile_write(argv[optind], key, false, &err) == -1) {
			fprintf(stderr, "psyncctl keygen: %s\n", err.msg);
			goto done;
		}
		printf("new key written to %s (mode 0600)\n", argv[optind]);
	} else {
		for (i = 0; i < sizeof(key); i++)
			printf("%02x", key[i]);
		printf("\n");
	}
	rc = CTL_OK;
done:
	secure_wipe(key, sizeof(key));
	return rc;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
cmd_set_key(struct ctl *ctl, int argc, char **argv)
{
	struct psync_config *conf = NULL;
	const struct peer_conf *pc;
	unsigned char key[WIRE_KEY_LEN];
	struct psync_err err;
	const char *w[1] = { "reload" };
	char *line = NULL;
	size_t i;
	int rc, hi, lo;

	rc = ctl_simple(ctl, argc, argv, "set-key PEER (64 hex digits on "
	    "standard input)", 1, 1, NULL, NULL, &conf);
	if (rc != -1)
		return rc == CTL_OK + 100 ? CTL_OK : rc;
	rc = CTL_FAIL;
	pc = config_find_peer(conf, argv[optind]);
	if (pc == NULL) {
		fprintf(stderr, "psyncctl set-key: no peer '%s' in %s\n",
		    argv[optind], conf->path);
		goto done;
	}
	if (pc->protocol != PROTO_PSYNC || pc->key_file == NULL ||
	    pc->key_file[0] == '\0') {
		fprintf(stderr, "psyncctl set-key: peer %s has no psync "
		    "key-file in %s\n", pc->name, conf->path);
		goto done;
	}
	line = ctl_read_secret_line("the key (64 hex digits)");
	if (line == NULL)
		goto done;
	if (strlen(line) != 2 * WIRE_KEY_LEN) {
		fprintf(stderr, "psyncctl set-key: the key must be 64 hex "
		    "digits (psyncctl keygen makes one)\n");
		goto done;
	}
	for (i = 0; i < WIRE_KEY_LEN; i++) {
		hi = hexval(line[2 * i]);
		lo = hexval(line[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			fprintf(stderr, "psyncctl set-key: the key must be 64 "
			    "hex digits\n");
			goto done;
		}
		key[i] = (unsigned char)(hi << 4 | lo);
	}
	if (keyfile_write(pc->key_file, key, true, &err) == -1) {
		fprintf(stderr, "psyncctl set-key: %s\n", err.msg);
		goto done;
	}
	printf("key for peer %s written to %s\n", pc->name, pc->key_file);
	rc = ctl_request(conf->control_socket, w, 1);
	if (rc != CTL_OK)
		fprintf(stderr, "psyncctl set-key: the key file is written; "
		    "psyncd uses it once it (re)starts or reloads\n");
done:
	secure_wipe(key, sizeof(key));
	secure_free_str(line);
	config_free(conf);
	return rc;
}

int
cmd_rotate_key(struct ctl *ctl, int argc, char **argv)
{
	struct psync_config *conf = NULL;
	const char *w[2];
	int rc;

	rc = ctl_simple(ctl, argc, argv, "rotate-key PEER", 1, 1, NULL, NULL,
	    &conf);
	if (rc != -1)
		return rc == CTL_OK + 100 ? CTL_OK : rc;
	w[0] = "rotate-key";
	w[1] = argv[optind];
	rc = ctl_request(conf->control_socket, w, 2);
	config_free(conf);
	return rc;
}
