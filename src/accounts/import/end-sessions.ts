// Ends the sessions of an account an import batch disables or gives another password hash (ASVS 7.4.2, 7.4.3),
// inside the batch's transaction: the batch commits with those sessions ended, or rolls back with neither done.
import type { Kysely } from "kysely";
import type { Schema } from "../../store/schema.ts";
import { raiseStamp, revokedBefore, userScope } from "../sessions/revocation.ts";

/**
 * Refuses every session of `userId` created up to `now` and deletes its rows. The stamp is what makes the end
 * final: `validate` refuses by it on the next request, whatever rows a DELETE could not see (a login or rotation
 * committing meanwhile) and after the account is enabled again. Without it a disabled account's sessions were only
 * suspended by its status, and an import that re-enabled it revived every one of them.
 *
 * @example
 * await endSessions(trx, user.id, clock.now()); // in the transaction that disables the account
 */
export async function endSessions(trx: Kysely<Schema>, userId: string, now: number): Promise<void> {
  await raiseStamp(trx, userScope(userId), revokedBefore(now), now);
  await trx.deleteFrom("sessions").where("user_id", "=", userId).execute();
}

/**
 * Spends the account's pending password-reset and email-change links, as a password change or reset through the
 * service does: a new password is the owner's (or the operator's) remedy, and a link asked for before it — perhaps
 * by whoever held the old one — must not undo it or move the account to another mailbox.
 *
 * @example
 * await voidPendingLinks(trx, user.id, clock.now()); // in the transaction that replaces the password hash
 */
export async function voidPendingLinks(trx: Kysely<Schema>, userId: string, now: number): Promise<void> {
  await trx.updateTable("password_reset_tokens").set({ used_at: now }).where("user_id", "=", userId).where("used_at", "is", null).execute();
  await trx.updateTable("email_change_tokens").set({ used_at: now }).where("user_id", "=", userId).where("used_at", "is", null).execute();
}
