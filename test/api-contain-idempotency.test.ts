// Idempotency-Key on POST /api/v1/contain/jobs (draft-ietf-httpapi-idempotency-key-header): an incident tool that
// retries after a lost answer — a timeout, a dropped connection — must not start a second job over the same scope,
// and two retries arriving at once (two nodes) must not either: the database holds one job per caller and key
// (migration 22). The key reused for a different request is refused, never answered with the wrong job. Was: every
// retry created another job (docs/api.md said to look for it by hand).
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { createContainJob } from "../src/contain/index.ts";
import { isRequestKeyCollision } from "../src/jobs/job-store.ts";
import { openContainFixture, seedContainUsers } from "./helpers/contain-fixture.ts";
import { forEachDialect, sharedCluster } from "./helpers/dialects.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";

interface JobBody { id: string; status: string; total: number }

async function jobsWithKey(fx: APIFixture, userId: string, key: string): Promise<string[]> {
  const rows = await fx.app.db.db.selectFrom("jobs").select("id").where("request_key", "=", `${userId}:${key}`).execute();
  return rows.map((r) => r.id);
}

async function containJobCount(fx: APIFixture): Promise<number> {
  const row = await fx.app.db.db.selectFrom("jobs").where("kind", "=", "contain").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
  return Number(row.n);
}

