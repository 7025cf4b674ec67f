// expire-passwords: the password still works once, then must be changed (Sentry's choice, seed 004). The login
// core answers `must-change-password`. Each owner is told when the expiry is applied (security.password-expired).
// Reversible: undo clears the flag where the job set it and nothing since (neither a password change nor a later job).
import { sql } from "kysely";
import { forecastNotices, queueNotices, type UserLever } from "../lever.ts";
import { countUsers, inIds, partitionRestored } from "./common.ts";
import { valuesQuery } from "../../store/values-query.ts";

// Users a dry run reads per page while looking for refused addresses: memory stays bounded at any scope size.
const PAGE = 5000;

/** The audit event of an administrator's require-password-change (the API's), which undo leaves standing. */
export const PASSWORD_CHANGE_REQUIRED = "user.password-change-required";

function nullableNumber(value: number | string | null): number | null {
  return value === null ? null : Number(value);
}

export const expirePasswords = {
  kind: "user",
  name: "expire-passwords",
  description: "Force a password change at next login (the old password works once)",
  async dryRun(db, scope, ctx) {
    const { users, sample } = await countUsers(db, scope, (q) => q.where("password_must_change", "=", 0).where("password_hash", "is not", null));
    // One notice per user whose password the run expires, as the run queues them.
    const notices = await forecastNotices(ctx, PAGE, async (after) => {
      const rows = await db.selectFrom("users").select(["users.id", "users.email"]).where("users.id", "in", scope)
        .where("password_must_change", "=", 0).where("password_hash", "is not", null)
        .where("users.id", ">", after).orderBy("users.id").limit(PAGE).execute();
      return rows.map((r) => ({ id: r.id, email: r.email, notices: 1 }));
    });
    return { counts: { users, ...notices.counts }, sample, ...(notices.notes.length > 0 ? { notes: notices.notes } : {}) };
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0, noticesQueued: 0, noticesRefused: 0 }, changes: [] };
    // Only rows not yet expired change: a re-run (or an overlapping job) changes nothing twice.
    const rows = await trx
      .updateTable("users")
      .set({ password_must_change: 1 })
      .where(inIds(ctx.dialect, "id", userIds))
      .where("password_must_change", "=", 0)
      .where("password_hash", "is not", null)
      .returning(["id", "email", "password_changed_at"])
      .execute();
    // The old password works once more, and whoever holds it (a cracked hash) may sign in first and choose the next
    // one: the owner is told now (ASVS 6.3.7), not at that sign-in. In the batch's transaction, so the notice exists
    // if and only if the expiry was set; a re-run expires nobody twice and so queues nothing twice (the notice is keyed
    // by job and user as well).
    const told = await queueNotices(trx, ctx, rows.map((r) => ({ id: r.id, email: r.email, events: [{ type: "password-expired" as const }] })));
    return {
      counts: { users: rows.length, noticesQueued: told.queued, noticesRefused: told.refused },
      events: told.events,
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
