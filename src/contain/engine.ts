// The stage runner behind every containment job: a job is a list of stages, each advanced one batch at a
// time inside a transaction that also moves the job's cursor and appends the batch's audit event, so a job
// killed at any moment (kill -9, power loss) resumes at the first uncommitted batch and applies none twice.
import type { Kysely } from "kysely";
import type { AuditLog } from "../audit/audit-log.ts";
import type { Keyring } from "../crypto/keyring.ts";
import type { Job, JobStore } from "../jobs/job-store.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import type { Schema } from "../store/schema.ts";
import { containErrors } from "./errors.ts";
import type { ResetNotifier } from "./lever.ts";
import { containDB, type ContainSchema } from "./tables.ts";

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

export interface Stage {
  name: string;
  /** Runs outside any transaction when the stage starts (e.g. creating a key); must tolerate a re-run after a crash. */
  prepare?(): Promise<void>;
  step(trx: Kysely<ContainSchema>, position: string | null): Promise<StepResult>;
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

export const TERMINAL = new Set(["done", "failed", "cancelled"]);

export interface RunOptions {
  onProgress?: (done: number, total: number) => void;
  /** Test hook: stop (as if killed) after this many batches. */
  stopAfterBatches?: number;
}

// Another worker committed the batch first: roll ours back and carry on from where it left the cursor.
class CursorMoved extends Error {}

/**
 * Runs (or resumes) a job's stages until it is done. Several workers may run the same job: each batch locks
 * the job row (FOR UPDATE on PostgreSQL; SQLite's write lock is taken at BEGIN), so batches never overlap.
 */
export async function runStages(deps: ContainDeps, jobId: string, stages: Stage[], options: RunOptions = {}): Promise<Job> {
  const { database, jobs, audit, clock } = deps;
  let batches = 0;
  for (;;) {
    const job = await jobs.get<Record<string, unknown>>(jobId);
    if (TERMINAL.has(job.status) && job.status !== "failed") return job;
    const cursor = parseCursor(job.cursor);
    const stage = stages[cursor.s];
    if (stage?.prepare && cursor.p === null && !cursor.r) await stage.prepare();
    if (options.stopAfterBatches !== undefined && batches >= options.stopAfterBatches) return jobs.get<Record<string, unknown>>(jobId);
    try {
      await database.transaction(async (trx) => {
        if (database.dialect === "postgres") {
          await trx.selectFrom("jobs").select("id").where("id", "=", jobId).forUpdate().execute();
        }
        const fresh = await trx.selectFrom("jobs").select(["cursor", "status"]).where("id", "=", jobId).executeTakeFirst();
        if (!fresh || fresh.cursor !== job.cursor) throw new CursorMoved();
        if (fresh.status === "done") return;
        let next: Cursor;
        let result: StepResult = { counts: {}, processed: 0, next: null };
        if (!stage) {
          next = { s: cursor.s, p: null };
        } else if (stage.prepare && cursor.p === null && !cursor.r) {
          next = { s: cursor.s, p: null, r: 1 }; // the prepare is recorded; steps follow
        } else {
          result = await stage.step(containDB(trx), cursor.p);
          next = result.next === null ? { s: cursor.s + 1, p: null } : { s: cursor.s, p: result.next, ...(cursor.r ? { r: 1 as const } : {}) };
        }
        const finished = next.s >= stages.length;
        const moved = await jobs.commitBatch(trx as Kysely<Schema>, jobId, job.cursor, { cursor: JSON.stringify(next), processed: result.processed, counts: result.counts });
        if (!moved) throw new CursorMoved();
        if (result.processed > 0 || Object.keys(result.counts).length > 0) {
          await audit.appendIn(trx, { type: "contain.job.batch", actor: job.actor, subject: jobId, data: { stage: stage?.name ?? "", from: cursor.p, to: result.next, processed: result.processed, counts: result.counts } });
        }
        if (finished) {
          const now = clock.now();
          await trx.updateTable("jobs").set({ status: "done", error: null, finished_at: now, updated_at: now }).where("id", "=", jobId).execute();
          const row = await trx.selectFrom("jobs").select(["counts", "done"]).where("id", "=", jobId).executeTakeFirstOrThrow();
          await audit.appendIn(trx, { type: "contain.job.completed", actor: job.actor, subject: jobId, data: { kind: job.kind, done: Number(row.done), counts: JSON.parse(row.counts) as Record<string, number> } });
        }
      });
    } catch (error) {
      if (error instanceof CursorMoved) continue;
      await jobs.setStatus(jobId, "failed", error instanceof Error ? error.message.slice(0, 500) : String(error)).catch(() => {});
      throw containErrors.failed(jobId, { cause: error });
    }
    batches++;
    const after = await jobs.get<Record<string, unknown>>(jobId);
    options.onProgress?.(after.done, after.total);
  }
}
