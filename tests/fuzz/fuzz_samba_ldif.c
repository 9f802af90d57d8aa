/* Fuzz the LDIF parser of psync-samba-hook (lib/store/samba_ldif.c). */
#include "config.h"

#include <stddef.h>
#include <stdint.h>

#include "samba_ldif.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct samba_ldif o;
	struct psync_err err;
	const char *why;

	if (samba_ldif_parse((const char *)data, size, &o, &err) == 0) {
		(void)samba_ldif_decide(&o, &why);
		samba_ldif_wipe(&o);
	}
	return 0;
}
