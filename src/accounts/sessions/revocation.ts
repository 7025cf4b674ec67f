// Revocation stamps: one row per scope ('global' or 'user:<id>') holding a time before which every session
// of that scope was created is refused. A containment job stamps first — every session in scope is dead on
// its next request — and deletes rows afterwards at its own pace.
import { sql, type Kysely } from "kysely";
import type { Schema } from "../../store/schema.ts";

export const GLOBAL_SCOPE = "global";

/**
 * The revocation bound of an action taken at `at`: everything created up to and including that millisecond is
 * refused, so a session or token issued in the action's millisecond, just before it, does not survive. One issued
 * in that millisecond after it is refused too: harmless, its owner logs in again.
 */
export function revokedBefore(at: number): number {
  return at + 1;
}

/** The stamp scope of one user. */
export function userScope(userId: string): string {
  return `user:${userId}`;
}

/**
 * Moves a scope's stamp forward to `notBefore`; never backwards, so two jobs racing cannot un-revoke what
 * the later one revoked. Returns the stamp now in force.
 */
export async function raiseStamp(db: Kysely<Schema>, scope: string, notBefore: number, now: number): Promise<number> {
  await db
    .insertInto("revocation_stamps")
    .values({ scope, not_before: notBefore, updated_at: now })
    .onConflict((oc) =>
      oc.column("scope").doUpdateSet({
        // CASE instead of max()/GREATEST(): the same SQL on SQLite and PostgreSQL.
        not_before: sql<number>`CASE WHEN excluded.not_before > revocation_stamps.not_before THEN excluded.not_before ELSE revocation_stamps.not_before END`,
        updated_at: now,
      }),
    )
    .execute();
  const row = await db.selectFrom("revocation_stamps").select("not_before").where("scope", "=", scope).executeTakeFirstOrThrow();
  return Number(row.not_before);
}

/** The stamps of the global scope and of `userId`, 0 when absent. */
export async function readStamps(db: Kysely<Schema>, userId: string): Promise<{ global: number; user: number }> {
  const rows = await db.selectFrom("revocation_stamps").select(["scope", "not_before"]).where("scope", "in", [GLOBAL_SCOPE, userScope(userId)]).execute();
  let global = 0;
  let user = 0;
  for (const r of rows) {
    if (r.scope === GLOBAL_SCOPE) global = Number(r.not_before);
    else user = Number(r.not_before);
  }
  return { global, user };
}

/**
 * Ends every session of `userId` created up to `now`, with `executor` (a caller's transaction when the end must
 * commit with another change, such as an import batch disabling the account): the user's stamp first, then the
 * rows. The stamp is what makes the end final: validation refuses by it on the next request, whatever rows the
 * DELETE could not see (a login or rotation committing meanwhile), and after the account is enabled again.
 * Returns how many rows were deleted.
 *
 * @example
 * await endUserSessions(trx, user.id, clock.now()); // in the transaction that disables the account
 */
export async function endUserSessions(executor: Kysely<Schema>, userId: string, now: number): Promise<number> {
  await raiseStamp(executor, userScope(userId), revokedBefore(now), now);
  const result = await executor.deleteFrom("sessions").where("user_id", "=", userId).executeTakeFirst();
  return Number(result.numDeletedRows);
}
