// expire-passwords: the password still works once, then must be changed (Sentry's choice, seed 004). The login
// core answers `must-change-password`. Reversible: undo clears the flag where the job set it and nothing since
// (neither a password change nor a later job).
import { sql } from "kysely";
import type { UserLever } from "../lever.ts";
import { countUsers, inIds, partitionRestored, valuesQuery } from "./common.ts";

/** The audit event of an administrator's require-password-change (the API's), which undo leaves standing. */
export const PASSWORD_CHANGE_REQUIRED = "user.password-change-required";

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
  async undo(trx, changes, ctx) {
    if (changes.length === 0) return { restored: [], skipped: [] };
    // Still expired, and the password not changed since → restore; otherwise leave alone. A record written before
    // the change time was recorded (checked = 0) falls back to the flag alone. One statement for the batch.
    // An administrator who required a password change since the job (even on an account the job had expired)
    // made the expiry theirs: it stays. Found through the (type, at) index: few such events since the job.
    const retaken = new Set((await trx.selectFrom("audit_events").select("subject").where("type", "=", PASSWORD_CHANGE_REQUIRED)
      .where("at", ">=", ctx.undoOf.at).where(inIds(ctx.dialect, "subject", changes.map((c) => c.userId))).execute()).map((e) => e.subject));
    const rows = changes.filter((c) => !retaken.has(c.userId)).map((c) => {
      const changedAt = (c.after as { password_changed_at?: number | null }).password_changed_at;
      return [c.userId, changedAt ?? null, changedAt === undefined ? 0 : 1];
    });
    if (rows.length === 0) return partitionRestored(changes, new Set());
    const v = valuesQuery(ctx.dialect, [{ name: "id", type: "text" }, { name: "changed_at", type: "bigint" }, { name: "checked", type: "integer" }], rows);
    const { rows: done } = await sql<{ id: string }>`
      with v as materialized (${v}) update users set password_must_change = 0 from v
      where users.id = v.id and users.password_must_change = 1
        and (v.checked = 0 or users.password_changed_at is not distinct from v.changed_at)
      returning users.id`.execute(trx);
    return partitionRestored(changes, new Set(done.map((r) => r.id)));
  },
} satisfies UserLever;
