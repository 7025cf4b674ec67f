// Passwords over HTTP: change, reset and registration, written as attacks that must fail — enumeration through
// reset and registration (same status, same body), a reused or forged reset link, a reset that would bypass
// MFA — with the mail read from a real in-process SMTP server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FloodControl } from "../src/accounts/flood/flood.ts";
import { floodIdentifier, MFA_FLOOD_NAMESPACE, MFA_FLOOD_POLICY } from "../src/accounts/mfa/index.ts";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { lockUser, unlockUser } from "../src/accounts/users/admin-changes.ts";
import { RESET_ACCEPTED } from "../src/http/auth/index.ts";
import { GOOD_PASSWORD, HOST, ORIGIN, totpCode } from "../src/http/auth/test-client.ts";
import { startMailRunner } from "../src/http/mail-runner.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { statementsDuring } from "./helpers/statements.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

/** The token in the newest reset mail to `address`. */
async function resetTokenFor(address: string): Promise<string> {
  await fx.deliver();
  const mails = fx.mailTo(address);
  assert.ok(mails.length > 0, `no mail to ${address}`);
  // The newest mail carrying a link: security notices (a first sign-in, say) may arrive around it.
  const link = /https:\/\/bulwark\.test\/reset-password#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
  const m = mails.map((mail) => link.exec(mail.body)).filter((found) => found !== null).at(-1);
  assert.ok(m, `no reset link in: ${mails.map((mail) => mail.subject).join(", ")}`);
  return m[1] as string;
}

/** The audit events of `type` about `subject`, oldest first, with their data parsed. */
async function eventsOf(type: string, subject: string): Promise<Array<Record<string, unknown>>> {
  const rows = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", type).where("subject", "=", subject).orderBy("seq").execute();
  return rows.map((r) => JSON.parse(r.data) as Record<string, unknown>);
}

