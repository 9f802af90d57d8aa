/*
 * What psync-samba-hook reads: the LDIF of one account that
 * `samba-tool user syncpasswords --script` writes on the hook's stdin
 * (RFC 2849: folded lines, "attr:: base64" values, attribute options such
 * as "virtualCryptSHA512;rounds=5000"). The one parser of those bytes;
 * fuzzed by tests/fuzz/fuzz_samba_ldif. Secrets are wiped by
 * samba_ldif_wipe.
 */
#ifndef PSYNC_SAMBA_LDIF_H
#define PSYNC_SAMBA_LDIF_H

#include <stdbool.h>
#include <stddef.h>

#include "store.h"
#include "util.h"

#define SAMBA_LDIF_MAX		(1024 * 1024)	/* bytes of input */
#define SAMBA_LDIF_LINE_MAX	65536		/* bytes of one unfolded line */
#define SAMBA_LDIF_DN_MAX	1024

/* AD's userAccountControl bit for a disabled account. */
#define SAMBA_UAC_DISABLED	0x0002u

struct samba_ldif {
	char		dn[SAMBA_LDIF_DN_MAX + 1];	/* cut when longer */
	char		user[STORE_USER_MAX + 1];	/* sAMAccountName */
	bool		have_user;
	unsigned long	uac;				/* userAccountControl */
	bool		have_uac;
	bool		deleted;			/* isDeleted/isRecycled TRUE */
	char		cleartext[STORE_SECRET_MAX + 1];	/* virtualClearTextUTF8 */
	bool		have_cleartext;
	char		hash[STORE_SECRET_MAX + 1];	/* virtualCryptSHA512, no {CRYPT} */
	bool		have_hash;
};

enum samba_ldif_action {
	SAMBA_SKIP_NO_USER,	/* no sAMAccountName */
	SAMBA_SKIP_DELETED,
	SAMBA_SKIP_DISABLED,
	SAMBA_SKIP_NO_SECRET,	/* no password change in this report */
	SAMBA_SEND_CLEARTEXT,
	SAMBA_SEND_HASH,
};

/*
 * Parse one object (input up to the first blank line after the record, or
 * the end). -1 with err (code 5) when the bytes are not such LDIF: a bad
 * line, bad base64, a value too long, a NUL or newline inside a name or
 * secret, an attribute given twice. o is wiped on error.
 */
int	samba_ldif_parse(const char *buf, size_t len, struct samba_ldif *o,
	    struct psync_err *err);
/* What the hook does with the object, and why (a constant string). */
enum samba_ldif_action samba_ldif_decide(const struct samba_ldif *o,
	    const char **why);
void	samba_ldif_wipe(struct samba_ldif *o);

/*
 * Strict base64 (RFC 4648, padding required, no line breaks). Returns the
 * decoded length, or -1 when in is not base64 or out (cap bytes) is short.
 */
long	samba_base64_decode(const char *in, size_t len, unsigned char *out,
	    size_t cap);

#endif
