// Containment benchmark (issue 5): on N users with 2 sessions and 1 API token each (BULWARK_BENCH_USERS,
// default 1,000,000), for SQLite and PostgreSQL:
//  - the time of expire-passwords + revoke-sessions + revoke-tokens as one job (scope recorded, batches,
//    checkpoints, undo records, audit, a notice mail to each owner) ÷ the time of the equivalent statements run
//    directly on an identical copy of the database in the same run (the same mails queued by one INSERT … SELECT,
//    then the UPDATE/DELETEs) (aim ≤ 1.5);
//  - the time from job start until a request with an in-scope session is refused: a real session, checked with
//    validate() in a separate thread on its own connection, as a server would (aim < 1 s at any N).
import { Worker } from "node:worker_threads";
import { sql } from "kysely";
import { openApp } from "../src/app/open-app.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import type { NewMessage } from "../src/notify/outbox.ts";
import { securityMessages } from "../src/notify/security-notices.ts";
import type { Database } from "../src/store/database.ts";
import { eachDialect, line, now, openTarget, seconds, seededTwins, settle, type Cluster, type Target } from "./lib.ts";

const USERS = Number(process.env["BULWARK_BENCH_USERS"] ?? 1_000_000);
// Users per batch (default: the job default); a knob to see where the per-batch overhead stops mattering.
const BATCH = process.env["BULWARK_BENCH_BATCH"] ? Number(process.env["BULWARK_BENCH_BATCH"]) : undefined;
const LEVERS = ["expire-passwords", "revoke-sessions", "revoke-tokens"];
const ENV = { BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_LOG_LEVEL: "silent" };

const src = (path: string): string => new URL(`../src/${path}`, import.meta.url).href;

/**
 * A thread that plays the web server: its own connection, a real session token, validate() in a loop. It says
 * "ready" once the token is valid, and then the wall-clock time of the first refusal.
 */
function validator(target: Target, token: string): { ready: Promise<void>; refusedAt: Promise<{ at: number; reason: string; checks: number }>; worker: Worker } {
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    (async () => {
      const { openPostgres, openSQLite } = await import(${JSON.stringify(src("store/database.ts"))});
      const { createSessionManager } = await import(${JSON.stringify(src("accounts/sessions/session-manager.ts"))});
      const { systemClock } = await import(${JSON.stringify(src("lib/clock.ts"))});
      const { systemRandom } = await import(${JSON.stringify(src("lib/random.ts"))});
      const t = workerData.target;
      const database = t.sqlitePath ? openSQLite(t.sqlitePath, { create: false }) : await openPostgres(t.databaseURL);
      const sessions = createSessionManager({ database, clock: systemClock, random: systemRandom });
      let checks = 0;
      for (;;) {
        const r = await sessions.validate(workerData.token);
        checks++;
        if (checks === 1) { if (!r.valid) throw new Error("the session is not valid before the job: " + r.reason); parentPort.postMessage({ ready: true }); }
        else if (!r.valid) { parentPort.postMessage({ at: Date.now(), reason: r.reason, checks }); break; }
        await new Promise((res) => setTimeout(res, 1));
      }
      await database.close();
    })().catch((e) => parentPort.postMessage({ error: String(e && e.stack || e) }));`;
  const worker = new Worker(code, { eval: true, workerData: { target, token } });
  let readyResolve!: () => void;
  const ready = new Promise<void>((r) => (readyResolve = r));
  const refusedAt = new Promise<{ at: number; reason: string; checks: number }>((resolve, reject) => {
    worker.on("message", (m: { ready?: true; at?: number; reason?: string; checks?: number; error?: string }) => {
      if (m.error) reject(new Error(m.error));
      else if (m.ready) readyResolve();
      else resolve({ at: m.at as number, reason: m.reason as string, checks: m.checks as number });
    });
    worker.on("error", reject);
  });
  return { ready, refusedAt, worker };
}

/**
 * SQLite: a thread that plays a login's write, on its own connection — BEGIN IMMEDIATE (the write lock, as every
 * write transaction takes it), ROLLBACK — every 5 ms until stopped, and reports the longest it waited for the lock:
 * the longest any login or session write waited because of the job.
 */
function writeProbe(sqlitePath: string): { stop(): Promise<{ longestMs: number; probes: number }> } {
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    const { DatabaseSync } = require("node:sqlite");
    const db = new DatabaseSync(workerData.path);
    db.exec("PRAGMA busy_timeout = 600000");
    let stop = false, longest = 0, probes = 0;
    parentPort.on("message", () => { stop = true; });
    (async () => {
      while (!stop) {
        const t = performance.now();
        db.exec("BEGIN IMMEDIATE");
        longest = Math.max(longest, performance.now() - t);
        db.exec("ROLLBACK");
        probes++;
        await new Promise((r) => setTimeout(r, 5));
      }
      db.close();
      parentPort.postMessage({ longestMs: longest, probes });
    })();`;
  const worker = new Worker(code, { eval: true, workerData: { path: sqlitePath } });
  const result = new Promise<{ longestMs: number; probes: number }>((resolve, reject) => {
    worker.on("message", resolve);
    worker.on("error", reject);
  });
  return {
    async stop() {
      worker.postMessage("stop");
      const r = await result;
      await worker.terminate();
      return r;
    },
  };
}

