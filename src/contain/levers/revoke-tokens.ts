// revoke-tokens: every API token in scope stops working at once, then each row is marked revoked in batches
// (SourceLair revoked its GitHub tokens, seed 001). The token stamp ("tokens:global" for --all, else
// "tokens:user:<id>") is raised before the job is recorded; the token library refuses any token created before
// it, so revocation does not wait for the batches. Rows keep their history (revoked_at), they are not deleted. An
// --all job marks them in one step (applyAll), as revoke-sessions deletes its rows.
// Not reversible: a token that may have leaked is never trusted again; owners issue new ones.
import { sql, type Kysely } from "kysely";
import type { LeverContext, UserLever } from "../lever.ts";
import type { Schema } from "../../store/schema.ts";
import { countOwnedRows, countsOf, inIds, ROWS_FINGERPRINT, sameRows } from "./common.ts";
import { issuedBefore, revokedBefore } from "../../accounts/sessions/revocation.ts";
import { raiseScopeStamps, stampsToWrite } from "./stamps.ts";

export const revokeTokens = {
  kind: "user",
  name: "revoke-tokens",
  description: "Revoke every API token in scope at once (revocation stamp), then mark the token rows revoked",
  async dryRun(db, scope, ctx) {
    const { users, rows, sample } = await countOwnedRows(db, "api_tokens", scope, { unrevoked: true, before: revokedBefore(ctx.at), epoch: ctx.epoch });
    return { counts: { users, tokens: rows, stamps: await stampsToWrite(db, scope, ctx) }, sample };
  },
  async begin(trx, scope, ctx) {
    return { stamps: await raiseScopeStamps(trx, scope, ctx, "tokens") };
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0, tokens: 0 }, changes: [] };
    // Only tokens the stamp refuses and not yet revoked: a re-run changes nothing twice, and a token issued
    // after the job started keeps working.
    const rows = await trx.updateTable("api_tokens").set({ revoked_at: ctx.at })
      .where(inIds(ctx.dialect, "user_id", userIds)).where("revoked_at", "is", null).where(issuedBefore(revokedBefore(ctx.at), ctx.epoch))
      .returning("user_id").execute();
    return { counts: { users: new Set(rows.map((r) => r.user_id)).size, tokens: rows.length }, changes: [] };
  },
  async countAll(db, ctx) {
    // SQLite: the tokens the step revokes and their owners, counted before its transaction (outside the write lock),
    // with those rows' fingerprint (ROWS_FINGERPRINT). The step reads the number and fingerprint again in its
    // transaction, just before its UPDATE: a write committed in between (another job or the owner revoking one, a token
    // dated before the job by a clock stepped back, or both at once) makes it count again there. PostgreSQL counts in
    // its UPDATE (row locks only).
    return ctx.dialect === "sqlite" ? countUnrevoked(db, ctx) : null;
  },
  async applyAll(trx, ctx, counted) {
    // Every unrevoked token created up to the job (a token belongs to a user, and one older than the job to a user who
    // existed when the scope was recorded — unless a clock stepped back dated a later one before it, which the global
    // stamp refuses all the same): for an --all scope the rows the batches would mark, in one UPDATE — the statement an
    // operator would type — instead of a thousand lookups by user.
    const refused = issuedBefore(revokedBefore(ctx.at), ctx.epoch);
    if (ctx.dialect === "postgres") {
      const { rows } = await sql<{ tokens: string; users: string }>`
        with done as (update api_tokens set revoked_at = ${ctx.at} where revoked_at is null and ${refused} returning user_id)
        select count(*) as tokens, count(distinct user_id) as users from done`.execute(trx);
      return { users: Number(rows[0]?.users ?? 0), tokens: Number(rows[0]?.tokens ?? 0) };
    }
    // The rows the UPDATE will mark, as they stand under the write lock: the counts made before the step stand if they
    // are the rows counted then (sameRows); else they are counted again, here, so that they are the UPDATE's own.
    const { rows: [now] } = await sql<Record<string, unknown>>`
      select count(*) as tokens, ${ROWS_FINGERPRINT} from api_tokens where revoked_at is null and ${refused}`.execute(trx);
    const counts = sameRows(counted, countsOf(now), "tokens") ? counted : await countUnrevoked(trx, ctx);
    const marked = Number((await trx.updateTable("api_tokens").set({ revoked_at: ctx.at }).where("revoked_at", "is", null).where(refused).executeTakeFirst()).numUpdatedRows);
    return { users: Number(counts["users"] ?? 0), tokens: marked };
  },
} satisfies UserLever;

/** The unrevoked tokens the job's stamp refuses, and their owners (what the --all step reports as revoked), with those rows' ROWS_FINGERPRINT. */
async function countUnrevoked(db: Kysely<Schema>, ctx: LeverContext): Promise<Record<string, number>> {
  const { rows } = await sql<Record<string, unknown>>`
    select count(distinct user_id) as users, count(*) as tokens, ${ROWS_FINGERPRINT}
    from api_tokens where revoked_at is null and ${issuedBefore(revokedBefore(ctx.at), ctx.epoch)}`.execute(db);
  return countsOf(rows[0]);
}
