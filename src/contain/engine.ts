// The stage runner behind every containment job: a job is a list of stages, each advanced one batch at a
// time inside a transaction that also moves the job's cursor and appends the batch's audit event, so a job
// killed at any moment (kill -9, power loss) resumes at the first uncommitted batch and applies none twice.
// Several workers (processes, or nodes on one PostgreSQL) may run one job at once: the batches of a
// "claimed" stage are independent, and each worker claims one with FOR UPDATE SKIP LOCKED before doing it.
import type { Kysely } from "kysely";
import type { AuditInput, AuditLog } from "../audit/audit-log.ts";
import type { Keyring } from "../crypto/keyring.ts";
import type { Job, JobStore } from "../jobs/job-store.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import { containErrors, failureReason } from "./errors.ts";
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

function parseCursor(text: string | null): Cursor {
  return text === null ? { s: 0, p: null } : (JSON.parse(text) as Cursor);
}

/** Progress of a claimed stage: every batch below `w` is done, and so are those listed in `d`. */
interface Claims {
  w: number;
  d: number[];
}

function parseClaims(p: string | null): Claims {
  return p === null ? { w: 0, d: [] } : (JSON.parse(p) as Claims);
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

export const TERMINAL = new Set(["done", "failed", "cancelled"]);

export interface RunOptions {
  onProgress?: (done: number, total: number) => void;
  /** Test hook: stop (as if killed) after this many batches. */
  stopAfterBatches?: number;
  /** Names this worker in the batch audit events (e.g. "cli:4242"), so a shared job shows who did what. */
  worker?: string;
}

// Another worker committed first: roll ours back and carry on from where it left the cursor.
class CursorMoved extends Error {}

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

  async function lockJob(trx: Kysely<Schema>): Promise<{ cursor: string | null; status: string; done: number; counts: string }> {
    let q = trx.selectFrom("jobs").select(["cursor", "status", "done", "counts"]).where("id", "=", jobId);
    if (postgres) q = q.forUpdate();
    const row = await q.executeTakeFirstOrThrow();
    return { ...row, done: Number(row.done) };
  }

  /** Moves the cursor (adding counts and done) under the job row lock; completes the job past the last stage. */
  async function commit(trx: Kysely<Schema>, locked: { done: number; counts: string }, job: Job, next: Cursor, processed: number, added: Record<string, number>): Promise<void> {
    const counts = JSON.parse(locked.counts) as Record<string, number>;
    for (const [k, v] of Object.entries(added)) counts[k] = (counts[k] ?? 0) + v;
    const now = clock.now();
    const finished = next.s >= stages.length;
    // A job under way has no finish time and no error: a failed job that is resumed sheds those of its failure with
    // its first committed batch. Left in place, the undo of a later job read the stale finish time as "this job
    // was over before mine began" and released users this one still held (coveredByOtherJobs), and the job's
    // rate was measured up to its old failure.
    await trx.updateTable("jobs").set({
      cursor: JSON.stringify(next), done: locked.done + processed, counts: JSON.stringify(counts), updated_at: now,
      ...(finished ? { status: "done", error: null, finished_at: now } : { status: "running", error: null, finished_at: null }),
    }).where("id", "=", jobId).execute();
    if (finished) {
      await audit.appendIn(trx, { type: "contain.job.completed", actor: job.actor, subject: jobId, data: { kind: job.kind, done: locked.done + processed, counts } });
    }
  }

  async function claimedBatch(trx: Kysely<Schema>, job: Job, s: number, stage: ClaimedStage): Promise<Outcome> {
    const read = async (): Promise<Cursor> => parseCursor((await trx.selectFrom("jobs").select("cursor").where("id", "=", jobId).executeTakeFirstOrThrow()).cursor);
    const seen = await read();
    if (seen.s !== s) return "moved";
    const claims = parseClaims(seen.p);
    const open = new Set(claims.d);
    const candidates: number[] = [];
    for (let b = claims.w; b < stage.batches && candidates.length < CLAIM_WINDOW; b++) if (!open.has(b)) candidates.push(b);
    if (candidates.length === 0) {
      // Every batch is done: the first worker to lock the job row moves on to the next stage.
      const locked = await lockJob(trx);
      const now = parseCursor(locked.cursor);
      if (now.s !== s || parseClaims(now.p).w < stage.batches) return "moved";
      await commit(trx, locked, job, { s: s + 1, p: null }, 0, {});
      return "advanced";
    }
    const batch = await stage.claim(trx, candidates);
    if (batch === null) return "busy";
    // The claim is ours; whoever held it before has committed, so its mark is visible now if it did the batch.
    const after = await read();
    const mark = parseClaims(after.p);
    if (after.s !== s || batch < mark.w || mark.d.includes(batch)) return "moved";
    const result = await stage.run(trx, batch);
    const locked = await lockJob(trx);
    const current = parseCursor(locked.cursor);
    if (current.s !== s) throw new CursorMoved();
    const merged = markDone(parseClaims(current.p), batch);
    const next: Cursor = merged.w >= stage.batches ? { s: s + 1, p: null } : { s, p: JSON.stringify(merged) };
    for (const event of result.events ?? []) await audit.appendIn(trx, event);
    await audit.appendIn(trx, { type: "contain.job.batch", actor: job.actor, subject: jobId, data: { stage: stage.name, batch, ...result.audit, processed: result.processed, counts: result.counts, worker } });
    await commit(trx, locked, job, next, result.processed, result.counts);
    return "ran";
  }

  async function sequentialStep(trx: Kysely<Schema>, job: Job, cursor: Cursor, stage: SequentialStage | undefined, prepared: Record<string, unknown> | null): Promise<Outcome> {
    const locked = await lockJob(trx);
    if (locked.cursor !== job.cursor) return "moved";
    if (locked.status === "done") return "moved";
    if (!stage) {
      await commit(trx, locked, job, { s: cursor.s, p: null }, 0, {});
      return "advanced";
    }
    if (stage.prepare && cursor.p === null && !cursor.r) {
      // The prepare is recorded (and audited, with what it made); steps follow.
      await audit.appendIn(trx, { type: "contain.job.prepared", actor: job.actor, subject: jobId, data: { stage: stage.name, ...(prepared ?? {}), worker } });
      await commit(trx, locked, job, { s: cursor.s, p: null, r: 1 }, 0, {});
      return "advanced";
    }
    const result = await stage.step(trx, cursor.p);
    const next: Cursor = result.next === null ? { s: cursor.s + 1, p: null } : { s: cursor.s, p: result.next, ...(cursor.r ? { r: 1 as const } : {}) };
    if (result.processed > 0 || Object.keys(result.counts).length > 0) {
      await audit.appendIn(trx, { type: "contain.job.batch", actor: job.actor, subject: jobId, data: { stage: stage.name, from: cursor.p, to: result.next, processed: result.processed, counts: result.counts, worker } });
    }
    await commit(trx, locked, job, next, result.processed, result.counts);
    return "ran";
  }

  /**
   * Records a failure — the job `failed` with the reason, and a `contain.job.failed` event — and returns the
   * error to throw. Best effort: when the database is what failed, the thrown error still tells the caller.
   */
  async function failed(job: Job, stage: Stage | undefined, error: unknown): Promise<Error> {
    const reason = failureReason(error);
    // Only a job still under way is marked failed: another worker may have finished it meanwhile (this one lost a
    // deadlock, say), and a done job must not read as failed, in the table or in the audit log.
    const marked = await jobs.markFailed(jobId, reason).catch(() => true);
    if (marked) await audit.append({ type: "contain.job.failed", actor: job.actor, subject: jobId, data: { kind: job.kind, stage: stage?.name ?? null, error: reason, worker } }).catch(() => {});
    return containErrors.failed(jobId, { cause: error });
  }

  for (;;) {
    // A turn for the event loop between batches: on SQLite every query settles synchronously, so a job run
    // inside the server (resumed at start, or started through the API) would otherwise starve its requests.
    await new Promise((resolve) => setImmediate(resolve));
    const job = await jobs.get<Record<string, unknown>>(jobId);
    if (TERMINAL.has(job.status) && job.status !== "failed") return job;
    const cursor = parseCursor(job.cursor);
    const stage = stages[cursor.s];
    let prepared: Record<string, unknown> | null = null;
    if (stage && !isClaimed(stage) && stage.prepare && cursor.p === null && !cursor.r) {
      // A setup step fails like a batch does: the job is marked failed and can be resumed, not left `running`.
      try {
        prepared = (await stage.prepare()) ?? {};
      } catch (error) {
        throw await failed(job, stage, error);
      }
    }
    if (options.stopAfterBatches !== undefined && batches >= options.stopAfterBatches) return jobs.get<Record<string, unknown>>(jobId);
    let outcome: Outcome;
    try {
      outcome = await database.transaction((trx) =>
        stage && isClaimed(stage) ? claimedBatch(trx, job, cursor.s, stage) : sequentialStep(trx, job, cursor, stage, prepared),
      );
    } catch (error) {
      if (error instanceof CursorMoved) continue;
      throw await failed(job, stage, error);
    }
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
