// Red team, round "new code twenty-eight": this session's new code. Attackers: a DBA's (or a frozen node's) open
// transaction holding a row Bulwark needs past PostgreSQL's lock bound (the job row, the current data key, the audit
// head), a second runner of the same job or import racing the first, and an operator ending a job while its worker waits.
// Tried: the containment engine's busy retry (whileBusy, 2c489004) against a job another worker finished meanwhile, a
// claimed stage's batch failing busy once (counts exact), a job cancelled while its prepare waits to be retried, the job
// row itself held past the bound (the row every batch's commit locks), and rotate-keys' prepare behind a held current
// data key (two keys made?); `users import`'s completion (446ef82f) when a failed job with nothing left to write is
// resumed by two runs at once (completion twice? a job resurrected?); BULWARK_DB_LOCK_TIMEOUT_SECONDS (fb691e7e) on every
// pooled connection after the migrator's SET/RESET, and values the parser must refuse. Read and not tested: the
// FactorProof.release / giveBackAttempt paths (8b791451, 8ecda04f): only a proof (a right code) has release, wrong,
// replayed and throttled codes have none, a ticket is released at most once (settled), and the step-up, reauth and reset
// rotations take the user's turn (userTurn) before anything else, so a success cannot land between a right code's
// begin and its release to let the release's streak step undo another request's failure in practice; the cases the
// commit itself pins (test/step-up-busy-attempt.test.ts) are not repeated.
// Held: every attack below (kept as pins). Found: nothing in this round.
// Loopback and temp dirs only; the PostgreSQL suites are skipped (loudly) when PostgreSQL is not installed.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { sql } from "kysely";
import { loadConfig } from "../src/app/config.ts";
import { containDeps, createContainJob, runJob, runStages, type ClaimedStage, type SequentialStage } from "../src/contain/index.ts";
import { bulwark, fixtureCliEnv } from "./helpers/cli.ts";
import { eventData, lockTimeoutError, scratchContainFixtures, seedContainUsers } from "./helpers/contain-fixture.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { pgSites, until, waiting, type PgSite } from "./helpers/pg-site.ts";

const NOW = Date.UTC(2026, 11, 6, 12);
const MASTER = testMasterKey("new-code-twentyeight-red-team");
// Every PostgreSQL attack waits out the bound once: a 2 s bound for the file's sites and CLI runs.
const { unavailable, site, lockBoundMs, lockEnv } = pgSites("nc28", MASTER, { lockTimeoutSeconds: 2 });
const skip = unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {};
/** How long the DBA holds a row: past the bound (the first try fails busy), well within the two-minute retry budget. */
const HOLD_PAST_BOUND_MS = lockBoundMs + 1_500;

/** An error as node-postgres raises it for a wait past lock_timeout. */

