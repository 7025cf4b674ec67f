// Red-team round "bounded waits": the consequences of the PostgreSQL wait bounds of 8f54a7b9 (every pooled connection
// starts with lock_timeout LOCK_TIMEOUT_MS = 5 s and statement_timeout 5 min; a statement past either answers 503
// BULWARK_ERR_DB_BUSY "try again" (the message said "nothing was changed"), a CLI exits 3; migrations run unbounded on their own
// connection; maintenance steps SET LOCAL their own). The attacker is the environment at the worst moment (or anyone
// who can hold a row for more than five seconds: a frozen node inside a transaction, a DBA's open session, a slow
// import): a second, superuser pg client on the same schema holds a lock past the bound while Bulwark's work waits on it.
// What must hold: a wait past the bound fails cleanly (rolled back whole, named, retryable: nothing of the request left
// half-done), long legitimate work is not broken (or fails resumably), and no setting leaks between pooled users.
// Tried: a right password whose login answers 503 behind a held audit head; a reset completion behind the same; a
// containment batch behind rows another session holds (job state, audit, resume); the migrator's unbounded run and a
// maintenance step's SET LOCAL, each then handing its connection to the next user of a one-connection pool.
// Held: the reset completion (one transaction: 503, the link not spent, the old password stands, the link then works);
// the containment job (marked failed with the reason, contain.job.failed recorded, nothing of the batch applied,
// resumed to done with each account changed once); no setting leaks (after a migration run, a failed migration and
// a maintenance step, the next user of the connection has 5 s / 5 min again).
// Found: a login with the right password that answers 503 BULWARK_ERR_DB_BUSY ("nothing was changed") behind a held
// audit head changed things: its flood attempt (counted as a failure at FloodControl.begin) is never settled, so the
// owner's retry is recorded with failuresBefore=1 and no auth.login.failed event, and the session created before the
// audit append stays stored (never sent to the browser). The request's earlier transactions had committed; only the
// last statement's rolled back. (fixed since: an error after the verify ends the session made for the login and takes
// its flood attempt back, neither failure nor success (session-routes' abandonLogin, LoginResult.release); the 503's
// message says "the request could not finish", no longer "nothing was changed", which no multi-step request can promise.)
// Not repeated (pinned in test/pg-failures-red-team.test.ts): that a login behind a held audit head answers 503 within
// the bound; the killed-backend and healthz cases.
// Loopback and temp dirs only; skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { sql } from "kysely";
import { authFixture, GOOD_PASSWORD, type AuthFixture } from "../src/http/auth/test-client.ts";
import { containDeps, createContainJob, resumeJob, runJob } from "../src/contain/index.ts";
import { openPostgres, LOCK_TIMEOUT_MS, STATEMENT_TIMEOUT_MS, type Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { RESET_LINK } from "./helpers/auth-flows.ts";
import { seedContainUsers } from "./helpers/contain-fixture.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { pgSites, waiting, until, within } from "./helpers/pg-site.ts";

const MASTER = testMasterKey("bounded-waits-red-team");
// The requests and the batch wait out the bound: their sites refuse a held row after 2 s, not the product's 5 s. The
// pooled-settings tests below keep the product's default on purpose (their pools are opened without lockEnv): a leaked
// 2 s from a maintenance step's SET LOCAL must stay distinguishable from the pool's own bound.
const { unavailable, site, schemaURL, lockBoundMs } = pgSites("bwait", MASTER, { lockTimeoutSeconds: 2 });
/** Real time a wait past the bound takes to be refused, with room. */
const PAST_BOUND_MS = lockBoundMs + 3_000;


async function timeoutsOf(db: Database): Promise<{ lock: string; statement: string }> {
  const row = (await sql<{ lock: string; statement: string }>`SELECT current_setting('lock_timeout') AS lock, current_setting('statement_timeout') AS statement`.execute(db.db)).rows[0];
  assert.ok(row);
  return row;
}

const BOUNDED = { lock: `${LOCK_TIMEOUT_MS / 1000}s`, statement: `${STATEMENT_TIMEOUT_MS / 60_000}min` };

describe("a wait past the bound on a request (PostgreSQL)", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  it("attack: a right password whose login answers 503 BULWARK_ERR_DB_BUSY behind a held audit head — the 503 leaves nothing of the login behind: no session stored for it, and the owner's right password is not left counted as a failed attempt (ASVS 6.3.1, 16.5.3) (was: the session stayed stored with no event naming it, and the retry read failuresBefore=1)", async () => {
    const { fx, dba, close } = await site();
    try {
      const user = await fx.user("busy-login@example.org");
      await dba.query("BEGIN");
      await dba.query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE");
      const pending = fx.browser({ newDevice: true }).login(user.email, user.password);
      const busy = await within(pending, PAST_BOUND_MS);
      await dba.query("ROLLBACK");
      const res = busy ?? (await pending);
      assert.ok(busy !== null, "control: the login answered within the bound");
      assert.equal(res.statusCode, 503, `control: the login behind the held head is refused as busy: ${res.body}`);
      assert.equal((res.json() as { error?: { code?: string } }).error?.code, "BULWARK_ERR_DB_BUSY", res.body);
      assert.match(res.body, /could not finish; try again/, "control: the body says the request did not finish, and to retry");
      const stored = await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", user.id).execute();
      // The owner tries again, as Retry-After tells them to, with the same right password.
      const again = await fx.browser({ newDevice: true }).login(user.email, user.password);
      assert.equal(again.statusCode, 200, `the retry signs in: ${again.body}`);
      const succeeded = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.login.succeeded").where("subject", "=", user.id).execute();
      assert.equal(succeeded.length, 1, "one recorded sign-in: the retry's");
      const failuresBefore = (JSON.parse(succeeded[0]!.data) as { failuresBefore?: number }).failuresBefore;
      const failedEvents = await fx.app.db.db.selectFrom("audit_events").select("seq").where("type", "=", "auth.login.failed").where("subject", "=", user.id).execute();
      const problems: string[] = [];
      if (stored.length > 0) {
        problems.push(`${stored.length} session row(s) of the account were stored and left live by the login that answered 503 (createSession commits in its own transaction before the login's audit append waits on the head; the cookie was never sent, but the session stands in the owner's list of sessions with no auth.login.succeeded event naming it)`);
      }
      if (failuresBefore !== 0) {
        problems.push(`the retry's auth.login.succeeded says failuresBefore=${failuresBefore} with ${failedEvents.length} auth.login.failed event(s): the 503'd attempt with the right password stays counted as a failure (FloodControl.begin counts every attempt as a failure as it starts; the route settles it only after the audit append that timed out), so an owner retrying a busy node fills their own failure window and the audit's "guess that worked" signal (ASVS 6.3.5) fires on their own sign-in`);
      }
      assert.deepEqual(problems, [], `a login answered 503 BULWARK_ERR_DB_BUSY "nothing was changed", yet: ${problems.join("; ")}`);
    } finally {
      await close();
    }
  });

  it("attack: a reset completion whose commit waits past the bound on a held audit head — 503, the link is not spent, the old password stands, and the same link completes once the lock is gone (ASVS 6.4.1, 16.5.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const user = await fx.user("busy-reset@example.org");
      assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: user.email } })).statusCode, 202);
      await fx.deliver();
      const token = fx.mailTo(user.email).map((m) => RESET_LINK.exec(m.body)?.[1]).filter((t): t is string => t !== undefined).at(-1);
      assert.ok(token, "control: a reset link was mailed");
      const newPassword = "copper heron under winter rain";
      await dba.query("BEGIN");
      await dba.query("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE");
      const pending = fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token, newPassword } });
      const busy = await within(pending, PAST_BOUND_MS);
      await dba.query("ROLLBACK");
      const res = busy ?? (await pending);
      assert.ok(busy !== null, "the completion answered within the bound");
      assert.equal(res.statusCode, 503, `a completion behind the held head is refused as busy: ${res.body}`);
      assert.equal((res.json() as { error?: { code?: string } }).error?.code, "BULWARK_ERR_DB_BUSY", res.body);
      assert.equal((await fx.browser({ newDevice: true }).login(user.email, newPassword)).statusCode, 401, "the new password was not set");
      const done = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token, newPassword } });
      assert.equal(done.statusCode, 200, `the same link completes on retry (it was not spent by the 503): ${done.body}`);
      assert.equal((await fx.browser({ newDevice: true }).login(user.email, newPassword)).statusCode, 200, "the new password signs in");
      assert.equal((await fx.browser({ newDevice: true }).login(user.email, GOOD_PASSWORD)).statusCode, 401, "the old one no longer does");
      const report = await fx.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report));
    } finally {
      await close();
    }
  });
});

