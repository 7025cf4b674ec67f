// Helpers the levers share: a sample of ids for dry runs, a batch of ids as one condition, and the spend of an
// account's open links (a batch of rows as one derived table is src/store/values-query.ts).
import { sql, type Expression, type Kysely, type SqlBool } from "kysely";
import type { DialectName } from "../../store/database.ts";
import { targetsKey, type LeverContext, type ScopeQuery } from "../lever.ts";
import type { Schema } from "../../store/schema.ts";
import { issuedBefore } from "../../accounts/sessions/revocation.ts";
import { openSessionSQL, type SessionLimits } from "../../accounts/sessions/open-rule.ts";

/**
 * SQLite, for a whole-table step (applyAll) and the count its lever made before it (countAll): what the rows the step
 * changes are beyond their number — the sums of their rowids and of their created_at (folded under a prime, so that
 * the sum stays an exact integer at any size). countAll selects it beside its counts; the step selects it again in its
 * transaction over the rows it is about to change and keeps the counts only when number and sums agree (sameRows). A
 * write committed in between that keeps the number — one session signed out, another dated before the job by a node
 * whose clock is behind, for a user who had none — changes the sums, so the step counts again (was: the number alone,
 * and the job reported the users of the rows counted, not of the rows it ended). Unseen only when the new row took the
 * old one's rowid (it had the largest) in the same millisecond; what the step changes is never in question, only the
 * counts of its report.
 */
export const ROWS_FINGERPRINT = sql`coalesce(sum(rowid), 0) as fp_rowids, coalesce(sum(created_at % 1000000007), 0) as fp_stamps`;

/** An aggregate row's values as numbers, under their aliases (a sum over no rows, null, is 0). */
export function countsOf(row: Record<string, unknown> | undefined): Record<string, number> {
  return Object.fromEntries(Object.entries(row ?? {}).map(([key, value]) => [key, Number(value ?? 0)]));
}

/** Whether `counted` (countAll's, with ROWS_FINGERPRINT and the number of rows under `rowsKey`) describes the rows `now` describes. */
export function sameRows(counted: Record<string, number> | undefined, now: Record<string, number>, rowsKey: string): counted is Record<string, number> {
  if (counted === undefined) return false;
  return counted[rowsKey] === now[rowsKey] && counted["fp_rowids"] === now["fp_rowids"] && counted["fp_stamps"] === now["fp_stamps"];
}

/** How many ids a dry run shows: enough to recognise the scope, few enough to read. */
export const SAMPLE_SIZE = 5;

export const DAY_MS = 86_400_000;

/** Counts the users of `scope` matching `narrow`, and samples a few of their ids. */
export async function countUsers(
  db: Kysely<Schema>,
  scope: ScopeQuery,
  narrow: (q: ReturnType<typeof base>) => ReturnType<typeof base>,
): Promise<{ users: number; sample: string[] }> {
  const q = narrow(base(db, scope));
  const row = await q.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
  const sample = await q.select("users.id").orderBy("users.id").limit(SAMPLE_SIZE).execute();
  return { users: Number(row?.n ?? 0), sample: sample.map((r) => r.id) };
}

function base(db: Kysely<Schema>, scope: ScopeQuery) {
  return db.selectFrom("users").where("users.id", "in", scope);
}

/**
 * `column IN (ids)` for a batch of ids. On PostgreSQL one array parameter (`= any($1::text[])`): a batch of 5000
 * ids as 5000 bound parameters costs PostgreSQL more to parse and plan than the rows cost to change.
 *
 * @example
 * trx.updateTable("users").set(…).where(inIds(ctx.dialect, "id", userIds))
 */
export function inIds(dialect: DialectName, column: string, ids: readonly string[]): Expression<SqlBool> {
  if (ids.length === 0) return sql<SqlBool>`1 = 0`;
  return dialect === "postgres" ? sql<SqlBool>`${sql.ref(column)} = any(${[...ids]}::text[])` : sql<SqlBool>`${sql.ref(column)} in (${sql.join(ids)})`;
}

/** Splits `changes` by whether their user is in `restoredIds` (what an undo statement returned). */
export function partitionRestored<C extends { userId: string }>(changes: readonly C[], restoredIds: ReadonlySet<string>): { restored: C[]; skipped: C[] } {
  const restored: C[] = [];
  const skipped: C[] = [];
  for (const c of changes) (restoredIds.has(c.userId) ? restored : skipped).push(c);
  return { restored, skipped };
}

/** Tables keyed by a user_id column that levers count and clear. */
export type UserRowTable = "sessions" | "api_tokens" | "mfa_totp" | "mfa_recovery_codes" | "webauthn_credentials" | "identities";

