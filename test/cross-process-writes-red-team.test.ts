// Red-team round "cross-process writes": lost updates and stale decisions across processes on one SQLite database
// (WAL). The attacker is no person with a shell: it is the ordinary interleaving of an operator's CLI command (its own
// process, its own connection: run here in this process through bulwarkInProcess, which opens an app of its own on the
// fixture's file) with the server's requests (the fixture's app). Each interleaving is forced, never raced: the server's
// side holds SQLite's write lock in an open transaction (or another connection takes it, holdWriteLock) while the CLI
// has read and waits at its BEGIN IMMEDIATE (seen through node:sqlite's StatementSync, watched below); or another
// connection takes the lock synchronously right after a statement of a request commits, so the request's next write
// meets it and waits out the bound (BULWARK_DB_LOCK_TIMEOUT_SECONDS=1 here).
// Tried: `users unlock` reading the account, then an administrator re-locking it over the API before the unlock
// commits; `roles delete` counting no holders (so asking nothing and needing no --yes), then a grant of the role
// committing before the deletion; a sign-out whose session delete committed just before a CLI batch took the lock.
// Held: the CLI waits for the server's transaction asynchronously and then commits whole (no half-written row); the
// deletion's role.deleted event counts the holder it really took; the unlock's revocation stamp still ends old sessions.
// Found (all fixed; the tests below fail on the code before):
// - `users unlock` records and prints the lock reason it read before its transaction: the lock it lifts may be another
//   one (an administrator's "keep locked", taken meanwhile), and the log (user.unlocked) and the operator's screen name
//   the lock that was already gone (ASVS 16.2.1).
// - `roles delete` decides whether to ask (and whether --yes is needed) on a holder count read before its transaction:
//   a grant committed meanwhile is taken away although nobody confirmed it, and the report says 0 holders (ASVS 16.5.3).
// - POST /auth/logout ends the session in one statement and appends auth.logout in another transaction: a lock taken
//   between them (any CLI batch) answers 503 "try again" about a sign-out that happened, and the sign-out is in no
//   record (ADR 0021: a change and its record commit together) (ASVS 16.3.1); DELETE /auth/sessions/:id did the same with
//   auth.session.ended.
// - The API's role routes (create, revoke, delete) appended their api.role.* record after the change committed: a lock
//   met in between answered 503 about a change that was made (ASVS 16.3.1).
// - POST /api/v1/users/:id/lock without a reason recorded the reason read before its transaction: another process's
//   lock or re-lock meanwhile made user.locked name a reason the lock never stood under (ASVS 16.2.1).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DatabaseSync } from "node:sqlite";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";
import { lockUser } from "../src/accounts/users/admin-changes.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { bulwarkInProcess, fixtureCliEnv } from "./helpers/cli.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { dbPath, holdWriteLock } from "./helpers/sqlite-lock.ts";
import { CLI_PATIENT, gate, lockAfterCommitOf, SHORT_BUSY, StatementWatch } from "./helpers/statement-watch.ts";



async function eventsOf(fx: AuthFixture, type: string, subject?: string): Promise<Array<{ data: Record<string, unknown> }>> {
  let q = fx.app.db.db.selectFrom("audit_events").select(["data"]).where("type", "=", type);
  if (subject !== undefined) q = q.where("subject", "=", subject);
  return (await q.orderBy("seq").execute()).map((r) => ({ data: JSON.parse(String(r.data ?? "{}")) as Record<string, unknown> }));
}

/**
 * Runs `bulwark ARGS` (its own app and connection on the fixture's file) so that it reads the store as it stands, then
 * waits at its write transaction's BEGIN IMMEDIATE behind the server's transaction, in which `serverChange` then runs
 * and commits; only then does the command's transaction start.
 */
async function cliAroundServerChange(fx: AuthFixture, watch: StatementWatch, args: string[], serverChange: (trx: Parameters<Parameters<AuthFixture["app"]["db"]["transaction"]>[0]>[0]) => Promise<void>): Promise<{ code: number; stdout: string; stderr: string }> {
  const change = gate();
  const server = fx.app.db.transaction(async (trx) => {
    await change.wait;
    await serverChange(trx);
  });
  const cliWaits = watch.busyAt("begin immediate");
  const cli = bulwarkInProcess(args, { ...fixtureCliEnv(fx.app.config.dataDir), ...CLI_PATIENT });
  await cliWaits;
  change.open();
  await server;
  return cli;
}

