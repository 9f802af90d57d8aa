/*
 * Test PAM module standing in for "pam_unix.so use_authtok": succeeds in
 * the update phase only when a module before it set PAM_AUTHTOK.
 */
#include "config.h"

#include <stddef.h>

#define PAM_SM_PASSWORD
#include <security/pam_modules.h>


int
pam_sm_chauthtok(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	const void *tok = NULL;

	(void)argc;
	(void)argv;
	if (flags & PAM_PRELIM_CHECK)
		return PAM_SUCCESS;
	if (pam_get_item(pamh, PAM_AUTHTOK, &tok) != PAM_SUCCESS || tok == NULL)
		return PAM_AUTHTOK_ERR;
	return PAM_SUCCESS;
}
