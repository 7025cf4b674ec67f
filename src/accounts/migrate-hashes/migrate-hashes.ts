// The wrap-migration job: rewrites every wrappable (fast legacy) hash as argon2id over the legacy
// result, without any login. Keyset batches by user id; a batch is wrapped concurrently (argon2 runs in
// the libuv pool), then written in ONE transaction with its cursor and audit event, so a job killed at
// any point resumes at the first uncommitted batch and never applies one twice. The next batch is
// hashed while the current one commits, so the write does not leave the cores idle. Two runs started
// at once share one job (found or created in one write transaction) and it completes once. Before it is
// marked done, the job sweeps the whole table again for fast hashes that arrived behind its cursor.
import type { Kysely } from "kysely";
import type { AuditLog } from "../../audit/audit-log.ts";
import { jobErrors, RESUMABLE_STATUSES, storedBatchSizeProblem, UNFINISHED_STATUSES, type JobStore, type Job } from "../../jobs/job-store.ts";
import { InputError } from "../../lib/errors.ts";
import { serialiseTransactions, type Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { belowMinimumCost } from "../census/minimum-cost.ts";
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
  /**
   * Commit at most this many batches, then return with the job still `running` (resume it later):
   * for work split across maintenance windows, and for benchmarks that interleave a reference.
   */
  maxBatches?: number;
}

export interface WrappableCensus {
  total: number;
  bySchemes: Record<string, number>;
  /**
   * Users on a slow scheme below its minimum cost (census/minimum-cost.ts: argon2, plain or a wrapped hash's outer
   * layer, below the policy's minimum; bcrypt below cost 10; scrypt below OWASP's N=2^17, r=8, p=1 or an equivalent):
   * weak, but left as they are. Rehashing needs the password; wrapping them would need a wrapped format and verify
   * path of their own for what the owner's next login does anyway (needsRehash is true for them). The census counts
   * them as weak, so the operator sees what this job cannot lift.
   */
  belowMinimum: number;
}

// Bounds the rows one transaction rewrites (its lock time) and one page the census reads.
export const MAX_BATCH = 10_000;
const PAGE = 1000;
// Any constant: finding-or-creating the job is serialised on it (serialiseTransactions); no row exists to
// lock before the job.
const OPEN_JOB_LOCK = 0x62776d68;
// Passes of the closing sweep (see sweep). One clean pass is the usual case; a table that keeps receiving fast
// hashes while the job sweeps (an import running alongside) leaves the job running rather than claimed done.
const MAX_SWEEPS = 3;

/** Pages of (id, hash) for users with a password, in id order after `after`. */
async function page(db: Kysely<Schema>, after: string | null, limit: number): Promise<Array<{ id: string; password_hash: string }>> {
  let q = db.selectFrom("users").select(["id", "password_hash"]).where("password_hash", "is not", null).orderBy("id").limit(limit);
  if (after !== null) q = q.where("id", ">", after);
  return (await q.execute()) as Array<{ id: string; password_hash: string }>;
}

/**
 * Counts the users whose hash wrap-migration would rewrite, per scheme, and those on argon2 below the policy's
 * minimum cost that it leaves for their next login (what `--dry-run` prints).
 *
 * @example
 * const { total, bySchemes } = await wrappableCensus(deps); // { total: 12, bySchemes: { md5: 10, phpass: 2 }, belowMinimum: 0 }
 */
