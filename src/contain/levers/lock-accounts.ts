// lock-accounts: sets locked_at/locked_reason; the login core and every session check refuse locked accounts.
// Reversible: the undo lifts the lock, and with it raises each user's session stamp, so a session an attacker
// held before the lock stays dead (as after an unlock through the API); the owner signs in again.
import type { ChangeRecord, UserLever } from "../lever.ts";
import { countUsers, inIds } from "./common.ts";
import { raiseUserStamps } from "./stamps.ts";

export const lockAccounts = {
  kind: "user",
  name: "lock-accounts",
  description: "Lock the accounts (no login until unlocked or undone)",
  async dryRun(db, scope) {
    const { users, sample } = await countUsers(db, scope, (q) => q.where("locked_at", "is", null));
    return { counts: { users }, sample };
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0 }, changes: [] };
    const before = await trx.selectFrom("users").select(["id", "locked_reason"]).where(inIds(ctx.dialect, "id", userIds)).where("locked_at", "is", null).execute();
    if (before.length === 0) return { counts: { users: 0 }, changes: [] };
    await trx
      .updateTable("users")
      .set({ locked_at: ctx.at, locked_reason: ctx.options.lockReason })
      .where(inIds(ctx.dialect, "id", before.map((r) => r.id)))
      .where("locked_at", "is", null)
      .execute();
    return {
      counts: { users: before.length },
      changes: before.map((r) => ({
        userId: r.id, entity: "",
        before: { locked_at: null, locked_reason: r.locked_reason },
        after: { locked_at: ctx.at, locked_reason: ctx.options.lockReason },
      })),
    };
  },
  async undo(trx, changes, ctx) {
    const restored: ChangeRecord[] = [];
    const skipped: ChangeRecord[] = [];
    for (const c of changes) {
      const after = c.after as { locked_at: number; locked_reason: string };
      // Restored only if the lock is still exactly the one this job set (not unlocked and re-locked since).
      const r = await trx
        .updateTable("users")
        .set({ locked_at: null, locked_reason: (c.before["locked_reason"] as string | null) ?? null })
        .where("id", "=", c.userId)
        .where("locked_at", "=", after.locked_at)
        .where("locked_reason", "=", after.locked_reason)
        .executeTakeFirst();
      (Number(r.numUpdatedRows) === 1 ? restored : skipped).push(c);
    }
    await raiseUserStamps(trx, restored.map((c) => c.userId), ctx.now, "sessions");
    return { restored, skipped };
  },
} satisfies UserLever;
