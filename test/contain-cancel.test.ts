// Cancelling a containment or undo job (`bulwark contain cancel JOB`, POST /api/v1/contain/jobs/:id/cancel): a job
// scoped wrongly in the middle of an incident must be stoppable, and its partial work reversible, without killing
// processes and editing rows by hand. Written as attacks where they are: a cancelled job must run no further batch
// in any process (resume, server start), and over HTTP only a caller who outranks the job's creator, with a fresh
// session, may stop it (ASVS 8.2.2, 7.5.3). Was: no way to cancel; `contain undo` refused a job that had not finished.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  cancelJob, containDeps, createContainJob, createUndoJob, jobView, resumableJobs, resumeJob, runJob, type ContainRequest,
} from "../src/contain/index.ts";
import { BulwarkError } from "../src/lib/errors.ts";
import { totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { parseAPIToken } from "../src/accounts/tokens/index.ts";
import { bulwark } from "./helpers/cli.ts";
import { apiTokenRow, codeOf, type ContainFixture, openContainFixture, seedContainUsers, withHelpDesk } from "./helpers/contain-fixture.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const NOW = Date.UTC(2026, 11, 3, 12);

async function lockedCount(fx: ContainFixture): Promise<number> {
  const row = await fx.database.db.selectFrom("users").where("locked_at", "is not", null).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
  return Number(row.n);
}

async function auditTypes(fx: ContainFixture, subject: string): Promise<Array<{ type: string; actor: string; data: string }>> {
  return fx.database.db.selectFrom("audit_events").select(["type", "actor", "data"]).where("subject", "=", subject).orderBy("seq").execute();
}

forEachDialect("contain cancel", (dfx) => {
  const lockAll = (): ContainRequest => ({ levers: ["lock-accounts", "expire-passwords"], scope: { all: true }, actor: "cli:alice", batchSize: 10 });

  it("attack: a cancelled job runs no further batch — not by resume, not by a server start, not by a worker already running it — and says how far it got", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    await seedContainUsers(fx, NOW, 30);
    const job = await createContainJob(fx, lockAll());
    // One committed batch, then the operator sees the scope is wrong.
    await runJob(fx, job.id, { stopAfterBatches: 1 });
    assert.equal(await lockedCount(fx), 10);
    const outcome = await cancelJob(fx, job.id, { actor: "cli:bob" });
    assert.deepEqual({ was: outcome.was, done: outcome.done, total: outcome.total, kind: outcome.kind }, { was: "running", done: 10, total: 30, kind: "contain" });
    const stored = await fx.jobs.get(job.id);
    assert.equal(stored.status, "cancelled");
    assert.notEqual(stored.finishedAt, null, "a cancelled job has ended");
    // Every way a job is carried on leaves it alone.
    assert.equal(await codeOf(resumeJob(fx, job.id, { actor: "cli:mallory" })), "BULWARK_ERR_JOB_FINISHED");
    assert.equal((await runJob(fx, job.id)).status, "cancelled", "a worker that reads the job after the cancel stops");
    assert.ok(!(await resumableJobs(fx)).some((j) => j.id === job.id), "a server start does not resume it");
    assert.equal(await lockedCount(fx), 10, "the 20 users past the cancel were never touched");
    const events = await auditTypes(fx, job.id);
    const cancelled = events.filter((e) => e.type === "contain.job.cancelled");
    assert.equal(cancelled.length, 1);
    assert.equal(cancelled[0]?.actor, "cli:bob");
    assert.deepEqual(JSON.parse(cancelled[0]?.data ?? "{}"), { kind: "contain", was: "running", done: 10, total: 30, createdBy: "cli:alice" });
    assert.ok(!events.some((e) => e.type === "contain.job.completed"), "a cancelled job never reads as completed");
    await fx.database.close();
  });

  it("a cancelled job's committed batches can be undone: exactly the users it changed are restored (was: undo refused a job that had not finished)", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    await seedContainUsers(fx, NOW, 25);
    const job = await createContainJob(fx, lockAll());
    await runJob(fx, job.id, { stopAfterBatches: 2 });
    await cancelJob(fx, job.id, { actor: "cli:bob" });
    assert.equal(await lockedCount(fx), 20);
    const undo = await createUndoJob(fx, job.id, "cli:bob");
    assert.equal(undo.total, 40, "two levers' records for the 20 users the job reached");
    const done = await runJob(fx, undo.id);
    assert.equal(done.status, "done");
    assert.deepEqual(done.counts, { "lock-accounts.restored": 20, "lock-accounts.skipped": 0, "expire-passwords.restored": 20, "expire-passwords.skipped": 0 });
    assert.equal(await lockedCount(fx), 0);
    const expired = await fx.database.db.selectFrom("users").where("password_must_change", "=", 1).select("id").execute();
    assert.equal(expired.length, 0);
    await fx.database.close();
  });

  it("a cancelled undo leaves what it restored restored, and a second undo takes up the rest", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    await seedContainUsers(fx, NOW, 30);
    const job = await createContainJob(fx, { ...lockAll(), levers: ["lock-accounts"] });
    assert.equal((await runJob(fx, job.id)).status, "done");
    const first = await createUndoJob(fx, job.id, "cli:bob");
    await runJob(fx, first.id, { stopAfterBatches: 1 });
    await cancelJob(fx, first.id, { actor: "cli:bob" });
    const view = jobView(await fx.jobs.get(first.id));
    assert.ok(view.notes.some((n) => n.startsWith("cancelled after 10 of 30 records")), view.notes.join(" | "));
    assert.equal(await lockedCount(fx), 20, "the first undo's batch stays restored");
    const second = await createUndoJob(fx, job.id, "cli:bob");
    assert.equal(second.total, 20, "only the records the cancelled undo had not reached");
    assert.equal((await runJob(fx, second.id)).status, "done");
    assert.equal(await lockedCount(fx), 0);
    await fx.database.close();
  });

  it("a job cancelled before it committed anything holds nobody: an older job's undo releases the users both named (was: the cancelled job's whole scope stayed held until it was undone too)", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    await seedContainUsers(fx, NOW, 12);
    const older = await createContainJob(fx, { ...lockAll(), levers: ["lock-accounts"] });
    assert.equal((await runJob(fx, older.id)).status, "done");
    // A later job over everyone, stopped before its first batch: it locked nobody.
    const wrong = await createContainJob(fx, { ...lockAll(), levers: ["lock-accounts"] });
    await cancelJob(fx, wrong.id, { actor: "cli:bob" });
    const undo = await createUndoJob(fx, older.id, "cli:bob");
    const done = await runJob(fx, undo.id);
    assert.deepEqual(done.counts, { "lock-accounts.restored": 12, "lock-accounts.skipped": 0 });
    assert.equal(await lockedCount(fx), 0);
    // One that committed a batch holds its scope, as before: the undo leaves those users alone.
    await fx.database.db.updateTable("users").set({ locked_at: null }).execute();
    const again = await createContainJob(fx, { ...lockAll(), levers: ["lock-accounts"] });
    assert.equal((await runJob(fx, again.id)).status, "done");
    const partial = await createContainJob(fx, { ...lockAll(), levers: ["lock-accounts"] });
    await runJob(fx, partial.id, { stopAfterBatches: 1 });
    await cancelJob(fx, partial.id, { actor: "cli:bob" });
    const second = await runJob(fx, (await createUndoJob(fx, again.id, "cli:bob")).id);
    assert.equal(second.counts["lock-accounts.restored"], 0, JSON.stringify(second.counts));
    assert.equal(await lockedCount(fx), 12);
    await fx.database.close();
  });

  it("a cancelled job with no reversible lever says so instead of pointing at an undo that is refused", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    await seedContainUsers(fx, NOW, 3);
    const job = await createContainJob(fx, { ...lockAll(), levers: ["revoke-sessions", "revoke-tokens"] });
    await cancelJob(fx, job.id, { actor: "cli:bob" });
    const notes = jobView(await fx.jobs.get(job.id)).notes;
    assert.ok(notes.includes("cancelled after 0 of 3 users: what its batches applied stays (revoke-tokens, revoke-sessions cannot be undone)") ||
      notes.includes("cancelled after 0 of 3 users: what its batches applied stays (revoke-sessions, revoke-tokens cannot be undone)"), notes.join(" | "));
    assert.equal(await codeOf(createUndoJob(fx, job.id, "cli:bob")), "BULWARK_ERR_CONTAIN_UNDO");
    await fx.database.close();
  });

  it("a job that ended cannot be cancelled, nor can what is not a containment job; a pending or failed one can (was: no cancel at all)", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    await seedContainUsers(fx, NOW, 5);
    const finished = await createContainJob(fx, lockAll());
    assert.equal((await runJob(fx, finished.id)).status, "done");
    assert.equal(await codeOf(cancelJob(fx, finished.id, { actor: "cli:bob" })), "BULWARK_ERR_CONTAIN_NOT_CANCELLABLE");
    assert.equal((await fx.jobs.get(finished.id)).status, "done", "a refused cancel changes nothing");
    const other = await fx.jobs.create({ kind: "migrate-hashes", spec: {}, total: 0, actor: "cli" });
    assert.equal(await codeOf(cancelJob(fx, other.id, { actor: "cli:bob" })), "BULWARK_ERR_CONTAIN_JOB");
    assert.equal((await fx.jobs.get(other.id)).status, "pending");
    assert.equal(await codeOf(cancelJob(fx, "job_nope", { actor: "cli:bob" })), "BULWARK_ERR_JOB_NOT_FOUND");
    const pending = await createContainJob(fx, { ...lockAll(), levers: ["revoke-sessions"] });
    assert.equal((await cancelJob(fx, pending.id, { actor: "cli:bob" })).was, "pending");
    const failed = await createContainJob(fx, { ...lockAll(), levers: ["revoke-tokens"] });
    await fx.jobs.markFailed(failed.id, "disk full");
    assert.equal((await cancelJob(fx, failed.id, { actor: "cli:bob" })).was, "failed");
    assert.equal(await codeOf(cancelJob(fx, failed.id, { actor: "cli:bob" })), "BULWARK_ERR_CONTAIN_NOT_CANCELLABLE", "twice is refused");
    await fx.database.close();
  });

  it("a job whose stored row cannot be read can still be cancelled, so it stops being reported as a job to resume", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    await seedContainUsers(fx, NOW, 3);
    const job = await createContainJob(fx, lockAll());
    await fx.database.db.updateTable("jobs").set({ spec: "not json" }).where("id", "=", job.id).execute();
    const listed = await fx.jobs.listReadable({ status: ["pending", "running", "failed"] });
    assert.ok(listed.unreadable.some((u) => u.id === job.id));
    let seen: unknown = "unset";
    await cancelJob(fx, job.id, { actor: "cli:bob", check: (j) => { seen = j.spec; } });
    assert.equal(seen, null, "the check is told the spec could not be read");
    const row = await fx.database.db.selectFrom("jobs").select(["status", "spec"]).where("id", "=", job.id).executeTakeFirstOrThrow();
    assert.deepEqual({ ...row }, { status: "cancelled", spec: "not json" }, "cancelled, and the damaged spec left as it was");
    const after = await fx.jobs.listReadable({ status: ["pending", "running", "failed"] });
    assert.ok(!after.unreadable.some((u) => u.id === job.id));
    await fx.database.close();
  });

  it("a check that refuses leaves the job running and writes no event", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    await seedContainUsers(fx, NOW, 3);
    const job = await createContainJob(fx, lockAll());
    const refusal = new BulwarkError("BULWARK_ERR_TEST_REFUSED", "forbidden", "no");
    await assert.rejects(cancelJob(fx, job.id, { actor: "api", check: () => { throw refusal; } }), refusal);
    assert.equal((await fx.jobs.get(job.id)).status, "pending");
    assert.ok(!(await auditTypes(fx, job.id)).some((e) => e.type === "contain.job.cancelled"));
    await fx.database.close();
  });
});

