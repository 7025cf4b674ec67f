// Red-team round "not a sign-up": what counts as an unfinished sign-up, which three things now DELETE (an
// administrator's create through POST /api/v1/users or `bulwark users create`, `bulwark users import`, and the
// maintenance pass's purge of abandoned ones: src/accounts/email-change/sign-up-shell.ts).
//
// Attacker: an insider holding only accounts.write (not admin), or an outsider who can register, who wants an account
// that is not an outsider's untouched sign-up deleted (or a squat kept for ever).
//
// Tried: every way a real account can exist without a password was read (sign-in needs a password: no passkey-only or
// SSO sign-in exists, an API token needs a session, a reset link sets a password and writes updated_at); the event the
// predicate reads (`user.created`, actor anonymous, `via: register`) is written only by POST /auth/register, in
// canonical JSON, so the LIKE of unfinishedSignUpsAmong/removeAbandonedSignUps and the JSON.parse of isUnfinishedSignUp
// agree on every event the product writes; import rows never carry an id or that event, even when their updated_at
// equals created_at (a row without created_at); the outsider's public routes were pinned elsewhere
// (test/imports-over-signups-red-team.test.ts).
//
// Held: a sign-up finished by a "forgot password" link in the very millisecond it was made (updated_at = created_at)
// keeps its address against a create and the purge; an imported password-less account whose updated_at equals its
// created_at is neither taken by a create nor purged.
//
// Found (PostgreSQL; fixed since: deleteUnfinishedSignUp locks the account's row FOR UPDATE after its link lock and
// before the check, so a lock or grant committed meanwhile is seen, or waits; its DELETE re-checks the whole untouched
// condition): the deletion re-checks the predicate under the sign-up's LINK lock only, then runs a DELETE whose
// WHERE re-checks nothing but `password_hash IS NULL` (and, for the purge, its age and links). A change that makes the
// account the administrator's to keep and is committed while that DELETE waits for the row — an administrator's lock
// (POST /api/v1/users/:id/lock), a role grant — does not take the link lock: the DELETE waits on the row, then deletes
// the account the administrator has just locked, or granted a role, together with that role. Both changes answered
// success and are in the audit log, beside user.sign-up-removed of an account that was not an untouched sign-up.
// The window is the changing transaction's time between its UPDATE/INSERT and its commit, which includes its audit
// append (waiting its turn on the log's head row behind every other append): here held open by another append in
// progress, deterministically.
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { sql, type Kysely, type Transaction } from "kysely";
import { removeAbandonedSignUps, SIGN_UP_REMOVED_EVENT } from "../src/accounts/email-change/sign-up-shell.ts";
import { GOOD_PASSWORD, HOST, type AuthFixture } from "../src/http/auth/test-client.ts";
import { STEP_LOCK_TIMEOUT_MS } from "../src/http/maintenance.ts";
import type { Schema } from "../src/store/schema.ts";
import { adminCreates } from "./helpers/admin-create.ts";
import { auditHead, eventsSince } from "./helpers/audit-events.ts";
import { authFixtureOn, authFlows } from "./helpers/auth-flows.ts";
import { fixtureCliEnv, bulwarkInProcess } from "./helpers/cli.ts";
import { forEachDialect } from "./helpers/dialects.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const LABEL = "not-a-sign-up-red-team";
const HOUR = 60 * 60_000;
const WEEK = 168 * HOUR;