describe("POST /auth/password/change", () => {
  it("needs the current password, applies the policy, ends the other sessions and mails a notice (ASVS 6.3.7, 7.4.3)", async () => {
    const ana = await fx.user("change@example.org");
    const b = fx.browser();
    const other = fx.browser();
    await b.login(ana.email, ana.password);
    await other.login(ana.email, ana.password);
    const wrong = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: "not my password at all", newPassword: `${GOOD_PASSWORD}!` } });
    assert.equal(wrong.statusCode, 401);
    const weak = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: ana.password, newPassword: "short" } });
    assert.equal(weak.statusCode, 400);
    assert.equal(weak.json().error.code, "BULWARK_ERR_PASSWORD_POLICY");
    const before = b.cookie;
    const ok = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: ana.password, newPassword: "lantern harbour seventeen owls" } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().sessionsEnded, 1);
    assert.notEqual(b.cookie, before, "the current browser gets a fresh session");
    assert.equal((await b.request("GET", "/auth/session")).json().authenticated, true);
    assert.equal((await other.request("GET", "/auth/session")).json().authenticated, false, "the other session ended");
    assert.equal((await fx.browser().login(ana.email, "lantern harbour seventeen owls")).statusCode, 200);
    assert.equal((await fx.browser().login(ana.email, ana.password)).statusCode, 401);
    await fx.deliver();
    const notice = fx.mailTo(ana.email).find((m) => /your password was changed/.test(m.subject));
    assert.ok(notice, "notice delivered over SMTP");
    assert.match(notice.body, /The password of your account was changed/);
  });
  it("attack: guessing the current password through a stolen session is throttled and every guess is audited", async () => {
    const ana = await fx.user("change-guess@example.org");
    const thief = fx.browser();
    await thief.login(ana.email, ana.password);
    const user = (await fx.app.accounts.users.findByIdentifier(ana.email))!;
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      statuses.push((await thief.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: `guess number ${i} of many`, newPassword: "a thief chose this passphrase" } })).statusCode);
    }
    assert.deepEqual(statuses, [401, 401, 401, 401, 401, 429]);
    const failed = await eventsOf("auth.password.change-failed", user.id);
    assert.equal(failed.length, 5, "each wrong guess is an audit event");
    assert.equal(failed[0]?.["reason"], "wrong-password");
    assert.equal(typeof failed[0]?.["ip"], "string");
    assert.deepEqual((await eventsOf("auth.password.change-throttled", user.id)).map((e) => e["reason"]), ["account"]);
  });

  it("attack: a stolen session hammering the form past its window cannot grow the audit log one row per refusal: auth.password.change-throttled is sampled per account (the first of each minute, naming the session; the next one kept counts those left out; the maintenance pass writes the rest as auth.refusals.unrecorded) (ASVS 16.3.1, 2.4.1)", async () => {
    const ana = await fx.user("change-sampled@example.org");
    const thief = fx.browser();
    await thief.login(ana.email, ana.password);
    const user = (await fx.app.accounts.users.findByIdentifier(ana.email))!;
    const sessionId = (await thief.request("GET", "/auth/session")).json().sessionId as string;
    const change = async (i: number): Promise<number> =>
      (await thief.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: `sampled guess ${i}`, newPassword: "a thief chose this passphrase" } })).statusCode;
    for (let i = 0; i < 5; i++) assert.equal(await change(i), 401);
    for (let i = 5; i < 25; i++) assert.equal(await change(i), 429, "past the account's window");
    let rows = await eventsOf("auth.password.change-throttled", user.id);
    assert.equal(rows.length, 1, "twenty refusals in one minute: one row");
    assert.equal(rows[0]?.["reason"], "account");
    assert.equal(rows[0]?.["sessionId"], sessionId, "it names the session that guessed");
    assert.equal(typeof rows[0]?.["ip"], "string");
    // A minute on, the next one is kept and says how many the sample left out.
    fx.clock.advance(60_000);
    assert.equal(await change(25), 429);
    for (let i = 26; i < 29; i++) assert.equal(await change(i), 429);
    rows = await eventsOf("auth.password.change-throttled", user.id);
    assert.equal(rows.length, 2);
    assert.equal(rows[1]?.["unrecordedBefore"], 19);
    // The three after it, whose sender never came back, are counted by the maintenance pass once their minute is over.
    fx.clock.advance(60_000);
    const maintenance = startMaintenance(fx.app, { intervalMs: 24 * 60 * 60_000, firstPassDelayMs: 24 * 60 * 60_000 });
    try {
      await maintenance.runOnce();
    } finally {
      await maintenance.stop();
    }
    assert.deepEqual((await eventsOf("auth.refusals.unrecorded", `password-change:${user.id}`)).map((e) => e["unrecorded"]), [3]);
  });

  it("attack: an outsider's 100 failures at the address do not keep the owner's known browser from changing the password; the same session in a browser the account does not know stays stopped (NIST SP 800-63B §5.2.2, ASVS 6.3.1)", async () => {
    const ana = await fx.user("change-stopped@example.org");
    const known = fx.browser({ newDevice: true });
    assert.equal((await known.login(ana.email, ana.password)).statusCode, 200);
    const copy = fx.browser({ newDevice: true });
    copy.cookie = known.cookie;
    for (let i = 0; i < 100; i++) await fx.app.accounts.flood.registerFailure({ identifier: ana.email, ip: `198.18.80.${i}` });
    const body = { currentPassword: ana.password, newPassword: "quiet orchard lanterns hum" };
    const stopped = await copy.request("POST", "/auth/password/change", { csrf: true, body });
    assert.equal(stopped.statusCode, 429);
    assert.equal(stopped.headers["retry-after"], undefined);
    const changed = await known.request("POST", "/auth/password/change", { csrf: true, body });
    assert.equal(changed.statusCode, 200, changed.body);
  });

  it("attack: a password invalidated by containment is not accepted as the current password, so the owner's reset link stays the way back", async () => {
    const ana = await fx.user("invalidated-change@example.org");
    const thief = fx.browser();
    await thief.login(ana.email, ana.password);
    const user = (await fx.app.accounts.users.findByIdentifier(ana.email))!;
    // What the invalidate-passwords lever does to the account (its reset link is issued separately).
    await fx.app.db.db.updateTable("users").set({ password_invalidated_at: fx.clock.now() }).where("id", "=", user.id).execute();
    const refused = await thief.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: ana.password, newPassword: "a thief chose this passphrase" } });
    assert.equal(refused.statusCode, 401, refused.body);
    assert.equal(refused.json().error.code, "BULWARK_ERR_PASSWORD_INVALIDATED");
    assert.match(refused.json().error.message, /reset/);
    const after = (await fx.app.accounts.users.findByIdentifier(ana.email))!;
    assert.notEqual(after.passwordInvalidatedAt, null, "still invalidated");
    assert.equal(after.passwordHash, user.passwordHash, "the password was not replaced");
    assert.equal((await fx.browser().login(ana.email, "a thief chose this passphrase")).statusCode, 401);
  });
});

describe("a password change and its notice commit together (ASVS 6.3.7)", () => {
  /** Runs `work` while the database fails as the outbox writes a message (a full disk, a lost connection, a crash). */
  async function withFailingOutbox<T>(work: () => Promise<T>): Promise<T> {
    const outbox = fx.app.accounts.outbox;
    outbox.enqueue = async () => { throw new Error("disk I/O error"); };
    try {
      return await work();
    } finally {
      delete (outbox as { enqueue?: unknown }).enqueue;
    }
  }

  it("attack: a change whose notice cannot be written does not happen — old password, sessions and links stay; a retry changes and tells once", async () => {
    const ana = await fx.user("change-atomic@example.org");
    const b = fx.browser();
    const other = fx.browser();
    await b.login(ana.email, ana.password);
    await other.login(ana.email, ana.password);
    const body = { currentPassword: ana.password, newPassword: "marble orchard lanterns glow" };
    const failed = await withFailingOutbox(() => b.request("POST", "/auth/password/change", { csrf: true, body }));
    assert.equal(failed.statusCode, 500, failed.body);
    assert.equal((await fx.browser().login(ana.email, ana.password)).statusCode, 200, "the old password still works: nothing changed");
    assert.equal((await other.request("GET", "/auth/session")).json().authenticated, true, "no session was ended");
    assert.equal((await eventsOf("auth.password.changed", ana.id)).length, 0);
    const ok = await b.request("POST", "/auth/password/change", { csrf: true, body });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((await other.request("GET", "/auth/session")).json().authenticated, false);
    await fx.deliver();
    assert.equal(fx.mailTo(ana.email).filter((m) => /your password was changed/.test(m.subject)).length, 1);
  });

  it("attack: a reset whose notice cannot be written does not happen — the link stays unspent and the sessions alive; a retry resets and tells once", async () => {
    const ana = await fx.user("reset-atomic@example.org");
    const signedIn = fx.browser();
    await signedIn.login(ana.email, ana.password);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { form: true, body: { email: ana.email } })).statusCode, 202);
    const token = await resetTokenFor(ana.email);
    const body = { token, newPassword: "velvet thunder paper boats" };
    const failed = await withFailingOutbox(() => fx.browser().request("POST", "/auth/password/reset/complete", { body }));
    assert.equal(failed.statusCode, 500, failed.body);
    assert.equal((await signedIn.request("GET", "/auth/session")).json().authenticated, true, "no session was ended");
    assert.equal((await fx.browser().login(ana.email, ana.password)).statusCode, 200, "the old password still works");
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body });
    assert.equal(done.statusCode, 200, done.body);
    assert.equal((await signedIn.request("GET", "/auth/session")).json().authenticated, false);
    await fx.deliver();
    assert.equal(fx.mailTo(ana.email).filter((m) => /your password was reset/.test(m.subject)).length, 1);
  });
});