// A job posted through the API runs on its creator's authority: fired while it waits or runs, the creator's job stops
// at its next batch until an administrator takes it over (a person's resume) or cancels it (ASVS 8.3.2, 8.2.2).
forEachDialect("contain: a job stops when its API creator is fired", (dfx) => {
  const CREATOR_LOST = "BULWARK_ERR_CONTAIN_CREATOR_LOST";

  const deskJob = (desk: string, users: string[]): ContainRequest => ({
    levers: ["lock-accounts"], scope: { ids: users }, actor: desk, creatorUser: desk, creatorLacks: ["admin", "inventory.manage"], batchSize: 10,
  });

  const firings: Array<[string, (fx: ContainFixture, desk: string) => Promise<unknown>, RegExp]> = [
    ["its role removed", (fx, desk) => fx.roles.revoke(desk, "desk", "admin"), /no longer holds contain\.run, accounts\.write/],
    ["locked", (fx, desk) => fx.database.db.updateTable("users").set({ locked_at: NOW, locked_reason: "dismissed" }).where("id", "=", desk).execute(), /is locked/],
    ["disabled", (fx, desk) => fx.database.db.updateTable("users").set({ status: "disabled" }).where("id", "=", desk).execute(), /is disabled, not active/],
    ["deleted", async (fx, desk) => {
      await fx.database.db.deleteFrom("user_roles").where("user_id", "=", desk).execute();
      await fx.database.db.deleteFrom("users").where("id", "=", desk).execute();
    }, /no longer exists/],
  ];
  for (const [how, fire, why] of firings) {
    it(`attack: a help desk's job runs no batch after its creator is ${how.replace("its role removed", "demoted")}: it fails naming the creator and why, and the server's own resume does not lift that`, async () => {
      const { fx, desk, users } = await withHelpDesk(await dfx.fresh(), NOW);
      const job = await createContainJob(fx, deskJob(desk, users));
      await runJob(fx, job.id, { stopAfterBatches: 1 });
      assert.equal(await lockedCount(fx), 10);
      await fire(fx, desk);
      const scopeLocked = async (): Promise<number> => (await lockedCount(fx)) - (how === "locked" ? 1 : 0);
      const error = await runJob(fx, job.id).then(() => null, (e: unknown) => e);
      assert.ok(error instanceof BulwarkError && error.code === CREATOR_LOST, String(error));
      assert.match(error.message, new RegExp(`its creator, user ${desk}, ${why.source}`));
      assert.match(error.message, /bulwark contain resume/);
      assert.equal(await scopeLocked(), 10, "no batch after the firing");
      const failed = await fx.jobs.get(job.id);
      assert.equal(failed.status, "failed");
      assert.match(String(failed.error), why);
      // Server start: the system resumes it, and it stops again without a batch.
      assert.equal(await codeOf(resumeJob(fx, job.id, { actor: "system" })), CREATOR_LOST);
      assert.equal(await scopeLocked(), 10);
      assert.equal((await auditTypes(fx, job.id)).filter((e) => e.type === "contain.job.failed").length, 2);
      await fx.database.close();
    });
  }

  it("an operator's resume takes over a job whose creator was fired: the rest runs, and the spec and the resumed event say from whom and why; a creator who still stands keeps theirs", async () => {
    const { fx, desk, users } = await withHelpDesk(await dfx.fresh(), NOW);
    const job = await createContainJob(fx, deskJob(desk, users));
    await runJob(fx, job.id, { stopAfterBatches: 1 });
    // Resumed while the creator stands: nothing is taken over, the batches still check the creator.
    await resumeJob(fx, job.id, { actor: "cli:alice", stopAfterBatches: 1 });
    assert.equal((await fx.jobs.get<Record<string, unknown>>(job.id)).spec["creatorUser"], desk);
    assert.equal(await lockedCount(fx), 20);
    await fx.roles.revoke(desk, "desk", "admin");
    assert.equal(await codeOf(runJob(fx, job.id)), CREATOR_LOST);
    const done = await resumeJob(fx, job.id, { actor: "cli:bob" });
    assert.equal(done.status, "done");
    assert.equal(await lockedCount(fx), 30);
    assert.equal(done.spec["creatorUser"], undefined);
    assert.equal(done.spec["takenOverBy"], "cli:bob");
    assert.ok(jobView(done).notes.some((n) => n.startsWith("taken over by cli:bob")), jobView(done).notes.join(" | "));
    const resumed = (await auditTypes(fx, job.id)).filter((e) => e.type === "contain.job.resumed").map((e) => ({ actor: e.actor, data: JSON.parse(e.data) as Record<string, unknown> }));
    assert.equal(resumed.length, 2);
    assert.equal(resumed[0]?.data["tookOverFrom"], undefined);
    assert.deepEqual([resumed[1]?.actor, resumed[1]?.data["tookOverFrom"], resumed[1]?.data["creatorLost"]], ["cli:bob", desk, "no longer holds contain.run, accounts.write"]);
    await fx.database.close();
  });

  it("a job recorded before creatorUser existed (its API creator only in the job's actor) stops the same way once that creator is demoted, and an operator's resume takes it over; a job whose actor names no account (the CLI's, a test's) runs on (was: never re-checked; cancelled by hand)", async () => {
    const { fx, desk, users } = await withHelpDesk(await dfx.fresh(), NOW);
    // As the API wrote it before 17019cd: the caller's id as the job's actor, no creatorUser in the spec.
    const legacy = { ...deskJob(desk, users) };
    delete legacy.creatorUser;
    const job = await createContainJob(fx, legacy);
    assert.equal((await fx.jobs.get<Record<string, unknown>>(job.id)).spec["creatorUser"], undefined, "control: the spec names no creator");
    // Jobs whose actor is no account: the same scope, never stopped by the desk's firing.
    const byShell = await createContainJob(fx, { levers: ["expire-passwords"], scope: { ids: users }, actor: "cli:alice", batchSize: 10 });
    const byTest = await createContainJob(fx, { levers: ["expire-passwords"], scope: { ids: users }, actor: "test", batchSize: 10 });
    await runJob(fx, job.id, { stopAfterBatches: 1 });
    assert.equal(await lockedCount(fx), 10);
    await fx.roles.revoke(desk, "desk", "admin");
    const error = await runJob(fx, job.id).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof BulwarkError && error.code === CREATOR_LOST, String(error));
    assert.match(error.message, new RegExp(`its creator, user ${desk}, no longer holds contain\\.run, accounts\\.write`));
    assert.equal(await lockedCount(fx), 10, "no batch after the demotion");
    assert.equal(await codeOf(resumeJob(fx, job.id, { actor: "system" })), CREATOR_LOST, "the server's own resume does not lift it");
    assert.equal((await runJob(fx, byShell.id)).status, "done");
    assert.equal((await runJob(fx, byTest.id)).status, "done");
    // A person's resume takes it over, as a newer job's: its actor is not read again once the spec says who took it.
    const done = await resumeJob(fx, job.id, { actor: "cli:bob" });
    assert.equal(done.status, "done");
    assert.equal(done.spec["takenOverBy"], "cli:bob");
    assert.equal(await lockedCount(fx), 30);
    const resumed = (await auditTypes(fx, job.id)).filter((e) => e.type === "contain.job.resumed").map((e) => JSON.parse(e.data) as Record<string, unknown>);
    assert.deepEqual(resumed.map((d) => d["tookOverFrom"]), [undefined, desk]);
    await fx.database.close();
  });

  it("a job stopped that way can be cancelled, and an undo posted by a help desk fired since stops the same way", async () => {
    const { fx, desk, users } = await withHelpDesk(await dfx.fresh(), NOW);
    // An administrator's job from the shell; the help desk posts its undo.
    const job = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: users }, actor: "cli:alice", batchSize: 10 });
    await runJob(fx, job.id);
    const undo = await createUndoJob(fx, job.id, desk, { creatorLacks: ["admin", "inventory.manage"], creatorUser: desk });
    await runJob(fx, undo.id, { stopAfterBatches: 1 });
    const unlocked = 30 - (await lockedCount(fx));
    assert.ok(unlocked > 0 && unlocked < 30, `one step of the undo ran (${unlocked} unlocked)`);
    await fx.database.db.updateTable("users").set({ locked_at: NOW, locked_reason: "dismissed" }).where("id", "=", desk).execute();
    assert.equal(await codeOf(runJob(fx, undo.id)), CREATOR_LOST);
    assert.equal(await lockedCount(fx), 30 - unlocked + 1, "no step after the firing (the desk's own lock aside)");
    const outcome = await cancelJob(fx, undo.id, { actor: "cli:alice" });
    assert.equal(outcome.was, "failed");
    await fx.database.close();
  });

  it("an administrator's job that locks its own creator goes on (the caller's own account is in an {all: true} lock); a lock an administrator sets on the creator after that stops it, as does a demotion", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    const users = await seedContainUsers(fx, NOW, 30);
    const admin = users[0] as string;
    await fx.roles.grant(admin, "admin", "test");
    const request: ContainRequest = { levers: ["lock-accounts"], scope: { all: true }, actor: admin, creatorUser: admin, batchSize: 10 };
    const job = await createContainJob(fx, request);
    assert.equal((await runJob(fx, job.id)).status, "done", "its first batch locked the creator; the others ran");
    assert.equal(await lockedCount(fx), 30);

    // Another job of theirs, after the accounts were unlocked: its first batch locks its creator again.
    await fx.database.db.updateTable("users").set({ locked_at: null, locked_reason: null }).execute();
    const second = await createContainJob(fx, { ...request, levers: ["expire-passwords", "lock-accounts"] });
    await runJob(fx, second.id, { stopAfterBatches: 1 });
    assert.equal(await lockedCount(fx), 10);
    // Another administrator locks the creator again (lockUser's "relocked": a lock of their own, at their time).
    fx.clock.advance(60_000);
    await fx.database.db.updateTable("users").set({ locked_at: fx.clock.now(), locked_reason: "dismissed" }).where("id", "=", admin).execute();
    assert.equal(await codeOf(runJob(fx, second.id)), CREATOR_LOST);

    // An administrator demoted to a responder stops their jobs too: they no longer hold what the job acts with.
    await fx.database.db.updateTable("users").set({ locked_at: null, locked_reason: null }).where("id", "=", admin).execute();
    await fx.roles.create({ name: "responder-desk", permissions: ["contain.run", "accounts.write"] }, "test");
    await fx.roles.grant(admin, "responder-desk", "test");
    await fx.roles.grant(users[1] as string, "admin", "test");
    await fx.roles.revoke(admin, "admin", "test");
    const error = await runJob(fx, second.id).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof BulwarkError && error.code === CREATOR_LOST, String(error));
    assert.match(error.message, /no longer holds admin, inventory\.manage/);
    await fx.database.close();
  });

  const TOKEN_REVOKED = /no longer stands behind it: the API token it was posted with was revoked/;

  it("attack: a job posted with an API token stops once that token is revoked, by its row or by a later token stamp (the team rotating a leaked token), not when it merely expires; its view names the token, and an operator's resume takes it over (ASVS 7.4.1, 8.3.2)", async () => {
    const { fx, desk, users } = await withHelpDesk(await dfx.fresh(), NOW);
    const token = await apiTokenRow(fx, desk, "tok_deskincidenttool0000000000");
    fx.clock.advance(1000);
    const job = await createContainJob(fx, { ...deskJob(desk, users), creatorToken: token });
    assert.equal(jobView(await fx.jobs.get(job.id)).creatorToken, token, "the view names the token the job was posted with");
    await runJob(fx, job.id, { stopAfterBatches: 1 });
    // A short-lived token running out under a long job is normal: the job goes on.
    await fx.database.db.updateTable("api_tokens").set({ expires_at: fx.clock.now() - 1 }).where("id", "=", token).execute();
    await runJob(fx, job.id, { stopAfterBatches: 1 });
    assert.equal(await lockedCount(fx), 20, "control: an expired token does not stop the job");
    // The team rotates the credential (its row marked revoked; the colleague keeps their roles): the job stops.
    fx.clock.advance(60_000);
    await fx.database.db.updateTable("api_tokens").set({ revoked_at: fx.clock.now() }).where("id", "=", token).execute();
    const error = await runJob(fx, job.id).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof BulwarkError && error.code === CREATOR_LOST, String(error));
    assert.match(error.message, new RegExp(`its creator, user ${desk}, ${TOKEN_REVOKED.source} \\(${token}\\)`));
    assert.equal(await lockedCount(fx), 20, "no batch after the revocation");
    assert.equal(await codeOf(resumeJob(fx, job.id, { actor: "system" })), CREATOR_LOST, "the server's own resume does not lift it");
    // A person's resume takes it over; the batches after it name the operator, as the takeover does (ASVS 16.2.1).
    const done = await resumeJob(fx, job.id, { actor: "cli:bob" });
    assert.equal(done.status, "done");
    assert.equal(await lockedCount(fx), 30);
    const trail = (await auditTypes(fx, job.id)).map((e) => ({ ...e, data: JSON.parse(e.data) as Record<string, unknown> }));
    const takeover = trail.findIndex((e) => e.type === "contain.job.resumed" && e.data["tookOverFrom"] === desk);
    assert.ok(takeover > 0 && TOKEN_REVOKED.test(String(trail[takeover]?.data["creatorLost"])), JSON.stringify(trail[takeover]));
    assert.deepEqual(trail.slice(takeover + 1).map((e) => `${e.type} by ${e.actor}`), ["contain.job.batch by cli:bob", "contain.job.completed by cli:bob"]);
    assert.ok(trail.slice(0, takeover).filter((e) => e.type === "contain.job.batch").every((e) => e.actor === desk), "batches before the takeover stay the creator's");

    // A token stamp alone (a revoke-tokens job over the creator, its rows not marked yet) stops a job as well.
    fx.clock.advance(60_000);
    const second = await apiTokenRow(fx, desk, "tok_deskincidenttool1111111111");
    await fx.database.db.updateTable("users").set({ locked_at: null, locked_reason: null }).execute();
    fx.clock.advance(1000);
    const again = await createContainJob(fx, { ...deskJob(desk, users), creatorToken: second });
    await runJob(fx, again.id, { stopAfterBatches: 1 });
    fx.clock.advance(60_000);
    await createContainJob(fx, { levers: ["revoke-tokens"], scope: { ids: [desk] }, actor: "cli:bob" });
    assert.equal((await fx.database.db.selectFrom("api_tokens").select("revoked_at").where("id", "=", second).executeTakeFirstOrThrow()).revoked_at, null, "control: only the stamp is raised");
    assert.match(await runJob(fx, again.id).then((j) => j.status, (e: unknown) => String(e)), TOKEN_REVOKED);
    assert.equal(await lockedCount(fx), 10);
    await fx.database.close();
  });

  it("a job whose own revoke-tokens revokes the token it was posted with goes on (its creator among its scope, as its own lock does); another job posted with that token stops, and so does an undo posted with a token revoked since", async () => {
    const { fx, desk, users } = await withHelpDesk(await dfx.fresh(), NOW);
    const token = await apiTokenRow(fx, desk, "tok_deskincidenttool2222222222");
    fx.clock.advance(1000);
    // The creator is last in the scope: its token is refused by the job's own stamp from the start, and its row is
    // marked revoked by the last batch.
    const own = await createContainJob(fx, { levers: ["revoke-tokens", "lock-accounts"], scope: { ids: users }, actor: desk, creatorUser: desk, creatorLacks: ["admin", "inventory.manage"], creatorToken: token, batchSize: 10 });
    const mine = await createContainJob(fx, { levers: ["revoke-tokens"], scope: { ids: [...users, desk] }, actor: desk, creatorUser: desk, creatorLacks: ["admin", "inventory.manage"], creatorToken: token, batchSize: 10 });
    const finished = await runJob(fx, mine.id);
    assert.equal(finished.status, "done", "its own revocation does not stop it");
    const row = await fx.database.db.selectFrom("api_tokens").select("revoked_at").where("id", "=", token).executeTakeFirstOrThrow();
    assert.equal(Number(row.revoked_at), (finished.spec as { at: number }).at, "control: the job's own batch revoked the token");
    // The older job pulls revoke-tokens too, but that revocation is the later job's, not its own: it stops.
    assert.match(await runJob(fx, own.id).then((j) => j.status, (e: unknown) => String(e)), TOKEN_REVOKED);
    assert.equal(await lockedCount(fx), 0);

    // An undo posted with a token: revoking that token stops it too.
    const shell = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: users }, actor: "cli:alice", batchSize: 10 });
    await runJob(fx, shell.id);
    // A new token, issued after the job's revocation (one issued in its millisecond would be refused by its stamp).
    fx.clock.advance(60_000);
    const fresh = await apiTokenRow(fx, desk, "tok_deskincidenttool3333333333");
    const undo = await createUndoJob(fx, shell.id, desk, { creatorLacks: ["admin", "inventory.manage"], creatorUser: desk, creatorToken: fresh });
    await runJob(fx, undo.id, { stopAfterBatches: 1 });
    const unlocked = 30 - (await lockedCount(fx));
    fx.clock.advance(60_000);
    await fx.database.db.updateTable("api_tokens").set({ revoked_at: fx.clock.now() }).where("id", "=", fresh).execute();
    assert.match(await runJob(fx, undo.id).then((j) => j.status, (e: unknown) => String(e)), TOKEN_REVOKED);
    assert.equal(30 - (await lockedCount(fx)), unlocked, "no undo step after the revocation");
    await fx.database.close();
  });

  it("attack: an administrator's job that locked its own creator stops once a later lock-accounts job holds that creator (the shell's lock over an account locked already changes nothing); a later job pulling other levers does not stop it, and neither job's undo lifts the creator's lock (ASVS 8.3.2)", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    const users = await seedContainUsers(fx, NOW, 30);
    const admin = users[0] as string;
    await fx.roles.grant(admin, "admin", "test");
    const intruder = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: users }, actor: admin, creatorUser: admin, batchSize: 10 });
    await runJob(fx, intruder.id, { stopAfterBatches: 1 });
    assert.notEqual((await fx.database.db.selectFrom("users").select("locked_at").where("id", "=", admin).executeTakeFirstOrThrow()).locked_at, null, "control: its first batch locked its creator");
    // A later job over the creator that does not lock: the exception stands.
    fx.clock.advance(60_000);
    assert.equal((await runJob(fx, (await createContainJob(fx, { levers: ["expire-passwords"], scope: { ids: [admin] }, actor: "cli:bob" })).id)).status, "done");
    await runJob(fx, intruder.id, { stopAfterBatches: 1 });
    assert.equal(await lockedCount(fx), 20);
    // The team locks the creator from the shell: nothing changes on the row, the job stops all the same.
    fx.clock.advance(60_000);
    const team = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: [admin] }, actor: "cli:bob", options: { lockReason: "compromised" } });
    assert.deepEqual((await runJob(fx, team.id)).counts, { "lock-accounts.users": 0 }, "control: the account was locked already");
    const error = await runJob(fx, intruder.id).then(() => null, (e: unknown) => e);
    assert.ok(error instanceof BulwarkError && error.code === CREATOR_LOST, String(error));
    assert.match(error.message, new RegExp(`its creator, user ${admin}, is locked`));
    assert.equal(await lockedCount(fx), 20, "no batch after the team's lock");
    // Neither undo lifts the lock: the intruder's job's undo finds the creator held by the team's later job, and the
    // team's job recorded nothing for an account it found locked.
    await cancelJob(fx, intruder.id, { actor: "cli:bob" });
    const undone = await runJob(fx, (await createUndoJob(fx, intruder.id, "cli:bob")).id);
    assert.deepEqual(undone.counts, { "lock-accounts.restored": 19, "lock-accounts.skipped": 1 });
    assert.equal((await runJob(fx, (await createUndoJob(fx, team.id, "cli:bob")).id)).status, "done");
    assert.equal(await lockedCount(fx), 1);
    assert.notEqual((await fx.database.db.selectFrom("users").select("locked_at").where("id", "=", admin).executeTakeFirstOrThrow()).locked_at, null);
    await fx.database.close();
  });
});

