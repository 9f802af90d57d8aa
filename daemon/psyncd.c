/*
 * psyncd: the psync sync node. This file holds start-up: options, the
 * configuration check (-t), and hand-over to the node proper.
 */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_file.h"
#include "log.h"

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: psyncd [-t] [-c FILE]\n"
	    "  -c FILE  configuration file (default " PSYNC_DEFAULT_CONFIG ")\n"
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
	const char *path = PSYNC_DEFAULT_CONFIG;
	bool test_only = false;
	int ch;

	log_init("psyncd", LOG_TARGET_STDERR, LOG_DAEMON);
	while ((ch = getopt(argc, argv, "c:th")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test_only = true;
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
	fprintf(stderr, "psyncd: only -t (configuration check) is available in "
	    "this version; the sync node itself is not built yet\n");
	return 2;
}