describe("password reset", () => {
  it("attack: enumeration — a known and an unknown address get the same status and body (ASVS 6.3.8)", async () => {
    await fx.user("known@example.org");
    const known = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "known@example.org" } });
    const unknown = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "unknown@example.org" } });
    assert.equal(known.statusCode, 202);
    assert.equal(unknown.statusCode, 202);
    assert.equal(known.body, unknown.body);
    assert.deepEqual(known.json(), RESET_ACCEPTED);
    await fx.deliver();
    assert.equal(fx.mailTo("known@example.org").length, 1);
    assert.equal(fx.mailTo("unknown@example.org").length, 0);
  });

  it("resets through the mailed link once, under the policy, ending every session (ASVS 6.4.1, 7.4.3)", async () => {
    const ana = await fx.user("reset@example.org");
    const signedIn = fx.browser();
    await signedIn.login(ana.email, ana.password);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { form: true, body: { email: ana.email } })).statusCode, 202);
    const token = await resetTokenFor(ana.email);
    const weak = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "password" } });
    assert.equal(weak.statusCode, 400);
    assert.equal(weak.json().error.code, "BULWARK_ERR_PASSWORD_POLICY");
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly" } });
    assert.equal(done.statusCode, 200, done.body);
    assert.equal((await signedIn.request("GET", "/auth/session")).json().authenticated, false, "sessions ended");
    const again = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "another fine long passphrase" } });
    assert.equal(again.statusCode, 400, "attack: a used link works once");
    assert.equal(again.json().error.code, "BULWARK_ERR_RESET_TOKEN");
    assert.equal((await fx.browser().login(ana.email, "copper meadow whistles softly")).statusCode, 200);
    await fx.deliver();
    assert.ok(fx.mailTo(ana.email).some((m) => /your password was reset/.test(m.subject)), "reset notice delivered");
  });

  it("attack: a session row committed late by a racing rotation (created before the reset, missed by its delete) is refused all the same", async () => {
    const ana = await fx.user("reset-race@example.org");
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    const token = await resetTokenFor(ana.email);
    fx.clock.advance(1000);
    const before = fx.clock.now() - 1;
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly" } })).statusCode, 200);
    // On PostgreSQL a step-up's new row for the thief's session can commit after the reset's DELETE took its snapshot:
    // it is made here directly, with the creation time the rotation gave it.
    const late = await fx.app.accounts.sessions.createSession(ana.id, { aal: 2 });
    await fx.app.db.db.updateTable("sessions").set({ created_at: before }).where("id", "=", late.session.id).execute();
    assert.deepEqual(await fx.app.accounts.sessions.validate(late.token), { valid: false, reason: "revoked" });
  });

  it("attack: a new password of unpaired surrogates is refused, and none logs in as the U+FFFD password it would collide with (ASVS 6.2.8)", async () => {
    const ana = await fx.user("surrogates@example.org");
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } })).statusCode, 202);
    const token = await resetTokenFor(ana.email);
    // (Not one character repeated: the policy refuses repetitions on their own account.)
    const lone = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "\ud800 copper meadow whistles" } });
    assert.equal(lone.statusCode, 400);
    assert.equal(lone.json().error.code, "BULWARK_ERR_PASSWORD_POLICY");
    assert.match(lone.json().error.message, /not valid text/);
    const replacement = "\ufffd copper meadow whistles";
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: replacement } })).statusCode, 200);
    assert.equal((await fx.browser().login(ana.email, "\udfff copper meadow whistles")).statusCode, 401, "a different string does not sign in");
    assert.equal((await fx.browser().login(ana.email, replacement)).statusCode, 200);
  });

  it("attack: a login with the old password still being verified when the owner resets or changes it gets no session", async () => {
    // The attacker keeps signing in with the leaked password; the owner's reset ends every session. A login whose
    // (slow) verify was running meanwhile must not add one after that.
    const passwords = fx.app.accounts.passwords as { verifyAndRehash: typeof fx.app.accounts.passwords.verifyAndRehash };
    const holdNextVerify = (): { verified: Promise<void>; release: () => void } => {
      const original = passwords.verifyAndRehash;
      let release!: () => void;
      let verified!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const done = new Promise<void>((r) => (verified = r));
      passwords.verifyAndRehash = async (...args) => {
        passwords.verifyAndRehash = original;
        const result = await original(...args);
        verified();
        await gate;
        return result;
      };
      return { verified: done, release };
    };
    for (const remedy of ["reset", "change"] as const) {
      const ana = await fx.user(`race-${remedy}@example.org`);
      const owner = fx.browser();
      if (remedy === "change") await owner.login(ana.email, ana.password);
      const thief = fx.browser();
      const hold = holdNextVerify();
      const pending = thief.login(ana.email, ana.password);
      await hold.verified; // the old password is verified; the session is not stored yet
      const newPassword = remedy === "reset" ? "copper lanterns drift over harbours" : "violet engines hum beneath glaciers";
      if (remedy === "reset") {
        await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
        const token = await resetTokenFor(ana.email);
        const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword } });
        assert.equal(done.statusCode, 200, done.body);
      } else {
        assert.equal((await owner.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: ana.password, newPassword } })).statusCode, 200);
      }
      hold.release();
      const login = await pending;
      assert.equal(login.statusCode, 401, `${remedy}: ${login.body}`);
      assert.equal(login.json().error.code, "BULWARK_ERR_LOGIN_FAILED", "the answer of a wrong password");
      assert.equal((await thief.request("GET", "/auth/session")).json().authenticated, false, `${remedy}: the thief holds no session`);
      const user = (await fx.app.accounts.users.findByIdentifier(ana.email))!;
      assert.deepEqual((await fx.app.accounts.sessions.list(user.id)).length, remedy === "change" ? 1 : 0, "only the owner's own session, if any");
      assert.deepEqual((await eventsOf("auth.login.failed", user.id)).map((e) => e["reason"]), ["password-changed-meanwhile"]);
    }
  });

  it("attack: forged, tampered and cross-site reset completions are refused", async () => {
    const ana = await fx.user("forge@example.org");
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    const token = await resetTokenFor(ana.email);
    const row = await fx.app.db.db.selectFrom("password_reset_tokens").selectAll().where("user_id", "=", ana.id).executeTakeFirstOrThrow();
    const tampered = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
    for (const bad of [tampered, `${row.id}.${row.secret_hash}`, "prt_x.y"]) {
      const res = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: bad, newPassword: "copper meadow whistles softly" } });
      assert.equal(res.statusCode, 400, bad.slice(0, 10));
    }
    const xsite = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly" }, headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
    assert.equal(xsite.statusCode, 403);
    assert.equal((await fx.app.accounts.passwordReset.check(token)).valid, true, "the refusals did not use the link up");
  });

  it("attack: a reset link does not bypass MFA (ASVS 6.4.3)", async () => {
    const ana = await fx.user("mfareset@example.org");
    const b = fx.browser();
    await b.login(ana.email, ana.password);
    const begin = await b.request("POST", "/auth/mfa/totp", { csrf: true });
    const secret = begin.json().secret as string;
    assert.equal((await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(30_000);
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    const token = await resetTokenFor(ana.email);
    const without = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly" } });
    assert.equal(without.statusCode, 401);
    assert.equal(without.json().error.code, "BULWARK_ERR_MFA_REQUIRED");
    const user = (await fx.app.accounts.users.findByIdentifier(ana.email))!;
    assert.deepEqual(await eventsOf("auth.password.reset-factor-failed", user.id), [], "asking without a factor is how a client learns one is needed");
    const wrong = totpCode(secret, fx.clock.now()) === "123456" ? "654321" : "123456";
    const wrongCode = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly", totp: wrong } });
    assert.equal(wrongCode.statusCode, 401);
    const failures = await eventsOf("auth.password.reset-factor-failed", user.id);
    assert.equal(failures.length, 1, "a wrong factor on a reset link is audited");
    assert.equal(failures[0]?.["reason"], "invalid");
    assert.match(String(failures[0]?.["resetId"]), /^prt_/);
    assert.equal((await fx.browser().login(ana.email, "copper meadow whistles softly")).statusCode, 401, "the password did not change");
    const withCode = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly", totp: totpCode(secret, fx.clock.now()) } });
    assert.equal(withCode.statusCode, 200, withCode.body);
    fx.clock.advance(30_000);
  });

  it("attack: a passkey challenge asked for with a reset link passes no login's gate, and a login's passes no reset", async () => {
    const ana = await fx.user("passkey-reset@example.org");
    const b = fx.browser();
    await b.login(ana.email, ana.password);
    const key = new SoftAuthenticator();
    const creation = await b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    assert.equal((await b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(creation.json(), ORIGIN), name: "key" } })).statusCode, 200);
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: ana.email } });
    const token = await resetTokenFor(ana.email);
    // The link holder asks for options (no session); the assertion is carried to a pending login session.
    const viaLink = await fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token } });
    assert.equal(viaLink.statusCode, 200, viaLink.body);
    const linkAssertion = key.authenticate(viaLink.json(), ORIGIN);
    const pending = fx.browser();
    assert.equal((await pending.login(ana.email, ana.password)).json().mfaRequired, true);
    const stepUp = await pending.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: linkAssertion } });
    assert.equal(stepUp.statusCode, 401, stepUp.body);
    // And a login session's challenge does not complete the reset.
    const viaSession = await pending.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    const sessionAssertion = key.authenticate(viaSession.json(), ORIGIN);
    const reset = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly", webauthn: sessionAssertion } });
    assert.equal(reset.statusCode, 401, reset.body);
    assert.equal(reset.json().error.code, "BULWARK_ERR_MFA_INVALID");
    // Each in its own flow works.
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly", webauthn: linkAssertion } });
    assert.equal(done.statusCode, 200, done.body);
  });

  it("limits reset mails per account (no mail cannon) while answering the same", async () => {
    await fx.user("flood@example.org");
    for (let i = 0; i < 5; i++) {
      const res = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "flood@example.org" } });
      assert.equal(res.statusCode, 202);
      assert.deepEqual(res.json(), RESET_ACCEPTED);
    }
    await fx.deliver();
    assert.equal(fx.mailTo("flood@example.org").length, 3);
  });
});

