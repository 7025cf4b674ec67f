// Red team, the work a running server does on its own beside requests: the containment job runner (jobs resumed at
// start, paused at shutdown), the mail runner draining the outbox, the maintenance loop (purges, token expiry
// reminders) and graceful shutdown (src/http/run-server.ts, api/job-runner.ts, mail-runner.ts, maintenance.ts).
// The attacker does not send requests: they make the server stop or crash at a chosen moment (SIGTERM from a
// deploy, SIGKILL, a crash loop), run a second server on the same database (a rolling deploy), freeze another node
// in the middle of a transaction (a VM paused for a snapshot, SIGSTOP), or answer as a slow SMTP relay. The aims: a
// containment job that runs a batch twice or skips one, a reset mail sent twice, a maintenance step that never runs,
// a shutdown that outlasts the supervisor's grace (its `server.stop` event and last audit checkpoint lost) or never
// ends. Earlier rounds (test/outbox-attacks, jobs-store-attacks, contain-crash, contain-revoke, run-server.test,
// http-maintenance, http-server-attacks) covered the sender's leases and retries, kill -9 of a CLI job, two CLI
// workers on one job, start-up failures and a request in flight at shutdown; not repeated here.
// Each test passes when the product defends; an "attack: … (was: …)" failed on the day it was written, before its
// fix (the relay, frozen-row and crash-loop ones were checked to pass with the attack condition taken away — a fast
// relay, no frozen row, a longer life — so each failed for the reason it names). A stop is judged by what the server
// did after SIGTERM (messages the relay accepted after it, batches run, events recorded), not by how long it took: the
// SIGKILL after STOP_NET_MS is a safety net, and the time a stop took is only printed.
// Temp dirs, loopback, and a private PostgreSQL cluster on a Unix socket only.
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, describe, it, type TestContext } from "node:test";
import pg from "pg";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { containDeps, createContainJob } from "../src/contain/index.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { runServer } from "../src/http/run-server.ts";
import { ManualClock, type Clock } from "../src/lib/clock.ts";
import { openPostgres, type Database } from "../src/store/database.ts";
import { PRIORITY } from "../src/notify/outbox.ts";
import { startTarpitSMTPServer } from "../src/notify/tarpit-smtp-server.ts";
import { bulwarkInProcess, serveProcess as serve, type ServedProcess as Served } from "./helpers/cli.ts";
import { sharedCluster } from "./helpers/dialects.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { testDir, within } from "./helpers/scratch.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Docker's default wait between SIGTERM and SIGKILL (`docker stop`), the budget docs/http-auth.md designs shutdown for. */
const SUPERVISOR_GRACE_MS = 10_000;
const CHEAP = { BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" };
// The tests move their manual clocks weeks ahead of the PostgreSQL server's: such a node would refuse to start
// (BULWARK_MAX_CLOCK_SKEW_SECONDS); 0 only warns. That limit has its own tests (test/clock-skew-limit.test.ts).
const BASE_ENV = { BULWARK_LOG_LEVEL: "silent", PORT: "0", HOST: "127.0.0.1", BULWARK_MAX_CLOCK_SKEW_SECONDS: "0", ...CHEAP };

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The environment a spawned `bulwark serve` runs with: only what the test sets, no BULWARK_* of the caller. */
function serveEnv(dataDir: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...BASE_ENV, BULWARK_DATA_DIR: dataDir, ...extra };
  for (const key of Object.keys(env)) if (key.startsWith("BULWARK_") && !(key in BASE_ENV) && key !== "BULWARK_DATA_DIR" && !(key in extra)) delete env[key];
  return env;
}

/**
 * A safety net for a stop, not a deadline: a server that does not end on its own after SIGTERM is SIGKILLed once this
 * has passed (the tests judge how it stopped by what it did — deliveries started, batches run, events recorded — and
 * not by how long it took, which they only print).
 */
const STOP_NET_MS = 60_000;
/** Deliveries a server's mail sender has in flight at most (the SMTP pool's connections; OutboxSender's default). */
const DELIVERIES_IN_FLIGHT = 5;

/** SIGTERM, then SIGKILL should the process still run after STOP_NET_MS. Returns how the process ended. */
async function stopLikeASupervisor(served: Served): Promise<{ code: number | null; signal: NodeJS.Signals | null; tookMs: number }> {
  const started = performance.now();
  served.child.kill("SIGTERM");
  const ended = await within(served.exited, STOP_NET_MS);
  if (ended !== "timeout") return { ...ended, tookMs: performance.now() - started };
  served.child.kill("SIGKILL");
  return { ...(await served.exited), tookMs: performance.now() - started };
}

