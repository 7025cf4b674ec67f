// Revocation stamps: one row per scope ('global' or 'user:<id>') holding a time before which every session
// of that scope was created is refused, and an epoch: a value of one counter kept in the database
// (revocation_counter), which each raise "now" increments. Every session, API token and email-change link records
// the counter's value when issued; one issued before the raise holds a smaller value whatever the clock of the node
// that issued it said, so a clock running ahead cannot keep a session alive (docs/decisions/0009-revocation-epochs.md).
// A containment job stamps first — every session in scope is dead on its next request — and deletes rows
// afterwards at its own pace.
import { sql, type Kysely, type OnConflictBuilder, type OnConflictUpdateBuilder, type RawBuilder } from "kysely";
import { executorDialect, lockKeyOf, type DialectName } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { sessionErrors } from "./errors.ts";

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

/** The SQL text of the counter's last value taken: what a session, API token or link issued now records. */
export const CURRENT_EPOCH_SQL = "(SELECT value FROM revocation_counter WHERE id = 1)";

/** The counter's last value taken, as an expression for an INSERT (`issued_epoch: currentEpoch()`). */
export function currentEpoch(): RawBuilder<number> {
  return sql.raw<number>(CURRENT_EPOCH_SQL);
}

/**
 * Takes the next epoch and returns it: the epoch of a raise. In `executor`, the raise's transaction when there is
 * one. On SQLite the UPDATE orders the raise among all writes (one writer at a time). On PostgreSQL the counter is
 * a sequence behind a view (migration 16): the value is taken at once and no lock is held until commit, so raises
 * never wait for each other; a row committed before the raise began read a smaller value, and one issued after it
 * committed reads this one or a larger.
 */
export async function nextEpoch(executor: Kysely<Schema>): Promise<number> {
  const row = await executor.updateTable("revocation_counter").set({ value: sql<number>`value + 1` }).where("id", "=", 1).returning("value").executeTakeFirst();
  // The row is written by migration 16 and never deleted: without it no raise could be made safely.
  if (!row) throw new Error("revocation_counter has no row: the database was altered (migration 16 writes it)");
  return Number(row.value);
}

/** What a scope's stamps refuse: rows created before `time` (by the clocks that wrote them), or issued before `epoch`. */
export interface StampInForce {
  time: number;
  epoch: number;
}

/**
 * The rows of a sessions, api_tokens or email_change_tokens table that a stamp of `time` and `epoch` refuses, as
 * SQL for a WHERE clause (the table's columns unqualified): what refusedBy says of one row.
 */
export function issuedBefore(time: number, epoch: number): RawBuilder<boolean> {
  return sql<boolean>`(created_at < ${time} or issued_epoch < ${epoch})`;
}

/** The counter's last value plus one: the epoch a raise made now would take (for a dry run's counts). */
export async function epochOfARaiseNow(db: Kysely<Schema>): Promise<number> {
  const row = await db.selectFrom("revocation_counter").select("value").where("id", "=", 1).executeTakeFirst();
  return Number(row?.value ?? 0) + 1;
}

/** True when a row created at `createdAt` and issued at `issuedEpoch` is refused by `stamp`. */
export function refusedBy(stamp: StampInForce, createdAt: number, issuedEpoch: number): boolean {
  return createdAt < stamp.time || issuedEpoch < stamp.epoch;
}

/**
 * The value an upsert of a stamp keeps in `column`: the later of the stored and the new, so two raises racing cannot
 * un-revoke what the later one revoked. CASE instead of max()/GREATEST(): the same SQL on SQLite and PostgreSQL.
 */
export function laterStampValue(column: "not_before" | "not_before_epoch"): RawBuilder<number> {
  const stored = sql.ref(`revocation_stamps.${column}`);
  const offered = sql.ref(`excluded.${column}`);
  return sql<number>`CASE WHEN ${offered} > ${stored} THEN ${offered} ELSE ${stored} END`;
}

/** The ON CONFLICT of a stamp insert built with Kysely: time and epoch each move forward only (laterStampValue). */
export function keepLaterStamp(oc: OnConflictBuilder<Schema, "revocation_stamps">): OnConflictUpdateBuilder<Schema, "revocation_stamps"> {
  return oc.column("scope").doUpdateSet({
    not_before: laterStampValue("not_before"),
    not_before_epoch: laterStampValue("not_before_epoch"),
    updated_at: sql<number>`excluded.updated_at`,
  });
}

/**
 * Moves a scope's stamp forward to `notBefore` and to `epoch` (default "next": a new epoch, so every row issued
 * until now is refused whatever clock wrote it; 0 for a bound in the past, which only the time expresses); never
 * backwards, so two jobs racing cannot un-revoke what the later one revoked. Returns the stamp time now in force.
 */