describe("second-factor guesses sent with reset links (a counter of their own, per account)", () => {
  const { withTOTP, pending, resetToken, userWith, tokenFor } = authFlows(() => fx);
  const NEW_PASSWORD = "copper meadow whistles softly";

  /** A six-digit code that is not the app's at `at` (nor a neighbouring step's). */
  function wrongCode(secret: string, at: number): string {
    const right = new Set([-STEP, 0, STEP].map((d) => totpCode(secret, at + d)));
    for (let i = 0; ; i++) {
      const guess = String((Number(totpCode(secret, at)) + 500_000 + i) % 1_000_000).padStart(6, "0");
      if (!right.has(guess)) return guess;
    }
  }

  it("attack: the mailbox holder's guesses leave the owner's sign-in codes alone, yet stay throttled per account: a new link buys no new guess, and the sixth waits even when right (ASVS 6.3.1, 6.4.3)", async () => {
    const owner = await withTOTP("reset-counter@example.org");
    const first = await resetToken(owner.email);
    for (let i = 0; i < MFA_FLOOD_POLICY.accountLimit; i++) {
      const r = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: first, newPassword: NEW_PASSWORD, totp: wrongCode(owner.secret, fx.clock.now()) } });
      assert.equal(r.statusCode, 401, r.body);
    }
    // A fresh link from the mailbox: the count is the account's, not the link's.
    const second = await resetToken(owner.email);
    const right = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: second, newPassword: NEW_PASSWORD, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(right.statusCode, 429, right.body);
    assert.equal(right.json().error.code, "BULWARK_ERR_MFA_THROTTLED");
    assert.equal(right.headers["retry-after"], "300");
    assert.equal((await fx.browser().login(owner.email, NEW_PASSWORD)).statusCode, 401, "the password did not change");
    // Meanwhile the owner signs in with the right code at once: the sign-in counter saw none of those guesses.
    const p = await pending(owner);
    const stepUp = await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(stepUp.statusCode, 200, stepUp.body);
    // And the window runs out for the link's holder as for anyone: the owner, with the link and the app, resets.
    fx.clock.advance(5 * 60_000 + STEP);
    const later = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: second, newPassword: NEW_PASSWORD, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(later.statusCode, 200, later.body);
    fx.clock.advance(STEP);
  });

  it("attack: at the reset counter's 100-failure stop only reset links are refused (no Retry-After, an administrator lifts it); the owner's right code and recovery code still sign in (ASVS 6.3.1)", async () => {
    const owner = await withTOTP("reset-stop@example.org");
    const made = await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
    assert.equal(made.statusCode, 200, made.body);
    const codes = made.json().codes as string[];
    // A hundred wrong codes in a row with reset links, counted as the route counts them; then the window passes.
    const counter = new FloodControl({ database: fx.app.db, clock: fx.clock, keyOf: (text) => fx.app.keyring.floodKey(text), policy: MFA_FLOOD_POLICY, namespace: MFA_FLOOD_NAMESPACE });
    for (const factor of ["totp", "recovery"] as const) {
      for (let i = 0; i < MFA_FLOOD_POLICY.maxConsecutive; i++) await counter.registerFailure({ identifier: floodIdentifier(factor, owner.id, "reset"), ip: null });
    }
    fx.clock.advance(6 * 60_000);
    const token = await resetToken(owner.email);
    const stopped = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: NEW_PASSWORD, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(stopped.statusCode, 429, stopped.body);
    assert.equal(stopped.headers["retry-after"], undefined, "no wait lifts this stop");
    assert.match(stopped.json().error.message, /reset link.*administrator/);
    // The sign-in counters are not the reset's: both factors still step the owner up.
    const viaApp = await (await pending(owner)).request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } });
    const viaCode = await (await pending(owner)).request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[0] } });
    assert.deepEqual([viaApp.statusCode, viaCode.statusCode], [200, 200], `${viaApp.body} | ${viaCode.body}`);
    // An administrator's throttles/clear lifts the reset counter's stop too.
    const admin = await userWith(["accounts.read", "accounts.write"]);
    const cleared = await fx.server.inject({ method: "POST", url: `/api/v1/users/${owner.id}/throttles/clear`, headers: { host: HOST, authorization: `Bearer ${await tokenFor(admin, ["accounts.read", "accounts.write"])}` } });
    assert.equal(cleared.statusCode, 200, cleared.body);
    fx.clock.advance(STEP);
    const reset = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: NEW_PASSWORD, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(reset.statusCode, 200, reset.body);
    fx.clock.advance(STEP);
  });
});

