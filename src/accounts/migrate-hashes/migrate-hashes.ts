// The wrap-migration job: rewrites every wrappable (fast legacy) hash as argon2id over the legacy
// result, without any login. Keyset batches by user id; a batch is wrapped concurrently (argon2 runs in
// the libuv pool), then written in ONE transaction with its cursor and audit event, so a job killed at
// any point resumes at the first uncommitted batch and never applies one twice.
import type { Kysely } from "kysely";
import type { AuditLog } from "../../audit/audit-log.ts";
import type { JobStore, Job } from "../../jobs/job-store.ts";
import type { Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import type { PasswordContext } from "../passwords/index.ts";
import type { UserStore } from "../users/user-store.ts";

export const JOB_KIND = "migrate-hashes";

export interface MigrateDeps {
  database: Database;
  passwords: PasswordContext;
  users: UserStore;
  jobs: JobStore;
  audit: AuditLog;
}

export interface MigrateSpec {
  batch: number;
}

export interface MigrateRunOptions {
  /** Users read per batch (each batch is one transaction). */
  batch?: number;
  /** argon2 hashes in flight at once. */
  concurrency?: number;
  actor: string;
  onProgress?: (done: number, total: number) => void;
}

export interface WrappableCensus {
  total: number;
  bySchemes: Record<string, number>;
}

// Bounds the rows one transaction rewrites (its lock time) and one page the census reads.
export const MAX_BATCH = 10_000;
const PAGE = 1000;

/** Pages of (id, hash) for users with a password, in id order after `after`. */
async function page(db: Kysely<Schema>, after: string | null, limit: number): Promise<Array<{ id: string; password_hash: string }>> {
  let q = db.selectFrom("users").select(["id", "password_hash"]).where("password_hash", "is not", null).orderBy("id").limit(limit);
  if (after !== null) q = q.where("id", ">", after);
  return (await q.execute()) as Array<{ id: string; password_hash: string }>;
}

/**
 * Counts the users whose hash wrap-migration would rewrite, per scheme (what `--dry-run` prints).
 *
 * @example
 * const { total, bySchemes } = await wrappableCensus(deps); // { total: 12, bySchemes: { md5: 10, phpass: 2 } }
 */
export async function wrappableCensus(deps: Pick<MigrateDeps, "database" | "passwords">): Promise<WrappableCensus> {
  const out: WrappableCensus = { total: 0, bySchemes: {} };
  for (let after: string | null = null; ;) {
    const rows = await page(deps.database.db, after, PAGE);
    if (rows.length === 0) return out;
    for (const r of rows) {
      if (!deps.passwords.isWrappable(r.password_hash)) continue;
      const scheme = deps.passwords.identify(r.password_hash);
      out.total++;
      out.bySchemes[scheme] = (out.bySchemes[scheme] ?? 0) + 1;
    }
    after = rows[rows.length - 1]!.id;
  }
}

/**
 * The unfinished migrate-hashes job to resume (the newest), or a new one whose scope (total) is
 * resolved now. `forceNew` starts a new job even if one is unfinished.
 *
 * @example
 * const { job, resumed } = await openMigrationJob(deps, { actor: "cli:ops", batch: 500 });
 */
export async function openMigrationJob(deps: MigrateDeps, options: { actor: string; batch: number; forceNew?: boolean }): Promise<{ job: Job<MigrateSpec>; resumed: boolean }> {
  if (!options.forceNew) {
    const [unfinished] = await deps.jobs.unfinished(JOB_KIND);
    if (unfinished) {
      await deps.audit.append({ type: "users.migrate-hashes.resumed", actor: options.actor, subject: unfinished.id, data: { done: unfinished.done, total: unfinished.total } });
      return { job: await deps.jobs.get<MigrateSpec>(unfinished.id), resumed: true };
    }
  }
  const census = await wrappableCensus(deps);
  const job = await deps.jobs.create<MigrateSpec>({ kind: JOB_KIND, spec: { batch: options.batch }, total: census.total, actor: options.actor });
  await deps.audit.append({ type: "users.migrate-hashes.created", actor: options.actor, subject: job.id, data: { total: census.total, schemes: census.bySchemes } });
  return { job, resumed: false };
}

/** Runs `fn` over `items` with at most `limit` calls in flight; results keep the input order. */
async function pool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

class CursorMoved extends Error {}

/**
 * Runs (or resumes) a migrate-hashes job to completion and returns it in its final state.
 * A row whose hash changed between read and write (a login rehashed it, a lever invalidated it) is
 * left alone and counted as `skipped`: compare-and-set, never overwrite.
 *
 * @example
 * const done = await runMigration(deps, job, { actor: "cli:ops", concurrency: 4 });
 * done.counts // { wrapped: 19998, skipped: 2 }
 */
export async function runMigration(deps: MigrateDeps, job: Job<MigrateSpec>, options: MigrateRunOptions): Promise<Job<MigrateSpec>> {
  const batchSize = Math.max(1, Math.min(MAX_BATCH, options.batch ?? job.spec.batch));
  const concurrency = Math.max(1, options.concurrency ?? 4);
  let current = await deps.jobs.get<MigrateSpec>(job.id);
  let batchNo = 0;
  for (;;) {
    const from = current.cursor;
    const rows = await page(deps.database.db, from, batchSize);
    if (rows.length === 0) break;
    const targets = rows.filter((r) => deps.passwords.isWrappable(r.password_hash));
    const wrapped = await pool(targets, concurrency, async (r) => ({ id: r.id, from: r.password_hash, to: await deps.passwords.wrapLegacyHash(r.password_hash) }));
    const last = rows[rows.length - 1]!.id;
    batchNo++;
    try {
      await deps.database.transaction(async (trx) => {
        let ok = 0;
        for (const w of wrapped) if (await deps.users.swapPasswordHash(w.id, w.from, { hash: w.to, scheme: "bulwark-wrapped", changed: false }, trx)) ok++;
        const counts = { wrapped: ok, skipped: wrapped.length - ok };
        // Another run committed this batch first: roll ours back (its swaps would be no-ops anyway).
        if (!(await deps.jobs.commitBatch(trx, job.id, from, { cursor: last, processed: wrapped.length, counts }))) throw new CursorMoved();
        await deps.audit.appendIn(trx, { type: "users.migrate-hashes.batch", actor: options.actor, subject: job.id, data: { from, to: last, ...counts } });
      });
    } catch (error) {
      if (!(error instanceof CursorMoved)) throw error;
    }
    current = await deps.jobs.get<MigrateSpec>(job.id);
    options.onProgress?.(current.done, current.total);
  }
  await deps.jobs.setStatus(job.id, "done");
  const final = await deps.jobs.get<MigrateSpec>(job.id);
  await deps.audit.append({ type: "users.migrate-hashes.completed", actor: options.actor, subject: job.id, data: { total: final.total, done: final.done, counts: final.counts, batches: batchNo } });
  return final;
}
