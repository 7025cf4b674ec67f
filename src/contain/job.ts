// Containment jobs: create one (resolve the scope once into contain_job_users, run each lever's begin hook,
// audit), dry-run one (counts and samples, nothing written but an audit event), and build its stages.
import { sql, type Kysely } from "kysely";
import type { AuditInput } from "../audit/audit-log.ts";
import { epochOfARaiseNow, nextEpoch } from "../accounts/sessions/revocation.ts";
import { storedBatchSizeProblem, type Job, type RequestKey } from "../jobs/job-store.ts";
import { sessionPolicyOf, type ContainDeps, type Stage, type StepResult } from "./engine.ts";
import { containErrors } from "./errors.ts";
import { findLever, leverNames, pairingNotesByLever, levers as allLevers, targetsKey, type ChangeRecord, type GlobalLever, type Lever, type LeverContext, type LeverOptions, type PairingCounts, type ScopeQuery, type UserLever } from "./lever.ts";
import { registerBuiltinLevers } from "./levers/index.ts";
import { DEFAULT_EMAIL_CHANGE_WINDOW_DAYS } from "./levers/invalidate-passwords.ts";
import { checkRolesExist, checkSchemeKnown, describeScope, scopedUserIds, unmatchedIds, validateScope, type ScopeSpec, type UnmatchedIds } from "./scope.ts";
import type { DialectName } from "../store/database.ts";
import type { Schema } from "../store/schema.ts";
import { holdersAmong, LEFT_ALONE_EVENT, storedCreatorLacks } from "./outranked.ts";
import { actingActor, creatorCheck, creatorMustHold, creatorTokenOf, firstJobEvent, storedCreatorUser } from "./creator.ts";
import { ownLockOf } from "./creator-own-lock.ts";
import { countLiveTokens, inIds } from "./levers/common.ts";
import { requireMfaReenrolment, spendLinksLeftOpen } from "./levers/require-mfa-reenrolment.ts";
import { ensureGlobalStamps, holdScopeForRaise } from "./levers/stamps.ts";
import { lockManyAccountsLinks } from "../accounts/password-reset/link-lock.ts";
import { holdActingOfMany, holdRoleRemovals } from "../accounts/roles/role-store.ts";

export const CONTAIN_KIND = "contain";

// Users per batch: large enough that per-batch overhead (cursor, audit event, pages rewritten per commit) is
// small against the work, small enough to stay under both dialects' bound-parameter limits and keep write
// transactions short. SQLite has one write lock for the whole database, so its batches stay short (every
// login waits for the batch in progress); PostgreSQL locks rows only, and larger batches cut the job's time
// to about the direct statements' (bench/contain.ts, before the whole-table step and array parameters:
// 1.2× at 5000 against 3.7× at 1000).
export const DEFAULT_BATCH_SIZE = 1000;
export const DEFAULT_BATCH_SIZE_POSTGRES = 5000;
const MAX_BATCH_SIZE = 5000;

/**
 * Whether `n` is a batch size a job may run with: a whole number of users from 1 to MAX_BATCH_SIZE. Checked on the
 * request (checkRequest) and again on the spec read back from the job row before every run: 0 made the users stage
 * endless (Infinity batches), and a negative or non-numeric size gave it no batch at all, the job ending done with
 * nobody contained.
 */
export function isBatchSize(n: unknown): n is number {
  return typeof n === "number" && Number.isInteger(n) && n >= 1 && n <= MAX_BATCH_SIZE;
}

/** The stored spec's lever names, or the job's coded error when they are not a list of names. */
export function storedLevers(jobId: string, spec: { levers?: unknown }): string[] {
  const names = spec.levers;
  if (!Array.isArray(names) || !names.every((n) => typeof n === "string")) throw containErrors.corruptJob(jobId, "its stored spec's levers are not a list of lever names");
  return names;
}

/**
 * The levers whose targets the stored job recorded at its creation. Per lever: a job recorded when one boolean said so
 * (9b79943) recorded demote-inactive-admins' alone, and a lever that gained the hook since must not read its absent
 * targets as "nobody" (require-mfa-reenrolment, invalidate-passwords would then end nothing).
 */
export function storedTargetsOf(spec: { targetsOf?: unknown; targetsRecorded?: unknown }): ReadonlySet<string> {
  if (Array.isArray(spec.targetsOf)) return new Set(spec.targetsOf.filter((n): n is string => typeof n === "string"));
  return new Set(spec.targetsRecorded === true ? ["demote-inactive-admins"] : []);
}

/** The stored spec's batch size, or the job's coded error when the row holds anything else (fails closed). */
export function storedBatchSize(jobId: string, spec: { batchSize?: unknown }): number {
  const problem = storedBatchSizeProblem(spec.batchSize, MAX_BATCH_SIZE);
  if (problem !== null) throw containErrors.corruptJob(jobId, problem);
  return spec.batchSize as number;
}

export const DEFAULT_OPTIONS: LeverOptions = { inactiveDays: 90, lockReason: "containment", emailChangedWithinDays: DEFAULT_EMAIL_CHANGE_WINDOW_DAYS };