forEachDialect("not a sign-up: what the create, the import and the purge may delete", (dx) => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  /** The insider: accounts.write and accounts.read only. */
  let insider: string;
  /** Another administrator handling the same accounts (accounts.write), e.g. investigating a squat. */
  let helpdesk: string;
  let n = 0;
  before(async () => {
    // The product's lock bound (no BULWARK_DB_LOCK_TIMEOUT_SECONDS) on purpose: no test here waits it out; the PostgreSQL
    // ones hold the log's head and expect the waiting lock, grant, create and purge to go on and succeed once it is let
    // go, so a shorter bound would save nothing and only narrow the room for their polling (waitersOn) under load.
    fx = await authFixtureOn(dx, LABEL, { BULWARK_REGISTRATION: "open" });
    insider = await flows.tokenFor(await flows.userWith(["accounts.write", "accounts.read"]), ["accounts.write", "accounts.read"]);
    helpdesk = await flows.tokenFor(await flows.userWith(["accounts.write", "accounts.read"]), ["accounts.write", "accounts.read"]);
  });
  after(async () => {
    await fx?.close();
  });

  const { api: create } = adminCreates(() => fx, dx, LABEL, () => insider);
  const address = (what: string): string => `${what}-${++n}@corp.example`;
  const exists = async (id: string): Promise<boolean> => (await fx.app.accounts.users.getById(id)) !== null;
  const asHelpdesk = (path: string, body: unknown = {}) => fx.server.inject({
    method: "POST", url: path, headers: { host: HOST, authorization: `Bearer ${helpdesk}`, "content-type": "application/json" }, payload: JSON.stringify(body),
  });
  /** The maintenance pass's purge as its step runs it: one bounded transaction a batch (maintenance.ts boundedTransaction). */
  const purge = () => removeAbandonedSignUps(fx.app.db, fx.app.audit, {
    now: fx.clock.now(), olderThanMs: fx.app.config.signUpAbandonedMs,
    transaction: <T>(work: (trx: Transaction<Schema>) => Promise<T>) => fx.app.db.transaction(async (trx) => {
      if (fx.app.db.dialect === "postgres") await sql.raw(`SET LOCAL lock_timeout = ${STEP_LOCK_TIMEOUT_MS}`).execute(trx);
      return work(trx);
    }),
  });

  /**
   * Another audit append in progress (PostgreSQL): holds the log's head row, as every append does until its commit, until
   * `release()`. Appends inside other transactions wait their turn meanwhile, holding what those transactions wrote.
   */
  async function appendInProgress(): Promise<{ release: () => Promise<void> }> {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const done = fx.app.db.transaction(async (trx) => {
      await trx.selectFrom("audit_head").select("seq").where("id", "=", 1).forUpdate().execute();
      held();
      await released;
    });
    await holding;
    return { release: async () => { release(); await done; } };
  }

  /**
   * Waits until `count` backends wait on a lock while holding a write lock on `table`, or its row's tuple lock as a
   * waiting row lock (SELECT … FOR UPDATE, which the deletion now takes before its check) holds it (PostgreSQL).
   */
  async function waitersOn(db: Kysely<Schema>, table: string, count: number): Promise<boolean> {
    for (let i = 0; i < 200; i++) {
      const r = await sql<{ n: string | number }>`
        select count(*) as n from pg_stat_activity a
        where a.wait_event_type = 'Lock' and exists (
          select 1 from pg_locks l join pg_class c on c.oid = l.relation
          where l.pid = a.pid and l.granted and c.relname = ${table} and (l.mode = 'RowExclusiveLock' or l.locktype = 'tuple'))`.execute(db);
      if (Number(r.rows[0]?.n ?? 0) >= count) return true;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return false;
  }

  it("attack: the insider's create (POST /api/v1/users, accounts.write) runs while a help desk's lock of the squatted account commits — the locked account, the administrator's to keep, is never deleted by the create, which is refused as taken (ASVS 6.3.7, 8.2.2) (was: the create's DELETE waited for the row, then deleted the account just locked)", async (t) => {
    if (fx.app.db.dialect !== "postgres") return void t.skip("SQLite runs one write transaction at a time: no change commits in between");
    const email = address("investigated");
    const squat = await flows.unfinishedSignUp(email);
    fx.clock.advance(60_000);
    // Warm both tokens: their first use of the minute may append an event of its own.
    for (const token of [insider, helpdesk]) {
      const warm = await fx.server.inject({ method: "GET", url: `/api/v1/users/${squat.id}`, headers: { host: HOST, authorization: `Bearer ${token}` } });
      assert.equal(warm.statusCode, 200, warm.body);
    }
    const mark = await auditHead(fx.app.db.db);
    const busy = await appendInProgress();
    // The help desk locks the squat to investigate it: its UPDATE is done, its user.locked waits for the log's head.
    const locking = asHelpdesk(`/api/v1/users/${squat.id}/lock`, { reason: "investigating a squat of a new hire's address" });
    const lockWaits = await waitersOn(fx.app.db.db, "users", 1);
    // The insider's create reads the account as it was committed (unlocked) and its DELETE waits for the row.
    const creating = create({ email });
    const createWaits = await waitersOn(fx.app.db.db, "users", 2);
    await busy.release();
    const [locked, created] = await Promise.all([locking, creating]);
    assert.ok(lockWaits && createWaits, "control: the lock held the row while its event waited, and the create waited for the row");
    const events = await eventsSince(fx.app.db.db, mark, ["user.locked", SIGN_UP_REMOVED_EVENT]);
    assert.ok(events.some((e) => e.type === "user.locked" && e.subject === squat.id), "control: the lock committed, user.locked recorded");
    const removed = events.filter((e) => e.type === SIGN_UP_REMOVED_EVENT && e.subject === squat.id);
    assert.ok(
      await exists(squat.id),
      `the account the help desk locked (user.locked committed; the lock route then answered ${locked.statusCode} ${locked.json().error?.code ?? ""}) was deleted by the insider's create committed after it: ` +
      `create answered ${created.statusCode} signUpRemoved=${created.statusCode === 201 ? created.json().signUpRemoved : "-"}, ${removed.length} user.sign-up-removed recorded; ` +
      "deleteUnfinishedSignUp re-checks the sign-up under its link lock only, and its DELETE re-checks only password_hash IS NULL once the row lock it waited for is released",
    );
    assert.equal(locked.statusCode, 200, locked.body);
    assert.equal(created.statusCode, 409, `a locked account keeps its address: ${created.body}`);
  });

  it("attack: an administrator grants a role to a sign-up (making it an account the organisation uses) while the maintenance pass purges it as abandoned — the account holding a role, granted and recorded, is kept with its role (ASVS 6.3.7) (was: the pass's DELETE waited for the row, then deleted the account, its role by the cascade)", async (t) => {
    if (fx.app.db.dialect !== "postgres") return void t.skip("SQLite runs one write transaction at a time: no change commits in between");
    const squat = await flows.unfinishedSignUp(address("granted"));
    fx.clock.advance(WEEK + HOUR);
    const role = `support${n}`;
    await fx.app.accounts.roles.create({ name: role, permissions: ["accounts.read"] }, "test");
    const mark = await auditHead(fx.app.db.db);
    const busy = await appendInProgress();
    // The grant's row is inserted (its foreign key holds the account's row), its role.granted waits for the log's head.
    const granting = fx.app.accounts.roles.grant(squat.id, role, "admin-test");
    const grantWaits = await waitersOn(fx.app.db.db, "user_roles", 1);
    // The pass reads the account as committed (no role yet), and its DELETE waits for the row.
    const purging = purge();
    const purgeWaits = await waitersOn(fx.app.db.db, "users", 1);
    await busy.release();
    const [granted, purged] = await Promise.all([granting, purging.catch((e: unknown) => e)]);
    assert.ok(grantWaits && purgeWaits, "control: the grant held the account's row while its event waited, and the purge waited for the row");
    assert.equal(granted, true, "control: the grant was made and recorded");
    const recorded = await eventsSince(fx.app.db.db, mark, ["role.granted", SIGN_UP_REMOVED_EVENT]);
    assert.ok(recorded.some((e) => e.type === "role.granted" && e.subject === squat.id), "control: role.granted is in the log");
    assert.ok(
      await exists(squat.id),
      `the account granted role ${role} (role.granted recorded) was deleted as an abandoned sign-up by the pass committed after it (purge returned ${String(purged)}; ` +
      `${recorded.filter((e) => e.type === SIGN_UP_REMOVED_EVENT && e.subject === squat.id).length} user.sign-up-removed), its role with it by the foreign key's cascade: ` +
      "the DELETE in deleteUnfinishedSignUp re-checks only password_hash and the age, not the roles the predicate excludes",
    );
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(squat.id), [role]);
  });

  it("attack: the owner finishes the sign-up through a \"forgot password\" link (not the sign-up link) in the very millisecond it was made, so updated_at = created_at — the insider's create is refused as taken and the purge keeps it (ASVS 6.4.1, 6.3.7)", async () => {
    const email = address("same-ms");
    const made = await flows.unfinishedSignUp(email);
    // Neither the reset request nor the completion moves the fake clock: every write is at the sign-up's millisecond.
    const token = await flows.resetToken(email);
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: GOOD_PASSWORD } });
    assert.equal(done.statusCode, 200, done.body);
    const row = await fx.app.db.db.selectFrom("users").select(["created_at", "updated_at"]).where("id", "=", made.id).executeTakeFirstOrThrow();
    assert.equal(Number(row.updated_at), Number(row.created_at), "control: the row's updated_at equals its created_at");
    const mark = await auditHead(fx.app.db.db);
    const res = await create({ email });
    assert.equal(res.statusCode, 409, `a finished sign-up is a real account: ${res.body}`);
    assert.equal(res.json().error.code, "BULWARK_ERR_EMAIL_TAKEN");
    fx.clock.advance(WEEK + HOUR);
    await purge();
    assert.ok(await exists(made.id), "the purge keeps the finished account");
    assert.deepEqual(await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT]), []);
  });

  it("attack: an account `bulwark users import` made without a password or created_at (so updated_at = created_at, never signed in, holding nothing) is not taken for a sign-up — the insider's create is refused as taken and the purge keeps it (ASVS 6.3.7)", async (t) => {
    const email = address("imported");
    const dir = mkdtempSync(join(tmpdir(), "not-a-sign-up-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, `import-${n}.csv`);
    writeFileSync(file, `email\n${email}\n`);
    const url = dx.lastTarget().databaseURL;
    const r = await bulwarkInProcess(["users", "import", file, "--json"], fixtureCliEnv(fx.app.config.dataDir, url ? { url, masterKey: testMasterKey(LABEL) } : null));
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const made = await fx.app.accounts.users.findByIdentifier(email);
    assert.ok(made && made.passwordHash === null, "control: the import made a password-less account");
    const row = await fx.app.db.db.selectFrom("users").select(["created_at", "updated_at", "last_login_at"]).where("id", "=", made.id).executeTakeFirstOrThrow();
    assert.equal(Number(row.updated_at), Number(row.created_at), "control: its updated_at equals its created_at");
    assert.equal(row.last_login_at, null);
    const mark = await auditHead(fx.app.db.db);
    const res = await create({ email });
    assert.equal(res.statusCode, 409, `an imported account keeps its address: ${res.body}`);
    // The import ran on the real clock: the pass's clock is moved a week past the account's creation, whichever is ahead.
    fx.clock.advance(Math.max(0, Number(row.created_at) - fx.clock.now()) + WEEK + HOUR);
    await purge();
    assert.ok(await exists(made.id), "the purge keeps the imported account");
    assert.deepEqual(await eventsSince(fx.app.db.db, mark, [SIGN_UP_REMOVED_EVENT]), []);
  });
});