/**
 * The moment and the session policy (LeverContext.sessionPolicy, the one in force) by which a lever judges which
 * sessions are open: what it counts as ended, dry or real.
 */
export interface OpenAt {
  now: number;
  limits: SessionLimits;
}

/**
 * Counts the rows of `table` belonging to users of `scope` (optionally narrowed, e.g. tokens not yet
 * revoked), the distinct users holding them, and samples a few of those users. With `open` (sessions only), only
 * the sessions open then by the one rule sessions.list and validate judge by (openSessionSQL): one over by its stored
 * expiry, or by the lifetime or idle timeout in force, is no session a containment ends.
 */
export async function countOwnedRows(
  db: Kysely<Schema>,
  table: UserRowTable,
  scope: ScopeQuery,
  options: { unrevoked?: boolean; before?: number; epoch?: number; open?: OpenAt } = {},
): Promise<{ users: number; rows: number; sample: string[] }> {
  let q = db.selectFrom(table).where(`${table}.user_id`, "in", scope);
  if (options.unrevoked) q = q.where("revoked_at" as never, "is", null);
  if (options.before !== undefined) q = q.where(issuedBefore(options.before, options.epoch ?? 0));
  if (options.open !== undefined) q = q.where(openSessionSQL(options.open.now, options.open.limits, { table }));
  const row = await q.select((eb) => [eb.fn.count<number>(`${table}.user_id`).distinct().as("users"), eb.fn.countAll<number>().as("rows")]).executeTakeFirst();
  const sample = await q.select(`${table}.user_id`).distinct().orderBy(`${table}.user_id`).limit(SAMPLE_SIZE).execute();
  return { users: Number(row?.users ?? 0), rows: Number(row?.rows ?? 0), sample: sample.map((r) => (r as { user_id: string }).user_id) };
}

/**
 * Deletes the sessions of `userIds` that a stamp of `before` and `epoch` refuses (issuedBefore), in the caller's batch
 * transaction, and says how many of them were open at `open.now`, and of how many users: what the lever ended, as its
 * dry run counted it (countOwnedRows with `open`). The rows already over go too: they are dead, and would only wait
 * for maintenance's purge.
 *
 * @example
 * const ended = await endSessions(trx, ctx.dialect, ids, { before: revokedBefore(ctx.now), epoch }, { now: ctx.now, limits: ctx.sessionPolicy });
 */
export async function endSessions(
  trx: Kysely<Schema>, dialect: DialectName, userIds: readonly string[], refused: { before: number; epoch: number }, open: OpenAt,
): Promise<{ users: number; sessions: number }> {
  if (userIds.length === 0) return { users: 0, sessions: 0 };
  const rows = await trx.deleteFrom("sessions").where(inIds(dialect, "user_id", userIds)).where(issuedBefore(refused.before, refused.epoch))
    .returning(["user_id", sql<number>`case when ${openSessionSQL(open.now, open.limits)} then 1 else 0 end`.as("open")]).execute();
  const ended = rows.filter((r) => Number(r.open) === 1);
  return { users: new Set(ended.map((r) => r.user_id)).size, sessions: ended.length };
}

/** How many links a spend of `spendOpenLinks` ended, per kind. */
export interface LinksSpent {
  resetLinks: number;
  emailChangeLinks: number;
}

/**
 * Spends every open (unused) password-reset and email-change link of `userIds` at `now`, in the caller's batch
 * transaction, and says how many of each: what invalidate-passwords and require-mfa-reenrolment end with the credential
 * they take away. A link was asked for under the old credentials (a reset link is a sign-up link too, for a taken
 * address: the same row), and whoever kept one would use it after the containment. The caller takes the accounts' link
 * locks before the batch's first write (the lever's `touchesLinks`). One statement per kind, whatever the batch's size.
 * `only` narrows it to the links asked at or before `askedBy` that are still unexpired at `now` (a job's closing check:
 * the links an earlier batch left).
 *
 * @example
 * const spent = await spendOpenLinks(trx, ctx.dialect, ids, ctx.now); // { resetLinks: 1, emailChangeLinks: 0 }
 */
export async function spendOpenLinks(trx: Kysely<Schema>, dialect: DialectName, userIds: readonly string[], now: number, only?: { askedBy: number }): Promise<LinksSpent> {
  if (userIds.length === 0) return { resetLinks: 0, emailChangeLinks: 0 };
  const open = openLinkOf(dialect, userIds, now, only);
  const email = await trx.updateTable("email_change_tokens").set({ used_at: now }).where(open).executeTakeFirst();
  const reset = await trx.updateTable("password_reset_tokens").set({ used_at: now }).where(open).executeTakeFirst();
  return { resetLinks: Number(reset.numUpdatedRows), emailChangeLinks: Number(email.numUpdatedRows) };
}

