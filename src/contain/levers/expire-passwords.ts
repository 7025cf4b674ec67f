// expire-passwords: the password still works once, then must be changed (Sentry's choice, seed 004). The login
// core answers `must-change-password`. Reversible: undo clears the flag where the job set it and nothing since.
import type { ChangeRecord, UserLever } from "../lever.ts";
import { countUsers, inIds } from "./common.ts";

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
      .returning("id")
      .execute();
    return {
      counts: { users: rows.length },
      changes: rows.map((r) => ({ userId: r.id, entity: "", before: { password_must_change: 0 }, after: { password_must_change: 1 } })),
    };
  },
  async undo(trx, changes) {
    const restored: ChangeRecord[] = [];
    const skipped: ChangeRecord[] = [];
    const ids = changes.map((c) => c.userId);
    // Still expired → restore. Not expired any more (the user changed the password since) → leave alone.
    const back = new Set(
      ids.length
        ? (await trx.updateTable("users").set({ password_must_change: 0 }).where("id", "in", ids).where("password_must_change", "=", 1).returning("id").execute()).map((r) => r.id)
        : [],
    );
    for (const c of changes) (back.has(c.userId) ? restored : skipped).push(c);
    return { restored, skipped };
  },
} satisfies UserLever;