describe("the containment engine's busy retry against a second worker and an operator (unit, SQLite)", () => {
  const { open, job: jobOf } = scratchContainFixtures("bulwark-nc28-", NOW);

  it("attack: a second worker finishes the job (done) while the first waits to retry a batch that failed busy — the first stops, applies nothing more, records no failure and leaves the job done (ASVS 16.5.3, 16.3.1)", async () => {
    const fx = await open();
    try {
      const id = await jobOf(fx);
      let tries = 0;
      let applied = 0;
      const stage: SequentialStage = {
        name: "flaky",
        async step() {
          if (++tries === 1) {
            // The other worker commits the last batch and completes the job during this worker's backoff.
            setTimeout(() => void fx.database.db.updateTable("jobs").set({ status: "done", done: 1, finished_at: NOW }).where("id", "=", id).execute(), 30);
            throw lockTimeoutError();
          }
          applied++;
          return { counts: { "flaky.items": 1 }, processed: 1, next: null };
        },
      };
      const job = await runStages(fx, id, [stage], { busyRetryMs: 30_000 });
      assert.equal(job.status, "done", "the job stays done");
      assert.equal(tries, 1, `no try after another worker finished the job (${tries} tries)`);
      assert.equal(applied, 0, "nothing applied by the retrying worker");
      assert.equal((await eventData(fx, id, "contain.job.failed")).length, 0, "no failure recorded over a finished job");
      assert.equal((await eventData(fx, id, "contain.job.batch")).length, 0, "no batch recorded by the retrying worker");
      assert.equal((await fx.jobs.get(id)).error, null);
    } finally {
      await fx.database.close();
    }
  });

  it("attack: a claimed stage's batch fails busy twice before it commits — its claim rolled back each time, the batch applied and recorded once, counts and done exact (ASVS 16.5.3, 16.4.2)", async () => {
    const fx = await open();
    try {
      const id = await jobOf(fx, 3);
      const runs = new Map<number, number>();
      const stage: ClaimedStage = {
        name: "claimed",
        batches: 3,
        async claim(_trx, candidates) {
          return candidates[0] ?? null;
        },
        async run(_trx, batch) {
          const seen = (runs.get(batch) ?? 0) + 1;
          runs.set(batch, seen);
          if (batch === 1 && seen <= 2) throw lockTimeoutError();
          return { counts: { "claimed.items": 1 }, processed: 1, audit: { batch } };
        },
      };
      const job = await runStages(fx, id, [stage], { busyRetryMs: 30_000 });
      assert.equal(job.status, "done");
      assert.deepEqual([...runs.entries()].sort(), [[0, 1], [1, 3], [2, 1]], "batch 1 tried three times, the others once");
      assert.equal(job.done, 3, "done counts each batch once");
      assert.deepEqual(job.counts, { "claimed.items": 3 }, "counts exact across the retries");
      const batches = (await eventData(fx, id, "contain.job.batch")).map((e) => e["batch"]);
      assert.deepEqual([...batches].sort(), [0, 1, 2], "one contain.job.batch per batch, none per try");
      assert.equal((await eventData(fx, id, "contain.job.failed")).length, 0);
      assert.equal((await fx.audit.verify()).ok, true);
    } finally {
      await fx.database.close();
    }
  });

  it("attack: an operator cancels the job while its stage's prepare (rotate-keys' key) waits to be retried after a busy failure — the prepare is not run again, nothing is recorded as prepared, no step runs and the job stays cancelled (ASVS 16.5.3)", async () => {
    const fx = await open();
    try {
      const id = await jobOf(fx);
      let prepares = 0;
      let steps = 0;
      const stage: SequentialStage = {
        name: "keyed",
        async prepare() {
          if (++prepares === 1) {
            setTimeout(() => void fx.database.db.updateTable("jobs").set({ status: "cancelled", finished_at: NOW }).where("id", "=", id).execute(), 30);
            throw lockTimeoutError();
          }
          return { made: `key_${prepares}` };
        },
        async step() {
          steps++;
          return { counts: {}, processed: 1, next: null };
        },
      };
      const job = await runStages(fx, id, [stage], { busyRetryMs: 30_000 });
      assert.equal(job.status, "cancelled", "the operator's cancel stands");
      assert.equal(prepares, 1, `the prepare was run again after the cancel (${prepares} runs): a second key made for a cancelled job`);
      assert.equal(steps, 0, "no step after the cancel");
      assert.equal((await eventData(fx, id, "contain.job.prepared")).length, 0);
      assert.equal((await eventData(fx, id, "contain.job.failed")).length, 0, "a cancel is not a failure");
    } finally {
      await fx.database.close();
    }
  });
});

describe("BULWARK_DB_LOCK_TIMEOUT_SECONDS read (no database)", () => {
  it("attack: a value with a sign, spaces inside, a unit, a fraction or non-ASCII digits (an operator's typo or a copied template) — refused by name, never read as some other bound (ASVS 13.1.1, 16.5.3)", () => {
    for (const value of ["+5", "5 0", "5ms", "5.0", "٥", "５", "00", "-0", "1_0", "Infinity", "NaN"]) {
      assert.throws(() => loadConfig({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: value }), /BULWARK_DB_LOCK_TIMEOUT_SECONDS/, `${JSON.stringify(value)} is refused naming the variable`);
    }
    // Leading zeros are still a whole number of seconds: 010 is ten, not octal eight.
    assert.equal(loadConfig({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: "010" }).dbLockTimeoutMs, 10_000);
  });
});

