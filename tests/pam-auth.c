/*
 * Test helper: authenticate USER through PAM with the password read from
 * standard input, as a login would (service psync-login by default).
 * Exits 0 when PAM accepts the password, 1 when it does not.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <security/pam_appl.h>

static char password[1024];

static int
converse(int n, const struct pam_message **msg, struct pam_response **resp,
    void *data)
{
	struct pam_response *r;
	int i;

	(void)data;
	r = calloc((size_t)n, sizeof(*r));
	if (r == NULL)
		return PAM_BUF_ERR;
	for (i = 0; i < n; i++)
		if (msg[i]->msg_style == PAM_PROMPT_ECHO_OFF ||
		    msg[i]->msg_style == PAM_PROMPT_ECHO_ON)
			r[i].resp = strdup(password);
	*resp = r;
	return PAM_SUCCESS;
}

int
main(int argc, char **argv)
{
	struct pam_conv conv = { converse, NULL };
	pam_handle_t *pamh = NULL;
	size_t len;
	int rc;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: pam-auth USER [SERVICE] < password\n");
		return 2;
	}
	if (fgets(password, sizeof(password), stdin) == NULL)
		return 2;
	len = strlen(password);
	if (len > 0 && password[len - 1] == '\n')
		password[len - 1] = '\0';
	rc = pam_start(argc == 3 ? argv[2] : "psync-login", argv[1], &conv, &pamh);
	if (rc == PAM_SUCCESS)
		rc = pam_authenticate(pamh, 0);
	if (rc == PAM_SUCCESS)
		rc = pam_acct_mgmt(pamh, 0);
	printf("%s: %s\n", argv[1], pam_strerror(pamh, rc));
	pam_end(pamh, rc);
	memset(password, 0, sizeof(password));
	return rc == PAM_SUCCESS ? 0 : 1;
}