export interface ContainSpec {
  levers: string[];
  scope: Record<string, unknown>;
  options: LeverOptions;
  /** The job's action time: the timestamp every stamped row receives. */
  at: number;
  /** The revocation epoch its stamps were raised with (migration 16); absent when it raised none, or before. */
  epoch?: number;
  /**
   * The audit seq of its `contain.revocation.raised` event (LeverContext.createdSeq): what came after the job's
   * creation in the log's order. Absent when its levers have no begin, and for jobs recorded before it existed.
   */
  createdSeq?: number;
  batchSize: number;
  /** False when no mailer was configured: invalidate-passwords then queued no reset email. */
  mailer: boolean;
  /**
   * The live API tokens of the scope's accounts when the job was created, recorded when it pulls a password lever
   * without revoke-tokens: the job leaves them working, and its view says so (pairingNotes).
   */
  liveTokens?: number;
  /** --ids entries that named no user when the job was created: reported, since nobody was contained for them. */
  unmatchedIds?: UnmatchedIds;
  /**
   * The administrative permissions the job's creator (an API caller) lacked: every batch leaves alone the users who
   * hold one of them when it runs (src/contain/outranked.ts). Absent for a job created by an administrator or the
   * CLI, and for jobs recorded before it existed: those act on every user of their scope, as before.
   */
  creatorLacks?: string[];
  /**
   * The user id of the API caller who created the job, on whose authority its batches run: each one checks again, in
   * its transaction, that they may still act and hold contain.run and every administrative permission they held then
   * (src/contain/creator.ts), or the job stops, failed. Absent for a job created by the CLI, for jobs recorded before
   * it existed, and once an operator took the job over (resumeJob: `takenOverBy`).
   */
  creatorUser?: string;
  /**
   * The id of the API token the job was posted with, when its creator called with one: every batch checks too that it
   * has not been revoked since (src/contain/creator.ts), so a team that rotates a leaked token stops what it started.
   * Absent for a job posted from a browser session, by the CLI, and for jobs recorded before it existed.
   */
  creatorToken?: string;
  /** Who took the job over from a creator who no longer stood behind it (resumeJob), answering for its remaining batches. */
  takenOverBy?: string;
  /**
   * The levers whose targets (UserLever.targets) the job recorded with its scope (LeverContext.targetsRecorded, per
   * lever). Absent for a job without such a lever and for jobs recorded before it existed.
   */
  targetsOf?: string[];
  /**
   * Written by 9b79943 alone, before `targetsOf`: true when the job recorded its levers' targets, and then
   * demote-inactive-admins was the only lever with a `targets` hook (storedTargetsOf).
   */
  targetsRecorded?: boolean;
}

export interface ContainRequest {
  levers: string[];
  scope: ScopeSpec;
  options?: Partial<LeverOptions>;
  incidentId?: string | null;
  actor: string;
  batchSize?: number;
  /**
   * The administrative permissions the requester lacks (the API's outranking rule); recorded in the spec when not
   * empty, so that batches run later never act on a user who holds one by then. The CLI passes none.
   */
  creatorLacks?: readonly string[];
  /** The API caller creating the job (its user id): every batch checks again that they stand behind it (ContainSpec). The CLI passes none. */
  creatorUser?: string;
  /** The id of the API token the creator called with (ContainSpec.creatorToken); none for a session or the CLI. */
  creatorToken?: string;
  /** The Idempotency-Key of the API request (JobStore.create): a second job with the same key is refused by the database. */
  requestKey?: RequestKey | null;
}

/** Validates lever names and returns them in registry (execution) order, without duplicates. */
export function resolveLevers(names: string[]): string[] {
  registerBuiltinLevers();
  if (names.length === 0) throw containErrors.noLever(leverNames());
  for (const n of names) if (!findLever(n)) throw containErrors.unknownLever(n, leverNames());
  return allLevers().map((l) => l.name).filter((n) => names.includes(n));
}

/**
 * The lever a stored job names, in any process: the built-in levers are registered first, since a job resumed
 * by a fresh process (after a crash, or by the server at start-up) may be the first thing it runs.
 */
export function leverNamed(name: string): Lever {
  registerBuiltinLevers();
  const lever = findLever(name);
  if (!lever) throw containErrors.unknownLever(name, leverNames());
  return lever;
}

function options(partial: Partial<LeverOptions> | undefined): LeverOptions {
  const o = { ...DEFAULT_OPTIONS, ...partial };
  if (!Number.isInteger(o.inactiveDays) || o.inactiveDays < 1 || o.inactiveDays > 36_500) throw containErrors.badScope("--inactive-days must be a whole number of days between 1 and 36500");
  if (o.lockReason.length === 0 || o.lockReason.length > 200) throw containErrors.badScope("--lock-reason must be 1 to 200 characters");
  const days = o.emailChangedWithinDays;
  if (days !== undefined && (!Number.isInteger(days) || days < 0 || days > 36_500)) throw containErrors.badScope("--email-changed-within must be a whole number of days between 0 (only changes made after the job is created hold) and 36500");
  return o;
}

// Without createdSeq: a job's stages add it in their transaction (creationSeqOf); a dry run and the begins have none.
function leverContext(deps: ContainDeps, jobId: string, at: number, epoch: number, opts: LeverOptions, scope: { all?: unknown }): LeverContext {
  return { jobId, dialect: deps.database.dialect, at, now: at, epoch, options: opts, allUsers: scope.all === true, keyring: deps.keyring, notifier: deps.notifier,
    sessionPolicy: sessionPolicyOf(deps) };
}

