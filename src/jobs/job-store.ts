// Resumable jobs: one row per job with a cursor (where the last committed batch ended), counts, and a
// status. A batch commits its changes and the cursor together, so a job killed at any moment resumes
// at the first uncommitted batch and never applies one twice.
import type { Kysely, Selectable } from "kysely";
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

export function toJob<Spec>(r: Selectable<JobsTable>): Job<Spec> {
  return {
    id: r.id, kind: r.kind, status: r.status as JobStatus, spec: JSON.parse(r.spec) as Spec, cursor: r.cursor,
    total: Number(r.total), done: Number(r.done), counts: JSON.parse(r.counts) as Record<string, number>,
    actor: r.actor, incidentId: r.incident_id, error: r.error,
    createdAt: Number(r.created_at), updatedAt: Number(r.updated_at), finishedAt: r.finished_at === null ? null : Number(r.finished_at),
  };
}

export const jobErrors = {
  notFound: (id: string): BulwarkError => new BulwarkError("BULWARK_ERR_JOB_NOT_FOUND", "not-found", `no job with id "${id}"`),
  finished: (id: string, status: string): BulwarkError => new BulwarkError("BULWARK_ERR_JOB_FINISHED", "conflict", `job ${id} is ${status}; nothing to resume`),
};

export interface BatchCommit {
  /** Where the next batch starts; null when the job is complete. */
  cursor: string | null;
  /** Items handled in this batch (added to `done`). */
  processed: number;
  /** Per-outcome counts to add (e.g. { wrapped: 498, skipped: 2 }). */
  counts: Record<string, number>;
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

  async create<Spec>(input: { kind: string; spec: Spec; total: number; actor: string; incidentId?: string | null }, db: Kysely<Schema> = this.#database.db): Promise<Job<Spec>> {
    const now = this.#clock.now();
    const row: Selectable<JobsTable> = {
      id: newId("job", this.#random), kind: input.kind, status: "pending", spec: JSON.stringify(input.spec), cursor: null,
      total: input.total, done: 0, counts: "{}", actor: input.actor, incident_id: input.incidentId ?? null, error: null,
      created_at: now, updated_at: now, finished_at: null,
    };
    await db.insertInto("jobs").values(row).execute();
    return toJob<Spec>(row);
  }

  async get<Spec>(id: string, db: Kysely<Schema> = this.#database.db): Promise<Job<Spec>> {
    const row = await db.selectFrom("jobs").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) throw jobErrors.notFound(id);
    return toJob<Spec>(row);
  }

  async list(options: { kind?: string; status?: JobStatus[]; limit?: number } = {}): Promise<Job[]> {
    let q = this.#database.db.selectFrom("jobs").selectAll().orderBy("created_at", "desc").limit(Math.min(options.limit ?? 50, 500));
    if (options.kind) q = q.where("kind", "=", options.kind);
    if (options.status?.length) q = q.where("status", "in", options.status);
    return (await q.execute()).map((r) => toJob(r));
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
    const result = await this.#database.db.updateTable("jobs").set({ status: "failed", error, updated_at: now, finished_at: now })
      .where("id", "=", id).where("status", "not in", ["done", "cancelled"]).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /**
   * Ends an unfinished job with `status`, as a compare-and-set: of two runners reaching the end of one job,
   * only one gets true (and so records the ending once). False when the job had already ended.
   */
  async finishIfUnfinished(id: string, status: "done" | "failed" | "cancelled", db: Kysely<Schema> = this.#database.db): Promise<boolean> {
    const now = this.#clock.now();
    const result = await db.updateTable("jobs").set({ status, updated_at: now, finished_at: now })
      .where("id", "=", id).where("status", "in", [...UNFINISHED_STATUSES]).executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async setStatus(id: string, status: JobStatus, error: string | null = null): Promise<void> {
    const now = this.#clock.now();
    await this.#database.db
      .updateTable("jobs")
      .set({ status, error, updated_at: now, ...(status === "done" || status === "failed" || status === "cancelled" ? { finished_at: now } : {}) })
      .where("id", "=", id)
      .execute();
  }

  /**
   * Inside the batch's own transaction: advances the cursor only if it is still `from` (another worker,
   * or a previous run of this batch, has not already committed it). Returns false when it moved.
   */
  async commitBatch(trx: Kysely<Schema>, id: string, from: string | null, commit: BatchCommit): Promise<boolean> {
    const row = await trx.selectFrom("jobs").select(["cursor", "counts", "done"]).where("id", "=", id).executeTakeFirst();
    if (!row || row.cursor !== from) return false;
    const counts = JSON.parse(row.counts) as Record<string, number>;
    for (const [k, v] of Object.entries(commit.counts)) counts[k] = (counts[k] ?? 0) + v;
    const result = await trx
      .updateTable("jobs")
      .set({ cursor: commit.cursor, done: Number(row.done) + commit.processed, counts: JSON.stringify(counts), updated_at: this.#clock.now(), status: "running" })
      .where("id", "=", id)
      .where((eb) => (from === null ? eb("cursor", "is", null) : eb("cursor", "=", from)))
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}
