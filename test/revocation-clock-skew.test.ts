// Revocation does not depend on the clocks of the nodes that issued what it revokes (migration 16,
// docs/decisions/0009-revocation-epochs.md). Each test has two nodes on one database: "ahead", whose clock runs an
// hour fast (or stepped back after issuing), issues a session, an API token or an email-change link; "right" pulls
// a lever. Before the epoch, a stamp raised "now" on the right clock refused rows by `created_at`, and the ahead
// node's rows — created "later" than the stamp — survived every lever (ASVS 7.4.1, 7.4.5). A node with the right
// time also ends such a session outright ("future-dated": its lifetime would run on the faster clock, ASVS 7.3.2), so
// what must stay valid is checked on the node whose clock it agrees with. On SQLite and PostgreSQL.
import assert from "node:assert/strict";
import { it } from "node:test";
import { AuditLog } from "../src/audit/audit-log.ts";
import { createEmailChangeService } from "../src/accounts/email-change/email-change-service.ts";
import { raiseStamp, revokedBefore, userScope } from "../src/accounts/sessions/revocation.ts";
import { createSessionManager, type SessionManager } from "../src/accounts/sessions/session-manager.ts";
import { createTokenService, type TokenService } from "../src/accounts/tokens/index.ts";
import { createContainJob, runJob, type ContainDeps } from "../src/contain/index.ts";
import { JobStore } from "../src/jobs/job-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { Outbox } from "../src/notify/outbox.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { MIGRATIONS } from "../src/store/migrations/index.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 11, 3, 12);

interface Node {
  clock: ManualClock;
  sessions: SessionManager;
  tokens: TokenService;
}

interface Fixture {
  database: Database;
  right: Node & { contain: ContainDeps };
  ahead: Node;
  userId: string;
  bystanderId: string;
}

function node(database: Database, clock: ManualClock): Node {
  return {
    clock,
    sessions: createSessionManager({ database, clock, random: systemRandom }),
    tokens: createTokenService({ database, clock, random: systemRandom }),
  };
}

async function setup(database: Database): Promise<Fixture> {
  const right = new ManualClock(NOW);
  assert.equal((await migrate(database, right, MIGRATIONS)).error, undefined);
  const ids = ["usr_victim", "usr_bystander"];
  for (const [i, id] of ids.entries()) {
    await database.db.insertInto("users").values({
      id, email: `u${i}@example.org`, email_key: `u${i}@example.org`, status: "active", password_hash: "$argon2id$x", password_scheme: "argon2id",
      password_must_change: 0, created_at: NOW - 100 * HOUR, updated_at: NOW - 100 * HOUR, last_login_at: null, seeded: 0,
    }).execute();
  }
  const contain: ContainDeps = {
    database, clock: right, random: systemRandom, keyring: null, notifier: null,
    audit: new AuditLog({ database, clock: right, random: systemRandom }),
    jobs: new JobStore({ database, clock: right, random: systemRandom }),
  };
  return { database, right: { ...node(database, right), contain }, ahead: node(database, new ManualClock(NOW + HOUR)), userId: "usr_victim", bystanderId: "usr_bystander" };
}