/**
 * The stored spec's creation seq (ContainSpec.createdSeq), undefined for a job recorded without one. Anything but a
 * whole non-negative number fails closed with the job's coded error, as the batch size does: a value that compares as
 * no number would silently release the address changes made after the job from invalidate-passwords' hold.
 */
export function storedCreatedSeq(jobId: string, spec: { createdSeq?: unknown }): number | undefined {
  const seq = spec.createdSeq;
  if (seq === undefined) return undefined;
  if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq < 0) throw containErrors.corruptJob(jobId, "its stored spec's createdSeq is not an audit seq");
  return seq;
}

// The event of a job's creation, appended in the transaction that writes its row (every version since 175379f).
const JOB_CREATED_EVENT = "contain.job.created";

/**
 * The job's creation seq (LeverContext.createdSeq), read once per run in its first transaction: the spec's
 * (storedCreatedSeq), else the seq of the job's own `contain.job.created` event (subject: the job). A job recorded
 * before b2a2c1c has no createdSeq, but that event, appended in its creation's transaction after its begin spent the
 * email-change links, orders it in the log all the same: a change whose event comes later was confirmed after the
 * job was created, whatever time the confirming node's clock gave it. Without it, an old job decided by times
 * alone, and with --email-changed-within 0 a node a few seconds behind dated an intruder's change during the job
 * before it, and the containment's reset link went to the intruder's address (ASVS 6.4.3). Only with no such event
 * (a row written by hand) do times alone decide. One lookup on the log's (type, seq) index among the jobs' creation
 * events; the event never changes, so the run keeps it.
 */
function creationSeqOf(jobId: string, spec: { createdSeq?: unknown }): (trx: Kysely<Schema>) => Promise<number | undefined> {
  const stored = storedCreatedSeq(jobId, spec);
  let found: { seq: number | undefined } | undefined = stored === undefined ? undefined : { seq: stored };
  return async (trx) => {
    if (found === undefined) {
      // The first one: it commits with the job's row, so no event about the job can come before it.
      found = { seq: (await firstJobEvent(trx, jobId, [JOB_CREATED_EVENT]))?.seq };
    }
    return found.seq;
  };
}

/**
 * What a dry run and a real run both check before touching anything: the levers, the scope and options, that
 * every role exists, that the scheme is one we know, and which --ids entries name nobody.
 */
async function checkRequest(deps: ContainDeps, request: ContainRequest): Promise<{ names: string[]; opts: LeverOptions; unmatched: UnmatchedIds | null; batchSize: number }> {
  const names = resolveLevers(request.levers);
  validateScope(request.scope);
  const opts = options(request.options);
  // Checked for dry runs too: a dry run that accepts what the real run refuses says nothing about the real run.
  const batchSize = Math.trunc(request.batchSize ?? (deps.database.dialect === "postgres" ? DEFAULT_BATCH_SIZE_POSTGRES : DEFAULT_BATCH_SIZE));
  if (!isBatchSize(batchSize)) throw containErrors.badScope(`--batch-size must be between 1 and ${MAX_BATCH_SIZE}`);
  await checkRolesExist(deps.database.db, request.scope);
  await checkSchemeKnown(deps.database.db, request.scope);
  return { names, opts, batchSize, unmatched: await unmatchedIds(deps.database.db, deps.database.dialect, request.scope) };
}

export interface DryRunReport {
  dryRun: true;
  users: number;
  /** Present with --ids: the entries that name no user (they would be left out). */
  unmatchedIds?: UnmatchedIds;
  levers: Record<string, { counts: Record<string, number>; sample: string[]; notes?: string[] }>;
}

/** Adds `notes` to lever `name`'s report, when the report has that lever. */
function appendNotes(levers: DryRunReport["levers"], name: string, notes: readonly string[]): void {
  const lever = levers[name];
  if (lever !== undefined && notes.length > 0) lever.notes = [...(lever.notes ?? []), ...notes];
}

/** Counts several levers may report of the same rows: each lever's dry run counts them as if it ran alone. */
const SHARED_COUNTS = ["sessions", "tokens"] as const;
/** Counts of mails a lever queues in the job, which rotate-keys, running last, re-encrypts with the rest. */
const QUEUED_MAIL_COUNTS = ["resetEmailsQueued", "noticesQueued"] as const;

/**
 * Notes on the levers of one dry run whose counts overlap, so the report does not promise more than the job does: a
 * session (or token) that two levers would end is counted by both, and ended once by the first to reach it; mails the
 * job's levers queue are encrypted with the current key and re-encrypted by rotate-keys, which runs last, beyond the
 * values its own count found stored now.
 */
