// Undo of a containment job, itself a resumable, audited job: for each reversible lever, walk the recorded
// changes in key order and restore the rows whose current value still equals what the job wrote and that no
// later job also contains; the others are left alone and reported (contain_changes.undo_status = "skipped").
// `dryRunUndo` reports the same outcome without keeping any of it.
import { sql, type Kysely } from "kysely";
import { RESUMABLE_STATUSES, storedObject, UNFINISHED_STATUSES, type Job, type JobStatus } from "../jobs/job-store.ts";
import { BulwarkError } from "../lib/errors.ts";
import { lockKeyOf, serialiseTransactions, type DialectName } from "../store/database.ts";
import type { ContainChangesTable, Schema } from "../store/schema.ts";
import type { AuditInput } from "../audit/audit-log.ts";
import { sessionPolicyOf, type ContainDeps, type Stage, type StepResult } from "./engine.ts";
import { containErrors } from "./errors.ts";
import { CONTAIN_KIND, type ContainSpec, DEFAULT_OPTIONS, leverNamed, storedBatchSize, storedLevers } from "./job.ts";
import { findLever, type ChangeRecord, type LeverContext, type LeverEvent, type UserLever } from "./lever.ts";
import { inIds, SAMPLE_SIZE } from "./levers/common.ts";
import { valuesQuery } from "../store/values-query.ts";
import { registerBuiltinLevers } from "./levers/index.ts";
import { holdersAmong, LEFT_ALONE_EVENT, rolesCarrying, storedCreatorLacks } from "./outranked.ts";
import { actingActor, creatorCheck, creatorMustHold, creatorTokenOf, storedCreatorUser } from "./creator.ts";

export const UNDO_KIND = "contain-undo";

export interface UndoSpec {
  undoOf: string;
  levers: string[];
  batchSize: number;
  /**
   * The administrative permissions the undo's creator (an API caller) lacked: every step leaves alone the users who
   * hold one by then, and the role grants that would hand one back (src/contain/outranked.ts). Absent for an undo
   * created by an administrator or the CLI, and for undo jobs recorded before it existed.
   */
  creatorLacks?: string[];
  /**
   * The API caller who created the undo: every step checks again that they still stand behind it, as a containment
   * job's batches do (ContainSpec.creatorUser, src/contain/creator.ts). Absent for the CLI's undo and once taken over.
   */
  creatorUser?: string;
  /** The API token the undo was posted with (ContainSpec.creatorToken): revoking it stops the undo too. */
  creatorToken?: string;
  /** Who took the undo over from a creator who no longer stood behind it (resumeJob). */
  takenOverBy?: string;
}

/** A stored spec's JSON, or null when the row cannot be read (jobErrors.unreadable). */
function readableSpec(id: string, text: string): Record<string, unknown> | null {
  try {
    return storedObject(id, "spec", text);
  } catch (error) {
    if (error instanceof BulwarkError) return null;
    throw error;
  }
}

/** Of these lever names, those whose changes an undo restores (expire-passwords, lock-accounts, demote-inactive-admins). */
export function reversibleLevers(names: readonly string[]): string[] {
  return reversible([...names]);
}

function reversible(names: string[]): string[] {
  registerBuiltinLevers();
  return names.filter((n) => {
    const l = findLever(n);
    return l?.kind === "user" && l.undo !== undefined;
  });
}

/**
 * Refuses an undo of `jobId` while another undo of it is running or failed (it can be resumed at any time, and would
 * then race a second one over the same records: restoring rows the other then reports as left alone, re-granting a
 * role twice). Read one by one: an undo row whose spec cannot be read is no rival — no worker can run it until it is
 * repaired — and it must not keep every other job from being undone (it made every undo fail).
 */
async function refuseRivalUndo(executor: Kysely<Schema>, jobId: string): Promise<void> {
  const running = await executor.selectFrom("jobs").select(["id", "spec", "status"]).where("kind", "=", UNDO_KIND).where("status", "in", [...RESUMABLE_STATUSES]).execute();
  const rival = running.find((j) => readableSpec(j.id, j.spec)?.["undoOf"] === jobId);
  if (rival) {
    const state = rival.status === "failed" ? "failed part-way" : "is still running";
    throw containErrors.notUndoable(jobId, `undo job ${rival.id} ${state} (resume it with \`bulwark contain resume ${rival.id}\`)`);
  }
}

