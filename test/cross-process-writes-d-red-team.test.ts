// Red-team round "cross-process writes", fourth batch: containment's operator commands (`contain undo`, `contain
// resume`) on one SQLite database while the server works on the same job or on the same accounts. The attacker is the
// ordinary interleaving of an operator's CLI command (its own app and connection on the fixture's file, run in this
// process through bulwarkInProcess) with the server's writes: an administrator's API lock or unlock of one of the job's
// users committing while the undo waits at its BEGIN IMMEDIATE (after it read the job, its plan and the users), and the
// server's runner resuming a job at the same time as an operator's `contain resume` of it (two workers on one job).
// Forced, never raced where the outcome depends on it: the server's transaction holds the write lock while the CLI
// waits (test/helpers/statement-watch.ts busyAt), or another connection holds it until both workers wait behind it.
// Tried: `contain undo JOB` of a finished lock-accounts job, an administrator re-locking one of its users ("keep
// locked") and unlocking another in one transaction that commits after the undo read its plan and before it wrote;
// `contain undo JOB` while the server's runner has applied only part of JOB; `contain resume JOB` while the server's
// runner (actor system) resumes the same job; `users create --email E --role admin` committing between an HTTP
// sign-up's account commit and its link's transaction (the sign-up paused there through its mailer).
// Held: the undo restores only the rows still holding what the job wrote, leaves the administrator's re-lock and
// unlock alone and reports both (`leftAlone`, counts restored/skipped); an undo of a job still being applied is refused
// (exit 2) with nothing written, and the job then finishes whole; two workers on one job apply every batch once, the
// job's counts and change records are not doubled, and the operator's report matches the end state; the CLI's create
// removes the in-flight sign-up (recorded), and the sign-up's link transaction, re-reading the account by id, issues no
// link (ResetMailer.request: not-eligible). Found: nothing.
// Not forced in the time box: `users import` between its validation and write passes (read only: each batch re-reads
// the accounts in its own transaction, apply-batch.ts; a file's non-empty status re-enabling an account an
// administrator disabled is documented behaviour of --on-conflict update, with or without a race).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";
import { lockUser } from "../src/accounts/users/admin-changes.ts";
import { containDeps, createContainJob, resumeJob, runJob } from "../src/contain/index.ts";
import { bulwarkInProcess, fixtureCliEnv } from "./helpers/cli.ts";
import { dbPath, holdWriteLock } from "./helpers/sqlite-lock.ts";
import { CLI_PATIENT, gate, SHORT_BUSY, StatementWatch } from "./helpers/statement-watch.ts";


type Trx = Parameters<Parameters<AuthFixture["app"]["db"]["transaction"]>[0]>[0];