function overlapNotes(levers: DryRunReport["levers"]): void {
  const note = (name: string, text: string): void => appendNotes(levers, name, [text]);
  for (const key of SHARED_COUNTS) {
    const counting = Object.entries(levers).filter(([, r]) => (r.counts[key] ?? 0) > 0);
    if (counting.length < 2) continue;
    const most = Math.max(...counting.map(([, r]) => r.counts[key] ?? 0));
    for (const [name] of counting) {
      const others = counting.map(([n]) => n).filter((n) => n !== name).join(", ");
      const sum = counting.reduce((n, [, r]) => n + (r.counts[key] ?? 0), 0);
      note(name, `${key} also counted by ${others}: each is ended once, by the first lever to reach it (between ${most} and ${sum} in all)`);
    }
  }
  if (levers["rotate-keys"] !== undefined) {
    const queued = Object.entries(levers).reduce((sum, [name, r]) => (name === "rotate-keys" ? sum : sum + QUEUED_MAIL_COUNTS.reduce((n, k) => n + (r.counts[k] ?? 0), 0)), 0);
    if (queued > 0) note("rotate-keys", `the ${queued} mails this job's other levers queue are re-encrypted too, beyond encryptedValues (stored now)`);
  }
}

/**
 * Reports per lever what a job would change, with a sample; writes nothing but one audit event.
 *
 * @example
 * await dryRunContain(deps, { levers: ["expire-passwords"], scope: { all: true }, actor: "cli" })
 */
export async function dryRunContain(deps: ContainDeps, request: ContainRequest): Promise<DryRunReport> {
  const { names, opts, unmatched } = await checkRequest(deps, request);
  const db = deps.database.db;
  const scope = scopedUserIds(db, deps.database.dialect, request.scope);
  // The epoch a real run would take now: every row issued so far is counted.
  const ctx = leverContext(deps, "(dry-run)", deps.clock.now(), await epochOfARaiseNow(db), opts, request.scope);
  const total = await db.selectFrom("users").where("id", "in", scope).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
  const report: DryRunReport = { dryRun: true, users: Number(total?.n ?? 0), ...(unmatched ? { unmatchedIds: unmatched } : {}), levers: {} };
  for (const name of names) report.levers[name] = await (findLever(name) as UserLever | GlobalLever).dryRun(db, scope, ctx);
  const pairing = pairingNotesByLever(names, await pairingCounts(db, names, scope, ctx.at));
  for (const [name, notes] of Object.entries(pairing)) appendNotes(report.levers, name, notes);
  overlapNotes(report.levers);
  await deps.audit.append({
    type: "contain.dry-run", actor: request.actor,
    data: { levers: names, scope: describeScope(request.scope), users: report.users, ...(unmatched ? { unmatchedIds: unmatched.count } : {}), incidentId: request.incidentId ?? null },
  });
  return report;
}

/**
 * What the pairing notes quote: the live API tokens of the scope, counted only when a password lever is pulled
 * without revoke-tokens (the only case a note names them).
 */
async function pairingCounts(db: Kysely<Schema>, names: readonly string[], scope: ScopeQuery, at: number): Promise<PairingCounts> {
  const leavesTokens = (names.includes("invalidate-passwords") || names.includes("expire-passwords")) && !names.includes("revoke-tokens");
  return leavesTokens ? { liveTokens: await countLiveTokens(db, scope, at) } : {};
}

/** Counts the users in scope (for the confirmation prompt before a large job); refuses unknown roles and schemes first. */
export async function countScope(deps: ContainDeps, scope: ScopeSpec): Promise<number> {
  const db = deps.database.db;
  await checkRolesExist(db, scope);
  await checkSchemeKnown(db, scope);
  return scopeSize(db, deps.database.dialect, scope);
}

/** How many users `scope` holds, read through `db` (a transaction's, to count where a job commits). */
async function scopeSize(db: Kysely<Schema>, dialect: DialectName, scope: ScopeSpec): Promise<number> {
  const row = await db.selectFrom("users").where("id", "in", scopedUserIds(db, dialect, scope)).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
  return Number(row?.n ?? 0);
}

/**
 * Creates a job. First, in its own transaction, every lever's begin hook (revocation stamps for the whole
 * scope) with an audit event: that is the instant effect, and it must not wait for the scope of a million
 * users to be recorded. Then, in one transaction, the job row, the scope (the users, in a stable order) and
 * the creation event. A crash between the two leaves the stamps in force and audited, and no job: safe, and
 * running the command again finishes the work. Nothing is applied to rows yet; `runJob` does that.
 *
 * With a request key (an API request's Idempotency-Key) the stamps commit with the keyed job instead, all or nothing:
 * a request that loses the key to another one arriving at the same moment — refused, or answered with the other's
 * job — must have changed nothing, and with the stamps committed first it had already ended its scope's sessions and
 * tokens. The instant effect then waits for the scope to be recorded.
 *
 * `record`: the caller's own record of the request (the API's `api.contain.job.created`), written last in the job's
 * transaction, so a job never exists that its caller answered as not created (a store busy in between answered 503
 * "try again" about a job left pending, started by nobody, and the retry made a second).
 */
