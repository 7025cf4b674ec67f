// A containment batch that meets a busy store (PostgreSQL's lock_timeout 55P03, a statement timeout or cancel 57014)
// is retried by the same worker after a short backoff, within a bounded total, instead of failing the job in the middle
// of an incident: a DBA's session or a frozen node holding the audit log's head a little past the lock bound (5 s by
// default) failed the whole job, and nobody resumed it until an operator noticed. Past the budget the job fails as
// before, named busy and resumable; any other error fails it at once; a cancel stops the retrying. The batch's
// transaction rolled back whole, so a retry applies nothing twice (one contain.job.batch per applied batch, the chain
// verifies).
// The engine's unit tests run on SQLite with stages that throw; the attacks run on a private PostgreSQL cluster with a
// second, superuser client holding the audit head (test/helpers/pg-site.ts). Loopback and temp dirs only.
// Nothing is timed: the budget is checked by the tries it allows (counted by the stage, or named in the failure), and
// "at once" by the pauses taken (the engine's pauses are setTimeout calls, watched with a mock that still runs them).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { containDeps, createContainJob, resumeJob, runJob, runStages, type SequentialStage } from "../src/contain/index.ts";
import { eventData, lockTimeoutError, scratchContainFixtures, seedContainUsers } from "./helpers/contain-fixture.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { HOLD_AUDIT_HEAD, pgSites, until, waiting } from "./helpers/pg-site.ts";

const NOW = Date.UTC(2026, 11, 6, 12);
// The attacks wait out the bound (held head, retry budget): a 2 s bound for the file's sites.
const { unavailable, site, lockBoundMs } = pgSites("cbusy", testMasterKey("contain-busy-batch"), { lockTimeoutSeconds: 2 });
/** How long the first attack holds the head: past the bound (the first try of the batch fails busy), well within the retry budget. */
const HOLD_PAST_BOUND_MS = lockBoundMs + 2_000;

/** An error as node-postgres raises it for a wait past lock_timeout. */

