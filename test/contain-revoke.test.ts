// Revocation levers (revoke-sessions, revoke-tokens, require-mfa-reenrolment), the "active within a window"
// scope, several workers sharing one job, and resuming unfinished jobs at server start — on SQLite and
// PostgreSQL (issue 5). Revocation is tested as an attack: a session stolen before containment must be refused
// on its very next request, before any row is deleted (ASVS 7.4.1, 7.4.5).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { it } from "node:test";
import { AuditLog } from "../src/audit/audit-log.ts";
import { createSessionManager } from "../src/accounts/sessions/session-manager.ts";
import { createTokenService } from "../src/accounts/tokens/index.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { currentEpoch } from "../src/accounts/sessions/revocation.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import {
  createContainJob, dryRunContain, jobView, resumeJob, resumeUnfinishedJobs, runJob, type ContainDeps,
} from "../src/contain/index.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 20, 12);

interface Fixture extends ContainDeps {
  clock: ManualClock;
}

async function setup(database: Database, clock = new ManualClock(NOW)): Promise<Fixture> {
  const outcome = await migrate(database, clock, MIGRATIONS);
  assert.equal(outcome.error, undefined);
  return {
    database, clock, random: systemRandom, keyring: null, notifier: null,
    audit: new AuditLog({ database, clock, random: systemRandom }),
    jobs: new JobStore({ database, clock, random: systemRandom }),
  };
}

/** n active users usr_0000…; u0 and u1 admins. */
async function users(fx: Fixture, n: number): Promise<string[]> {
  const db = fx.database.db;
  const ids = Array.from({ length: n }, (_, i) => `usr_${String(i).padStart(4, "0")}`);
  const rows = ids.map((id, i) => ({
    id, email: `u${i}@example.org`, email_key: `u${i}@example.org`, status: "active", password_hash: "$argon2id$x", password_scheme: "argon2id",
    password_must_change: 0, created_at: NOW - 1000 * HOUR, updated_at: NOW - 1000 * HOUR, last_login_at: NOW - 500 * HOUR, seeded: 1,
  }));
  for (let i = 0; i < rows.length; i += 200) await db.insertInto("users").values(rows.slice(i, i + 200)).execute();
  for (const id of ids.slice(0, 2)) await db.insertInto("user_roles").values({ user_id: id, role: "admin", granted_at: NOW, granted_by: "t" }).execute();
  return ids;
}

function sessions(fx: Fixture) {
  return createSessionManager({ database: fx.database, clock: fx.clock, random: systemRandom });
}

async function tokenRow(fx: Fixture, id: string, userId: string, createdAt: number): Promise<void> {
  await fx.database.db.insertInto("api_tokens").values({
    id, user_id: userId, name: "ci", secret_hash: "0".repeat(64), scopes: "[]", created_at: createdAt, expires_at: null, last_used_at: null, last_used_ip: null, revoked_at: null, issued_epoch: currentEpoch(),
  }).execute();
}

const src = (path: string): string => new URL(`../src/${path}`, import.meta.url).href;

/** Runs a job to the end in a separate process, as `bulwark contain resume` on another machine would. */
function worker(target: { sqlitePath?: string; databaseURL?: string }, jobId: string, name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const code = `
    import { openPostgres, openSQLite } from ${JSON.stringify(src("store/database.ts"))};
    import { AuditLog } from ${JSON.stringify(src("audit/audit-log.ts"))};
    import { JobStore } from ${JSON.stringify(src("jobs/job-store.ts"))};
    import { systemClock } from ${JSON.stringify(src("lib/clock.ts"))};
    import { systemRandom } from ${JSON.stringify(src("lib/random.ts"))};
    import { runJob } from ${JSON.stringify(src("contain/index.ts"))};
    const target = ${JSON.stringify(target)};
    const database = target.sqlitePath ? openSQLite(target.sqlitePath, { create: false }) : await openPostgres(target.databaseURL);
    const deps = { database, clock: systemClock, random: systemRandom, keyring: null, notifier: null,
      audit: new AuditLog({ database, clock: systemClock, random: systemRandom }), jobs: new JobStore({ database, clock: systemClock, random: systemRandom }) };
    const job = await runJob(deps, ${JSON.stringify(jobId)}, { worker: ${JSON.stringify(name)} });
    await database.close();
    process.stdout.write(job.status + "\\n");`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "--input-type=module", "-e", code], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (exit) => resolve({ code: exit, stdout, stderr }));
  });
}

