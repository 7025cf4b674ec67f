// Migration 22: a containment job may carry the Idempotency-Key of the API request that created it. A client that
// retries POST /api/v1/contain/jobs after a lost answer (a timeout, a dropped connection) sent the same request twice
// and got two jobs over the same scope. `request_key` is the caller's user id and the key; the unique index makes
// "one job per key" hold in the database itself, also for two retries arriving at once on two nodes.
// `request_fingerprint` is a hash of the request body, so the key reused for another request is told apart.
import type { Migration } from "./types.ts";

export const jobRequestKeys: Migration = {
  version: 22,
  name: "job-request-keys",
  async up(db) {
    await db.schema.alterTable("jobs").addColumn("request_key", "text").execute();
    await db.schema.alterTable("jobs").addColumn("request_fingerprint", "text").execute();
    // NULLs are distinct on both dialects: jobs created without a key (the CLI, older rows) never collide.
    await db.schema.createIndex("jobs_request_key").on("jobs").column("request_key").unique().execute();
  },
};