/**
 * The mail expire-passwords queues for one account (its text, subject and kind, rendered by the notices' own code),
 * for the direct statements to queue the same bytes: since 5 December 2026 the lever tells each owner, and a reference
 * without those rows compared the job's 200,000 notices against nothing (the ratio read 6.2 for work the reference did
 * not do).
 */
function expiryNotice(): NewMessage {
  const [message] = securityMessages({ eventId: `job_${"b".repeat(26)}.usr_${"b".repeat(26)}`, to: "someone@example.org", accountId: `usr_${"b".repeat(26)}`, at: Date.now(), event: { type: "password-expired" } }, { appName: "Bulwark" });
  if (!message) throw new Error("bench: no expiry notice rendered");
  return message;
}

/**
 * The direct statements: what a DBA would type to do the same by hand — the owners told (one queued mail each, the
 * lever's own text), passwords expired, sessions deleted, tokens revoked, in one transaction.
 */
async function direct(database: Database): Promise<number> {
  const at = Date.now();
  const notice = expiryNotice();
  const t = now();
  await database.transaction(async (trx) => {
    await sql`INSERT INTO outbox_messages (id, idempotency_key, to_address, subject, body_text, kind, priority, status, attempts, next_attempt_at, created_at, account_id)
      SELECT 'msg_' || id, ${notice.kind + ":"} || id, email, ${notice.subject}, ${notice.text}, ${notice.kind}, ${notice.priority ?? 0}, 'queued', 0, ${at}, ${at}, id
      FROM users WHERE password_must_change = 0 AND password_hash IS NOT NULL ORDER BY id`.execute(trx);
    await trx.updateTable("users").set({ password_must_change: 1 }).where("password_must_change", "=", 0).where("password_hash", "is not", null).execute();
    await trx.deleteFrom("sessions").where("created_at", "<", at).execute();
    await trx.updateTable("api_tokens").set({ revoked_at: at }).where("revoked_at", "is", null).where("created_at", "<", at).execute();
  });
  return seconds(t);
}

