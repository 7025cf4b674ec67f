// Undo of a containment job, itself a resumable, audited job: for each reversible lever, walk the recorded
// changes in key order and restore the rows whose current value still equals what the job wrote and that no
// later job also contains; the others are left alone and reported (contain_changes.undo_status = "skipped").
import type { Kysely } from "kysely";
import type { Job } from "../jobs/job-store.ts";
import type { DialectName } from "../store/database.ts";
import type { Schema } from "../store/schema.ts";
import type { ContainDeps, Stage, StepResult } from "./engine.ts";
import { containErrors } from "./errors.ts";
import { CONTAIN_KIND, type ContainSpec, DEFAULT_OPTIONS } from "./job.ts";
import { findLever, type ChangeRecord, type UserLever } from "./lever.ts";
import { inIds } from "./levers/common.ts";
import { registerBuiltinLevers } from "./levers/index.ts";

export const UNDO_KIND = "contain-undo";

export interface UndoSpec {
  undoOf: string;
  levers: string[];
  batchSize: number;
}

function reversible(names: string[]): string[] {
  registerBuiltinLevers();
  return names.filter((n) => {
    const l = findLever(n);
    return l?.kind === "user" && l.undo !== undefined;
  });
}

/**
 * Creates the undo job of a finished containment job (nothing is restored until it runs).
 *
 * @example
 * const undo = await createUndoJob(deps, "job_…", "cli"); await runJob(deps, undo.id);
 */