export async function raiseStamp(db: Kysely<Schema>, scope: string, notBefore: number, now: number, epoch: number | "next" = "next"): Promise<number> {
  const notBeforeEpoch = epoch === "next" ? await nextEpoch(db) : epoch;
  await db
    .insertInto("revocation_stamps")
    .values({ scope, not_before: notBefore, updated_at: now, not_before_epoch: notBeforeEpoch })
    .onConflict(keepLaterStamp)
    .execute();
  const row = await db.selectFrom("revocation_stamps").select("not_before").where("scope", "=", scope).executeTakeFirstOrThrow();
  return Number(row.not_before);
}

/** What several stamp rows refuse together (an absent row's columns are null): the later time, the larger epoch. */
export function stampOf(rows: ReadonlyArray<{ time: unknown; epoch: unknown }>): StampInForce {
  return {
    time: rows.reduce((max, r) => Math.max(max, Number(r.time ?? 0)), 0),
    epoch: rows.reduce((max, r) => Math.max(max, Number(r.epoch ?? 0)), 0),
  };
}

/** What the stamps of `scopes` (a global one and a user's) refuse together. */
export async function readStamps(db: Kysely<Schema>, scopes: readonly string[]): Promise<StampInForce> {
  const rows = await db.selectFrom("revocation_stamps").select(["not_before", "not_before_epoch"]).where("scope", "in", scopes).execute();
  return stampOf(rows.map((r) => ({ time: r.not_before, epoch: r.not_before_epoch })));
}

/** How a transaction takes the user's session turn (takeUserSessionsTurn). */
export interface SessionTurnOptions {
  /**
   * The transaction stores a new credential of the account (a session at login or rotation, or, through
   * holdSessionForNewCredential, a second factor or an API token a session makes): the account's row is locked
   * FOR SHARE instead of FOR KEY SHARE. A share lock conflicts with the FOR NO KEY UPDATE (and UPDATE) that a
   * containment batch or job creation holds on the rows of its accounts until it commits, so the new credential waits
   * for the containment and its next statement sees what it did (a password invalidated, a session stamp raised, a
   * session deleted). A row lock lives in the tuple, not in the server's lock table: a batch of 5000 accounts costs
   * no lock slots (docs/decisions/0018-credentials-wait-for-containment.md). Same cost as FOR KEY SHARE for the
   * transaction taking it.
   */
  newCredential?: boolean;
}

/**
 * Waits, until the end of the transaction `trx`, for every other transaction that creates or ends sessions of
 * `userId` (a login, a rotation, an end of all sessions): the user's session turn. PostgreSQL (READ COMMITTED): a
 * DELETE of a user's sessions cannot see a session row inserted by a transaction not yet committed, and that session
 * would outlive the change the DELETE answers (a password reset, ASVS 7.4.3). Taken in turn, the other transaction
 * either committed first (its row is deleted) or runs after this one committed (and sees the new password). A no-op
 * on SQLite, where a write transaction holds the database's one write lock. A transaction may take it again.
 *
 * The account's row is share-locked first (FOR KEY SHARE, as the session row's foreign key would lock it; FOR SHARE
 * with `newCredential`): a change of its email or username (FOR UPDATE) that then ends the sessions, such as an email
 * confirmation, and a rotation holding the turn while its session insert waited for that row deadlocked (a 500 for one
 * of them). Taken this way round, whoever holds the turn holds the row too. So a transaction changes the account's
 * row before it takes the turn, never after (as the callers of endUserSessions do): with `newCredential` a change
 * after it would also wait for every other login of the account holding the row FOR SHARE, while they wait for the turn.
 */
export async function takeUserSessionsTurn(dialect: DialectName, trx: Kysely<Schema>, userId: string, options: SessionTurnOptions = {}): Promise<void> {
  if (dialect !== "postgres") return;
  const strength = options.newCredential ? sql`FOR SHARE` : sql`FOR KEY SHARE`;
  // The advisory lock of serialiseTransactions (store/database.ts), taken once the row is locked: the aggregate
  // yields its one row only after the subquery locked the account's (none for an account that is gone).
  await sql`SELECT pg_advisory_xact_lock(${lockKeyOf(`sessions:${userId}`)}) FROM (SELECT count(*) FROM (SELECT 1 FROM users WHERE id = ${userId} ${strength}) AS account) AS locked`.execute(trx);
}

