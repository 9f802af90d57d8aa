/*
 * psyncctl explain: what a log number or a result code means, and what to
 * do about it (lib/core/explain.c); --catalog prints the whole table in
 * the format of the systemd journal catalog (psync.catalog).
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codes.h"
#include "explain.h"
#include "psyncctl.h"

int
cmd_explain(struct ctl *ctl, int argc, char **argv)
{
	const struct explain_entry *e;
	char *end;
	long n;
	size_t i;

	(void)ctl;
	if (argc == 2 && strcmp(argv[1], "--catalog") == 0) {
		explain_catalog(stdout);
		return fflush(stdout) == 0 ? CTL_OK : CTL_FAIL;
	}
	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (i = 0; explain_entries[i].title != NULL; i++)
			printf("%d\t%s\n", explain_entries[i].number,
			    explain_entries[i].title);
		return CTL_OK;
	}
	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: psyncctl explain NUMBER | --list | "
		    "--catalog\n");
		return CTL_USAGE;
	}
	errno = 0;
	n = strtol(argv[1], &end, 10);
	if (errno != 0 || *end != '\0' || n < 0 || n > 99999) {
		fprintf(stderr, "psyncctl explain: '%s' is not a log number or "
		    "a result code\n", argv[1]);
		return CTL_USAGE;
	}
	e = explain_find((int)n);
	if (e != NULL) {
		explain_print(stdout, e);
		return CTL_OK;
	}
	if (n <= PSYNC_CODE_MAX) {
		printf("%ld: result code \"%s\" (%s)\n\nNo entry of its own: see "
		    "the reason that comes with it in the log line, and "
		    "psyncctl explain --list.\n", n, code_reason((int)n),
		    code_name((int)n));
		return CTL_OK;
	}
	fprintf(stderr, "psyncctl explain: psync writes no log number %ld "
	    "(psyncctl explain --list shows them all)\n", n);
	return CTL_FAIL;
}