describe("a containment batch behind rows another session holds (PostgreSQL)", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  it("attack: another session holds the accounts a lock-accounts batch needs past the bound — the job fails named and resumable, nothing of the batch is applied, contain.job.failed is recorded, and a resume completes with each account changed once (ASVS 16.5.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const deps = containDeps(fx.app);
      const ids = await seedContainUsers(deps, fx.clock.now(), 6);
      const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { all: true }, actor: "cli:alice", batchSize: 3 });
      await dba.query("BEGIN");
      await dba.query(`SELECT id FROM users WHERE id = ANY($1) FOR UPDATE`, [ids]);
      // No retry budget: a busy batch is retried for two minutes by default (test/contain-busy-batch.test.ts); here it is past it.
      const run = runJob(deps, job.id, { worker: "cli:1", busyRetryMs: 0 }).then(() => null, (error: unknown) => error);
      assert.ok(await until(async () => (await waiting(dba)) > 0, 5000), "control: the batch waits on the held rows");
      const thrown = await within(run, PAST_BOUND_MS);
      await dba.query("ROLLBACK");
      const error = thrown ?? (await run);
      assert.ok(thrown !== null, "the job gave up within the bound");
      assert.ok(error instanceof Error, "the run failed");
      assert.equal((error as { code?: string }).code, "BULWARK_ERR_CONTAIN_FAILED", `named: ${(error as Error).message}`);
      assert.match((error as Error).message, /can be resumed/, "the operator is told it can be resumed");
      const failed = await fx.app.accounts.jobs.get(job.id);
      assert.equal(failed.status, "failed", "marked failed, not left running");
      const locked = await fx.app.db.db.selectFrom("users").select("id").where("id", "in", ids).where("locked_at", "is not", null).execute();
      assert.equal(locked.length, 0, "nothing of the timed-out batch was applied");
      const failedEvents = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "contain.job.failed").where("subject", "=", job.id).execute();
      assert.equal(failedEvents.length, 1, "contain.job.failed is on the trail");
      const resumed = await resumeJob(deps, job.id, { actor: "cli:alice", worker: "cli:2" });
      assert.equal(resumed.status, "done");
      const after = await fx.app.db.db.selectFrom("users").select("id").where("id", "in", ids).where("locked_at", "is not", null).execute();
      assert.equal(after.length, ids.length, "every account is locked after the resume");
      const changes = await fx.app.db.db.selectFrom("contain_changes").select("user_id").where("job_id", "=", job.id).execute();
      assert.equal(changes.length, ids.length, `each account changed once: ${JSON.stringify(changes)}`);
      const report = await fx.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report));
    } finally {
      await close();
    }
  });
});