async function auditTypesAfter(database: Database, afterSeq: number): Promise<string[]> {
  const rows = await database.db.selectFrom("audit_events").select("type").where("seq", ">", afterSeq).orderBy("seq").execute();
  return rows.map((r) => r.type);
}

async function lastSeq(app: OpenedApp): Promise<number> {
  const row = await app.db.db.selectFrom("audit_events").select((eb) => eb.fn.max("seq").as("seq")).executeTakeFirst();
  return Number(row?.seq ?? 0);
}

describe("the containment job runner across restarts and a second server [sqlite, real server processes]", () => {
  it("attack: a job resumed by two servers at once, one SIGKILLed mid-job (a rolling deploy gone wrong) and the other stopped by SIGTERM, finishes on a third start with every batch applied once, none skipped, one reset link and mail per user, and no failure recorded (ASVS 2.3.3)", { timeout: 180_000 }, async (t) => {
    const dir = testDir(t, "bulwark-runners-rt-");
    const dataDir = join(dir, "data");
    const env = { ...BASE_ENV, BULWARK_DATA_DIR: dataDir };
    // Enough batches (of one user each) that three server starts and two stops all land while the job runs: the
    // second stop lands after about 300 batches and two server starts (1,323 done on a 2-core machine, measured; the
    // diagnostic below says), so 8,000 leave room on a machine several times as fast; the third start finishes the rest.
    const USERS = 8_000;
    await (await openApp({ env, mode: "init" })).close();
    const seeded = await bulwarkInProcess(["dev", "seed", "--users", String(USERS), "--json"], env);
    assert.equal(seeded.code, 0, seeded.stderr);
    const app = await openApp({ env, mode: "open" });
    t.after(() => app.close());
    // Created by the operator's CLI, which then died before running a batch: every server start picks it up.
    const job = await createContainJob(containDeps(app), { levers: ["invalidate-passwords"], scope: { all: true }, actor: "cli:responder", batchSize: 1 });
    const read = async (): Promise<{ status: string; done: number; total: number }> => {
      const row = await app.db.db.selectFrom("jobs").select(["status", "done", "total"]).where("id", "=", job.id).executeTakeFirstOrThrow();
      return { status: row.status, done: Number(row.done), total: Number(row.total) };
    };
    const progressPast = async (done: number, limitMs = 60_000): Promise<number> => {
      const until = performance.now() + limitMs;
      for (;;) {
        const now = await read();
        if (now.done > done || now.status === "done") return now.done;
        if (performance.now() > until) throw new Error(`the job did not move past ${done} (at ${now.done}, ${now.status})`);
        await sleep(25);
      }
    };

    const a = await serve(t, serveEnv(dataDir));
    await progressPast(100);
    const b = await serve(t, serveEnv(dataDir));
    await progressPast((await read()).done + 100);
    a.child.kill("SIGKILL");
    await a.exited;
    const atKill = await read();
    await progressPast(atKill.done + 100);
    const paused = await stopLikeASupervisor(b);
    const atPause = await read();
    assert.equal(paused.signal, null, "the second server stopped on its own after its batch in flight");
    t.diagnostic(`done at the SIGKILL: ${atKill.done}, at the SIGTERM: ${atPause.done}, of ${USERS}`);
    assert.ok(atKill.done < USERS && atPause.done < USERS, `both stops landed mid-job (done ${atKill.done}, then ${atPause.done}, of ${USERS}); a faster machine needs more users`);
    assert.equal(atPause.status, "running", "a job paused by a graceful shutdown stays running, for the next start to resume; it is not failed");

    const c = await serve(t, serveEnv(dataDir));
    // Until done, the job moves on at least every 60 s (a bound on a stall, not on speed: a loaded machine takes
    // longer over the rest of the batches, and a fixed total time failed there once).
    while ((await read()).status !== "done") await progressPast((await read()).done);
    await stopLikeASupervisor(c);

    const end = await read();
    assert.deepEqual(end, { status: "done", done: USERS, total: USERS });
    const events = await app.db.db.selectFrom("audit_events").select(["type", "data"]).where("subject", "=", job.id).orderBy("seq").execute();
    const batches = events.filter((e) => e.type === "contain.job.batch").map((e) => (JSON.parse(e.data) as { batch: number }).batch);
    assert.equal(batches.length, USERS, "one batch event per batch, none twice");
    assert.deepEqual([...new Set(batches)].sort((x, y) => x - y), Array.from({ length: USERS }, (_, i) => i), "every batch, none skipped");
    assert.deepEqual(events.filter((e) => e.type === "contain.job.failed"), [], "neither the SIGKILL nor the SIGTERM is recorded as a failure");
    assert.equal(events.filter((e) => e.type === "contain.job.resumed").length, 3, "each of the three starts says it resumed the job");
    const counts = JSON.parse((await app.db.db.selectFrom("jobs").select("counts").where("id", "=", job.id).executeTakeFirstOrThrow()).counts) as Record<string, number>;
    assert.equal(counts["invalidate-passwords.users"], USERS, "counted once per user");
    assert.equal(counts["invalidate-passwords.resetEmailsQueued"], USERS, "a mail queued for every user");
    const mails = await app.db.db.selectFrom("outbox_messages").select(["to_address", "idempotency_key"]).where("kind", "=", "account.containment-reset-link").execute();
    assert.equal(mails.length, USERS, "one reset mail per user");
    assert.equal(new Set(mails.map((m) => m.to_address.toLowerCase())).size, USERS, "to every user, none twice");
    const links = await app.db.db.selectFrom("password_reset_tokens").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    assert.equal(Number(links.n), USERS, "one live link per user: a resumed batch issues no second one");
    const untouched = await app.db.db.selectFrom("users").select("id").where("password_invalidated_at", "is", null).execute();
    assert.deepEqual(untouched, [], "no user left out");
  });
});

