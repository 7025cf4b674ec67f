// Revocation stamps raised by containment: the one global row when the scope is --all, else one row per user.
// A stamp makes every session (or API token) created before it invalid on its next use, so revocation takes
// effect at once whatever the number of rows; the levers delete or mark the rows afterwards, in batches.
import { sql, type Kysely } from "kysely";
import { GLOBAL_SCOPE, keepLaterStamp, laterStampValue, nextEpoch, raiseStamp, revokedBefore, userScope } from "../../accounts/sessions/revocation.ts";
import type { LeverContext, ScopeQuery } from "../lever.ts";
import type { Schema } from "../../store/schema.ts";

/** Stamp families: browser sessions use "global"/"user:<id>", API tokens "tokens:global"/"tokens:user:<id>". */
export type StampFamily = "sessions" | "tokens";

function prefix(family: StampFamily): string {
  return family === "tokens" ? "tokens:" : "";
}

/** The stamp scope of one user in a family, e.g. "tokens:user:usr_…". */
export function stampScope(family: StampFamily, userId: string): string {
  return prefix(family) + userScope(userId);
}

// Moves stamps forward only (CASE instead of max()/GREATEST(): the same SQL on both dialects), so a later
// job is never undone by an earlier one that raises the same stamp after it.
const FORWARD_ONLY = sql`on conflict (scope) do update set
  not_before = ${laterStampValue("not_before")}, not_before_epoch = ${laterStampValue("not_before_epoch")}, updated_at = excluded.updated_at`;

/**
 * Raises the family's stamps for the whole scope to `revokedBefore(ctx.at)` and the job's epoch: the global row
 * for --all (one write), else one row per user of the scope in one INSERT … SELECT. Returns how many stamp rows
 * were written.
 */
export async function raiseScopeStamps(trx: Kysely<Schema>, scope: ScopeQuery, ctx: LeverContext, family: StampFamily): Promise<number> {
  if (ctx.allUsers) {
    await raiseStamp(trx, prefix(family) + GLOBAL_SCOPE, revokedBefore(ctx.at), ctx.at, ctx.epoch);
    return 1;
  }
  // "where true": SQLite needs it to parse ON CONFLICT after INSERT … SELECT. Casts: PostgreSQL cannot infer
  // the type of a bare parameter in a select list.
  const result = await sql`insert into revocation_stamps (scope, not_before, updated_at, not_before_epoch)
    select cast(${prefix(family) + "user:"} as text) || s.id, cast(${revokedBefore(ctx.at)} as bigint), cast(${ctx.at} as bigint), cast(${ctx.epoch} as bigint) from (${scope}) as s where true
    ${FORWARD_ONLY}`.execute(trx);
  return Number(result.numAffectedRows ?? 0n);
}

/**
 * Raises the family's stamp of each listed user to `revokedBefore(at)` and a new epoch (a batch at a time).
 * Returns the epoch: rows issued before it are the ones now refused.
 */
export async function raiseUserStamps(trx: Kysely<Schema>, userIds: readonly string[], at: number, family: StampFamily): Promise<number> {
  if (userIds.length === 0) return 0;
  const epoch = await nextEpoch(trx);
  // 4 parameters a row: 1000 rows stay far below both dialects' bound-parameter limits.
  for (let i = 0; i < userIds.length; i += 1000) {
    const rows = userIds.slice(i, i + 1000).map((id) => ({ scope: stampScope(family, id), not_before: revokedBefore(at), updated_at: at, not_before_epoch: epoch }));
    await trx.insertInto("revocation_stamps").values(rows)
      .onConflict(keepLaterStamp)
      .execute();
  }
  return epoch;
}

/** How many stamp rows `raiseScopeStamps` would write (dry run): 1 for --all, else the users in scope. */
export async function stampsToWrite(db: Kysely<Schema>, scope: ScopeQuery, ctx: LeverContext): Promise<number> {
  if (ctx.allUsers) return 1;
  const row = await db.selectFrom("users").where("users.id", "in", scope).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
  return Number(row?.n ?? 0);
}