function idempotencySuite(name: string, open: () => Promise<APIFixture>): void {
  describe(name, () => {
    it("attack: a retried POST with the same Idempotency-Key starts no second job; the retry gets the first job, marked as replayed", async () => {
      const fx = await open();
      try {
        const responder = await fx.user(["contain.run", "accounts.read"]);
        const token = await fx.token(responder.id, ["contain.run", "accounts.read"]);
        const member = await fx.user([]);
        const body = { levers: ["lock-accounts"], scope: { ids: [member.id] } };
        const headers = { "idempotency-key": "3f1c9a2e-7b5d-4e8f-9a01-c2d3e4f5a6b7" };
        const first = await fx.call("POST", "/api/v1/contain/jobs", { token, body, headers });
        assert.equal(first.statusCode, 202, first.body);
        const job = (first.json() as { job: JobBody }).job;
        assert.equal(first.headers["idempotent-replayed"], undefined);
        assert.equal((await fx.finishedJob<JobBody>(token, job.id)).status, "done");
        const retry = await fx.call("POST", "/api/v1/contain/jobs", { token, body, headers });
        assert.equal(retry.statusCode, 202, retry.body);
        assert.equal(retry.headers["idempotent-replayed"], "true");
        assert.equal(retry.headers["location"], `/api/v1/contain/jobs/${job.id}`);
        const again = (retry.json() as { job: JobBody }).job;
        assert.equal(again.id, job.id);
        assert.equal(again.status, "done", "the job as it is now");
        assert.equal(await containJobCount(fx), 1);
        const events = await fx.app.db.db.selectFrom("audit_events").select("type").where("subject", "=", job.id).execute();
        assert.equal(events.filter((e) => e.type === "api.contain.job.created").length, 1);
        assert.equal(events.filter((e) => e.type === "api.contain.job.replayed").length, 1);
        // The same key, quoted as a Structured Fields string, is the same key.
        const quoted = await fx.call("POST", "/api/v1/contain/jobs", { token, body, headers: { "idempotency-key": `"${headers["idempotency-key"]}"` } });
        assert.equal((quoted.json() as { job: JobBody }).job.id, job.id);
        assert.equal(await containJobCount(fx), 1);
      } finally {
        await fx.close();
      }
    });

    it("attack: two requests with one key at once (a retry racing the first attempt) make one job, and both answer with it", async () => {
      const fx = await open();
      try {
        const responder = await fx.user(["contain.run"]);
        const token = await fx.token(responder.id, ["contain.run"]);
        const members = [await fx.user([]), await fx.user([])];
        const body = { levers: ["lock-accounts", "revoke-sessions"], scope: { ids: members.map((m) => m.id) } };
        const headers = { "idempotency-key": "race-1" };
        const answers = await Promise.all([1, 2, 3].map(() => fx.call("POST", "/api/v1/contain/jobs", { token, body, headers })));
        for (const a of answers) assert.equal(a.statusCode, 202, a.body);
        const ids = new Set(answers.map((a) => (a.json() as { job: JobBody }).job.id));
        assert.equal(ids.size, 1, `one job for every answer, got ${[...ids].join(", ")}`);
        assert.deepEqual(await jobsWithKey(fx, responder.id, "race-1"), [...ids]);
        assert.equal(await containJobCount(fx), 1);
        assert.equal(answers.filter((a) => a.headers["idempotent-replayed"] === "true").length, 2);
        assert.equal((await fx.finishedJob<JobBody>(token, [...ids][0] as string)).status, "done");
      } finally {
        await fx.close();
      }
    });

    it("attack: the key reused for another request (a wider scope) is refused with 409, never answered with the first job nor run", async () => {
      const fx = await open();
      try {
        const responder = await fx.user(["contain.run"]);
        const token = await fx.token(responder.id, ["contain.run"]);
        const member = await fx.user([]);
        const headers = { "idempotency-key": "k-1" };
        const first = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [member.id] } }, headers });
        assert.equal(first.statusCode, 202, first.body);
        const jobId = (first.json() as { job: JobBody }).job.id;
        for (const body of [
          { levers: ["lock-accounts"], scope: { all: true } },
          { levers: ["lock-accounts", "revoke-tokens"], scope: { ids: [member.id] } },
          { levers: ["lock-accounts"], scope: { ids: [member.id] }, options: { lockReason: "other" } },
        ]) {
          const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body, headers });
          assert.equal(res.statusCode, 409, res.body);
          assert.equal(res.json().error.code, "BULWARK_ERR_API_IDEMPOTENCY_KEY_REUSED");
          assert.match(res.json().error.message, new RegExp(jobId));
        }
        assert.equal(await containJobCount(fx), 1);
        // Defaults count as given: dryRun false spelled out is the same request.
        const same = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [member.id] }, dryRun: false }, headers });
        assert.equal(same.statusCode, 202, same.body);
        assert.equal((same.json() as { job: JobBody }).job.id, jobId);
      } finally {
        await fx.close();
      }
    });

    it("spellings of one request are one request: levers or ids in another order, a time as ISO text or epoch ms, options empty or left out", async () => {
      const fx = await open();
      try {
        const responder = await fx.user(["contain.run"]);
        const token = await fx.token(responder.id, ["contain.run"]);
        const members = [await fx.user([]), await fx.user([])];
        const headers = { "idempotency-key": "spelling-1" };
        const at = Date.UTC(2030, 0, 1);
        const first = await fx.call("POST", "/api/v1/contain/jobs", { token, headers, body: { levers: ["lock-accounts", "expire-passwords"], scope: { ids: members.map((m) => m.id), createdBefore: at } } });
        assert.equal(first.statusCode, 202, first.body);
        const jobId = (first.json() as { job: JobBody }).job.id;
        const other = await fx.call("POST", "/api/v1/contain/jobs", {
          token, headers,
          body: { levers: ["expire-passwords", "lock-accounts"], scope: { createdBefore: new Date(at).toISOString(), ids: members.map((m) => m.id).reverse() }, options: {} },
        });
        assert.equal(other.statusCode, 202, other.body);
        assert.equal(other.headers["idempotent-replayed"], "true");
        assert.equal((other.json() as { job: JobBody }).job.id, jobId);
        assert.equal(await containJobCount(fx), 1);
      } finally {
        await fx.close();
      }
    });

    it("attack: another caller's key does not reach a job it did not create: keys are per caller", async () => {
      const fx = await open();
      try {
        const alice = await fx.user(["contain.run"]);
        const bob = await fx.user(["contain.run"]);
        const member = await fx.user([]);
        const body = { levers: ["lock-accounts"], scope: { ids: [member.id] } };
        const headers = { "idempotency-key": "shared-name" };
        const a = await fx.call("POST", "/api/v1/contain/jobs", { token: await fx.token(alice.id, ["contain.run"]), body, headers });
        const b = await fx.call("POST", "/api/v1/contain/jobs", { token: await fx.token(bob.id, ["contain.run"]), body, headers });
        assert.equal(a.statusCode, 202, a.body);
        assert.equal(b.statusCode, 202, b.body);
        assert.equal(b.headers["idempotent-replayed"], undefined);
        assert.notEqual((a.json() as { job: JobBody }).job.id, (b.json() as { job: JobBody }).job.id);
        assert.equal(await containJobCount(fx), 2);
      } finally {
        await fx.close();
      }
    });
  });
}

