// unlink-sso: deletes the users' linked SSO identities with their stored provider tokens (Sentry, seed 004).
// Not reversible: the provider tokens are gone on purpose; users link again through the provider.
import { forecastNotices, queueNotices, type UserLever } from "../lever.ts";
import { inIds, SAMPLE_SIZE } from "./common.ts";

// Users a dry run reads per page while looking for refused addresses: memory stays bounded at any scope size.
const PAGE = 5000;

export const unlinkSSO = {
  kind: "user",
  name: "unlink-sso",
  description: "Delete linked SSO identities and their stored provider tokens",
  async dryRun(db, scope, ctx) {
    const q = db.selectFrom("identities").where("identities.user_id", "in", scope);
    const row = await q.select((eb) => [eb.fn.count<number>("identities.user_id").distinct().as("users"), eb.fn.countAll<number>().as("identities")]).executeTakeFirst();
    const sample = await q.select("identities.user_id").distinct().orderBy("identities.user_id").limit(SAMPLE_SIZE).execute();
    // One notice per user who loses a linked identity, as the run queues them.
    const notices = await forecastNotices(ctx, PAGE, async (after) => {
      const rows = await db.selectFrom("users").select(["users.id", "users.email"]).where("users.id", "in", scope)
        .where((eb) => eb.exists(eb.selectFrom("identities").select("identities.user_id").whereRef("identities.user_id", "=", "users.id")))
        .where("users.id", ">", after).orderBy("users.id").limit(PAGE).execute();
      return rows.map((r) => ({ id: r.id, email: r.email, notices: 1 }));
    });
    const counts = { users: Number(row?.users ?? 0), identities: Number(row?.identities ?? 0), ...notices.counts };
    return { counts, sample: sample.map((r) => r.user_id), ...(notices.notes.length > 0 ? { notes: notices.notes } : {}) };
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0, identities: 0, noticesQueued: 0, noticesRefused: 0 }, changes: [] };
    const rows = await trx.deleteFrom("identities").where(inIds(ctx.dialect, "user_id", userIds)).returning("user_id").execute();
    const ids = [...new Set(rows.map((r) => r.user_id))];
    // The owner is told a way into their account was removed (ASVS 6.3.7), in the batch's transaction: the notice
    // exists if and only if the identity was deleted, and a re-run deletes nothing and so queues nothing.
    const owners = ids.length === 0 ? [] : await trx.selectFrom("users").select(["id", "email"]).where(inIds(ctx.dialect, "id", ids)).orderBy("id").execute();
    const told = await queueNotices(trx, ctx, owners.map((u) => ({ id: u.id, email: u.email, events: [{ type: "sign-in-provider-removed" as const }] })));
    return { counts: { users: ids.length, identities: rows.length, noticesQueued: told.queued, noticesRefused: told.refused }, changes: [], events: told.events };
  },
} satisfies UserLever;