/**
 * The finished containment job and its reversible levers; throws when it cannot be undone, a rival undo of it
 * included (refuseRivalUndo): the dry run and the confirmation's plan refuse what createUndoJob refuses, in the same
 * words (a dry run forecast the restores of an undo the real command then refused).
 */
async function undoable(deps: ContainDeps, jobId: string): Promise<{ original: Job<ContainSpec>; levers: string[] }> {
  const original = await deps.jobs.get<ContainSpec>(jobId);
  if (original.kind !== CONTAIN_KIND) throw containErrors.notContainJob(jobId);
  // A cancelled job's committed batches stay applied and recorded: they are undone like a finished job's.
  if (original.status !== "done" && original.status !== "cancelled") {
    throw containErrors.notUndoable(jobId, `it is ${original.status}; resume it to the end (bulwark contain resume ${jobId}) or cancel it (bulwark contain cancel ${jobId}) first`);
  }
  // Its spec is read back from the database: an undo job copies its batch size, and a dry run walks by it.
  storedBatchSize(jobId, original.spec);
  const levers = reversible(storedLevers(jobId, original.spec));
  if (levers.length === 0) throw containErrors.notUndoable(jobId, `none of its levers (${original.spec.levers.join(", ")}) is reversible; only expire-passwords, lock-accounts and demote-inactive-admins are`);
  await refuseRivalUndo(deps.database.db, jobId);
  return { original, levers };
}

/**
 * Creates the undo job of a finished containment job (nothing is restored until it runs). `creatorLacks`: the
 * administrative permissions the requester lacks (the API's outranking rule), recorded when not empty; `creatorUser`:
 * the API caller, whose standing every step reads again; `creatorToken`: the API token it called with, whose
 * revocation stops the undo as it stops a containment job.
 *
 * @example
 * const undo = await createUndoJob(deps, "job_…", "cli"); await runJob(deps, undo.id);
 */
export async function createUndoJob(
  deps: ContainDeps, jobId: string, actor: string,
  // `record`: the caller's record of the request, in the undo job's transaction (as createContainJob's).
  options: { creatorLacks?: readonly string[]; creatorUser?: string; creatorToken?: string; record?: (trx: Kysely<Schema>, job: { id: string; total: number }) => Promise<unknown> } = {},
): Promise<Job<UndoSpec>> {
  const { original, levers } = await undoable(deps, jobId);
  const spec: UndoSpec = {
    undoOf: jobId, levers, batchSize: original.spec.batchSize,
    ...(options.creatorLacks?.length ? { creatorLacks: [...options.creatorLacks] } : {}),
    ...(options.creatorUser !== undefined ? { creatorUser: options.creatorUser } : {}),
    ...(options.creatorUser !== undefined && options.creatorToken !== undefined ? { creatorToken: options.creatorToken } : {}),
  };
  return deps.database.transaction(async (trx) => {
    // One undo at a time per job (refuseRivalUndo, which undoable ran already): the check that decides is this one,
    // with the insert in one step. On PostgreSQL (READ COMMITTED) two requests arriving together both read "no undo
    // running" and both insert, so they are serialised per job here — the second waits, then reads the first's
    // committed job and is refused. On SQLite the transaction's write lock, taken at BEGIN, already serialises them.
    await serialiseTransactions(deps.database, trx, lockKeyOf(`contain-undo:${jobId}`));
    await refuseRivalUndo(trx, jobId);
    const row = await trx.selectFrom("contain_changes").where("job_id", "=", jobId).where("lever", "in", levers).where("undo_status", "is", null)
      .select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
    const total = Number(row?.n ?? 0);
    const job = await deps.jobs.create({ kind: UNDO_KIND, spec, total, actor, incidentId: original.incidentId }, trx);
    await deps.audit.appendIn(trx, { type: "contain.undo.created", actor, subject: job.id, data: { undoOf: jobId, levers, changes: total, ...(spec.creatorLacks ? { creatorLacks: spec.creatorLacks } : {}) } });
    if (options.record) await options.record(trx, { id: job.id, total });
    return job;
  });
}

/**
 * Where an undo stage continues: after this (seq, entity). A position written before migration 10 named a
 * user id instead; such a walk starts over, which is safe because records already handled are skipped.
 */
