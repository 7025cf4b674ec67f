// /api/v1/contain/jobs over the real server (issue 5): a dry run reports and changes nothing; a real run answers
// 202 at once and finishes in the background of the server process; progress (done, total, rate, ETA) is
// readable; undo restores exactly what the job changed. Only contain.run may do any of it.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { containDeps, resumeJob } from "../src/contain/index.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";

interface JobBody { id: string; kind: string; status: string; levers: string[]; counts: Record<string, Record<string, number>>; total: number; done: number; undoOf?: string; incidentId: string | null; progress: { done: number; total: number; ratePerSecond: number; etaSeconds: number | null }; leftAlone?: { rows: unknown[]; more: boolean } }

let fx: APIFixture;
let token: string;
let responder: { id: string };
before(async () => {
  fx = await openAPIFixture();
  responder = await fx.user(["contain.run", "accounts.read"]);
  token = await fx.token(responder.id, ["contain.run"]);
});
after(async () => {
  await fx.close();
});

/** Polls a job until it is finished (the run is in the background). */
function finished(id: string): Promise<JobBody> {
  return fx.finishedJob<JobBody>(token, id);
}

async function lockedCount(ids: string[]): Promise<number> {
  const rows = await fx.app.db.db.selectFrom("users").select("id").where("id", "in", ids).where("locked_at", "is not", null).execute();
  return rows.length;
}