forEachDialect("contain revocation levers", (dfx) => {
  it("attack: a session stolen before an --all revoke-sessions job is refused before a single row is deleted (ASVS 7.4.1, 7.4.5)", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await users(fx, 12);
    const sm = sessions(fx);
    const stolen = await Promise.all(ids.map((id) => sm.createSession(id)));
    fx.clock.advance(1000);
    const job = await createContainJob(fx, { levers: ["revoke-sessions"], scope: { all: true }, actor: "t", batchSize: 5 });
    // The job exists but no batch has run: every row is still there, and every stolen token is dead.
    assert.equal((await fx.database.db.selectFrom("sessions").select("id").execute()).length, 12);
    for (const s of stolen) assert.deepEqual(await sm.validate(s.token), { valid: false, reason: "revoked" });
    // A login after the job started is a new session and keeps working (and is not deleted by the batches).
    fx.clock.advance(1000);
    const fresh = await sm.createSession(ids[3] as string);
    const view = jobView(await runJob(fx, job.id));
    assert.equal(view.status, "done");
    assert.deepEqual(view.counts["revoke-sessions"], { users: 12, sessions: 12 });
    assert.equal((await sm.validate(fresh.token)).valid, true);
    const left = await fx.database.db.selectFrom("sessions").select("id").execute();
    assert.deepEqual(left.map((r) => r.id), [fresh.session.id]);
    const stamp = await fx.database.db.selectFrom("revocation_stamps").selectAll().execute();
    assert.deepEqual(stamp.map((s) => [s.scope, Number(s.not_before)]), [["global", NOW + 1001]], "everything created up to the job's millisecond");
    const types = (await fx.audit.tail(100)).map((e) => e.type);
    assert.ok(types.indexOf("contain.revocation.raised") < types.indexOf("contain.job.created"), "the stamp is audited before the job");
    assert.equal((await fx.audit.verify()).ok, true);
  });

  it("an --all revoke-sessions ends exactly the sessions a batch-by-batch run over every user ends (in one step)", async () => {
    // Two identical databases: --all (one whole-table step) and an id list of every user (batches).
    const runs = [];
    let dialect = "";
    for (const scope of [{ all: true }, { ids: Array.from({ length: 30 }, (_, i) => `usr_${String(i).padStart(4, "0")}`) }]) {
      const fx = await setup(await dfx.fresh());
      dialect = fx.database.dialect;
      const ids = await users(fx, 30);
      const sm = sessions(fx);
      for (const [i, id] of ids.entries()) for (let k = 0; k < i % 3; k++) await sm.createSession(id);
      const anonymous = await sm.createSession(null); // pre-login: no user, in no scope
      fx.clock.advance(1000);
      const job = await createContainJob(fx, { levers: ["revoke-sessions", "expire-passwords"], scope, actor: "t", batchSize: 7 });
      fx.clock.advance(1000);
      const later = await sm.createSession(ids[5] as string); // a login after the job started
      const done = await runJob(fx, job.id);
      const left = (await fx.database.db.selectFrom("sessions").select("id").orderBy("id").execute()).map((r) => r.id);
      assert.deepEqual(left, [anonymous.session.id, later.session.id].sort());
      assert.equal((await sm.validate(later.token)).valid, true);
      const stages = (await fx.audit.tail(200)).filter((e) => e.type === "contain.job.batch").map((e) => (e.data as { stage: string }).stage);
      runs.push({ status: done.status, done: done.done, total: done.total, counts: jobView(done).counts, stages: [...new Set(stages)] });
      assert.equal((await fx.audit.verify()).ok, true);
    }
    const [all, listed] = runs as [(typeof runs)[0], (typeof runs)[0]];
    assert.deepEqual({ ...all, stages: undefined }, { ...listed, stages: undefined });
    assert.deepEqual(all.counts["revoke-sessions"], { users: 20, sessions: 30 });
    assert.equal(all.done, 30);
    assert.deepEqual(all.stages, ["revoke-sessions (all users at once)", "users"], `on ${dialect}: the whole-table step, then the batches`);
    assert.deepEqual(listed.stages, ["users"]);
  });

  it("an --all revoke-tokens revokes exactly the tokens a batch-by-batch run over every user revokes (in one step)", async () => {
    // Two identical databases: --all (one UPDATE of the whole table) and an id list of every user (batches).
    const runs = [];
    for (const scope of [{ all: true }, { ids: Array.from({ length: 20 }, (_, i) => `usr_${String(i).padStart(4, "0")}`) }]) {
      const fx = await setup(await dfx.fresh());
      const ids = await users(fx, 20);
      // i % 3 tokens for user i; user 4's first token already revoked (left as it was).
      for (const [i, id] of ids.entries()) for (let k = 0; k < i % 3; k++) await tokenRow(fx, `tok_${i}_${k}`, id, NOW - HOUR);
      await fx.database.db.updateTable("api_tokens").set({ revoked_at: NOW - 2 }).where("id", "=", "tok_4_0").execute();
      fx.clock.advance(1000);
      const job = await createContainJob(fx, { levers: ["revoke-tokens", "expire-passwords"], scope, actor: "t", batchSize: 6 });
      fx.clock.advance(1000);
      await tokenRow(fx, "tok_later", ids[2] as string, fx.clock.now()); // issued after the job started: it stays
      const done = await runJob(fx, job.id);
      const rows = await fx.database.db.selectFrom("api_tokens").select(["id", "revoked_at"]).orderBy("id").execute();
      const stages = (await fx.audit.tail(200)).filter((e) => e.type === "contain.job.batch").map((e) => (e.data as { stage: string }).stage);
      runs.push({ status: done.status, done: done.done, counts: jobView(done).counts, rows: rows.map((r) => [r.id, r.revoked_at === null ? null : Number(r.revoked_at)]), stages: [...new Set(stages)] });
    }
    const [all, listed] = runs as [(typeof runs)[0], (typeof runs)[0]];
    assert.deepEqual({ ...all, stages: undefined }, { ...listed, stages: undefined });
    assert.deepEqual(all.counts["revoke-tokens"], { users: 12, tokens: 18 });
    assert.deepEqual(all.rows.find(([id]) => id === "tok_4_0"), ["tok_4_0", NOW - 2], "a token revoked before keeps its time");
    assert.deepEqual(all.rows.find(([id]) => id === "tok_later"), ["tok_later", null], "a token issued after the job keeps working");
    assert.deepEqual(all.stages, ["revoke-tokens (all users at once)", "users"], "the whole-table step, then the batches");
    assert.deepEqual(listed.stages, ["users"]);
  });

  it("an --all job of revoke-sessions alone reports every user handled after its one step", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await users(fx, 9);
    const sm = sessions(fx);
    for (const id of ids) await sm.createSession(id);
    fx.clock.advance(1000);
    const job = await createContainJob(fx, { levers: ["revoke-sessions"], scope: { all: true }, actor: "t", batchSize: 4 });
    const done = await runJob(fx, job.id);
    assert.deepEqual({ status: done.status, done: done.done, total: done.total }, { status: "done", done: 9, total: 9 });
    assert.deepEqual(jobView(done).counts["revoke-sessions"], { users: 9, sessions: 9 });
    assert.equal((await fx.database.db.selectFrom("sessions").select("id").execute()).length, 0);
  });

  it("a scoped revoke-sessions stamps only the users in scope; the others stay logged in", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await users(fx, 6);
    const sm = sessions(fx);
    const all = await Promise.all(ids.map((id) => sm.createSession(id)));
    fx.clock.advance(10);
    const dry = await dryRunContain(fx, { levers: ["revoke-sessions"], scope: { roles: ["admin"] }, actor: "t" });
    assert.deepEqual(dry.levers["revoke-sessions"]?.counts, { users: 2, sessions: 2, stamps: 2 });
    const job = await createContainJob(fx, { levers: ["revoke-sessions"], scope: { roles: ["admin"] }, actor: "t" });
    for (const [i, s] of all.entries()) assert.equal((await sm.validate(s.token)).valid, i >= 2, `user ${i}`);
    await runJob(fx, job.id);
    const stamps = await fx.database.db.selectFrom("revocation_stamps").select("scope").orderBy("scope").execute();
    assert.deepEqual(stamps.map((s) => s.scope), ["user:usr_0000", "user:usr_0001"]);
    assert.equal((await fx.database.db.selectFrom("sessions").select("id").execute()).length, 4);
  });

  it("revoke-tokens raises the token stamps first, then marks exactly the older unrevoked tokens revoked, once", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await users(fx, 5);
    for (const [i, id] of ids.entries()) await tokenRow(fx, `tok_${i}`, id, NOW - HOUR);
    await fx.database.db.updateTable("api_tokens").set({ revoked_at: NOW - 10 }).where("id", "=", "tok_4").execute();
    const dry = await dryRunContain(fx, { levers: ["revoke-tokens"], scope: { ids: ["usr_0000", "usr_0001", "usr_0004"] }, actor: "t" });
    assert.deepEqual(dry.levers["revoke-tokens"]?.counts, { users: 2, tokens: 2, stamps: 3 });
    const job = await createContainJob(fx, { levers: ["revoke-tokens"], scope: { ids: ["usr_0000", "usr_0001", "usr_0004"] }, actor: "t" });
    const stamps = await fx.database.db.selectFrom("revocation_stamps").selectAll().orderBy("scope").execute();
    assert.deepEqual(stamps.map((s) => [s.scope, Number(s.not_before)]), ["usr_0000", "usr_0001", "usr_0004"].map((u) => [`tokens:user:${u}`, NOW + 1]));
    const view = jobView(await runJob(fx, job.id));
    assert.deepEqual(view.counts["revoke-tokens"], { users: 2, tokens: 2 });
    const rows = await fx.database.db.selectFrom("api_tokens").select(["id", "revoked_at"]).orderBy("id").execute();
    assert.deepEqual(rows.map((r) => [r.id, r.revoked_at === null ? null : Number(r.revoked_at)]), [["tok_0", NOW], ["tok_1", NOW], ["tok_2", null], ["tok_3", null], ["tok_4", NOW - 10]]);
    // A second job over everyone: the global token stamp, and already revoked rows are not touched again.
    fx.clock.advance(HOUR);
    const second = await createContainJob(fx, { levers: ["revoke-tokens"], scope: { all: true }, actor: "t" });
    await tokenRow(fx, "tok_new", "usr_0002", NOW + HOUR + 1); // issued after the job's stamps were raised
    const again = jobView(await runJob(fx, second.id));
    assert.deepEqual(again.counts["revoke-tokens"], { users: 2, tokens: 2 }, "tok_2 and tok_3; tok_new is newer than the job");
    const global = await fx.database.db.selectFrom("revocation_stamps").select("not_before").where("scope", "=", "tokens:global").executeTakeFirstOrThrow();
    assert.equal(Number(global.not_before), NOW + HOUR + 1);
  });

  it("attack: an API token stolen before revoke-tokens is refused by the token library before any row is marked (ASVS 7.4.1)", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await users(fx, 3);
    const tokens = createTokenService({ database: fx.database, clock: fx.clock, random: systemRandom });
    const stolen = await tokens.create(ids[0] as string, { name: "ci", scopes: ["accounts.read"] });
    const bystander = await tokens.create(ids[2] as string, { name: "ci", scopes: ["accounts.read"] });
    assert.equal((await tokens.verify(stolen.token)).valid, true);
    fx.clock.advance(1000);
    const job = await createContainJob(fx, { levers: ["revoke-tokens"], scope: { ids: [ids[0] as string, ids[1] as string] }, actor: "t" });
    assert.equal((await fx.database.db.selectFrom("api_tokens").select("id").where("revoked_at", "is not", null).execute()).length, 0, "no row marked yet");
    assert.deepEqual(await tokens.verify(stolen.token), { valid: false, reason: "revoked" });
    assert.equal((await tokens.verify(bystander.token)).valid, true, "out of scope");
    await runJob(fx, job.id);
    assert.deepEqual(await tokens.verify(stolen.token), { valid: false, reason: "revoked" });
    assert.equal((await tokens.verify(bystander.token)).valid, true);
  });

  it("require-mfa-reenrolment deletes every factor of the users holding one and ends only their sessions (ASVS 7.4.3)", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await users(fx, 4);
    const db = fx.database.db;
    await db.insertInto("mfa_totp").values({ user_id: "usr_0000", secret_ct: "ct", created_at: NOW, confirmed_at: NOW, last_step: null }).execute();
    await db.insertInto("mfa_recovery_codes").values([0, 1, 2].map((i) => ({ id: `rc_${i}`, user_id: "usr_0000", code_hash: "h", created_at: NOW, used_at: null }))).execute();
    await db.insertInto("webauthn_credentials").values({ id: "cred1", user_id: "usr_0001", public_key: "pk", counter: 3, transports: "[]", created_at: NOW, last_used_at: null, name: "key" }).execute();
    const sm = sessions(fx);
    const live = await Promise.all(ids.map((id) => sm.createSession(id, { aal: 2 })));
    fx.clock.advance(5);
    const dry = await dryRunContain(fx, { levers: ["require-mfa-reenrolment"], scope: { all: true }, actor: "t" });
    assert.deepEqual(dry.levers["require-mfa-reenrolment"]?.counts, { users: 2, totp: 1, recoveryCodes: 3, webauthn: 1, sessions: 2, resetLinksSpent: 0, emailChangeLinksSpent: 0, noticesQueued: 0, noticesRefused: 0 }, "the dry run counts what the run then reports");
    const view = jobView(await runJob(fx, (await createContainJob(fx, { levers: ["require-mfa-reenrolment"], scope: { all: true }, actor: "t" })).id));
    assert.deepEqual(view.counts["require-mfa-reenrolment"], { users: 2, totp: 1, recoveryCodes: 3, webauthn: 1, sessions: 2, resetLinksSpent: 0, emailChangeLinksSpent: 0, noticesQueued: 0, noticesRefused: 0 });
    for (const t of ["mfa_totp", "mfa_recovery_codes", "webauthn_credentials"] as const) assert.equal((await db.selectFrom(t).select("user_id").execute()).length, 0, t);
    assert.deepEqual(await Promise.all(live.map(async (s) => (await sm.validate(s.token)).valid)), [false, false, true, true]);
  });

  it("attack: require-mfa-reenrolment spends the open reset and email-change links of the users whose factors it deletes, counted alike by the dry run, the run and its batch's audit event, and once across a crashed batch and its resume (ASVS 6.4.3, 7.4.3)", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await users(fx, 3);
    const [holder, other, bystander] = ids as [string, string, string];
    const db = fx.database.db;
    for (const id of [holder, other]) await db.insertInto("mfa_totp").values({ user_id: id, secret_ct: "ct", created_at: NOW, confirmed_at: NOW, last_step: null }).execute();
    // Links a mailbox thief asked for while the factors stood (harmless then: the reset asked for the factor), one
    // already used, and a link of an account without a factor, which the lever has no reason to touch.
    const reset = (id: string, userId: string, usedAt: number | null) =>
      db.insertInto("password_reset_tokens").values({ id, user_id: userId, secret_hash: "h", created_at: NOW - 1000, expires_at: NOW + 30 * 60_000, used_at: usedAt }).execute();
    await reset("prt_kept1", holder, null);
    await reset("prt_kept2", holder, null);
    await reset("prt_used", holder, NOW - 500);
    await reset("prt_other", other, null);
    await reset("prt_bystander", bystander, null);
    await db.insertInto("email_change_tokens").values({ id: "ect_1", user_id: holder, new_email: "thief@example.net", secret_hash: "h", created_at: NOW - 1000, expires_at: NOW + HOUR, used_at: null, issued_epoch: currentEpoch() }).execute();
    const dry = await dryRunContain(fx, { levers: ["require-mfa-reenrolment"], scope: { all: true }, actor: "t" });
    const expected = { users: 2, totp: 2, recoveryCodes: 0, webauthn: 0, sessions: 0, resetLinksSpent: 3, emailChangeLinksSpent: 1, noticesQueued: 0, noticesRefused: 0 };
    assert.deepEqual(dry.levers["require-mfa-reenrolment"]?.counts, expected, "the dry run counts what the run then reports");
    // The second user's batch fails once (its notice cannot be queued) and rolls back; the resume runs it again.
    let failOn: string | null = other;
    const notifier = {
      enqueueReset: async () => undefined,
      enqueueNotice: async (_trx: unknown, user: { id: string }) => {
        if (user.id === failOn) {
          failOn = null;
          throw new Error("relay dropped the connection");
        }
      },
    };
    const deps = { ...fx, notifier };
    const job = await createContainJob(deps, { levers: ["require-mfa-reenrolment"], scope: { ids: [holder, other, bystander] }, actor: "t", batchSize: 1 });
    await assert.rejects(runJob(deps, job.id), /relay dropped the connection/);
    const view = jobView(await resumeJob(deps, job.id, { actor: "t" }));
    assert.deepEqual(view.counts["require-mfa-reenrolment"], { ...expected, noticesQueued: 2 }, "each link counted once, the crashed batch's spend rolled back with it");
    const open = await db.selectFrom("password_reset_tokens").select("id").where("used_at", "is", null).orderBy("id").execute();
    assert.deepEqual(open.map((r) => r.id), ["prt_bystander"], "only the link of the account without a factor stays open");
    assert.equal((await db.selectFrom("password_reset_tokens").select("used_at").where("id", "=", "prt_used").executeTakeFirstOrThrow()).used_at, NOW - 500, "a used link keeps its time");
    assert.notEqual((await db.selectFrom("email_change_tokens").select("used_at").where("id", "=", "ect_1").executeTakeFirstOrThrow()).used_at, null);
    // The batch's audit event names the links it spent, so the record says what ended for whom.
    const batches = await db.selectFrom("audit_events").select("data").where("type", "=", "contain.job.batch").where("subject", "=", job.id).orderBy("seq").execute();
    const spent = batches.map((b) => (JSON.parse(b.data) as { counts: Record<string, number> }).counts);
    assert.deepEqual(spent.map((c) => [c["require-mfa-reenrolment.resetLinksSpent"], c["require-mfa-reenrolment.emailChangeLinksSpent"]]), [[2, 1], [1, 0], [0, 0]]);
  });

  it("attack: a session or token issued in the job's own millisecond, just before it, is refused and removed like any older one", async () => {
    for (const scope of [{ ids: ["usr_0000"] }, { all: true }]) {
      const fx = await setup(await dfx.fresh());
      const ids = await users(fx, 2);
      const sm = sessions(fx);
      const tokens = createTokenService({ database: fx.database, clock: fx.clock, random: systemRandom });
      // The clock does not move: the stolen session and token share the job's millisecond.
      const stolen = await sm.createSession(ids[0] as string);
      const token = await tokens.create(ids[0] as string, { name: "ci", scopes: ["accounts.read"] });
      const job = await createContainJob(fx, { levers: ["revoke-sessions", "revoke-tokens"], scope, actor: "t" });
      assert.equal(job.spec.at, stolen.session.createdAt, "same millisecond");
      assert.deepEqual(await sm.validate(stolen.token), { valid: false, reason: "revoked" }, JSON.stringify(scope));
      assert.deepEqual(await tokens.verify(token.token), { valid: false, reason: "revoked" }, JSON.stringify(scope));
      const view = jobView(await runJob(fx, job.id));
      assert.deepEqual(view.counts["revoke-sessions"], { users: 1, sessions: 1 }, JSON.stringify(scope));
      assert.deepEqual(view.counts["revoke-tokens"], { users: 1, tokens: 1 }, JSON.stringify(scope));
      assert.equal((await fx.database.db.selectFrom("sessions").select("id").execute()).length, 0);
    }
  });

  it("attack: a session opened with the old factor after a require-mfa-reenrolment job was created, before its batch ran, dies with the factor", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await users(fx, 2);
    const victim = ids[0] as string;
    const db = fx.database.db;
    await db.insertInto("mfa_totp").values({ user_id: victim, secret_ct: "ct", created_at: NOW, confirmed_at: NOW, last_step: null }).execute();
    const sm = sessions(fx);
    const older = await sm.createSession(victim, { aal: 2 });
    fx.clock.advance(1000);
    const job = await createContainJob(fx, { levers: ["require-mfa-reenrolment"], scope: { all: true }, actor: "t" });
    // While the job waits for its batch (earlier batches, a queue), the attacker logs in with the leaked factor.
    fx.clock.advance(5000);
    const attacker = await sm.createSession(victim, { aal: 2 });
    fx.clock.advance(5000);
    const view = jobView(await runJob(fx, job.id));
    assert.deepEqual(view.counts["require-mfa-reenrolment"], { users: 1, totp: 1, recoveryCodes: 0, webauthn: 0, sessions: 2, resetLinksSpent: 0, emailChangeLinksSpent: 0, noticesQueued: 0, noticesRefused: 0 });
    assert.equal((await sm.validate(attacker.token)).valid, false, "the session opened with the deleted factor is refused");
    assert.equal((await sm.validate(older.token)).valid, false);
    assert.equal((await db.selectFrom("sessions").select("id").where("user_id", "=", victim).execute()).length, 0);
    // A login after the batch (the user enrolling again) is not touched.
    fx.clock.advance(1000);
    assert.equal((await sm.validate((await sm.createSession(victim)).token)).valid, true);
  });

  it("scopes the window of exposure by sessions in use, and by logins inside it", async () => {
    const fx = await setup(await dfx.fresh());
    const ids = await users(fx, 5);
    const db = fx.database.db;
    const session = (id: string, userId: string, created: number, seen: number) =>
      db.insertInto("sessions").values({ id, user_id: userId, secret_hash: "h", created_at: created, last_seen_at: seen, expires_at: created + 12 * HOUR, ip: null, user_agent: null, aal: 1, issued_epoch: currentEpoch() }).execute();
    await session("ses_a", ids[0] as string, NOW - 30 * HOUR, NOW - 20 * HOUR); // in use across the window start
    await session("ses_b", ids[1] as string, NOW - 50 * HOUR, NOW - 40 * HOUR); // ended before the window
    await session("ses_c", ids[2] as string, NOW - 5 * HOUR, NOW - 1 * HOUR); // began after the window
    await db.updateTable("users").set({ last_login_at: NOW - 15 * HOUR }).where("id", "=", ids[3] as string).execute(); // a login inside it
    const inScope = async (scope: object) => (await dryRunContain(fx, { levers: ["lock-accounts"], scope, actor: "t" })).levers["lock-accounts"]?.sample;
    assert.deepEqual(await inScope({ activeFrom: NOW - 24 * HOUR, activeTo: NOW - 10 * HOUR }), ["usr_0000", "usr_0003"]);
    assert.deepEqual(await inScope({ activeFrom: NOW - 24 * HOUR }), ["usr_0000", "usr_0002", "usr_0003"]);
  });

  it("two workers sharing a job claim disjoint batches and together reach the one-worker end state", async () => {
    const a = await setup(await dfx.fresh());
    const target = dfx.lastTarget();
    await users(a, 230);
    const job = await createContainJob(a, { levers: ["expire-passwords", "lock-accounts"], scope: { all: true }, actor: "t", batchSize: 5 });
    // Two other processes (or PostgreSQL nodes) resume the same job at once.
    const [wa, wb] = await Promise.all([worker(target, job.id, "A"), worker(target, job.id, "B")]);
    assert.equal(wa.code, 0, wa.stderr);
    assert.equal(wb.code, 0, wb.stderr);
    assert.equal(wa.stdout.trim(), "done");
    assert.equal(wb.stdout.trim(), "done");
    const view = jobView(await a.jobs.get(job.id));
    assert.equal(view.done, 230);
    assert.deepEqual(view.counts["expire-passwords"], { users: 230, noticesQueued: 0, noticesRefused: 0 });
    assert.deepEqual(view.counts["lock-accounts"], { users: 230 });
    const events = (await a.audit.tail(1000)).filter((e) => e.type === "contain.job.batch" && e.subject === job.id);
    const batches = events.map((e) => (e.data as { batch: number }).batch).sort((x, y) => x - y);
    assert.deepEqual(batches, Array.from({ length: 46 }, (_, i) => i), "every batch exactly once");
    const byWorker = new Map<string, number>();
    for (const e of events) byWorker.set((e.data as { worker: string }).worker, (byWorker.get((e.data as { worker: string }).worker) ?? 0) + 1);
    process.stderr.write(`# batches per worker (${a.database.dialect}): ${JSON.stringify(Object.fromEntries(byWorker))}\n`);
    const db = a.database.db;
    const changed = await db.selectFrom("users").select((eb) => eb.fn.countAll<number>().as("n")).where("password_must_change", "=", 1).where("locked_at", "=", NOW).executeTakeFirst();
    assert.equal(Number(changed?.n), 230);
    const changes = await db.selectFrom("contain_changes").select((eb) => eb.fn.countAll<number>().as("n")).where("job_id", "=", job.id).executeTakeFirst();
    assert.equal(Number(changes?.n), 460, "one undo record per user and lever");
    assert.equal((await a.audit.verify()).ok, true);
  });

  it("resumes every unfinished job at server start, in the background, logging, and carries on past a failure", async () => {
    const fx = await setup(await dfx.fresh());
    await users(fx, 20);
    const stopped = await createContainJob(fx, { levers: ["expire-passwords"], scope: { all: true }, actor: "t", batchSize: 3 });
    await runJob(fx, stopped.id, { stopAfterBatches: 2 });
    const failed = await createContainJob(fx, { levers: ["lock-accounts"], scope: { roles: ["admin"] }, actor: "t" });
    await fx.jobs.setStatus(failed.id, "failed", "connection lost");
    const finished = await createContainJob(fx, { levers: ["lock-accounts"], scope: { ids: ["usr_0009"] }, actor: "t" });
    await runJob(fx, finished.id);
    const lines: string[] = [];
    const logger = { info: (_d: Record<string, unknown>, m: string) => void lines.push(m), error: (_d: Record<string, unknown>, m: string) => void lines.push(`ERROR ${m}`) };
    const outcomes = await resumeUnfinishedJobs(fx, { logger, worker: "server:test" }).finished;
    assert.deepEqual(outcomes.map((o) => [o.id, o.status]).sort(), [[stopped.id, "done"], [failed.id, "done"]].sort());
    assert.equal((await fx.jobs.get(stopped.id)).done, 20);
    assert.deepEqual(jobView(await fx.jobs.get(failed.id)).counts["lock-accounts"], { users: 2 });
    assert.equal(lines.filter((l) => l === "contain: resuming unfinished job").length, 2);
    assert.deepEqual(await resumeUnfinishedJobs(fx).finished, [], "nothing left");
  });
});