function parsePosition(position: string | null): [number, string] {
  if (position === null) return [0, ""];
  const [seq, entity] = JSON.parse(position) as [unknown, string];
  return typeof seq === "number" ? [seq, entity] : [0, ""];
}

function changeKey(userId: string, entity: string): string {
  return `${userId}\u0000${entity}`;
}

/** Of the users an undo batch looks at, those another job may hold contained: `covered`, and among them `byUnreadable`. */
interface Covered {
  covered: Set<string>;
  /** Users held by the recorded scope of a job whose row cannot be read (its levers unknown: assumed to include this one). */
  byUnreadable: Set<string>;
  /** Those unreadable jobs, for the report. */
  unreadableJobs: string[];
}

/**
 * Of these users, those that another containment job applying `lever`, and not undone, may hold contained on its
 * own account: one created after `undoOf`, or one created before it that had not finished when `undoOf` was created
 * (still queued, running, or failed and resumed later), whose batch may have come after `undoOf`'s. Restoring such a
 * user would cancel that job's containment: it may have set the value again (an expiry the user had cleared, an
 * administrator re-granted and demoted again), leaving exactly what `undoOf` wrote, or found it already set and
 * changed nothing (so it recorded nothing). They are left alone and reported. Usually no such job exists and nothing
 * more is read.
 *
 * "After" is decided by the database's counter (created_epoch, finished_epoch: migration 20), not by the jobs'
 * times: those come from the clocks of whichever nodes created and ran the jobs, and a later job from a node whose
 * clock is behind read as earlier (docs/decisions/0010-job-order-by-epoch.md). Only when `undoOf` itself predates
 * migration 20 (epoch 0) do times decide, as before: a job created in the same millisecond counts as later.
 *
 * Each row's spec is read on its own (one that could not be read made every undo fail). A containment job whose
 * spec cannot be read is assumed to apply every lever: every user its recorded scope holds (contain_job_users, which
 * does not depend on the spec) is left alone, when the job may have run after `undoOf` (its status and epochs are
 * columns of their own). An undo job whose spec cannot be read is assumed to have undone nothing, so the job it
 * undid keeps holding its users. Both err towards leaving users alone, never towards releasing them.
 */
async function coveredByOtherJobs(trx: Kysely<Schema>, dialect: DialectName, undoOf: string, lever: string, userIds: string[]): Promise<Covered> {
  const none: Covered = { covered: new Set(), byUnreadable: new Set(), unreadableJobs: [] };
  const original = await trx.selectFrom("jobs").select(["created_at", "created_epoch"]).where("id", "=", undoOf).executeTakeFirst();
  if (!original || userIds.length === 0) return none;
  const since = Number(original.created_at);
  const sinceEpoch = Number(original.created_epoch);
  // Containment and undo jobs are few (one per incident step): all of them are read, since an undo of an older job
  // may itself be older than `undoOf`.
  const jobs = (await trx.selectFrom("jobs").select(["id", "kind", "status", "spec", "cursor", "created_at", "finished_at", "created_epoch", "finished_epoch"]).where("kind", "in", [CONTAIN_KIND, UNDO_KIND]).execute())
    .map((j) => ({ ...j, spec: readableSpec(j.id, j.spec) as Partial<ContainSpec & UndoSpec> | null }));
  const undone = new Set(jobs.filter((j) => j.kind === UNDO_KIND && j.status === "done").map((j) => j.spec?.undoOf));
  const createdLater = (j: (typeof jobs)[number]): boolean =>
    sinceEpoch > 0 ? Number(j.created_epoch) > sinceEpoch : Number(j.created_epoch) > 0 || Number(j.created_at) >= since;
  // Ended before `undoOf` was created: its end read the counter before `undoOf` took its value. A job ended before
  // migration 20 holds 0 there. A pending or running job is under way whatever its row says (one resumed from a
  // failure before the engine cleared the failure's finish still carries it).
  const endedBefore = (j: (typeof jobs)[number]): boolean =>
    !UNFINISHED_STATUSES.includes(j.status as JobStatus) &&
    (sinceEpoch > 0 ? j.finished_epoch !== null && Number(j.finished_epoch) < sinceEpoch : j.finished_at !== null && Number(j.finished_at) < since);
  // A job cancelled before it committed anything (its cursor never moved) applied no lever to anyone: it holds nobody.
  // Cancelling a wrongly scoped job before it ran is the usual case, and its recorded scope (--all: everyone) would
  // otherwise keep every older job's undo from releasing anyone until the cancelled job was undone too.
  const neverRan = (j: (typeof jobs)[number]): boolean => j.status === "cancelled" && j.cursor === null;
  const others = jobs.filter((j) =>
    j.kind === CONTAIN_KIND && j.id !== undoOf && !undone.has(j.id) && !neverRan(j) && (j.spec === null || (Array.isArray(j.spec.levers) && j.spec.levers.includes(lever))) &&
    (createdLater(j) || !endedBefore(j)));
  if (others.length === 0) return none;
  const unreadableJobs = others.filter((j) => j.spec === null).map((j) => j.id);
  // A later --all job covered every user that existed when it was created, and these existed before it. An older
  // one did not cover users created after it: its recorded scope says which.
  if (unreadableJobs.length === 0 && others.some((j) => j.spec?.scope?.["all"] === true && createdLater(j))) return { ...none, covered: new Set(userIds) };
  // The recorded scopes have no index by user: this reads the other jobs' scopes, once per step.
  const rows = await trx.selectFrom("contain_job_users").select(["job_id", "user_id"]).distinct()
    .where("job_id", "in", others.map((j) => j.id)).where(inIds(dialect, "user_id", userIds)).execute();
  const unreadable = new Set(unreadableJobs);
  const byUnreadable = new Set(rows.filter((r) => unreadable.has(r.job_id)).map((r) => r.user_id));
  const covered = new Set(rows.map((r) => r.user_id));
  if (others.some((j) => j.spec?.scope?.["all"] === true && createdLater(j))) for (const id of userIds) covered.add(id);
  return { covered, byUnreadable, unreadableJobs: unreadableJobs.filter((id) => rows.some((r) => r.job_id === id)) };
}

