/*
 * Building a batch of changes from "user:secret" lines, the format of
 * chpasswd, so that the test driver and psyncctl read input the same way.
 * Every copy of a secret is wiped when the batch is freed.
 */
#include "config_file.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "codes.h"
#include "store.h"
#include "util.h"

void
store_batch_init(struct store_batch *batch)
{
	memset(batch, 0, sizeof(*batch));
}

int
store_batch_add(struct store_batch *batch, const char *user,
    enum store_secret_kind kind, const char *secret, struct psync_err *err)
{
	struct store_change *c, *nc;
	size_t ncap;
	char *u = NULL, *s = NULL;
	int rc = -1;

	if (batch->n == batch->cap) {
		ncap = batch->cap == 0 ? 64 : batch->cap * 2;
		nc = reallocarray(batch->changes, ncap, sizeof(*nc));
		if (nc == NULL) {
			perr_set(err, PSYNC_E_UPDATE_FAILED,
			    "out of memory for %zu changes", ncap);
			goto done;
		}
		batch->changes = nc;
		batch->cap = ncap;
	}
	u = strdup(user);
	s = strdup(secret);
	if (u == NULL || s == NULL) {
		perr_set(err, PSYNC_E_UPDATE_FAILED,
		    "out of memory for the change of %s", user);
		goto done;
	}
	c = &batch->changes[batch->n++];
	c->user = u;
	c->kind = kind;
	c->secret = s;
	u = s = NULL;
	rc = 0;
done:
	free(u);
	secure_free_str(s);
	return rc;
}

int
store_batch_read(struct store_batch *batch, FILE *in,
    enum store_secret_kind kind, struct psync_err *err)
{
	char *line = NULL, *colon;
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = -1;

	while ((len = getline(&line, &cap, in)) != -1) {
		lineno++;
		if (len > 0 && line[len - 1] == '\n')
			line[--len] = '\0';
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len == 0)
			continue;
		if ((size_t)len != strlen(line)) {
			perr_set(err, PSYNC_E_PROTOCOL,
			    "input line %d: contains a NUL byte", lineno);
			goto done;
		}
		colon = strchr(line, ':');
		if (colon == NULL || colon == line) {
			perr_set(err, PSYNC_E_PROTOCOL,
			    "input line %d: expected user:password", lineno);
			goto done;
		}
		*colon = '\0';
		if (store_batch_add(batch, line, kind, colon + 1, err) == -1)
			goto done;
		secure_wipe(line, cap);
	}
	if (ferror(in)) {
		perr_set(err, PSYNC_E_PROTOCOL, "reading input: %s",
		    strerror(errno));
		goto done;
	}
	rc = 0;
done:
	if (line != NULL) {
		secure_wipe(line, cap);
		free(line);
	}
	return rc;
}

void
store_batch_free(struct store_batch *batch)
{
	size_t i;

	for (i = 0; i < batch->n; i++) {
		/* The batch allocated these strings itself. */
		free((void *)(uintptr_t)batch->changes[i].user);
		secure_free_str((char *)(uintptr_t)batch->changes[i].secret);
	}
	free(batch->changes);
	store_batch_init(batch);
}
