// An account's administrative state changes — lock, unlock, require a password change — each a conditional UPDATE so
// concurrent calls never double-apply; the caller writes its audit event in the same transaction. Used by /api/v1
// (src/http/api/users.ts) and the CLI (bulwark users unlock), which must not import each other.
import type { Kysely } from "kysely";
import { raiseStamp, revokedBefore, userScope } from "../sessions/revocation.ts";
import type { Schema } from "../../store/schema.ts";

/**
 * Locks an account (sessions and tokens of a locked account are refused). Returns `"locked"` when it was unlocked,
 * `"relocked"` when it was locked already. A lock that exists is made the caller's: its time becomes `now` and its
 * reason `reason` when one is given (`null` keeps the standing one). Without that, an administrator locking an account a
 * containment job holds locked changed nothing, and undoing the job — which lifts only a lock that is still exactly
 * its own — unlocked an account the administrator meant to keep locked. `null` when there is no such account.
 */
export async function lockUser(db: Kysely<Schema>, id: string, reason: string | null, now: number): Promise<"locked" | "relocked" | null> {
  const fresh = await db.updateTable("users").set({ locked_at: now, locked_reason: reason ?? DEFAULT_LOCK_REASON, updated_at: now }).where("id", "=", id).where("locked_at", "is", null).executeTakeFirst();
  if (Number(fresh.numUpdatedRows) === 1) return "locked";
  const taken = await db
    .updateTable("users")
    .set({ locked_at: now, updated_at: now, ...(reason !== null ? { locked_reason: reason } : {}) })
    .where("id", "=", id)
    .where("locked_at", "is not", null)
    .executeTakeFirst();
  return Number(taken.numUpdatedRows) === 1 ? "relocked" : null;
}

/** The reason recorded when an administrator locks an account without giving one. */
export const DEFAULT_LOCK_REASON = "locked by an administrator";

/**
 * Unlocks an account: the lock it lifted (its reason), or null when it was not locked. Every session from before the
 * unlock is refused from then on (the user's revocation stamp, raised in the same unit of work): whatever locked the
 * account — this API, a containment job — a session an attacker held before the lock does not come back with the unlock.
 * The lock is read and lifted together (the update applies only to the lock read, else it is read again): a reason
 * read before the caller's transaction named a lock another writer may have replaced since (an administrator's "keep
 * locked" over a containment lock), and the record then said the wrong lock was lifted.
 */
export async function unlockUser(db: Kysely<Schema>, id: string, now: number): Promise<{ reason: string | null } | null> {
  for (;;) {
    const lock = await db.selectFrom("users").select(["locked_at", "locked_reason"]).where("id", "=", id).executeTakeFirst();
    if (!lock || lock.locked_at === null) return null;
    const r = await db.updateTable("users").set({ locked_at: null, locked_reason: null, updated_at: now })
      .where("id", "=", id).where("locked_at", "=", lock.locked_at)
      .where((eb) => (lock.locked_reason === null ? eb("locked_reason", "is", null) : eb("locked_reason", "=", lock.locked_reason)))
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) continue; // locked again, or unlocked, since the read: read it again
    await raiseStamp(db, userScope(id), revokedBefore(now), now);
    return { reason: lock.locked_reason };
  }
}

/**
 * Makes the next login ask for a new password: `"required"` when it was not yet, `"retaken"` when it already was
 * (a containment job's expiry, say). Either way the caller audits `user.password-change-required`: undoing
 * expire-passwords leaves an expiry an administrator asked for after the job (see that lever's undo), as undoing a
 * lock leaves one an administrator made theirs. `null` when there is no such account.
 */
export async function requirePasswordChange(db: Kysely<Schema>, id: string, now: number): Promise<"required" | "retaken" | null> {
  const r = await db.updateTable("users").set({ password_must_change: 1, updated_at: now }).where("id", "=", id).where("password_must_change", "=", 0).executeTakeFirst();
  if (Number(r.numUpdatedRows) === 1) return "required";
  const taken = await db.updateTable("users").set({ updated_at: now }).where("id", "=", id).where("password_must_change", "=", 1).executeTakeFirst();
  return Number(taken.numUpdatedRows) === 1 ? "retaken" : null;
}
