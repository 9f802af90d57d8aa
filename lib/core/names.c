/* Name reduction, validation and the windows-name/unix-name map. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codes.h"
#include "names.h"

struct name_pair {
	char	*windows;
	char	*unix_name;
};

struct name_map {
	struct name_pair *pairs;
	size_t		  n;
	bool		  case_ignore;
};

int
names_reduce(const char *in, char *out, size_t outlen)
{
	const char *start = in, *p, *end;
	size_t len;

	p = strrchr(in, '\\');
	if (p != NULL)
		start = p + 1;
	end = strchr(start, '@');
	len = end != NULL ? (size_t)(end - start) : strlen(start);
	if (len == 0 || len >= outlen || len >= NAME_MAX_LEN)
		return -1;
	memcpy(out, start, len);
	out[len] = '\0';
	return 0;
}

bool
names_valid(const char *name)
{
	const unsigned char *p = (const unsigned char *)name;
	size_t n = 0;

	/* "+" and "-" open NIS compat entries; "#" would make a comment. */
	if (*p == '\0' || *p == '-' || *p == '+' || *p == '#')
		return false;
	for (; *p != '\0'; p++, n++)
		if (*p < 0x20 || *p == 0x7f || *p == ':' || *p == ',' ||
		    *p == ' ' || *p == '/')
			return false;
	return n < NAME_MAX_LEN;
}

bool
names_equal(const char *a, const char *b, bool case_ignore)
{
	return case_ignore ? strcasecmp(a, b) == 0 : strcmp(a, b) == 0;
}

void
names_map_free(struct name_map *map)
{
	size_t i;

	if (map == NULL)
		return;
	for (i = 0; i < map->n; i++) {
		free(map->pairs[i].windows);
		free(map->pairs[i].unix_name);
	}
	free(map->pairs);
	free(map);
}

static int
map_add(struct name_map *map, const char *w, const char *u)
{
	struct name_pair *np;

	np = realloc(map->pairs, (map->n + 1) * sizeof(*np));
	if (np == NULL)
		return -1;
	map->pairs = np;
	np[map->n].windows = strdup(w);
	np[map->n].unix_name = strdup(u);
	if (np[map->n].windows == NULL || np[map->n].unix_name == NULL) {
		free(np[map->n].windows);
		free(np[map->n].unix_name);
		return -1;
	}
	map->n++;
	return 0;
}

struct name_map *
names_map_parse(const char *text, const char *name, bool case_ignore,
    struct psync_err *err)
{
	struct name_map *map;
	const char *line = text;
	int lineno = 0;

	map = calloc(1, sizeof(*map));
	if (map == NULL) {
		perr_set(err, PSYNC_E_NOT_UPDATED, "%s: out of memory", name);
		return NULL;
	}
	map->case_ignore = case_ignore;
	while (line != NULL && *line != '\0') {
		const char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);
		char buf[2 * NAME_MAX_LEN + 16], w[NAME_MAX_LEN], u[NAME_MAX_LEN];
		char extra[2];
		char *hash;
		int n;
		size_t i;

		lineno++;
		if (len >= sizeof(buf)) {
			perr_set(err, PSYNC_E_BAD_USER, "%s:%d: line too long",
			    name, lineno);
			goto fail;
		}
		memcpy(buf, line, len);
		buf[len] = '\0';
		line = nl != NULL ? nl + 1 : NULL;
		hash = strchr(buf, '#');
		if (hash != NULL)
			*hash = '\0';
		n = sscanf(buf, "%255s %255s %1s", w, u, extra);
		if (n <= 0)
			continue;
		if (n != 2) {
			perr_set(err, PSYNC_E_BAD_USER, "%s:%d: expected "
			    "'windows-name unix-name'", name, lineno);
			goto fail;
		}
		if (!names_valid(u)) {
			perr_set(err, PSYNC_E_BAD_USER, "%s:%d: '%s' is not a "
			    "valid UNIX user name", name, lineno, u);
			goto fail;
		}
		for (i = 0; i < map->n; i++) {
			if (names_equal(map->pairs[i].windows, w, case_ignore)) {
				perr_set(err, PSYNC_E_BAD_USER, "%s:%d: '%s' is "
				    "mapped twice", name, lineno, w);
				goto fail;
			}
		}
		if (map_add(map, w, u) == -1) {
			perr_set(err, PSYNC_E_NOT_UPDATED, "%s: out of memory", name);
			goto fail;
		}
	}
	return map;
fail:
	names_map_free(map);
	return NULL;
}

struct name_map *
names_map_load(const char *path, bool case_ignore, struct psync_err *err)
{
	struct name_map *map = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *f, *mem = NULL;
	char buf[4096];
	size_t n;

	f = fopen(path, "re");
	if (f == NULL) {
		perr_set(err, PSYNC_E_FILE_NOT_FOUND, "%s: cannot open the name "
		    "map: %s", path, strerror(errno));
		return NULL;
	}
	mem = open_memstream(&text, &len);
	if (mem == NULL)
		goto done;
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		fwrite(buf, 1, n, mem);
	if (ferror(f)) {
		perr_set(err, PSYNC_E_OPEN, "%s: read error", path);
		goto done;
	}
	fclose(mem);
	mem = NULL;
	map = names_map_parse(text, path, case_ignore, err);
done:
	if (mem != NULL)
		fclose(mem);
	free(text);
	fclose(f);
	return map;
}

static int
copy_out(const char *s, char *out, size_t outlen)
{
	if (str_copy(out, s, outlen) >= outlen)
		return -1;
	return 0;
}

int
names_to_unix(const struct name_map *map, const char *in, char *out,
    size_t outlen)
{
	char reduced[NAME_MAX_LEN];
	size_t i;

	if (names_reduce(in, reduced, sizeof(reduced)) == -1)
		return -1;
	for (i = 0; map != NULL && i < map->n; i++)
		if (names_equal(map->pairs[i].windows, reduced, map->case_ignore) ||
		    names_equal(map->pairs[i].windows, in, map->case_ignore))
			return copy_out(map->pairs[i].unix_name, out, outlen);
	return copy_out(reduced, out, outlen);
}

int
names_to_peer(const struct name_map *map, const char *in, char *out,
    size_t outlen)
{
	size_t i;

	for (i = 0; map != NULL && i < map->n; i++)
		if (strcmp(map->pairs[i].unix_name, in) == 0)
			return copy_out(map->pairs[i].windows, out, outlen);
	return copy_out(in, out, outlen);
}