export async function createUndoJob(deps: ContainDeps, jobId: string, actor: string): Promise<Job<UndoSpec>> {
  const original = await deps.jobs.get<ContainSpec>(jobId);
  if (original.kind !== CONTAIN_KIND) throw containErrors.notContainJob(jobId);
  if (original.status !== "done") throw containErrors.notUndoable(jobId, `it is ${original.status}; resume it to the end first (bulwark contain resume ${jobId})`);
  const levers = reversible(original.spec.levers);
  if (levers.length === 0) throw containErrors.notUndoable(jobId, `none of its levers (${original.spec.levers.join(", ")}) is reversible; only expire-passwords, lock-accounts and demote-inactive-admins are`);
  const spec: UndoSpec = { undoOf: jobId, levers, batchSize: original.spec.batchSize };
  return deps.database.transaction(async (trx) => {
    const row = await trx.selectFrom("contain_changes").where("job_id", "=", jobId).where("lever", "in", levers).where("undo_status", "is", null)
      .select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
    const total = Number(row?.n ?? 0);
    const job = await deps.jobs.create({ kind: UNDO_KIND, spec, total, actor, incidentId: original.incidentId }, trx);
    await deps.audit.appendIn(trx, { type: "contain.undo.created", actor, subject: job.id, data: { undoOf: jobId, levers, changes: total } });
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

/**
 * Of these users, those that a containment job created after `undoOf` (or in the same millisecond: when in
 * doubt, containment stays) also applies `lever` to, unless that job has been undone. Restoring them would
 * cancel the later job's containment: it may have set the value again (an expiry the user had cleared, an
 * administrator re-granted and demoted again), leaving exactly what `undoOf` wrote, or found it already set
 * and changed nothing. So they are left alone and reported. Usually no such job exists and nothing is read.
 */
async function coveredByLaterJobs(trx: Kysely<Schema>, dialect: DialectName, undoOf: string, lever: string, userIds: string[]): Promise<Set<string>> {
  const since = trx.selectFrom("jobs as original").select("original.created_at").where("original.id", "=", undoOf);
  // Undo jobs of later jobs are later still, so one read finds both.
  const jobs = (await trx.selectFrom("jobs").select(["id", "kind", "status", "spec"]).where("kind", "in", [CONTAIN_KIND, UNDO_KIND]).where("created_at", ">=", since).execute())
    .map((j) => ({ ...j, spec: JSON.parse(j.spec) as Partial<ContainSpec & UndoSpec> }));
  const undone = new Set(jobs.filter((j) => j.kind === UNDO_KIND && j.status === "done").map((j) => j.spec.undoOf));
  const later = jobs.filter((j) => j.kind === CONTAIN_KIND && j.id !== undoOf && !undone.has(j.id) && j.spec.levers?.includes(lever));
  if (later.length === 0 || userIds.length === 0) return new Set();
  // An --all job covered every user that existed when it was created, and these existed before it.
  if (later.some((j) => j.spec.scope?.["all"] === true)) return new Set(userIds);
  // The recorded scopes have no index by user: this reads the later jobs' scopes, once per step.
  const rows = await trx.selectFrom("contain_job_users").select("user_id").distinct()
    .where("job_id", "in", later.map((j) => j.id)).where(inIds(dialect, "user_id", userIds)).execute();
  return new Set(rows.map((r) => r.user_id));
}

/** One stage per reversible lever, walking its recorded changes by (seq, entity): the order they were written. */
export function undoStages(deps: ContainDeps, job: Job<UndoSpec>): Stage[] {
  const ctx = { jobId: job.id, dialect: deps.database.dialect, at: job.createdAt, now: job.createdAt, options: DEFAULT_OPTIONS, allUsers: false, keyring: deps.keyring, notifier: null };
  return job.spec.levers.map((name): Stage => {
    const lever = findLever(name) as UserLever;
    return {
      name: `undo ${name}`,
      async step(trx, position): Promise<StepResult> {
        const [afterSeq, afterEntity] = parsePosition(position);
        const rows = await trx.selectFrom("contain_changes").selectAll()
          .where("job_id", "=", job.spec.undoOf).where("lever", "=", name)
          .where((eb) => eb.or([eb("seq", ">", afterSeq), eb.and([eb("seq", "=", afterSeq), eb("entity", ">", afterEntity)])]))
          .orderBy("seq").orderBy("entity").limit(job.spec.batchSize).execute();
        if (rows.length === 0) return { counts: {}, processed: 0, next: null };
        // Rows an earlier undo already handled are not touched again.
        const open = rows.filter((r) => r.undo_status === null);
        const changes: ChangeRecord[] = open.map((r) => ({ userId: r.user_id, entity: r.entity, before: JSON.parse(r.before) as Record<string, unknown>, after: r.after === null ? null : (JSON.parse(r.after) as Record<string, unknown>) }));
        const covered = await coveredByLaterJobs(trx, deps.database.dialect, job.spec.undoOf, name, [...new Set(open.map((r) => r.user_id))]);
        const candidates = changes.filter((c) => !covered.has(c.userId));
        const result = candidates.length ? await (lever.undo as NonNullable<UserLever["undo"]>)(trx, candidates, ctx) : { restored: [], skipped: [] };
        const skipped = [...result.skipped, ...changes.filter((c) => covered.has(c.userId))];
        const seqOf = new Map(open.map((r) => [changeKey(r.user_id, r.entity), Number(r.seq)]));
        for (const [status, list] of [["restored", result.restored], ["skipped", skipped]] as const) {
          for (const c of list) {
            await trx.updateTable("contain_changes").set({ undo_status: status })
              .where("job_id", "=", job.spec.undoOf).where("lever", "=", name).where("seq", "=", seqOf.get(changeKey(c.userId, c.entity)) as number).where("entity", "=", c.entity).execute();
          }
        }
        const last = rows[rows.length - 1] as { seq: number; entity: string };
        return {
          counts: { [`${name}.restored`]: result.restored.length, [`${name}.skipped`]: skipped.length },
          processed: open.length,
          next: JSON.stringify([Number(last.seq), last.entity]),
        };
      },
    };
  });
}

/** Rows an undo left alone because they changed after the job, or a later job contains them too (at most `limit`). */
export async function skippedByUndo(deps: ContainDeps, jobId: string, limit = 1000): Promise<Array<{ lever: string; userId: string; entity: string }>> {
  const rows = await deps.database.db.selectFrom("contain_changes").select(["lever", "user_id", "entity"])
    .where("job_id", "=", jobId).where("undo_status", "=", "skipped").orderBy("lever").orderBy("seq").limit(limit).execute();
  return rows.map((r) => ({ lever: r.lever, userId: r.user_id, entity: r.entity }));
}
