// demote-inactive-admins: users holding a role with an administrative permission and no login for N days
// (never logged in: counted from account creation) lose those roles — Drupal.org's lesson (seed 000). Reversible.
import type { Kysely } from "kysely";
import { ADMINISTRATIVE } from "../../accounts/roles/permissions.ts";
import type { ChangeRecord, LeverContext, UserLever } from "../lever.ts";
import { DAY_MS, inIds, SAMPLE_SIZE } from "./common.ts";
import type { Schema } from "../../store/schema.ts";

function adminRoles(db: Kysely<Schema>) {
  return db.selectFrom("role_permissions").select("role_permissions.role").where("role_permissions.permission", "in", [...ADMINISTRATIVE]);
}

function cutoff(ctx: LeverContext): number {
  return ctx.at - ctx.options.inactiveDays * DAY_MS;
}

function inactiveGrants(db: Kysely<Schema>, ctx: LeverContext) {
  return db
    .selectFrom("user_roles")
    .innerJoin("users", "users.id", "user_roles.user_id")
    .where("user_roles.role", "in", adminRoles(db))
    .where((eb) => eb(eb.fn.coalesce("users.last_login_at", "users.created_at"), "<", cutoff(ctx)));
}

export const demoteInactiveAdmins = {
  kind: "user",
  name: "demote-inactive-admins",
  description: "Remove administrative roles from users with no login for --inactive-days (default 90)",
  async dryRun(db, scope, ctx) {
    const q = inactiveGrants(db, ctx).where("users.id", "in", scope);
    const row = await q.select((eb) => [eb.fn.count<number>("users.id").distinct().as("users"), eb.fn.countAll<number>().as("grants")]).executeTakeFirst();
    const sample = await q.select("users.id").distinct().orderBy("users.id").limit(SAMPLE_SIZE).execute();
    return { counts: { users: Number(row?.users ?? 0), roleGrants: Number(row?.grants ?? 0) }, sample: sample.map((r) => r.id) };
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0, roleGrants: 0 }, changes: [] };
    // One DELETE … RETURNING: only grants this statement removed are counted and recorded. A select followed by
    // deletes recorded a grant an administrator revoked in between (PostgreSQL, READ COMMITTED: the delete then
    // removed nothing), and the undo handed the revoked role back.
    const grants = await trx
      .deleteFrom("user_roles")
      .where(inIds(ctx.dialect, "user_roles.user_id", userIds))
      .where("user_roles.role", "in", adminRoles(trx))
      .where("user_roles.user_id", "in", (eb) => eb.selectFrom("users").select("users.id")
        .where(inIds(ctx.dialect, "users.id", userIds))
        .where((w) => w(w.fn.coalesce("users.last_login_at", "users.created_at"), "<", cutoff(ctx))))
      .returning(["user_roles.user_id", "user_roles.role", "user_roles.granted_at", "user_roles.granted_by"])
      .execute();
    grants.sort((a, b) => (a.user_id === b.user_id ? (a.role < b.role ? -1 : 1) : a.user_id < b.user_id ? -1 : 1));
    return {
      counts: { users: new Set(grants.map((g) => g.user_id)).size, roleGrants: grants.length },
      changes: grants.map((g) => ({ userId: g.user_id, entity: g.role, before: { granted_at: Number(g.granted_at), granted_by: g.granted_by }, after: null })),
    };
  },
  async undo(trx, changes) {
    const restored: ChangeRecord[] = [];
    const skipped: ChangeRecord[] = [];
    for (const c of changes) {
      // Re-granted since, or the role or user no longer exists: leave alone and report.
      const present = await trx.selectFrom("user_roles").select("user_id").where("user_id", "=", c.userId).where("role", "=", c.entity).executeTakeFirst();
      const role = await trx.selectFrom("roles").select("name").where("name", "=", c.entity).executeTakeFirst();
      const user = await trx.selectFrom("users").select("id").where("id", "=", c.userId).executeTakeFirst();
      if (present || !role || !user) {
        skipped.push(c);
        continue;
      }
      await trx.insertInto("user_roles").values({ user_id: c.userId, role: c.entity, granted_at: c.before["granted_at"] as number, granted_by: c.before["granted_by"] as string }).execute();
      restored.push(c);
    }
    return { restored, skipped };
  },
} satisfies UserLever;
