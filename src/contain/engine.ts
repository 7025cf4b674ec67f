// The stage runner behind every containment job: a job is a list of stages, each advanced one batch at a
// time inside a transaction that also moves the job's cursor and appends the batch's audit event, so a job
// killed at any moment (kill -9, power loss) resumes at the first uncommitted batch and applies none twice.
// Several workers (processes, or nodes on one PostgreSQL) may run one job at once: the batches of a
// "claimed" stage are independent, and each worker claims one with FOR UPDATE SKIP LOCKED before doing it.
import type { Kysely } from "kysely";
import type { AuditInput, AuditLog } from "../audit/audit-log.ts";
import type { Keyring } from "../crypto/keyring.ts";
import { DEFAULT_SESSION_POLICY } from "../accounts/sessions/policy.ts";
import type { SessionLimits } from "../accounts/sessions/open-rule.ts";
import { epochNow, type Job, type JobStore } from "../jobs/job-store.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { isSQLiteBusy, STORE_BUSY_RETRY_SECONDS, storeBusyError } from "../store/errors.ts";
import { Unavailable } from "../lib/errors.ts";
import { actingActor } from "./creator.ts";
import { containErrors, failureReason, isCorruptJobError, isCreatorLostError } from "./errors.ts";
import type { ResetNotifier } from "./lever.ts";
import type { Schema } from "../store/schema.ts";

export interface ContainDeps {
  database: Database;
  clock: Clock;
  random: RandomSource;
  audit: AuditLog;
  jobs: JobStore;
  keyring: Keyring | null;
  /** Queues reset emails for invalidate-passwords; null until the outbox is wired (then 0 are queued, and the job says so). */
  notifier: ResetNotifier | null;
  /**
   * The session policy in force (the app's: app.accounts.sessions.policy, from BULWARK_SESSION_*): which sessions the
   * levers count as open. Absent, the defaults the app runs with when those are unset (sessionPolicyOf).
   */
  sessionPolicy?: SessionLimits;
}

/** The session policy the levers judge open sessions by: the one in force, or the app's defaults. */
export function sessionPolicyOf(deps: Pick<ContainDeps, "sessionPolicy">): SessionLimits {
  return deps.sessionPolicy ?? DEFAULT_SESSION_POLICY;
}

export interface StepResult {
  /** Counts to add, keyed "lever.outcome" (e.g. "expire-passwords.users"). */
  counts: Record<string, number>;
  /** Items handled (added to the job's `done`). */
  processed: number;
  /** Where this stage continues; null when the stage is finished. */
  next: string | null;
}

/** A stage walked in order, one step at a time (global levers, undo): one worker at a time advances it. */
export interface SequentialStage {
  name: string;
  /**
   * Runs outside any transaction when the stage starts (e.g. creating a key); must tolerate a re-run after a
   * crash. What it returns (the new key's id, say) goes into the `contain.job.prepared` audit event, written with
   * the cursor that records the preparation as done.
   */
  prepare?(): Promise<Record<string, unknown> | void>;
  /**
   * Runs outside any transaction before each attempt of a step (reads only: what the step will count), so that the
   * step's transaction, which on SQLite holds the write lock, does not do it. Nothing of it is recorded.
   */
  beforeStep?(position: string | null): Promise<void>;
  step(trx: Kysely<Schema>, position: string | null): Promise<StepResult>;
}

/** A stage of `batches` independent batches (0 … batches-1) that workers claim and run in any order. */
export interface ClaimedStage {
  name: string;
  batches: number;
  /**
   * Inside the batch's transaction: locks and returns one of `candidates` that no other transaction holds
   * (PostgreSQL: FOR UPDATE SKIP LOCKED on the batch's claim row), or null when all are held.
   */
  claim(trx: Kysely<Schema>, candidates: number[]): Promise<number | null>;
  /** `events` are appended to the audit log by the engine, after it locks the job row (one lock order for every batch). */
  run(trx: Kysely<Schema>, batch: number): Promise<{ counts: Record<string, number>; processed: number; audit: Record<string, unknown>; events?: AuditInput[] }>;
}