/**
 * In the transaction that stores a credential a session makes (an API token it mints, a second factor it enrols):
 * waits for any containment of the account under way, then reads the session again, and throws the 401 of a refused
 * session (rolling the credential back) when it is gone, refused by a stamp, or its account disabled or locked.
 * The route checked the session when the request began; a job's batch (invalidate-passwords, require-mfa-reenrolment)
 * or its creation (revoke-sessions) may have ended it since without committing yet, and READ COMMITTED does not see
 * that: the credential would outlive the containment meant to cut its maker off (ASVS 7.4.1, 7.4.3).
 *
 * PostgreSQL: the user's session turn with the account's row FOR SHARE (waits for the batch or the job creation that
 * locked it), then the global session stamp's row FOR SHARE (waits for an --all revoke-sessions raising it; ADR 0018
 * says why after the credential's own row is written), then the read, in a statement of its own so that it sees what
 * they committed. SQLite: the read alone (the write lock already ordered everything). Call it after the credential's
 * row is written and before its audit event.
 *
 * @example
 * await tokens.create(userId, input, { within: async (trx) => { await holdSessionForNewCredential(trx, userId, sessionId); … } });
 */
export async function holdSessionForNewCredential(executor: Kysely<Schema>, userId: string, sessionId: string): Promise<void> {
  const dialect = executorDialect(executor);
  await takeUserSessionsTurn(dialect, executor, userId, { newCredential: true });
  await holdGlobalStamp(executor);
  const row = await executor
    .selectFrom("sessions as s")
    .innerJoin("users as u", "u.id", "s.user_id")
    .leftJoin("revocation_stamps as us", (join) => join.on("us.scope", "=", userScope(userId)))
    .leftJoin("revocation_stamps as g", (join) => join.on("g.scope", "=", GLOBAL_SCOPE))
    .select(["s.created_at", "s.issued_epoch", "u.status", "u.locked_at", "us.not_before as user_stamp", "g.not_before as global_stamp",
      "us.not_before_epoch as user_epoch", "g.not_before_epoch as global_epoch"])
    .where("s.id", "=", sessionId).where("s.user_id", "=", userId)
    .executeTakeFirst();
  if (!row) throw sessionErrors.refused("revoked");
  const stamp = stampOf([{ time: row.global_stamp, epoch: row.global_epoch }, { time: row.user_stamp, epoch: row.user_epoch }]);
  if (refusedBy(stamp, Number(row.created_at), Number(row.issued_epoch))) throw sessionErrors.refused("revoked");
  if (row.status !== "active") throw sessionErrors.refused("account-disabled");
  if (row.locked_at !== null) throw sessionErrors.refused("account-locked");
}

/**
 * PostgreSQL: locks the global session stamp's row FOR SHARE until the end of `executor`'s transaction, so that an
 * --all revoke-sessions job raising it (holdScopeForRaise holds it FOR UPDATE from before its epoch to its commit) is
 * waited for, and the transaction's next statement sees the stamp it raised. A no-op on SQLite (one writer at a time).
 * Call it after the new credential's row is written, then read the stamps in a statement of their own: the row is
 * absent until a first global raise, and only a credential whose epoch was read before this lock found it absent is
 * sure to be older than such a raise (docs/decisions/0018-credentials-wait-for-containment.md, "--all").
 */
export async function holdGlobalStamp(executor: Kysely<Schema>): Promise<void> {
  if (executorDialect(executor) !== "postgres") return;
  // Absent until a first global raise: ensureGlobalStamps (src/contain/levers/stamps.ts) writes it, committed, before
  // a job raising it takes its epoch, so its absence here means no such raise can refuse the credential yet.
  await sql`SELECT count(*) FROM (SELECT 1 FROM revocation_stamps WHERE scope = ${GLOBAL_SCOPE} FOR SHARE) AS global_stamp`.execute(executor);
}

/**
 * Ends every session of `userId` created up to `now`, with `executor` (a caller's transaction when the end must
 * commit with another change, such as an import batch disabling the account; without one, in a transaction of its
 * own): in the user's session turn (takeUserSessionsTurn), the user's stamp first, then the rows. The turn makes a
 * login or rotation in flight either commit before the DELETE (and be deleted) or wait for this commit (and then see
 * the change, such as a new password, that ended the sessions). The stamp is what makes the end final: validation
 * refuses by it on the next request, whatever rows the DELETE could not see, and after the account is enabled again.
 * Returns how many rows were deleted.
 *
 * On PostgreSQL the turn is held until `executor` commits; a caller that changes the account's row does so first.
 *
 * @example
 * await endUserSessions(trx, user.id, clock.now()); // in the transaction that disables the account
 */
export async function endUserSessions(executor: Kysely<Schema>, userId: string, now: number): Promise<number> {
  // The turn is a transaction's: outside one, it would end with its own statement.
  if (!executor.isTransaction) return executor.transaction().execute((trx) => endUserSessions(trx, userId, now));
  await takeUserSessionsTurn(executorDialect(executor), executor, userId);
  await raiseStamp(executor, userScope(userId), revokedBefore(now), now);
  const result = await executor.deleteFrom("sessions").where("user_id", "=", userId).executeTakeFirst();
  return Number(result.numDeletedRows);
}