describe("POST /api/v1/contain/jobs/:id/cancel", () => {
  const MINUTE = 60_000;
  const fx = sharedFixture();
  let adminToken: string;
  let responderToken: string;
  let auditorToken: string;
  let responderLacks: string[];
  let owner: Browser;
  let ownerCsrf: string;

  before(async () => {
    await fx.app.accounts.roles.create({ name: "contain-only", permissions: ["contain.run"] }, "test");
    const admin = await fx.user("admin@example.org", { roles: ["admin"] });
    const responder = await fx.user("responder@example.org", { roles: ["contain-only"] });
    await ensureSecondFactor(fx.app, responder.id); // the MFA policy holds a contain.run holder's token while it has no factor
    const auditor = await fx.user("auditor@example.org", { roles: ["auditor"] });
    for (let i = 0; i < 4; i++) await fx.user(`member${i}@example.org`);
    adminToken = (await fx.app.accounts.tokens.create(admin.id, { name: "a", scopes: ["admin"] })).token;
    responderToken = (await fx.app.accounts.tokens.create(responder.id, { name: "r", scopes: ["contain.run"] })).token;
    auditorToken = (await fx.app.accounts.tokens.create(auditor.id, { name: "u", scopes: ["audit.read"] })).token;
    responderLacks = ["admin", "accounts.write", "inventory.manage"];
    owner = fx.browser();
    assert.equal((await owner.login(admin.email, admin.password)).statusCode, 200);
    const begin = await owner.request("POST", "/auth/mfa/totp", { csrf: true });
    const secret = begin.json().secret as string;
    assert.equal((await owner.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    ownerCsrf = await owner.csrf();
  });

  /** A containment job left pending (created, not run), as if its worker were still queued. */
  async function pendingJob(creatorLacks: string[] = []): Promise<string> {
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { ids: ["member0@example.org"] }, actor: "creator", creatorLacks });
    return job.id;
  }

  const cancel = (id: string, token: string) => fx.server.inject({ method: "POST", url: `/api/v1/contain/jobs/${id}/cancel`, headers: { authorization: `Bearer ${token}` } });
  const statusOf = async (id: string): Promise<string> => (await fx.app.accounts.jobs.get(id)).status;

  it("attack: contain.run alone cannot cancel an administrator's containment job (ASVS 8.2.2); an administrator can", async () => {
    const id = await pendingJob();
    const refused = await cancel(id, responderToken);
    assert.equal(refused.statusCode, 403, refused.body);
    assert.equal(refused.json().error.code, "BULWARK_ERR_API_OUTRANKED");
    assert.equal(await statusOf(id), "pending", "the administrator's job is still going");
    const done = await cancel(id, adminToken);
    assert.equal(done.statusCode, 200, done.body);
    const body = done.json() as { job: { status: string; notes: string[] }; cancelled: { was: string; done: number; total: number } };
    assert.equal(body.job.status, "cancelled");
    assert.ok(body.job.notes.includes("cancelled after 0 of 1 users: what its batches applied stays; undo the job to reverse it"), body.job.notes.join(" | "));
    assert.deepEqual(body.cancelled, { id, kind: "contain", was: "pending", done: 0, total: 1 });
    assert.equal(await statusOf(id), "cancelled");
  });

  it("a contain.run caller may cancel a job made by a caller who lacked as much (another responder's)", async () => {
    const id = await pendingJob(responderLacks);
    const res = await cancel(id, responderToken);
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(await statusOf(id), "cancelled");
    const events = await fx.app.db.db.selectFrom("audit_events").select(["type"]).where("subject", "=", id).execute();
    assert.ok(events.some((e) => e.type === "contain.job.cancelled"));
    assert.ok(events.some((e) => e.type === "api.contain.job.cancelled"));
  });

  it("attack: a caller without contain.run cannot cancel, and ended or unknown jobs answer 409 and 404", async () => {
    const id = await pendingJob();
    const refused = await cancel(id, auditorToken);
    assert.equal(refused.statusCode, 403, refused.body);
    assert.equal(await statusOf(id), "pending");
    assert.equal((await cancel(id, adminToken)).statusCode, 200);
    const again = await cancel(id, adminToken);
    assert.equal(again.statusCode, 409, again.body);
    assert.equal(again.json().error.code, "BULWARK_ERR_CONTAIN_NOT_CANCELLABLE");
    assert.equal((await cancel("job_doesnotexist", adminToken)).statusCode, 404);
  });

  it("a job posted with an API token records the token and its view names it, so revoking that token stops the job; one posted from a browser session records none (a session ends by expiry as often as by revocation)", async () => {
    const post = (payload: object, headers: Record<string, string>) => fx.server.inject({ method: "POST", url: "/api/v1/contain/jobs", headers, payload });
    const body = { levers: ["expire-passwords"], scope: { ids: ["member2@example.org"] } };
    const byToken = await post(body, { authorization: `Bearer ${adminToken}` });
    assert.equal(byToken.statusCode, 202, byToken.body);
    const tokenId = parseAPIToken(adminToken)?.id;
    assert.ok(tokenId !== undefined);
    const viewed = byToken.json() as { job: { id: string; creatorToken?: string } };
    assert.equal(viewed.job.creatorToken, tokenId);
    assert.equal((await fx.app.accounts.jobs.get<Record<string, unknown>>(viewed.job.id)).spec["creatorToken"], tokenId);
    const bySession = await owner.request("POST", "/api/v1/contain/jobs", { csrf: ownerCsrf, body });
    assert.equal(bySession.statusCode, 202, bySession.body);
    const sessionJob = bySession.json() as { job: { id: string; creatorToken?: string } };
    assert.equal(sessionJob.job.creatorToken, undefined);
    assert.equal((await fx.app.accounts.jobs.get<Record<string, unknown>>(sessionJob.job.id)).spec["creatorToken"], undefined);
  });

  it("attack: a stale stolen cookie with a valid CSRF token cannot cancel a job (ASVS 7.5.3); the fresh owner can", async () => {
    const id = await pendingJob();
    const fresh = await owner.request("POST", `/api/v1/contain/jobs/${id}/cancel`, { csrf: ownerCsrf });
    assert.equal(fresh.statusCode, 200, fresh.body);
    const second = await pendingJob();
    fx.clock.advance(11 * MINUTE);
    const thief = fx.browser();
    thief.cookie = owner.cookie;
    const res = await thief.request("POST", `/api/v1/contain/jobs/${second}/cancel`, { csrf: await thief.csrf() });
    assert.equal(res.statusCode, 403, res.body);
    assert.equal(res.json().error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    assert.equal(await statusOf(second), "pending");
  });
});

describe("bulwark contain cancel", () => {
  let dir: string;
  const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_LOG_LEVEL: "silent" });
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-cancel-"));
    assert.equal((await bulwark(["init"], { env: env() })).code, 0);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("cancels a job that stopped part-way, refuses a second cancel with exit 2, and the undo of the cancelled job restores what it did", async () => {
    assert.equal((await bulwark(["dev", "seed", "--users", "12"], { env: env() })).code, 0);
    const { openApp } = await import("../src/app/index.ts");
    const app = await openApp({ env: env() });
    let jobId: string;
    try {
      const deps = containDeps(app);
      jobId = (await createContainJob(deps, { levers: ["lock-accounts"], scope: { all: true }, actor: "cli:test", batchSize: 5 })).id;
      await runJob(deps, jobId, { stopAfterBatches: 1 });
    } finally {
      await app.close();
    }
    const res = await bulwark(["contain", "cancel", jobId, "--json"], { env: env() });
    assert.equal(res.code, 0, res.stderr);
    assert.deepEqual(JSON.parse(res.stdout), { id: jobId, kind: "contain", was: "running", done: 5, total: 12, status: "cancelled" });
    const again = await bulwark(["contain", "cancel", jobId], { env: env() });
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /only a pending, running or failed job can be cancelled/);
    const undo = await bulwark(["contain", "undo", jobId, "--json"], { env: env() });
    assert.equal(undo.code, 0, undo.stderr);
    assert.deepEqual((JSON.parse(undo.stdout) as { counts: Record<string, Record<string, number>> }).counts["lock-accounts"], { restored: 5, skipped: 0 });
    assert.equal((await bulwark(["audit", "verify"], { env: env() })).code, 0);
  });
});