export type Stage = SequentialStage | ClaimedStage;

function isClaimed(stage: Stage): stage is ClaimedStage {
  return "claim" in stage;
}

/** The job cursor: the stage index, the position inside it, and whether the stage's prepare has committed. */
interface Cursor {
  s: number;
  p: string | null;
  r?: 1;
}

/** Progress of a claimed stage: every batch below `w` is done, and so are those listed in `d`. */
interface Claims {
  w: number;
  d: number[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Parses stored JSON, refusing text that is not JSON with the job's coded error instead of a bare SyntaxError. */
function storedJSON(jobId: string, what: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw containErrors.corruptJob(jobId, `its stored ${what} is not JSON`, { cause: error });
  }
}

/**
 * The job's cursor, checked against the job's stages. A cursor is data read back from the database: one naming a
 * stage that does not exist made the engine "advance" to the same place for ever (s: -1), and one past the last
 * stage would end the job done with its work undone. Only stage indexes 0 … stages (the last meaning "every stage
 * done") are accepted. Fails closed (ASVS 16.5.3).
 */
function parseCursor(jobId: string, text: string | null, stages: number): Cursor {
  if (text === null) return { s: 0, p: null };
  const value = storedJSON(jobId, "cursor", text);
  const shown = text.slice(0, 80);
  if (!isRecord(value)) throw containErrors.corruptJob(jobId, `its stored cursor is not an object (${shown})`);
  const { s, p, r } = value;
  if (typeof s !== "number" || !Number.isInteger(s) || s < 0 || s > stages) {
    throw containErrors.corruptJob(jobId, `its stored cursor names stage ${JSON.stringify(s)}, and the job has stages 0 to ${stages - 1}`);
  }
  if (p !== null && typeof p !== "string") throw containErrors.corruptJob(jobId, `its stored cursor's position is neither text nor null (${shown})`);
  if (r !== undefined && r !== 1) throw containErrors.corruptJob(jobId, `its stored cursor's prepared mark is not 1 (${shown})`);
  return r === 1 ? { s, p, r } : { s, p };
}

/**
 * A claimed stage's progress, checked against its number of batches: claims past the end (w: 99 of 3 batches) made
 * the stage look finished, and the job ended done with 0 of N users handled.
 */
function parseClaims(jobId: string, p: string | null, batches: number): Claims {
  if (p === null) return { w: 0, d: [] };
  const value = storedJSON(jobId, "cursor's batch claims", p);
  const inRange = (n: unknown, max: number): n is number => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= max;
  if (!isRecord(value) || !inRange(value["w"], batches) || !Array.isArray(value["d"]) || !value["d"].every((b) => inRange(b, batches - 1))) {
    throw containErrors.corruptJob(jobId, `its stored cursor's batch claims (${p.slice(0, 80)}) do not fit its ${batches} batches`);
  }
  return { w: value["w"], d: value["d"] as number[] };
}

/** Marks `batch` done and moves the low-water mark past every batch done in a row. */
function markDone(claims: Claims, batch: number): Claims {
  const done = new Set(claims.d);
  done.add(batch);
  let w = claims.w;
  while (done.has(w)) done.delete(w++);
  return { w, d: [...done].sort((a, b) => a - b) };
}

// How many open batches a worker looks at when claiming: more than any plausible number of workers.
const CLAIM_WINDOW = 64;
// How long a worker waits when every open batch is held by another worker (it is about to finish them).
const BUSY_WAIT_MS = 20;

// A batch (or a stage's prepare) that met a busy store (PostgreSQL's lock_timeout or statement timeout: storeBusyError)
// is tried again after these waits, 250 ms doubling up to 4 s, while the time since its first busy failure stays within
// the budget (RunOptions.busyRetryMs). Two minutes outlast a DBA's transaction or a node frozen for a moment (each try
// itself waits up to the 5 s lock bound, so about twenty tries), and still fail the job soon enough for an operator to
// see it (docs/containment.md, "A busy store").
const STORE_BUSY_FIRST_WAIT_MS = 250;
const STORE_BUSY_MAX_WAIT_MS = 4_000;
export const STORE_BUSY_RETRY_MS = 120_000;

export const TERMINAL = new Set(["done", "failed", "cancelled"]);

// The statuses of a job that is over for good: no batch may commit into it, and none may change its status (a
// failed job, by contrast, carries on when resumed).
const ENDED = new Set(["done", "cancelled"]);

export interface RunOptions {
  onProgress?: (done: number, total: number) => void;
  /** Test hook: stop (as if killed) after this many batches. */
  stopAfterBatches?: number;
  /** Names this worker in the batch audit events (e.g. "cli:4242"), so a shared job shows who did what. */
  worker?: string;
  /**
   * How long (ms, real time from its first busy failure) a batch or a stage's prepare that fails because the store is
   * busy is tried again before the job fails; default STORE_BUSY_RETRY_MS (two minutes), 0 fails at the first.
   */
  busyRetryMs?: number;
}

// Another worker committed first, or the job was ended meanwhile: roll ours back and look at the job again.
class CursorMoved extends Error {}

/**
 * Records a failure of job `job` — the job `failed` with the reason, and a `contain.job.failed` event — and returns
 * the error to throw: the job's own coded error when its stored state was refused (resuming cannot help) or its
 * creator no longer stands behind it (src/contain/creator.ts), otherwise one saying it can be resumed. Best effort:
 * when the database is what failed, the thrown error still tells the caller. Only a job still under way is marked
 * failed: another worker may have finished it meanwhile (this one lost a deadlock, say), and a done job must not read
 * as failed, in the table or in the audit log. The event names the job's acting actor (actingActor): after a takeover,
 * the operator answering for it.
 */
export async function recordFailure(deps: Pick<ContainDeps, "jobs" | "audit">, job: Pick<Job<unknown>, "id" | "kind" | "actor" | "spec">, stage: string | null, error: unknown, worker = ""): Promise<Error> {
  const reason = failureReason(error);
  // The lock that failed the run may still be held when its failure is written: one more try a moment later, and if the
  // mark still cannot be written the error says so (the job then reads as under way, and resuming it is still right).
  let unrecorded = false;
  const marked = await onceMoreIfBusy(() => deps.jobs.markFailed(job.id, reason)).catch(() => ((unrecorded = true), true));
  if (marked) await onceMoreIfBusy(() => deps.audit.append({ type: "contain.job.failed", actor: actingActor(job), subject: job.id, data: { kind: job.kind, stage, error: reason, worker } })).catch(() => {});
  // Both say what must happen before it can go on (a repair; an administrator taking it over): not "resume it".
  return isCorruptJobError(error) || isCreatorLostError(error) ? error : containErrors.failed(job.id, { cause: error, unrecorded });
}

// How long a failure's record that met a busy store waits before its one more try.
const RECORD_RETRY_WAIT_MS = 1_000;

/** Runs `work`, and once more after RECORD_RETRY_WAIT_MS when it failed because the store was busy. */
async function onceMoreIfBusy<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (storeBusyError(error) === null) throw error;
    await new Promise((resolve) => setTimeout(resolve, RECORD_RETRY_WAIT_MS));
    return work();
  }
}

