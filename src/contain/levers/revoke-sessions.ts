// revoke-sessions: every browser session in scope stops working at once, then the rows are deleted in batches
// (Drupal.org and Sentry logged everyone out, seeds 000 and 004). The revocation stamp is raised before the job
// is recorded — the global stamp for --all, one per user otherwise — so the next request with any in-scope
// session is refused (ASVS 7.4.1: termination is enforced server-side) while deletion proceeds at its own pace.
// Not reversible: a revoked session is meant to stay dead; users log in again.
import { sql, type Kysely } from "kysely";
import { bulkDeleteSQLite } from "../../store/sqlite-bulk-delete.ts";
import type { LeverContext, UserLever } from "../lever.ts";
import { countOwnedRows, countsOf, endSessions, ROWS_FINGERPRINT, sameRows } from "./common.ts";
import { openSessionSQL } from "../../accounts/sessions/open-rule.ts";
import { issuedBefore, revokedBefore } from "../../accounts/sessions/revocation.ts";
import { raiseScopeStamps, stampsToWrite } from "./stamps.ts";
import type { Schema } from "../../store/schema.ts";

export const revokeSessions = {
  kind: "user",
  name: "revoke-sessions",
  description: "End every session in scope at once (revocation stamp), then delete the session rows",
  async dryRun(db, scope, ctx) {
    // The sessions open when the stamps would be raised (the job's creation), by the session policy in force.
    const { users, rows, sample } = await countOwnedRows(db, "sessions", scope, { before: revokedBefore(ctx.at), epoch: ctx.epoch, open: { now: ctx.at, limits: ctx.sessionPolicy } });
    return { counts: { users, sessions: rows, stamps: await stampsToWrite(db, scope, ctx) }, sample };
  },
  async begin(trx, scope, ctx) {
    return { stamps: await raiseScopeStamps(trx, scope, ctx, "sessions") };
  },
  async apply(trx, userIds, ctx) {
    // Exactly the sessions the stamp refuses: a login after the job started (once the user reset a password,
    // say) is left alone. Idempotent: a re-run finds the rows already gone. Counted are those the stamp ended, open
    // when it was raised (the job's time), as the dry run counted them; the rows already over go with them.
    const counts = await endSessions(trx, ctx.dialect, userIds, { before: revokedBefore(ctx.at), epoch: ctx.epoch }, { now: ctx.at, limits: ctx.sessionPolicy });
    return { counts, changes: [] };
  },
  async countAll(db, ctx) {
    // SQLite: the sessions the step ends and their users, counted before its transaction (outside the write lock:
    // at a million users, two million sessions, counting their distinct users took 3 to 7 s), with every row the step
    // will delete (`refused`) and their fingerprint (ROWS_FINGERPRINT). The step checks both against the rows it
    // deletes: a write committed in between (a session deleted, one dated before the job by a clock stepped back, or
    // both at once) makes it count again, in its transaction.
    // PostgreSQL counts in its DELETE (row locks only).
    return ctx.dialect === "sqlite" ? countEnded(db, ctx) : null;
  },
  async applyAll(trx, ctx, counted) {
    const refused = issuedBefore(revokedBefore(ctx.at), ctx.epoch);
    // Counted, as in apply: the sessions open at the job's time by the session policy in force (1 or 0 per row).
    const open = openFlag(ctx);
    // Every user's sessions created up to the job's millisecond: for an --all scope the same rows the batches
    // would delete (a session older than the job belongs to a user who existed when the scope was recorded).
    // Pre-login sessions (no user) are not in any scope and stay. docs/decisions/0005-bulk-containment-on-sqlite.md.
    if (ctx.dialect === "postgres") {
      // One DELETE, the statement an operator would type: it reads the table in storage order, where deleting
      // by user reads it at random; it takes row locks only, so no session check ever waits for it.
      const { rows } = await sql<{ sessions: string; users: string }>`
        with gone as (delete from sessions where user_id is not null and ${refused} returning user_id, ${open} as open)
        select coalesce(sum(open), 0) as sessions, count(distinct case when open = 1 then user_id end) as users from gone`.execute(trx);
      return { users: Number(rows[0]?.users ?? 0), sessions: Number(rows[0]?.sessions ?? 0) };
    }
    // SQLite: the open sessions and their users were counted before the step (countAll); they stand if the rows the
    // rebuild deletes are the rows counted then (sameRows), else they are counted again here, before the rebuild.
    let counts = counted;
    await bulkDeleteSQLite(trx, "sessions", sql`user_id is not null and ${refused}`, {
      describe: ROWS_FINGERPRINT,
      async beforeDelete(doomed, described) {
        if (!sameRows(counts, countsOf({ ...described, refused: doomed }), "refused")) counts = await countEnded(trx, ctx);
      },
    });
    return { users: Number(counts?.["users"] ?? 0), sessions: Number(counts?.["sessions"] ?? 0) };
  },
} satisfies UserLever;

/**
 * The sessions the stamps refuse that were open at the job's time, and their users (what the step reports as ended);
 * `refused`: every row the stamps refuse, open or not (what the step deletes), and those rows' ROWS_FINGERPRINT.
 */
async function countEnded(db: Kysely<Schema>, ctx: LeverContext): Promise<Record<string, number>> {
  const open = openFlag(ctx);
  const { rows } = await sql<Record<string, unknown>>`
    select sum(${open}) as sessions, count(distinct case when ${open} = 1 then user_id end) as users, count(*) as refused, ${ROWS_FINGERPRINT}
    from sessions where user_id is not null and ${issuedBefore(revokedBefore(ctx.at), ctx.epoch)}`.execute(db);
  return countsOf(rows[0]);
}

/** 1 for a session open at the job's time by the session policy in force, else 0 (what the lever counts as ended). */
function openFlag(ctx: LeverContext) {
  return sql<number>`case when ${openSessionSQL(ctx.at, ctx.sessionPolicy)} then 1 else 0 end`;
}
