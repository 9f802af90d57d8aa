/*
 * A load of legacy MEPP clients for bench/mepp: THREADS threads share the
 * "user password" lines of standard input and send each as one MEPP
 * change (one connection each, as the Windows service does) to
 * 127.0.0.1:PORT, waiting for every answer. Prints the wall time, the
 * changes per second and how many were answered 0.
 *
 * Usage: mepp-load PORT SECRET THREADS < lines
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "mepp.h"
#include "mepp_net.h"
#include "util.h"

#define LOAD_MAX	100000

static char *users[LOAD_MAX], *passwords[LOAD_MAX];
static size_t n_lines, next;
static unsigned int ok_count, bad_count;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct mepp_client client;

static void *
sender(void *arg)
{
	struct psync_err err;
	size_t i;
	int code;

	(void)arg;
	for (;;) {
		pthread_mutex_lock(&lock);
		i = next++;
		pthread_mutex_unlock(&lock);
		if (i >= n_lines)
			return NULL;
		code = mepp_client_change(&client, users[i], passwords[i], &err);
		pthread_mutex_lock(&lock);
		if (code == PSYNC_OK)
			ok_count++;
		else {
			bad_count++;
			if (bad_count <= 3)
				fprintf(stderr, "mepp-load: %s: %d %s\n",
				    users[i], code, code == -1 ? err.msg : "");
		}
		pthread_mutex_unlock(&lock);
	}
}

int
main(int argc, char **argv)
{
	pthread_t t[256];
	struct psync_err err;
	char line[1024], *sp;
	int threads, i;
	int64_t t0, t1;

	if (argc != 4 || (threads = atoi(argv[3])) < 1 || threads > 256) {
		fprintf(stderr, "usage: mepp-load PORT SECRET THREADS < lines\n");
		return 2;
	}
	if (mepp_crypto_init(&err) == -1) {
		fprintf(stderr, "mepp-load: %s\n", err.msg);
		return 1;
	}
	while (n_lines < LOAD_MAX && fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		sp = strchr(line, ' ');
		if (sp == NULL)
			continue;
		*sp = '\0';
		users[n_lines] = strdup(line);
		passwords[n_lines] = strdup(sp + 1);
		if (users[n_lines] == NULL || passwords[n_lines] == NULL)
			return 1;
		n_lines++;
	}
	client.host = "127.0.0.1";
	client.port = (unsigned int)atoi(argv[1]);
	client.secret = argv[2];
	t0 = clock_mono_ms();
	for (i = 0; i < threads; i++)
		if (pthread_create(&t[i], NULL, sender, NULL) != 0)
			return 1;
	for (i = 0; i < threads; i++)
		pthread_join(t[i], NULL);
	t1 = clock_mono_ms();
	printf("%zu changes, %d clients: %.3f s, %.1f changes/s, %u answered 0, "
	    "%u otherwise\n", n_lines, threads, (double)(t1 - t0) / 1e3,
	    (double)n_lines * 1e3 / (double)(t1 - t0 > 0 ? t1 - t0 : 1),
	    ok_count, bad_count);
	return bad_count == 0 ? 0 : 1;
}
