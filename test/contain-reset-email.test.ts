// invalidate-passwords through the real reset mailer and outbox, on SQLite and PostgreSQL: an address the
// outbox refuses (one the user store accepts, such as a non-ASCII local part or an intranet domain) must not
// stop the containment of anyone, and must leave a trace an operator can act on; any other failure of the
// notifier still fails the batch as a whole.
import assert from "node:assert/strict";
import { it } from "node:test";
import { sql } from "kysely";
import { lockAccountLinks } from "../src/accounts/password-reset/link-lock.ts";
import { currentEpoch } from "../src/accounts/sessions/revocation.ts";
import { createResetMailer } from "../src/accounts/password-reset/reset-mail.ts";
import { createPasswordResetService } from "../src/accounts/password-reset/reset-service.ts";
import { createUserStore } from "../src/accounts/users/user-store.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { Outbox } from "../src/notify/outbox.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { createContainJob, dryRunContain, jobView, runJob, type ContainDeps, type ResetNotifier } from "../src/contain/index.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const NOW = Date.UTC(2026, 10, 20);
// The user store takes both; the outbox sends only plain ASCII addresses with a dotted domain.
const REFUSED = ["jörg@example.org", "ops@intranet"];
const EMAILS = ["a@example.org", "b@example.org", REFUSED[0] as string, "c@example.org", "d@example.org", REFUSED[1] as string, "e@example.org"];

async function setup(database: Database, notifier?: (real: ResetNotifier) => ResetNotifier): Promise<ContainDeps & { ids: Map<string, string>; clock: ManualClock }> {
  const clock = new ManualClock(NOW);
  const outcome = await migrate(database, clock, MIGRATIONS);
  assert.equal(outcome.error, undefined);
  const deps = { database, clock, random: systemRandom };
  const users = createUserStore(deps);
  const ids = new Map<string, string>();
  for (const email of EMAILS) ids.set(email, (await users.create({ email, passwordHash: "$argon2id$x", passwordScheme: "argon2id" })).id);
  const mailer = createResetMailer({ database, resets: createPasswordResetService(deps), outbox: new Outbox(deps), random: systemRandom });
  const real: ResetNotifier = {
    async enqueueReset(trx, user, jobId) {
      await mailer.issueInTransaction(trx, user.id, { email: user.email, publicURL: "https://bulwark.test", serviceName: "Bulwark", reason: "containment", jobId });
    },
  };
  return {
    ...deps, ids, keyring: null, notifier: notifier ? notifier(real) : real,
    audit: new AuditLog(deps), jobs: new JobStore(deps),
  };
}

async function usersState(fx: ContainDeps): Promise<Array<[string, boolean, boolean]>> {
  const rows = await fx.database.db.selectFrom("users").select(["email", "locked_at", "password_invalidated_at"]).orderBy("email").execute();
  return rows.map((r) => [r.email, r.locked_at !== null, r.password_invalidated_at !== null]);
}

