// A batch's lookup of the targets its job recorded (recordedTargets, src/contain/levers/common.ts): a target is stored
// under its user's number in the job's scope, so a batch reads only its own stretch of the list through the key
// (job_id, seq). It used to read every target of the job for each batch — quadratic in the scope, ~4 s of a
// 100,000-user invalidate-passwords job. The rows found must be the same with the bound and without it.
import assert from "node:assert/strict";
import { it } from "node:test";
import { targetsKey } from "../src/contain/lever.ts";
import { recordedTargets } from "../src/contain/levers/common.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const JOB = "job_targetslookup0000000000000";
const LEVER = "invalidate-passwords";
const USERS = 3000;
const userAt = (seq: number): string => `usr_${String(seq).padStart(26, "0")}`;

forEachDialect("a batch's lookup of its job's recorded targets", (dfx) => {
  it("finds the batch's targets and no one else's, by the batch's numbers when it has them and without them alike; on SQLite through the key's seq range", async () => {
    const database = await dfx.fresh();
    const db = database.db;
    // The job's scope numbered 1…3000; every third user a target, recorded under the same number (as job.ts does).
    const scope = Array.from({ length: USERS }, (_, i) => ({ job_id: JOB, seq: i + 1, user_id: userAt(i + 1) }));
    const targets = scope.filter((r) => r.seq % 3 === 0).map((r) => ({ ...r, job_id: targetsKey(JOB, LEVER) }));
    for (let i = 0; i < scope.length; i += 500) await db.insertInto("contain_job_users").values(scope.slice(i, i + 500)).execute();
    for (let i = 0; i < targets.length; i += 500) await db.insertInto("contain_job_users").values(targets.slice(i, i + 500)).execute();

    // The second batch of 1000, as the job hands it over: its users and their numbers.
    const batch = scope.slice(1000, 2000);
    const ids = batch.map((r) => r.user_id);
    const seqOf = new Map(batch.map((r) => [r.user_id, r.seq]));
    const ctx = { jobId: JOB, dialect: database.dialect };
    const expected = batch.filter((r) => r.seq % 3 === 0).map((r) => r.user_id).sort();
    const found = async (c: Parameters<typeof recordedTargets>[3], among: readonly string[]): Promise<string[]> =>
      (await recordedTargets(db, LEVER, among, c).execute()).map((r) => r.user_id).sort();

    assert.deepEqual(await found({ ...ctx, seqOf }, ids), expected, "with the batch's numbers");
    assert.deepEqual(await found(ctx, ids), expected, "without them (a dry run's lookup)");
    // A batch whose list has gaps (users left out by the lever's own filter): still exactly its targets.
    const sparse = ids.filter((_, i) => i % 7 === 0);
    assert.deepEqual(await found({ ...ctx, seqOf }, sparse), expected.filter((id) => sparse.includes(id)));
    // An id the map does not number (a target outside the batch; it cannot happen in a batch, but if it did): no bound,
    // so it is found as without the numbers.
    const stray = [...ids, userAt(3000)];
    assert.deepEqual(await found({ ...ctx, seqOf }, stray), [...expected, userAt(3000)].sort());

    if (database.sqlite) {
      // The read goes through the key with the batch's range, not over every target of the job.
      const compiled = recordedTargets(db, LEVER, ids, { ...ctx, seqOf }).compile();
      const plan = database.sqlite.prepare(`explain query plan ${compiled.sql}`).all(...(compiled.parameters as Array<string | number>)) as Array<{ detail: string }>;
      assert.ok(plan.some((step) => /contain_job_users .*\(job_id=\? AND seq>\? AND seq<\?\)/.test(step.detail)), `the plan: ${JSON.stringify(plan.map((p) => p.detail))}`);
    }
  });
});