describe("the containment job runner's audit trail [sqlite]", () => {
  it("attack: batches a server's job runner applies name their worker (`server:<host>/<pid>`) in their audit events, as every CLI worker does, so after a rolling deploy with two servers on one job the log says which node applied which batch (ASVS 16.2.1) (was: worker \"\")", { timeout: 60_000 }, async (t) => {
    const dir = testDir(t, "bulwark-runners-rt-");
    const app = await openApp({ env: { ...BASE_ENV, BULWARK_DATA_DIR: join(dir, "data") }, mode: "init" });
    for (let i = 0; i < 3; i++) await app.accounts.users.create({ email: `member${i}@example.org` });
    const job = await createContainJob(containDeps(app), { levers: ["expire-passwords"], scope: { all: true }, actor: "cli:responder", batchSize: 1 });
    const running = await runServer(app, { maintenanceIntervalMs: HOUR });
    try {
      for (let i = 0; (await app.db.db.selectFrom("jobs").select("status").where("id", "=", job.id).executeTakeFirstOrThrow()).status !== "done"; i++) {
        assert.ok(i < 400, "the server's start-up resume finishes the job");
        await sleep(25);
      }
      const rows = await app.db.db.selectFrom("audit_events").select("data").where("type", "=", "contain.job.batch").where("subject", "=", job.id).execute();
      const workers = rows.map((r) => (JSON.parse(r.data) as { worker?: unknown }).worker);
      assert.equal(workers.length, 3);
      assert.ok(workers.every((w) => typeof w === "string" && w.length > 0), `each batch names the server process that applied it; got ${JSON.stringify(workers)}`);
    } finally {
      await running.close("test");
    }
  });
});

