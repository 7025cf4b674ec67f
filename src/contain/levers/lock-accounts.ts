// lock-accounts: sets locked_at/locked_reason; the login core and every session check refuse locked accounts.
// Reversible: the undo lifts the lock, and with it raises each user's session stamp, so a session an attacker
// held before the lock stays dead (as after an unlock through the API); the owner signs in again.
import { sql } from "kysely";
import type { UserLever } from "../lever.ts";
import { countUsers, inIds, partitionRestored } from "./common.ts";
import { valuesQuery } from "../../store/values-query.ts";
import { raiseUserStamps } from "./stamps.ts";

export const lockAccounts = {
  kind: "user",
  name: "lock-accounts",
  description: "Lock the accounts (no login until unlocked or undone)",
  async dryRun(db, scope) {
    const { users, sample } = await countUsers(db, scope, (q) => q.where("locked_at", "is", null));
    return { counts: { users }, sample };
  },
  // Those who can act at all (a permission through a role), not yet locked: their changes in flight finish first. Only
  // them: a right-to-act lock per account of a 5000-account batch would fill PostgreSQL's lock table.
  async stopsActing(trx, userIds, ctx) {
    if (userIds.length === 0) return [];
    const rows = await trx.selectFrom("user_roles")
      .innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
      .innerJoin("users", "users.id", "user_roles.user_id")
      .select("user_roles.user_id").distinct()
      .where(inIds(ctx.dialect, "user_roles.user_id", userIds)).where("users.locked_at", "is", null)
      .execute();
    return rows.map((r) => r.user_id);
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0 }, changes: [] };
    const before = await trx.selectFrom("users").select(["id", "locked_reason"]).where(inIds(ctx.dialect, "id", userIds)).where("locked_at", "is", null).execute();
    if (before.length === 0) return { counts: { users: 0 }, changes: [] };
    // Only the rows this UPDATE changed count: on PostgreSQL a lock set by someone else between the select and
    // the update (READ COMMITTED) is theirs, not this job's, and must not be recorded as ours.
    const locked = new Set((await trx
      .updateTable("users")
      .set({ locked_at: ctx.at, locked_reason: ctx.options.lockReason })
      .where(inIds(ctx.dialect, "id", before.map((r) => r.id)))
      .where("locked_at", "is", null)
      .returning("id")
      .execute()).map((r) => r.id));
    const changed = before.filter((r) => locked.has(r.id));
    return {
      counts: { users: changed.length },
      changes: changed.map((r) => ({
        userId: r.id, entity: "",
        before: { locked_at: null, locked_reason: r.locked_reason },
        after: { locked_at: ctx.at, locked_reason: ctx.options.lockReason },
      })),
    };
  },
  async undo(trx, changes, ctx) {
    if (changes.length === 0) return { restored: [], skipped: [] };
    // Restored only if the lock is still exactly the one this job set (not unlocked and re-locked since), each user
    // getting back its own earlier reason. One statement for the batch.
    const rows = changes.map((c) => {
      const after = c.after as { locked_at: number; locked_reason: string };
      return [c.userId, after.locked_at, after.locked_reason, (c.before["locked_reason"] as string | null) ?? null];
    });
    const columns = [{ name: "id", type: "text" }, { name: "locked_at", type: "bigint" }, { name: "locked_reason", type: "text" }, { name: "reason_before", type: "text" }] as const;
    const { rows: done } = await sql<{ id: string }>`
      with v as materialized (${valuesQuery(ctx.dialect, columns, rows)})
      update users set locked_at = null, locked_reason = v.reason_before from v
      where users.id = v.id and users.locked_at = v.locked_at and users.locked_reason = v.locked_reason
      returning users.id`.execute(trx);
    const result = partitionRestored(changes, new Set(done.map((r) => r.id)));
    await raiseUserStamps(trx, result.restored.map((c) => c.userId), ctx.now, "sessions");
    return result;
  },
} satisfies UserLever;
