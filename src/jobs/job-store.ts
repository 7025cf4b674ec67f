// Resumable jobs: one row per job with a cursor (where the last committed batch ended), counts, and a
// status. A batch commits its changes and the cursor together, so a job killed at any moment resumes
// at the first uncommitted batch and never applies one twice.
import { sql, type Kysely, type RawBuilder, type Selectable } from "kysely";
import { newId } from "../crypto/tokens.ts";
import type { Clock } from "../lib/clock.ts";
import { BulwarkError } from "../lib/errors.ts";
import type { RandomSource } from "../lib/random.ts";
import type { Database } from "../store/database.ts";
import type { JobsTable, Schema } from "../store/schema.ts";

export type JobStatus = "pending" | "running" | "done" | "failed" | "cancelled";

/** The statuses of a job that has not ended: one to resume after its process died. */
export const UNFINISHED_STATUSES: readonly JobStatus[] = ["pending", "running"];

/** The statuses of a job that can still be carried on: unfinished, or failed part-way (a resume picks it up). */
export const RESUMABLE_STATUSES: readonly JobStatus[] = [...UNFINISHED_STATUSES, "failed"];

export interface Job<Spec = Record<string, unknown>> {
  id: string;
  kind: string;
  status: JobStatus;
  spec: Spec;
  cursor: string | null;
  total: number;
  done: number;
  counts: Record<string, number>;
  actor: string;
  incidentId: string | null;
  error: string | null;
  createdAt: number;
  updatedAt: number;
  finishedAt: number | null;
}

/**
 * The job of a stored row. Its spec and counts are JSON written by this code, but read back from a database that an
 * operator, a restore or an attacker may have changed: a value that is not a JSON object is refused with an error
 * naming the job (jobErrors.unreadable), never a bare SyntaxError.
 */
export function toJob<Spec>(r: Selectable<JobsTable>): Job<Spec> {
  return {
    id: r.id, kind: r.kind, status: r.status as JobStatus, spec: storedObject(r.id, "spec", r.spec) as Spec, cursor: r.cursor,
    total: Number(r.total), done: Number(r.done), counts: storedObject(r.id, "counts", r.counts) as Record<string, number>,
    actor: r.actor, incidentId: r.incident_id, error: r.error,
    createdAt: Number(r.created_at), updatedAt: Number(r.updated_at), finishedAt: r.finished_at === null ? null : Number(r.finished_at),
  };
}

/**
 * Why a batch size read back from a stored spec is unusable (the text for the job kind's own coded error), or null
 * when it is a whole number from 1 to `max`: a spec is JSON an operator, a restore or an attacker may have changed.
 *
 * @example
 * storedBatchSizeProblem("100", 5000) // 'its stored spec has batch size "100", not a whole number from 1 to 5000'
 */
export function storedBatchSizeProblem(size: unknown, max: number): string | null {
  if (typeof size === "number" && Number.isInteger(size) && size >= 1 && size <= max) return null;
  return `its stored spec has batch size ${JSON.stringify(size) ?? "undefined"}, not a whole number from 1 to ${max}`;
}

/**
 * A job's stored JSON column `column`, which must hold an object.
 *
 * @example
 * const spec = storedObject(row.id, "spec", row.spec) as Partial<ContainSpec>;
 */
export function storedObject(id: string, column: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw jobErrors.unreadable(id, `its stored ${column} is not JSON`, { cause: error });
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw jobErrors.unreadable(id, `its stored ${column} is not a JSON object`);
  return value as Record<string, unknown>;
}

/**
 * storedObject, or null when the stored text is no JSON object: for a reader that must go on past a row someone
 * altered (cancelling it, or weighing what it decided) rather than stop at it. Any other error is thrown.
 *
 * @example
 * const spec = storedObjectOrNull(row.id, "spec", row.spec); // null: unreadable
 */