export async function createContainJob(
  deps: ContainDeps, request: ContainRequest,
  options: {
    record?: (trx: Kysely<Schema>, job: { id: string; total: number }) => Promise<unknown>;
    /**
     * The scope's size as the operator was shown it, and the size above which a run must be confirmed (the CLI's rule):
     * the job is refused (BULWARK_ERR_CONTAIN_SCOPE_CHANGED, nothing written) when the scope holds another number by its
     * first transaction and either side is above `above` — a "yes" to N users, or no question asked, no longer described
     * it. Checked where the job's first write commits (a stage that raises revocation stamps commits before the job's
     * own row: a change after it is recorded by the job as usual).
     */
    confirmed?: { users: number; above: number };
  } = {},
): Promise<Job<ContainSpec>> {
  const { names, opts, unmatched, batchSize } = await checkRequest(deps, request);
  const targeting = names.map((n) => findLever(n) as UserLever | GlobalLever)
    .filter((l): l is UserLever & Required<Pick<UserLever, "targets">> => l.kind === "user" && l.targets !== undefined);
  const spec: ContainSpec = {
    levers: names, scope: describeScope(request.scope), options: opts, at: deps.clock.now(), batchSize, mailer: deps.notifier !== null,
    ...(unmatched ? { unmatchedIds: unmatched } : {}),
    ...(request.creatorLacks?.length ? { creatorLacks: [...request.creatorLacks] } : {}),
    ...(request.creatorUser !== undefined ? { creatorUser: request.creatorUser } : {}),
    ...(request.creatorUser !== undefined && request.creatorToken !== undefined ? { creatorToken: request.creatorToken } : {}),
    ...(targeting.length > 0 ? { targetsOf: targeting.map((l) => l.name) } : {}),
  };
  // Levers that write links begin first: a reset or an email confirmation takes a link row, then the account, then its
  // session stamp, and the other levers' begins lock the accounts and raise stamps (the other order waited in a cycle
  // with one: PostgreSQL).
  const beginners = names.map((n) => findLever(n) as UserLever | GlobalLever)
    .filter((l): l is UserLever & Required<Pick<UserLever, "begin">> => l.kind === "user" && l.begin !== undefined)
    .sort((a, b) => Number(b.touchesLinks === true) - Number(a.touchesLinks === true));
  const raisers = beginners.filter((l) => l.touchesLinks !== true);
  const allUsers = request.scope.all === true;
  const begun: Record<string, number> = {};
  const confirmed = options.confirmed;
  const recount = async (trx: Kysely<Schema>): Promise<void> => {
    if (confirmed === undefined) return;
    const now = await scopeSize(trx, deps.database.dialect, request.scope);
    if (now !== confirmed.users && (now > confirmed.above || confirmed.users > confirmed.above)) throw containErrors.scopeChanged(confirmed.users, now);
  };
  const raise = async (trx: Kysely<Schema>): Promise<void> => {
    await recount(trx);
    const scope = scopedUserIds(trx, deps.database.dialect, request.scope);
    const contextAt = (epoch: number): LeverContext => leverContext(deps, "(begin)", spec.at, epoch, opts, request.scope);
    const record = (lever: UserLever, result: Record<string, number>): void => {
      for (const [k, v] of Object.entries(result)) begun[`${lever.name}.${k}`] = v;
    };
    // Spending links needs the job's time only: they begin before the epoch is taken (LeverContext.epoch is 0 there).
    for (const lever of beginners) if (lever.touchesLinks === true) record(lever, await lever.begin(trx, scope, contextAt(0)));
    // The accounts (or, for --all, the global session stamp) are locked before the epoch is taken: a credential a
    // session of the scope is making meanwhile (a login, an API token, a second factor) either holds the lock first and
    // commits with a smaller epoch, which the stamps refuse, or waits and then finds its session refused. Taken the
    // other way round, a token minted while this transaction was open carried the job's own epoch and a later time,
    // and outlived revoke-tokens (docs/decisions/0018-credentials-wait-for-containment.md).
    if (raisers.length > 0) await holdScopeForRaise(trx, scope, contextAt(0));
    // One epoch for the whole job, recorded with it: a resumed job refuses the same rows, and a login after the
    // stamps were raised (the owner's, after a reset) is never caught by a later batch.
    spec.epoch = await nextEpoch(trx);
    const ctx = contextAt(spec.epoch);
    for (const lever of raisers) record(lever, await lever.begin(trx, scope, ctx));
    const raised = await deps.audit.appendIn(trx, { type: "contain.revocation.raised", actor: request.actor, data: { levers: beginners.map((l) => l.name), scope: spec.scope, at: spec.at, begun, incidentId: request.incidentId ?? null } });
    // Its place in the log, recorded with the job: an address change appended after it was confirmed after the job's
    // links were spent, whatever time the confirming node's clock gave it (invalidate-passwords holds its reset mail).
    spec.createdSeq = raised.seq;
  };
  const keyed = (request.requestKey ?? null) !== null;
  // Committed before the raise's transaction, whichever holds the raise (ensureGlobalStamps says why).
  if (raisers.length > 0 && allUsers) await ensureGlobalStamps(deps.database.db, deps.database.dialect, spec.at);
  if (beginners.length && !keyed) await deps.database.transaction(raise);
  return deps.database.transaction(async (trx) => {
    if (beginners.length && keyed) await raise(trx);
    else if (!beginners.length) await recount(trx);
    // Counted before the job's batches revoke anything: these tokens stay working whatever the batches do.
    const { liveTokens } = await pairingCounts(trx, names, scopedUserIds(trx, deps.database.dialect, request.scope), spec.at);
    if (liveTokens !== undefined) spec.liveTokens = liveTokens;
    const job = await deps.jobs.create({ kind: CONTAIN_KIND, spec, total: 0, actor: request.actor, incidentId: request.incidentId ?? null, requestKey: request.requestKey ?? null }, trx);
    // One INSERT … SELECT: the scope is numbered inside the database, whatever its size. On SQLite in storage
    // (rowid) order: ids are random, so id order would spread every batch over the whole table, and SQLite
    // rewrites each touched page at commit; storage order keeps a batch on neighbouring pages. The scope reads the
    // rowid with the id (was: looked up again by id for each user, 2.9 s of the creation's write lock at a million).
    const sqlite = deps.database.dialect === "sqlite";
    const scope = sqlite
      ? scopedUserIds(trx, deps.database.dialect, request.scope).select(sql<number>`users.rowid`.as("storage"))
      : scopedUserIds(trx, deps.database.dialect, request.scope);
    const order = sqlite ? sql`s.storage` : sql`s.id`;
    await sql`insert into contain_job_users (job_id, seq, user_id) select ${job.id}, row_number() over (order by ${order}), s.id from (${scope}) s`.execute(trx);
    const row = await trx.selectFrom("contain_job_users").where("job_id", "=", job.id).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
    const total = Number(row?.n ?? 0);
    // The levers' targets as of the job (UserLever.targets), in the transaction that records the scope: a later change
    // (a sign-in with a dormant administrator's password) cannot take a user out of what the job was created to do.
    for (const lever of targeting) {
      const targets = lever.targets(trx, leverContext(deps, job.id, spec.at, spec.epoch ?? 0, opts, request.scope));
      await sql`insert into contain_job_users (job_id, seq, user_id) select ${targetsKey(job.id, lever.name)}, c.seq, c.user_id from contain_job_users c
        where c.job_id = ${job.id} and c.user_id in (${targets})`.execute(trx);
    }
    await trx.updateTable("jobs").set({ total }).where("id", "=", job.id).execute();
    await deps.audit.appendIn(trx, {
      type: JOB_CREATED_EVENT, actor: request.actor, subject: job.id,
      data: {
        levers: names, scope: spec.scope, users: total, ...(unmatched ? { unmatchedIds: unmatched.count } : {}),
        incidentId: request.incidentId ?? null, options: { ...opts }, mailer: spec.mailer, begun,
        ...(spec.creatorLacks ? { creatorLacks: spec.creatorLacks } : {}),
        ...(spec.creatorUser !== undefined ? { runsOnAuthorityOf: spec.creatorUser } : {}),
        ...(spec.creatorToken !== undefined ? { postedWithToken: spec.creatorToken } : {}),
      },
    });
    if (options.record) await options.record(trx, { id: job.id, total });
    return { ...job, total };
  });
}

