/*
 * The parent's view of a psync peer's pre-shared keys during rotation.
 * The current key is the peer's key file; a next key (id current + 1)
 * lives in "<key-file>.pending" while a rotation is under way. The ids,
 * and which side proposed the next key, are node state in the queue
 * database, tied to the files by a fingerprint (SHA-256 prefix) so that a
 * key file replaced by hand (keygen, set-key) is recognised and ends a
 * rotation under way. A key never seen before has id 0; ids only grow.
 */
#ifndef PSYNC_KEYS_H
#define PSYNC_KEYS_H

#include <stdbool.h>
#include <stdint.h>

#include "config_file.h"
#include "queue.h"
#include "util.h"
#include "wire.h"

#define KEYS_PENDING_SUFFIX	".pending"

struct key_state {
	unsigned char	cur[WIRE_KEY_LEN];
	uint32_t	cur_id;
	uint64_t	cur_since_ms;	/* when the key file was last written */
	bool		has_next;
	bool		next_ours;	/* we proposed it (else the peer did) */
	unsigned char	next[WIRE_KEY_LEN];
	uint32_t	next_id;	/* cur_id + 1 */
	uint64_t	next_since_ms;	/* when it was proposed or received */
};

/* Read a peer's keys and ids; finishes a promotion a crash interrupted. */
int	keys_load(struct queue *q, const struct peer_conf *pc,
	    struct key_state *ks, struct psync_err *err);
/* Store a next key (0600 file, then node state). */
int	keys_set_next(struct queue *q, const struct peer_conf *pc,
	    uint32_t id, const unsigned char key[WIRE_KEY_LEN], bool ours,
	    struct psync_err *err);
/* Make the next key current: rename over the key file, then node state.
   After this the old key is gone. */
int	keys_promote(struct queue *q, const struct peer_conf *pc,
	    struct psync_err *err);
/* Forget a next key (a conflicting proposal from the peer won). */
int	keys_drop_next(struct queue *q, const struct peer_conf *pc,
	    struct psync_err *err);
void	keys_wipe(struct key_state *ks);

#endif