/** Why an undo batch left users alone besides their rows having changed: reported in a LEFT_ALONE_EVENT each. */
interface LeftAlone {
  /** Users who now hold a permission the undo's creator lacked, with the ones they hold. */
  outranking: Map<string, string[]>;
  /** Role grants (demote-inactive-admins) not handed back because the role now carries such a permission. */
  regrants: Array<{ userId: string; role: string }>;
  /** Users a containment job whose row cannot be read may hold contained, and those jobs. */
  byUnreadable: Set<string>;
  unreadableJobs: string[];
}

/**
 * Undoes, inside `trx`, the open change records `rows` of one lever of job `undoOf`: what the lever restores,
 * and what is left alone — records the lever refuses, users another job holds contained (coveredByOtherJobs), and
 * with `creatorLacks` (the undo's creator lacked these administrative permissions) users who now hold one of them
 * and grants of a role that now carries one. The undo job and its dry run both go through here, so the dry run
 * reports what the undo does.
 */
async function undoRecords(
  trx: Kysely<Schema>, dialect: DialectName, undoOf: string, lever: UserLever, rows: readonly ContainChangesTable[], ctx: LeverContext,
  options: { creatorLacks?: readonly string[]; undoneBy?: string | null } = {},
): Promise<{ restored: ChangeRecord[]; skipped: ChangeRecord[]; leftAlone: LeftAlone; events: LeverEvent[]; counts: Record<string, number> }> {
  const creatorLacks = options.creatorLacks ?? [];
  const changes: ChangeRecord[] = rows.map((r) => ({ userId: r.user_id, entity: r.entity, before: JSON.parse(r.before) as Record<string, unknown>, after: r.after === null ? null : (JSON.parse(r.after) as Record<string, unknown>) }));
  const users = [...new Set(changes.map((c) => c.userId))];
  const { covered, byUnreadable, unreadableJobs } = await coveredByOtherJobs(trx, dialect, undoOf, lever.name, users);
  // The outranking rule at the batch's time (the API checked it when the undo was created): unlocking a user made an
  // administrator since, or re-granting a role that carries such a permission now, is left to an administrator.
  const outranking = await holdersAmong(trx, dialect, users, creatorLacks);
  // demote-inactive-admins records a removed grant under the role's name: its undo hands the role back.
  const regrant = lever.name === "demote-inactive-admins";
  const carrying = regrant ? await rolesCarrying(trx, changes.map((c) => c.entity), creatorLacks) : new Set<string>();
  const regrants = changes.filter((c) => carrying.has(c.entity) && !outranking.has(c.userId)).map((c) => ({ userId: c.userId, role: c.entity }));
  const leftAlone: LeftAlone = { outranking, regrants, byUnreadable, unreadableJobs };
  const held = (c: ChangeRecord): boolean => covered.has(c.userId) || outranking.has(c.userId) || carrying.has(c.entity);
  const candidates = changes.filter((c) => !held(c));
  if (candidates.length === 0) return { restored: [], skipped: changes, leftAlone, events: [], counts: {} };
  // The job's action time (spec.at, fixed before its row was written): the lever looks for later decisions from then on.
  const original = await trx.selectFrom("jobs").select(["spec", "created_at"]).where("id", "=", undoOf).executeTakeFirstOrThrow();
  const at = (storedObject(undoOf, "spec", original.spec) as Partial<ContainSpec>).at ?? Number(original.created_at);
  const result = await (lever.undo as NonNullable<UserLever["undo"]>)(trx, candidates, { ...ctx, undoOf: { jobId: undoOf, at }, undoneBy: options.undoneBy ?? null });
  return { restored: result.restored, skipped: [...result.skipped, ...changes.filter(held)], leftAlone, events: result.events ?? [], counts: result.counts ?? {} };
}

