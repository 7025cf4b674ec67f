// Red team: containment and the audit log over HTTP (/api/v1/contain/jobs*, /api/v1/audit/events) and the job
// runner that executes containment jobs inside the server, resume at start included. Each test is an attack and
// asserts the secure behaviour; a test named "FINDING:" fails on today's code and names a defect. Real server, real
// credentials (API tokens from the token service, sessions from the session manager); temp dirs, loopback only.
// ASVS 5.0 ids in the test names.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { jobRunnerOf } from "../src/http/api/index.ts";
import { runServer, type RunningServer } from "../src/http/run-server.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

interface JobBody { id: string; kind: string; status: string; total: number; done: number; error: string | null; leftAlone?: { rows: unknown[] } }

function code(res: { json(): unknown }): string | undefined {
  return (res.json() as { error?: { code?: string } }).error?.code;
}

describe("red team: /api/v1/contain and /api/v1/audit/events", () => {
  let fx: APIFixture;
  let responder: { id: string };
  let token: string;

  before(async () => {
    fx = await openAPIFixture();
    // A responder as an incident tool holds it: contain.run and nothing else (no accounts.read).
    responder = await fx.user(["contain.run"]);
    token = await fx.token(responder.id, ["contain.run"]);
  });
  after(async () => {
    await fx.close();
  });

  const lockedAt = async (id: string): Promise<number | null> => (await fx.app.accounts.users.getById(id))?.lockedAt ?? null;
  const containJobs = async (): Promise<number> => (await fx.app.accounts.jobs.list({ kind: "contain" })).length;

  it("attack: dryRun: null is refused with a 400 naming the field, and no job starts (ASVS 2.2.1, 16.5.3; was: coerced to false, it started a real containment job)", async () => {
    // A client that serialises an unset option as null (Python None, a Go nil pointer, a JS template) asked for no
    // real run; Fastify's Ajv turns null into false, and the route's default then locks the accounts at once.
    // The API refuses null for every other field that does not declare it (nullable() in common.ts).
    const victim = await fx.user([]);
    const jobs = await containJobs();
    const res = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [victim.id] }, dryRun: null } });
    // Let a job the request may have started run its batch, so its effect is visible below.
    await sleep(50);
    assert.equal(res.statusCode, 400, `dryRun: null answered ${res.statusCode}: ${res.body.slice(0, 160)}`);
    assert.equal(await containJobs(), jobs, "no job is created");
    assert.equal(await lockedAt(victim.id), null, "the account is not locked");
  });

  it("attack: a contain.run caller without accounts.read learns user ids, never email addresses, from dry runs, job views and undo reports, even naming users by email (ASVS 8.2.2, 8.2.3)", async () => {
    const plain = await fx.user([], { email: `Red.Team.${process.pid}@Example.org` });
    const refused = await fx.user([], { email: `jörg${process.pid}@example.org` });
    // Named by email, in another case: the scope resolves them, the answers must not echo the stored addresses.
    const ids = [plain.email.toUpperCase(), refused.email, "nobody-here@example.org"];
    const dry = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts", "invalidate-passwords"], scope: { ids }, dryRun: true } });
    assert.equal(dry.statusCode, 200, dry.body);
    assert.equal((dry.json() as { users: number }).users, 2);
    const run = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids } } });
    assert.equal(run.statusCode, 202, run.body);
    const job = await fx.finishedJob<JobBody>(token, (run.json() as { job: JobBody }).job.id);
    assert.equal(job.status, "done");
    // A row changed since the job is left alone and reported by the undo: the report names it by id.
    await fx.app.db.db.updateTable("users").set({ locked_reason: "by hand" }).where("id", "=", plain.id).execute();
    const undo = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token });
    assert.equal(undo.statusCode, 202, undo.body);
    const undone = await fx.finishedJob<JobBody>(token, (undo.json() as { job: JobBody }).job.id);
    assert.equal(undone.leftAlone?.rows.length, 1);
    const bodies = [
      dry.body, run.body, undo.body,
      (await fx.call("GET", `/api/v1/contain/jobs/${job.id}`, { token })).body,
      (await fx.call("GET", `/api/v1/contain/jobs/${undone.id}`, { token })).body,
      (await fx.call("GET", "/api/v1/contain/jobs?limit=200", { token })).body,
    ].join("\n").toLowerCase();
    assert.ok(bodies.includes(plain.id) && bodies.includes(refused.id), "the users are named by id");
    for (const email of [plain.email, refused.email]) assert.equal(bodies.includes(email.toLowerCase()), false, `${email} appears in an answer`);
    assert.equal((await fx.call("GET", `/api/v1/users/${plain.id}`, { token })).statusCode, 403, "and the user route stays closed to it");
  });

  it("attack: a cross-site POST riding a fresh administrator cookie starts no job and raises no revocation stamp (ASVS 3.5.1, 3.5.3)", async () => {
    // revoke-sessions raises its stamps before the job row exists: a refusal that came after that would still log
    // the scope out. The CSRF wall must stand before the handler.
    const admin = await fx.user(["admin"]);
    const session = await fx.session(admin.id);
    const victim = await fx.user([]);
    const victimSession = await fx.session(victim.id);
    const stamps = async (): Promise<string> => JSON.stringify(await fx.app.db.db.selectFrom("revocation_stamps").selectAll().orderBy("scope").execute());
    const [jobs, before] = [await containJobs(), await stamps()];
    for (const [what, headers] of [
      ["a foreign Origin", { origin: "https://evil.example" }],
      ["Sec-Fetch-Site cross-site and no Origin", { origin: "", "sec-fetch-site": "cross-site" }],
      ["a made-up CSRF token", { "x-csrf-token": "x".repeat(43) }],
      ["no CSRF token", { "x-csrf-token": "" }],
    ] as const) {
      const res = await fx.call("POST", "/api/v1/contain/jobs", { session, headers, body: { levers: ["revoke-sessions", "lock-accounts"], scope: { ids: [victim.id] } } });
      assert.equal(res.statusCode, 403, `${what}: ${res.statusCode} ${res.body.slice(0, 160)}`);
      assert.equal(code(res), "BULWARK_ERR_CSRF", what);
    }
    assert.equal(await containJobs(), jobs, "no job");
    assert.equal(await stamps(), before, "no revocation stamp");
    assert.equal((await fx.call("GET", "/auth/session", { session: victimSession })).json().authenticated, true, "the victim's session lives on");
    assert.equal(await lockedAt(victim.id), null, "nor is the victim locked");
  });

  it("attack: an audit cursor is bound to its since filter too, and the page size is bounded (ASVS 2.2.1)", async () => {
    const auditor = await fx.user(["audit.read"]);
    const reader = await fx.token(auditor.id, ["audit.read"]);
    const first = await fx.call("GET", "/api/v1/audit/events?limit=1&since=0", { token: reader });
    assert.equal(first.statusCode, 200, first.body);
    const cursor = encodeURIComponent((first.json() as { nextCursor: string }).nextCursor);
    assert.equal((await fx.call("GET", `/api/v1/audit/events?limit=1&since=0&cursor=${cursor}`, { token: reader })).statusCode, 200);
    for (const [what, query] of [["no since", ""], ["another since", "&since=1"], ["a type besides", "&since=0&type=server.start"]] as const) {
      const res = await fx.call("GET", `/api/v1/audit/events?limit=1${query}&cursor=${cursor}`, { token: reader });
      assert.equal(res.statusCode, 400, `${what}: ${res.body.slice(0, 160)}`);
      assert.equal(code(res), "BULWARK_ERR_API_CURSOR", what);
    }
    assert.equal((await fx.call("GET", "/api/v1/audit/events?limit=201", { token: reader })).statusCode, 400);
  });

  it("attack: one unreadable job row does not hide the others: GET /api/v1/contain/jobs still lists every readable job (ASVS 16.5.3; was: a 500 for every caller, hiding every job during the incident)", async () => {
    // The server's resume reads rows one by one for this reason (listReadable), and the audit route serves an
    // altered event as rawData; the job listing throws on the first row it cannot read.
    const victim = await fx.user([]);
    const run = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [victim.id] } } });
    assert.equal(run.statusCode, 202, run.body);
    const good = (await fx.finishedJob<JobBody>(token, (run.json() as { job: JobBody }).job.id)).id;
    const bad = await fx.app.accounts.jobs.create({ kind: "contain", spec: {}, total: 0, actor: "red-team" });
    await fx.app.db.db.updateTable("jobs").set({ spec: "{damaged", status: "done" }).where("id", "=", bad.id).execute();
    try {
      const list = await fx.call("GET", "/api/v1/contain/jobs?limit=200", { token });
      assert.equal(list.statusCode, 200, `the listing answered ${list.statusCode}: ${list.body.slice(0, 160)}`);
      assert.ok((list.json() as { jobs: JobBody[] }).jobs.some((j) => j.id === good), "the readable jobs are still listed");
    } finally {
      await fx.app.db.db.deleteFrom("jobs").where("id", "=", bad.id).execute();
    }
  });

  it("attack: one unreadable job row, even of a finished unrelated job, does not stop an undo from releasing the accounts (ASVS 16.5.3; was: every undo failed, and nothing could be released over the API)", async () => {
    const victim = await fx.user([]);
    const run = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [victim.id] } } });
    assert.equal(run.statusCode, 202, run.body);
    const job = await fx.finishedJob<JobBody>(token, (run.json() as { job: JobBody }).job.id);
    assert.notEqual(await lockedAt(victim.id), null);
    const bad = await fx.app.accounts.jobs.create({ kind: "contain", spec: {}, total: 0, actor: "red-team" });
    await fx.app.db.db.updateTable("jobs").set({ spec: "{damaged", status: "done" }).where("id", "=", bad.id).execute();
    try {
      const undo = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token });
      assert.equal(undo.statusCode, 202, undo.body);
      const undone = await fx.finishedJob<JobBody>(token, (undo.json() as { job: JobBody }).job.id);
      assert.equal(undone.status, "done", `the undo ended ${undone.status}: ${undone.error}`);
      assert.equal(await lockedAt(victim.id), null, "the account is released");
    } finally {
      await fx.app.db.db.deleteFrom("jobs").where("id", "=", bad.id).execute();
    }
  });
});