export function storedObjectOrNull(id: string, column: string, text: string): Record<string, unknown> | null {
  try {
    return storedObject(id, column, text);
  } catch (error) {
    if (error instanceof BulwarkError && error.code === "BULWARK_ERR_JOB_UNREADABLE") return null;
    throw error;
  }
}

/** A job row that could not be read (jobErrors.unreadable): reported by `listReadable`, and left as it is. */
export interface UnreadableJob {
  id: string;
  kind: string;
  status: string;
  /** As the row says (its own column, readable whatever its spec holds). */
  createdAt: number;
  error: BulwarkError;
}

/** Where a page of jobs ends: the last job's creation time and id (listings go newest first, then by id). */
export interface JobPosition {
  createdAt: number;
  id: string;
}

/**
 * The value the database's order counter holds now, as an expression for an UPDATE: what a job records when it ends.
 * The counter is migration 16's (docs/decisions/0009-revocation-epochs.md), read the way an issued session reads it;
 * jobs are ordered by it rather than by the clocks of the nodes that ran them (docs/decisions/0010-job-order-by-epoch.md).
 */
export function epochNow(): RawBuilder<number> {
  return sql<number>`(SELECT value FROM revocation_counter WHERE id = 1)`;
}

/** Takes the counter's next value (a job's creation): later than every value any job has read or taken before. */
async function takeEpoch(db: Kysely<Schema>): Promise<number> {
  const row = await db.updateTable("revocation_counter").set({ value: sql<number>`value + 1` }).where("id", "=", 1).returning("value").executeTakeFirst();
  // Written by migration 16 and never deleted.
  if (!row) throw new Error("revocation_counter has no row: the database was altered (migration 16 writes it)");
  return Number(row.value);
}

export const jobErrors = {
  notFound: (id: string): BulwarkError => new BulwarkError("BULWARK_ERR_JOB_NOT_FOUND", "not-found", `no job with id "${id}"`),
  finished: (id: string, status: string): BulwarkError => new BulwarkError("BULWARK_ERR_JOB_FINISHED", "conflict", `job ${id} is ${status}; nothing to resume`),
  unreadable: (id: string, why: string, options: { cause?: unknown } = {}): BulwarkError =>
    new BulwarkError("BULWARK_ERR_JOB_UNREADABLE", "runtime", `job ${id} cannot be read: ${why}; its row is left as it is for an operator to repair`, options),
};

/**
 * The Idempotency-Key of the API request that creates a job (migration 22): `key` is "<caller's user id>:<key>", so
 * each caller has keys of its own; `fingerprint` hashes the request, so the key reused for another request is told
 * apart from a retry.
 */
export interface RequestKey {
  key: string;
  fingerprint: string;
}

/** The unique index of migration 22: PostgreSQL names it (SQLSTATE 23505), node:sqlite names the column. */
export function isRequestKeyCollision(cause: unknown): boolean {
  const e = cause as { code?: unknown; constraint?: unknown; message?: unknown } | null;
  if (e === null || typeof e !== "object") return false;
  if (e.code === "23505") return e.constraint === "jobs_request_key";
  return typeof e.message === "string" && e.message.startsWith("UNIQUE constraint failed: ") && e.message.includes("jobs.request_key");
}

export interface BatchCommit {
  /** Where the next batch starts; null when the job is complete. */
  cursor: string | null;
  /** Items handled in this batch (added to `done`). */
  processed: number;
  /** Per-outcome counts to add (e.g. { wrapped: 498, skipped: 2 }). */
  counts: Record<string, number>;
  /**
   * For batches that leave the cursor where it is (a closing sweep past the end): the job's `done` as the caller read
   * it before reading its batch. The commit is refused when another runner committed meanwhile, as a moved cursor
   * refuses a walk's batch: every commit adds to `done`, so it tells them apart where the cursor cannot.
   */
  expectDone?: number;
}

export class JobStore {
  readonly #database: Database;
  readonly #clock: Clock;
  readonly #random: RandomSource;

  constructor(deps: { database: Database; clock: Clock; random: RandomSource }) {
    this.#database = deps.database;
    this.#clock = deps.clock;
    this.#random = deps.random;
  }

