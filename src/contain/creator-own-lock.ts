// A containment job's own lock of its creator, and when it stops excusing the creator (src/contain/creator.ts): an
// administrator's lock-accounts over `{all: true}` locks the caller's own account with the rest, which must not stop
// the job; a lock the team sets on that account later must.
import type { Kysely } from "kysely";
import { storedObjectOrNull } from "../jobs/job-store.ts";
import type { Schema } from "../store/schema.ts";

/** Whether the account's lock (as read now) is the one a job set on it and recorded. */
export type OwnLockTest = (trx: Kysely<Schema>, userId: string, account: { locked_at: number | null; locked_reason: string | null }) => Promise<boolean>;

/**
 * The OwnLockTest of containment job `jobId`: its lock-accounts record for the user, not undone, whose `after` is the
 * account's lock now (as its undo compares), and no later containment job pulling lock-accounts holds the user in its
 * recorded scope (laterLockingJob). The record has no index by user (a scan of the lever's records): found once, it is
 * kept for the job's later batches — a record never changes while its job runs (an undo waits for the end).
 *
 * Why the later job counts: the shell's only lock is `bulwark contain lock-accounts`, and over an account locked
 * already it changes nothing (lock-accounts leaves a lock's time and reason as they are: they say who locked it and
 * why, and each job's undo lifts only the lock it set). So when the team locks an intruder's account that the
 * intruder's own job had locked, the lock stays exactly the one the job recorded, and the exception alone kept the
 * job running on the caught account's authority. The later job's scope is the team's decision, whatever its batches
 * found: the job stops (failed, "is locked") until an administrator takes it over or cancels it. The rule errs
 * towards stopping: a later lock-accounts job that holds the creator only in passing (an `--all` run) stops it too.
 */
export function ownLockOf(jobId: string): OwnLockTest {
  let found: { at: number; reason: unknown } | null = null;
  const scopes = new Map<string, boolean>();
  return async (trx, userId, account) => {
    if (found === null) {
      const rows = await trx.selectFrom("contain_changes").select("after")
        .where("job_id", "=", jobId).where("lever", "=", "lock-accounts").where("user_id", "=", userId).where("undo_status", "is", null).execute();
      for (const r of rows) {
        let after: unknown;
        try {
          after = r.after === null ? null : JSON.parse(r.after);
        } catch {
          continue; // an altered record proves nothing
        }
        const { locked_at: at, locked_reason: reason } = (after ?? {}) as { locked_at?: unknown; locked_reason?: unknown };
        if (typeof at === "number") found = { at, reason };
      }
    }
    if (found === null || found.at !== Number(account.locked_at) || found.reason !== account.locked_reason) return false;
    return (await laterLockingJob(trx, jobId, userId, scopes)) === null;
  };
}

// The kind of a containment job (job.ts's CONTAIN_KIND; job.ts imports this module, so it is not imported back).
const CONTAIN_KIND = "contain";

/**
 * The id of a containment job created after `jobId` that pulls lock-accounts and whose recorded scope holds `userId`,
 * or null. "After" by the database's counter (created_epoch, docs/decisions/0010-job-order-by-epoch.md), by time for a
 * job from before it, as the undo decides (undo.ts coveredByOtherJobs). A job cancelled before it committed anything
 * decided nothing; one whose spec cannot be read is taken to pull every lever (its recorded scope, a table of its own,
 * still says whom it holds). `known` keeps each job's answer for the run: a job's recorded scope is written with it and
 * never changes. Containment jobs are few, so listing them is cheap; a scope is read only for a job not seen before.
 */
async function laterLockingJob(trx: Kysely<Schema>, jobId: string, userId: string, known: Map<string, boolean>): Promise<string | null> {
  const self = await trx.selectFrom("jobs").select(["created_at", "created_epoch"]).where("id", "=", jobId).executeTakeFirst();
  if (!self) return null;
  const sinceEpoch = Number(self.created_epoch);
  const since = Number(self.created_at);
  const later = await trx.selectFrom("jobs").select(["id", "status", "cursor", "spec"])
    .where("kind", "=", CONTAIN_KIND).where("id", "!=", jobId)
    .where((eb) => (sinceEpoch > 0 ? eb("created_epoch", ">", sinceEpoch) : eb.or([eb("created_epoch", ">", 0), eb("created_at", ">=", since)])))
    .orderBy("created_at").execute();
  for (const job of later) {
    if (job.status === "cancelled" && job.cursor === null) continue;
    const spec = storedObjectOrNull(job.id, "spec", job.spec);
    const levers = spec?.["levers"];
    if (spec !== null && !(Array.isArray(levers) && levers.includes("lock-accounts"))) continue;
    let holds = known.get(job.id);
    if (holds === undefined) {
      // An --all job holds every user that existed when it was created, and the creator existed before this job.
      const scope = spec?.["scope"];
      const all = typeof scope === "object" && scope !== null && (scope as { all?: unknown }).all === true;
      holds = all || (await trx.selectFrom("contain_job_users").select("seq").where("job_id", "=", job.id).where("user_id", "=", userId).limit(1).executeTakeFirst()) !== undefined;
      known.set(job.id, holds);
    }
    if (holds) return job.id;
  }
  return null;
}