/**
 * The users of `userIds` holding a link spendOpenLinks would spend with the same arguments: for a caller that locks
 * their accounts first, or leaves some of them out.
 */
export async function openLinkOwners(trx: Kysely<Schema>, dialect: DialectName, userIds: readonly string[], now: number, only?: { askedBy: number }): Promise<string[]> {
  if (userIds.length === 0) return [];
  const open = openLinkOf(dialect, userIds, now, only);
  const email = await trx.selectFrom("email_change_tokens").select("user_id").where(open).execute();
  const reset = await trx.selectFrom("password_reset_tokens").select("user_id").where(open).execute();
  return [...new Set([...email, ...reset].map((r) => r.user_id))];
}

/** An open link of `userIds`, on either link table (the same columns); `only` as in spendOpenLinks. */
function openLinkOf(dialect: DialectName, userIds: readonly string[], now: number, only?: { askedBy: number }): Expression<SqlBool> {
  const open = sql<SqlBool>`${inIds(dialect, "user_id", userIds)} and used_at is null`;
  return only === undefined ? open : sql<SqlBool>`${open} and created_at <= ${only.askedBy} and expires_at > ${now}`;
}

/**
 * The open links of the users `owners` selects, as `spendOpenLinks` would spend them now (the same condition): a dry
 * run's forecast. Two counts over the link tables' user indexes, at any scope size.
 */
export async function countOpenLinks(db: Kysely<Schema>, owners: ScopeQuery): Promise<LinksSpent> {
  const [reset, email] = await Promise.all([
    db.selectFrom("password_reset_tokens").where("password_reset_tokens.user_id", "in", owners).where("password_reset_tokens.used_at", "is", null)
      .select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst(),
    db.selectFrom("email_change_tokens").where("email_change_tokens.user_id", "in", owners).where("email_change_tokens.used_at", "is", null)
      .select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst(),
  ]);
  return { resetLinks: Number(reset?.n ?? 0), emailChangeLinks: Number(email?.n ?? 0) };
}

/**
 * The live API tokens (not revoked, not expired at `at`) of the users of `scope`: what a job without revoke-tokens
 * leaves working (pairingNotes). One count over the tokens' user index, at any scope size.
 */
export async function countLiveTokens(db: Kysely<Schema>, scope: ScopeQuery, at: number): Promise<number> {
  const row = await db.selectFrom("api_tokens").where("api_tokens.user_id", "in", scope).where("api_tokens.revoked_at", "is", null)
    .where((eb) => eb.or([eb("api_tokens.expires_at", "is", null), eb("api_tokens.expires_at", ">", at)]))
    .select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
  return Number(row?.n ?? 0);
}

/**
 * Among `userIds`, the targets of `lever` the job recorded at its creation (UserLever.targets, under targetsKey): a
 * query of their `user_id`. For a lever's batch when ctx.targetsRecorded says the job recorded them.
 *
 * A target is recorded under its user's number in the job's scope (job.ts), so in a batch (ctx.seqOf) the lowest and
 * highest of the batch's numbers bound the read through the key (job_id, seq) to the batch's own stretch of the list.
 * Without the bound each batch read every target of the job to find its thousand: quadratic in the scope (100,000
 * users: ~4 s of invalidate-passwords' ~24 s; a million: a hundred times that). The rows are the same either way.
 */
export function recordedTargets(db: Kysely<Schema>, lever: string, userIds: readonly string[], ctx: Pick<LeverContext, "jobId" | "dialect" | "seqOf">) {
  const query = db.selectFrom("contain_job_users").select("contain_job_users.user_id")
    .where("contain_job_users.job_id", "=", targetsKey(ctx.jobId, lever))
    .where(inIds(ctx.dialect, "contain_job_users.user_id", userIds));
  const range = seqRange(userIds, ctx.seqOf);
  return range === null ? query : query.where("contain_job_users.seq", ">=", range.low).where("contain_job_users.seq", "<=", range.high);
}

/** The lowest and highest of `userIds`' numbers in the job, or null when there are none or one is not known. */
function seqRange(userIds: readonly string[], seqOf: ReadonlyMap<string, number> | undefined): { low: number; high: number } | null {
  if (!seqOf || userIds.length === 0) return null;
  let low = Infinity;
  let high = -Infinity;
  for (const id of userIds) {
    const seq = seqOf.get(id);
    if (seq === undefined) return null;
    if (seq < low) low = seq;
    if (seq > high) high = seq;
  }
  return { low, high };
}
