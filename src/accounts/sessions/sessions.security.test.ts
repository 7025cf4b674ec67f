// Attacks on sessions that must fail, on SQLite and PostgreSQL: fixation, a stolen database row replayed as
// a cookie, a tampered secret, an expired session, sessions meant to be dead after a revocation stamp, and credentials
// stored while a containment holds the account.
import assert from "node:assert/strict";
import { it } from "node:test";
import { sql, type Kysely } from "kysely";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { MIGRATIONS } from "../../store/migrations/index.ts";
import { createUserStore, type UserStore } from "../users/user-store.ts";
import type { Schema } from "../../store/schema.ts";
import { GLOBAL_SCOPE, holdSessionForNewCredential, raiseStamp, revokedBefore, userScope } from "./revocation.ts";
import { createSessionManager, REPLACED_GRACE_MS, type SessionManager } from "./session-manager.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

async function setup(database: Database): Promise<{ clock: ManualClock; users: UserStore; sessions: SessionManager }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
  const list = MIGRATIONS;
  const outcome = await migrate(database, clock, list);
  if (outcome.error) throw outcome.error;
  return { clock, users: createUserStore({ database, clock, random: systemRandom }), sessions: createSessionManager({ database, clock, random: systemRandom }) };
}

/** A transaction that runs `work`, then stays open until `release()` (which resolves once it ended; call it in a finally). */
function holdOpen(database: Database, work: (trx: Kysely<Schema>) => Promise<void>): { inside: Promise<void>; release: () => Promise<void> } {
  let inside!: () => void;
  let release!: () => void;
  const entered = new Promise<void>((r) => (inside = r));
  const released = new Promise<void>((r) => (release = r));
  const done = database.transaction(async (trx) => {
    await work(trx);
    inside();
    await released;
  });
  return {
    inside: entered,
    release: async () => {
      release();
      await done;
    },
  };
}

