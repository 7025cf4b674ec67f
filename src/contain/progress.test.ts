// Job progress as `contain status` and the API show it: a job whose process died must not show a rate that
// decays and an ETA that grows for ever; it says it stalled, and how long ago it last moved.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Job, JobStatus } from "../jobs/job-store.ts";
import { jobProgress, STALL_MS } from "./service.ts";

const T0 = Date.UTC(2026, 11, 1);

function job(status: JobStatus, done: number, updatedAt: number, finishedAt: number | null = null): Job {
  return {
    id: "job_x", kind: "contain", status, spec: {}, cursor: null, total: 1000, done, counts: {}, actor: "t", incidentId: null, error: null,
    createdAt: T0, updatedAt, finishedAt,
  };
}

describe("job progress", () => {
  it("a running job: the rate so far and an ETA at that rate", () => {
    assert.deepEqual(jobProgress(job("running", 400, T0 + 3_900), T0 + 4_000), { done: 400, total: 1000, ratePerSecond: 100, etaSeconds: 6, stalledSeconds: null });
  });

  it("a job whose process died: the rate up to its last batch, no ETA, and how long it has been stalled", () => {
    const died = T0 + 4_000;
    for (const later of [STALL_MS, 10 * STALL_MS, 1000 * STALL_MS]) {
      assert.deepEqual(jobProgress(job("running", 400, died), died + later), { done: 400, total: 1000, ratePerSecond: 100, etaSeconds: null, stalledSeconds: later / 1000 }, `${later} ms later`);
    }
    assert.equal(jobProgress(job("pending", 0, T0), T0 + STALL_MS).stalledSeconds, STALL_MS / 1000, "a job created and never started");
    assert.equal(jobProgress(job("running", 400, died), died + STALL_MS - 1).stalledSeconds, null, "slow batches are not a stall");
  });

  it("finished jobs: done has ETA 0; failed or cancelled have none; none is stalled", () => {
    assert.deepEqual(jobProgress(job("done", 1000, T0 + 10_000, T0 + 10_000), T0 + 1e9), { done: 1000, total: 1000, ratePerSecond: 100, etaSeconds: 0, stalledSeconds: null });
    for (const status of ["failed", "cancelled"] as const) {
      assert.deepEqual(jobProgress(job(status, 500, T0 + 5_000, T0 + 5_000), T0 + 1e9), { done: 500, total: 1000, ratePerSecond: 100, etaSeconds: null, stalledSeconds: null }, status);
    }
  });
});
