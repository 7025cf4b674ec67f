// Second-round attacks on two features added together: cancelling a containment job (cancelJob, `contain cancel`,
// POST /api/v1/contain/jobs/:id/cancel) and the Idempotency-Key of POST /api/v1/contain/jobs. Aimed at how they meet
// the rest: a cancel landing inside a batch or inside a stage's preparation, a cancelled job (or cancelled undo) in
// the undo's "held by another job" rule, a cancel of a job whose stamps were raised at creation, a replay of a
// cancelled job, a token narrower than its user, and the key reused for another request in the race window the
// route handles itself. Temp dirs and loopback only.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, describe, it } from "node:test";
import {
  cancelJob, containDeps, createContainJob, createUndoJob, runJob, type ContainDeps, type ResetNotifier,
} from "../src/contain/index.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { requestKeyOf } from "../src/http/api/contain.ts";
import { openPostgres, openSQLite } from "../src/store/database.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { codeOf, openContainFixture, seedContainUsers, type ContainFixture } from "./helpers/contain-fixture.ts";
import { forEachDialect, sharedCluster } from "./helpers/dialects.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";

const NOW = Date.UTC(2026, 11, 3, 12);

async function isLocked(fx: ContainDeps, userId: string): Promise<boolean> {
  const row = await fx.database.db.selectFrom("users").select("locked_at").where("id", "=", userId).executeTakeFirstOrThrow();
  return row.locked_at !== null;
}

// ---------------------------------------------------------------------------------------------------------
// The undo's "held by another job" rule meets cancelled jobs and cancelled undos
// ---------------------------------------------------------------------------------------------------------

forEachDialect("cancelled jobs in the undo's held-by-another-job rule", (dfx) => {
  it("attack: a cancelled later job still holds the user its committed batch reached (found already locked, so nothing recorded): undoing the earlier job leaves that user locked (ASVS 8.3.2)", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    const [u0, u1, u2] = await seedContainUsers(fx, NOW, 3) as [string, string, string];
    const earlier = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: [u0] }, actor: "cli:alice" });
    assert.equal((await runJob(fx, earlier.id)).status, "done");
    fx.clock.advance(60_000);
    // The second incident's job reaches u0 in its first batch (already locked: nothing recorded), then is cancelled.
    const later = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: [u0, u1, u2] }, actor: "cli:bob", batchSize: 1 });
    await runJob(fx, later.id, { stopAfterBatches: 1 });
    assert.equal((await cancelJob(fx, later.id, { actor: "cli:bob" })).done, 1);
    fx.clock.advance(60_000);
    const undo = await createUndoJob(fx, earlier.id, "cli:alice");
    const ended = await runJob(fx, undo.id);
    assert.equal(ended.status, "done");
    assert.equal(await isLocked(fx, u0), true, "the cancelled job's containment of u0 is not lifted by the other job's undo");
    assert.deepEqual(ended.counts, { "lock-accounts.restored": 0, "lock-accounts.skipped": 1 });
    await fx.database.close();
  });

  it("attack: a cancelled undo does not count as the undo of its job: the job it was undoing still holds its users, and an earlier job's undo leaves them locked (ASVS 8.3.2)", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    const [u0, u1] = await seedContainUsers(fx, NOW, 2) as [string, string];
    const earlier = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: [u0] }, actor: "cli:alice" });
    assert.equal((await runJob(fx, earlier.id)).status, "done");
    fx.clock.advance(60_000);
    const later = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: [u0, u1] }, actor: "cli:bob" });
    assert.equal((await runJob(fx, later.id)).status, "done");
    // Someone starts undoing the later job, then thinks better of it.
    const abandoned = await createUndoJob(fx, later.id, "cli:bob");
    assert.equal((await cancelJob(fx, abandoned.id, { actor: "cli:bob" })).kind, "contain-undo");
    const undo = await createUndoJob(fx, earlier.id, "cli:alice");
    assert.equal((await runJob(fx, undo.id)).status, "done");
    assert.equal(await isLocked(fx, u0), true, "u0 stays locked: the later job, whose undo was cancelled, still holds it");
    assert.equal(await isLocked(fx, u1), true);
    await fx.database.close();
  });
});

