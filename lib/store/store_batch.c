/*
 * Building a batch of changes from "user:secret" lines, the format of
 * chpasswd, so that the test driver and psyncctl read input the same way.
 * Every copy of a secret is wiped when the batch is freed.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "codes.h"
#include "store.h"

/* A user name, a colon, a secret, a line end: far below this. */
#define STORE_LINE_MAX	4096
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
	/* A batch from a file may well repeat what is stored: check. */
	c->check_unchanged = true;
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
	/*
	 * One fixed buffer, wiped after every line: getline() would leave
	 * unwiped copies of earlier lines behind whenever it grew its buffer.
	 */
	char line[STORE_LINE_MAX], *colon;
	size_t len;
	int lineno = 0, rc = -1, c;

	for (;;) {
		len = 0;
		while ((c = getc(in)) != EOF && c != '\n') {
			if (c == '\0') {
				perr_set(err, PSYNC_E_PROTOCOL, "input line %d: "
				    "contains a NUL byte", lineno + 1);
				goto done;
			}
			if (len == sizeof(line) - 1) {
				perr_set(err, PSYNC_E_PROTOCOL, "input line %d: "
				    "longer than %d bytes", lineno + 1,
				    STORE_LINE_MAX - 1);
				goto done;
			}
			line[len++] = (char)c;
		}
		if (c == EOF && len == 0)
			break;
		line[len] = '\0';
		lineno++;
		if (len > 0 && line[len - 1] == '\r')
			line[--len] = '\0';
		if (len == 0) {
			if (c == EOF)
				break;
			continue;
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
		secure_wipe(line, sizeof(line));
		if (c == EOF)
			break;
	}
	if (ferror(in)) {
		perr_set(err, PSYNC_E_PROTOCOL, "reading input: %s",
		    strerror(errno));
		goto done;
	}
	rc = 0;
done:
	secure_wipe(line, sizeof(line));
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