/** One stage per reversible lever, walking its recorded changes by (seq, entity): the order they were written. */
export function undoStages(deps: ContainDeps, job: Job<UndoSpec>): Stage[] {
  // Read back from the job row: a size of 0 would end every stage at once with nothing restored.
  const batchSize = storedBatchSize(job.id, job.spec);
  storedLevers(job.id, job.spec);
  const lacks = storedCreatorLacks(job.id, job.spec);
  // An undo unlocks and hands roles back: one posted by a help desk fired since stops too (src/contain/creator.ts).
  // And the API token it was posted with: an undo pulls no revoke-tokens, so any revocation of it stops the undo.
  const creatorStands = creatorCheck(deps.database, job.id, storedCreatorUser(job.id, job.spec), creatorMustHold(lacks), { token: creatorTokenOf(job.id, job.spec) });
  // The job's notifier: a role handed back is told as a grant is (demote-inactive-admins), keyed by this undo job.
  const ctx = { jobId: job.id, dialect: deps.database.dialect, at: job.createdAt, now: job.createdAt, epoch: 0, options: DEFAULT_OPTIONS, allUsers: false, keyring: deps.keyring, notifier: deps.notifier, sessionPolicy: sessionPolicyOf(deps) };
  // Who the events a lever asks for name as their actor: the creator checked (an API caller), else whoever took the
  // undo over, else the job's own actor (the CLI's operator): actingActor, as every event of the job names it.
  const acting = actingActor(job);
  return job.spec.levers.map((name): Stage => {
    const lever = leverNamed(name) as UserLever;
    return {
      name: `undo ${name}`,
      async step(trx, position): Promise<StepResult> {
        const creator = await creatorStands(trx);
        const [afterSeq, afterEntity] = parsePosition(position);
        const rows = await trx.selectFrom("contain_changes").selectAll()
          .where("job_id", "=", job.spec.undoOf).where("lever", "=", name)
          .where((eb) => eb.or([eb("seq", ">", afterSeq), eb.and([eb("seq", "=", afterSeq), eb("entity", ">", afterEntity)])]))
          .orderBy("seq").orderBy("entity").limit(batchSize).execute();
        if (rows.length === 0) return { counts: {}, processed: 0, next: null };
        // Rows an earlier undo already handled are not touched again.
        const open = rows.filter((r) => r.undo_status === null);
        const { restored, skipped, leftAlone, events, counts } = await undoRecords(trx, deps.database.dialect, job.spec.undoOf, lever, open, ctx, { creatorLacks: lacks, undoneBy: creator });
        // The engine locked the job row before this step: appending here keeps its lock order (job row, then audit head).
        for (const event of leftAloneEvents(job, name, lacks, leftAlone)) await deps.audit.appendIn(trx, event);
        const actor = creator ?? acting;
        for (const e of events) await deps.audit.appendIn(trx, { type: e.type, actor, subject: e.subject, data: { ...e.data, jobId: job.id, lever: name } });
        // Each record's verdict, written for the whole batch in one statement.
        const seqOf = new Map(open.map((r) => [changeKey(r.user_id, r.entity), Number(r.seq)]));
        const verdicts = [...restored.map((c) => [c, "restored"] as const), ...skipped.map((c) => [c, "skipped"] as const)]
          .map(([c, status]) => [seqOf.get(changeKey(c.userId, c.entity)) as number, c.entity, status]);
        if (verdicts.length > 0) {
          const v = valuesQuery(deps.database.dialect, [{ name: "seq", type: "bigint" }, { name: "entity", type: "text" }, { name: "status", type: "text" }], verdicts);
          await sql`with v as materialized (${v}) update contain_changes set undo_status = v.status from v
            where contain_changes.job_id = ${job.spec.undoOf} and contain_changes.lever = ${name}
              and contain_changes.seq = v.seq and contain_changes.entity = v.entity`.execute(trx);
        }
        const last = rows[rows.length - 1] as { seq: number; entity: string };
        return {
          counts: { [`${name}.restored`]: restored.length, [`${name}.skipped`]: skipped.length, ...Object.fromEntries(Object.entries(counts).map(([k, v]) => [`${name}.${k}`, v])) },
          processed: open.length,
          next: JSON.stringify([Number(last.seq), last.entity]),
        };
      },
    };
  });
}

