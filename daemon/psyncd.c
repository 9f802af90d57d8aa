/*
 * psyncd: the psync sync node. This file holds start-up: options, the
 * configuration check (-t), detaching, and hand-over to the parent
 * (parent.c), which forks the network child (child.c).
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

int
main(int argc, char **argv)
{
	struct psyncd_opts opts;
	const char *path = PSYNC_DEFAULT_CONFIG;
	bool test_only = false;
	int ch;

	memset(&opts, 0, sizeof(opts));
	opts.user = getenv(PSYNCD_USER_ENV);
	if (opts.user == NULL || opts.user[0] == '\0')
		opts.user = PSYNCD_DEFAULT_USER;

	log_init("psyncd", LOG_TARGET_STDERR, LOG_DAEMON);
	while ((ch = getopt(argc, argv, "c:dftu:h")) != -1) {
		switch (ch) {
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