describe("red team: containment jobs across a server restart", () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), "bulwark-redteam-contain-"));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  let n = 0;
  /** A fresh data directory's environment: loopback, any free port, a cheap password hash for speed. */
  const envOf = (dir: string): NodeJS.ProcessEnv => ({
    BULWARK_DATA_DIR: join(root, dir), BULWARK_LOG_LEVEL: "silent", HOST: "127.0.0.1", PORT: "0", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
  });

  /** A responder holding only contain.run, its token, and `count` users holding the role `interns` (no permission). */
  async function seed(app: OpenedApp, count: number): Promise<{ token: string; interns: string[] }> {
    await app.accounts.roles.create({ name: "responders", permissions: ["contain.run"] }, "test");
    await app.accounts.roles.create({ name: "interns", permissions: [] }, "test");
    const responder = await app.accounts.users.create({ email: `responder${++n}@example.org` });
    await app.accounts.roles.grant(responder.id, "responders", "test");
    await ensureSecondFactor(app, responder.id); // the MFA policy holds an administrative token whose owner has no factor
    const interns: string[] = [];
    for (let i = 0; i < count; i++) {
      const u = await app.accounts.users.create({ email: `intern${++n}@example.org` });
      await app.accounts.roles.grant(u.id, "interns", "test");
      interns.push(u.id);
    }
    return { token: (await app.accounts.tokens.create(responder.id, { name: "incident-tool", scopes: ["contain.run"] })).token, interns };
  }

  async function startJob(running: RunningServer, token: string, body: unknown): Promise<string> {
    const res = await running.server.inject({ method: "POST", url: "/api/v1/contain/jobs", headers: { authorization: `Bearer ${token}` }, payload: body as object });
    assert.equal(res.statusCode, 202, res.body);
    return (res.json() as { job: JobBody }).job.id;
  }

  async function untilDone(app: OpenedApp, id: string): Promise<void> {
    for (let i = 0; i < 400; i++) {
      const status = (await app.accounts.jobs.get(id)).status;
      if (status === "done" || status === "failed") return;
      await sleep(20);
    }
    assert.fail(`job ${id} did not finish`);
  }

  it("attack: a job started over HTTP and cut by the server's shutdown mid-run is resumed by the next start exactly once: every batch once, one resume, one completion", async () => {
    const env = envOf("restart");
    let app = await openApp({ env, mode: "init" });
    const { token, interns } = await seed(app, 60);
    let running = await runServer(app);
    const id = await startJob(running, token, { levers: ["lock-accounts"], scope: { roles: ["interns"] }, batchSize: 1 });
    await sleep(5);
    await running.close(); // stops the job after its current batch and closes the database
    app = await openApp({ env, mode: "open" });
    const stopped = await app.accounts.jobs.get(id);
    assert.ok(stopped.status !== "done" && stopped.done < 60, `the shutdown interrupted it (${stopped.status}, ${stopped.done} of 60)`);
    running = await runServer(app);
    try {
      await untilDone(app, id);
      assert.equal((await app.accounts.jobs.get(id)).status, "done");
      const events = await app.db.db.selectFrom("audit_events").select(["type", "actor", "data"]).where("subject", "=", id).execute();
      const batches = events.filter((e) => e.type === "contain.job.batch").map((e) => (JSON.parse(e.data) as { batch: number }).batch);
      assert.equal(batches.length, 60, "one batch event per user (batch size 1)");
      assert.equal(new Set(batches).size, 60, "no batch ran twice");
      const resumed = events.filter((e) => e.type === "contain.job.resumed");
      assert.equal(resumed.length, 1);
      assert.equal(resumed[0]?.actor, "system");
      assert.equal(events.filter((e) => e.type === "contain.job.completed").length, 1);
      const locked = await app.db.db.selectFrom("users").select("id").where("id", "in", interns).where("locked_at", "is not", null).execute();
      assert.equal(locked.length, 60);
    } finally {
      await running.close();
    }
  });

  it("attack: a contain.run-only responder's job, resumed at server start, leaves alone an account made an administrator while it waited (ASVS 8.2.2, 8.3.2; was: it locked it, the outranking rule being checked only at creation)", async () => {
    // docs/api.md: "contain.run alone cannot lock or cut off the administrators". The job is refused if its scope
    // holds one when it is created, but its batches run later — after a shutdown, at the next start, as `system` —
    // against whoever the scope's users have become. The undo route re-checks at its time; the job never does.
    const env = envOf("promoted");
    let app = await openApp({ env, mode: "init" });
    const { token, interns } = await seed(app, 3);
    let running = await runServer(app);
    // The POST arrives as the server is stopping: the job is recorded (202) and waits for the next start. (Stopping
    // the runner first makes that moment deterministic; a shutdown right after the 202 does the same, as above.)
    await jobRunnerOf(running.server)?.stop();
    const id = await startJob(running, token, { levers: ["lock-accounts"], scope: { roles: ["interns"] } });
    await running.close();
    app = await openApp({ env, mode: "open" });
    assert.equal((await app.accounts.jobs.get(id)).status, "pending");
    const promoted = interns[2] as string;
    await app.accounts.roles.grant(promoted, "admin", "test");
    running = await runServer(app);
    try {
      await untilDone(app, id);
      const lockedIds = (await app.db.db.selectFrom("users").select("id").where("id", "in", interns).where("locked_at", "is not", null).execute()).map((r) => r.id);
      assert.ok(lockedIds.includes(interns[0] as string) && lockedIds.includes(interns[1] as string), "the job still contains the others");
      assert.equal(lockedIds.includes(promoted), false, "contain.run alone locked an administrator");
    } finally {
      await running.close();
    }
  });
});
