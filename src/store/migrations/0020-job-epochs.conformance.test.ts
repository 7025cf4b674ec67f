// Migration 20 on a database with jobs already in it, on both dialects: every job keeps its columns, the ones that had
// ended read as ended before any later job, and jobs created after it are ordered by the database's counter, not by
// the clocks of the processes that created and ended them.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { JobStore } from "../../jobs/job-store.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import { migrate } from "../migrator.ts";
import { MIGRATIONS } from "./index.ts";

const BEFORE = MIGRATIONS.filter((m) => m.version < 20);
const NOW = Date.UTC(2026, 11, 4, 12);

forEachDialect("migration 20 (job epochs) on a database in use", (fx) => {
  it("gives older jobs epoch 0 (ended ones an end at 0, unfinished ones none) and keeps every other column", async () => {
    const database = await fx.empty();
    const clock = new ManualClock(NOW);
    assert.equal((await migrate(database, clock, BEFORE)).error, undefined);
    const k = database.db as unknown as import("kysely").Kysely<any>;
    const row = (id: string, status: string, finishedAt: number | null) => ({
      id, kind: "contain", status, spec: `{"n":"${id}"}`, cursor: null, total: 4, done: 2, counts: "{}", actor: "ops", incident_id: null,
      error: status === "failed" ? "disk full" : null, created_at: NOW - 1000, updated_at: NOW - 500, finished_at: finishedAt,
    });
    await k.insertInto("jobs").values([row("job_done", "done", NOW - 500), row("job_failed", "failed", NOW - 400), row("job_running", "running", null)]).execute();

    assert.equal((await migrate(database, clock)).error, undefined);
    const rows = await database.db.selectFrom("jobs").select(["id", "status", "spec", "error", "finished_at", "created_epoch", "finished_epoch"]).orderBy("id").execute();
    assert.deepEqual(rows.map((r) => [r.id, r.status, r.spec, r.error, r.finished_at === null ? null : Number(r.finished_at), Number(r.created_epoch), r.finished_epoch === null ? null : Number(r.finished_epoch)]), [
      ["job_done", "done", '{"n":"job_done"}', null, NOW - 500, 0, 0],
      ["job_failed", "failed", '{"n":"job_failed"}', "disk full", NOW - 400, 0, 0],
      ["job_running", "running", '{"n":"job_running"}', null, null, 0, null],
    ]);
  });

  it("orders jobs created and ended after it by the database's counter, whatever the clocks of their nodes say", async () => {
    const database = await fx.empty();
    assert.equal((await migrate(database, new ManualClock(NOW))).error, undefined);
    const fast = new JobStore({ database, clock: new ManualClock(NOW + 60_000), random: systemRandom });
    const slow = new JobStore({ database, clock: new ManualClock(NOW - 60_000), random: systemRandom });
    const epochs = async (id: string): Promise<[number, number | null]> => {
      const r = await database.db.selectFrom("jobs").select(["created_epoch", "finished_epoch"]).where("id", "=", id).executeTakeFirstOrThrow();
      return [Number(r.created_epoch), r.finished_epoch === null ? null : Number(r.finished_epoch)];
    };
    // The fast node creates and ends a job; then the slow node creates one, whose created_at reads a minute earlier.
    const first = await fast.create({ kind: "contain", spec: {}, total: 1, actor: "ops" });
    assert.equal(await fast.finishIfUnfinished(first.id, "done"), true);
    const second = await slow.create({ kind: "contain", spec: {}, total: 1, actor: "ops" });
    assert.ok(second.createdAt < first.createdAt, "by the clocks, the second job is the older");
    const [firstCreated, firstEnded] = await epochs(first.id);
    const [secondCreated, secondEnded] = await epochs(second.id);
    assert.ok(firstCreated > 0 && firstEnded !== null && firstEnded >= firstCreated, "an end reads the counter at or after the job's creation");
    assert.ok(secondCreated > (firstEnded as number), "a job created after another ended comes after that end, by the counter");
    assert.equal(secondEnded, null, "a job under way has no end");

    // Failed, then carried on: the end is recorded with the failure and shed with the next committed batch.
    assert.equal(await slow.markFailed(second.id, "lost connection"), true);
    assert.ok(((await epochs(second.id))[1] ?? 0) >= secondCreated);
    assert.equal(await database.transaction((trx) => slow.commitBatch(trx, second.id, null, { cursor: "1", processed: 1, counts: {} })), true);
    assert.deepEqual(await epochs(second.id), [secondCreated, null]);
  });
});
