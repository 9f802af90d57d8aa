/* psyncctl: shared declarations of the command table and its helpers. */
#ifndef PSYNC_PSYNCCTL_H
#define PSYNC_PSYNCCTL_H

#include "config_file.h"

struct ctl {
	const char	*config_path;
	const char	*command;
};

/* Exit codes: 0 fine, 1 the command's answer is "no"/failed, 2 usage. */
#define CTL_OK		0
#define CTL_FAIL	1
#define CTL_USAGE	2

/* Load the configuration, printing every problem; NULL on error. */
struct psync_config *ctl_load_config(const struct ctl *ctl);
/* Read one line (a password) from stdin without its newline; wipe it after. */
char	*ctl_read_secret_line(const char *what);

int	cmd_policy(struct ctl *ctl, int argc, char **argv);
int	cmd_import_sso(struct ctl *ctl, int argc, char **argv);
int	cmd_apply(struct ctl *ctl, int argc, char **argv);
int	cmd_status(struct ctl *ctl, int argc, char **argv);
int	cmd_queue(struct ctl *ctl, int argc, char **argv);
int	cmd_send(struct ctl *ctl, int argc, char **argv);
int	cmd_verify(struct ctl *ctl, int argc, char **argv);
int	cmd_keygen(struct ctl *ctl, int argc, char **argv);
int	cmd_set_key(struct ctl *ctl, int argc, char **argv);
int	cmd_rotate_key(struct ctl *ctl, int argc, char **argv);
int	cmd_explain(struct ctl *ctl, int argc, char **argv);
/* ctl_init.c: a host's first configuration and keys. */
int	cmd_init(struct ctl *ctl, int argc, char **argv);

#endif
