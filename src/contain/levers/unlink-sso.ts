// unlink-sso: deletes the users' linked SSO identities with their stored provider tokens (Sentry, seed 004).
// Not reversible: the provider tokens are gone on purpose; users link again through the provider.
import type { UserLever } from "../lever.ts";
import { inIds, SAMPLE_SIZE } from "./common.ts";

export const unlinkSSO = {
  kind: "user",
  name: "unlink-sso",
  description: "Delete linked SSO identities and their stored provider tokens",
  async dryRun(db, scope) {
    const q = db.selectFrom("identities").where("identities.user_id", "in", scope);
    const row = await q.select((eb) => [eb.fn.count<number>("identities.user_id").distinct().as("users"), eb.fn.countAll<number>().as("identities")]).executeTakeFirst();
    const sample = await q.select("identities.user_id").distinct().orderBy("identities.user_id").limit(SAMPLE_SIZE).execute();
    return { counts: { users: Number(row?.users ?? 0), identities: Number(row?.identities ?? 0) }, sample: sample.map((r) => r.user_id) };
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0, identities: 0 }, changes: [] };
    const rows = await trx.deleteFrom("identities").where(inIds(ctx.dialect, "user_id", userIds)).returning("user_id").execute();
    return { counts: { users: new Set(rows.map((r) => r.user_id)).size, identities: rows.length }, changes: [] };
  },
} satisfies UserLever;
