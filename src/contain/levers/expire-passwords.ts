// expire-passwords: the password still works once, then must be changed (Sentry's choice, seed 004). The login
// core answers `must-change-password`. Reversible: undo clears the flag where the job set it and nothing since
// (neither a password change nor a later job).
import type { ChangeRecord, UserLever } from "../lever.ts";
import { countUsers, inIds } from "./common.ts";

function nullableNumber(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}

export const expirePasswords = {
  kind: "user",
  name: "expire-passwords",
  description: "Force a password change at next login (the old password works once)",
  async dryRun(db, scope) {
    const { users, sample } = await countUsers(db, scope, (q) => q.where("password_must_change", "=", 0).where("password_hash", "is not", null));
    return { counts: { users }, sample };
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0 }, changes: [] };
    // Only rows not yet expired change: a re-run (or an overlapping job) changes nothing twice.
    const rows = await trx
      .updateTable("users")
      .set({ password_must_change: 1 })
      .where(inIds(ctx.dialect, "id", userIds))
      .where("password_must_change", "=", 0)
      .where("password_hash", "is not", null)
      .returning(["id", "password_changed_at"])
      .execute();
    return {
      counts: { users: rows.length },
      // The password's change time is recorded with the flag: undo can tell the expiry this job set from one set
      // after the user changed the password since (by an administrator, say), which the flag alone cannot.
      changes: rows.map((r) => ({ userId: r.id, entity: "", before: { password_must_change: 0 }, after: { password_must_change: 1, password_changed_at: nullableNumber(r.password_changed_at) } })),
    };
  },
  async undo(trx, changes) {
    const restored: ChangeRecord[] = [];
    const skipped: ChangeRecord[] = [];
    for (const c of changes) {
      // Still expired, and the password not changed since → restore. Otherwise leave alone. A record written
      // before the change time was recorded falls back to the flag alone.
      let q = trx.updateTable("users").set({ password_must_change: 0 }).where("id", "=", c.userId).where("password_must_change", "=", 1);
      const changedAt = (c.after as { password_changed_at?: number | null }).password_changed_at;
      if (changedAt !== undefined) q = changedAt === null ? q.where("password_changed_at", "is", null) : q.where("password_changed_at", "=", changedAt);
      (Number((await q.executeTakeFirst()).numUpdatedRows) === 1 ? restored : skipped).push(c);
    }
    return { restored, skipped };
  },
} satisfies UserLever;