/** The audit events of the users an undo step left alone besides changed rows: one per reason, none when there is none. */
function leftAloneEvents(job: Job<UndoSpec>, lever: string, lacks: readonly string[], leftAlone: LeftAlone): AuditInput[] {
  const events: AuditInput[] = [];
  const base = { actor: actingActor(job), subject: job.id, type: LEFT_ALONE_EVENT };
  if (leftAlone.outranking.size > 0 || leftAlone.regrants.length > 0) {
    events.push({
      ...base,
      data: {
        reason: "outranks-creator", undoOf: job.spec.undoOf, lever, creatorLacks: [...lacks],
        users: [...leftAlone.outranking].map(([userId, holds]) => ({ userId, holds })), regrants: leftAlone.regrants,
      },
    });
  }
  if (leftAlone.byUnreadable.size > 0) {
    events.push({ ...base, data: { reason: "unreadable-job", undoOf: job.spec.undoOf, lever, jobs: leftAlone.unreadableJobs, users: [...leftAlone.byUnreadable].map((userId) => ({ userId })) } });
  }
  return events;
}

/**
 * Rows an undo left alone (at most `limit`): changed after the job, contained by a later job too (or possibly by one
 * whose row cannot be read), or, for an undo created by an API caller without `admin`, now holding a permission it lacks.
 */
export async function skippedByUndo(deps: ContainDeps, jobId: string, limit = 1000): Promise<Array<{ lever: string; userId: string; entity: string }>> {
  const rows = await deps.database.db.selectFrom("contain_changes").select(["lever", "user_id", "entity"])
    .where("job_id", "=", jobId).where("undo_status", "=", "skipped").orderBy("lever").orderBy("seq").limit(limit).execute();
  return rows.map((r) => ({ lever: r.lever, userId: r.user_id, entity: r.entity }));
}

/** What an undo would act on, read before it is created: enough for a confirmation prompt. */
export interface UndoPlan {
  undoOf: string;
  levers: string[];
  /** Recorded changes no earlier undo has handled. */
  changes: number;
  /** Distinct users those changes belong to. */
  users: number;
}

/**
 * Refuses, as `createUndoJob` would, a job that cannot be undone; otherwise counts what its undo would go through.
 *
 * @example
 * const plan = await planUndo(deps, "job_…"); if (plan.users > 100) await confirm();
 */
export async function planUndo(deps: ContainDeps, jobId: string): Promise<UndoPlan> {
  const { levers } = await undoable(deps, jobId);
  const row = await deps.database.db.selectFrom("contain_changes").where("job_id", "=", jobId).where("lever", "in", levers).where("undo_status", "is", null)
    .select((eb) => [eb.fn.countAll<number>().as("n"), eb.fn.count<number>("user_id").distinct().as("users")]).executeTakeFirst();
  return { undoOf: jobId, levers, changes: Number(row?.n ?? 0), users: Number(row?.users ?? 0) };
}

