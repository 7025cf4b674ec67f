// Re-authentication over HTTP (ASVS 7.5.1, 7.5.2), written as attacks that must fail: a stolen session cookie
// that is no longer fresh — with a valid CSRF token, so only freshness stands in the way — cannot remove a
// factor, add a passkey or a TOTP, regenerate recovery codes, or end the owner's other sessions; and it cannot
// be refreshed without the password and the second factor. The owner re-authenticates and goes on.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { loadHTTPAuthConfig } from "../src/app/http-config.ts";
import { ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
const fx = sharedFixture();

/** A user with TOTP, a passkey and recovery codes, signed in twice (laptop and phone); returns both browsers. */
async function ownerWithFactors(email: string): Promise<{ laptop: Browser; phone: Browser; secret: string; password: string; key: SoftAuthenticator; credentialId: string; codes: string[] }> {
  const user = await fx.user(email);
  const laptop = fx.browser();
  assert.equal((await laptop.login(user.email, user.password)).statusCode, 200);
  const begin = await laptop.request("POST", "/auth/mfa/totp", { csrf: true });
  assert.equal(begin.statusCode, 200, begin.body);
  const secret = begin.json().secret as string;
  assert.equal((await laptop.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
  const key = new SoftAuthenticator();
  const options = await laptop.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
  const registered = await laptop.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: "laptop key" } });
  assert.equal(registered.statusCode, 200, registered.body);
  const codes = (await laptop.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
  assert.equal(codes.length, 10);
  fx.clock.advance(30_000);
  const phone = fx.browser();
  await phone.login(user.email, user.password);
  assert.equal((await phone.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
  fx.clock.advance(30_000);
  return { laptop, phone, secret, password: user.password, key, credentialId: registered.json().credentialId as string, codes };
}

/** A copy of `victim`'s cookie in another client: what a thief gets from malware, a shared computer or a log. */
function steal(victim: Browser): Browser {
  const thief = fx.browser();
  thief.cookie = victim.cookie;
  return thief;
}

describe("re-authentication before sensitive changes", () => {
  it("attack: a stolen, no longer fresh cookie with a valid CSRF token changes no factor and ends no session (ASVS 7.5.1, 7.5.2)", async () => {
    const owner = await ownerWithFactors("stolen@example.org");
    // The thief uses the cookie 11 minutes after the owner's last authentication (the window is 10), staying
    // within the idle timeout by using it every few minutes like the owner would.
    fx.clock.advance(5 * MINUTE);
    const thief = steal(owner.laptop);
    assert.equal((await thief.request("GET", "/auth/session")).json().fresh, true, "6 minutes after the owner's last authentication");
    fx.clock.advance(6 * MINUTE);
    const session = (await thief.request("GET", "/auth/session")).json();
    assert.equal(session.authenticated, true, "the cookie itself still works for ordinary requests");
    assert.equal(session.fresh, false);
    const csrf = await thief.csrf();
    const attempts: Array<[string, "POST" | "DELETE", string, unknown?]> = [
      ["remove the authenticator app", "DELETE", "/auth/mfa/totp"],
      ["remove the passkey", "DELETE", `/auth/mfa/webauthn/${encodeURIComponent(owner.credentialId)}`],
      ["start adding a passkey", "POST", "/auth/mfa/webauthn/register/options"],
      ["add a passkey", "POST", "/auth/mfa/webauthn/register", { response: { id: "AAAA", rawId: "AAAA", type: "public-key", response: {} } }],
      ["start adding a TOTP", "POST", "/auth/mfa/totp"],
      ["confirm a TOTP", "POST", "/auth/mfa/totp/confirm", { code: "123456" }],
      ["regenerate recovery codes", "POST", "/auth/mfa/recovery-codes"],
      ["end the owner's other sessions", "DELETE", "/auth/sessions"],
      ["end the owner's phone session", "DELETE", `/auth/sessions/${(await owner.phone.request("GET", "/auth/session")).json().sessionId as string}`],
    ];
    for (const [what, method, url, body] of attempts) {
      const res = await thief.request(method, url, { csrf, ...(body === undefined ? {} : { body }) });
      assert.equal(res.statusCode, 403, `attack: ${what} — ${res.body}`);
      assert.equal(res.json().error.code, "BULWARK_ERR_REAUTH_REQUIRED", what);
    }
    // Nothing changed: every factor is there, the phone is still signed in, no code was replaced, no mail queued.
    assert.deepEqual((await owner.phone.request("GET", "/auth/mfa")).json(), { totp: true, webauthn: 1, recoveryCodes: 10 });
    assert.equal((await owner.phone.request("GET", "/auth/session")).json().authenticated, true);
    assert.equal((await fx.app.accounts.mfa.recovery.verify((await fx.app.accounts.users.findByIdentifier("stolen@example.org"))!.id, owner.codes[0] as string)), "ok", "the old recovery codes still work");
  });

  it("attack: the thief cannot refresh the session without the password and the second factor", async () => {
    const owner = await ownerWithFactors("refresh@example.org");
    fx.clock.advance(11 * MINUTE);
    const thief = steal(owner.laptop);
    const csrf = await thief.csrf();
    // Without a factor the password is not even looked at: the route is no password oracle.
    const noFactor = await thief.request("POST", "/auth/reauthenticate", { csrf, body: { password: "a guess at the password" } });
    assert.equal(noFactor.statusCode, 401);
    assert.equal(noFactor.json().error.code, "BULWARK_ERR_MFA_REQUIRED");
    const guessed = await thief.request("POST", "/auth/reauthenticate", { csrf, body: { password: "a guess at the password", totp: "123456" } });
    assert.equal(guessed.statusCode, 401);
    assert.equal(guessed.json().error.code, "BULWARK_ERR_REAUTH_FAILED");
    // A thief who also phished the password still lacks the factor; the answer does not say which was wrong.
    const phished = await thief.request("POST", "/auth/reauthenticate", { csrf, body: { password: owner.password, totp: "000000" } });
    assert.equal(phished.statusCode, 401);
    assert.deepEqual({ ...phished.json().error, requestId: null }, { ...guessed.json().error, requestId: null });
    assert.equal((await thief.request("DELETE", "/auth/sessions", { csrf })).statusCode, 403, "still not fresh");
    // Password guessing here counts like login guessing (ASVS 6.3.1): the 6th try is throttled.
    for (let i = 0; i < 4; i++) await thief.request("POST", "/auth/reauthenticate", { csrf, body: { password: `guess ${i}`, totp: "123456" } });
    const throttled = await thief.request("POST", "/auth/reauthenticate", { csrf, body: { password: owner.password, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(throttled.statusCode, 429, "even the right credentials wait once the counter is full");
    assert.ok(Number(throttled.headers["retry-after"]) > 0);
    const events = (await fx.app.audit.tail(30)).map((e) => e.type);
    assert.ok(events.includes("auth.reauth.failed") && events.includes("auth.reauth.throttled"));
  });

  it("attack: a thief with a stale cookie and the password of an account with a second factor can neither change the password nor make the session fresh (ASVS 7.5.1) (was: the password alone changed the password, in a loop that voided the owner's reset links)", async () => {
    const owner = await ownerWithFactors("change-fresh@example.org");
    fx.clock.advance(11 * MINUTE);
    const thief = steal(owner.laptop);
    const stale = (await thief.request("GET", "/auth/session")).json();
    assert.equal(stale.fresh, false);
    const changed = await thief.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: owner.password, newPassword: "a thief chose this passphrase" } });
    assert.equal(changed.statusCode, 403, "the factor is asked for first");
    assert.equal(changed.json().error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    assert.equal((await fx.browser({ newDevice: true }).login("change-fresh@example.org", owner.password)).statusCode, 200, "the owner's password stands");
    const after = (await thief.request("GET", "/auth/session")).json();
    assert.equal(after.sessionId, stale.sessionId);
    assert.equal(after.fresh, false, "no fresher than the stolen one: the second factor was never given");
    const csrf = await thief.csrf();
    for (const [method, url] of [["DELETE", "/auth/mfa/totp"], ["DELETE", `/auth/mfa/webauthn/${encodeURIComponent(owner.credentialId)}`]] as const) {
      const res = await thief.request(method, url, { csrf });
      assert.equal(res.statusCode, 403, `${method} ${url}: ${res.body}`);
      assert.equal(res.json().error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    }
    const email = await thief.request("POST", "/auth/email/change", { csrf, body: { newEmail: "thief@evil.example" } });
    assert.equal(email.statusCode, 403, email.body);
    const user = (await fx.app.accounts.users.findByIdentifier("change-fresh@example.org"))!;
    assert.equal(await fx.app.accounts.mfa.hasMfa(user.id), true, "every factor is still there");
  });

  it("attack: a session dated in the future by a node whose clock runs ahead is refused here, fresh or not; signing in here starts a window on this clock (ASVS 7.3.2, 7.5.1) (was: accepted, only not fresh, so its lifetime ran an hour longer)", async () => {
    const user = await fx.user("fast-clock@example.org");
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const original = fx.clock.now();
    // This node's clock is an hour behind the node that signed the user in: the session's creation time is an hour
    // ahead, and its re-authentication window would run for an hour and ten minutes here.
    fx.clock.set(original - 60 * MINUTE);
    try {
      const stale = b.cookie;
      const res = await b.request("DELETE", "/auth/sessions", { csrf: "any" });
      assert.equal(res.statusCode, 401, res.body);
      assert.equal(res.json().error.code, "BULWARK_ERR_AUTH_REQUIRED");
      b.cookie = stale;
      assert.equal((await b.request("GET", "/auth/session")).json().authenticated, false, "ended, not only refused once");
      assert.equal((await b.login(user.email, user.password)).statusCode, 200);
      assert.equal((await b.request("GET", "/auth/session")).json().fresh, true, "a window on this node's clock");
      assert.equal((await b.request("DELETE", "/auth/sessions", { csrf: true })).statusCode, 200);
    } finally {
      fx.clock.set(original + MINUTE);
    }
  });

  it("a user without a second factor who changes the password is fresh: the password is their whole authentication", async () => {
    const user = await fx.user("change-fresh-nomfa@example.org");
    const b = fx.browser();
    await b.login(user.email, user.password);
    fx.clock.advance(11 * MINUTE);
    assert.equal((await b.request("GET", "/auth/session")).json().fresh, false);
    assert.equal((await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: user.password, newPassword: "a passphrase of the owner's own" } })).statusCode, 200);
    assert.equal((await b.request("GET", "/auth/session")).json().fresh, true);
  });

  it("the owner re-authenticates with password and TOTP: a new session, fresh again, and the change goes through (ASVS 7.2.4)", async () => {
    const owner = await ownerWithFactors("owner@example.org");
    fx.clock.advance(11 * MINUTE);
    const old = owner.laptop.cookie as string;
    assert.equal((await owner.laptop.request("DELETE", "/auth/mfa/totp", { csrf: true })).json().error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    const ok = await owner.laptop.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().aal, 2);
    assert.equal(ok.json().freshUntil, fx.clock.now() + 10 * MINUTE);
    assert.notEqual(owner.laptop.cookie, old, "re-authentication issues a new session");
    assert.equal((await fx.app.accounts.sessions.validate(old)).valid, false, "and ends the old one");
    assert.equal((await owner.laptop.request("GET", "/auth/session")).json().fresh, true);
    const removed = await owner.laptop.request("DELETE", "/auth/mfa/totp", { csrf: true });
    assert.equal(removed.statusCode, 200, removed.body);
    const ended = await owner.laptop.request("DELETE", "/auth/sessions", { csrf: true });
    assert.equal(ended.statusCode, 200, ended.body);
    assert.equal(ended.json().ended, 1, "the phone session ended");
    assert.equal((await owner.phone.request("GET", "/auth/session")).json().authenticated, false);
    // The window runs out again.
    fx.clock.advance(10 * MINUTE);
    assert.equal((await owner.laptop.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).statusCode, 403);
    assert.ok((await fx.app.audit.tail(20)).some((e) => e.type === "auth.reauthenticated" && e.data["factor"] === "totp"));
  });

  it("a replacement of the authenticator app begun before the session went stale goes on after re-authentication: the fresh session that replaced it confirms it, and the stale one's copy cannot (ASVS 7.5.1) (was: re-authenticating gave the session a new id and the replacement was lost)", async () => {
    const owner = await ownerWithFactors("reauth-replace@example.org");
    const begun = await owner.laptop.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    // The laptop's session signed in over a minute ago: still fresh, so the replacement begins.
    assert.equal(begun.statusCode, 200, begun.body);
    const secret = begun.json().secret as string;
    const copy = fx.browser();
    copy.cookie = owner.laptop.cookie;
    fx.clock.advance(11 * MINUTE);
    const stale = await owner.laptop.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(stale.statusCode, 403, "a stale session confirms nothing");
    const reauth = await owner.laptop.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(reauth.statusCode, 200, reauth.body);
    fx.clock.advance(30_000);
    assert.equal((await copy.request("GET", "/auth/csrf")).statusCode, 401, "the replaced session's copy is dead: it gets no token to confirm with");
    const confirmed = await owner.laptop.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
  });

  it("re-authenticates with a passkey (assertion options from /auth/reauthenticate/webauthn/options)", async () => {
    const owner = await ownerWithFactors("passkey-reauth@example.org");
    fx.clock.advance(11 * MINUTE);
    const options = await owner.laptop.request("POST", "/auth/reauthenticate/webauthn/options", { csrf: true });
    assert.equal(options.statusCode, 200, options.body);
    const phished = owner.key.authenticate(options.json(), "https://bulwark-login.example");
    const refused = await owner.laptop.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, webauthn: phished } });
    assert.equal(refused.statusCode, 401, "attack: an assertion made for another origin");
    // attack: an assertion over the challenge the phone's session asked for does not re-authenticate the laptop's.
    const phoneOptions = await owner.phone.request("POST", "/auth/reauthenticate/webauthn/options", { csrf: true });
    const crossed = await owner.laptop.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, webauthn: owner.key.authenticate(phoneOptions.json(), ORIGIN) } });
    assert.equal(crossed.statusCode, 401, "another session's challenge");
    const again = await owner.laptop.request("POST", "/auth/reauthenticate/webauthn/options", { csrf: true });
    const ok = await owner.laptop.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, webauthn: owner.key.authenticate(again.json(), ORIGIN) } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((await owner.laptop.request("DELETE", `/auth/mfa/webauthn/${encodeURIComponent(owner.credentialId)}`, { csrf: true })).statusCode, 200);
  });

  it("a user without MFA re-authenticates with the password alone; a wrong one is refused", async () => {
    const user = await fx.user("nomfa@example.org");
    const b = fx.browser();
    await b.login(user.email, user.password);
    const other = fx.browser();
    await other.login(user.email, user.password);
    fx.clock.advance(11 * MINUTE);
    assert.equal((await b.request("DELETE", "/auth/sessions", { csrf: true })).statusCode, 403);
    const wrong = await b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: "not my password at all" } });
    assert.equal(wrong.statusCode, 401);
    assert.equal(wrong.json().error.code, "BULWARK_ERR_REAUTH_FAILED");
    const ok = await b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: user.password } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().aal, 1);
    assert.equal((await b.request("DELETE", "/auth/sessions", { csrf: true })).json().ended, 1);
  });

  it("an administrator's first enrolment right after login is fresh; after the window, the password refreshes it", async () => {
    const admin = await fx.user("fresh-admin@example.org", { roles: ["admin"] });
    const b = fx.browser();
    assert.equal((await b.login(admin.email, admin.password)).json().mfaEnrolmentRequired, true);
    assert.equal((await b.request("POST", "/auth/mfa/totp", { csrf: true })).statusCode, 200, "fresh by design: the login just happened");
    fx.clock.advance(11 * MINUTE);
    const stale = await b.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(stale.json().error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    const ok = await b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: admin.password } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((await b.request("GET", "/auth/sessions")).statusCode, 403, "re-authentication does not skip the enrolment gate");
    const begin = await b.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(begin.statusCode, 200);
    const confirm = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(begin.json().secret, fx.clock.now()) } });
    assert.equal(confirm.statusCode, 200, confirm.body);
    fx.clock.advance(30_000);
  });

  it("attack: an outsider's 100 failures at the address stop no re-authentication of a browser the account knows, nor of a full-assurance session (a window of its own each); a password-only session in a browser the account does not know stays stopped (NIST SP 800-63B §5.2.2, ASVS 6.3.1, 7.5.3)", async () => {
    const owner = await ownerWithFactors("reauth-stopped@example.org");
    const plain = await fx.user("reauth-stopped-plain@example.org");
    const known = fx.browser({ newDevice: true });
    assert.equal((await known.login(plain.email, plain.password)).statusCode, 200);
    // Copies of the sessions' cookies in browsers without the known-device cookie: the session is live, the browser new.
    const fullSession = fx.browser({ newDevice: true });
    fullSession.cookie = owner.laptop.cookie;
    const passwordSession = fx.browser({ newDevice: true });
    passwordSession.cookie = known.cookie;
    fx.clock.advance(11 * MINUTE);
    for (const email of ["reauth-stopped@example.org", plain.email]) {
      for (let i = 0; i < 100; i++) await fx.app.accounts.flood.registerFailure({ identifier: email, ip: `198.18.70.${i}` });
    }
    const stopped = await passwordSession.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: plain.password } });
    assert.equal(stopped.statusCode, 429, "a password-only session in a new browser is what a stuffed password makes: still stopped");
    assert.equal(stopped.headers["retry-after"], undefined);
    const fromKnown = await known.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: plain.password } });
    assert.equal(fromKnown.statusCode, 200, fromKnown.body);
    const full = await fullSession.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(full.statusCode, 200, full.body);
    assert.equal(full.json().aal, 2);
  });

  it("the window is configured by BULWARK_REAUTH_MINUTES, with a clear error for a bad value", () => {
    assert.equal(loadHTTPAuthConfig({}, 8080).reauthWindowMs, 10 * MINUTE);
    assert.equal(loadHTTPAuthConfig({ BULWARK_REAUTH_MINUTES: "3" }, 8080).reauthWindowMs, 3 * MINUTE);
    assert.throws(() => loadHTTPAuthConfig({ BULWARK_REAUTH_MINUTES: "0" }, 8080), /BULWARK_REAUTH_MINUTES must be a whole number of minutes from 1 to 120/);
    assert.throws(() => loadHTTPAuthConfig({ BULWARK_REAUTH_MINUTES: "ten" }, 8080), /BULWARK_REAUTH_MINUTES/);
  });
});
