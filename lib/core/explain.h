/*
 * What every log number psync writes means, and what to do about it: the
 * knowledge-base entries an administrator would otherwise search for.
 * `psyncctl explain NUMBER` prints one; the same table is the systemd
 * journal catalog (psync.catalog), whose MESSAGE_IDs psyncd's log lines
 * can carry.
 */
#ifndef PSYNC_EXPLAIN_H
#define PSYNC_EXPLAIN_H

#include <stdio.h>

struct explain_entry {
	int		 number;	/* a log number (8203) or a result code */
	const char	*message_id;	/* 32 hex digits, for the journal */
	const char	*title;
	const char	*symptom;
	const char	*cause;
	const char	*resolution;
	const char	*check;		/* how to see that it is fixed */
};

/* The entry of a log number or result code; NULL when there is none. */
const struct explain_entry *explain_find(int number);
/* Every entry, in order, ending with a NULL title. */
extern const struct explain_entry explain_entries[];
/* Print one entry for a person. */
void	explain_print(FILE *out, const struct explain_entry *e);
/* Print the whole table in journalctl's catalog format. */
void	explain_catalog(FILE *out);

#endif
