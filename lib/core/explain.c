/*
 * The table behind psyncctl explain and psync.catalog (explain.h). Log
 * numbers first (those of the legacy Password Synchronization service,
 * which administrators know), then the result codes peers answer.
 */
#include "config.h"

#include <string.h>

#include "codes.h"
#include "explain.h"

const struct explain_entry explain_entries[] = {
	{ PSYNC_MSG_RECV, "6f1c0e2a8a3f4c1b9d7e5a2b4c6d8e01",
	  "error in receiving from socket",
	  "A log line \"8199: error in receiving from socket: host NAME/ADDRESS: "
	  "...\" on the node that listens for MEPP.",
	  "A legacy peer (the Windows Password Synchronization service or a "
	  "legacy PAM module) connected from a trusted address but did not "
	  "send a whole request before the deadline, or closed its side half "
	  "way (then it is answered 5). A network problem, a firewall cutting "
	  "connections, or something that is not a MEPP client talking to the "
	  "port.",
	  "Check the network path between the two hosts and that only MEPP "
	  "clients are in the peer's trusted-addresses. A single line is "
	  "harmless: the Windows side retries.",
	  "psyncctl verify PEER from the other direction if it is configured; "
	  "the next change from that peer is logged as applied." },
	{ PSYNC_MSG_NO_USER, "0b5d3c7e9f214a6b8c1d2e3f4a5b6c02",
	  "user does not exist",
	  "A log line \"8201: user NAME does not exist on peer PEER; change ID "
	  "given up\" (sending side) or \"8201: change ID from peer PEER: no "
	  "user NAME here\" (receiving side).",
	  "The account exists on one side only, or under another name (a "
	  "name-map entry or case-ignore-name would match it).",
	  "Create the account on the side that lacks it, or map the names "
	  "(policy { name-map = FILE }). The change is not retried: make it "
	  "again once the account exists.",
	  "psyncctl policy NAME on both sides says the user syncs; psyncctl "
	  "send NAME --peer PEER delivers a test change." },
	{ PSYNC_MSG_KEY_MISMATCH, "3e8a1f4b6c2d4e7f9a0b1c2d3e4f5a03",
	  "secret key mismatch or packet error",
	  "A log line \"8203: secret key mismatch or packet error ...\" with the "
	  "peer's name and address, on either side; changes for that peer stay "
	  "queued.",
	  "The two sides do not hold the same key: a psync pre-shared key "
	  "(key-file) that differs, a rotation that one side did not finish, a "
	  "MEPP key typed differently on the Windows server, or a legacy PAM "
	  "module of the other key derivation (64-bit builds: key-derivation = "
	  "8-byte). It can also be a corrupted or tampered request.",
	  "psync peers: copy the key file again (psyncctl keygen on one side, "
	  "psyncctl set-key PEER on the other) or psyncctl rotate-key PEER "
	  "while the channel still works. MEPP peers: set the same key on the "
	  "Windows server and in psync.conf; for a 64-bit legacy PAM module set "
	  "key-derivation = 8-byte. Queued changes are delivered once the keys "
	  "agree.",
	  "psyncctl verify PEER prints \"checked successfully\"; psyncctl status "
	  "shows the queue depth for that peer falling to 0." },
	{ PSYNC_MSG_DENY_LIST, "9c4b2a1d7e8f4a3b6c5d0e1f2a3b4c04",
	  "user is in the deny list",
	  "A log line \"12289: ... refused: code 14 ...\" naming the user and the "
	  "rule sync-users or deny-groups.",
	  "The policy excludes the user: sync-users says -NAME (or -ALL without "
	  "+NAME), or the user is in one of deny-groups. This is the policy "
	  "working, not an error.",
	  "If the user should sync, change sync-users or deny-groups in "
	  "psync.conf and reload (systemctl reload psyncd). Never add root or "
	  "system accounts.",
	  "psyncctl policy NAME shows every rule and the one that decided." },
	{ PSYNC_MSG_NOT_ALLOWED, "2a7d6c5b4e3f4a1b9c8d7e6f5a4b3c05",
	  "user is not in the allow list",
	  "A log line \"12290: ... refused: code 14 ...\" naming the user and the "
	  "rule sync-users or allow-groups.",
	  "sync-users lists users to sync (+NAME) and this one is not among "
	  "them, or allow-groups is set and the user is in none of its groups.",
	  "Add the user to sync-users or one of allow-groups, then reload.",
	  "psyncctl policy NAME says \"would sync\"." },
	{ PSYNC_MSG_DENIED, "5d1e9f8a7b6c4d2e8f3a4b5c6d7e8f06",
	  "password propagation denied",
	  "A log line \"12294: ... refused ...\" (or, from a legacy peer, \"12294: "
	  "password propagation denied for the remote user NAME\").",
	  "A rule that protects accounts refused the change: root or a uid "
	  "below min-uid (system accounts), a locked, disabled or expired "
	  "account with skip-locked = true, or a peer whose direction does not "
	  "allow this way. Also sent back by Windows for accounts it protects.",
	  "Nothing for root and system accounts: they must never sync. For a "
	  "locked account, unlock it first; for a direction, fix the peer's "
	  "direction in psync.conf.",
	  "psyncctl policy NAME --peer PEER shows which rule refused." },
	{ PSYNC_E_NOT_UPDATED, "7b3c9d1e2f4a4b5c8d6e7f8a9b0c1d07",
	  "result 4: password not updated",
	  "A peer answered 4; psyncctl status shows it as the last error.",
	  "The peer could not change the password. A legacy UNIX listener "
	  "answers 4 when its PAM stack refuses the user or does not know it: "
	  "psync gives such a change up after 12 tries.",
	  "Look at the peer's own log for the user; check that the account "
	  "exists there and can change its password.",
	  "psyncctl send NAME --peer PEER with a test password." },
	{ PSYNC_E_PROTOCOL, "8c4d0e2f3a5b4c6d9e7f8a0b1c2d3e08",
	  "result 5: protocol error",
	  "A peer answered 5, or a listener logged one.",
	  "For MEPP, a request whose MAC does not verify: almost always a key "
	  "mismatch (see 8203). For psync, a malformed frame.",
	  "As for 8203.", "psyncctl verify PEER." },
	{ PSYNC_E_BAD_PASSWORD, "9d5e1f3a4b6c4d7e0f8a9b1c2d3e4f09",
	  "result 9: bad password",
	  "A change refused with code 9 and a reason: too long, not UTF-8, a "
	  "password rule, a crypt hash of an unknown form or too costly, or a "
	  "hash from a peer without accept-hashes.",
	  "The password or hash breaks a rule of the receiving host. Password "
	  "rules cannot be checked on a hash, so hashes are taken only from "
	  "peers with accept-hashes = true, and only below the hash-max-* "
	  "costs.",
	  "Change the password to one that meets the rules (pam_psync's check "
	  "role says which); for a Samba DC in hash-only mode set accept-hashes "
	  "= true on the UNIX hosts that receive from it.",
	  "psyncctl policy NAME shows the rules; the next change is applied." },
	{ PSYNC_E_TOO_RECENT, "0e6f2a4b5c7d4e8f1a9b0c2d3e4f5a19",
	  "result 19: change stamped too far ahead",
	  "A change refused with 19 and \"stamped N s ahead of NODE's clock\"; "
	  "the receiver logs the peer's clock skew and psyncctl status shows it.",
	  "The sending host's clock is ahead of the receiver's by more than "
	  "max-clock-skew (default 5 minutes). Such a stamp would win over every "
	  "later change for the user, so it is refused; the sender retries.",
	  "Fix the clocks (NTP on every host). The queued change arrives once "
	  "they agree or its time has come.",
	  "psyncctl status on the receiver shows no clock line for the peer." },
	{ PSYNC_E_UPDATE_FAILED, "1f7a3b5c6d8e4f9a2b0c1d3e4f5a6b25",
	  "result 25: failed to update password",
	  "A change answered 25, often \"busy applying earlier changes; try "
	  "again\" or \"no answer from psyncd's parent process\".",
	  "A temporary failure on the receiving node: its queue is busy or it "
	  "was stopping. The sender keeps the change and retries.",
	  "Nothing, unless it persists: then look at the receiver's log.",
	  "psyncctl status on the sender: the queue depth falls to 0." },
	{ 0, NULL, NULL, NULL, NULL, NULL, NULL },
};

const struct explain_entry *
explain_find(int number)
{
	size_t i;

	for (i = 0; explain_entries[i].title != NULL; i++)
		if (explain_entries[i].number == number)
			return &explain_entries[i];
	return NULL;
}

void
explain_print(FILE *out, const struct explain_entry *e)
{
	fprintf(out, "%d: %s\n\nSymptom\n  %s\n\nCause\n  %s\n\nResolution\n  "
	    "%s\n\nCheck\n  %s\n", e->number, e->title, e->symptom, e->cause,
	    e->resolution, e->check);
}

void
explain_catalog(FILE *out)
{
	size_t i;

	for (i = 0; explain_entries[i].title != NULL; i++) {
		const struct explain_entry *e = &explain_entries[i];

		fprintf(out, "-- %s\nSubject: psync %d: %s\nDefined-By: psync\n"
		    "Documentation: man:psyncctl(8)\n\n%s\n\n%s\n\nResolution: "
		    "%s\n\nCheck: %s\n\n", e->message_id, e->number, e->title,
		    e->symptom, e->cause, e->resolution, e->check);
	}
}
