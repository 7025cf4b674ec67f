// What a containment job says about itself: a finished job reads complete, and the audit log names who resumed a
// job — not whoever created it. On SQLite and PostgreSQL; the CLI path end to end on SQLite.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp } from "../src/app/index.ts";
import { shellActor } from "../src/lib/os-user.ts";
import type { Database } from "../src/store/database.ts";
import { createSessionManager } from "../src/accounts/sessions/session-manager.ts";
import { containDeps, createContainJob, dryRunContain, jobProgress, jobView, resumeJob, resumeUnfinishedJobs, runJob } from "../src/contain/index.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";
import { openContainFixture, seedContainUsers, type ContainFixture } from "./helpers/contain-fixture.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const NOW = Date.UTC(2026, 10, 20);

type Fixture = ContainFixture;

function setup(database: Database): Promise<Fixture> {
  return openContainFixture(database, { now: NOW });
}

function seedUsers(fx: Fixture, n: number): Promise<string[]> {
  return seedContainUsers(fx, NOW, n);
}

async function resumedEvents(fx: Fixture, jobId: string): Promise<Array<{ actor: string; data: Record<string, unknown> }>> {
  return (await fx.audit.tail(200)).filter((e) => e.type === "contain.job.resumed" && e.subject === jobId).map((e) => ({ actor: e.actor, data: e.data }));
}

forEachDialect("contain job reporting", (dfx) => {
  it("a finished job whose only lever is global (rotate-keys --all) reads complete: done equals total", async () => {
    const fx = await setup(await dfx.fresh());
    await seedUsers(fx, 7);
    const job = await createContainJob(fx, { levers: ["rotate-keys"], scope: { all: true }, actor: "t" });
    assert.equal(job.total, 7);
    const seen: Array<[number, number]> = [];
    const done = await runJob(fx, job.id, { onProgress: (d, t) => seen.push([d, t]) });
    const view = jobView(done);
    assert.equal(view.status, "done");
    assert.equal(view.done, view.total, `${view.done}/${view.total}`);
    // The same fields as before, with the same meaning: the progress bar ends full.
    assert.deepEqual(seen.at(-1), [7, 7]);
    const progress = jobProgress(done, fx.clock.now());
    assert.deepEqual({ done: progress.done, total: progress.total, etaSeconds: progress.etaSeconds }, { done: 7, total: 7, etaSeconds: 0 });
  });

  it("a dry run of levers that end the same sessions says so, and bounds the total the job then ends (was: each lever counted them as if alone: 3 + 3 sessions promised, 3 ended)", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await seedUsers(fx, 3);
    const sessions = createSessionManager({ database: fx.database, clock: fx.clock, random: fx.random });
    for (const id of ids) await sessions.createSession(id, { aal: 1 });
    fx.clock.advance(1_000);
    const request = { levers: ["revoke-sessions", "invalidate-passwords"], scope: { ids }, actor: "t" };
    const report = await dryRunContain(fx, request);
    assert.deepEqual([report.levers["revoke-sessions"]?.counts["sessions"], report.levers["invalidate-passwords"]?.counts["sessions"]], [3, 3]);
    for (const [name, other] of [["revoke-sessions", "invalidate-passwords"], ["invalidate-passwords", "revoke-sessions"]] as const) {
      const notes = report.levers[name]?.notes ?? [];
      assert.ok(notes.some((n) => n.includes(`sessions also counted by ${other}`) && n.includes("between 3 and 6")), `${name}: ${JSON.stringify(notes)}`);
    }
    const job = await createContainJob(fx, request);
    await runJob(fx, job.id);
    assert.equal((await fx.database.db.selectFrom("sessions").select("id").execute()).length, 0, "each session ended once: 3 in all");
  });

  // ASVS 16.2.1: each log entry says who did what; a resume is done by whoever resumes, not by the job's creator.
  it("contain.job.resumed names whoever resumed the job, and keeps its creator in the data", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await seedUsers(fx, 3);
    const job = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids }, actor: "usr_alice", batchSize: 1 });
    await runJob(fx, job.id, { stopAfterBatches: 1 });
    await resumeJob(fx, job.id, { actor: "cli:bob", stopAfterBatches: 1 });
    assert.deepEqual(await resumedEvents(fx, job.id), [{ actor: "cli:bob", data: { status: "running", done: 1, total: 3, createdBy: "usr_alice", worker: "" } }]);
    // The server's automatic resume is the system's doing.
    const outcomes = await resumeUnfinishedJobs(fx, { worker: "server:test" }).finished;
    assert.deepEqual(outcomes, [{ id: job.id, status: "done" }]);
    const events = await resumedEvents(fx, job.id);
    assert.equal(events.length, 2);
    assert.deepEqual(events[1], { actor: "system", data: { status: "running", done: 2, total: 3, createdBy: "usr_alice", worker: "server:test" } });
  });
});

describe("contain resume (CLI)", () => {
  let dir: string;
  const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_LOG_LEVEL: "silent" });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-contain-reporting-"));
    assert.equal((await bulwarkInProcess(["init"], env())).code, 0);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("records the operator who ran `contain resume` as the actor of contain.job.resumed", async () => {
    const app = await openApp({ env: env() });
    let jobId: string;
    try {
      const deps = containDeps(app, null);
      const a = await app.accounts.users.create({ email: "a@example.org" });
      const b = await app.accounts.users.create({ email: "b@example.org" });
      jobId = (await createContainJob(deps, { levers: ["lock-accounts"], scope: { ids: [a.id, b.id] }, actor: "usr_alice", batchSize: 1 })).id;
      await runJob(deps, jobId, { stopAfterBatches: 1 });
    } finally {
      await app.close();
    }
    const r = await bulwarkInProcess(["contain", "resume", jobId, "--json"], env());
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { status: string }).status, "done");
    const check = await openApp({ env: env() });
    try {
      const event = (await check.audit.tail(50)).find((e) => e.type === "contain.job.resumed" && e.subject === jobId);
      assert.equal(event?.actor, shellActor());
      assert.equal(event?.data["createdBy"], "usr_alice");
    } finally {
      await check.close();
    }
  });
});
