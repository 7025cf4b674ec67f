// The session manager on SQLite and PostgreSQL: create, validate, touch, list, end, rotate, revoke, purge.
// The attacks these stop are in sessions.security.test.ts.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { MIGRATIONS } from "../../store/migrations/index.ts";
import { createUserStore, type UserStore } from "../users/user-store.ts";
import { resolveSessionPolicy, type SessionPolicy } from "./policy.ts";
import { createSessionManager, type SessionManager } from "./session-manager.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

async function setup(database: Database, policy: Partial<SessionPolicy> = {}): Promise<{ clock: ManualClock; users: UserStore; sessions: SessionManager }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
  const list = MIGRATIONS;
  const outcome = await migrate(database, clock, list);
  if (outcome.error) throw outcome.error;
  return { clock, users: createUserStore({ database, clock, random: systemRandom }), sessions: createSessionManager({ database, clock, random: systemRandom, policy }) };
}

forEachDialect("session manager", (fx) => {
  it("creates a session that validates, carrying the user, assurance level, IP and user agent", async () => {
    const { users, sessions, clock } = await setup(await fx.fresh());
    const user = await users.create({ email: "ana@example.org" });
    const { token, session } = await sessions.createSession(user.id, { ip: "203.0.113.7", userAgent: "Firefox\u0000/128\n", aal: 2 });
    assert.equal(session.userId, user.id);
    assert.equal(session.aal, 2);
    assert.equal(session.userAgent, "Firefox/128", "control characters are removed");
    assert.equal(session.expiresAt, clock.now() + 12 * HOUR);
    const check = await sessions.validate(token);
    assert.equal(check.valid, true);
    assert.ok(check.valid);
    assert.equal(check.userId, user.id);
    assert.deepEqual(check.session, session);
    assert.ok(!JSON.stringify(check).includes(token.split(".")[1] ?? "?"), "the result carries no secret");
  });

  it("bounds a huge user agent instead of refusing the login", async () => {
    const { users, sessions } = await setup(await fx.fresh());
    const user = await users.create({ email: "ua@example.org" });
    const { session } = await sessions.createSession(user.id, { userAgent: "x".repeat(100_000), ip: "1".repeat(500) });
    assert.equal(session.userAgent?.length, 512);
    assert.equal(session.ip?.length, 64);
  });

  it("writes last_seen at most once per minute, not on every request", async () => {
    const { users, sessions, clock } = await setup(await fx.fresh());
    const user = await users.create({ email: "t@example.org" });
    const { token, session } = await sessions.createSession(user.id);
    clock.advance(30_000);
    const a = await sessions.validate(token);
    assert.equal(a.valid && a.session.lastSeenAt, session.createdAt, "30 s later: no write");
    clock.advance(31_000);
    const b = await sessions.validate(token);
    assert.equal(b.valid && b.session.lastSeenAt, clock.now(), "61 s later: written");
    assert.equal(await sessions.touch(session.id), false, "a second write within the minute is skipped");
    const [listed] = await sessions.list(user.id);
    assert.equal(listed?.lastSeenAt, clock.now());
  });

  it("keeps an active session alive past the idle timeout but not past the absolute lifetime", async () => {
    // ASVS 7.3.1, 7.3.2
    const { users, sessions, clock } = await setup(await fx.fresh());
    const user = await users.create({ email: "busy@example.org" });
    const { token } = await sessions.createSession(user.id);
    for (let elapsed = 0; elapsed < 12 * HOUR - 20 * MINUTE; elapsed += 20 * MINUTE) {
      clock.advance(20 * MINUTE);
      assert.equal((await sessions.validate(token)).valid, true, `after ${elapsed / MINUTE + 20} min`);
    }
    clock.advance(20 * MINUTE);
    assert.deepEqual(await sessions.validate(token), { valid: false, reason: "absolute-expired" });
  });

  it("honours a configured policy and refuses an impossible one", async () => {
    const { users, sessions, clock } = await setup(await fx.fresh(), { idleTimeoutMs: 5 * MINUTE, absoluteTimeoutMs: HOUR });
    const user = await users.create({ email: "p@example.org" });
    const { token } = await sessions.createSession(user.id);
    clock.advance(5 * MINUTE);
    assert.deepEqual(await sessions.validate(token), { valid: false, reason: "idle-expired" });
    assert.throws(() => resolveSessionPolicy({ idleTimeoutMs: 2 * HOUR, absoluteTimeoutMs: HOUR }), { code: "BULWARK_ERR_SESSION_POLICY" });
    assert.throws(() => resolveSessionPolicy({ idleTimeoutMs: 0 }), { code: "BULWARK_ERR_SESSION_POLICY" });
    assert.throws(() => resolveSessionPolicy({ touchIntervalMs: 30 * MINUTE }), { code: "BULWARK_ERR_SESSION_POLICY" });
  });

  it("a shortened absolute lifetime reaches sessions issued under the longer one: validate, list, purge and expiresAt (ASVS 7.3.2)", async () => {
    // As after a restart with a lower BULWARK_SESSION_ABSOLUTE_MINUTES: the rows keep the expiry written under 12 hours.
    const database = await fx.fresh();
    const { users, sessions: before, clock } = await setup(database);
    const user = await users.create({ email: "shortened@example.org" });
    const kept = await before.createSession(user.id);
    const swept = await before.createSession(user.id);
    const after = createSessionManager({ database, clock, random: systemRandom, policy: { absoluteTimeoutMs: HOUR } });
    clock.advance(25 * MINUTE);
    const inside = await after.validate(kept.token);
    assert.equal(inside.valid && inside.session.expiresAt, kept.session.createdAt + HOUR, "expiresAt is the earlier end");
    assert.equal((await after.validate(swept.token)).valid, true, "busy too: only the absolute limit can end it");
    assert.deepEqual((await after.list(user.id)).map((s) => s.expiresAt), [kept.session.createdAt + HOUR, swept.session.createdAt + HOUR], "listed with the earlier end");
    clock.advance(25 * MINUTE);
    assert.equal((await after.validate(kept.token)).valid, true);
    assert.equal((await after.validate(swept.token)).valid, true);
    clock.advance(10 * MINUTE);
    assert.deepEqual(await after.list(user.id), [], "not listed past the hour");
    assert.deepEqual(await after.validate(kept.token), { valid: false, reason: "absolute-expired" });
    assert.equal(await after.purgeExpired(), 1, "the one nobody presented is purged");
    // A lengthened lifetime gives none of them more time than they were issued with.
    const longer = await before.createSession(user.id);
    const lengthened = createSessionManager({ database, clock, random: systemRandom, policy: { absoluteTimeoutMs: 24 * HOUR } });
    const seen = await lengthened.validate(longer.token);
    assert.equal(seen.valid && seen.session.expiresAt, longer.session.createdAt + 12 * HOUR);
  });

  it("lists a user's live sessions, newest activity first, and nobody else's", async () => {
    // ASVS 7.5.2: users can view their active sessions.
    const { users, sessions, clock } = await setup(await fx.fresh());
    const ana = await users.create({ email: "ana@example.org" });
    const bob = await users.create({ email: "bob@example.org" });
    const first = await sessions.createSession(ana.id, { userAgent: "laptop" });
    clock.advance(MINUTE);
    const second = await sessions.createSession(ana.id, { userAgent: "phone" });
    await sessions.createSession(bob.id);
    clock.advance(MINUTE);
    await sessions.validate(first.token);
    const listed = await sessions.list(ana.id);
    assert.deepEqual(listed.map((s) => s.userAgent), ["laptop", "phone"]);
    assert.ok(listed.every((s) => s.userId === ana.id));
    assert.ok(listed.every((s) => !("secretHash" in s) && !("secret_hash" in s)), "the list carries no secret material");
    clock.advance(31 * MINUTE);
    assert.deepEqual(await sessions.list(ana.id), [], "idle sessions are not listed");
    assert.equal(second.session.userId, ana.id);
  });

  it("ends one session, only for its owner, and all sessions but the current one", async () => {
    // ASVS 7.4.1 (termination disallows further use), 7.4.3 (end the others after a factor change), 7.5.2
    const { users, sessions } = await setup(await fx.fresh());
    const ana = await users.create({ email: "ana@example.org" });
    const bob = await users.create({ email: "bob@example.org" });
    const a1 = await sessions.createSession(ana.id);
    const a2 = await sessions.createSession(ana.id);
    const a3 = await sessions.createSession(ana.id);
    assert.equal(await sessions.end(a1.session.id, bob.id), false, "bob cannot end ana's session");
    assert.equal((await sessions.validate(a1.token)).valid, true);
    assert.equal(await sessions.end(a1.session.id, ana.id), true);
    assert.deepEqual(await sessions.validate(a1.token), { valid: false, reason: "unknown" });
    assert.equal(await sessions.endAll(ana.id, { except: a3.session.id }), 1);
    assert.equal((await sessions.validate(a2.token)).valid, false);
    assert.equal((await sessions.validate(a3.token)).valid, true);
    assert.equal(await sessions.endAll(ana.id), 1);
    assert.equal((await sessions.validate(a3.token)).valid, false);
  });

  it("deletes a user's sessions with the user (foreign key cascade)", async () => {
    // ASVS 7.4.2: a deleted account keeps no session.
    const database = await fx.fresh();
    const { users, sessions } = await setup(database);
    const user = await users.create({ email: "gone@example.org" });
    const { token, session } = await sessions.createSession(user.id);
    await database.db.deleteFrom("users").where("id", "=", user.id).execute();
    assert.deepEqual(await sessions.validate(token), { valid: false, reason: "unknown" });
    assert.equal(await sessions.end(session.id, user.id), false, "the row went with the user");
  });

  it("purges rows past their idle or absolute limit", async () => {
    const { users, sessions, clock } = await setup(await fx.fresh());
    const user = await users.create({ email: "purge@example.org" });
    await sessions.createSession(user.id);
    const live = await sessions.createSession(user.id);
    clock.advance(20 * MINUTE);
    await sessions.validate(live.token);
    clock.advance(15 * MINUTE);
    assert.equal(await sessions.purgeExpired(), 1);
    assert.equal((await sessions.validate(live.token)).valid, true);
  });

  it("rotates a session on MFA step-up: same user, higher assurance, new id and secret", async () => {
    const { users, sessions } = await setup(await fx.fresh());
    const user = await users.create({ email: "mfa@example.org" });
    const before = await sessions.createSession(user.id, { ip: "198.51.100.2", userAgent: "ua", aal: 1 });
    const after = await sessions.rotate(before.token, { aal: 2 });
    assert.equal(after.session.userId, user.id);
    assert.equal(after.session.aal, 2);
    assert.equal(after.session.ip, "198.51.100.2", "context carries over");
    assert.notEqual(after.session.id, before.session.id);
    assert.notEqual(after.token.split(".")[1], before.token.split(".")[1]);
    assert.equal((await sessions.validate(after.token)).valid, true);
  });

  it("rotating a pre-login session needs the user who logged in", async () => {
    const { sessions } = await setup(await fx.fresh());
    const anonymous = await sessions.createSession(null);
    assert.equal(anonymous.session.aal, 0);
    await assert.rejects(sessions.rotate(anonymous.token, { aal: 1 }), { code: "BULWARK_ERR_SESSION_USER_REQUIRED" });
    await assert.rejects(sessions.rotate(null, { aal: 1 }), { code: "BULWARK_ERR_SESSION_USER_REQUIRED" });
    await assert.rejects(sessions.createSession(null, { aal: 2 }), { code: "BULWARK_ERR_SESSION_POLICY" });
  });

  it("records whether the owner knows a login's browser (deviceTold), written at creation or marked after, never carried by a rotation", async () => {
    // What the second-factor step reads to decide whether to remember the browser (POST /auth/mfa/verify, ASVS 6.3.5).
    const { users, sessions } = await setup(await fx.fresh());
    const user = await users.create({ email: "told@example.org" });
    const read = async (token: string): Promise<boolean | undefined> => {
      const check = await sessions.validate(token);
      return check.valid ? check.session.deviceTold : undefined;
    };
    const plain = await sessions.createSession(user.id, { aal: 1 });
    assert.equal(plain.session.deviceTold, false, "not told unless the login says so");
    assert.equal(await read(plain.token), false);
    const known = await sessions.createSession(user.id, { aal: 1, deviceTold: true });
    assert.equal(known.session.deviceTold, true);
    assert.equal(await read(known.token), true);
    // The login's new-device notice went out after the session was stored: marked on the row.
    assert.equal(await sessions.markDeviceTold(plain.session.id), true);
    assert.equal(await read(plain.token), true);
    assert.equal(await sessions.markDeviceTold("ses_none"), false, "no such session");
    // A login rotating a presented cookie says it again; a step-up's session starts not told (it is never read there).
    const login = await sessions.rotate(known.token, { userId: user.id, aal: 1, deviceTold: true });
    assert.equal(await read(login.token), true);
    const stepped = await sessions.rotate(login.token, { aal: 2 });
    assert.equal(stepped.session.deviceTold, false);
    assert.equal(await read(stepped.token), false);
    // A pre-login session has no owner to have been told.
    const anonymous = await sessions.createSession(null, { deviceTold: true });
    assert.equal(anonymous.session.deviceTold, false);
    assert.equal(await sessions.markDeviceTold(anonymous.session.id), false);
  });
});

