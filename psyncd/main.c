/*
 * psyncd: the psync sync node. This file holds start-up: options, the
 * configuration check (-t), detaching, and hand-over to the parent
 * (parent.c). The same program is also the network child: the parent
 * re-executes it with the internal flag -R net (spawn.c, net.c).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "config_file.h"
#include "log.h"
#include "net.h"
#include "psyncd.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: psyncd [-dft] [-c FILE] [-u USER]\n"
	    "  -c FILE  configuration file (default " PSYNC_DEFAULT_CONFIG ")\n"
	    "  -d       log debug messages too\n"
	    "  -f       stay in the foreground and log to standard error\n"
	    "  -u USER  the network child's user (default $" PSYNCD_USER_ENV
	    " or " PSYNCD_DEFAULT_USER ")\n"
	    "  -t       check the configuration, print 'configuration OK' or\n"
	    "           the errors, and exit 0 or 1\n"
	    "  -h       this help\n");
}

static void
print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "%s\n", message);
}

static int
check_config(const char *path)
{
	struct psync_config *conf;

	conf = config_load(path, true, print_problem, NULL);
	if (conf == NULL)
		return 1;
	config_free(conf);
	printf("configuration OK\n");
	return 0;
}

/* A number from the parent's command line for the child. */
static int
role_number(const char *s, int max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > max) {
		fprintf(stderr, "psyncd: bad internal argument '%s'\n", s);
		exit(2);
	}
	return (int)v;
}

int
main(int argc, char **argv)
{
	struct psyncd_opts opts;
	struct net_setup ns;
	const char *path = PSYNC_DEFAULT_CONFIG, *role = NULL;
	bool test_only = false;
	int ch;

	memset(&opts, 0, sizeof(opts));
	opts.user = getenv(PSYNCD_USER_ENV);
	if (opts.user == NULL || opts.user[0] == '\0')
		opts.user = PSYNCD_DEFAULT_USER;

	memset(&ns, 0, sizeof(ns));
	ns.log_level = LOG_INFO;
	ns.log_facility = LOG_DAEMON;
	log_init("psyncd", LOG_TARGET_STDERR, LOG_DAEMON);
	while ((ch = getopt(argc, argv, "c:dftu:hR:C:l:F:")) != -1) {
		switch (ch) {
		/* Internal: how the parent starts the network child. */
		case 'R':
			role = optarg;
			break;
		case 'C':
			ns.chroot_dir = optarg;
			break;
		case 'l':
			ns.log_level = role_number(optarg, LOG_DEBUG);
			break;
		case 'F':
			ns.log_facility = role_number(optarg, 1 << 30);
			break;
		case 'c':
			path = optarg;
			break;
		case 't':
			test_only = true;
			break;
		case 'd':
			opts.debug = 1;
			break;
		case 'f':
			opts.foreground = true;
			break;
		case 'u':
			opts.user = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if (role != NULL) {
		if (strcmp(role, "net") != 0 || ns.chroot_dir == NULL ||
		    geteuid() != 0) {
			fprintf(stderr, "psyncd: -R is for psyncd itself, "
			    "which starts its network child with it\n");
			return 2;
		}
		ns.user = opts.user;
		ns.foreground = opts.foreground;
		net_main(&ns);
	}
	if (test_only)
		return check_config(path);
	if (geteuid() != 0) {
		fprintf(stderr, "psyncd: must be started as root (it drops "
		    "privileges itself)\n");
		return 1;
	}
	opts.config_path = path;
	if (!opts.foreground) {
		/* Under systemd (Type=notify) run with -f; otherwise detach. */
		if (daemon(0, 0) == -1) {
			fprintf(stderr, "psyncd: daemon: %s\n", strerror(errno));
			return 1;
		}
		log_init("psyncd", LOG_TARGET_SYSLOG, LOG_DAEMON);
	}
	return parent_main(&opts);
}