  /**
   * Inserts a pending job. `requestKey`: the Idempotency-Key of the API request creating it (RequestKey); a second
   * job with the same key fails the insert with the database's unique violation (isRequestKeyCollision).
   */
  async create<Spec>(input: { kind: string; spec: Spec; total: number; actor: string; incidentId?: string | null; requestKey?: RequestKey | null }, db: Kysely<Schema> = this.#database.db): Promise<Job<Spec>> {
    const now = this.#clock.now();
    // Taken before the insert (in the caller's transaction when there is one): a gap left by a rollback costs nothing.
    const createdEpoch = await takeEpoch(db);
    const row: Selectable<JobsTable> = {
      id: newId("job", this.#random), kind: input.kind, status: "pending", spec: JSON.stringify(input.spec), cursor: null,
      total: input.total, done: 0, counts: "{}", actor: input.actor, incident_id: input.incidentId ?? null, error: null,
      created_at: now, updated_at: now, finished_at: null, created_epoch: createdEpoch, finished_epoch: null,
      request_key: input.requestKey?.key ?? null, request_fingerprint: input.requestKey?.fingerprint ?? null,
    };
    await db.insertInto("jobs").values(row).execute();
    return toJob<Spec>(row);
  }

  async get<Spec>(id: string, db: Kysely<Schema> = this.#database.db): Promise<Job<Spec>> {
    const row = await db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw jobErrors.notFound(id);
    return toJob<Spec>(row);
  }

  /** The job created with request key `key` (RequestKey.key) and the fingerprint it was created with, or null. */
  async byRequestKey(key: string, db: Kysely<Schema> = this.#database.db): Promise<{ id: string; fingerprint: string | null } | null> {
    const row = await db.selectFrom("jobs").select(["id", "request_fingerprint"]).where("request_key", "=", key).executeTakeFirst();
    return row ? { id: row.id, fingerprint: row.request_fingerprint } : null;
  }

  /** The newest jobs first. Throws the coded error of the first row it cannot read (use `listReadable` to go on past it). */
  async list(options: { kind?: string; status?: JobStatus[]; limit?: number } = {}): Promise<Job[]> {
    const { jobs, unreadable } = await this.listReadable(options);
    if (unreadable[0]) throw unreadable[0].error;
    return jobs;
  }

  /**
   * Like `list`, but each row is read on its own: one that cannot be read (its spec or counts is not a JSON object)
   * is returned in `unreadable` with its error, and the others are listed. Nothing is written: the broken row stays
   * as it is for an operator. The server's start-up resume uses this, so one bad row does not stop every job.
   */
  async listReadable(options: { kind?: string; kinds?: string[]; status?: JobStatus[]; limit?: number; after?: JobPosition | null } = {}): Promise<{ jobs: Job[]; unreadable: UnreadableJob[] }> {
    let q = this.#database.db.selectFrom("jobs").selectAll().orderBy("created_at", "desc").orderBy("id").limit(Math.min(options.limit ?? 50, 500));
    if (options.kind) q = q.where("kind", "=", options.kind);
    if (options.kinds?.length) q = q.where("kind", "in", options.kinds);
    const after = options.after;
    if (after) q = q.where((eb) => eb.or([eb("created_at", "<", after.createdAt), eb.and([eb("created_at", "=", after.createdAt), eb("id", ">", after.id)])]));
    if (options.status?.length) q = q.where("status", "in", options.status);
    const jobs: Job[] = [];
    const unreadable: UnreadableJob[] = [];
    for (const row of await q.execute()) {
      try {
        jobs.push(toJob(row));
      } catch (error) {
        if (!(error instanceof BulwarkError)) throw error;
        unreadable.push({ id: row.id, kind: row.kind, status: row.status, createdAt: Number(row.created_at), error });
      }
    }
    return { jobs, unreadable };
  }

  /** Jobs that were running or pending when their process died: the ones to resume. */
  async unfinished(kind?: string): Promise<Job[]> {
    return this.list({ ...(kind ? { kind } : {}), status: [...UNFINISHED_STATUSES], limit: 500 });
  }

  /** The newest unfinished job of `kind` (ties broken by id, so every reader picks the same one), or null. */
  async newestUnfinished<Spec>(kind: string, db: Kysely<Schema> = this.#database.db): Promise<Job<Spec> | null> {
    const row = await db.selectFrom("jobs").selectAll().where("kind", "=", kind).where("status", "in", [...UNFINISHED_STATUSES])
      .orderBy("created_at", "desc").orderBy("id", "desc").limit(1).executeTakeFirst();
    return row ? toJob<Spec>(row) : null;
  }

  /**
   * Records that a run of the job failed with `error`, unless the job is done or cancelled (another worker may
   * have finished it meanwhile: a done job must not read as failed). A failed job stays resumable. Returns
   * whether it was marked.
   */
  async markFailed(id: string, error: string): Promise<boolean> {
    const now = this.#clock.now();
    const result = await this.#database.db.updateTable("jobs").set({ status: "failed", error, updated_at: now, finished_at: now, finished_epoch: epochNow() })
      .where("id", "=", id).where("status", "not in", ["done", "cancelled"]).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Ends an unfinished job with `status`, as a compare-and-set: of two runners reaching the end of one job,
   * only one gets true (and so records the ending once). False when the job had already ended.
   */
  async finishIfUnfinished(id: string, status: "done" | "failed" | "cancelled", db: Kysely<Schema> = this.#database.db): Promise<boolean> {
    const now = this.#clock.now();
    const result = await db.updateTable("jobs").set({ status, updated_at: now, finished_at: now, finished_epoch: epochNow() })
      .where("id", "=", id).where("status", "in", [...UNFINISHED_STATUSES]).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async setStatus(id: string, status: JobStatus, error: string | null = null): Promise<void> {
    const now = this.#clock.now();
    await this.#database.db
      .updateTable("jobs")
      .set({ status, error, updated_at: now, ...(status === "done" || status === "failed" || status === "cancelled" ? { finished_at: now, finished_epoch: epochNow() } : {}) })
      .where("id", "=", id)
      .execute();
  }

  /**
   * Inside the batch's own transaction: advances the cursor only if it is still `from` (another worker,
   * or a previous run of this batch, has not already committed it) and the job can still be carried on (pending,
   * running, or failed part-way). Returns false when the cursor moved or the job has ended (done, cancelled): an
   * ended job is never reopened. A failed job carried on sheds its failure (error, finish time), as the containment
   * engine's commit does: a job under way has neither.
   */
  async commitBatch(trx: Kysely<Schema>, id: string, from: string | null, commit: BatchCommit): Promise<boolean> {
    const row = await trx.selectFrom("jobs").select(["cursor", "counts", "done", "status"]).where("id", "=", id).executeTakeFirst();
    if (!row || row.cursor !== from || !RESUMABLE_STATUSES.includes(row.status as JobStatus)) return false;
    if (commit.expectDone !== undefined && Number(row.done) !== commit.expectDone) return false;
    const counts = storedObject(id, "counts", row.counts) as Record<string, number>;
    for (const [k, v] of Object.entries(commit.counts)) counts[k] = (counts[k] ?? 0) + v;
    const result = await trx
      .updateTable("jobs")
      .set({
        cursor: commit.cursor, done: Number(row.done) + commit.processed, counts: JSON.stringify(counts), updated_at: this.#clock.now(),
        status: "running", error: null, finished_at: null, finished_epoch: null,
      })
      .where("id", "=", id)
      .where((eb) => (from === null ? eb("cursor", "is", null) : eb("cursor", "=", from)))
      // The compare-and-set covers the status too: the read above may predate another transaction ending the job.
      .where("status", "in", [...RESUMABLE_STATUSES])
      .$if(commit.expectDone !== undefined, (q) => q.where("done", "=", commit.expectDone as number))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
