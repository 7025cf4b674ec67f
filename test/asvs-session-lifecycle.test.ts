// ASVS requirements of the session and factor lifecycle that no other test showed over HTTP:
// 7.4.4 logout is reachable from every state a signed-in session can be in (no page traps the user),
// 7.3.2 the absolute session lifetime holds however active the session is,
// 6.4.4 a lost authenticator is replaced only after proof at the enrolment level (password + a second factor):
// the password alone, at any route, neither removes nor adds a factor.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;

const fx = sharedFixture();

/** A user with a confirmed authenticator app (through the library) and ten recovery codes. */
async function userWithTOTP(email: string): Promise<{ id: string; email: string; password: string; secret: string; codes: string[] }> {
  const user = await fx.user(email);
  const { secret } = await fx.app.accounts.mfa.totp.begin(user.id, email);
  assert.equal(await fx.app.accounts.mfa.totp.confirm(user.id, totpCode(secret, fx.clock.now())), true);
  fx.clock.advance(30_000); // the confirming step is spent
  const codes = await fx.app.accounts.mfa.recovery.generate(user.id);
  return { ...user, secret, codes };
}

/** Logs out and checks that the copied cookie is dead afterwards. */
async function logsOut(b: Browser, state: string): Promise<void> {
  const copy = b.cookie as string;
  assert.ok(copy, `${state}: signed in`);
  const res = await b.request("POST", "/auth/logout", { csrf: true });
  assert.equal(res.statusCode, 200, `${state}: ${res.body}`);
  assert.equal(b.cookie, null, `${state}: the cookie is cleared`);
  assert.equal((await fx.app.accounts.sessions.validate(copy)).valid, false, `${state}: the session is ended on the server`);
}

describe("logout from every state (ASVS 7.4.4)", () => {
  it("a session waiting for its second factor, for MFA enrolment, for a password change, or fully open can always log out", async () => {
    const withMfa = await userWithTOTP("logout-mfa@example.org");
    const pendingMfa = fx.browser();
    assert.equal((await pendingMfa.login(withMfa.email, withMfa.password)).json().mfaRequired, true);
    assert.equal((await pendingMfa.request("GET", "/auth/sessions")).statusCode, 403, "the gate holds the session");
    await logsOut(pendingMfa, "mfa-verify");

    const admin = await fx.user("logout-admin@example.org", { roles: ["admin"] });
    const pendingEnrol = fx.browser();
    assert.equal((await pendingEnrol.login(admin.email, admin.password)).json().mfaEnrolmentRequired, true);
    await logsOut(pendingEnrol, "mfa-enrol");

    const stale = await fx.user("logout-change@example.org");
    await fx.app.db.db.updateTable("users").set({ password_must_change: 1 }).where("id", "=", stale.id).execute();
    const pendingChange = fx.browser();
    assert.equal((await pendingChange.login(stale.email, stale.password)).json().mustChangePassword, true);
    await logsOut(pendingChange, "password-change");

    const plain = await fx.user("logout-open@example.org");
    const open = fx.browser();
    await open.login(plain.email, plain.password);
    assert.equal((await open.request("GET", "/auth/sessions")).statusCode, 200);
    await logsOut(open, "open");
  });
});

describe("absolute session lifetime (ASVS 7.3.2)", () => {
  it("attack: a session kept busy every 25 minutes is still refused once 12 hours have passed since login", async () => {
    const ana = await fx.user("absolute@example.org");
    const b = fx.browser();
    await b.login(ana.email, ana.password);
    const start = fx.clock.now();
    // Activity well inside the 30-minute idle timeout, all the way to the absolute limit.
    while (fx.clock.now() + 25 * MINUTE < start + 12 * 60 * MINUTE) {
      fx.clock.advance(25 * MINUTE);
      const alive = await b.request("GET", "/auth/session");
      assert.equal(alive.json().authenticated, true, `still signed in after ${(fx.clock.now() - start) / MINUTE} minutes`);
    }
    fx.clock.advance(start + 12 * 60 * MINUTE - fx.clock.now());
    const expired = await b.request("GET", "/auth/session");
    assert.equal(expired.json().authenticated, false, "refused at 12 hours, active or not");
    assert.match(String(expired.headers["set-cookie"]), /Max-Age=0/, "and the cookie is cleared");
  });
});

describe("replacing a lost authenticator (ASVS 6.4.4)", () => {
  it("attack: the password alone neither removes nor replaces the factor; password + recovery code does, and the owner is told", async () => {
    const ana = await userWithTOTP("lost-phone@example.org");
    // Someone holding only the password (or the owner without the phone): held at the second-factor gate.
    const thief = fx.browser();
    assert.equal((await thief.login(ana.email, ana.password)).json().mfaRequired, true);
    for (const [method, url] of [["DELETE", "/auth/mfa/totp"], ["POST", "/auth/mfa/totp"], ["POST", "/auth/mfa/recovery-codes"], ["POST", "/auth/mfa/webauthn/register/options"]] as const) {
      const res = await thief.request(method, url, { csrf: true });
      assert.equal(res.statusCode, 403, `${method} ${url} with a password-only session: ${res.body}`);
      assert.equal(res.json().error.code, "BULWARK_ERR_MFA_REQUIRED");
    }
    const reauth = await thief.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: ana.password } });
    // Re-authentication is not reachable before the second factor either (the gate answers first).
    assert.equal(reauth.statusCode, 403, `re-authentication with the password alone is refused: ${reauth.body}`);
    assert.equal(reauth.json().error.code, "BULWARK_ERR_MFA_REQUIRED");
    // A reset link does not get round it either (it asks for the factor too: ASVS 6.4.3).
    assert.equal(await fx.app.accounts.mfa.hasMfa(ana.id), true);

    // The owner: password, then one of the recovery codes printed at enrolment.
    const owner = fx.browser();
    await owner.login(ana.email, ana.password);
    const verified = await owner.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: ana.codes[0] } });
    assert.equal(verified.statusCode, 200, verified.body);
    assert.equal(verified.json().aal, 2);
    const removed = await owner.request("DELETE", "/auth/mfa/totp", { csrf: true });
    assert.equal(removed.statusCode, 200, removed.body);
    const begin = await owner.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(begin.statusCode, 200, begin.body);
    const newSecret = begin.json().secret as string;
    assert.notEqual(newSecret, ana.secret);
    const confirm = await owner.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(newSecret, fx.clock.now()) } });
    assert.equal(confirm.statusCode, 200, confirm.body);
    fx.clock.advance(30_000);

    // The lost phone's codes are worthless now; the new app's codes work.
    const finder = fx.browser();
    await finder.login(ana.email, ana.password);
    assert.equal((await finder.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(ana.secret, fx.clock.now()) } })).statusCode, 401);
    const next = fx.browser();
    await next.login(ana.email, ana.password);
    assert.equal((await next.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(newSecret, fx.clock.now()) } })).statusCode, 200);
    await fx.deliver();
    assert.ok(fx.mailTo(ana.email).length >= 2, "the owner is mailed about the removal and the new factor (ASVS 6.3.7)");
  });
});