export interface UndoDryRunReport {
  dryRun: true;
  undoOf: string;
  levers: string[];
  /** Recorded changes no earlier undo has handled: what the undo job's total would be. */
  changes: number;
  /** Per lever, as the undo job would count them: { restored, skipped }. */
  counts: Record<string, { restored: number; skipped: number }>;
  /** A few users whose rows would be restored, for a human to check. */
  sample: string[];
  /** Rows that would be left alone (changed since the job, or contained by a later job), at most `limit`. */
  leftAlone: Array<{ lever: string; userId: string; entity: string }>;
  /** True when more rows than `leftAlone` lists would be left alone. */
  leftAloneMore: boolean;
}

// Thrown to roll a dry-run batch back: the batch ran for real inside its transaction, and nothing of it stays.
const ROLLBACK = Symbol("dry-run rollback");

/** Runs `fn` in a transaction that is always rolled back, and returns what it returned. */
async function rolledBack<T>(deps: ContainDeps, fn: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
  let result: { value: T } | undefined;
  try {
    await deps.database.transaction(async (trx) => {
      result = { value: await fn(trx) };
      throw ROLLBACK;
    });
  } catch (error) {
    if (error !== ROLLBACK) throw error;
  }
  return (result as { value: T }).value;
}

interface DryBatch {
  rows: number;
  restored: ChangeRecord[];
  skipped: ChangeRecord[];
  last: [number, string];
}

/**
 * Reports what `bulwark contain undo JOB` would restore and what it would leave alone, changing nothing. Each batch
 * runs the levers' own undo — the same conditions the real undo applies — inside a transaction that is rolled back,
 * so the report cannot drift from what the undo does; batches are independent (one row per user and entity), so
 * rolling each back does not change the next one's outcome. Writes one audit event (`contain.undo.dry-run`).
 *
 * @example
 * const report = await dryRunUndo(deps, "job_…", "cli:alice"); // report.counts["lock-accounts"].restored
 */
export async function dryRunUndo(deps: ContainDeps, jobId: string, actor: string, options: { limit?: number } = {}): Promise<UndoDryRunReport> {
  const limit = options.limit ?? 1000;
  const { original, levers } = await undoable(deps, jobId);
  const now = deps.clock.now();
  const ctx = { jobId: "(dry-run)", dialect: deps.database.dialect, at: now, now, epoch: 0, options: DEFAULT_OPTIONS, allUsers: false, keyring: deps.keyring, notifier: null, sessionPolicy: sessionPolicyOf(deps) };
  const report: UndoDryRunReport = { dryRun: true, undoOf: jobId, levers, changes: 0, counts: {}, sample: [], leftAlone: [], leftAloneMore: false };
  for (const name of levers) {
    const lever = leverNamed(name) as UserLever;
    const counts = { restored: 0, skipped: 0 };
    report.counts[name] = counts;
    let after: [number, string] = [0, ""];
    for (;;) {
      const [afterSeq, afterEntity] = after;
      const batch = await rolledBack(deps, async (trx): Promise<DryBatch | null> => {
        const rows = await trx.selectFrom("contain_changes").selectAll()
          .where("job_id", "=", jobId).where("lever", "=", name).where("undo_status", "is", null)
          .where((eb) => eb.or([eb("seq", ">", afterSeq), eb.and([eb("seq", "=", afterSeq), eb("entity", ">", afterEntity)])]))
          .orderBy("seq").orderBy("entity").limit(original.spec.batchSize).execute();
        if (rows.length === 0) return null;
        const { restored, skipped } = await undoRecords(trx, deps.database.dialect, jobId, lever, rows, ctx);
        const last = rows[rows.length - 1] as { seq: number; entity: string };
        return { rows: rows.length, restored, skipped, last: [Number(last.seq), last.entity] };
      });
      if (batch === null) break;
      report.changes += batch.rows;
      counts.restored += batch.restored.length;
      counts.skipped += batch.skipped.length;
      for (const c of batch.restored) if (report.sample.length < SAMPLE_SIZE && !report.sample.includes(c.userId)) report.sample.push(c.userId);
      for (const c of batch.skipped) {
        if (report.leftAlone.length < limit) report.leftAlone.push({ lever: name, userId: c.userId, entity: c.entity });
        else report.leftAloneMore = true;
      }
      after = batch.last;
    }
  }
  await deps.audit.append({ type: "contain.undo.dry-run", actor, subject: jobId, data: { levers, changes: report.changes, counts: report.counts } });
  return report;
}