describe("reset links of a locked account (nothing changes its credentials until an administrator unlocks it)", () => {
  const ask = (email: string) => fx.browser().request("POST", "/auth/password/reset/request", { body: { email } });
  const complete = (token: string, newPassword = "copper meadow whistles softly") => fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword } });

  it("attack: a locked account gets no link, with the answer and the statements of an unknown address (ASVS 6.3.8)", async () => {
    const ana = await fx.user("locked-request@example.org");
    assert.equal(await lockUser(fx.app.db.db, ana.id, "suspected takeover", fx.clock.now()), "locked");
    // Warm the statement caches so that first-use preparation is not counted for one side only.
    await ask(ana.email);
    await ask("warm-nobody@example.org");
    let locked!: Awaited<ReturnType<typeof ask>>;
    let unknown!: Awaited<ReturnType<typeof ask>>;
    const lockedWork = await statementsDuring(async () => (locked = await ask(ana.email)));
    const unknownWork = await statementsDuring(async () => (unknown = await ask("nobody-locked@example.org")));
    assert.equal(locked.statusCode, 202);
    assert.equal(locked.body, unknown.body);
    assert.deepEqual(locked.json(), RESET_ACCEPTED);
    assert.deepEqual(lockedWork, unknownWork, "the same statements, in the same order");
    assert.ok(!lockedWork.some((st) => st.startsWith('insert into "password_reset_tokens"')), "no link was stored");
    await fx.deliver();
    assert.equal(fx.mailTo(ana.email).length, 0, "no mail to the locked account");
  });

  it("attack: registering the address of a locked account mails it no reset link either", async () => {
    fx.app.config.http.registrationOpen = true;
    try {
      const ana = await fx.user("locked-register@example.org");
      assert.equal(await lockUser(fx.app.db.db, ana.id, "suspected takeover", fx.clock.now()), "locked");
      const res = await fx.browser().request("POST", "/auth/register", { body: { email: ana.email } });
      assert.equal(res.statusCode, 202);
      assert.deepEqual(res.json(), RESET_ACCEPTED);
      await fx.deliver();
      assert.equal(fx.mailTo(ana.email).length, 0, "the reset mailer itself refuses a locked account, whoever calls it");
    } finally {
      fx.app.config.http.registrationOpen = false;
    }
  });

  it("attack: a link mailed before the lock resets nothing while the account is locked; unspent, it works after the unlock", async () => {
    const ana = await fx.user("locked-complete@example.org");
    assert.equal((await ask(ana.email)).statusCode, 202);
    const token = await resetTokenFor(ana.email);
    assert.equal(await lockUser(fx.app.db.db, ana.id, "suspected takeover", fx.clock.now()), "locked");
    const refused = await complete(token);
    const invalid = await complete(token.slice(0, -1) + (token.endsWith("A") ? "B" : "A"));
    assert.equal(refused.statusCode, 400, refused.body);
    const { code, message } = refused.json().error;
    assert.deepEqual({ code, message }, { code: invalid.json().error.code, message: invalid.json().error.message }, "the refusal of an invalid link, word for word");
    assert.equal(code, "BULWARK_ERR_RESET_TOKEN");
    assert.equal((await fx.app.accounts.passwordReset.check(token)).valid, true, "the refusal did not use the link up");
    fx.clock.advance(60_000);
    assert.notEqual(await unlockUser(fx.app.db.db, ana.id, fx.clock.now()), null);
    fx.clock.advance(1000);
    assert.equal((await fx.browser().login(ana.email, ana.password)).statusCode, 200, "the password set before the lock is still the one");
    const done = await complete(token);
    assert.equal(done.statusCode, 200, done.body);
    assert.equal((await fx.browser().login(ana.email, "copper meadow whistles softly")).statusCode, 200);
  });

  // Found by red team 32: the options route checked the link only, so a locked account's link answered 200 with the
  // ids of its passkeys where the completion answers an invalid link — telling the link's holder of the lock.
  it("attack: a locked account's link gets no passkey options — the refusal of an invalid link, word for word, the link unspent; after the unlock it gets them (was: 200 with the passkeys' ids)", async () => {
    const ana = await fx.user("locked-options@example.org");
    const b = fx.browser();
    await b.login(ana.email, ana.password);
    const key = new SoftAuthenticator();
    const creation = await b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    assert.equal((await b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(creation.json(), ORIGIN), name: "key" } })).statusCode, 200);
    assert.equal((await ask(ana.email)).statusCode, 202);
    const token = await resetTokenFor(ana.email);
    const options = (t: string) => fx.browser().request("POST", "/auth/password/reset/webauthn/options", { body: { token: t } });
    assert.equal(await lockUser(fx.app.db.db, ana.id, "suspected takeover", fx.clock.now()), "locked");
    const refused = await options(token);
    const invalid = await options(token.slice(0, -1) + (token.endsWith("A") ? "B" : "A"));
    assert.equal(refused.statusCode, 400, refused.body);
    const { code, message } = refused.json().error;
    assert.deepEqual({ code, message }, { code: invalid.json().error.code, message: invalid.json().error.message }, "the refusal of an invalid link, word for word");
    assert.equal(code, "BULWARK_ERR_RESET_TOKEN");
    assert.doesNotMatch(refused.body, /allowCredentials|challenge/, "no passkey id, no challenge");
    assert.equal((await fx.app.accounts.passwordReset.check(token)).valid, true, "the refusal did not use the link up");
    fx.clock.advance(60_000);
    assert.notEqual(await unlockUser(fx.app.db.db, ana.id, fx.clock.now()), null);
    fx.clock.advance(1000);
    const after = await options(token);
    assert.equal(after.statusCode, 200, after.body);
    assert.equal(after.json().allowCredentials.length, 1, "the account's one passkey is offered once it is unlocked");
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly", webauthn: key.authenticate(after.json(), ORIGIN) } });
    assert.equal(done.statusCode, 200, done.body);
  });

  it("attack: an account locked while the new password is being hashed is not reset, and the link stays unspent", async () => {
    const ana = await fx.user("locked-midway@example.org");
    await ask(ana.email);
    const token = await resetTokenFor(ana.email);
    const hashBefore = (await fx.app.accounts.users.getById(ana.id))!.passwordHash;
    // The lock commits after the route's first look at the account, before its transaction (the hash is the slow part).
    const passwords = fx.app.accounts.passwords as { hash: typeof fx.app.accounts.passwords.hash };
    const original = passwords.hash;
    passwords.hash = async (...args) => {
      passwords.hash = original;
      await lockUser(fx.app.db.db, ana.id, "suspected takeover", fx.clock.now());
      return original(...args);
    };
    let refused: Awaited<ReturnType<typeof complete>>;
    try {
      refused = await complete(token);
    } finally {
      passwords.hash = original;
    }
    assert.equal(refused.statusCode, 400, refused.body);
    assert.equal(refused.json().error.code, "BULWARK_ERR_RESET_TOKEN");
    assert.equal((await fx.app.accounts.passwordReset.check(token)).valid, true, "the link is not spent");
    assert.equal((await fx.app.accounts.users.getById(ana.id))!.passwordHash, hashBefore, "the password did not change");
  });

  it("attack: a containment that locks and invalidates keeps its 24-hour link, which works only once the account is unlocked", async () => {
    const ana = await fx.user("contained-locked@example.org");
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["lock-accounts", "invalidate-passwords"], scope: { ids: [ana.id] }, actor: "responder" });
    assert.equal((await runJob(deps, job.id)).status, "done");
    const token = await resetTokenFor(ana.email);
    assert.match(fx.mailTo(ana.email).at(-1)?.subject ?? "", /choose a new password/);
    const refused = await complete(token);
    assert.equal(refused.statusCode, 400, refused.body);
    assert.equal(refused.json().error.code, "BULWARK_ERR_RESET_TOKEN");
    fx.clock.advance(60_000);
    assert.notEqual(await unlockUser(fx.app.db.db, ana.id, fx.clock.now()), null);
    const done = await complete(token);
    assert.equal(done.statusCode, 200, done.body);
    assert.equal((await fx.browser().login(ana.email, "copper meadow whistles softly")).statusCode, 200);
  });
});