idempotencySuite("Idempotency-Key on containment jobs [sqlite]", () => openAPIFixture());

forEachDialect("one job per request key in the database (migration 22)", (dfx) => {
  it("a second job with a taken request key fails the insert as a key collision, whatever its fingerprint; jobs without a key never collide", async () => {
    const now = Date.UTC(2026, 11, 3);
    const fx = await openContainFixture(await dfx.fresh(), { now });
    await seedContainUsers(fx, now, 2);
    const request = { levers: ["lock-accounts"], scope: { all: true }, actor: "usr_a" };
    await createContainJob(fx, { ...request, requestKey: { key: "usr_a:k", fingerprint: "f1" } });
    let caught: unknown = null;
    await createContainJob(fx, { ...request, requestKey: { key: "usr_a:k", fingerprint: "f2" } }).catch((error: unknown) => { caught = error; });
    assert.ok(caught !== null, "the second insert was refused");
    assert.equal(isRequestKeyCollision(caught), true, String(caught));
    assert.equal(isRequestKeyCollision(new Error("UNIQUE constraint failed: users.email_key")), false);
    await createContainJob(fx, request);
    await createContainJob(fx, request);
    assert.deepEqual(await fx.jobs.byRequestKey("usr_a:k").then((j) => j?.fingerprint), "f1");
    const rows = await fx.database.db.selectFrom("jobs").select("request_key").execute();
    assert.equal(rows.length, 3);
    await fx.database.close();
  });
});

describe("Idempotency-Key: what is not a key, and what a key does not change", () => {
  let fx: APIFixture;
  let token: string;
  let memberId: string;
  it("attack: a malformed key is refused by name before anything is created (too long, control characters, spaces, sent twice)", async () => {
    fx = await openAPIFixture();
    const responder = await fx.user(["contain.run"]);
    token = await fx.token(responder.id, ["contain.run"]);
    memberId = (await fx.user([])).id;
    const body = { levers: ["lock-accounts"], scope: { ids: [memberId] } };
    // "one, two" is what Node makes of the header sent twice.
    for (const key of ["x".repeat(129), "", "a b", "a\tb", "ключ", "a,b", "one, two"]) {
      const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body, headers: { "idempotency-key": key } });
      assert.equal(res.statusCode, 400, `${JSON.stringify(key)}: ${res.body}`);
      assert.equal(res.json().error.code, "BULWARK_ERR_API_IDEMPOTENCY_KEY", JSON.stringify(key));
      assert.match(res.json().error.message, /Idempotency-Key/);
    }
    assert.equal(await containJobCount(fx), 0);
  });

  it("a dry run with a key reserves nothing; without a key every POST is a new job, as before", async () => {
    const body = { levers: ["lock-accounts"], scope: { ids: [memberId] } };
    const dry = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { ...body, dryRun: true }, headers: { "idempotency-key": "dry-1" } });
    assert.equal(dry.statusCode, 200, dry.body);
    const real = await fx.call("POST", "/api/v1/contain/jobs", { token, body, headers: { "idempotency-key": "dry-1" } });
    assert.equal(real.statusCode, 202, real.body);
    assert.equal(real.headers["idempotent-replayed"], undefined);
    const one = await fx.call("POST", "/api/v1/contain/jobs", { token, body });
    const two = await fx.call("POST", "/api/v1/contain/jobs", { token, body });
    assert.notEqual((one.json() as { job: JobBody }).job.id, (two.json() as { job: JobBody }).job.id);
    assert.equal(await containJobCount(fx), 3);
  });

  after(async () => {
    await fx?.close();
  });
});

const unavailable = postgresUnavailable();
describe("Idempotency-Key on PostgreSQL", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  let n = 0;
  idempotencySuite("Idempotency-Key on containment jobs [postgres]", async () => {
    const cluster = await sharedCluster();
    if (!cluster) throw new Error("PostgreSQL cluster did not start");
    return openAPIFixture({ databaseURL: await cluster.createDatabase(`idem_${process.pid}_${++n}`) });
  });
  after(async () => {
    await (await sharedCluster())?.stop();
  });
});