async function run(dialect: "sqlite" | "postgres", dir: string, cluster: Cluster): Promise<void> {
  const { env, a, b } = await seededTwins(dialect, dir, cluster, ENV, { users: USERS, sessionsPerUser: 2, tokensPerUser: 1 });

  // Each measured part starts with no dirty page of the parts before it left to write (the seed, the copy, the direct
  // statements' gigabyte of outbox rows at a million users): otherwise whichever runs second pays for the first's
  // writeback, and the ratio measured the disk's queue.
  settle();
  const copy = await openTarget(b);
  const directSecs = await direct(copy);
  await copy.close();
  settle();
  line(`[${dialect}] direct UPDATE/DELETE statements`, `${directSecs.toFixed(2)} s`, "reference");

  const app = await openApp({ env, actor: "bench" });
  const user = await app.db.db.selectFrom("users").select("id").orderBy("id").limit(1).executeTakeFirstOrThrow();
  const { token } = await app.accounts.sessions.createSession(user.id, { aal: 1 });
  const probe = validator(a, token);
  await probe.ready;
  // The stamp refuses sessions created strictly before the job's time: start it in a later millisecond.
  await new Promise((r) => setTimeout(r, 5));
  const deps = containDeps(app);
  const writes = "sqlitePath" in a ? writeProbe(a.sqlitePath) : null;
  const startedAt = Date.now();
  const t = now();
  let job: Awaited<ReturnType<typeof createContainJob>>;
  let createSecs: number;
  let done: Awaited<ReturnType<typeof runJob>>;
  let jobSecs: number;
  let refused: Awaited<typeof probe.refusedAt>;
  try {
    job = await createContainJob(deps, { levers: LEVERS, scope: { all: true }, actor: "bench", ...(BATCH ? { batchSize: BATCH } : {}) });
    createSecs = seconds(t);
    done = await runJob(deps, job.id);
    jobSecs = seconds(t);
    refused = await probe.refusedAt;
  } finally {
    // A refused job (say, a batch size out of range) must not leave the probe threads holding the process open.
    await probe.worker.terminate();
  }
  const waited = await writes?.stop();
  if (done.status !== "done") throw new Error(`job ended ${done.status}`);
  line(`[${dialect}] contain ${LEVERS.join(" + ")}`, `${jobSecs.toFixed(2)} s`, `${done.done} users, counts ${JSON.stringify(done.counts)}`);
  line(`[${dialect}]   of which: create (stamps, scope)`, `${createSecs.toFixed(2)} s`, `batches of ${job.spec.batchSize}`);
  line(`[${dialect}] job ÷ direct statements`, (jobSecs / directSecs).toFixed(2), "aim <= 1.5");
  if (waited) line(`[${dialect}]   longest wait for the write lock`, `${waited.longestMs.toFixed(0)} ms`, `a writer probing every 5 ms (${waited.probes} probes): what a login waits at worst`);
  // The longest gap between consecutive committed events of the job: a step's transaction and what ran before it
  // outside any (revoke-sessions counts what it ends before its step).
  const events = await app.db.db.selectFrom("audit_events").select(["at", "type", "data"]).where("subject", "=", job.id)
    .where("type", "in", ["contain.job.created", "contain.job.batch"]).orderBy("seq").execute();
  let longest = { ms: 0, stage: "" };
  for (let i = 1; i < events.length; i++) {
    const ms = Number(events[i]!.at) - Number(events[i - 1]!.at);
    if (ms > longest.ms) longest = { ms, stage: (JSON.parse(events[i]!.data) as { stage: string }).stage };
  }
  line(`[${dialect}]   longest step (between two events)`, `${longest.ms} ms`, longest.stage);
  line(`[${dialect}] job start → session refused`, `${refused.at - startedAt} ms`, `reason ${refused.reason}; aim < 1000 ms`);
  await app.close();
}

export default async function bench(): Promise<void> {
  line("users", USERS.toLocaleString("en-US"), "2 sessions and 1 API token each");
  // PostgreSQL's default shared_buffers (128 MB) is meant for small machines; a deployment holding a million accounts
  // sizes it to its memory. Both the direct statements and the job run on this one cluster.
  await eachDialect("contain", run, { shared_buffers: process.env["BULWARK_BENCH_PG_SHARED_BUFFERS"] ?? "1GB" });
}