describe("graceful shutdown against a slow SMTP relay [sqlite, real server process]", () => {
  it("attack: a relay that answers each SMTP command a second late cannot hold `bulwark serve` past the supervisor's 10 s after SIGTERM: no new delivery starts, unstarted ones are handed back, those in flight are cut after a grace, and server.stop is recorded (ASVS 16.5.2, 16.3.3) (was: the whole claimed batch was delivered first; SIGKILLed, the stop event and last audit checkpoint lost)", { timeout: 120_000 }, async (t) => {
    const dir = testDir(t, "bulwark-runners-rt-");
    const dataDir = join(dir, "data");
    // Each reply comes 1 s late: far inside nodemailer's timeouts and the 2-minute delivery deadline, so nothing
    // here fails; one message takes about 6 s, and a batch of 15 through 5 connections about 18 s.
    const relay = await startTarpitSMTPServer({ delayMs: 1000 });
    t.after(() => relay.close());
    const seed = await openApp({ env: { ...BASE_ENV, BULWARK_DATA_DIR: dataDir }, mode: "init" });
    for (let i = 0; i < 15; i++) {
      await seed.accounts.outbox.enqueue({ idempotencyKey: `rt-shutdown:${i}`, to: `user${i}@example.org`, subject: "Bulwark: your password was changed", text: `Notice ${i}\n`, kind: "security.password-changed", priority: PRIORITY.security });
    }
    const before = await lastSeq(seed);
    await seed.close();

    const server = await serve(t, serveEnv(dataDir, { BULWARK_SMTP_URL: `smtp://127.0.0.1:${relay.port}`, BULWARK_MAIL_FROM: "security@example.org" }));
    await sleep(1000); // the runner has claimed the queue and its first deliveries are under way
    const acceptedAtTerm = relay.accepted.length;
    const stopped = await stopLikeASupervisor(server);
    t.diagnostic(`ended ${Math.round(stopped.tookMs)} ms after SIGTERM; ${relay.accepted.length - acceptedAtTerm} message(s) accepted by the relay after it`);

    const after = await openApp({ env: { ...BASE_ENV, BULWARK_DATA_DIR: dataDir }, mode: "open" });
    t.after(() => after.close());
    const types = await auditTypesAfter(after.db, before);
    const statuses = await after.db.db.selectFrom("outbox_messages").select("status").execute();
    assert.equal(statuses.length, 15, "no message is lost whatever happened");
    assert.ok(statuses.every((m) => m.status !== "dead"), "no message went dead");
    // What was not delivered is due again for any sender: handed back or cut, never left under a lease of minutes.
    assert.deepEqual(statuses.filter((m) => m.status === "sending"), [], "messages held under the stopped server's lease");
    // What holds a stop past the supervisor's grace is work started after SIGTERM: only the deliveries in flight at it
    // may still be accepted (those the grace lets finish), never the rest of the claimed batch.
    const acceptedAfterTerm = relay.accepted.length - acceptedAtTerm;
    assert.ok(
      acceptedAfterTerm <= DELIVERIES_IN_FLIGHT,
      `${acceptedAfterTerm} message(s) were accepted by the relay after SIGTERM, more than the ${DELIVERIES_IN_FLIGHT} deliveries in flight at it: the server ` +
        `started new deliveries while stopping, the work that holds a stop past a supervisor's ${SUPERVISOR_GRACE_MS} ms (it ended ${Math.round(stopped.tookMs)} ms after SIGTERM, ${relay.accepted.length} of 15 accepted)`,
    );
    assert.equal(
      statuses.filter((m) => m.status === "queued").length, 15 - relay.accepted.length,
      "every message the relay did not accept is handed back, due again (queued)",
    );
    assert.equal(stopped.signal, null, `the server ended on its own after SIGTERM, not SIGKILLed after ${STOP_NET_MS} ms`);
    assert.equal(stopped.code, 0);
    assert.ok(types.includes("server.stop"), `the stop is in the audit log (events after the start: ${types.join(", ")})`);
  });
});

describe("the maintenance loop [sqlite]", () => {
  it("attack: a server that never lives a whole maintenance interval (a crash loop, frequent deploys, an attacker who can crash it) still runs maintenance passes, so a token's expiry reminder is queued: the first pass runs shortly after start (ASVS 6.4.5) (was: the first pass waited a full interval, and none ever ran)", { timeout: 60_000 }, async (t) => {
    const dir = testDir(t, "bulwark-runners-rt-");
    const env = { ...BASE_ENV, BULWARK_DATA_DIR: join(dir, "data") };
    // 15 minutes in production; scaled down to 2 s here. Each life of the server is 1.2 s, five lives in a row:
    // three intervals of uptime in all.
    const intervalMs = 2_000;
    const setup = await openApp({ env, mode: "init" });
    const user = await setup.accounts.users.create({ email: "owner@example.org" });
    const created = await setup.accounts.tokens.create(user.id, { name: "deploy bot", scopes: ["accounts.read"], expiresAt: Date.now() + 3 * DAY });
    // Made 30 days before it was due, so it qualifies for a reminder: rewind its creation.
    await setup.db.db.updateTable("api_tokens").set({ created_at: Date.now() - 27 * DAY }).where("id", "=", created.info.id).execute();
    await setup.close();

    for (let life = 0; life < 5; life++) {
      const app = await openApp({ env, mode: "open" });
      const running = await runServer(app, { maintenanceIntervalMs: intervalMs });
      await sleep(1_200);
      await running.close(`restart ${life}`);
    }

    const after = await openApp({ env, mode: "open" });
    t.after(() => after.close());
    const reminders = await after.db.db.selectFrom("outbox_messages").select("kind").where("kind", "=", "security.api-token-expiring").execute();
    assert.equal(reminders.length, 1, "after three intervals of uptime the token's owner has been told it expires in three days");
  });
});