/** Records a batch's changes keyed by each user's seq, in seq order: the batch's records append to the key. */
async function recordChanges(trx: Kysely<Schema>, dialect: DialectName, jobId: string, lever: string, changes: ChangeRecord[], seqOf: Map<string, number>): Promise<void> {
  const rows = changes.map((c) => {
    const seq = seqOf.get(c.userId);
    if (seq === undefined) throw new Error(`lever ${lever} reported a change for user ${c.userId}, who is not in this batch`);
    return { job_id: jobId, lever, seq, user_id: c.userId, entity: c.entity, before: JSON.stringify(c.before), after: c.after === null ? null : JSON.stringify(c.after), undo_status: null };
  });
  rows.sort((a, b) => a.seq - b.seq || (a.entity < b.entity ? -1 : a.entity > b.entity ? 1 : 0));
  if (dialect === "postgres") {
    // One statement whatever the batch size: five array parameters, unnested side by side.
    await sql`insert into contain_changes (job_id, lever, seq, user_id, entity, before, after, undo_status)
      select ${jobId}, ${lever}, t.seq, t.user_id, t.entity, t.before, t.after, null
      from unnest(${rows.map((r) => r.seq)}::bigint[], ${rows.map((r) => r.user_id)}::text[], ${rows.map((r) => r.entity)}::text[],
                  ${rows.map((r) => r.before)}::text[], ${rows.map((r) => r.after)}::text[]) as t(seq, user_id, entity, before, after)`.execute(trx);
    return;
  }
  // 8 columns a row: 500 rows stay far below SQLite's 32766 bound parameters.
  for (let i = 0; i < rows.length; i += 500) await trx.insertInto("contain_changes").values(rows.slice(i, i + 500)).execute();
}

