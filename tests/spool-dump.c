/*
 * Test helper: list the changes waiting in a spool, one line each:
 * "NAME USER ORIGIN TIME_MS". With -s it also prints the secret (tests that
 * check a password arrived byte for byte; never used outside tests).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "seal.h"
#include "spool.h"

int
main(int argc, char **argv)
{
	unsigned char key[SEAL_KEY_LEN];
	struct psync_err err;
	char **names;
	size_t n, i;
	int show = 0, ch, rc = 0;

	while ((ch = getopt(argc, argv, "s")) != -1) {
		if (ch != 's') {
			fprintf(stderr, "usage: spool-dump [-s] DIR HOSTKEY\n");
			return 2;
		}
		show = 1;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "usage: spool-dump [-s] DIR HOSTKEY\n");
		return 2;
	}
	if (seal_key_load(argv[optind + 1], 0, key, &err) == -1 ||
	    spool_list(argv[optind], &names, &n, &err) == -1) {
		fprintf(stderr, "spool-dump: %s\n", err.msg);
		return 1;
	}
	for (i = 0; i < n; i++) {
		struct frame f;

		if (spool_read(argv[optind], names[i], key, &f, &err) == -1) {
			fprintf(stderr, "spool-dump: %s\n", err.msg);
			rc = 1;
			continue;
		}
		printf("%s %s %s %llu", names[i], f.u.change.user,
		    f.u.change.origin, (unsigned long long)f.u.change.time_ms);
		if (show)
			printf(" %s", (const char *)f.u.change.secret);
		printf("\n");
		frame_wipe(&f);
	}
	spool_list_free(names, n);
	secure_wipe(key, sizeof(key));
	return rc;
}