type Outcome = "ran" | "moved" | "busy" | "advanced";

/**
 * Runs (or resumes) a job's stages until it is done. Several workers may run the same job: claimed stages
 * hand each batch to one worker (a batch's claim and its cursor update commit together), and sequential
 * stages lock the job row for each step (FOR UPDATE on PostgreSQL; SQLite's write lock is taken at BEGIN).
 */
export async function runStages(deps: ContainDeps, jobId: string, stages: Stage[], options: RunOptions = {}): Promise<Job> {
  const { database, jobs, audit, clock } = deps;
  const postgres = database.dialect === "postgres";
  const worker = options.worker ?? "";
  let batches = 0;
  const cursorOf = (text: string | null): Cursor => parseCursor(jobId, text, stages.length);
  const claimsOf = (p: string | null, stage: ClaimedStage): Claims => parseClaims(jobId, p, stage.batches);

  async function lockJob(trx: Kysely<Schema>): Promise<{ cursor: string | null; status: string; done: number; counts: string }> {
    let q = trx.selectFrom("jobs").select(["cursor", "status", "done", "counts"]).where("id", "=", jobId);
    if (postgres) q = q.forUpdate();
    const row = await q.executeTakeFirstOrThrow();
    return { ...row, done: Number(row.done) };
  }

  /**
   * Moves the cursor (adding counts and done) under the job row lock; completes the job past the last stage. Never
   * over a job that has ended (done, cancelled): the callers look at the status under the same lock, and the
   * statement says so again; should it find the job ended, the whole batch rolls back.
   */
  async function commit(trx: Kysely<Schema>, locked: { done: number; counts: string }, job: Job, next: Cursor, processed: number, added: Record<string, number>): Promise<void> {
    const counts = JSON.parse(locked.counts) as Record<string, number>;
    for (const [k, v] of Object.entries(added)) counts[k] = (counts[k] ?? 0) + v;
    const now = clock.now();
    const finished = next.s >= stages.length;
    // A job under way has no finish time and no error: a failed job that is resumed sheds those of its failure with
    // its first committed batch. Left in place, the undo of a later job read the stale finish time as "this job
    // was over before mine began" and released users this one still held (coveredByOtherJobs), and the job's
    // rate was measured up to its old failure. The finish epoch orders the end among other jobs by the database's
    // counter, not by this node's clock (docs/decisions/0010-job-order-by-epoch.md).
    const result = await trx.updateTable("jobs").set({
      cursor: JSON.stringify(next), done: locked.done + processed, counts: JSON.stringify(counts), updated_at: now,
      ...(finished ? { status: "done", error: null, finished_at: now, finished_epoch: epochNow() } : { status: "running", error: null, finished_at: null, finished_epoch: null }),
    }).where("id", "=", jobId).where("status", "not in", [...ENDED]).executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) throw new CursorMoved();
    if (finished) {
      await audit.appendIn(trx, { type: "contain.job.completed", actor: actingActor(job), subject: jobId, data: { kind: job.kind, done: locked.done + processed, counts } });
    }
  }

  async function claimedBatch(trx: Kysely<Schema>, job: Job, s: number, stage: ClaimedStage): Promise<Outcome> {
    const read = async (): Promise<{ cursor: Cursor; status: string }> => {
      const row = await trx.selectFrom("jobs").select(["cursor", "status"]).where("id", "=", jobId).executeTakeFirstOrThrow();
      return { cursor: cursorOf(row.cursor), status: row.status };
    };
    // A job ended (cancelled, or done by another worker) after this worker read it gets no further batch. On SQLite
    // this transaction holds the write lock from BEGIN, so what it reads here stands until it commits; on PostgreSQL
    // the status is read again under the job row's lock before the commit.
    const seen = await read();
    if (ENDED.has(seen.status) || seen.cursor.s !== s) return "moved";
    const claims = claimsOf(seen.cursor.p, stage);
    const open = new Set(claims.d);
    const candidates: number[] = [];
    for (let b = claims.w; b < stage.batches && candidates.length < CLAIM_WINDOW; b++) if (!open.has(b)) candidates.push(b);
    if (candidates.length === 0) {
      // Every batch is done: the first worker to lock the job row moves on to the next stage.
      const locked = await lockJob(trx);
      if (ENDED.has(locked.status)) return "moved";
      const now = cursorOf(locked.cursor);
      if (now.s !== s || claimsOf(now.p, stage).w < stage.batches) return "moved";
      await commit(trx, locked, job, { s: s + 1, p: null }, 0, {});
      return "advanced";
    }
    const batch = await stage.claim(trx, candidates);
    if (batch === null) return "busy";
    // The claim is ours; whoever held it before has committed, so its mark is visible now if it did the batch.
    // The stage is compared before the position is read as claims: past this stage it is another stage's.
    const after = await read();
    if (ENDED.has(after.status) || after.cursor.s !== s) return "moved";
    const mark = claimsOf(after.cursor.p, stage);
    if (batch < mark.w || mark.d.includes(batch)) return "moved";
    const result = await stage.run(trx, batch);
    const locked = await lockJob(trx);
    // Ended while the batch ran (PostgreSQL: another transaction could, until this lock): the batch rolls back.
    if (ENDED.has(locked.status)) throw new CursorMoved();
    const current = cursorOf(locked.cursor);
    if (current.s !== s) throw new CursorMoved();
    const merged = markDone(claimsOf(current.p, stage), batch);
    const next: Cursor = merged.w >= stage.batches ? { s: s + 1, p: null } : { s, p: JSON.stringify(merged) };
    for (const event of result.events ?? []) await audit.appendIn(trx, event);
    await audit.appendIn(trx, { type: "contain.job.batch", actor: actingActor(job), subject: jobId, data: { stage: stage.name, batch, ...result.audit, processed: result.processed, counts: result.counts, worker } });
    await commit(trx, locked, job, next, result.processed, result.counts);
    return "ran";
  }

  async function sequentialStep(trx: Kysely<Schema>, job: Job, cursor: Cursor, stage: SequentialStage | undefined, prepared: Record<string, unknown> | null): Promise<Outcome> {
    const locked = await lockJob(trx);
    // What this worker's preparation made (`prepared`: set only when it ran), named even though the job moved on
    // without it, or the key in use could be one no audit event names.
    const namePrepared = async (why: Record<string, unknown>): Promise<void> => {
      if (stage?.prepare && prepared !== null) await audit.appendIn(trx, { type: "contain.job.prepared", actor: actingActor(job), subject: jobId, data: { stage: stage.name, ...prepared, worker, ...why } });
    };
    if (locked.cursor !== job.cursor) {
      // Another worker (a second node that picked the same job up) recorded this stage's preparation first, while this
      // one prepared too: rotate-keys' second data key is the newer, so the current one, and the steps move every
      // value to it.
      await namePrepared({ raced: true });
      return "moved";
    }
    if (ENDED.has(locked.status)) {
      // Cancelled while this worker prepared the stage: rotate-keys' new data key is current from now on.
      await namePrepared({ jobEnded: locked.status });
      return "moved";
    }
    if (!stage) {
      // Past the last stage (the cursor was checked: nothing else has no stage): the job completes.
      await commit(trx, locked, job, { s: cursor.s, p: null }, 0, {});
      return "advanced";
    }
    if (stage.prepare && cursor.p === null && !cursor.r) {
      // The prepare is recorded (and audited, with what it made); steps follow.
      await audit.appendIn(trx, { type: "contain.job.prepared", actor: actingActor(job), subject: jobId, data: { stage: stage.name, ...(prepared ?? {}), worker } });
      await commit(trx, locked, job, { s: cursor.s, p: null, r: 1 }, 0, {});
      return "advanced";
    }
    const result = await stage.step(trx, cursor.p);
    const next: Cursor = result.next === null ? { s: cursor.s + 1, p: null } : { s: cursor.s, p: result.next, ...(cursor.r ? { r: 1 as const } : {}) };
    if (result.processed > 0 || Object.keys(result.counts).length > 0) {
      await audit.appendIn(trx, { type: "contain.job.batch", actor: actingActor(job), subject: jobId, data: { stage: stage.name, from: cursor.p, to: result.next, processed: result.processed, counts: result.counts, worker } });
    }
    await commit(trx, locked, job, next, result.processed, result.counts);
    return "ran";
  }

  const failed = (job: Job, stage: Stage | undefined, error: unknown): Promise<Error> => recordFailure(deps, job, stage?.name ?? null, error, worker);
  const busyBudget = options.busyRetryMs ?? STORE_BUSY_RETRY_MS;

  /**
   * Runs `work` (a batch's transaction, a stage's prepare), and while it fails because the store is busy runs it again
   * after a backoff, within the budget: its transaction rolled back whole (a prepare tolerates a re-run), so nothing
   * applies twice. Returns null when the job ended (cancelled) during a wait. Any other error is thrown as it is; a
   * store still busy past the budget as BULWARK_ERR_DB_BUSY saying how long it waited (no audit event per try: the
   * job's failure names it). Real time, not the clock's: the waits it bounds (lock_timeout, the backoff) are real.
   */
  async function whileBusy<T>(work: () => Promise<T>): Promise<T | null> {
    const began = performance.now();
    let firstFailureAt: number | null = null;
    let tries = 0;
    let wait = STORE_BUSY_FIRST_WAIT_MS;
    for (;;) {
      try {
        return await work();
      } catch (error) {
        if (storeBusyError(error) === null) throw error;
        const now = performance.now();
        firstFailureAt ??= now;
        tries++;
        if (now - firstFailureAt + wait > busyBudget) {
          const seconds = Math.round((now - began) / 100) / 10;
          const what = isSQLiteBusy(error)
            ? "SQLite: another process held the database's write lock past the busy timeout"
            : `SQLSTATE ${String((error as { code?: unknown }).code)}: a lock another session holds, or a statement timeout`;
          throw new Unavailable("BULWARK_ERR_DB_BUSY",
            `the store stayed busy (BULWARK_ERR_DB_BUSY): ${tries} ${tries === 1 ? "try" : "tries"} over ${seconds} s each waited past a bound (${what})`,
            STORE_BUSY_RETRY_SECONDS, { cause: error });
        }
        await new Promise((resolve) => setTimeout(resolve, wait));
        wait = Math.min(wait * 2, STORE_BUSY_MAX_WAIT_MS);
        // A cancel (or another worker finishing the job) stops the retrying.
        if (ENDED.has((await jobs.get(jobId)).status)) return null;
      }
    }
  }

  for (;;) {
    // A turn for the event loop between batches: on SQLite every query settles synchronously, so a job run
    // inside the server (resumed at start, or started through the API) would otherwise starve its requests.
    await new Promise((resolve) => setImmediate(resolve));
    const job = await jobs.get<Record<string, unknown>>(jobId);
    if (ENDED.has(job.status)) return job;
    // The stored cursor is checked before anything runs: a corrupted one fails the job, named, with nothing applied.
    let cursor: Cursor;
    try {
      cursor = cursorOf(job.cursor);
      const current = stages[cursor.s];
      if (current && isClaimed(current)) claimsOf(cursor.p, current);
    } catch (error) {
      throw await failed(job, undefined, error);
    }
    const stage = stages[cursor.s];
    let prepared: Record<string, unknown> | null = null;
    if (stage && !isClaimed(stage) && stage.prepare && cursor.p === null && !cursor.r) {
      // A setup step fails like a batch does: the job is marked failed and can be resumed, not left `running`.
      const prepare = stage.prepare.bind(stage);
      try {
        const made = await whileBusy(async () => (await prepare()) ?? {});
        if (made === null) continue;
        prepared = made;
      } catch (error) {
        throw await failed(job, stage, error);
      }
    }
    if (options.stopAfterBatches !== undefined && batches >= options.stopAfterBatches) return jobs.get<Record<string, unknown>>(jobId);
    if (stage && !isClaimed(stage) && stage.beforeStep) {
      const beforeStep = stage.beforeStep.bind(stage);
      try {
        await whileBusy(() => beforeStep(cursor.p));
      } catch (error) {
        throw await failed(job, stage, error);
      }
    }
    let outcome: Outcome | null;
    try {
      outcome = await whileBusy(() => database.transaction((trx) =>
        stage && isClaimed(stage) ? claimedBatch(trx, job, cursor.s, stage) : sequentialStep(trx, job, cursor, stage, prepared),
      ));
    } catch (error) {
      if (error instanceof CursorMoved) continue;
      throw await failed(job, stage, error);
    }
    if (outcome === null) continue;
    if (outcome === "busy") {
      await new Promise((resolve) => setTimeout(resolve, BUSY_WAIT_MS));
      continue;
    }
    if (outcome !== "ran") continue;
    batches++;
    const after = await jobs.get<Record<string, unknown>>(jobId);
    options.onProgress?.(after.done, after.total);
  }
}