describe("/api/v1/contain/jobs", () => {
  let victims: string[] = [];

  it("dry-runs: reports per lever with a sample, changes nothing, audits the request", async () => {
    await fx.app.accounts.roles.create({ name: "breached", permissions: [] }, "test");
    for (let i = 0; i < 12; i++) {
      const u = await fx.user([]);
      await fx.app.accounts.roles.grant(u.id, "breached", "test");
      victims.push(u.id);
    }
    const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { roles: ["breached"] }, dryRun: true }, headers: { "x-request-id": "dry-1" } });
    assert.equal(res.statusCode, 200, res.body);
    const report = res.json() as { dryRun: true; users: number; levers: Record<string, { counts: Record<string, number>; sample: string[] }> };
    assert.equal(report.dryRun, true);
    assert.equal(report.users, 12);
    assert.ok(report.levers["lock-accounts"]);
    assert.equal(await lockedCount(victims), 0, "a dry run changes nothing");
    const event = await fx.app.db.db.selectFrom("audit_events").selectAll().where("type", "=", "api.contain.dry-run").executeTakeFirst();
    assert.equal(event?.request_id, "dry-1");
    assert.equal(event?.actor, responder.id);
  });

  it("runs a job in the background: 202 with the job, then progress to done; the scope is locked", async () => {
    const res = await fx.call("POST", "/api/v1/contain/jobs", {
      token, headers: { "x-request-id": "run-1" },
      body: { levers: ["lock-accounts"], scope: { roles: ["breached"] }, incidentId: "inc-42", batchSize: 5, options: { lockReason: "incident 42" } },
    });
    assert.equal(res.statusCode, 202, res.body);
    const job = (res.json() as { job: JobBody }).job;
    assert.match(job.id, /^job_/);
    assert.equal(res.headers["location"], `/api/v1/contain/jobs/${job.id}`);
    assert.equal(job.total, 12);
    assert.equal(job.incidentId, "inc-42");
    assert.notEqual(job.status, "done", "202 answers before the background run ends");
    const done = await finished(job.id);
    assert.equal(done.status, "done");
    assert.equal(done.progress.done, 12);
    assert.equal(done.progress.total, 12);
    assert.equal(done.progress.etaSeconds, 0);
    assert.equal(typeof done.progress.ratePerSecond, "number");
    assert.equal(await lockedCount(victims), 12);
    const reason = await fx.app.db.db.selectFrom("users").select("locked_reason").where("id", "=", victims[0] as string).executeTakeFirst();
    assert.equal(reason?.locked_reason, "incident 42");
    const created = await fx.app.db.db.selectFrom("audit_events").selectAll().where("type", "=", "api.contain.job.created").where("subject", "=", job.id).executeTakeFirst();
    assert.equal(created?.request_id, "run-1");
    const list = (await fx.call("GET", "/api/v1/contain/jobs", { token })).json() as { jobs: JobBody[] };
    assert.equal(list.jobs[0]?.id, job.id);

    // Undo restores exactly what the job changed; a row changed since is left alone and reported.
    await fx.app.db.db.updateTable("users").set({ locked_reason: "changed by hand" }).where("id", "=", victims[0] as string).execute();
    const undo = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token });
    assert.equal(undo.statusCode, 202, undo.body);
    const undoJob = (undo.json() as { job: JobBody }).job;
    assert.equal(undoJob.undoOf, job.id);
    const undone = await finished(undoJob.id);
    assert.equal(undone.status, "done");
    assert.equal(await lockedCount(victims), 1, "all but the hand-changed row are unlocked");
    assert.equal(undone.leftAlone?.rows.length, 1);
  });

  it("refuses bad requests with 400 and names what is wrong: unknown lever, no scope, --all mixed, bad time, extra fields", async () => {
    for (const [body, code] of [
      [{ levers: ["nuke-everything"], scope: { all: true } }, "BULWARK_ERR_CONTAIN_LEVER"],
      [{ levers: ["lock-accounts"], scope: {} }, "BULWARK_ERR_CONTAIN_NO_SCOPE"],
      [{ levers: ["lock-accounts"], scope: { all: true, roles: ["breached"] } }, "BULWARK_ERR_CONTAIN_SCOPE"],
      [{ levers: ["lock-accounts"], scope: { createdBefore: "last tuesday" } }, "BULWARK_ERR_API_TIME"],
      [{ levers: ["lock-accounts"], scope: { roles: ["breached"], everyone: true } }, "BULWARK_ERR_API_UNKNOWN_FIELD"],
      [{ levers: ["lock-accounts"], scope: { roles: ["breached"] }, actor: "system" }, "BULWARK_ERR_API_UNKNOWN_FIELD"],
      [{ levers: [], scope: { all: true } }, "BULWARK_ERR_VALIDATION"],
      [{ levers: ["lock-accounts"], scope: { all: true }, batchSize: 1_000_000 }, "BULWARK_ERR_VALIDATION"],
    ] as const) {
      const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body });
      assert.equal(res.statusCode, 400, `${JSON.stringify(body)} answered ${res.statusCode}`);
      assert.equal((res.json() as { error: { code: string } }).error.code, code, JSON.stringify(body));
    }
    assert.equal((await fx.app.accounts.jobs.list({ kind: "contain" })).length, 1, "no job was created by a refused request");
  });

  it("refuses a day that does not exist with 400 naming the field and why, never the value (was: 2026-02-30 rolled over to March 2)", async () => {
    for (const [value, why] of [["2026-02-30", "February 2026 has 28 days"], ["2026-04-31T12:00:00Z", "April 2026 has 30 days"], ["2026-13-01", "there is no month 13"]] as const) {
      const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { createdBefore: value, ids: [responder.id] }, dryRun: true } });
      assert.equal(res.statusCode, 400, `${value} answered ${res.statusCode}: ${res.body}`);
      const error = (res.json() as { error: { code: string; message: string } }).error;
      assert.equal(error.code, "BULWARK_ERR_API_TIME");
      assert.equal(error.message, `scope.createdBefore is not a date: ${why}`);
    }
    const leap = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { createdBefore: "2028-02-29", ids: [responder.id] }, dryRun: true } });
    assert.equal(leap.statusCode, 200, leap.body);
  });

  it("attack: contain.run alone cannot lock or cut off the administrators; an administrator can, and so can a responder on everyone else", async () => {
    const admin = await fx.user(["admin"]);
    const adminToken = await fx.token(admin.id, ["admin"]);
    for (const scope of [{ all: true }, { ids: [admin.id] }]) {
      for (const dryRun of [true, false]) {
        const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts", "revoke-tokens"], scope, dryRun } });
        assert.equal(res.statusCode, 403, `${JSON.stringify(scope)} dryRun=${dryRun}: ${res.body}`);
        assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_API_OUTRANKED");
      }
    }
    assert.equal((await fx.app.accounts.users.getById(admin.id))?.lockedAt, null, "the administrator was not locked");
    assert.equal((await fx.call("GET", "/api/v1/contain/jobs", { token: adminToken })).statusCode, 200, "nor was the administrator's token revoked");
    const reader = await fx.user(["accounts.read"]);
    const onReader = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [reader.id] }, dryRun: true } });
    assert.equal(onReader.statusCode, 200, onReader.body);
    const byAdmin = await fx.call("POST", "/api/v1/contain/jobs", { token: adminToken, body: { levers: ["lock-accounts"], scope: { ids: [admin.id] }, dryRun: true } });
    assert.equal(byAdmin.statusCode, 200, byAdmin.body);
  });

  it("answers 404 for unknown jobs and for jobs that are not containment jobs", async () => {
    assert.equal((await fx.call("GET", "/api/v1/contain/jobs/job_aaaaaaaaaaaaaaaaaaaaaaaaaa", { token })).statusCode, 404);
    const other = await fx.app.accounts.jobs.create({ kind: "migrate-hashes", spec: {}, total: 0, actor: "test" });
    assert.equal((await fx.call("GET", `/api/v1/contain/jobs/${other.id}`, { token })).statusCode, 404);
    assert.equal((await fx.call("POST", `/api/v1/contain/jobs/${other.id}/undo`, { token })).statusCode, 404);
  });

  it("refuses a user who holds accounts.write but not contain.run, and a token of a responder scoped without it", async () => {
    const writer = await fx.user(["accounts.read", "accounts.write"]);
    const writerToken = await fx.token(writer.id, ["accounts.read", "accounts.write"]);
    const narrow = await fx.token(responder.id, ["accounts.read"]);
    for (const t of [writerToken, narrow]) {
      const res = await fx.call("POST", "/api/v1/contain/jobs", { token: t, body: { levers: ["lock-accounts"], scope: { all: true } } });
      assert.equal(res.statusCode, 403);
    }
    assert.equal((await fx.app.accounts.jobs.list({ kind: "contain" })).length, 1);
  });

  it("stops a background job between batches when the server closes; the job resumes to the same end state", async () => {
    const other = await openAPIFixture();
    try {
      const boss = await other.user(["contain.run"]);
      const t = await other.token(boss.id, ["contain.run"]);
      await other.app.accounts.roles.create({ name: "many", permissions: [] }, "test");
      const ids: string[] = [];
      for (let i = 0; i < 150; i++) {
        const u = await other.user([]);
        await other.app.accounts.roles.grant(u.id, "many", "test");
        ids.push(u.id);
      }
      const res = await other.call("POST", "/api/v1/contain/jobs", { token: t, body: { levers: ["lock-accounts"], scope: { roles: ["many"] }, batchSize: 1 } });
      assert.equal(res.statusCode, 202);
      const id = (res.json() as { job: JobBody }).job.id;
      await other.server.close(); // waits for the runner to stop after its current batch
      const stopped = await other.app.accounts.jobs.get(id);
      await sleep(50);
      const later = await other.app.accounts.jobs.get(id);
      assert.equal(later.done, stopped.done, "no batch runs after the server closed");
      // The 202 came back before the job was done, so closing interrupts it (one batch per user here).
      assert.notEqual(stopped.status, "done");
      assert.ok(stopped.done < 150, `stopped after ${stopped.done} of 150`);
      const resumed = await resumeJob(containDeps(other.app), id, { actor: "test" });
      assert.equal(resumed.status, "done");
      const locked = await other.app.db.db.selectFrom("users").select("id").where("id", "in", ids).where("locked_at", "is not", null).execute();
      assert.equal(locked.length, 150, "the resumed job reaches the end state of an uninterrupted run");
    } finally {
      await other.close();
    }
  });
  it("attack: contain.run alone cannot undo an administrator's containment of another administrator: no unlock, no admin role handed back", async () => {
    const admin = await fx.user(["admin"]);
    const adminToken = await fx.token(admin.id, ["admin"]);
    const suspect = await fx.user(["admin"]);
    const sleeper = await fx.user(["admin"]);
    // The sleeper has not signed in for a long time (never, and created 200 days ago).
    await fx.app.db.db.updateTable("users").set({ created_at: Date.now() - 200 * 86_400_000, last_login_at: null }).where("id", "=", sleeper.id).execute();
    const sleeperRoles = await fx.app.accounts.roles.rolesOf(sleeper.id);
    const lock = await fx.call("POST", "/api/v1/contain/jobs", { token: adminToken, body: { levers: ["lock-accounts"], scope: { ids: [suspect.id] } } });
    assert.equal(lock.statusCode, 202, lock.body);
    const lockJob = await finished((lock.json() as { job: JobBody }).job.id);
    const demote = await fx.call("POST", "/api/v1/contain/jobs", { token: adminToken, body: { levers: ["demote-inactive-admins"], scope: { ids: [sleeper.id] }, options: { inactiveDays: 90 } } });
    assert.equal(demote.statusCode, 202, demote.body);
    const demoteJob = await finished((demote.json() as { job: JobBody }).job.id);
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(sleeper.id), [], "demoted");
    for (const job of [lockJob, demoteJob]) {
      const res = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token });
      assert.equal(res.statusCode, 403, `undo of ${job.levers.join(",")}: ${res.body}`);
      assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_API_OUTRANKED");
    }
    assert.notEqual((await fx.app.accounts.users.getById(suspect.id))?.lockedAt, null, "the administrator stays locked");
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(sleeper.id), [], "and the demoted one stays demoted");
    // An administrator may undo both.
    for (const job of [lockJob, demoteJob]) {
      const res = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token: adminToken });
      assert.equal(res.statusCode, 202, res.body);
      assert.equal((await finished((res.json() as { job: JobBody }).job.id)).status, "done");
    }
    assert.equal((await fx.app.accounts.users.getById(suspect.id))?.lockedAt, null);
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(sleeper.id), sleeperRoles);
  });
});