// ---------------------------------------------------------------------------------------------------------
// A cancel landing inside a stage's preparation (rotate-keys creates the new key outside any transaction)
// ---------------------------------------------------------------------------------------------------------

describe("a cancel landing while rotate-keys prepares [sqlite]", () => {
  it("attack: a rotate-keys job cancelled while it creates its new data key still names that key in the audit log (ASVS 16.3.3, 16.2.1) (was: the new key became current and no event named it)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-cancel-prepare-"));
    const fx = await openContainFixture(openSQLite(join(dir, "db.sqlite"), { create: true }), { now: NOW });
    try {
      await seedContainUsers(fx, NOW, 2);
      const real = fx.keyring as Keyring;
      const before = real.currentDataKeyId;
      const job = await createContainJob(fx, { levers: ["rotate-keys"], scope: { all: true }, actor: "cli:alice" });
      let made: string | null = null;
      // An operator's cancel lands between the key's creation (prepare, outside any transaction) and the step that
      // records it (the `contain.job.prepared` event): the window the engine leaves open on every dialect.
      const keyring = new Proxy(real, {
        get(target, prop) {
          if (prop === "rotateDataKey") {
            return async () => {
              made = await target.rotateDataKey();
              await cancelJob(fx, job.id, { actor: "cli:bob" });
              return made;
            };
          }
          const value: unknown = Reflect.get(target, prop, target);
          return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
      const ended = await runJob({ ...fx, keyring }, job.id);
      assert.equal(ended.status, "cancelled");
      assert.ok(made !== null && made !== before, "the new data key was created");
      const stored = await fx.database.db.selectFrom("keyring_keys").select(["id", "status"]).where("id", "=", made as string).executeTakeFirst().catch(() => undefined);
      const events = await fx.database.db.selectFrom("audit_events").select(["type", "data"]).orderBy("seq").execute();
      const naming = events.filter((e) => e.data.includes(made as string));
      assert.ok(naming.length > 0,
        `a data key (${made}, stored: ${JSON.stringify(stored ?? "?")}) became current and no audit event names it; events: ${events.map((e) => e.type).join(", ")}`);
    } finally {
      await fx.database.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// PostgreSQL: a cancel committed while a worker is inside a batch
// ---------------------------------------------------------------------------------------------------------

const unavailable = postgresUnavailable();
describe("a cancel committed inside a batch [postgres]", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  after(async () => {
    await (await sharedCluster())?.stop();
  });

  it("attack: a cancel that commits after a worker claimed a batch and applied its levers, before the batch's commit, rolls the batch back: no lock, no change record, no reset link of it stays, and done counts only committed batches (ASVS 2.3.3)", async () => {
    const cluster = await sharedCluster();
    assert.ok(cluster, "PostgreSQL cluster started");
    const database = await openPostgres(await cluster.createSchema(`cancel_${process.pid}_1`));
    let armed = false;
    let cancelled: Promise<unknown> | null = null;
    let fx: ContainFixture | null = null;
    let jobId = "";
    const outbox: string[] = [];
    // The reset notifier is called inside the batch's transaction, after lock-accounts ran (levers run in their
    // registered order): the cancel, on another connection, commits there, before the worker locks the job row.
    const notifier: ResetNotifier = {
      async enqueueReset(_trx, user) {
        outbox.push(user.id);
        if (armed) {
          armed = false;
          cancelled = cancelJob(fx as ContainFixture, jobId, { actor: "cli:bob" });
          await cancelled;
        }
      },
    };
    fx = await openContainFixture(database, { now: NOW, notifier });
    try {
      const ids = await seedContainUsers(fx, NOW, 6);
      const job = await createContainJob(fx, { levers: ["lock-accounts", "invalidate-passwords"], scope: { all: true }, actor: "cli:alice", batchSize: 2 });
      jobId = job.id;
      await runJob(fx, job.id, { stopAfterBatches: 1 });
      armed = true;
      const ended = await runJob(fx, job.id);
      assert.ok(cancelled !== null, "the cancel ran inside the second batch");
      assert.equal(ended.status, "cancelled");
      assert.equal(ended.done, 2, "only the first batch counts");
      const locked = (await database.db.selectFrom("users").select("id").where("locked_at", "is not", null).orderBy("id").execute()).map((r) => r.id);
      assert.equal(locked.length, 2, `only the first batch's users are locked: ${locked.join(", ")}`);
      const invalidated = await database.db.selectFrom("users").select("id").where("password_invalidated_at", "is not", null).execute();
      assert.equal(invalidated.length, 2);
      const changes = await database.db.selectFrom("contain_changes").select("user_id").where("job_id", "=", job.id).execute();
      assert.deepEqual(changes.map((c) => c.user_id).sort(), [...locked].sort(), "change records exist only for what stayed applied");
      const batches = await database.db.selectFrom("audit_events").select("type").where("subject", "=", job.id).where("type", "=", "contain.job.batch").execute();
      assert.equal(batches.length, 1, "the rolled-back batch left no batch event");
      const cancelEvent = await database.db.selectFrom("audit_events").select("data").where("subject", "=", job.id).where("type", "=", "contain.job.cancelled").executeTakeFirstOrThrow();
      assert.equal((JSON.parse(cancelEvent.data) as { done: number }).done, 2, "the cancel event's count is what stayed applied");
      // The undo of the cancelled job restores exactly the committed batch.
      const undo = await createUndoJob(fx, job.id, "cli:bob");
      assert.equal(undo.total, 2);
      assert.equal((await runJob(fx, undo.id)).status, "done");
      assert.equal(await isLocked(fx, ids[0] as string) || await isLocked(fx, ids[1] as string), false);
    } finally {
      await database.close();
    }
  });

  it("attack: the Idempotency-Key sent with two different requests at once: the loser is answered 409 'key reused for a different request' and changed nothing — its scope's tokens still work (ASVS 2.3.3) (was: its revocation stamps had committed first, so the token of the user it named was dead)", async () => {
    const cluster = await sharedCluster();
    assert.ok(cluster, "PostgreSQL cluster started");
    const fx = await openAPIFixture({ databaseURL: await cluster.createDatabase(`cancel_idem_${process.pid}`) });
    try {
      const admin = await fx.user(["admin"]);
      const token = await fx.token(admin.id, ["admin"]);
      const works = async (t: string): Promise<number> => (await fx.call("GET", "/api/v1/users?limit=1", { token: t })).statusCode;
      // Two real requests on one node (PostgreSQL queries really interleave): each names a different user to cut off.
      for (let attempt = 0; attempt < 3; attempt++) {
        const victims = [await fx.user(["accounts.read"]), await fx.user(["accounts.read"])];
        const tokens = [await fx.token(victims[0]!.id, ["accounts.read"]), await fx.token(victims[1]!.id, ["accounts.read"])];
        const key = `two-requests-one-key-${attempt}`;
        const answers = await Promise.all(victims.map((v) =>
          fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["revoke-tokens"], scope: { ids: [v.id] } }, headers: { "idempotency-key": key } })));
        const statuses = answers.map((a) => a.statusCode).sort();
        assert.deepEqual(statuses, [202, 409], answers.map((a) => a.body).join(" | "));
        const loser = answers.findIndex((a) => a.statusCode === 409);
        assert.equal(answers[loser]!.json().error.code, "BULWARK_ERR_API_IDEMPOTENCY_KEY_REUSED");
        assert.equal(await works(tokens[1 - loser]!), 401, "the accepted request's victim is cut off");
        assert.equal(await works(tokens[loser]!), 200,
          `attempt ${attempt}: the request answered 409 ("a different request; send a new key") still ended the token of the user it named`);
      }
    } finally {
      await fx.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------
// Over HTTP: cancel, replay, stamps
// ---------------------------------------------------------------------------------------------------------

interface JobBody { id: string; status: string; done: number; total: number }

describe("cancel and Idempotency-Key over HTTP [sqlite]", () => {
  let fx: APIFixture;
  let admin: { id: string };
  let adminToken: string;

  after(async () => {
    await fx?.close();
  });

  it("attack: a retry with the Idempotency-Key of a job that was cancelled answers the cancelled job: it is not started again, and no second job is made (ASVS 2.3.3)", async () => {
    fx = await openAPIFixture();
    admin = await fx.user(["admin"]);
    adminToken = await fx.token(admin.id, ["admin"]);
    const member = await fx.user([]);
    const body = { levers: ["lock-accounts"], scope: { ids: [member.id] } };
    const key = "retry-after-cancel";
    // The first attempt made the job and died before starting it (what the replay of a pending job is for).
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, {
      levers: body.levers, scope: body.scope, actor: admin.id, incidentId: null, options: {},
      requestKey: requestKeyOf({ userId: admin.id }, key, body),
    });
    const cancel = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/cancel`, { token: adminToken });
    assert.equal(cancel.statusCode, 200, cancel.body);
    const retry = await fx.call("POST", "/api/v1/contain/jobs", { token: adminToken, body, headers: { "idempotency-key": key } });
    assert.equal(retry.statusCode, 202, retry.body);
    assert.equal(retry.headers["idempotent-replayed"], "true");
    assert.equal((retry.json() as { job: JobBody }).job.id, job.id);
    assert.equal((retry.json() as { job: JobBody }).job.status, "cancelled");
    await sleep(50);
    const view = await fx.call("GET", `/api/v1/contain/jobs/${job.id}`, { token: adminToken });
    assert.equal((view.json() as { job: JobBody & { runningHere: boolean } }).job.runningHere, false);
    assert.equal((view.json() as { job: JobBody }).job.status, "cancelled");
    assert.equal(await isLocked(deps, member.id), false, "the cancelled job never ran");
    const rows = await fx.app.db.db.selectFrom("jobs").select("id").where("kind", "=", "contain").execute();
    assert.deepEqual(rows.map((r) => r.id), [job.id]);
  });

  it("attack: an administrator's API token scoped to contain.run cannot cancel a job made by the CLI (a token narrower than its user, ASVS 8.2.2, 8.3.1); the same administrator's admin token can", async () => {
    const member = await fx.user([]);
    const narrow = await fx.token(admin.id, ["contain.run"]);
    const job = await createContainJob(containDeps(fx.app), { levers: ["lock-accounts"], scope: { ids: [member.id] }, actor: "cli:root" });
    const refused = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/cancel`, { token: narrow });
    assert.equal(refused.statusCode, 403, refused.body);
    assert.equal(refused.json().error.code, "BULWARK_ERR_API_OUTRANKED");
    assert.equal((await fx.app.accounts.jobs.get(job.id)).status, "pending");
    const done = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/cancel`, { token: adminToken });
    assert.equal(done.statusCode, 200, done.body);
  });

  it("attack: cancelling a revoke-sessions/revoke-tokens job before any batch ran does not bring the sessions and tokens its stamps ended back, and there is no undo to do it (ASVS 7.4.1)", async () => {
    const victim = await fx.user(["accounts.read"]);
    const victimToken = await fx.token(victim.id, ["accounts.read"]);
    const session = await fx.session(victim.id);
    const tokenWorks = async (): Promise<number> => (await fx.call("GET", "/api/v1/users?limit=1", { token: victimToken })).statusCode;
    const sessionWorks = async (): Promise<number> => (await fx.call("GET", "/auth/sessions", { session })).statusCode;
    assert.equal(await tokenWorks(), 200);
    assert.equal(await sessionWorks(), 200);
    const job = await createContainJob(containDeps(fx.app), { levers: ["revoke-sessions", "revoke-tokens"], scope: { ids: [victim.id] }, actor: admin.id });
    assert.equal(await tokenWorks(), 401, "the stamp raised at creation ends the token at once");
    const cancel = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/cancel`, { token: adminToken });
    assert.equal(cancel.statusCode, 200, cancel.body);
    assert.equal((cancel.json() as { cancelled: { was: string } }).cancelled.was, "pending");
    assert.equal(await tokenWorks(), 401, "still ended after the cancel");
    assert.equal(await sessionWorks(), 401, "still ended after the cancel");
    const undo = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token: adminToken });
    assert.equal(undo.statusCode, 400, undo.body);
    assert.equal(await tokenWorks(), 401);
  });
});