forEachDialect("revocation whatever the issuing node's clock said", (dfx) => {
  it("attack: a session issued by a node an hour ahead is refused after revokeAll on a node with the right time", async () => {
    const fx = await setup(await dfx.fresh());
    const stolen = await fx.ahead.sessions.createSession(fx.userId, { aal: 1 });
    assert.equal(stolen.session.createdAt, NOW + HOUR, "its time is later than any stamp raised now");
    assert.equal((await fx.ahead.sessions.validate(stolen.token)).valid, true);
    await fx.right.sessions.revokeAll();
    assert.deepEqual(await fx.right.sessions.validate(stolen.token), { valid: false, reason: "revoked" });
    assert.deepEqual(await fx.ahead.sessions.validate(stolen.token), { valid: false, reason: "revoked" }, "on every node");
    assert.deepEqual(await fx.right.sessions.list(fx.userId), [], "not listed as live either");
    // Not a blanket refusal: a login after the revocation works, on either node (the right one a millisecond on:
    // a login in the revocation's own millisecond is refused, docs/decisions/0003-revocation-stamps.md).
    fx.right.clock.advance(1);
    for (const n of [fx.right, fx.ahead]) {
      const fresh = await n.sessions.createSession(fx.userId, { aal: 1 });
      assert.equal((await n.sessions.validate(fresh.token)).valid, true);
    }
  });

  it("attack: the user's own 'end every session' refuses it too, and leaves other users' sessions and later logins", async () => {
    const fx = await setup(await dfx.fresh());
    const first = await fx.ahead.sessions.createSession(fx.userId, { aal: 1 });
    const bystander = await fx.ahead.sessions.createSession(fx.bystanderId, { aal: 1 });
    await fx.right.sessions.revokeUser(fx.userId);
    assert.deepEqual(await fx.right.sessions.validate(first.token), { valid: false, reason: "revoked" });
    assert.equal((await fx.ahead.sessions.validate(bystander.token)).valid, true, "another user's session is out of scope");
    const second = await fx.ahead.sessions.createSession(fx.userId, { aal: 1 });
    assert.equal((await fx.ahead.sessions.validate(second.token)).valid, true, "issued after the revocation");
  });

  it("attack: a clock stepped back after the session was issued does not keep it alive", async () => {
    const fx = await setup(await dfx.fresh());
    // One node: it issues at 13:00, then NTP steps its clock back to 12:00 and the operator revokes everything.
    const stolen = await fx.ahead.sessions.createSession(fx.userId, { aal: 1 });
    fx.ahead.clock.set(NOW);
    await fx.ahead.sessions.revokeAll();
    assert.deepEqual(await fx.ahead.sessions.validate(stolen.token), { valid: false, reason: "revoked" });
  });

  it("attack: a step-up of a skewed session keeps its epoch, so the stamp refuses the new session as it refused the old", async () => {
    const fx = await setup(await dfx.fresh());
    const stolen = await fx.ahead.sessions.createSession(fx.userId, { aal: 1 });
    const stepped = await fx.ahead.sessions.rotate(stolen.token, { aal: 2, keepLifetime: true });
    assert.equal((await fx.ahead.sessions.validate(stepped.token)).valid, true);
    assert.equal(stepped.session.issuedEpoch, stolen.session.issuedEpoch, "the epoch is kept, as the creation time is");
    await fx.right.sessions.revokeAll();
    assert.deepEqual(await fx.right.sessions.validate(stepped.token), { valid: false, reason: "revoked" });
  });

  it("attack: contain revoke-sessions and revoke-tokens refuse and remove the skewed node's rows, and leave what came after", async () => {
    const fx = await setup(await dfx.fresh());
    const session = await fx.ahead.sessions.createSession(fx.userId, { aal: 1 });
    const token = await fx.ahead.tokens.create(fx.userId, { name: "ci", scopes: ["accounts.read"] });
    const child = await fx.ahead.tokens.create(fx.userId, { name: "child", scopes: ["accounts.read"], parent: { id: token.info.id, expiresAt: null } });
    const job = await createContainJob(fx.right.contain, { levers: ["revoke-sessions", "revoke-tokens"], scope: { ids: [fx.userId] }, actor: "t" });
    // Refused before any row is touched: the stamps carry the job's epoch.
    assert.deepEqual(await fx.right.sessions.validate(session.token), { valid: false, reason: "revoked" });
    assert.deepEqual(await fx.right.tokens.verify(token.token), { valid: false, reason: "revoked" });
    assert.deepEqual(await fx.right.tokens.verify(child.token), { valid: false, reason: "revoked" });
    // Issued after the job's stamps, on the right clock but with a time before the job's (backdated): kept.
    fx.right.clock.set(NOW + 1);
    const after = await fx.right.sessions.createSession(fx.userId, { aal: 1 });
    await runJob(fx.right.contain, job.id);
    const left = await fx.database.db.selectFrom("sessions").select("id").where("user_id", "=", fx.userId).execute();
    assert.deepEqual(left.map((r) => r.id), [after.session.id], "the skewed session's row is deleted, the later one kept");
    const marked = await fx.database.db.selectFrom("api_tokens").select(["id", "revoked_at"]).where("user_id", "=", fx.userId).orderBy("name").execute();
    assert.ok(marked.every((r) => r.revoked_at !== null), "both skewed tokens are marked revoked");
    assert.equal((await fx.right.sessions.validate(after.token)).valid, true);
    const listed = await fx.right.tokens.list(fx.userId);
    assert.ok(listed.every((t) => t.revokedAt !== null), "listed as revoked");
  });

  it("attack: a contain --all job refuses the skewed session and its undo-free bulk delete removes it", async () => {
    const fx = await setup(await dfx.fresh());
    const session = await fx.ahead.sessions.createSession(fx.userId, { aal: 1 });
    const job = await createContainJob(fx.right.contain, { levers: ["revoke-sessions"], scope: { all: true }, actor: "t" });
    assert.deepEqual(await fx.right.sessions.validate(session.token), { valid: false, reason: "revoked" });
    const later = await fx.ahead.sessions.createSession(fx.bystanderId, { aal: 1 });
    await runJob(fx.right.contain, job.id);
    const left = await fx.database.db.selectFrom("sessions").select("id").execute();
    assert.deepEqual(left.map((r) => r.id), [later.session.id]);
    assert.equal((await fx.ahead.sessions.validate(later.token)).valid, true, "a login after the job is left alone, even from the skewed node");
  });

  it("attack: an email-change link asked for on the skewed node dies when the owner's sessions are revoked", async () => {
    const fx = await setup(await dfx.fresh());
    const outbox = new Outbox({ database: fx.database, clock: fx.ahead.clock, random: systemRandom });
    const ahead = createEmailChangeService({ database: fx.database, clock: fx.ahead.clock, random: systemRandom, outbox });
    assert.equal(await ahead.request({ id: fx.userId, email: "u0@example.org" }, "thief@example.net", { publicURL: "https://bulwark.test", serviceName: "Bulwark" }), "queued");
    const mail = await fx.database.db.selectFrom("outbox_messages").selectAll().where("to_address", "=", "thief@example.net").executeTakeFirstOrThrow();
    const token = /confirm-email#token=(ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/.exec(JSON.stringify(mail))?.[1];
    assert.ok(token, "the link was mailed");
    assert.equal((await ahead.check(token)).valid, true);
    await fx.right.sessions.revokeUser(fx.userId);
    await assert.rejects(ahead.confirm(token), { code: "BULWARK_ERR_EMAIL_CHANGE_TOKEN" });
    const user = await fx.database.db.selectFrom("users").select("email").where("id", "=", fx.userId).executeTakeFirstOrThrow();
    assert.equal(user.email, "u0@example.org", "the address did not move");
  });
  it("a raise held open on PostgreSQL makes no other raise wait, and a session committed before it is still refused", { timeout: 60_000 }, async (t) => {
    const database = await dfx.fresh();
    if (database.dialect !== "postgres") {
      t.skip("SQLite has one writer: a second raise waits for the first by design");
      return;
    }
    const fx = await setup(database);
    const before = await fx.ahead.sessions.createSession(fx.userId, { aal: 1 });
    const bystander = await fx.ahead.sessions.createSession(fx.bystanderId, { aal: 1 });
    let release = (): void => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    let opened = (): void => {};
    const inside = new Promise<void>((resolve) => (opened = resolve));
    // A long raise: a password change or a containment job's stamps, still in its transaction.
    const raise = fx.database.transaction(async (trx) => {
      await raiseStamp(trx, userScope(fx.userId), revokedBefore(NOW), NOW);
      opened();
      await held;
    });
    await inside;
    try {
      // Another user's raise completes while the first is open (with a counter row it waited for the first's commit;
      // with a per-user lock taken in the other order, the two deadlocked).
      await fx.right.sessions.revokeUser(fx.bystanderId);
      assert.deepEqual(await fx.right.sessions.validate(bystander.token), { valid: false, reason: "revoked" });
    } finally {
      release();
      await raise;
    }
    assert.deepEqual(await fx.right.sessions.validate(before.token), { valid: false, reason: "revoked" });
    const next = await fx.ahead.sessions.createSession(fx.userId, { aal: 1 });
    assert.equal((await fx.ahead.sessions.validate(next.token)).valid, true, "one issued after the commit is kept");
  });
});