describe("no wait setting leaks to the next user of a pooled connection (PostgreSQL)", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  it("attack: a migration run (applied, then failed) and a bounded transaction's SET LOCAL on a one-connection pool — the next user of the connection starts at 5 s / 5 min, never unbounded (lock_timeout 0) nor the step's 2 s (ASVS 16.5.3)", async () => {
    const url = await schemaURL();
    const db = await openPostgres(url, { maxConnections: 1 });
    try {
      const clock = { now: () => Date.UTC(2026, 11, 6) };
      assert.deepEqual(await timeoutsOf(db), BOUNDED, "control: the pool starts bounded");
      const base = await migrate(db, clock, MIGRATIONS);
      assert.equal(base.error, undefined);
      assert.deepEqual(await timeoutsOf(db), BOUNDED, "after a migration run the connection is bounded again");
      const last = MIGRATIONS.at(-1)!.version;
      const broken = await migrate(db, clock, [...MIGRATIONS, { version: last + 1, name: "broken", up: async (trx) => void (await sql`SELECT 1/0`.execute(trx)) }]);
      assert.ok(broken.error, "control: the extra migration failed");
      assert.deepEqual(await timeoutsOf(db), BOUNDED, "after a failed migration run the connection is bounded again");
      // The SET LOCAL form the maintenance steps use, inside a transaction, then the connection back in the pool.
      await db.transaction(async (trx) => {
        await sql.raw("SET LOCAL lock_timeout = 2000").execute(trx);
        await sql.raw("SET LOCAL statement_timeout = 1000").execute(trx);
      });
      assert.deepEqual(await timeoutsOf(db), BOUNDED, "after a SET LOCAL transaction the connection is bounded again");
      // And rolled back by an error inside it.
      await db.transaction(async (trx) => {
        await sql.raw("SET LOCAL lock_timeout = 0").execute(trx);
        throw new Error("boom");
      }).catch(() => {});
      assert.deepEqual(await timeoutsOf(db), BOUNDED, "after a rolled-back SET LOCAL transaction the connection is bounded again");
    } finally {
      await db.close();
    }
  });

  it("attack: a maintenance pass on the server's pool — its steps' 2 s lock bound stays on none of the pooled connections later requests get (ASVS 16.5.3)", async () => {
    const url = await schemaURL();
    const fx = await authFixture({ BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: MASTER });
    try {
      const maintenance = startMaintenance(fx.app, { intervalMs: 600_000, firstPassDelayMs: 600_000 });
      try {
        await maintenance.runOnce();
      } finally {
        await maintenance.stop();
      }
      // Every pooled connection the pass used: read on each by holding them all at once.
      const seen = await Promise.all(Array.from({ length: 10 }, () => fx.app.db.transaction(async (trx) => {
        const row = (await sql<{ lock: string; statement: string }>`SELECT current_setting('lock_timeout') AS lock, current_setting('statement_timeout') AS statement, pg_sleep(0.05)`.execute(trx)).rows[0];
        return row ? { lock: row.lock, statement: row.statement } : null;
      })));
      assert.deepEqual(seen.filter((s) => JSON.stringify(s) !== JSON.stringify(BOUNDED)), [], "every pooled connection is bounded as the pool starts");
    } finally {
      await fx.close();
    }
  });
});
