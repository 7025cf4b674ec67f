// Red-team round "cross-process writes", second batch: changes left without their record, and answers that say "failed,
// try again" about changes that were made, when another process (a CLI batch, a backup, a `sqlite3` shell) takes the
// one SQLite write lock between two transactions of one request. The attacker is the interleaving itself: no shell is
// needed, only a lock held for longer than the store's bound (BULWARK_DB_LOCK_TIMEOUT_SECONDS=1 here) at the wrong
// moment. Each interleaving is forced, never raced: a watch on node:sqlite's StatementSync.prototype.run takes the lock
// (holdWriteLock, another connection on the file) synchronously right after a chosen statement of the request ran.
// Tried: POST /auth/password/reset/request with the lock taken right after the transaction that stores the link and
// queues its mail; POST /api/v1/contain/jobs with the lock taken right after the transaction that creates the job (its
// scope rows and contain.job.created).
// Found (fixed; the tests below fail on the code before):
// - The reset request commits the link and its outbox message in one transaction (ResetMailer.request) and appends
//   auth.password.reset-requested in another: a lock met between them answers 503 "try again" while a working reset
//   link is queued to the owner's mailbox with no record of the request (ADR 0021: a change and its record commit
//   together), and the retry queues a second one (ASVS 16.3.1, 16.5.3).
// - POST /api/v1/contain/jobs commits the job (createContainJob), then appends api.contain.job.created, and only then
//   starts the job (runner.start): a lock met at the append answers 503 "try again", and the job is left pending,
//   started by nobody until the next server start; the responder's retry creates a second job (ASVS 16.3.1, 16.5.3).
//   The same shape was in the undo route (createUndoJob, then auditAPI, then runner.start) and in cancel (a 503 about a
//   cancellation that happened): all three now write the API's record in the job's transaction.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { authFixture } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";
import { dbPath } from "./helpers/sqlite-lock.ts";
import { lockAfterCommitOf, SHORT_BUSY, StatementWatch } from "./helpers/statement-watch.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";


describe("cross-process writes on one SQLite database (b)", () => {
  const fx = sharedFixture(() => authFixture(SHORT_BUSY));
  const watch = new StatementWatch();
  before(() => watch.install());
  after(() => watch.restore());

  const lockAfterCommit = <T>(marker: (sql: string) => boolean, send: () => Promise<T>) => lockAfterCommitOf(watch, dbPath(fx), marker, send);

  async function count(table: "password_reset_tokens" | "outbox_messages" | "jobs", where: [string, string]): Promise<number> {
    const row = await fx.app.db.db.selectFrom(table).select((eb) => eb.fn.countAll<number>().as("n")).where(where[0] as never, "=", where[1] as never).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async function events(type: string, subject?: string): Promise<Array<Record<string, unknown>>> {
    let q = fx.app.db.db.selectFrom("audit_events").select(["data"]).where("type", "=", type);
    if (subject !== undefined) q = q.where("subject", "=", subject);
    return (await q.orderBy("seq").execute()).map((r) => JSON.parse(String(r.data ?? "{}")) as Record<string, unknown>);
  }

  async function adminToken(email: string): Promise<{ id: string; token: string }> {
    const admin = await fx.user(email, { roles: ["admin"] });
    await ensureSecondFactor(fx.app, admin.id);
    const { token } = await fx.app.accounts.tokens.create(admin.id, { name: `t-${email}`, scopes: ["admin"] });
    return { id: admin.id, token };
  }

  function api(token: string, method: "GET" | "POST" | "DELETE", url: string, body?: unknown) {
    return fx.browser().request(method, url, { bare: true, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { body }) } as never);
  }

  it("attack: another process takes the write lock right after a reset request's link and mail committed — the answer is true: 202 with auth.password.reset-requested recorded, or refused with no link made (ADR 0021: a change and its record commit together) (ASVS 16.3.1, 16.5.3, 6.4.1)", async () => {
    const user = await fx.user("reset-busy@example.org");
    const { result: res, took } = await lockAfterCommit((sql) => sql.startsWith('insert into "password_reset_tokens"'),
      () => fx.browser().request("POST", "/auth/password/reset/request", { body: { email: user.email } }));
    assert.ok(took, "control: the lock was taken after the link's transaction");
    const links = await count("password_reset_tokens", ["user_id", user.id]);
    const recorded = (await events("auth.password.reset-requested", user.id)).length;
    if (res.statusCode === 202) assert.equal(recorded, 1, "202 but no auth.password.reset-requested");
    else {
      assert.equal(links, 0,
        `POST /auth/password/reset/request answered ${res.statusCode} ${res.body.slice(0, 140)} ("could not finish, try again"), yet a reset link was made and its mail queued (${links} link row(s), ${fx.mailTo(user.email).length + (await count("outbox_messages", ["account_id", user.id]))} queued/sent) and auth.password.reset-requested was recorded ${recorded} time(s): a working link to the account is in the outbox with no record of who asked for it, and the "try again" mails a second one`);
    }
  });

  it("attack: another process takes the write lock right after POST /api/v1/contain/jobs committed its job — the answer is true: 202 with the job started, or refused with no job left behind (ASVS 16.3.1, 16.5.3)", async () => {
    const { token } = await adminToken("contain-admin@example.org");
    const target = await fx.user("contain-target@example.org");
    const { result: res, took } = await lockAfterCommit((sql) => sql.startsWith("insert into contain_job_users"),
      () => api(token, "POST", "/api/v1/contain/jobs", { levers: ["lock-accounts"], scope: { ids: [target.id] } }));
    assert.ok(took, "control: the lock was taken after the job's transaction");
    const jobs = await fx.app.db.db.selectFrom("jobs").select(["id", "status"]).where("kind", "=", "contain").execute();
    if (res.statusCode === 202) return;
    // The responder does as told: tries again, the lock gone.
    const retry = await api(token, "POST", "/api/v1/contain/jobs", { levers: ["lock-accounts"], scope: { ids: [target.id] } });
    const afterRetry = await fx.app.db.db.selectFrom("jobs").select(["id", "status"]).where("kind", "=", "contain").execute();
    assert.deepEqual(jobs, [],
      `POST /api/v1/contain/jobs answered ${res.statusCode} ${res.body.slice(0, 100)}… ("could not finish, try again"), yet it had created job ${JSON.stringify(jobs)} (contain.job.created recorded) and never started it (runner.start comes after the failed api.contain.job.created append); the retry (${retry.statusCode}) made another, leaving ${JSON.stringify(afterRetry)}: the first waits pending, started by nobody until the next server start runs it (a lock applied again after the incident)`);
  });
});
