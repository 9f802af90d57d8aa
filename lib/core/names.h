/*
 * User names as they arrive from Windows: "DOMAIN\user" and "user@REALM"
 * reduce to "user", an optional map file turns Windows names into UNIX
 * names (and back for outbound changes), and names compare without case
 * when case-ignore-name is on.
 */
#ifndef PSYNC_NAMES_H
#define PSYNC_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

#define NAME_MAX_LEN	256

struct name_map;

/* Strip "DOMAIN\" and "@REALM"; returns -1 if the result is empty or too long. */
int	names_reduce(const char *in, char *out, size_t outlen);
/* A name a shadow file can hold: no ':', no control characters, bounded. */
bool	names_valid(const char *name);

/* Load "windows-name unix-name" lines; errors name the file and line. */
struct name_map *names_map_load(const char *path, bool case_ignore,
	    struct psync_err *err);
struct name_map *names_map_parse(const char *text, const char *name,
	    bool case_ignore, struct psync_err *err);
void	names_map_free(struct name_map *map);

/* Windows name to UNIX name (inbound); map may be NULL. */
int	names_to_unix(const struct name_map *map, const char *in, char *out,
	    size_t outlen);
/* UNIX name to the name a peer knows (outbound); map may be NULL. */
int	names_to_peer(const struct name_map *map, const char *in, char *out,
	    size_t outlen);
/* Compare names under the case rule. */
bool	names_equal(const char *a, const char *b, bool case_ignore);

#endif
