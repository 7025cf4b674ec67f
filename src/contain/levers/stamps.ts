// Revocation stamps raised by containment: the one global row when the scope is --all, else one row per user.
// A stamp makes every session (or API token) created before it invalid on its next use, so revocation takes
// effect at once whatever the number of rows; the levers delete or mark the rows afterwards, in batches.
import { sql, type Kysely } from "kysely";
import { GLOBAL_SCOPE, keepLaterStamp, laterStampValue, nextEpoch, raiseStamp, revokedBefore, userScope } from "../../accounts/sessions/revocation.ts";
import type { LeverContext, ScopeQuery } from "../lever.ts";
import type { DialectName } from "../../store/database.ts";
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

/**
 * Makes sure the global session stamp's row exists, committed, before a job that raises stamps over --all takes its
 * epoch: not_before 0 and epoch 0, which refuse nothing. PostgreSQL only. A credential a session makes locks that row
 * FOR SHARE to wait for such a raise (holdSessionForNewCredential), and a row one transaction is inserting is
 * invisible to another's lock: the very first --all raise of a deployment would go unwaited for. With the row already
 * committed, not finding it means no raise can have taken its epoch yet (docs/decisions/0018-credentials-wait-for-containment.md).
 * In a statement of its own, outside the raise's transaction. Idempotent: an existing row is left as it is.
 */
export async function ensureGlobalStamps(db: Kysely<Schema>, dialect: DialectName, at: number): Promise<void> {
  if (dialect !== "postgres") return;
  await db.insertInto("revocation_stamps").values({ scope: GLOBAL_SCOPE, not_before: 0, updated_at: at, not_before_epoch: 0 })
    .onConflict((oc) => oc.column("scope").doNothing()).execute();
}

/**
 * In a job's first transaction, before it takes its epoch and raises its stamps: locks what a credential being made
 * by a session of the scope waits for (PostgreSQL; SQLite's write lock already orders them). For a list of users, their
 * account rows, FOR NO KEY UPDATE in id order as every batch takes them (a login, a token mint or an enrolment takes
 * the row FOR SHARE); for --all, the global session stamp's row (ensureGlobalStamps wrote it), FOR UPDATE. Taken before
 * the epoch, so that a credential holding the lock first commits with a smaller epoch than the job's, which its stamps
 * then refuse, and one that waits for the lock reads the session again once the stamps are committed. Row locks, held
 * in the tuples: no slot of the server's lock table, whatever the scope's size. The count keeps the ids on the server.
 */
export async function holdScopeForRaise(trx: Kysely<Schema>, scope: ScopeQuery, ctx: LeverContext): Promise<void> {
  if (ctx.dialect !== "postgres") return;
  if (ctx.allUsers) {
    await sql`select count(*) from (select 1 from revocation_stamps where scope = ${GLOBAL_SCOPE} for update) as held`.execute(trx);
    return;
  }
  await sql`select count(*) from (select 1 from users where id in (${scope}) order by id for no key update) as held`.execute(trx);
}

/** How many stamp rows `raiseScopeStamps` would write (dry run): 1 for --all, else the users in scope. */
export async function stampsToWrite(db: Kysely<Schema>, scope: ScopeQuery, ctx: LeverContext): Promise<number> {
  if (ctx.allUsers) return 1;
  const row = await db.selectFrom("users").where("users.id", "in", scope).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
  return Number(row?.n ?? 0);
}
