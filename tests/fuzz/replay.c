/*
 * Replays a fuzz target's seed corpus when the tree is built without
 * libFuzzer, so every target also runs as an ordinary test (TAP output).
 * With arguments it replays those files; without, it replays
 * $top_srcdir/tests/fuzz/corpus/<program name>/.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	FILE *f;
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0, n;
	int rc = -1;

	f = fopen(path, "rb");
	if (f == NULL) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	for (;;) {
		if (len == cap) {
			uint8_t *nb;

			cap = cap == 0 ? 4096 : cap * 2;
			nb = realloc(buf, cap);
			if (nb == NULL)
				goto done;
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		if (n == 0)
			break;
		len += n;
	}
	if (ferror(f))
		goto done;
	LLVMFuzzerTestOneInput(buf, len);
	rc = 0;
done:
	free(buf);
	fclose(f);
	return rc;
}

int
main(int argc, char **argv)
{
	const char *srcdir = getenv("top_srcdir");
	const char *name = strrchr(argv[0], '/');
	char dir[4096], path[8192];
	struct dirent *de;
	DIR *d;
	int i, n = 0, failed = 0;

	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (replay_file(argv[i]) == -1)
				failed++;
		return failed ? 1 : 0;
	}
	name = name != NULL ? name + 1 : argv[0];
	if (strncmp(name, "lt-", 3) == 0)
		name += 3;
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s",
	    srcdir != NULL ? srcdir : ".", name);
	d = opendir(dir);
	if (d == NULL) {
		printf("1..1\nnot ok 1 - corpus %s: %s\n", dir, strerror(errno));
		return 1;
	}
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (replay_file(path) == -1)
			failed++;
		n++;
	}
	closedir(d);
	printf("1..1\n%s 1 - %s replays %d corpus inputs without a crash\n",
	    failed == 0 && n > 0 ? "ok" : "not ok", name, n);
	return failed == 0 && n > 0 ? 0 : 1;
}