describe("the containment engine and a busy store (unit, SQLite)", () => {
  const { open, job: jobOf } = scratchContainFixtures("bulwark-cbusy-", NOW);
  const done = { counts: { "flaky.items": 1 }, processed: 1, next: null };

  it("a step that fails as busy twice is retried by the same worker and the job finishes done, its batch applied and audited once", async () => {
    const fx = await open();
    const id = await jobOf(fx);
    let tries = 0;
    const stage: SequentialStage = {
      name: "flaky",
      async step() {
        if (++tries <= 2) throw lockTimeoutError();
        return done;
      },
    };
    const job = await runStages(fx, id, [stage], { busyRetryMs: 10_000 });
    assert.equal(job.status, "done");
    assert.equal(tries, 3);
    assert.equal(job.done, 1, "counted once");
    assert.deepEqual(job.counts, { "flaky.items": 1 });
    assert.equal((await eventData(fx, id, "contain.job.batch")).length, 1, "one contain.job.batch for the one applied batch");
    assert.equal((await eventData(fx, id, "contain.job.failed")).length, 0, "no failure on the trail");
    assert.equal((await fx.audit.verify()).ok, true);
    await fx.database.close();
  });

  it("a stage's prepare that fails as busy is retried too, and its preparation recorded once", async () => {
    const fx = await open();
    const id = await jobOf(fx);
    let prepares = 0;
    const stage: SequentialStage = {
      name: "keyed",
      async prepare() {
        if (++prepares === 1) throw Object.assign(new Error("canceling statement due to statement timeout"), { code: "57014" });
        return { made: "key_1" };
      },
      async step() {
        return done;
      },
    };
    const job = await runStages(fx, id, [stage], { busyRetryMs: 10_000 });
    assert.equal(job.status, "done");
    assert.equal(prepares, 2);
    const prepared = await eventData(fx, id, "contain.job.prepared");
    assert.equal(prepared.length, 1);
    assert.equal(prepared[0]?.["made"], "key_1");
    await fx.database.close();
  });

  it("any other error fails the job at once, as before: one try, no pause, marked failed, contain.job.failed recorded", async (t) => {
    const fx = await open();
    const id = await jobOf(fx);
    let tries = 0;
    const stage: SequentialStage = {
      name: "broken",
      async step() {
        tries++;
        throw Object.assign(new Error("disk I/O error"), { code: "ERR_SQLITE_ERROR" });
      },
    };
    // Every pause of the engine (a busy batch's backoff, a failure record's once-more) is a setTimeout: watched, not timed.
    const timers = t.mock.method(globalThis, "setTimeout");
    const error = await runStages(fx, id, [stage], { busyRetryMs: 10_000 }).then(() => null, (e: unknown) => e as Error & { code?: string });
    const pauses = timers.mock.calls.map((call) => call.arguments[1]);
    timers.mock.restore();
    assert.ok(error, "the run failed");
    assert.equal(error.code, "BULWARK_ERR_CONTAIN_FAILED");
    assert.equal(tries, 1, "not retried");
    assert.deepEqual(pauses, [], "at once, no backoff: no pause was taken before the failure");
    const job = await fx.jobs.get(id);
    assert.equal(job.status, "failed");
    assert.match(job.error ?? "", /disk I\/O error/);
    assert.equal((await eventData(fx, id, "contain.job.failed")).length, 1);
    await fx.database.close();
  });

  it("a store busy past the budget fails the job named BULWARK_ERR_DB_BUSY, resumable, saying how long it waited", async () => {
    const fx = await open();
    const id = await jobOf(fx);
    let tries = 0;
    const stage: SequentialStage = {
      name: "stuck",
      async step() {
        tries++;
        throw lockTimeoutError();
      },
    };
    const error = await runStages(fx, id, [stage], { busyRetryMs: 800 }).then(() => null, (e: unknown) => e as Error & { code?: string });
    assert.ok(error, "the run failed");
    assert.equal(error.code, "BULWARK_ERR_CONTAIN_FAILED");
    assert.match(error.message, /BULWARK_ERR_DB_BUSY/);
    assert.match(error.message, /can be resumed/);
    assert.ok(tries >= 2 && tries <= 4, `retried within the budget (${tries} tries)`);
    const job = await fx.jobs.get(id);
    assert.equal(job.status, "failed");
    assert.match(job.error ?? "", /BULWARK_ERR_DB_BUSY/);
    assert.match(job.error ?? "", new RegExp(`${tries} tries`), job.error ?? "");
    const failed = await eventData(fx, id, "contain.job.failed");
    assert.equal(failed.length, 1, "one event for the failure, none per retry");
    assert.match(String(failed[0]?.["error"]), /BULWARK_ERR_DB_BUSY/);
    await fx.database.close();
  });

  it("SQLite's own busy error (another process holding the write lock) is retried the same way, and past the budget the failure says so in SQLite's words, not as a PostgreSQL SQLSTATE", async () => {
    const fx = await open();
    const id = await jobOf(fx);
    const stage: SequentialStage = {
      name: "stuck",
      async step() {
        throw Object.assign(new Error("database is locked"), { code: "ERR_SQLITE_ERROR", errcode: 5 });
      },
    };
    const error = await runStages(fx, id, [stage], { busyRetryMs: 600 }).then(() => null, (e: unknown) => e as Error);
    assert.ok(error, "the run failed");
    assert.match(error.message, /BULWARK_ERR_DB_BUSY/);
    assert.match(error.message, /another process held the database's write lock/);
    assert.doesNotMatch(error.message, /SQLSTATE/);
    assert.equal((await fx.jobs.get(id)).status, "failed");
    await fx.database.close();
  });

  it("attack: the lock that failed the run is still held when its failure is written — the mark and the event are tried once more a moment later and land (ASVS 16.3.1, 16.5.3) (was: written once, a busy store left the job reading as under way with no contain.job.failed)", async () => {
    const fx = await open();
    const id = await jobOf(fx);
    const markFailed = fx.jobs.markFailed.bind(fx.jobs);
    let marks = 0;
    fx.jobs.markFailed = async (jobId, reason) => (++marks === 1 ? Promise.reject(lockTimeoutError()) : markFailed(jobId, reason));
    const stage: SequentialStage = {
      name: "stuck",
      async step() {
        throw lockTimeoutError();
      },
    };
    const error = await runStages(fx, id, [stage], { busyRetryMs: 0 }).then(() => null, (e: unknown) => e as Error);
    assert.ok(error, "the run failed");
    assert.equal(marks, 2, "the mark was tried once more");
    assert.doesNotMatch(error.message, /could not be written/);
    assert.equal((await fx.jobs.get(id)).status, "failed");
    assert.equal((await eventData(fx, id, "contain.job.failed")).length, 1);
    await fx.database.close();
  });

  it("attack: the failure of a run cannot be written at all while the store stays busy — the error says the job still reads as under way, and resuming it finishes it (ASVS 16.3.1, 16.5.3) (was: the error claimed a recorded failure)", async () => {
    const fx = await open();
    const id = await jobOf(fx);
    const markFailed = fx.jobs.markFailed.bind(fx.jobs);
    fx.jobs.markFailed = async () => Promise.reject(lockTimeoutError());
    let tries = 0;
    const stage: SequentialStage = {
      name: "flaky",
      async step() {
        if (++tries === 1) throw lockTimeoutError();
        return done;
      },
    };
    const error = await runStages(fx, id, [stage], { busyRetryMs: 0 }).then(() => null, (e: unknown) => e as Error);
    assert.ok(error, "the run failed");
    assert.match(error.message, /the failure could not be written either, so the job still reads as under way/);
    assert.match(error.message, /can be resumed/);
    assert.notEqual((await fx.jobs.get(id)).status, "failed");
    fx.jobs.markFailed = markFailed;
    const resumed = await runStages(fx, id, [stage], { busyRetryMs: 0 });
    assert.equal(resumed.status, "done");
    await fx.database.close();
  });

  it("a job cancelled while its batch is being retried stops retrying and stays cancelled, not failed", async () => {
    const fx = await open();
    const id = await jobOf(fx);
    let tries = 0;
    const stage: SequentialStage = {
      name: "stuck",
      async step() {
        if (++tries === 1) setTimeout(() => void fx.database.db.updateTable("jobs").set({ status: "cancelled" }).where("id", "=", id).execute(), 50);
        throw lockTimeoutError();
      },
    };
    const job = await runStages(fx, id, [stage], { busyRetryMs: 60_000 });
    assert.equal(job.status, "cancelled");
    assert.equal(tries, 1, "no try after the cancel");
    assert.equal((await eventData(fx, id, "contain.job.failed")).length, 0);
    await fx.database.close();
  });
});

describe("a containment job behind a held audit head (PostgreSQL)", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  it("attack: a DBA's session holds the audit log's head ~2 s past the bound while a lock-accounts job runs — the job finishes done, every account in scope locked once, one contain.job.batch per batch, the chain verifies (ASVS 16.5.3, 16.4.2) (was: the job failed at its first busy batch and waited for an operator)", async () => {
    const { fx, dba, close } = await site();
    try {
      const deps = containDeps(fx.app);
      const ids = await seedContainUsers(deps, fx.clock.now(), 12);
      const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { all: true }, actor: "cli:alice", batchSize: 4 });
      await dba.query("BEGIN");
      await dba.query(HOLD_AUDIT_HEAD);
      const run = runJob(deps, job.id, { worker: "cli:1" }).then((j) => j, (error: unknown) => error as Error);
      assert.ok(await until(async () => (await waiting(dba)) > 0, 5000), "control: the batch waits on the held head");
      await new Promise((r) => setTimeout(r, HOLD_PAST_BOUND_MS));
      await dba.query("ROLLBACK");
      const ended = await run;
      assert.ok(!(ended instanceof Error), `the job did not fail: ${(ended as Error).message}`);
      assert.equal(ended.status, "done");
      assert.equal(ended.done, ids.length);
      const locked = await fx.app.db.db.selectFrom("users").select("id").where("id", "in", ids).where("locked_at", "is not", null).execute();
      assert.equal(locked.length, ids.length, "every account in scope is locked");
      const changes = await fx.app.db.db.selectFrom("contain_changes").select("user_id").where("job_id", "=", job.id).execute();
      assert.equal(changes.length, ids.length, "each account changed once");
      const rows = await fx.app.db.db.selectFrom("audit_events").select(["type", "data"]).where("subject", "=", job.id).orderBy("seq").execute();
      const batches = rows.filter((r) => r.type === "contain.job.batch").map((r) => (JSON.parse(r.data) as { batch: number }).batch);
      assert.deepEqual([...batches].sort(), [0, 1, 2], "one contain.job.batch per applied batch");
      assert.equal(rows.filter((r) => r.type === "contain.job.failed").length, 0, "no failure recorded");
      const report = await fx.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report));
    } finally {
      await close();
    }
  });

  it("the head held past the retry budget — the job fails named BULWARK_ERR_DB_BUSY and resumable, nothing of the batch applied; resumed once the head is free, it completes with each account changed once", async () => {
    const { fx, dba, close } = await site();
    try {
      const deps = containDeps(fx.app);
      const ids = await seedContainUsers(deps, fx.clock.now(), 6);
      const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { all: true }, actor: "cli:alice", batchSize: 3 });
      await dba.query("BEGIN");
      await dba.query(HOLD_AUDIT_HEAD);
      const error = await runJob(deps, job.id, { worker: "cli:1", busyRetryMs: 1000 }).then(() => null, (e: unknown) => e as Error & { code?: string });
      await dba.query("ROLLBACK");
      assert.ok(error, "the run failed");
      assert.equal(error.code, "BULWARK_ERR_CONTAIN_FAILED");
      assert.match(error.message, /BULWARK_ERR_DB_BUSY/);
      assert.match(error.message, /can be resumed/);
      // Bounded by the 1 s budget, counted in tries, not timed: each try waits out the 2 s lock bound, longer than the
      // budget, so the first busy failure is tried again (its 250 ms backoff fits) and the second is past it. A slow
      // host only lengthens a try, it never adds one; the default two-minute budget would have made about twenty.
      assert.match(error.message, /: 2 tries over /, "two tries, then failed: bounded by the budget");
      const failed = await fx.app.accounts.jobs.get(job.id);
      assert.equal(failed.status, "failed");
      assert.match(failed.error ?? "", /busy/);
      assert.match(failed.error ?? "", /: 2 tries over /);
      const none = await fx.app.db.db.selectFrom("users").select("id").where("id", "in", ids).where("locked_at", "is not", null).execute();
      assert.equal(none.length, 0, "nothing of the batch was applied");
      const resumed = await resumeJob(deps, job.id, { actor: "cli:alice", worker: "cli:2" });
      assert.equal(resumed.status, "done");
      const locked = await fx.app.db.db.selectFrom("users").select("id").where("id", "in", ids).where("locked_at", "is not", null).execute();
      assert.equal(locked.length, ids.length);
      const changes = await fx.app.db.db.selectFrom("contain_changes").select("user_id").where("job_id", "=", job.id).execute();
      assert.equal(changes.length, ids.length, "each account changed once");
      const batches = await fx.app.db.db.selectFrom("audit_events").select("seq").where("subject", "=", job.id).where("type", "=", "contain.job.batch").execute();
      assert.equal(batches.length, 2);
      const report = await fx.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report));
    } finally {
      await close();
    }
  });
});