const pgUnavailable = postgresUnavailable();
describe("the maintenance loop beside a frozen node [postgres]", pgUnavailable ? { skip: `PostgreSQL unavailable: ${pgUnavailable}` } : {}, () => {
  after(async () => {
    await (await sharedCluster())?.stop();
  });

  /**
   * An app on a fresh schema with one expired session whose row another "node" holds in an open transaction: the
   * login that rotates a pre-login session deletes the old row in its transaction; frozen there (its VM paused for a
   * snapshot, SIGSTOP), it holds the row lock until PostgreSQL notices the dead connection (hours, with default
   * TCP keepalives). And a token that expires in three days, owed a reminder.
   */
  async function frozenNeighbour(t: TestContext, clock: Clock & { advance(ms: number): void }): Promise<{ app: OpenedApp; release: () => Promise<void>; url: string }> {
    const cluster = await sharedCluster();
    if (!cluster) throw new Error("PostgreSQL cluster did not start");
    const url = await cluster.createSchema(`rt_runners_${process.pid}_${Math.floor(Math.random() * 1e9)}`);
    const dir = testDir(t, "bulwark-runners-rt-");
    const app = await openApp({ env: { ...BASE_ENV, BULWARK_DATA_DIR: join(dir, "data"), BULWARK_DATABASE_URL: url }, mode: "init", clock });
    const user = await app.accounts.users.create({ email: "owner@example.org" });
    const token = await app.accounts.tokens.create(user.id, { name: "deploy bot", scopes: ["accounts.read"], expiresAt: clock.now() + 30 * DAY });
    const preLogin = await app.accounts.sessions.createSession(null);
    clock.advance(27 * DAY); // the pre-login session is long expired; the token expires in three days
    const frozen = new pg.Client({ connectionString: url });
    await frozen.connect();
    await frozen.query("BEGIN");
    await frozen.query("DELETE FROM sessions WHERE id = $1", [preLogin.session.id]);
    let released = false;
    const release = async (): Promise<void> => {
      if (released) return;
      released = true;
      await frozen.query("ROLLBACK").catch(() => {});
      await frozen.end().catch(() => {});
    };
    t.after(release);
    assert.ok(token.info.id);
    return { app, release, url };
  }

  it("attack: one expired session row held by a frozen node's open transaction fails only its own step, after a bounded wait: the token expiry reminder after it is still queued, and later passes run (ASVS 6.4.5, 16.5.2) (was: the whole pass stalled with no bound, and every later pass with it)", { timeout: 60_000 }, async (t) => {
    const clock = new ManualClock(Date.now());
    const { app, release } = await frozenNeighbour(t, clock);
    const maintenance = startMaintenance(app, { intervalMs: 200 });
    try {
      let queued = 0;
      for (let i = 0; i < 40 && queued === 0; i++) {
        await sleep(200);
        queued = (await app.db.db.selectFrom("outbox_messages").select("id").where("kind", "=", "security.api-token-expiring").execute()).length;
      }
      assert.equal(queued, 1, "within 8 s (40 passes' worth) the reminder is queued, whatever one locked row in another table does");
    } finally {
      await release();
      await maintenance.stop();
      await app.close();
    }
  });

  it("attack: with that row held, a graceful shutdown still ends within the supervisor's grace and records server.stop (ASVS 16.5.2, 16.3.3) (was: close() waited for the stalled maintenance pass with no bound)", { timeout: 60_000 }, async (t) => {
    const clock = new ManualClock(Date.now());
    const { app, release, url } = await frozenNeighbour(t, clock);
    const before = await lastSeq(app);
    const running = await runServer(app, { maintenanceIntervalMs: 200 });
    await sleep(600); // a pass has started and waits on the row
    const closing = running.close("deploy");
    const ended = await within(closing, SUPERVISOR_GRACE_MS);
    // Let the stalled statement go, so this test's own clean-up can run.
    await release();
    await closing;
    const database = await openPostgres(url);
    const types = await auditTypesAfter(database, before);
    await database.close();
    assert.notEqual(ended, "timeout", `close() ended within ${SUPERVISOR_GRACE_MS} ms of the SIGTERM a deploy sends; it waited for the stalled maintenance pass`);
    assert.ok(types.includes("server.stop"), `server.stop is recorded (after the start: ${types.join(", ")})`);
  });
});
