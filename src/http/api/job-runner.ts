// Runs containment jobs in the background of the server process. A job is a resumable database row, so the
// runner holds nothing that matters: on shutdown it stops each job between two batches (the job stays
// "running" and resumes where it stopped when a server or `bulwark contain resume` picks it up again).
import { hostname } from "node:os";
import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type { FastifyBaseLogger } from "fastify";
import { runJob, type ContainDeps } from "../../contain/index.ts";
import { JobStore, type Job } from "../../jobs/job-store.ts";

/** The worker this process's job runner names in audit events: `server:<host>/<pid>`. */
const SERVER_WORKER = `server:${hostname()}/${process.pid}`;

class Stopping extends Error {}

/**
 * A job store that gives the event loop a turn each time the engine reads the job (once per batch). On SQLite
 * every query settles synchronously, so without this a running job would hold the event loop until it ended
 * and the server would answer no request meanwhile (not even the 202 that started it).
 */
class YieldingJobStore extends JobStore {
  override async get<Spec>(...args: Parameters<JobStore["get"]>): Promise<Job<Spec>> {
    await yieldToEventLoop();
    return super.get<Spec>(...args);
  }
}

/** Background runs of containment jobs started through the API. */
export interface JobRunner {
  /** Starts running a job unless this process already runs it. */
  start(jobId: string): void;
  /** Whether this process is running the job now. */
  running(jobId: string): boolean;
  /** Stops every run after its current batch and waits for them. */
  stop(): Promise<void>;
}

/**
 * Builds the runner.
 *
 * @example
 * const runner = createJobRunner(deps, logger); runner.start(job.id); await runner.stop();
 */
export function createJobRunner(containDeps: ContainDeps, log: FastifyBaseLogger): JobRunner {
  const { database, clock, random } = containDeps;
  const deps: ContainDeps = { ...containDeps, jobs: new YieldingJobStore({ database, clock, random }) };
  const runs = new Map<string, Promise<void>>();
  let stopping = false;
  return {
    start(jobId) {
      if (stopping || runs.has(jobId)) return;
      log.info({ jobId }, "containment job started in the background");
      const run = runJob(deps, jobId, {
        // Named in each batch's audit event, as a CLI worker is (`cli:<pid>`): after a rolling deploy with two servers
        // on one job, the log says which node applied which batch.
        worker: SERVER_WORKER,
        // Called after each committed batch: the one safe point to stop a job.
        onProgress: () => {
          if (stopping) throw new Stopping();
        },
      }).then(
        (job) => log.info({ jobId, status: job.status, done: job.done, total: job.total }, "containment job finished"),
        (error: unknown) => {
          if (error instanceof Stopping) log.info({ jobId }, "containment job paused for shutdown; it resumes where it stopped");
          else log.error({ err: error, jobId }, "containment job failed; resume it with `bulwark contain resume`");
        },
      ).finally(() => runs.delete(jobId));
      runs.set(jobId, run);
    },
    running: (jobId) => runs.has(jobId),
    async stop() {
      stopping = true;
      await Promise.all([...runs.values()]);
    },
  };
}