describe("containment reset links and maintenance", () => {
  it("a containment reset link still works 2 hours later, after the server's maintenance has purged old links", async () => {
    const ana = await fx.user("contained-purge@example.org");
    const deps = containDeps(fx.app);
    const job = await createContainJob(deps, { levers: ["invalidate-passwords"], scope: { ids: [ana.id] }, actor: "responder" });
    assert.equal((await runJob(deps, job.id)).status, "done");
    const token = await resetTokenFor(ana.email);
    assert.match(fx.mailTo(ana.email).at(-1)?.body ?? "", /within 24 hours/, "the mail promises 24 hours");
    fx.clock.advance(2 * 60 * 60_000);
    const maintenance = startMaintenance(fx.app, { intervalMs: 24 * 60 * 60_000 });
    try {
      await maintenance.runOnce();
    } finally {
      await maintenance.stop();
    }
    const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly" } });
    assert.equal(done.statusCode, 200, done.body);
  });
});

describe("POST /auth/register", () => {
  it("is off by default", async () => {
    const res = await fx.browser().request("POST", "/auth/register", { body: { email: "new@example.org" } });
    assert.equal(res.statusCode, 403);
    assert.equal(res.json().error.code, "BULWARK_ERR_REGISTRATION_CLOSED");
  });

  it("attack: enumeration — a taken and a free address get the same status and body; the new owner sets a password by mail", async () => {
    fx.app.config.http.registrationOpen = true;
    try {
      await fx.user("taken@example.org");
      const taken = await fx.browser().request("POST", "/auth/register", { body: { email: "taken@example.org" } });
      const free = await fx.browser().request("POST", "/auth/register", { body: { email: "fresh@example.org" } });
      assert.equal(taken.statusCode, 202);
      assert.equal(free.statusCode, 202);
      assert.equal(taken.body, free.body);
      // Neither can sign in with a password the registrant chose: there was none to choose.
      const token = await resetTokenFor("fresh@example.org");
      assert.match(fx.mailTo("fresh@example.org").at(-1)?.subject ?? "", /finish creating your account/);
      const set = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "copper meadow whistles softly" } });
      assert.equal(set.statusCode, 200, set.body);
      assert.equal((await fx.browser().login("fresh@example.org", "copper meadow whistles softly")).statusCode, 200);
      assert.match(fx.mailTo("taken@example.org").at(-1)?.subject ?? "", /reset your password/);
    } finally {
      fx.app.config.http.registrationOpen = false;
    }
  });
  it("attack: enumeration by work done — a taken address makes the users insert a free one makes (a throw-away account, rolled back with its transaction)", async () => {
    fx.app.config.http.registrationOpen = true;
    try {
      await fx.user("taken-work@example.org");
      const register = (email: string) => fx.browser().request("POST", "/auth/register", { body: { email } });
      await register("warm-work@example.org");
      const usersBefore = Number((await fx.app.db.db.selectFrom("users").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n);
      const taken = await statementsDuring(async () => assert.equal((await register("taken-work@example.org")).statusCode, 202));
      const free = await statementsDuring(async () => assert.equal((await register("free-work@example.org")).statusCode, 202));
      const usersInserts = (st: string[]): number => st.filter((x) => x.startsWith('insert into "users"')).length;
      assert.deepEqual([usersInserts(taken), usersInserts(free)], [1, 1], "one users insert on either path");
      assert.equal(taken.length, free.length, `the same number of statements\n${free.join("\n")}\n--\n${taken.join("\n")}`);
      const usersAfter = Number((await fx.app.db.db.selectFrom("users").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow()).n);
      assert.equal(usersAfter, usersBefore + 1, "only the free address got an account");
      assert.equal(await fx.app.db.db.selectFrom("users").select("id").where("email", "like", "register-decoy-%").executeTakeFirst(), undefined, "no throw-away account is left");
    } finally {
      fx.app.config.http.registrationOpen = false;
    }
  });

  it("attack: enumeration through a username — an existing and an unknown one get the same refusal, and no mail", async () => {
    fx.app.config.http.registrationOpen = true;
    try {
      const owner = await fx.user("has-a-name@example.org");
      await fx.app.db.db.updateTable("users").set({ username: "alice", username_key: "alice" }).where("id", "=", owner.id).execute();
      const mailsBefore = fx.mailTo("has-a-name@example.org").length;
      const known = await fx.browser().request("POST", "/auth/register", { body: { email: "alice" } });
      const unknown = await fx.browser().request("POST", "/auth/register", { body: { email: "nobody-by-that-name" } });
      assert.equal(known.statusCode, 400);
      assert.equal(unknown.statusCode, 400);
      assert.equal(known.json().error.code, "BULWARK_ERR_EMAIL_INVALID");
      assert.equal(known.json().error.code, unknown.json().error.code);
      assert.equal(fx.mailTo("has-a-name@example.org").length, mailsBefore, "a username is not an address: no reset link was mailed");
    } finally {
      fx.app.config.http.registrationOpen = false;
    }
  });
});