/** The stages of a containment job: one over the recorded users (all user levers per batch), then one per global lever. */
export function containStages(deps: ContainDeps, job: Job<ContainSpec>): Stage[] {
  // Read back from the job row: checked with the bounds of a new request before any stage is built.
  const size = storedBatchSize(job.id, job.spec);
  storedLevers(job.id, job.spec);
  const lacks = storedCreatorLacks(job.id, job.spec);
  // The creator's standing, read again by every step and batch in its own transaction (src/contain/creator.ts): a job
  // posted by a help desk that is fired while it waits or runs stops there, failed, naming why (ASVS 8.3.2).
  // The token it was posted with too: revoking a leaked token stops its job, unless the job's own revoke-tokens did it.
  const creatorStands = creatorCheck(deps.database, job.id, storedCreatorUser(job.id, job.spec), creatorMustHold(lacks), {
    lockedByOwnJob: ownLockOf(job.id), token: creatorTokenOf(job.id, job.spec),
  });
  // Who the batches' events name: the operator once the job was taken over (the stages are built again then).
  const actor = actingActor(job);
  // A job stored before an option existed runs with its default (emailChangedWithinDays: the hold on reset links).
  const ctx = leverContext(deps, job.id, job.spec.at, job.spec.epoch ?? 0, { ...DEFAULT_OPTIONS, ...job.spec.options }, job.spec.scope);
  // Each lever's own context: targetsRecorded only for a lever whose targets this job recorded.
  const recorded = storedTargetsOf(job.spec);
  const forLever = (lever: Lever, c: LeverContext): LeverContext => (recorded.has(lever.name) ? { ...c, targetsRecorded: true } : c);
  // The levers' context in a step's transaction: with the job's creation seq, read there once for an old job.
  const createdSeqIn = creationSeqOf(job.id, job.spec);
  const contextIn = async (trx: Kysely<Schema>): Promise<LeverContext> => {
    const createdSeq = await createdSeqIn(trx);
    return createdSeq === undefined ? ctx : { ...ctx, createdSeq };
  };
  const found = job.spec.levers.map(leverNamed);
  const userLevers = found.filter((l): l is UserLever => l.kind === "user");
  const globalLevers = found.filter((l): l is GlobalLever => l.kind === "global");
  const stages: Stage[] = [];
  // An --all job runs the levers that can do their whole work at once (deleting most of a table) as one step
  // each, first; the others go batch by batch. docs/decisions/0005-bulk-containment-on-sqlite.md. Not for a job whose
  // creator lacked an administrative permission: a whole-table step cannot leave the users who hold it alone.
  const whole = ctx.allUsers && lacks.length === 0 ? userLevers.filter((l) => l.applyAll !== undefined) : [];
  const batched = userLevers.filter((l) => !whole.includes(l));
  whole.forEach((lever, i) => {
    // What the lever counts before the step (countAll), read outside the step's transaction: on SQLite the step holds
    // the write lock, and counting two million sessions' users in it held every login for seconds.
    let counted: Record<string, number> | null = null;
    const countAll = lever.countAll?.bind(lever);
    stages.push({
      name: `${lever.name} (all users at once)`,
      ...(countAll ? {
        async beforeStep() {
          counted = await countAll(deps.database.db, forLever(lever, { ...ctx, now: deps.clock.now() }));
        },
      } : {}),
      async step(trx): Promise<StepResult> {
        await creatorStands(trx);
        const leverCtx = forLever(lever, { ...(await contextIn(trx)), now: deps.clock.now() });
        const r = await (lever.applyAll as NonNullable<UserLever["applyAll"]>)(trx, leverCtx, counted ?? undefined);
        const counts: Record<string, number> = {};
        for (const [k, v] of Object.entries(r)) counts[`${lever.name}.${k}`] = v;
        // With no lever left for the batches, this step has handled every user of the scope.
        const last = i === whole.length - 1 && batched.length === 0;
        return { counts, processed: last ? job.total : 0, next: null };
      },
    });
  });
  if (batched.length) {
    // Batch k is the users numbered k*size+1 … (k+1)*size: a fixed partition, so workers can take batches in
    // any order and a resumed job redoes none. The row numbered k*size+1 is batch k's claim row.
    const postgres = deps.database.dialect === "postgres";
    stages.push({
      name: "users",
      batches: Math.ceil(job.total / size),
      async claim(trx, candidates) {
        // SQLite: the transaction already holds the database's write lock, so no other worker is in a batch.
        if (!postgres) return candidates[0] ?? null;
        const row = await trx.selectFrom("contain_job_users").select("seq").where("job_id", "=", job.id)
          .where("seq", "in", candidates.map((k) => k * size + 1)).orderBy("seq").limit(1).forUpdate().skipLocked().executeTakeFirst();
        return row ? (Number(row.seq) - 1) / size : null;
      },
      async run(trx, batch) {
        const rows = await trx.selectFrom("contain_job_users").select(["seq", "user_id"]).where("job_id", "=", job.id)
          .where("seq", ">", batch * size).where("seq", "<=", (batch + 1) * size).orderBy("seq").execute();
        // The outranking rule, again at the batch's time and in its transaction: a user granted what the job's creator
        // lacked since the job was created (made an administrator while it waited for a restart) is left alone.
        const outranking = await holdersAmong(trx, deps.database.dialect, rows.map((r) => r.user_id), lacks);
        const ids = rows.map((r) => r.user_id).filter((id) => !outranking.has(id));
        const seqOf = new Map(rows.map((r) => [r.user_id, Number(r.seq)]));
        const counts: Record<string, number> = {};
        const events: AuditInput[] = [];
        if (outranking.size > 0) {
          events.push({
            type: LEFT_ALONE_EVENT, actor, subject: job.id,
            data: { reason: "outranks-creator", batch, creatorLacks: lacks, levers: batched.map((l) => l.name), users: [...outranking].map(([userId, holds]) => ({ userId, holds })) },
          });
        }
        const batchCtx = { ...(await contextIn(trx)), now: deps.clock.now(), seqOf };
        // PostgreSQL: every lock the levers will need, before the batch's first write, in the order single-account
        // transactions take them: role removals' turn (as an API lock or revocation), the accounts' link locks when a
        // lever writes links (as a set-email, a reset, an email confirmation; only then: one advisory lock per account
        // counts against the server's lock table), the right to act of the users it demotes or locks (as an API lock),
        // then the account rows in id order. Taken by each lever as it came, a write of one lever before another's lock made
        // cycles with those transactions and with another job ("deadlock detected": a failed batch, a 500).
        const stopped = new Set<string>();
        if (postgres && ids.length > 0) {
          for (const lever of batched) for (const id of (await lever.demotes?.(trx, ids, forLever(lever, batchCtx))) ?? []) stopped.add(id);
          for (const lever of batched) for (const id of (await lever.stopsActing?.(trx, ids, forLever(lever, batchCtx))) ?? []) stopped.add(id);
          // Role removals' turn (the last-admin lock) whenever it waits for anyone's right to act, as an API lock takes it
          // before its acting locks: taken only for demotions, a lock-accounts batch over two administrators held one's
          // acting lock while an API lock by the other held its own shared, and each waited for the other's (deadlock).
          if (stopped.size > 0) await holdRoleRemovals(deps.database, trx);
          if (batched.some((l) => l.touchesLinks)) await lockManyAccountsLinks(deps.database.dialect, trx, ids);
        }
        // The creator, where an API change reads its caller: after the last-admin lock and the link locks, before the
        // targets' acting locks (users.ts lock, set-email). Before the batch's first write, on both dialects.
        await creatorStands(trx);
        if (postgres && ids.length > 0) {
          await holdActingOfMany(deps.database, trx, [...stopped]);
          await trx.selectFrom("users").select("id").where(inIds(deps.database.dialect, "id", ids)).orderBy("id").forNoKeyUpdate().execute();
        }
        for (const lever of batched) {
          const applied = await lever.apply(trx, ids, forLever(lever, batchCtx));
          for (const [k, v] of Object.entries(applied.counts)) counts[`${lever.name}.${k}`] = v;
          if (outranking.size > 0) counts[`${lever.name}.leftAlone`] = outranking.size;
          if (lever.undo && applied.changes.length) await recordChanges(trx, deps.database.dialect, job.id, lever.name, applied.changes, seqOf);
          for (const e of applied.events ?? []) events.push({ type: e.type, actor, subject: e.subject, data: { ...e.data, jobId: job.id, lever: lever.name } });
        }
        // Appended by the engine after it locks the job row, as every batch does: appending here, before that lock,
        // took the audit head first and deadlocked against a worker holding the job row (PostgreSQL).
        return { counts, processed: rows.length, audit: { from: batch * size + 1, to: batch * size + rows.length }, events };
      },
    });
  }
  globalLevers.forEach((lever, i) => {
    // `done` counts the users of the scope the job has handled. A global lever acts on the whole database, not user
    // by user, so its steps handle none; but a job made of global levers only would then end `done` with 0 of N
    // users (the bar never moving, `contain status` reading unfinished). Its last step completes the scope: every
    // user in it is covered once the whole database is. Committed with that step's cursor, so counted once.
    const completesScope = userLevers.length === 0 && i === globalLevers.length - 1;
    stages.push({
      name: lever.name,
      // The preparation (rotate-keys makes a data key) runs outside any transaction: the creator is read first in one.
      ...(lever.prepare ? {
        prepare: async () => {
          const prepared = await deps.database.transaction(async (trx) => {
            await creatorStands(trx);
            return contextIn(trx);
          });
          return (lever.prepare as NonNullable<GlobalLever["prepare"]>)(prepared);
        },
      } : {}),
      async step(trx, position): Promise<StepResult> {
        await creatorStands(trx);
        const r = await lever.step(trx, position, await contextIn(trx));
        const counts: Record<string, number> = {};
        for (const [k, v] of Object.entries(r.counts)) counts[`${lever.name}.${k}`] = v;
        return { counts, processed: completesScope && r.next === null ? job.total : 0, next: r.next };
      },
    });
  });
  if (batched.some((l) => l.name === requireMfaReenrolment.name)) {
    // Last, after every batch (and appended after the stages a job of the previous release was built with, so its
    // stored cursor names the same stages): the links its earlier batches left open (spendLinksLeftOpen), which a
    // batch of the previous release never spent. A job whose batches all ran on this code finds none and records nothing.
    stages.push({
      name: `${requireMfaReenrolment.name} (links left open by earlier batches)`,
      async step(trx, position): Promise<StepResult> {
        await creatorStands(trx);
        const from = position === null ? null : Number(position);
        if (from !== null && !Number.isSafeInteger(from)) throw containErrors.corruptJob(job.id, `its stored cursor's position in the links check is not an audit seq (${String(position).slice(0, 80)})`);
        const r = await spendLinksLeftOpen(trx, { ...(await contextIn(trx)), now: deps.clock.now() }, from);
        const name = requireMfaReenrolment.name;
        const total = r.resetLinks + r.emailChangeLinks;
        // Counted with the batches' own, and apart (linksLeftOpenSpent), so the job's view tells they were left open.
        const counts = total === 0 ? {} : { [`${name}.resetLinksSpent`]: r.resetLinks, [`${name}.emailChangeLinksSpent`]: r.emailChangeLinks, [`${name}.linksLeftOpenSpent`]: total };
        return { counts, processed: 0, next: r.next === null ? null : String(r.next) };
      },
    });
  }
  return stages;
}