/** True when `p` settles (either way) within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true, () => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
}

async function count(database: Database, userId: string): Promise<number> {
  const row = await database.db.selectFrom("sessions").select((eb) => eb.fn.countAll<number>().as("n")).where("user_id", "=", userId).executeTakeFirstOrThrow();
  return Number(row.n);
}

function flip(text: string, at: number): string {
  const c = text[at] === "A" ? "B" : "A";
  return text.slice(0, at) + c + text.slice(at + 1);
}

forEachDialect("session attacks", (fx) => {
  it("session fixation: a token planted before login is dead after login, and the new one shares nothing with it", async () => {
    // ASVS 7.2.4: a new session token on authentication; the current one is terminated.
    const { users, sessions } = await setup(await fx.fresh());
    const victim = await users.create({ email: "victim@example.org" });
    // The attacker obtains a pre-login session and plants its cookie in the victim's browser.
    const planted = await sessions.createSession(null, { ip: "192.0.2.66" });
    const loggedIn = await sessions.rotate(planted.token, { userId: victim.id, aal: 1 });
    assert.deepEqual(await sessions.validate(planted.token), { valid: false, reason: "replaced" }, "the planted token is not promoted");
    assert.notEqual(loggedIn.session.id, planted.session.id, "new id");
    assert.notEqual(loggedIn.token.split(".")[1], planted.token.split(".")[1], "new secret");
    // Grafting the planted secret onto the new id does not work either.
    const grafted = `${loggedIn.session.id}.${planted.token.split(".")[1]}`;
    assert.deepEqual(await sessions.validate(grafted), { valid: false, reason: "bad-secret" });
    const ok = await sessions.validate(loggedIn.token);
    assert.equal(ok.valid && ok.userId, victim.id);
  });

  it("session fixation on step-up: the password-only token is dead once MFA raises the session", async () => {
    const { users, sessions } = await setup(await fx.fresh());
    const user = await users.create({ email: "stepup@example.org" });
    const aal1 = await sessions.createSession(user.id, { aal: 1 });
    const aal2 = await sessions.rotate(aal1.token, { aal: 2 });
    assert.equal((await sessions.validate(aal1.token)).valid, false);
    await assert.rejects(sessions.rotate(aal1.token, { aal: 2 }), { code: "BULWARK_ERR_SESSION_REPLACED" }, "a dead token cannot be rotated again");
    const ok = await sessions.validate(aal2.token);
    assert.equal(ok.valid && ok.session.aal, 2);
  });

  it("a session a login earned is stored only while the password it verified is still the account's (a reset or change in between wins)", async () => {
    const database = await fx.fresh();
    const { clock, users, sessions } = await setup(database);
    const user = await users.create({ email: "verified@example.org", passwordHash: "$argon2id$old", passwordScheme: "argon2id" });
    const read = (await users.getById(user.id))!;
    const verified = { changedAt: read.passwordChangedAt };
    assert.notEqual(verified.changedAt, null);
    const before = await sessions.createSession(user.id, { aal: 1, verifiedPassword: verified });
    assert.equal((await sessions.validate(before.token)).valid, true, "unchanged password: stored");
    // A rehash at login (same password, new format) keeps the change time: still the verified password.
    assert.equal(await users.swapPasswordHash(user.id, "$argon2id$old", { hash: "$argon2id$rehashed", scheme: "argon2id", changed: false }), true);
    assert.equal((await sessions.createSession(user.id, { aal: 1, verifiedPassword: verified })).session.userId, user.id);
    // The owner resets the password while a login with the old one is being verified — in the same millisecond
    // as the password was last set: the change time still moves forward (it is the password's version).
    assert.equal(await users.swapPasswordHash(user.id, "$argon2id$rehashed", { hash: "$argon2id$new", scheme: "argon2id", changed: true }), true);
    assert.equal((await users.getById(user.id))!.passwordChangedAt, (verified.changedAt as number) + 1);
    const count = async (): Promise<number> => (await sessions.list(user.id)).length;
    const n = await count();
    await assert.rejects(sessions.createSession(user.id, { aal: 1, verifiedPassword: verified }), { code: "BULWARK_ERR_SESSION_PASSWORD_CHANGED" });
    const planted = await sessions.createSession(null, {});
    await assert.rejects(sessions.rotate(planted.token, { userId: user.id, aal: 1, verifiedPassword: verified }), { code: "BULWARK_ERR_SESSION_PASSWORD_CHANGED" });
    assert.equal((await sessions.validate(planted.token)).valid, true, "a refused rotation rolls back: the pre-login session is untouched");
    assert.equal(await count(), n, "no session was stored");
    // An invalidated password (containment) earns nothing either, even with the change time unchanged.
    const now = (await users.getById(user.id))!;
    await database.db.updateTable("users").set({ password_invalidated_at: clock.now() }).where("id", "=", user.id).execute();
    await assert.rejects(sessions.createSession(user.id, { aal: 1, verifiedPassword: { changedAt: now.passwordChangedAt } }), { code: "BULWARK_ERR_SESSION_PASSWORD_CHANGED" });
  });

  it("two racing rotations of one token yield one new session, not two", async () => {
    const { users, sessions } = await setup(await fx.fresh());
    const user = await users.create({ email: "race@example.org" });
    const { token } = await sessions.createSession(user.id);
    const results = await Promise.allSettled([sessions.rotate(token, { aal: 2 }), sessions.rotate(token, { aal: 2 })]);
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    assert.equal((await sessions.list(user.id)).length, 1);
  });

  it("what a rotation rewards commits with it or not at all: `within` runs only for the request that won the old session", async () => {
    const { users, sessions } = await setup(await fx.fresh());
    const user = await users.create({ email: "within@example.org" });
    const { token } = await sessions.createSession(user.id, { aal: 1 });
    const failed = new Error("the factor was spent elsewhere");
    await assert.rejects(sessions.rotate(token, { aal: 2, keepLifetime: true, within: async () => { throw failed; } }), failed);
    const kept = await sessions.validate(token);
    assert.equal(kept.valid && kept.session.aal, 1, "the rollback kept the old session as it was");
    assert.equal((await sessions.list(user.id)).length, 1, "and made no new one");
    let calls = 0;
    const stepped = await sessions.rotate(token, { aal: 2, keepLifetime: true, within: async (t) => {
      calls++;
      // It runs in the rotation's transaction: the old row is already gone there.
      assert.equal(await t.selectFrom("sessions").select("id").where("user_id", "=", user.id).executeTakeFirst(), undefined);
    } });
    assert.equal(calls, 1);
    // A request that raced it with the same old token loses before its `within` runs.
    await assert.rejects(sessions.rotate(token, { aal: 2, within: async () => { calls++; } }), { code: "BULWARK_ERR_SESSION_REPLACED" });
    assert.equal(calls, 1, "the loser's reward never ran");
    assert.equal((await sessions.validate(stepped.token)).valid, true);
  });

  it("attack: a replaced token is refused as 'replaced' for a minute, only with its own secret, then as unknown", async () => {
    const { clock, users, sessions } = await setup(await fx.fresh());
    const user = await users.create({ email: "replaced@example.org" });
    const { token } = await sessions.createSession(user.id);
    const stepped = await sessions.rotate(token, { aal: 2 });
    assert.deepEqual(await sessions.validate(token), { valid: false, reason: "replaced" }, "refused: a rotation never lets the old token back in");
    const [id] = token.split(".");
    assert.deepEqual(await sessions.validate(`${id}.${"A".repeat(43)}`), { valid: false, reason: "unknown" }, "a guessed secret learns nothing");
    assert.equal((await sessions.validate(stepped.token)).valid, true);
    await assert.rejects(sessions.rotate(token, { aal: 2 }), { code: "BULWARK_ERR_SESSION_REPLACED" }, "a step-up of the old token gets nothing");
    clock.advance(REPLACED_GRACE_MS);
    assert.deepEqual(await sessions.validate(token), { valid: false, reason: "unknown" });
    await sessions.purgeExpired();
    clock.set(clock.now() - REPLACED_GRACE_MS);
    assert.deepEqual(await sessions.validate(token), { valid: false, reason: "unknown" }, "purged: the record is gone, whatever the clock says");
  });

  it("a login that loses the race to rotate its pre-login token still gets a session of its own", async () => {
    const { users, sessions } = await setup(await fx.fresh());
    const user = await users.create({ email: "twologins@example.org" });
    const anonymous = await sessions.createSession(null);
    const results = await Promise.all([sessions.rotate(anonymous.token, { userId: user.id, aal: 1 }), sessions.rotate(anonymous.token, { userId: user.id, aal: 1 })]);
    assert.notEqual(results[0].session.id, results[1].session.id);
    for (const r of results) assert.equal((await sessions.validate(r.token)).valid, true);
    assert.equal((await sessions.validate(anonymous.token)).valid, false, "the pre-login token is never promoted");
  });

  it("a stolen database row cannot be replayed as a cookie", async () => {
    // The Lucia v3 / Drupal 7 weakness: raw session ids in the database. Here only SHA-256(secret) is stored.
    const database = await fx.fresh();
    const { users, sessions } = await setup(database);
    const user = await users.create({ email: "row@example.org" });
    const { token } = await sessions.createSession(user.id);
    const row = await database.db.selectFrom("sessions").selectAll().executeTakeFirstOrThrow();
    assert.ok(!JSON.stringify(row).includes(token.split(".")[1] ?? "?"), "the secret itself is not stored");
    // The hash as it is stored (hex, rejected by shape), and re-encoded to the secret's shape (rejected by hash).
    const asHex = `${row.id}.${row.secret_hash}`;
    const asBase64URL = `${row.id}.${Buffer.from(row.secret_hash, "hex").toString("base64url")}`;
    assert.deepEqual(await sessions.validate(asHex), { valid: false, reason: "malformed" });
    assert.deepEqual(await sessions.validate(asBase64URL), { valid: false, reason: "bad-secret" });
    assert.deepEqual(await sessions.validate(row.id), { valid: false, reason: "malformed" }, "the id alone is not a session");
  });

  it("a tampered secret or id is refused, with no hint beyond 'bad secret' for a known id", async () => {
    const { users, sessions } = await setup(await fx.fresh());
    const user = await users.create({ email: "tamper@example.org" });
    const { token, session } = await sessions.createSession(user.id);
    const dot = token.indexOf(".");
    for (const at of [dot + 1, dot + 20, token.length - 1]) {
      assert.deepEqual(await sessions.validate(flip(token, at)), { valid: false, reason: "bad-secret" });
    }
    const otherId = `ses_${"a".repeat(26)}${token.slice(dot)}`;
    assert.deepEqual(await sessions.validate(otherId), { valid: false, reason: "unknown" });
    for (const junk of ["", ".", "x".repeat(100_000), `${token}\u0000`, ` ${token}`, token.toUpperCase()]) {
      assert.equal((await sessions.validate(junk)).valid, false);
    }
    assert.equal((await sessions.validate(token)).valid, true, "failed guesses do not end the real session");
    assert.equal(session.userId, user.id);
  });

  it("an idle session and an over-age session are refused and deleted", async () => {
    // ASVS 7.3.1 (idle 30 min), 7.3.2 (absolute 12 h): NIST SP 800-63B AAL2.
    const database = await fx.fresh();
    const { users, sessions, clock } = await setup(database);
    const user = await users.create({ email: "idle@example.org" });
    const idle = await sessions.createSession(user.id);
    clock.advance(29 * MINUTE);
    const busy = await sessions.createSession(user.id);
    clock.advance(MINUTE);
    assert.deepEqual(await sessions.validate(idle.token), { valid: false, reason: "idle-expired" });
    assert.deepEqual(await sessions.validate(idle.token), { valid: false, reason: "unknown" }, "the row is gone");
    for (let t = 0; t < 12 * HOUR; t += 10 * MINUTE) {
      clock.advance(10 * MINUTE);
      await sessions.validate(busy.token);
    }
    assert.deepEqual(await sessions.validate(busy.token), { valid: false, reason: "unknown" }, "refused at 12 h and deleted");
  });

  it("a global revocation stamp kills every existing session at once, before any row is deleted", async () => {
    // ASVS 7.4.5: administrators can terminate the sessions of all users.
    const database = await fx.fresh();
    const { users, sessions, clock } = await setup(database);
    const a = await users.create({ email: "a@example.org" });
    const b = await users.create({ email: "b@example.org" });
    const sa = await sessions.createSession(a.id);
    const sb = await sessions.createSession(b.id);
    const anon = await sessions.createSession(null);
    clock.advance(1000);
    await sessions.revokeAll();
    for (const s of [sa, sb, anon]) assert.deepEqual(await sessions.validate(s.token), { valid: false, reason: "revoked" });
    const rows = await database.db.selectFrom("sessions").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
    assert.equal(Number(rows.n), 3, "rows still exist: the stamp alone refused them");
    assert.deepEqual(await sessions.list(a.id), []);
    clock.advance(1000);
    const fresh = await sessions.createSession(a.id);
    assert.equal((await sessions.validate(fresh.token)).valid, true, "a login after the stamp works");
  });

  it("a revocation kills a session created in the same millisecond, just before it", async () => {
    const database = await fx.fresh();
    const { users, sessions } = await setup(database);
    const a = await users.create({ email: "same-ms@example.org" });
    const s = await sessions.createSession(a.id);
    await sessions.revokeUser(a.id); // the manual clock has not moved: same millisecond
    assert.deepEqual(await sessions.validate(s.token), { valid: false, reason: "revoked" });
    const t = await sessions.createSession(a.id);
    await sessions.revokeAll();
    assert.deepEqual(await sessions.validate(t.token), { valid: false, reason: "revoked" });
  });

  it("a per-user stamp kills that user's sessions only, and a stamp never moves backwards", async () => {
    // ASVS 7.4.5: administrators can terminate the sessions of one user.
    const { users, sessions, clock } = await setup(await fx.fresh());
    const a = await users.create({ email: "a@example.org" });
    const b = await users.create({ email: "b@example.org" });
    const sa = await sessions.createSession(a.id);
    const sb = await sessions.createSession(b.id);
    clock.advance(1000);
    const stamp = await sessions.revokeUser(a.id);
    assert.deepEqual(await sessions.validate(sa.token), { valid: false, reason: "revoked" });
    assert.equal((await sessions.validate(sb.token)).valid, true);
    assert.equal(await sessions.revokeUser(a.id, { before: stamp - 5000 }), stamp, "an older stamp does not un-revoke");
    assert.deepEqual(await sessions.validate(sa.token), { valid: false, reason: "revoked" });
    await assert.rejects(sessions.revokeAll({ before: clock.now() + HOUR }), { code: "BULWARK_ERR_REVOCATION_FUTURE" });
    await assert.rejects(sessions.rotate(sa.token, { aal: 2 }), { code: "BULWARK_ERR_SESSION_REVOKED" }, "a revoked session cannot be rotated into a live one");
  });

  it("a stamp with an earlier 'before' spares sessions created after it", async () => {
    const { users, sessions, clock } = await setup(await fx.fresh());
    const user = await users.create({ email: "scope@example.org" });
    const old = await sessions.createSession(user.id);
    clock.advance(10 * MINUTE);
    const cutoff = clock.now();
    const recent = await sessions.createSession(user.id);
    clock.advance(MINUTE);
    await sessions.revokeAll({ before: cutoff });
    assert.equal((await sessions.validate(old.token)).valid, false);
    assert.equal((await sessions.validate(recent.token)).valid, true);
  });

  it("a disabled or locked account has no usable session", async () => {
    // ASVS 7.4.2: sessions end when an account is disabled.
    const database = await fx.fresh();
    const { users, sessions } = await setup(database);
    const d = await users.create({ email: "d@example.org" });
    const l = await users.create({ email: "l@example.org" });
    const sd = await sessions.createSession(d.id);
    const sl = await sessions.createSession(l.id);
    await database.db.updateTable("users").set({ status: "disabled" }).where("id", "=", d.id).execute();
    await database.db.updateTable("users").set({ locked_at: 1, locked_reason: "containment" }).where("id", "=", l.id).execute();
    assert.deepEqual(await sessions.validate(sd.token), { valid: false, reason: "account-disabled" });
    assert.deepEqual(await sessions.validate(sl.token), { valid: false, reason: "account-locked" });
  });

  // A containment batch or job creation takes no session turn (one advisory lock per account of a batch would fill
  // PostgreSQL's lock table): it locks the account rows, and a transaction storing a credential waits for that lock
  // (docs/decisions/0018-credentials-wait-for-containment.md). Here the containment's transaction is held open by hand.
  it("attack: a login whose session is stored while a containment batch holds the account and invalidates its password gets no session (PostgreSQL race; ASVS 7.4.3)", async (t) => {
    const database = await fx.fresh();
    if (database.dialect !== "postgres") return t.skip("SQLite runs one writer at a time: the statements cannot interleave");
    const { users, sessions, clock } = await setup(database);
    const victim = await users.create({ email: "leaked@example.org" });
    const batch = holdOpen(database, async (trx) => {
      await trx.selectFrom("users").select("id").where("id", "=", victim.id).forNoKeyUpdate().execute();
      await trx.updateTable("users").set({ password_invalidated_at: clock.now() }).where("id", "=", victim.id).execute();
      await raiseStamp(trx, userScope(victim.id), revokedBefore(clock.now()), clock.now());
    });
    let login: Promise<unknown>;
    try {
      await batch.inside;
      clock.advance(5); // dated after the batch's stamp, with its epoch: only the wait refuses it
      login = sessions.createSession(victim.id, { verifiedPassword: { changedAt: victim.passwordChangedAt } });
      assert.equal(await settlesWithin(login, 300), false, "the login waits for the batch");
    } finally {
      await batch.release();
    }
    await assert.rejects(login, { code: "BULWARK_ERR_SESSION_PASSWORD_CHANGED" });
    assert.equal(await count(database, victim.id), 0, "no session row");
  });

  it("attack: a credential a session makes while a job's creation raises the account's stamp (or, --all, the global one) waits for it and finds the session refused (PostgreSQL race; ASVS 7.4.1)", async (t) => {
    const database = await fx.fresh();
    if (database.dialect !== "postgres") return t.skip("SQLite runs one writer at a time: the statements cannot interleave");
    const { users, sessions, clock } = await setup(database);
    // The global stamp's row exists before a raise takes its epoch (ensureGlobalStamps, in the containment module).
    await raiseStamp(database.db, GLOBAL_SCOPE, 0, clock.now(), 0);
    for (const scope of ["user", "global"] as const) {
      const victim = await users.create({ email: `${scope}-mint@example.org` });
      const held = await sessions.createSession(victim.id);
      const creation = holdOpen(database, async (trx) => {
        if (scope === "user") await trx.selectFrom("users").select("id").where("id", "=", victim.id).forNoKeyUpdate().execute();
        else await trx.selectFrom("revocation_stamps").select("scope").where("scope", "=", GLOBAL_SCOPE).forUpdate().execute();
        await raiseStamp(trx, scope === "user" ? userScope(victim.id) : GLOBAL_SCOPE, revokedBefore(clock.now()), clock.now());
      });
      let mint: Promise<unknown>;
      try {
        await creation.inside;
        mint = database.transaction((trx) => holdSessionForNewCredential(trx, victim.id, held.session.id));
        assert.equal(await settlesWithin(mint, 300), false, `${scope}: the mint waits for the job's creation`);
      } finally {
        await creation.release();
      }
      await assert.rejects(mint, { code: "BULWARK_ERR_SESSION_REVOKED" }, scope);
    }
  });

  it("a credential a session makes reads the session as it stands in its own transaction: ended, stamped, or its account locked, it is refused; live, it passes", async () => {
    const database = await fx.fresh();
    const { users, sessions } = await setup(database);
    const user = await users.create({ email: "maker@example.org" });
    const live = await sessions.createSession(user.id);
    const check = (id: string): Promise<void> => database.transaction((trx) => holdSessionForNewCredential(trx, user.id, id));
    await check(live.session.id);
    const ended = await sessions.createSession(user.id);
    await sessions.end(ended.session.id, user.id);
    await assert.rejects(check(ended.session.id), { code: "BULWARK_ERR_SESSION_REVOKED" }, "ended");
    await assert.rejects(database.transaction((trx) => holdSessionForNewCredential(trx, "usr_other", live.session.id)), { code: "BULWARK_ERR_SESSION_REVOKED" }, "another user's");
    await database.db.updateTable("users").set({ locked_at: 1, locked_reason: "containment" }).where("id", "=", user.id).execute();
    await assert.rejects(check(live.session.id), { code: "BULWARK_ERR_SESSION_REVOKED" }, "locked");
    await database.db.updateTable("users").set({ locked_at: null, locked_reason: null }).where("id", "=", user.id).execute();
    await sessions.revokeUser(user.id);
    await assert.rejects(check(live.session.id), { code: "BULWARK_ERR_SESSION_REVOKED" }, "stamped");
  });

  it("attack: a session rotated while the owner ends every other session does not outlive the ending (PostgreSQL race)", async (t) => {
    const database = await fx.fresh();
    if (database.dialect !== "postgres") return t.skip("SQLite runs one writer at a time: the statements cannot interleave");
    const { users, sessions } = await setup(database);
    const owner = await users.create({ email: "owner@example.org" });
    const mine = await sessions.createSession(owner.id, { aal: 1 });
    const thief = await sessions.createSession(owner.id, { aal: 1 });
    // The thief's step-up rotation is slow to insert its new row (a busy server, here a trigger), and the owner's
    // "sign out everywhere else" runs meanwhile: it must still end the session the rotation makes.
    await sql`CREATE FUNCTION slow_session() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.4); RETURN NEW; END $$`.execute(database.db);
    await sql`CREATE TRIGGER slow_session BEFORE INSERT ON sessions FOR EACH ROW EXECUTE FUNCTION slow_session()`.execute(database.db);
    const rotating = sessions.rotate(thief.token, { aal: 2 });
    await new Promise((r) => setTimeout(r, 150));
    await sessions.endAll(owner.id, { except: mine.session.id });
    const rotated = await rotating;
    assert.equal((await sessions.validate(rotated.token)).valid, false, "the thief's new session was ended too");
    assert.equal((await sessions.validate(mine.token)).valid, true);
  });
});