export async function wrappableCensus(deps: Pick<MigrateDeps, "database" | "passwords">): Promise<WrappableCensus> {
  const out: WrappableCensus = { total: 0, bySchemes: {}, belowMinimum: 0 };
  for (let after: string | null = null; ;) {
    const rows = await page(deps.database.db, after, PAGE);
    if (rows.length === 0) return out;
    for (const r of rows) {
      if (belowMinimumCost(deps.passwords, r.password_hash)) out.belowMinimum++;
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
  // The census reads every user: it runs outside the write transaction, which then only checks and
  // creates. Checked first, so a resume does not pay for a census; if another run created a job while
  // this one counted, the second transaction finds it and resumes it instead of starting a rival job.
  let census: WrappableCensus | null = options.forceNew ? await wrappableCensus(deps) : null;
  for (;;) {
    const opened = await deps.database.transaction(async (trx) => {
      await serialiseTransactions(deps.database, trx, OPEN_JOB_LOCK);
      if (!options.forceNew) {
        const job = await deps.jobs.newestUnfinished<MigrateSpec>(JOB_KIND, trx);
        if (job) {
          await deps.audit.appendIn(trx, { type: "users.migrate-hashes.resumed", actor: options.actor, subject: job.id, data: { done: job.done, total: job.total } });
          return { job, resumed: true };
        }
      }
      if (census === null) return null;
      const job = await deps.jobs.create<MigrateSpec>({ kind: JOB_KIND, spec: { batch: options.batch }, total: census.total, actor: options.actor }, trx);
      await deps.audit.appendIn(trx, { type: "users.migrate-hashes.created", actor: options.actor, subject: job.id, data: { total: census.total, schemes: census.bySchemes } });
      return { job, resumed: false };
    });
    if (opened) return opened;
    census = await wrappableCensus(deps);
  }
}

/**
 * Marks the job done and records `.completed`, once: of two runners reaching the end of one job, only
 * the one whose compare-and-set moves the status from unfinished to done writes the event.
 */
async function complete(deps: MigrateDeps, jobId: string, actor: string, batches: number): Promise<Job<MigrateSpec>> {
  await deps.database.transaction(async (trx) => {
    if (!(await deps.jobs.finishIfUnfinished(jobId, "done", trx))) return;
    const final = await deps.jobs.get<MigrateSpec>(jobId, trx);
    await deps.audit.appendIn(trx, { type: "users.migrate-hashes.completed", actor, subject: jobId, data: { total: final.total, done: final.done, counts: final.counts, batches } });
  });
  return deps.jobs.get<MigrateSpec>(jobId);
}

/**
 * The migrate-hashes job to resume: `id` when given (it must be an unfinished migrate-hashes job),
 * else the newest unfinished one. Throws InputError when there is nothing to resume.
 *
 * @example
 * const job = await resumeMigrationJob(deps, { actor: "cli:ops" }); // after a crash or kill -9
 * await runMigration(deps, job, { actor: "cli:ops" });
 */
export async function resumeMigrationJob(deps: MigrateDeps, options: { actor: string; id?: string }): Promise<Job<MigrateSpec>> {
  let job: Job<MigrateSpec>;
  if (options.id !== undefined) {
    job = await deps.jobs.get<MigrateSpec>(options.id);
    if (job.kind !== JOB_KIND) throw new InputError("BULWARK_ERR_JOB_KIND", `job ${options.id} is a ${job.kind} job, not a migrate-hashes job`);
    if (!UNFINISHED_STATUSES.includes(job.status)) throw jobErrors.finished(job.id, job.status);
  } else {
    const [unfinished] = await deps.jobs.unfinished(JOB_KIND);
    if (!unfinished) throw new InputError("BULWARK_ERR_NOTHING_TO_RESUME", "there is no unfinished migrate-hashes job to resume");
    job = await deps.jobs.get<MigrateSpec>(unfinished.id);
  }
  await deps.audit.append({ type: "users.migrate-hashes.resumed", actor: options.actor, subject: job.id, data: { done: job.done, total: job.total } });
  return job;
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
 * The batch size stored in the job's spec, or the job's coded unreadable error (fails closed): the spec is JSON read
 * back from a database an operator, a restore or an attacker may have changed, and a size that is missing or text
 * turned into NaN and reached SQLite as a LIMIT ("datatype mismatch"), naming neither the job nor the fault.
 */
function storedBatchSize(job: Job<MigrateSpec>): number {
  const problem = storedBatchSizeProblem(job.spec.batch, MAX_BATCH);
  if (problem !== null) throw jobErrors.unreadable(job.id, problem);
  return job.spec.batch;
}

interface SweepOptions {
  batchSize: number;
  concurrency: number;
  actor: string;
  /** Sweep batches this run may still commit (0 after maxBatches: a read-only check). */
  commits: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * The closing sweep, run once the walk has reached the end: the walk goes forward once, so a fast hash that arrived
 * behind its cursor while it ran (an import, whose random ids land anywhere; a re-import with --replace-passwords
 * swapping one MD5 for another) would otherwise stay unwrapped under a job reported done. Each pass reads the whole
 * table and wraps what is wrappable with the same compare-and-set, each batch committed with its audit event
 * (`.swept`) and the job's counts (`swept` among them), the cursor left at the end. A pass that wrapped something may
 * have missed what arrived behind it meanwhile, so only a pass that finds nothing lets the job be marked done.
 * Returns null then; otherwise the job as it is: ended by another runner, or left running when `commits` ran out or
 * MAX_SWEEPS passes all found something (a resume sweeps again). A hash arriving after the clean pass is for the next
 * census and run, as one arriving after `done` is.
 */
async function sweep(deps: MigrateDeps, jobId: string, options: SweepOptions): Promise<Job<MigrateSpec> | null> {
  const end = (await deps.jobs.get<MigrateSpec>(jobId)).cursor;
  let commits = 0;
  for (let pass = 0; pass < MAX_SWEEPS; pass++) {
    let found = 0;
    for (let after: string | null = null; ;) {
      // Read before the page: a batch another runner's sweep commits after this read makes this one's commit refused
      // (the cursor stays at the end during a sweep, so it cannot tell two sweeps' batches apart; `done` can).
      const seen = (await deps.jobs.get<MigrateSpec>(jobId)).done;
      const rows = await page(deps.database.db, after, options.batchSize);
      if (rows.length === 0) break;
      const from: string | null = after;
      after = rows[rows.length - 1]!.id;
      const targets = rows.filter((r) => deps.passwords.isWrappable(r.password_hash));
      if (targets.length === 0) continue;
      found += targets.length;
      if (commits >= options.commits) return deps.jobs.get<MigrateSpec>(jobId);
      const wrapped = await pool(targets, options.concurrency, async (r) => ({ id: r.id, from: r.password_hash, to: await deps.passwords.wrapLegacyHash(r.password_hash) }));
      const committed = await deps.database.transaction(async (trx) => {
        let ok = 0;
        for (const w of wrapped) if (await deps.users.swapPasswordHash(w.id, w.from, { hash: w.to, scheme: "bulwark-wrapped", changed: false }, trx)) ok++;
        const counts = { wrapped: ok, skipped: wrapped.length - ok, swept: wrapped.length };
        // The cursor stays at the end: the compare-and-set still refuses a job that ended (or moved) meanwhile, and
        // `expectDone` one that another runner's sweep committed a batch to since this one read its page.
        if (!(await deps.jobs.commitBatch(trx, jobId, end, { cursor: end, processed: wrapped.length, counts, expectDone: seen }))) throw new CursorMoved();
        await deps.audit.appendIn(trx, { type: "users.migrate-hashes.swept", actor: options.actor, subject: jobId, data: { pass: pass + 1, from, to: after, ...counts } });
      }).then(() => true, (error: unknown) => {
        if (error instanceof CursorMoved) return false;
        throw error;
      });
      if (!committed) {
        // Another runner ended the job: it is returned as it is, never claimed done from here.
        const now = await deps.jobs.get<MigrateSpec>(jobId);
        if (!RESUMABLE_STATUSES.includes(now.status) || now.cursor !== end) return now;
        // Another runner's sweep committed a batch since this page was read: the page is read again (what that runner
        // wrapped is no target any more). One of two runners wins each time, so this ends.
        after = from;
        continue;
      }
      commits++;
      const current = await deps.jobs.get<MigrateSpec>(jobId);
      options.onProgress?.(current.done, current.total);
    }
    if (found === 0) return null;
  }
  return deps.jobs.get<MigrateSpec>(jobId);
}

/**
 * Runs (or resumes) a migrate-hashes job to completion and returns it in its final state.
 * A row whose hash changed between read and write (a login rehashed it, a lever invalidated it) is
 * left alone and counted as `skipped`: compare-and-set, never overwrite. A slow hash below its minimum cost
 * is left alone too, counted as `belowMinimum` (see WrappableCensus). The job is marked done only after a sweep of
 * the whole table finds no wrappable hash left (see sweep). Throws jobErrors.unreadable (BULWARK_ERR_JOB_UNREADABLE)
 * for a job whose stored spec has no usable batch size, before reading or writing anything.
 *
 * @example
 * const done = await runMigration(deps, job, { actor: "cli:ops", concurrency: 4 });
 * done.counts // { wrapped: 19998, skipped: 2, belowMinimum: 0 }
 */
export async function runMigration(deps: MigrateDeps, job: Job<MigrateSpec>, options: MigrateRunOptions): Promise<Job<MigrateSpec>> {
  // Checked even when `options.batch` overrides it: a damaged row is refused, not run on (fails closed).
  const stored = storedBatchSize(job);
  const batchSize = Math.max(1, Math.min(MAX_BATCH, options.batch ?? stored));
  const concurrency = Math.max(1, options.concurrency ?? 4);
  type Prepared = { from: string | null; last: string; wrapped: Array<{ id: string; from: string; to: string }>; belowMinimum: number } | null;
  // Reads the batch after `from` and wraps it (argon2 on the libuv pool). Nothing is written here.
  const prepare = async (from: string | null): Promise<Prepared> => {
    const rows = await page(deps.database.db, from, batchSize);
    if (rows.length === 0) return null;
    const targets = rows.filter((r) => deps.passwords.isWrappable(r.password_hash));
    // Weak argon2 is not wrappable: counted, so the result says what is left for the owners' next logins.
    const belowMinimum = rows.filter((r) => belowMinimumCost(deps.passwords, r.password_hash)).length;
    const wrapped = await pool(targets, concurrency, async (r) => ({ id: r.id, from: r.password_hash, to: await deps.passwords.wrapLegacyHash(r.password_hash) }));
    return { from, last: rows[rows.length - 1]!.id, wrapped, belowMinimum };
  };
  // A prefetch may fail while the current batch commits, before anything awaits it: a handler attached where it is
  // created keeps that from being an unhandled rejection (which kills the CLI with exit 1 and a stack trace); the
  // promise itself still rejects, so the `await next` below rethrows the failure to the caller.
  const prefetch = (from: string | null): Promise<Prepared> => {
    const p = prepare(from);
    p.catch(() => {});
    return p;
  };
  // Pipelined: batch N+1 is hashed while batch N commits, so the cores stay busy during the write
  // (the rows after N's last id are not touched by N's transaction; compare-and-set guards the rest).
  const maxBatches = options.maxBatches ?? Infinity;
  const none = Promise.resolve<Prepared>(null);
  let next = maxBatches > 0 ? prefetch((await deps.jobs.get<MigrateSpec>(job.id)).cursor) : none;
  let batchNo = 0;
  let stopped = maxBatches <= 0;
  for (;;) {
    const batch = await next;
    if (batch === null) break;
    batchNo++;
    // No prefetch past the last batch allowed: its hashing would be thrown away.
    stopped = batchNo >= maxBatches;
    next = stopped ? none : prefetch(batch.last);
    try {
      await deps.database.transaction(async (trx) => {
        let ok = 0;
        for (const w of batch.wrapped) if (await deps.users.swapPasswordHash(w.id, w.from, { hash: w.to, scheme: "bulwark-wrapped", changed: false }, trx)) ok++;
        const counts = { wrapped: ok, skipped: batch.wrapped.length - ok, belowMinimum: batch.belowMinimum };
        // Another run committed this batch first: roll ours back (its swaps would be no-ops anyway).
        if (!(await deps.jobs.commitBatch(trx, job.id, batch.from, { cursor: batch.last, processed: batch.wrapped.length, counts }))) throw new CursorMoved();
        await deps.audit.appendIn(trx, { type: "users.migrate-hashes.batch", actor: options.actor, subject: job.id, data: { from: batch.from, to: batch.last, ...counts } });
      });
    } catch (error) {
      // The prefetched batch is abandoned either way; never leave its promise unobserved.
      await next.catch(() => null);
      if (!(error instanceof CursorMoved)) throw error;
      // Continue from wherever the other runner got to; a job that ended meanwhile (cancelled, or finished by the
      // other runner) refuses every commit, so it is returned as it is rather than tried again for ever.
      const now = await deps.jobs.get<MigrateSpec>(job.id);
      if (!RESUMABLE_STATUSES.includes(now.status)) return now;
      next = stopped ? none : prefetch(now.cursor);
    }
    const current = await deps.jobs.get<MigrateSpec>(job.id);
    options.onProgress?.(current.done, current.total);
  }
  if (stopped) {
    const paused = await deps.jobs.get<MigrateSpec>(job.id);
    // Exactly at the end: nothing is left, so the job is finished after all.
    if ((await page(deps.database.db, paused.cursor, 1)).length > 0) return paused;
  }
  // At the end of the walk. After maxBatches no batch more is committed: the sweep only checks, and a job with hashes
  // left behind its cursor stays running for the next run.
  const left = await sweep(deps, job.id, { batchSize, concurrency, actor: options.actor, commits: stopped ? 0 : Infinity, ...(options.onProgress ? { onProgress: options.onProgress } : {}) });
  if (left !== null) return left;
  return complete(deps, job.id, options.actor, batchNo);
}
