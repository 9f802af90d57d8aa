/*
 * psyncctl: the administrator's command-line tool. main() picks a command
 * from the table; each command parses its own options (every command
 * accepts -c FILE) and prints its answer.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "psyncctl.h"
#include "util.h"

static const struct {
	const char	*name;
	int		(*fn)(struct ctl *, int, char **);
	const char	*usage;
} commands[] = {
	{ "init",	cmd_init,
	  "init [--node NAME] [--peer NAME:PROTOCOL:ADDRESS[:DIRECTION]]... "
	  "[--config FILE] [--keys DIR] [--yes] [--force]" },
	{ "policy",	cmd_policy,
	  "policy USER [--peer NAME | --from NAME] [--password-stdin]" },
	{ "import-sso",	cmd_import_sso,	"import-sso [FILE]" },
	{ "apply",	cmd_apply,	"apply [-e] < user:password lines" },
	{ "status",	cmd_status,	"status [--json]" },
	{ "queue",	cmd_queue,
	  "queue list [--all] | retry [ID] | drop ID [PEER] | purge" },
	{ "send",	cmd_send,	"send USER --peer NAME  (password on stdin)" },
	{ "verify",	cmd_verify,	"verify PEER [--user USER]" },
	{ "keygen",	cmd_keygen,	"keygen [FILE]" },
	{ "set-key",	cmd_set_key,	"set-key PEER  (64 hex digits on stdin)" },
	{ "rotate-key",	cmd_rotate_key,	"rotate-key PEER" },
	{ "explain",	cmd_explain,	"explain NUMBER | --list | --catalog" },
};

static void
usage(FILE *out)
{
	size_t i;

	fprintf(out, "usage: psyncctl [-c FILE] COMMAND [ARGS]\n"
	    "  -c FILE  configuration file (default " PSYNC_DEFAULT_CONFIG ")\n"
	    "commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %s\n", commands[i].usage);
}

static void
print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "psyncctl: %s\n", message);
}

struct psync_config *
ctl_load_config(const struct ctl *ctl)
{
	struct psync_config *conf;

	conf = config_load(ctl->config_path, true, print_problem, NULL);
	/* Messages on standard error follow the configured log level. */
	if (conf != NULL)
		log_set_level(conf->log.level);
	return conf;
}

char *
ctl_read_secret_line(const char *what)
{
	/* A fixed buffer: getline() leaves unwiped copies when it grows. */
	char buf[1024], *line = NULL;
	size_t n = 0;
	int c;

	while ((c = getc(stdin)) != EOF && c != '\n') {
		if (c == '\0' || n == sizeof(buf) - 1) {
			fprintf(stderr, "psyncctl: %s on standard input is longer "
			    "than %zu bytes or holds a NUL byte\n", what,
			    sizeof(buf) - 1);
			goto done;
		}
		buf[n++] = (char)c;
	}
	if (n == 0 && c == EOF) {
		fprintf(stderr, "psyncctl: expected %s on standard input\n", what);
		goto done;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	line = strdup(buf);
	if (line == NULL)
		fprintf(stderr, "psyncctl: out of memory\n");
done:
	secure_wipe(buf, sizeof(buf));
	return line;
}

/*
 * Standard input carries passwords (apply, send, policy --password-stdin):
 * stdio reads it through this buffer, which is wiped before exit instead
 * of being left to stdio's own, unwiped one.
 */
static char stdin_buf[BUFSIZ];

static int
run(int argc, char **argv)
{
	struct ctl ctl = { PSYNC_DEFAULT_CONFIG, NULL };
	int i = 1;
	size_t c;

	while (i < argc && argv[i][0] == '-') {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			ctl.config_path = argv[i + 1];
			i += 2;
		} else if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return CTL_OK;
		} else {
			usage(stderr);
			return CTL_USAGE;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return CTL_USAGE;
	}
	for (c = 0; c < sizeof(commands) / sizeof(commands[0]); c++) {
		if (strcmp(argv[i], commands[c].name) == 0) {
			ctl.command = commands[c].name;
			return commands[c].fn(&ctl, argc - i, argv + i);
		}
	}
	fprintf(stderr, "psyncctl: unknown command '%s'\n", argv[i]);
	usage(stderr);
	return CTL_USAGE;
}

int
main(int argc, char **argv)
{
	int rc;

	log_init("psyncctl", LOG_TARGET_STDERR, LOG_AUTHPRIV);
	if (setvbuf(stdin, stdin_buf, _IOFBF, sizeof(stdin_buf)) != 0) {
		fprintf(stderr, "psyncctl: cannot set up standard input\n");
		return CTL_FAIL;
	}
	rc = run(argc, argv);
	secure_wipe(stdin_buf, sizeof(stdin_buf));
	return rc;
}