forEachDialect("contain: reset emails the outbox refuses", (dfx) => {
  it("attack: one address the outbox refuses does not stop anyone's containment; its user is invalidated, counted and audited", async () => {
    const fx = await setup(await dfx.fresh());
    const refusedIds = REFUSED.map((e) => fx.ids.get(e) as string).sort();
    const request = { levers: ["lock-accounts", "invalidate-passwords"], scope: { all: true }, actor: "t", batchSize: 2 };

    // The dry run says so beforehand, with the same count names as the real run.
    const dry = (await dryRunContain(fx, request)).levers["invalidate-passwords"];
    assert.deepEqual(dry?.counts, { users: 7, resetEmailsQueued: 5, resetEmailsRefused: 2, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 0, sessions: 0, tokens: 0 });
    for (const id of refusedIds) assert.match(dry?.notes?.join(" ") ?? "", new RegExp(id), "the dry run names each user whose address is refused");

    const job = await createContainJob(fx, request);
    const view = jobView(await runJob(fx, job.id));
    assert.equal(view.status, "done");
    assert.equal(view.done, 7);
    assert.deepEqual(view.counts["invalidate-passwords"], { users: 7, resetEmailsQueued: 5, resetEmailsRefused: 2, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 0, sessions: 0, tokens: 0 });
    assert.deepEqual(Object.keys(dry?.counts ?? {}).sort(), Object.keys(view.counts["invalidate-passwords"] ?? {}).sort(), "dry run and real run name their counts alike");
    assert.deepEqual(await usersState(fx), [...EMAILS].sort().map((e) => [e, true, true]), "everyone locked and invalidated, after the refused addresses too");

    const mails = await fx.database.db.selectFrom("outbox_messages").select("to_address").where("kind", "=", "account.containment-reset-link").orderBy("to_address").execute();
    assert.deepEqual(mails.map((m) => m.to_address), EMAILS.filter((e) => !REFUSED.includes(e)).sort());
    const events = (await fx.audit.tail(200)).filter((e) => e.type === "contain.reset-email.refused");
    assert.deepEqual(events.map((e) => e.subject).sort(), refusedIds, "one event per refused address, naming the user");
    for (const e of events) {
      assert.equal((e.data as { jobId: string }).jobId, job.id);
      assert.match(String((e.data as { reason: string }).reason), /part before @|domain/);
    }
    assert.match(view.notes.join(" "), /2 reset emails were not queued.*contain\.reset-email\.refused/);
    assert.equal((await fx.audit.verify()).ok, true);
  });

  it("attack: an address change and an API token made after the job was created, on a clock 5 minutes behind the job's, are judged by the database's order: the change holds the reset email (--email-changed-within 0) and the token is revoked; a token from before the job stays (ASVS 6.4.3, 7.4.1)", async () => {
    const fx = await setup(await dfx.fresh());
    const [a, b] = ["a@example.org", "b@example.org"].map((e) => fx.ids.get(e) as string) as [string, string];
    const token = (id: string, userId: string) => fx.database.db.insertInto("api_tokens").values({
      id, user_id: userId, name: id, secret_hash: `hash-${id}`, scopes: "[]", created_at: fx.clock.now(), expires_at: null,
      last_used_at: null, last_used_ip: null, revoked_at: null, issued_epoch: currentEpoch(),
    }).execute();
    await token("tok_before", b);
    fx.clock.advance(60_000);
    const job = await createContainJob(fx, { levers: ["invalidate-passwords"], scope: { ids: [a, b] }, options: { emailChangedWithinDays: 0 }, actor: "t" });
    // What a node whose clock runs 5 minutes behind writes while the job waits for its batch: dates before the job.
    fx.clock.set(NOW - 5 * 60_000);
    await fx.database.db.updateTable("users").set({ email: "a-moved@evil.example" }).where("id", "=", a).execute();
    await fx.audit.append({ type: "auth.email.changed", actor: a, subject: a, data: { from: "a@example.org", to: "a-moved@evil.example" } });
    await token("tok_after", b);
    fx.clock.set(NOW + 2 * 60_000);
    const view = jobView(await runJob(fx, job.id));
    assert.deepEqual(view.counts["invalidate-passwords"], { users: 2, resetEmailsQueued: 1, resetEmailsRefused: 0, resetEmailsWithheld: 1, resetEmailsSkippedDisabled: 0, sessions: 0, tokens: 1 });
    const mails = await fx.database.db.selectFrom("outbox_messages").select("to_address").where("kind", "=", "account.containment-reset-link").execute();
    assert.deepEqual(mails.map((m) => m.to_address), ["b@example.org"], "no reset link to the address moved after the job was created");
    const withheld = (await fx.audit.tail(50)).filter((e) => e.type === "contain.reset-email.withheld");
    assert.deepEqual(withheld.map((e) => e.subject), [a]);
    const tokens = await fx.database.db.selectFrom("api_tokens").select(["id", "revoked_at"]).orderBy("id").execute();
    assert.deepEqual(tokens.map((t) => [t.id, t.revoked_at !== null]), [["tok_after", true], ["tok_before", false]], "the token minted after the job is revoked; the older one is revoke-tokens' to judge");
  });

  it("attack: a job whose stored creation seq is not an audit seq is refused as corrupt, not run by times alone", async () => {
    const fx = await setup(await dfx.fresh());
    const job = await createContainJob(fx, { levers: ["invalidate-passwords"], scope: { ids: [fx.ids.get("a@example.org") as string] }, actor: "t" });
    const stored = await fx.database.db.selectFrom("jobs").select("spec").where("id", "=", job.id).executeTakeFirstOrThrow();
    const spec = JSON.parse(stored.spec) as Record<string, unknown>;
    assert.equal(typeof spec["createdSeq"], "number", "the job records its place in the audit log");
    await fx.database.db.updateTable("jobs").set({ spec: JSON.stringify({ ...spec, createdSeq: "later" }) }).where("id", "=", job.id).execute();
    await assert.rejects(runJob(fx, job.id), { code: "BULWARK_ERR_CONTAIN_JOB_CORRUPT" });
    assert.deepEqual((await usersState(fx)).filter(([, , invalid]) => invalid), [], "nothing applied");
  });

  it("any other notifier failure still fails the batch: every lever of it rolls back, and the failure is recorded and audited", async () => {
    const fx = await setup(await dfx.fresh(), (real) => ({
      async enqueueReset(trx, user, jobId) {
        if (user.email === "c@example.org") throw new Error("outbox table is full");
        await real.enqueueReset(trx, user, jobId);
      },
    }));
    // Batches of one user: whatever order the scope is numbered in, c's batch is the one that fails.
    const ids = ["a@example.org", "b@example.org", "c@example.org", "d@example.org"].map((e) => fx.ids.get(e) as string);
    const job = await createContainJob(fx, { levers: ["lock-accounts", "invalidate-passwords"], scope: { ids }, actor: "t", batchSize: 1 });
    await assert.rejects(runJob(fx, job.id), (error: Error & { code?: string; kind?: string }) => {
      assert.equal(error.code, "BULWARK_ERR_CONTAIN_FAILED");
      assert.equal(error.kind, "runtime");
      assert.match(error.message, /outbox table is full/);
      return true;
    });
    const failed = await fx.jobs.get(job.id);
    assert.equal(failed.status, "failed");
    assert.match(failed.error ?? "", /outbox table is full/);
    const c = await fx.database.db.selectFrom("users").select(["locked_at", "password_invalidated_at"]).where("email", "=", "c@example.org").executeTakeFirstOrThrow();
    assert.deepEqual([c.locked_at, c.password_invalidated_at], [null, null], "the failing batch rolled back as a whole");
    const audited = (await fx.audit.tail(200)).filter((e) => e.type === "contain.job.failed" && e.subject === job.id);
    assert.equal(audited.length, 1);
    assert.match(String((audited[0]?.data as { error: string }).error), /outbox table is full/);
  });

  it("attack: a batch takes each account's link lock before writing it, so it waits for an email confirmation or reset under way instead of deadlocking with it", async (t) => {
    const fx = await setup(await dfx.fresh());
    if (fx.database.dialect !== "postgres") return t.skip("SQLite's one write lock already serialises them");
    const userId = fx.ids.get("c@example.org") as string;
    // An email confirmation (or reset completion) of one account in scope holds its link lock, as it does from its
    // first write until its commit.
    let release!: () => void;
    const released = new Promise<void>((resolve) => { release = resolve; });
    let holding!: () => void;
    const held = new Promise<void>((resolve) => { holding = resolve; });
    const confirmation = fx.database.transaction(async (trx) => {
      await lockAccountLinks(fx.database, trx, userId);
      holding();
      await released;
    });
    await held;
    const job = await createContainJob(fx, { levers: ["invalidate-passwords"], scope: { all: true }, actor: "t", batchSize: 100 });
    let finished = false;
    const run = runJob(fx, job.id).then((r) => { finished = true; return r; });
    // The batch must queue behind the lock before touching any account row (a deadlock otherwise, when the
    // confirmation then writes that account).
    try {
      let waiting = 0;
      for (let i = 0; i < 200 && waiting === 0 && !finished; i++) {
        await new Promise((r) => setTimeout(r, 25));
        const row = await sql<{ n: string }>`SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`.execute(fx.database.db);
        waiting = Number(row.rows[0]?.n ?? 0);
      }
      assert.equal(finished, false, "the batch did not run past the account's link lock");
      assert.equal(waiting, 1, "the batch waits for the account's link lock");
      const invalidated = await fx.database.db.selectFrom("users").select("id").where("password_invalidated_at", "is not", null).execute();
      assert.deepEqual(invalidated, [], "and wrote no account before it");
    } finally {
      release();
      await confirmation;
    }
    assert.equal(jobView(await run).status, "done");
    assert.equal((await usersState(fx)).every(([, , invalid]) => invalid), true);
  });
});
