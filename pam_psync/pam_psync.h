/* pam_psync: what the module's files share. Nothing here is exported. */
#ifndef PAM_PSYNC_H
#define PAM_PSYNC_H

#include <stdbool.h>
#include <security/pam_modules.h>

#include "account.h"
#include "config_file.h"
#include "policy.h"

struct pp_options {
	bool		 check;		/* the check role, before pam_unix */
	bool		 strict;	/* fail when the change cannot be kept */
	bool		 debug;
	bool		 use_authtok;
	bool		 try_first_pass;
	int		 retry;		/* check role: attempts, 1 to 9 */
	const char	*config;
};

struct pp_context {
	struct pp_options	 opts;
	struct psync_config	*conf;
	struct policy		*pol;
	struct account		 acct;
	bool			 found;
};

void	pp_parse_options(pam_handle_t *pamh, int argc, const char **argv,
	    struct pp_options *o);
int	pp_context_open(pam_handle_t *pamh, struct pp_context *c, const char *user);
void	pp_context_close(struct pp_context *c);
/* PAM_SUCCESS when the user's changes sync, PAM_IGNORE when they do not. */
int	pp_user_syncs(pam_handle_t *pamh, const struct pp_context *c,
	    const char *user);
/* The default role, update phase: record the committed change. */
int	pp_forward(pam_handle_t *pamh, struct pp_context *c, const char *user);

#endif
