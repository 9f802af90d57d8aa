/*
 * Test helper: drop one change into a spool as pam_psync would.
 * usage: spool-drop SPOOL HOSTKEY ORIGIN USER [TIME_MS]  (password on stdin)
 * Prints the spool file's name. With SPOOL_DROP_CRYPT=1 in the environment
 * the secret read is a ready crypt hash (benchmarks that leave hashing out).
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/rand.h>

#include "frame.h"
#include "seal.h"
#include "spool.h"
#include "util.h"

int
main(int argc, char **argv)
{
	unsigned char key[SEAL_KEY_LEN];
	char name[SPOOL_NAME_LEN + 1], pw[FRAME_SECRET_MAX + 2];
	uint8_t id[FRAME_ID_LEN];
	struct psync_err err;
	struct frame f;
	struct timespec ts;
	uint64_t t;
	size_t n;
	int rc = 1;

	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: spool-drop SPOOL HOSTKEY ORIGIN USER "
		    "[TIME_MS] < password\n");
		return 2;
	}
	if (fgets(pw, sizeof(pw), stdin) == NULL) {
		fprintf(stderr, "spool-drop: no password on stdin\n");
		return 2;
	}
	pw[strcspn(pw, "\n")] = '\0';
	n = strlen(pw);
	clock_gettime(CLOCK_REALTIME, &ts);
	t = argc == 6 ? strtoull(argv[5], NULL, 10) :
	    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (seal_key_load(argv[2], 1, key, &err) == -1 ||
	    RAND_bytes(id, sizeof(id)) != 1 ||
	    frame_set_change(&f, id, argv[3], t, argv[4],
	    getenv("SPOOL_DROP_CRYPT") != NULL ? FRAME_SECRET_CRYPT :
	    FRAME_SECRET_CLEARTEXT, pw, n, &err) == -1 ||
	    spool_write(argv[1], key, &f, name, &err) == -1) {
		fprintf(stderr, "spool-drop: %s\n", err.msg);
		goto done;
	}
	printf("%s\n", name);
	rc = 0;
done:
	frame_wipe(&f);
	secure_wipe(pw, sizeof(pw));
	secure_wipe(key, sizeof(key));
	return rc;
}