describe("the busy retry, the import's completion and the lock bound on PostgreSQL", skip, () => {
  it("attack: a DBA's open transaction holds the job row itself (the row every batch commits under) past the bound while a lock-accounts job runs — the batch is retried, the job finishes done, each account locked once, one contain.job.batch per batch (ASVS 16.5.3, 16.4.2)", async () => {
    const { fx, dba, close } = await site();
    try {
      const deps = containDeps(fx.app);
      const ids = await seedContainUsers(deps, fx.clock.now(), 6);
      const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { all: true }, actor: "cli:alice", batchSize: 3 });
      await dba.query("BEGIN");
      const held = await dba.query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE", [job.id]);
      assert.equal(held.rowCount, 1, "control: the DBA holds the job row");
      const run = runJob(deps, job.id, { worker: "cli:1" }).then((j) => j, (error: unknown) => error as Error);
      assert.ok(await until(async () => (await waiting(dba)) > 0, 5000), "control: the batch waits on the held job row");
      await new Promise((r) => setTimeout(r, HOLD_PAST_BOUND_MS));
      await dba.query("ROLLBACK");
      const ended = await run;
      assert.ok(!(ended instanceof Error), `the job failed behind a job row held a little past the bound: ${(ended as Error).message}`);
      assert.equal(ended.status, "done");
      assert.equal(ended.done, ids.length);
      const changes = await fx.app.db.db.selectFrom("contain_changes").select("user_id").where("job_id", "=", job.id).execute();
      assert.equal(changes.length, ids.length, "each account changed once");
      const batches = await fx.app.db.db.selectFrom("audit_events").select("data").where("subject", "=", job.id).where("type", "=", "contain.job.batch").execute();
      assert.equal(batches.length, 2, "one contain.job.batch per applied batch");
      const report = await fx.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report));
    } finally {
      await close();
    }
  });

  it("attack: a DBA's open transaction holds the current data key's row past the bound as a rotate-keys job prepares its new key — the prepare is retried and makes exactly one new key, recorded once in contain.job.prepared, and the job finishes with every value under it (ASVS 11.6.1, 16.5.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const deps = containDeps(fx.app);
      const keysBefore = await fx.app.db.db.selectFrom("keyring_keys").select(["id", "status"]).where("purpose", "=", "data").execute();
      const job = await createContainJob(deps, { levers: ["rotate-keys"], scope: { all: true }, actor: "cli:alice" });
      await dba.query("BEGIN");
      const held = await dba.query("SELECT id FROM keyring_keys WHERE purpose = 'data' AND status = 'current' FOR UPDATE");
      assert.equal(held.rowCount, 1, "control: the DBA holds the current data key");
      const run = runJob(deps, job.id, { worker: "cli:1" }).then((j) => j, (error: unknown) => error as Error);
      assert.ok(await until(async () => (await waiting(dba)) > 0, 5000), "control: the prepare waits on the held key row");
      await new Promise((r) => setTimeout(r, HOLD_PAST_BOUND_MS));
      await dba.query("ROLLBACK");
      const ended = await run;
      assert.ok(!(ended instanceof Error), `the job failed: ${(ended as Error).message}`);
      assert.equal(ended.status, "done");
      const keysAfter = await fx.app.db.db.selectFrom("keyring_keys").select(["id", "status"]).where("purpose", "=", "data").execute();
      assert.equal(keysAfter.length, keysBefore.length + 1, `exactly one data key made by the retried prepare (before ${keysBefore.length}, after ${keysAfter.length})`);
      assert.equal(keysAfter.filter((k) => k.status === "current").length, 1, "one current data key");
      const prepared = await fx.app.db.db.selectFrom("audit_events").select("data").where("subject", "=", job.id).where("type", "=", "contain.job.prepared").execute();
      assert.equal(prepared.length, 1, "the preparation recorded once");
      const made = (JSON.parse(prepared[0]!.data) as { newDataKey?: string }).newDataKey;
      assert.equal(keysAfter.find((k) => k.status === "current")?.id, made, "the recorded key is the current one");
      const report = await fx.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report));
    } finally {
      await close();
    }
  });

  it("attack: a failed import job whose rows were all written is resumed by two runs of the same file at once — one completion: the job done, users.import.completed recorded once, no row written twice, neither run resurrecting the job the other ended (ASVS 16.3.1, 16.5.2)", async () => {
    const s: PgSite = await site();
    const files = mkdtempSync(join(tmpdir(), "nc28-import-"));
    try {
      const file = join(files, "legacy.csv");
      writeFileSync(file, ["email,display_name", "twice-a@example.org,A", "twice-b@example.org,B", "twice-c@example.org,C"].join("\n") + "\n");
      const env = { ...fixtureCliEnv(s.fx.app.config.dataDir, { url: s.url, masterKey: MASTER }), ...lockEnv };
      // The first run writes every row, then its completion is refused (a trigger stands in for the store refusing it).
      await s.dba.query("CREATE FUNCTION nc28_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$");
      await s.dba.query("CREATE TRIGGER nc28_refuse BEFORE UPDATE ON jobs FOR EACH ROW WHEN (NEW.status = 'done') EXECUTE FUNCTION nc28_refuse()");
      const first = await bulwark(["users", "import", file, "--json"], { env, limitMs: 60_000 });
      assert.notEqual(first.code, 0, `control: the first run's completion was refused: ${first.stdout}${first.stderr}`);
      await s.dba.query("DROP TRIGGER nc28_refuse ON jobs");
      const rows = (await s.dba.query<{ id: string; cursor: string | null; status: string }>("SELECT id, cursor, status FROM jobs WHERE kind = 'users-import'")).rows;
      assert.equal(rows.length, 1, `control: one import job (${JSON.stringify(rows)})`);
      // What a run that died after its last batch leaves: failed, every row written (the state 446ef82f resumes).
      await s.dba.query("UPDATE jobs SET status = 'failed', error = 'died after its last batch', finished_at = updated_at WHERE id = $1", [rows[0]!.id]);
      const [a, b] = await Promise.all([
        bulwark(["users", "import", file, "--json"], { env, limitMs: 60_000 }),
        bulwark(["users", "import", file, "--json"], { env, limitMs: 60_000 }),
      ]);
      const job = (await s.dba.query<{ status: string; done: string }>("SELECT status, done FROM jobs WHERE id = $1", [rows[0]!.id])).rows[0];
      const completed = (await s.dba.query<{ subject: string }>("SELECT subject FROM audit_events WHERE type = 'users.import.completed'")).rows;
      const users = Number((await s.dba.query<{ n: string }>("SELECT count(*) AS n FROM users WHERE email LIKE 'twice-%'")).rows[0]?.n);
      const jobs = Number((await s.dba.query<{ n: string }>("SELECT count(*) AS n FROM jobs WHERE kind = 'users-import'")).rows[0]?.n);
      const runs = `runs: ${a.code} ${a.stderr.trim().slice(0, 200)} | ${b.code} ${b.stderr.trim().slice(0, 200)}`;
      assert.equal(job?.status, "done", `the resumed job ends done (${runs})`);
      assert.equal(completed.length, 1, `users.import.completed recorded ${completed.length} times (${runs})`);
      assert.equal(completed[0]?.subject, rows[0]!.id, "the completion names the resumed job");
      assert.equal(users, 3, "each row imported once");
      assert.equal(jobs, 1, `no new job started by either run (${runs})`);
      assert.ok(a.code === 0 || b.code === 0, `at least one run reports the completion (${runs})`);
      const report = await s.fx.app.audit.verify();
      assert.equal(report.ok, true, JSON.stringify(report));
    } finally {
      rmSync(files, { recursive: true, force: true });
      await s.close();
    }
  });

  it("attack: a deployment's shorter bound (2 s) outlives the migrator's SET lock_timeout = 0 / RESET — every pooled connection, the migration's included, waits at most the configured bound, not for ever (ASVS 16.5.3, 13.1.1)", async () => {
    const { fx, close } = await site();
    try {
      // Ten transactions at once: each holds its own pooled connection, so every connection of the pool answers.
      const settings = await Promise.all(Array.from({ length: 10 }, () => fx.app.db.transaction(async (trx) => {
        const r = await sql<{ lock: string; pid: number }>`SELECT current_setting('lock_timeout') AS lock, pg_backend_pid() AS pid, pg_sleep(0.3)`.execute(trx);
        return r.rows[0]!;
      })));
      assert.equal(new Set(settings.map((s) => s.pid)).size, 10, "control: ten distinct connections answered");
      assert.deepEqual([...new Set(settings.map((s) => s.lock))], ["2s"], `every connection's bound: ${JSON.stringify(settings)}`);
    } finally {
      await close();
    }
  });
});