describe("cross-process writes on one SQLite database", () => {
  const fx = sharedFixture(() => authFixture(SHORT_BUSY));
  const watch = new StatementWatch();
  /** Runs `request` with another connection taking the write lock right after its session delete; let go after it. */
  async function lockedAfterSessionDelete<T>(request: () => Promise<T>): Promise<T> {
    let held: { release(): void } | null = null;
    watch.afterRun((sql) => /^delete from "sessions" where "id" = \?/i.test(sql.trim()), () => {
      held = holdWriteLock(dbPath(fx));
    });
    try {
      return await request();
    } finally {
      (held as { release(): void } | null)?.release();
    }
  }
  before(() => watch.install());
  after(() => watch.restore());

  it("attack: `users unlock` reads a containment lock, then an administrator re-locks the account over the API (\"keep locked\") before the unlock commits — the unlock's event and its output name the lock it lifted, not the one it read before (ASVS 16.2.1, 16.3.3) (was: user.unlocked and the screen named the containment lock, already replaced)", async () => {
    const alice = await fx.user("unlock-race@example.org");
    await fx.app.db.transaction(async (trx) => {
      await lockUser(trx, alice.id, "contain: lock-accounts job_1", fx.clock.now());
    });
    const adminReason = "laptop stolen: keep locked until the owner calls";
    // The API's lock route, in one transaction: lockUser (relock: the lock becomes the administrator's) and its event.
    const r = await cliAroundServerChange(fx, watch, ["users", "unlock", alice.email, "--json"], async (trx) => {
      assert.equal(await lockUser(trx, alice.id, adminReason, fx.clock.now()), "relocked");
      await fx.app.audit.appendIn(trx, { type: "user.locked", actor: "usr_admin", subject: alice.id, data: { reason: adminReason, relocked: true } });
    });
    assert.equal(r.code, 0, r.stderr);
    const lifted = await fx.app.accounts.users.getById(alice.id);
    assert.equal(lifted?.lockedAt, null, "the break-glass unlock lifts whatever lock there is (documented)");
    // The human output ("was: …") is read from the same row: a second run, the same interleaving.
    await fx.app.db.transaction(async (trx) => {
      await lockUser(trx, alice.id, "contain: lock-accounts job_2", fx.clock.now());
    });
    const human = await cliAroundServerChange(fx, watch, ["users", "unlock", alice.email], async (trx) => {
      await lockUser(trx, alice.id, adminReason, fx.clock.now());
      await fx.app.audit.appendIn(trx, { type: "user.locked", actor: "usr_admin", subject: alice.id, data: { reason: adminReason, relocked: true } });
    });
    assert.equal(human.code, 0, human.stderr);
    const [event] = await eventsOf(fx, "user.unlocked", alice.id);
    assert.ok(event, "no user.unlocked event");
    assert.equal(event.data["reason"], adminReason,
      `user.unlocked records the lock reason \`users unlock\` read before its transaction ("${String(event.data["reason"])}"), not the administrator's lock it actually lifted ("${adminReason}"): the log says a containment lock was lifted, and nothing says the administrator's "keep locked" was; the operator read ${JSON.stringify(human.stdout.trim())}`);
    assert.match(human.stdout, /keep locked/, `the operator is told the unlock lifted a lock it did not: ${JSON.stringify(human.stdout)}`);
  });

  it("attack: an administrator locks an account over the API without a reason while another process (a containment batch) re-locks it between the route's read and its transaction — user.locked records the reason the lock stands under, not the one read before (ASVS 16.2.1, 16.3.3) (was: the stale reason read before the transaction)", async () => {
    const flows = authFlows(() => fx);
    const admin = await flows.userWith(["accounts.write"]);
    const token = await flows.tokenFor(admin, ["accounts.write"]);
    const erin = await fx.user("lock-race@example.org");
    await fx.app.db.transaction(async (trx) => {
      await lockUser(trx, erin.id, "contain: lock-accounts job_1", fx.clock.now());
    });
    // The other process holds the write lock while the route reads the account, then re-locks it and lets go.
    const other = new DatabaseSync(dbPath(fx));
    other.exec("PRAGMA busy_timeout = 0");
    other.exec("BEGIN IMMEDIATE");
    const waiting = watch.busyAt("begin immediate");
    const res = fx.server.inject({ method: "POST", url: `/api/v1/users/${erin.id}/lock`, headers: { host: "bulwark.test", authorization: `Bearer ${token}` }, payload: {} });
    try {
      await waiting;
      other.prepare("UPDATE users SET locked_reason = ?, locked_at = ? WHERE id = ?").run("contain: lock-accounts job_2", fx.clock.now(), erin.id);
      other.exec("COMMIT");
    } finally {
      if (other.isTransaction) other.exec("ROLLBACK");
      other.close();
    }
    const r = await res;
    assert.equal(r.statusCode, 200, r.body);
    const events = await eventsOf(fx, "user.locked", erin.id);
    assert.equal(events.at(-1)?.data["reason"], "contain: lock-accounts job_2",
      `user.locked records ${JSON.stringify(events.at(-1)?.data)}: a reason the lock no longer stood under when this administrator took it over`);
  });

  it("attack: another process takes the write lock right after an API role change commits (create, revoke, delete) — the answer is true: done and recorded as api.role.*, or refused with nothing changed (ASVS 16.3.1, 16.5.3) (was: 503 \"try again\" about a role created, revoked or deleted, the API's record missing; the retry met 409 or changed nothing)", async () => {
    const admin = await fx.user("roles-admin@example.org", { roles: ["admin"] });
    await ensureSecondFactor(fx.app, admin.id);
    const { token } = await fx.app.accounts.tokens.create(admin.id, { name: "roles", scopes: ["admin"] });
    const api = (method: "POST" | "DELETE", url: string, body?: unknown) =>
      fx.browser().request(method, url, { bare: true, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { body }) } as never);
    const lockedAfterCommitOf = async <T>(marker: (sql: string) => boolean, send: () => Promise<T>): Promise<T> => (await lockAfterCommitOf(watch, dbPath(fx), marker, send)).result;
    const apiEvents = async (type: string, subject: string): Promise<number> => (await eventsOf(fx, type, subject)).length;
    const holder = await fx.user("roles-holder@example.org");

    const created = await lockedAfterCommitOf((sql) => sql.startsWith('insert into "roles"'), () => api("POST", "/api/v1/roles", { name: "incident-scribes", permissions: ["audit.read"] }));
    const exists = await fx.app.accounts.roles.get("incident-scribes").then(() => true, () => false);
    if (created.statusCode === 201) assert.equal(await apiEvents("api.role.created", "incident-scribes"), 1, "created (201) but no api.role.created");
    else assert.equal(exists, false, `POST /api/v1/roles answered ${created.statusCode} ${created.body.slice(0, 100)}, yet the role was created`);

    await fx.app.accounts.roles.create({ name: "on-call", permissions: ["checks.run"] }, "test").catch(() => {});
    await fx.app.accounts.roles.grant(holder.id, "on-call", "test");
    const revoked = await lockedAfterCommitOf((sql) => sql.startsWith('delete from "user_roles"'), () => api("DELETE", `/api/v1/users/${holder.id}/roles/on-call`));
    const stillHeld = (await fx.app.accounts.roles.rolesOf(holder.id)).includes("on-call");
    if (revoked.statusCode === 200) assert.equal(await apiEvents("api.role.revoked", holder.id), 1, "revoked (200) but no api.role.revoked");
    else assert.equal(stillHeld, true, `DELETE …/roles/on-call answered ${revoked.statusCode} ${revoked.body.slice(0, 100)}, yet the role was taken`);

    await fx.app.accounts.roles.create({ name: "retired-team", permissions: ["checks.run"] }, "test");
    const deleted = await lockedAfterCommitOf((sql) => sql.startsWith('delete from "roles"'), () => api("DELETE", "/api/v1/roles/retired-team"));
    const gone = await fx.app.accounts.roles.get("retired-team").then(() => false, () => true);
    if (deleted.statusCode === 204) assert.equal(await apiEvents("api.role.deleted", "retired-team"), 1, "deleted (204) but no api.role.deleted");
    else assert.equal(gone, false, `DELETE /api/v1/roles/retired-team answered ${deleted.statusCode} ${deleted.body.slice(0, 100)}, yet the role was deleted`);
  });

  it("attack: `roles delete` counts no holders (so it asks nothing and needs no --yes), then a grant of the role commits before the deletion — a holder nobody confirmed taking it from does not lose it: the deletion is refused, exit 2, nothing deleted (ASVS 16.5.3, 16.2.1) (was: taken silently, the report saying 0 holders)", async () => {
    const role = "release-managers";
    await fx.app.accounts.roles.create({ name: role, permissions: ["checks.run"] }, "test");
    const bob = await fx.user("role-race@example.org");
    // Without --yes and without a terminal, a deletion that takes the role from anybody is refused (exit 2).
    const r = await cliAroundServerChange(fx, watch, ["roles", "delete", role, "--json"], async (trx) => {
      // What RoleStore.grant writes (an administrator's POST /api/v1/users/:id/roles), in the server's transaction.
      await trx.insertInto("user_roles").values({ user_id: bob.id, role, granted_at: fx.clock.now(), granted_by: "usr_admin" }).execute();
      await fx.app.audit.appendIn(trx, { type: "role.granted", actor: "usr_admin", subject: bob.id, data: { role } });
    });
    const [deleted] = await eventsOf(fx, "role.deleted", role);
    const held = await fx.app.accounts.roles.rolesOf(bob.id);
    const report = r.code === 0 ? (JSON.parse(r.stdout) as { holders: number; deleted: boolean }) : null;
    assert.ok(held.includes(role) || (report !== null && report.holders === 1),
      `\`roles delete ${role}\` (no --yes) took the role from ${bob.email}, granted after its count and before its transaction: the count of 0 it read first skipped the confirmation that a holder requires, and it reported ${JSON.stringify(report)} while role.deleted records ${JSON.stringify(deleted?.data)}`);
    assert.equal(r.code, 2, r.stdout);
    assert.match(r.stderr, /held by 0 user\(s\) when the deletion was confirmed and by 1 when it ran/);
    assert.equal(deleted, undefined, "role.deleted recorded for a deletion that was refused");
    assert.deepEqual((await fx.app.accounts.roles.get(role)).permissions, ["checks.run"], "the role is still there");
  });

  it("attack: another process (a CLI batch) takes the write lock right after a sign-out's session delete — the answer is true: signed out and recorded (auth.logout), or refused with nothing changed, and then the retry signs out (ADR 0021: a change and its record commit together) (ASVS 16.3.1, 16.5.3, 7.4.1) (was: 503 \"try again\" with the session gone and no event; the retry refused 401)", async () => {
    const carol = await fx.user("logout-race@example.org");
    const b = fx.browser();
    assert.equal((await b.login(carol.email, carol.password)).statusCode, 200);
    const csrf = await b.csrf();
    const res = await lockedAfterSessionDelete(() => b.request("POST", "/auth/logout", { csrf, body: {} }));
    const recorded = (await eventsOf(fx, "auth.logout", carol.id)).length;
    const sessionsLeft = Number((await fx.app.db.db.selectFrom("sessions").select((eb) => eb.fn.countAll<number>().as("n")).where("user_id", "=", carol.id).executeTakeFirstOrThrow()).n);
    if (res.statusCode === 200) {
      assert.equal(recorded, 1, "signed out (200) but no auth.logout event");
    } else {
      assert.equal(sessionsLeft, 1,
        `POST /auth/logout answered ${res.statusCode} ${res.body.slice(0, 120)} ("could not finish, try again"), yet its session was already deleted (${sessionsLeft} left) and auth.logout was recorded ${recorded} time(s): the sign-out happened and is in no record; the browser's retry is refused 401`);
      assert.equal(recorded, 0, "a refused sign-out recorded auth.logout");
      const retry = await b.request("POST", "/auth/logout", { csrf, body: {} });
      assert.equal(retry.statusCode, 200, `the browser's retry: ${retry.statusCode} ${retry.body.slice(0, 120)}`);
      assert.equal((await eventsOf(fx, "auth.logout", carol.id)).length, 1, "the retried sign-out is recorded once");
    }
  });

  it("attack: another process takes the write lock right after DELETE /auth/sessions/:id removed the session it names — ended and recorded (auth.session.ended), or refused with the session still there (ASVS 16.3.1, 7.4.1) (was: ended with no record on a 503)", async () => {
    const dave = await fx.user("end-one-race@example.org");
    const phone = fx.browser();
    assert.equal((await phone.login(dave.email, dave.password)).statusCode, 200);
    const laptop = fx.browser();
    assert.equal((await laptop.login(dave.email, dave.password)).statusCode, 200);
    const phoneSession = JSON.parse((await phone.request("GET", "/auth/session")).body) as { sessionId: string };
    const csrf = await laptop.csrf();
    const res = await lockedAfterSessionDelete(() => laptop.request("DELETE", `/auth/sessions/${phoneSession.sessionId}`, { csrf }));
    const recorded = (await eventsOf(fx, "auth.session.ended", dave.id)).filter((e) => e.data["endedSessionId"] === phoneSession.sessionId).length;
    const phoneLeft = await fx.app.db.db.selectFrom("sessions").select("id").where("id", "=", phoneSession.sessionId).executeTakeFirst();
    if (res.statusCode === 200) assert.equal(recorded, 1, "ended (200) but no auth.session.ended event");
    else {
      assert.ok(phoneLeft, `DELETE answered ${res.statusCode} ${res.body.slice(0, 120)}, yet the session it names is gone, recorded ${recorded} time(s)`);
      assert.equal(recorded, 0);
    }
  });
});