describe("cross-process writes on one SQLite database (d): contain undo and resume beside the server", () => {
  const fx = sharedFixture(() => authFixture({ ...SHORT_BUSY, BULWARK_REGISTRATION: "open" }));
  let hash = "";
  const watch = new StatementWatch();
  before(async () => {
    hash = await fx.app.accounts.passwords.hash("correct horse battery staple 1");
    watch.install();
  });
  after(() => watch.restore());

  const cliEnv = () => ({ ...fixtureCliEnv(fx.app.config.dataDir), ...CLI_PATIENT });

  async function accounts(prefix: string, n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i++) {
      const user = await fx.app.accounts.users.create({ email: `${prefix}-${i}@example.org`, passwordHash: hash, passwordScheme: "argon2id" });
      ids.push(user.id);
    }
    return ids;
  }

  async function lockOf(id: string): Promise<{ lockedAt: number | null; reason: string | null }> {
    const row = await fx.app.db.db.selectFrom("users").select(["locked_at", "locked_reason"]).where("id", "=", id).executeTakeFirstOrThrow();
    return { lockedAt: row.locked_at === null ? null : Number(row.locked_at), reason: row.locked_reason };
  }

  async function countWhere(table: "contain_changes" | "jobs", column: string, value: string): Promise<number> {
    const row = await fx.app.db.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as("n")).where(column as never, "=", value as never).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async function eventsOf(type: string, subject?: string): Promise<Array<Record<string, unknown>>> {
    let q = fx.app.db.db.selectFrom("audit_events").select(["data"]).where("type", "=", type);
    if (subject !== undefined) q = q.where("subject", "=", subject);
    return (await q.orderBy("seq").execute()).map((r) => JSON.parse(String(r.data ?? "{}")) as Record<string, unknown>);
  }

  /** Runs `bulwark ARGS`, lets it read, then has it wait at its first BEGIN IMMEDIATE while `serverChange` commits. */
  async function cliAroundServerChange(args: string[], serverChange: (trx: Trx) => Promise<void>): Promise<{ code: number; stdout: string; stderr: string }> {
    const change = gate();
    const server = fx.app.db.transaction(async (trx) => {
      await change.wait;
      await serverChange(trx);
    });
    const cliWaits = watch.busyAt("begin immediate");
    const cli = bulwarkInProcess(args, cliEnv());
    await cliWaits;
    change.open();
    await server;
    return cli;
  }

  it("attack: `contain undo JOB` reads the finished lock job, then an administrator re-locks one of its users (\"keep locked\") and unlocks another over the API before the undo writes — the undo restores only the untouched user, leaves both administrator's decisions standing, and reports them as left alone (ASVS 16.2.1, 16.5.3)", async () => {
    const [kept, freed, plain] = await accounts("undo-vs-admin", 3) as [string, string, string];
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { ids: [kept, freed, plain] }, actor: "test", incidentId: null, options: { lockReason: "inc-77 suspected takeover" } });
    assert.equal((await runJob(deps, job.id)).status, "done");
    const adminReason = "laptop stolen: keep locked until the owner calls";
    const r = await cliAroundServerChange(["contain", "undo", job.id, "--json"], async (trx) => {
      // What POST /api/v1/users/:id/lock and …/unlock write, in the server's transaction.
      assert.equal(await lockUser(trx, kept, adminReason, fx.clock.now()), "relocked");
      await fx.app.audit.appendIn(trx, { type: "user.locked", actor: "usr_admin", subject: kept, data: { reason: adminReason, relocked: true } });
      await trx.updateTable("users").set({ locked_at: null, locked_reason: null, updated_at: fx.clock.now() }).where("id", "=", freed).execute();
      await fx.app.audit.appendIn(trx, { type: "user.unlocked", actor: "usr_admin", subject: freed, data: { reason: "inc-77 suspected takeover" } });
    });
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { status: string; counts: Record<string, Record<string, number>>; leftAlone: Array<{ userId: string }> };
    assert.equal(report.status, "done");
    assert.deepEqual(await lockOf(kept).then((l) => l.reason), adminReason, "the undo lifted the administrator's \"keep locked\" taken after the job");
    assert.equal((await lockOf(plain)).lockedAt, null, "the untouched user is not unlocked by the undo");
    assert.equal((await lockOf(freed)).lockedAt, null);
    const left = report.leftAlone.map((l) => l.userId).sort();
    assert.ok(left.includes(kept), `the undo's report does not name the re-locked user it left alone: ${r.stdout}`);
    assert.ok(left.includes(freed), `the undo's report does not name the user an administrator unlocked meanwhile: ${r.stdout}`);
    assert.equal(report.counts["lock-accounts"]?.["restored"], 1, `the undo reports ${JSON.stringify(report.counts)}: only one lock was really lifted by it`);
    assert.equal((report.counts["lock-accounts"]?.["restored"] ?? 0) + (report.counts["lock-accounts"]?.["skipped"] ?? 0), 3, `every recorded change is accounted for: ${JSON.stringify(report.counts)}`);
    // The log: the undo's own unlock of the re-locked user would be a second user.unlocked by the undo.
    const undoUnlocks = (await eventsOf("user.unlocked", kept)).filter((e) => e["undoOf"] !== undefined || e["jobId"] !== undefined);
    assert.equal(undoUnlocks.length, 0, `an undo unlock of the re-locked user is in the log: ${JSON.stringify(undoUnlocks)}`);
  });

  it("attack: `contain undo JOB` while the server's runner has applied only part of JOB (between its batches), which it then resumes — the undo is refused (exit 2) with no undo job created, and the job then finishes whole, every user locked (ASVS 16.5.3)", async () => {
    const ids = await accounts("undo-mid-job", 4);
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { ids }, actor: "test", incidentId: null, batchSize: 2, options: { lockReason: "inc-78" } });
    // The server's runner applied the first batch and was stopped (as if killed): the job stays under way.
    const partial = await runJob(deps, job.id, { stopAfterBatches: 1, worker: "server" });
    assert.equal(partial.done, 2);
    const undoJobsBefore = await countWhere("jobs", "kind", "contain-undo");
    // Between the runner's batches (sequential, not raced: a runner that finished first would make the undo legitimate).
    const r = await bulwarkInProcess(["contain", "undo", job.id, "--json"], cliEnv());
    const resumed = await resumeJob(deps, job.id, { actor: "system", worker: "server" });
    assert.equal(r.code, 2, `an undo of a job still being applied was not refused: exit ${r.code} ${r.stdout} ${r.stderr}`);
    assert.match(r.stderr, /cannot be undone/);
    assert.equal(await countWhere("jobs", "kind", "contain-undo"), undoJobsBefore, "an undo job was created for a job still under way");
    assert.equal(resumed.status, "done");
    for (const id of ids) assert.notEqual((await lockOf(id)).lockedAt, null, `user ${id} is not locked after the job finished`);
    assert.equal(await countWhere("contain_changes", "job_id", job.id), 4);
  });

  it("attack: `bulwark contain resume JOB` while the server's runner resumes the same job (two workers on one job) — every batch is applied once, the change records and counts are not doubled, and the operator's report says what the job did (ASVS 16.5.3, 16.3.1)", async () => {
    const ids = await accounts("two-workers", 6);
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["lock-accounts"], scope: { ids }, actor: "test", incidentId: null, batchSize: 2, options: { lockReason: "inc-79" } });
    await runJob(deps, job.id, { stopAfterBatches: 1, worker: "server" });
    // Another connection holds the write lock until both workers are under way and waiting behind it.
    const held = holdWriteLock(dbPath(fx));
    let released = false;
    try {
      const cliWaits = watch.busyAt("begin immediate");
      const cli = bulwarkInProcess(["contain", "resume", job.id, "--json"], cliEnv());
      await cliWaits;
      const serverWaits = watch.busyAt("begin immediate");
      const server = resumeJob(deps, job.id, { actor: "system", worker: "server", busyRetryMs: 20_000 });
      await serverWaits;
      held.release();
      released = true;
      const [r, end] = await Promise.all([cli, server]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(end.status, "done");
      const report = JSON.parse(r.stdout) as { status: string; done: number; total: number; counts: Record<string, Record<string, number>> };
      const stored = await deps.jobs.get(job.id);
      assert.equal(stored.done, 6, `the job's done count is ${stored.done} of 6`);
      assert.equal(await countWhere("contain_changes", "job_id", job.id), 6, "change records written twice (a batch applied by both workers)");
      const batches = await eventsOf("contain.job.batch", job.id);
      assert.equal(batches.length, 3, `${batches.length} batch events for 3 batches: ${JSON.stringify(batches.map((b) => b["worker"]))}`);
      assert.equal(report.counts["lock-accounts"]?.["users"], 6, `the operator's report counts ${JSON.stringify(report.counts)} for 6 users locked once`);
      assert.equal(report.status, "done");
      assert.equal(report.done, 6);
      for (const id of ids) assert.equal((await lockOf(id)).reason, "inc-79");
    } finally {
      if (!released) held.release();
    }
  });
  it("attack: `bulwark users create --email E --role admin` runs while a sign-up of E over HTTP is in flight (its account committed, its link not yet issued) — the administrator's account takes E, the sign-up is removed and recorded, and the sign-up's link is issued to nobody: no link over the new administrator's account reaches the outbox (ASVS 6.4.1, 6.3.7, 16.3.1)", async () => {
    const email = "incoming-admin@example.org";
    const mailer = fx.app.accounts.resetMailer;
    const original = mailer.request;
    const reached = gate();
    const proceed = gate();
    // The sign-up pauses between its account's commit and its link's transaction: the window another process writes in.
    mailer.request = async function (this: unknown, ...args: Parameters<typeof original>) {
      if (args[0]?.email === email) {
        reached.open();
        await proceed.wait;
      }
      return original.apply(this, args);
    } as typeof original;
    try {
      const signUp = fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email } });
      await reached.wait;
      const squat = await fx.app.accounts.users.findByIdentifier(email);
      assert.ok(squat, "the sign-up's account was not committed before its link");
      const r = await bulwarkInProcess(["users", "create", "--email", email, "--role", "admin", "--generate-password", "--json"], cliEnv());
      proceed.open();
      const res = await signUp;
      assert.equal(r.code, 0, r.stderr);
      assert.equal(res.statusCode, 202, res.body);
      const admin = await fx.app.accounts.users.findByIdentifier(email);
      assert.ok(admin && admin.id !== squat.id, "the administrator's account does not hold E");
      assert.deepEqual(await fx.app.accounts.roles.rolesOf(admin.id), ["admin"]);
      assert.equal(await fx.app.accounts.users.getById(squat.id), null, "the sign-up's account survived beside the administrator's");
      assert.equal((await eventsOf("user.sign-up-removed", squat.id)).length, 1, "the removal of the sign-up is not recorded");
      const links = await fx.app.db.db.selectFrom("password_reset_tokens").select(["id"]).where("user_id", "in", [admin.id, squat.id]).execute();
      assert.equal(links.length, 0, `the in-flight sign-up issued ${links.length} link(s) after the administrator's account took its address`);
      // Link mails only (the grant's own notice to the new administrator is expected): keyed account.register:… / account.reset:….
    const mails = (await fx.app.db.db.selectFrom("outbox_messages").select(["idempotency_key", "account_id"]).where("account_id", "in", [admin.id, squat.id]).execute())
      .filter((m) => /^account\.(register|reset):/.test(String(m.idempotency_key)));
      assert.equal(mails.length, 0, `mail queued for the address after the administrator's account took it: ${JSON.stringify(mails)}`);
    } finally {
      mailer.request = original;
      proceed.open();
    }
  });
});
