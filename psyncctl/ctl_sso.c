/* psyncctl import-sso: print a legacy sso.conf as psync.conf text. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "psyncctl.h"
#include "sso.h"
#include "util.h"

#define SSO_MAX_FILE	(1024 * 1024)

static char *
read_all(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf = NULL;
	size_t len = 0;

	if (f == NULL) {
		fprintf(stderr, "psyncctl: import-sso: %s: %s\n", path,
		    strerror(errno));
		return NULL;
	}
	buf = malloc(SSO_MAX_FILE + 1);
	if (buf == NULL)
		goto done;
	len = fread(buf, 1, SSO_MAX_FILE + 1, f);
	if (ferror(f) || len > SSO_MAX_FILE) {
		fprintf(stderr, "psyncctl: import-sso: %s: %s\n", path,
		    ferror(f) ? "read error" : "larger than 1 MiB");
		secure_wipe(buf, len);
		free(buf);
		buf = NULL;
		goto done;
	}
	buf[len] = '\0';
	if (strlen(buf) != len) {
		fprintf(stderr, "psyncctl: import-sso: %s: contains a NUL byte\n",
		    path);
		secure_wipe(buf, len);
		free(buf);
		buf = NULL;
	}
done:
	fclose(f);
	return buf;
}

/* Warnings are comments in the output, and said on stderr too. */
static void
print_warning(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "psyncctl: import-sso: %s\n", message);
}

int
cmd_import_sso(struct ctl *ctl, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *path = "/etc/sso.conf";
	struct psync_err err;
	char *text;
	int ch, rc = CTL_FAIL;

	optind = 1;
	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			ctl->config_path = optarg;
			break;
		case 'h':
			printf("usage: psyncctl import-sso [FILE]\n"
			    "Prints FILE (default /etc/sso.conf) converted to "
			    "psync.conf syntax.\n");
			return CTL_OK;
		default:
			return CTL_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "usage: psyncctl import-sso [FILE]\n");
		return CTL_USAGE;
	}
	if (optind < argc)
		path = argv[optind];
	text = read_all(path);
	if (text == NULL)
		return CTL_FAIL;
	if (sso_convert_warn(text, path, stdout, print_warning, NULL,
	    &err) == -1)
		fprintf(stderr, "psyncctl: import-sso: %s\n", err.msg);
	else
		rc = CTL_OK;
	secure_free_str(text);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "psyncctl: import-sso: writing: %s\n",
		    strerror(errno));
		rc = CTL_FAIL;
	}
	return rc;
}