describe("accounts whose address the outbox cannot mail (the account store accepts more: imports, old systems)", () => {
  it("attack: enumeration — a reset request for such an account answers like one for no account, and queues nothing", async () => {
    await fx.user("jörg@example.org");
    const known = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "jörg@example.org" } });
    const unknown = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "jürgen@example.org" } });
    assert.equal(known.statusCode, 202, known.body);
    assert.equal(unknown.statusCode, 202);
    assert.equal(known.body, unknown.body);
    const queued = await fx.app.db.db.selectFrom("outbox_messages").select("id").where("to_address", "in", ["jörg@example.org", "jürgen@example.org"]).execute();
    assert.equal(queued.length, 0);
  });

  it("a password change still answers 200 for the change it made; the notice that could not be queued is audited", async () => {
    const ana = await fx.user("ana@intranet");
    const b = fx.browser();
    assert.equal((await b.login(ana.email, ana.password)).statusCode, 200);
    const changed = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: ana.password, newPassword: "a sturdy new passphrase here" } });
    assert.equal(changed.statusCode, 200, changed.body);
    assert.equal((await fx.browser().login(ana.email, "a sturdy new passphrase here")).statusCode, 200);
    // The first sign-in's notice was refused too (signed-in-from-new-device): the one asked about here is the change's.
    const refused = (await fx.app.audit.tail(20)).filter((e) => e.type === "auth.notice.refused" && e.subject === ana.id && e.data["notice"] === "password-changed");
    assert.equal(refused.length, 1);
    assert.match(String(refused[0]?.data["reason"]), /domain/);
  });

  it("registration refuses such an address before looking it up, whether or not an account has it", async () => {
    fx.app.config.http.registrationOpen = true;
    try {
      await fx.user("ops@lan");
      const taken = await fx.browser().request("POST", "/auth/register", { body: { email: "ops@lan" } });
      const free = await fx.browser().request("POST", "/auth/register", { body: { email: "dev@lan" } });
      assert.equal(taken.statusCode, 400, taken.body);
      assert.equal(free.statusCode, 400);
      assert.equal(taken.json().error.code, "BULWARK_ERR_MAIL_ADDRESS");
      assert.equal(taken.json().error.message, free.json().error.message.replace("dev@lan", "ops@lan"));
      assert.equal(await fx.app.accounts.users.findByIdentifier("dev@lan"), null, "no account is created that no link can ever reach");
    } finally {
      fx.app.config.http.registrationOpen = false;
    }
  });
});

describe("the outbox sender in the server", () => {
  it("delivers queued mail while running and stops cleanly", async () => {
    await fx.user("runner@example.org");
    await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: "runner@example.org" } });
    const runner = await startMailRunner(fx.app, { idleMs: 20 });
    assert.equal(runner.running, true);
    const deadline = Date.now() + 10_000;
    while (fx.mailTo("runner@example.org").length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    await runner.stop();
    await runner.stop();
    assert.equal(fx.mailTo("runner@example.org").length, 1);
  });
});
