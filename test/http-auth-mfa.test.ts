// MFA over HTTP: enrolment, step-up after login, and the attacks that must fail — a replayed TOTP code, a reused
// recovery code, reaching other routes before the second factor, an administrator skipping enrolment.
// Factor changes are mailed to the user; the test reads them from a real SMTP server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { MAX_LIVE_WEBAUTHN_CHALLENGES } from "../src/accounts/mfa/index.ts";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

/** Signs in and enrols TOTP; returns the browser (now aal 2) and the secret. */
async function enrolTOTP(email: string): Promise<{ b: Browser; secret: string; password: string; id: string }> {
  const user = await fx.user(email);
  const b = fx.browser();
  assert.equal((await b.login(user.email, user.password)).statusCode, 200);
  const begin = await b.request("POST", "/auth/mfa/totp", { csrf: true });
  assert.equal(begin.statusCode, 200, begin.body);
  const { uri, secret } = begin.json() as { uri: string; secret: string };
  assert.match(uri, /^otpauth:\/\/totp\//);
  const before = b.cookie;
  const confirm = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
  assert.equal(confirm.statusCode, 200, confirm.body);
  assert.equal(confirm.json().aal, 2);
  assert.notEqual(b.cookie, before, "enrolment is a privilege change: new session");
  // The enrolment code's time step is spent; later logins use the next step.
  fx.clock.advance(30_000);
  return { b, secret, password: user.password, id: user.id };
}

describe("TOTP enrolment confirmation", () => {
  it("attack: guessing the confirmation code is throttled like a login code: 429, and even the right code waits (ASVS 6.3.1)", async () => {
    const user = await fx.user("confirm-guess@example.org");
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const { secret } = (await b.request("POST", "/auth/mfa/totp", { csrf: true })).json() as { secret: string };
    const begunAt = fx.clock.now();
    const valid = new Set([-1, 0, 1].map((o) => totpCode(secret, fx.clock.now() + o * 30_000)));
    const wrong = ["000000", "111111", "222222", "333333", "444444", "555555", "666666", "777777"].filter((c) => !valid.has(c));
    for (const code of wrong.slice(0, 5)) {
      const r = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code } });
      assert.equal(r.statusCode, 401, `guess ${code} is within the limit: ${r.body}`);
      assert.equal(r.json().error.code, "BULWARK_ERR_MFA_INVALID");
    }
    const throttled = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(throttled.statusCode, 429, throttled.body);
    assert.equal(throttled.headers["retry-after"], "300");
    assert.equal(throttled.json().error.code, "BULWARK_ERR_MFA_THROTTLED");
    assert.deepEqual((await b.request("GET", "/auth/mfa")).json(), { totp: false, webauthn: 0, recoveryCodes: 0, totpEnrolment: { startedAt: begunAt, expiresAt: begunAt + 30 * 60_000 } }, "nothing was enrolled; the enrolment still waits");
    fx.clock.advance(5 * 60_000);
    const confirmed = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
  });

  it("attack: at the 100-failures stop, which no wait lifts, the 429 promises no Retry-After and says who lifts it (as the password's stop does) (was: Retry-After: 300, retried every five minutes for ever)", async () => {
    const user = await fx.user("confirm-stop@example.org");
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const { secret } = (await b.request("POST", "/auth/mfa/totp", { csrf: true })).json() as { secret: string };
    const { FloodControl } = await import("../src/accounts/flood/flood.ts");
    const { MFA_FLOOD_NAMESPACE, MFA_FLOOD_POLICY } = await import("../src/accounts/mfa/index.ts");
    const { floodIdentifier } = await import("../src/accounts/mfa/policy.ts");
    const counter = new FloodControl({ database: fx.app.db, clock: fx.clock, keyOf: (text) => fx.app.keyring.floodKey(text), policy: MFA_FLOOD_POLICY, namespace: MFA_FLOOD_NAMESPACE });
    const userId = (await fx.app.accounts.users.findByIdentifier(user.email))!.id;
    // A hundred wrong codes in a row (counted as the factor counts them), then the five-minute window passes: only
    // the stop is left.
    for (let i = 0; i < MFA_FLOOD_POLICY.maxConsecutive; i++) await counter.registerFailure({ identifier: floodIdentifier("totp", userId), ip: null });
    fx.clock.advance(6 * 60_000);
    const stopped = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(stopped.statusCode, 429, stopped.body);
    assert.equal(stopped.json().error.code, "BULWARK_ERR_MFA_THROTTLED");
    assert.equal(stopped.headers["retry-after"], undefined, "no wait lifts this stop");
    assert.match(stopped.json().error.message, /administrator/);
  });
});

describe("MFA step-up", () => {
  it("holds a password-only login at aal 1 until a TOTP code, then rotates to aal 2 (ASVS 6.3.3, 7.2.4)", async () => {
    const { secret, password } = await enrolTOTP("totp@example.org");
    const b = fx.browser();
    const login = await b.login("totp@example.org", password);
    assert.equal(login.statusCode, 200);
    assert.equal(login.json().mfaRequired, true);
    const session = await b.request("GET", "/auth/session");
    assert.equal(session.json().mfaRequired, true);
    assert.equal(session.json().aal, 1);
    const blocked = await b.request("GET", "/auth/sessions");
    assert.equal(blocked.statusCode, 403, "attack: skipping the second factor");
    assert.equal(blocked.json().error.code, "BULWARK_ERR_MFA_REQUIRED");
    const addFactor = await b.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(addFactor.statusCode, 403, "a password alone cannot enrol more factors");
    const wrong = await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: "000000" } });
    assert.equal(wrong.statusCode, 401);
    const aal1 = b.cookie;
    const ok = await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().aal, 2);
    assert.notEqual(b.cookie, aal1);
    assert.equal((await fx.app.accounts.sessions.validate(aal1 as string)).valid, false, "the aal-1 token is dead");
    assert.equal((await b.request("GET", "/auth/sessions")).statusCode, 200);
    fx.clock.advance(30_000);
  });

  it("a double-submitted code: the first steps up, the second is told its session was replaced, and neither signs the user out", async () => {
    const { secret, password, id } = await enrolTOTP("double-submit@example.org");
    const b = fx.browser();
    assert.equal((await b.login("double-submit@example.org", password)).statusCode, 200);
    const aal1 = b.cookie as string;
    const csrf = await b.csrf();
    const code = totpCode(secret, fx.clock.now());
    const first = await b.request("POST", "/auth/mfa/verify", { csrf, body: { totp: code } });
    assert.equal(first.statusCode, 200, first.body);
    const stepped = b.cookie as string;
    // The second click left before the first answer set the new cookie: the old cookie and its CSRF token.
    const late = fx.browser();
    late.cookie = aal1;
    const second = await late.request("POST", "/auth/mfa/verify", { csrf, body: { totp: code } });
    assert.equal(second.statusCode, 401);
    assert.equal(second.json().error.code, "BULWARK_ERR_SESSION_REPLACED", "not 'wrong code', not 'sign in first': the page reads its new session");
    assert.equal(second.headers["set-cookie"], undefined, "its answer does not delete the cookie the first one set");
    // The same holds on the API and on routes that need this very session.
    assert.equal((await late.request("GET", "/api/v1/tokens")).json().error.code, "BULWARK_ERR_SESSION_REPLACED");
    assert.equal((await late.request("GET", "/auth/sessions")).json().error.code, "BULWARK_ERR_SESSION_REPLACED");
    const audit = await fx.app.db.db.selectFrom("audit_events").select("type").where("type", "=", "auth.mfa.failed").where("actor", "=", id).execute();
    assert.equal(audit.length, 0, "the late submit is no failed factor attempt");
    b.cookie = stepped;
    assert.equal((await b.request("GET", "/auth/session")).json().aal, 2, "the user stays signed in at aal 2");
    // Attack: a guessed secret for the replaced id learns nothing and its cookie is cleared at once.
    const guess = fx.browser();
    guess.cookie = `${aal1.split(".")[0]}.${"A".repeat(43)}`;
    const refused = await guess.request("POST", "/auth/mfa/verify", { csrf, body: { totp: code } });
    assert.equal(refused.statusCode, 401);
    assert.equal(refused.json().error.code, "BULWARK_ERR_AUTH_REQUIRED");
    assert.match(String(refused.headers["set-cookie"]), /Max-Age=0/);
    fx.clock.advance(30_000);
  });

  it("attack: a replayed TOTP code is refused (ASVS 6.5.1)", async () => {
    const { secret, password } = await enrolTOTP("replay@example.org");
    const code = totpCode(secret, fx.clock.now());
    const first = fx.browser();
    await first.login("replay@example.org", password);
    assert.equal((await first.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } })).statusCode, 200);
    // The attacker watched the code (shoulder surfing, a phishing proxy) and knows the password.
    const attacker = fx.browser();
    await attacker.login("replay@example.org", password);
    const replay = await attacker.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
    assert.equal(replay.statusCode, 401);
    assert.equal(replay.json().error.code, "BULWARK_ERR_MFA_INVALID");
    assert.equal((await attacker.request("GET", "/auth/sessions")).statusCode, 403);
    fx.clock.advance(30_000);
  });

  it("attack: a recovery code works once, never twice (ASVS 6.5.1)", async () => {
    const { b, password } = await enrolTOTP("recovery@example.org");
    const gen = await b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
    assert.equal(gen.statusCode, 200, gen.body);
    const codes = gen.json().codes as string[];
    assert.equal(codes.length, 10);
    const first = fx.browser();
    await first.login("recovery@example.org", password);
    const used = await first.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[0] } });
    assert.equal(used.statusCode, 200, used.body);
    assert.equal(used.json().recoveryCodesLeft, 9);
    const second = fx.browser();
    await second.login("recovery@example.org", password);
    const reused = await second.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[0] } });
    assert.equal(reused.statusCode, 401);
    assert.equal((await second.request("GET", "/auth/sessions")).statusCode, 403);
  });

  it("attack: a stolen aal-2 cookie cannot step up again to become fresh or outlive its absolute limit (ASVS 7.5.1, 7.3.2)", async () => {
    const { b, secret, password } = await enrolTOTP("stepup-again@example.org");
    const gen = await b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
    const codes = gen.json().codes as string[];
    const owner = fx.browser();
    await owner.login("stepup-again@example.org", password);
    assert.equal((await owner.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    const before = (await owner.request("GET", "/auth/session")).json();
    // Past the re-authentication window: a sensitive change needs the password again.
    fx.clock.advance(11 * 60_000);
    const thief = fx.browser();
    thief.cookie = owner.cookie;
    assert.equal((await thief.request("GET", "/auth/session")).json().fresh, false);
    const again = await thief.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[0] } });
    assert.equal(again.statusCode, 409);
    assert.equal(again.json().error.code, "BULWARK_ERR_MFA_ALREADY_VERIFIED");
    assert.equal(thief.cookie, owner.cookie, "no new session was issued");
    const after = (await thief.request("GET", "/auth/session")).json();
    assert.equal(after.fresh, false, "still not fresh");
    assert.equal(after.expiresAt, before.expiresAt, "the absolute expiry did not move");
    assert.equal((await thief.request("DELETE", "/auth/mfa/totp", { csrf: true })).json().error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    assert.equal((await fx.app.accounts.mfa.recovery.remaining(before.userId)), 10, "the owner's recovery code was not spent");
  });

  it("a step-up keeps the session's creation time and absolute expiry: the factor raises assurance, not lifetime", async () => {
    const { secret, password } = await enrolTOTP("stepup-lifetime@example.org");
    const b = fx.browser();
    await b.login("stepup-lifetime@example.org", password);
    const atGate = (await b.request("GET", "/auth/session")).json();
    fx.clock.advance(11 * 60_000);
    assert.equal((await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    const stepped = (await b.request("GET", "/auth/session")).json();
    assert.equal(stepped.aal, 2);
    assert.equal(stepped.createdAt, atGate.createdAt);
    assert.equal(stepped.expiresAt, atGate.expiresAt);
    assert.equal(stepped.fresh, false, "the password was typed 11 minutes ago: a factor alone does not make the session fresh");
  });

  it("mails the user when factors change (ASVS 6.3.7) and lists and removes them", async () => {
    const { b } = await enrolTOTP("notices@example.org");
    assert.equal((await b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).statusCode, 200);
    const factors = await b.request("GET", "/auth/mfa");
    assert.deepEqual(factors.json(), { totp: true, webauthn: 0, recoveryCodes: 10 });
    assert.equal((await b.request("GET", "/auth/mfa/webauthn")).json().credentials.length, 0);
    const removed = await b.request("DELETE", "/auth/mfa/totp", { csrf: true });
    assert.equal(removed.statusCode, 200, removed.body);
    // The last factor is gone: its recovery codes go with it, or an old (perhaps leaked) set would count again
    // the day a new factor is enrolled.
    assert.deepEqual((await b.request("GET", "/auth/mfa")).json(), { totp: false, webauthn: 0, recoveryCodes: 0 });
    const report = await fx.deliver();
    assert.ok(report.sent >= 3);
    const subjects = fx.mailTo("notices@example.org").map((m) => m.subject);
    assert.ok(subjects.some((s) => /a sign-in factor was added/.test(s)), subjects.join(" | "));
    assert.ok(subjects.some((s) => /recovery codes were replaced/.test(s)));
    assert.ok(subjects.some((s) => /a sign-in factor was removed/.test(s)));
    assert.ok(subjects.some((s) => /your recovery codes were removed/.test(s)), subjects.join(" | "));
    const added = fx.mailTo("notices@example.org").find((m) => /added/.test(m.subject));
    assert.match(added?.body ?? "", /authenticator app \(TOTP\)/);
  });

  it("attack: replacing the authenticator app (a lost phone) never leaves the account without a factor — the new app waits beside the old one, which keeps signing in until the new one's code swaps them; a stale or password-only session cannot start or finish it; the swap keeps the recovery codes, lowers the sessions the old app stepped up, is audited and mailed (ASVS 6.3.3, 6.3.7, 7.5.1) (was: the only way was remove, then enrol, and in between a password-only login was fully signed in)", async () => {
    const owner = await enrolTOTP("replace-app@example.org");
    assert.equal((await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).statusCode, 200);
    // Another session of the owner, stepped up with the old app (the lost phone's holder may have one like it).
    const other = fx.browser();
    assert.equal((await other.login("replace-app@example.org", owner.password)).json().mfaRequired, true);
    assert.equal((await other.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(30_000);
    // Nothing to replace without an app; a half-signed-in session cannot start it either.
    const bare = await fx.user("replace-none@example.org");
    const nb = fx.browser();
    await nb.login(bare.email, bare.password);
    const none = await nb.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    assert.equal(none.statusCode, 409, none.body);
    assert.equal(none.json().error.code, "BULWARK_ERR_MFA_NOT_ENROLLED");
    const half = fx.browser();
    await half.login("replace-app@example.org", owner.password);
    assert.equal((await half.request("POST", "/auth/mfa/totp/replace", { csrf: true })).statusCode, 403);
    // A stale session must confirm it is the owner first.
    fx.clock.advance(11 * 60_000);
    assert.equal((await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true })).statusCode, 403);
    assert.equal((await owner.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(30_000);
    const begun = await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    assert.equal(begun.statusCode, 200, begun.body);
    const { uri, secret } = begun.json() as { uri: string; secret: string };
    assert.match(uri, /^otpauth:\/\/totp\//);
    // Meanwhile the old app still signs in: the password alone is still half a sign-in.
    const during = fx.browser();
    assert.equal((await during.login("replace-app@example.org", owner.password)).json().mfaRequired, true);
    assert.equal((await during.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(30_000);
    const wrong = await owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(wrong.statusCode, 401, "the old app's code does not confirm the new one");
    const swapped = await owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(swapped.statusCode, 200, swapped.body);
    assert.equal(swapped.json().status, "replaced");
    assert.equal((await owner.b.request("GET", "/auth/session")).json().aal, 2, "the session that proved the new app keeps aal 2");
    assert.equal((await other.request("GET", "/auth/session")).json().aal, 1, "a session the old app stepped up is lowered");
    assert.deepEqual((await owner.b.request("GET", "/auth/mfa")).json(), { totp: true, webauthn: 0, recoveryCodes: 10 }, "the recovery codes stay: the account was never without a factor");
    const again = await owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(again.statusCode, 409, "nothing waits any more");
    fx.clock.advance(30_000);
    const old = fx.browser();
    await old.login("replace-app@example.org", owner.password);
    assert.equal((await old.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 401, "the old app's codes no longer pass");
    const next = fx.browser();
    await next.login("replace-app@example.org", owner.password);
    assert.equal((await next.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    const events = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.mfa.replaced").where("subject", "=", owner.id).execute();
    assert.equal(events.length, 1);
    await fx.deliver();
    const notice = fx.mailTo("replace-app@example.org").find((m) => /authenticator app was replaced/.test(m.subject));
    assert.ok(notice, fx.mailTo("replace-app@example.org").map((m) => m.subject).join(" | "));
    assert.match(notice.body, /no longer work/);
  });

  it("attack: a replacement of the app begun and left (its seed kept by whoever began it) is recorded naming the session, mailed and listed while it waits; no other session can confirm it, it expires after 30 minutes, and the maintenance pass drops its seed (ASVS 6.3.7, 7.5.1)", async () => {
    const owner = await enrolTOTP("replace-left@example.org");
    const sessionId = (await owner.b.request("GET", "/auth/session")).json().sessionId as string;
    const begun = await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    assert.equal(begun.statusCode, 200, begun.body);
    const { secret, expiresAt } = begun.json() as { secret: string; expiresAt: number };
    assert.equal(expiresAt, fx.clock.now() + 30 * 60_000);
    const listed = (await owner.b.request("GET", "/auth/mfa")).json() as { totpReplacement?: { startedAt: number; expiresAt: number } };
    assert.deepEqual(listed.totpReplacement, { startedAt: fx.clock.now(), expiresAt });
    const [record] = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.mfa.replacement-begun").where("subject", "=", owner.id).execute();
    assert.equal(JSON.parse(record!.data).sessionId, sessionId);
    await fx.deliver();
    assert.ok(fx.mailTo("replace-left@example.org").some((m) => /replacement of your authenticator app was started/.test(m.subject)));
    // Another fresh, fully signed-in session of the owner cannot confirm a replacement it did not begin.
    const other = fx.browser();
    await other.login("replace-left@example.org", owner.password);
    assert.equal((await other.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 200);
    const elsewhere = await other.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(elsewhere.statusCode, 409, elsewhere.body);
    // Past its 30 minutes it is no longer listed, and the maintenance pass drops the sealed seed.
    fx.clock.advance(15 * 60_000);
    assert.equal((await other.request("GET", "/auth/session")).statusCode, 200);
    fx.clock.advance(15 * 60_000);
    assert.equal(((await other.request("GET", "/auth/mfa")).json() as Record<string, unknown>)["totpReplacement"], undefined);
    const maintenance = startMaintenance(fx.app, { intervalMs: 3_600_000, firstPassDelayMs: 3_600_000 });
    try {
      assert.equal((await maintenance.runOnce())["totpReplacements"], 1);
    } finally {
      await maintenance.stop();
    }
    const row = await fx.app.db.db.selectFrom("mfa_totp").select(["pending_secret_ct", "pending_session_id"]).where("user_id", "=", owner.id).executeTakeFirstOrThrow();
    assert.deepEqual({ ...row }, { pending_secret_ct: null, pending_session_id: null });
  });

  it("attack: a first app's enrolment begun and left (its seed kept by whoever began it) is listed while it waits; no other session of the owner confirms it, the session that began it does after a re-authentication (handed on), and past 30 minutes none does and the maintenance pass deletes it (ASVS 2.3.1, 7.4.3, 7.5.1)", async () => {
    const user = await fx.user("enrol-left@example.org");
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const begun = await b.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(begun.statusCode, 200, begun.body);
    const secret = begun.json().secret as string;
    const begunAt = fx.clock.now();
    const listed = (await b.request("GET", "/auth/mfa")).json() as { totpEnrolment?: { startedAt: number; expiresAt: number } };
    assert.deepEqual(listed.totpEnrolment, { startedAt: begunAt, expiresAt: begunAt + 30 * 60_000 });
    // Another fresh, fully signed-in session of the owner (the intruder back at the computer) cannot confirm it.
    const other = fx.browser();
    assert.equal((await other.login(user.email, user.password)).statusCode, 200);
    const elsewhere = await other.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(elsewhere.statusCode, 409, elsewhere.body);
    assert.match(elsewhere.body, /no enrolment of an authenticator app waits for this session/);
    // The session that began it re-authenticates (a new session): the enrolment goes on in it.
    fx.clock.advance(11 * 60_000);
    assert.equal((await b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: user.password } })).statusCode, 200);
    const confirmed = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    assert.deepEqual((await b.request("GET", "/auth/mfa")).json(), { totp: true, webauthn: 0, recoveryCodes: 0 });
    fx.clock.advance(30_000);

    // Another account's, left past its 30 minutes (the session that began it kept alive and fresh): nobody confirms it.
    const late = await fx.user("enrol-expired@example.org");
    const c = fx.browser();
    assert.equal((await c.login(late.email, late.password)).statusCode, 200);
    const stale = (await c.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    fx.clock.advance(15 * 60_000);
    assert.equal((await c.request("GET", "/auth/session")).statusCode, 200);
    fx.clock.advance(15 * 60_000);
    assert.equal((await c.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: late.password } })).statusCode, 200);
    assert.equal(((await c.request("GET", "/auth/mfa")).json() as Record<string, unknown>)["totpEnrolment"], undefined);
    const expired = await c.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(stale, fx.clock.now()) } });
    assert.equal(expired.statusCode, 409, expired.body);
    const maintenance = startMaintenance(fx.app, { intervalMs: 3_600_000, firstPassDelayMs: 3_600_000 });
    try {
      assert.ok((await maintenance.runOnce())["totpEnrolments"]! >= 1);
    } finally {
      await maintenance.stop();
    }
    assert.equal(await fx.app.db.db.selectFrom("mfa_totp").select("user_id").where("user_id", "=", late.id).executeTakeFirst(), undefined, "the sealed seed is gone");
    assert.equal(await fx.app.db.db.selectFrom("mfa_totp").select("user_id").where("user_id", "=", user.id).where("confirmed_at", "is not", null).executeTakeFirst() !== undefined, true, "a confirmed app is never purged");
  });

  it("attack: guessing the code that confirms a replacement app is throttled on the app's counter: the sixth guess, even right, gets 429 and swaps nothing; after the window the right code swaps (ASVS 6.3.1)", async () => {
    const owner = await enrolTOTP("replace-guess@example.org");
    const begun = await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    assert.equal(begun.statusCode, 200, begun.body);
    const { secret } = begun.json() as { secret: string };
    const valid = new Set([-1, 0, 1].map((o) => totpCode(secret, fx.clock.now() + o * 30_000)));
    const wrong = ["000000", "111111", "222222", "333333", "444444", "555555", "666666", "777777"].filter((c) => !valid.has(c));
    for (const code of wrong.slice(0, 5)) assert.equal((await owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code } })).statusCode, 401);
    const throttled = await owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(throttled.statusCode, 429, throttled.body);
    assert.equal(throttled.json().error.code, "BULWARK_ERR_MFA_THROTTLED");
    assert.equal((await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", "auth.mfa.replaced").where("subject", "=", owner.id).execute()).length, 0, "nothing was swapped");
    fx.clock.advance(5 * 60_000);
    assert.equal((await owner.b.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
  });

  it("attack: a session cannot mail the owner without limit by making recovery codes again and again: the sixth set within the hour gets 429 with Retry-After, makes no codes and mails nothing; the last set made still works, another account keeps its own budget, and after the hour it is allowed again (ASVS 2.4.1, 6.3.7)", async () => {
    const owner = await enrolTOTP("codes-flood@example.org");
    const other = await enrolTOTP("codes-flood-other@example.org");
    const notices = async (email: string): Promise<number> =>
      (await fx.app.db.db.selectFrom("outbox_messages").select("id").where("to_address", "=", email).where("kind", "=", "security.recovery-codes-regenerated").execute()).length;
    let last: string[] = [];
    for (let i = 0; i < 5; i++) {
      const made = await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
      assert.equal(made.statusCode, 200, `set ${i + 1} is within the budget: ${made.body}`);
      last = (made.json() as { codes: string[] }).codes;
    }
    const refused = await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
    assert.equal(refused.statusCode, 429, refused.body);
    assert.equal(refused.headers["retry-after"], "3600");
    assert.equal(refused.json().error.code, "BULWARK_ERR_RECOVERY_CODES_RATE");
    assert.match(refused.json().error.message, /too many sets of recovery codes .* in the last hour \(5\)/);
    assert.equal(await notices("codes-flood@example.org"), 5, "one notice per set made, none for the refused one");
    // The refused request replaced nothing: the fifth set is the one that works.
    assert.ok(await fx.app.accounts.mfa.recovery.consume(owner.id, last[0] as string), "the last set made still works");
    // Per account: another account's sets are counted apart.
    assert.equal((await other.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).statusCode, 200);
    // After the hour (signed in again: the session has expired meanwhile), a set is allowed again.
    fx.clock.advance(60 * 60_000 + 1);
    const b = fx.browser();
    assert.equal((await b.login("codes-flood@example.org", owner.password)).statusCode, 200);
    assert.equal((await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } })).statusCode, 200);
    const again = await b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
    assert.equal(again.statusCode, 200, again.body);
    assert.equal(await notices("codes-flood@example.org"), 6);
  });

  it("attack: the right password with a refused second factor, again and again, tells the owner once an hour, and a recovery-code sign-in tells the owner how many codes are left (ASVS 6.3.5; was: audited only, never mailed)", async () => {
    const { b: owner, secret, password } = await enrolTOTP("suspicious@example.org");
    const codes = ((await owner.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json() as { codes: string[] }).codes;
    await fx.deliver();
    const mails = (re: RegExp): number => fx.mailTo("suspicious@example.org").filter((m) => re.test(m.subject)).length;
    const refused = /the second factor was refused/;
    // The attacker holds the password, not the factor: three wrong codes on two pending sessions.
    for (const tries of [2, 1]) {
      const attacker = fx.browser();
      assert.equal((await attacker.login("suspicious@example.org", password)).statusCode, 200);
      for (let i = 0; i < tries; i++) {
        const r = await attacker.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: "000000" === totpCode(secret, fx.clock.now()) ? "111111" : "000000" } });
        assert.equal(r.statusCode, 401, r.body);
      }
    }
    await fx.deliver();
    assert.equal(mails(refused), 1, "one notice for the hour, not one per refused code");
    const notice = fx.mailTo("suspicious@example.org").find((m) => refused.test(m.subject));
    assert.match(notice?.body ?? "", /entered the right password .* knows your password: change it now/s);
    fx.clock.advance(3_600_000);
    const later = fx.browser();
    assert.equal((await later.login("suspicious@example.org", password)).statusCode, 200);
    assert.equal((await later.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: "000000" === totpCode(secret, fx.clock.now()) ? "111111" : "000000" } })).statusCode, 401);
    await fx.deliver();
    assert.equal(mails(refused), 2, "a new hour, a new notice");

    // A recovery code completes a sign-in: the owner hears of it, with the codes left.
    const viaCode = fx.browser();
    assert.equal((await viaCode.login("suspicious@example.org", password)).statusCode, 200);
    const step = await viaCode.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[0] } });
    assert.equal(step.statusCode, 200, step.body);
    await fx.deliver();
    const used = fx.mailTo("suspicious@example.org").filter((m) => /a recovery code was used to sign in/.test(m.subject));
    assert.equal(used.length, 1);
    assert.match(used[0]?.body ?? "", /9 codes are left/);
    // A sign-in with the authenticator app is ordinary: no notice.
    fx.clock.advance(30_000);
    const ordinary = fx.browser();
    assert.equal((await ordinary.login("suspicious@example.org", password)).statusCode, 200);
    assert.equal((await ordinary.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    const before = fx.mailTo("suspicious@example.org").length;
    await fx.deliver();
    assert.equal(fx.mailTo("suspicious@example.org").length, before);
  });

  it("attack: a factor change whose notice cannot be queued does not happen — change, audit event and notice commit together (ASVS 6.3.7)", async () => {
    const user = await fx.user("atomic-notices@example.org");
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const { secret } = (await b.request("POST", "/auth/mfa/totp", { csrf: true })).json() as { secret: string };
    const begunAt = fx.clock.now();
    const outbox = fx.app.accounts.outbox;
    const events = async (type: string): Promise<number> =>
      (await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", type).where("subject", "=", user.id).execute()).length;
    // The database fails as the notice is written (a full disk, a lost connection, a crash at that instant).
    const failing = async (): Promise<never> => { throw new Error("disk I/O error"); };
    outbox.enqueue = failing;
    try {
      const confirm = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
      assert.equal(confirm.statusCode, 500, confirm.body);
      assert.deepEqual((await b.request("GET", "/auth/mfa")).json(), { totp: false, webauthn: 0, recoveryCodes: 0, totpEnrolment: { startedAt: begunAt, expiresAt: begunAt + 30 * 60_000 } }, "no factor the owner was not told about (the enrolment still waits)");
      assert.equal(await events("auth.mfa.added"), 0);
    } finally {
      delete (outbox as { enqueue?: unknown }).enqueue;
    }
    // The same code works once the database does: the rolled-back confirmation spent nothing.
    const retried = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(retried.statusCode, 200, retried.body);
    assert.equal(await events("auth.mfa.added"), 1);
    fx.clock.advance(30_000);
    await fx.app.accounts.mfa.recovery.generate(user.id); // a second way in, so the removal is not the last factor's
    outbox.enqueue = failing;
    try {
      const removed = await b.request("DELETE", "/auth/mfa/totp", { csrf: true });
      assert.equal(removed.statusCode, 500, removed.body);
      assert.equal((await b.request("GET", "/auth/mfa")).json().totp, true, "the factor stays until its removal can be told");
      assert.equal(await events("auth.mfa.removed"), 0);
    } finally {
      delete (outbox as { enqueue?: unknown }).enqueue;
    }
    assert.equal((await b.request("DELETE", "/auth/mfa/totp", { csrf: true })).statusCode, 200);
    await fx.deliver();
    const subjects = fx.mailTo(user.email).map((m) => m.subject);
    assert.equal(subjects.filter((s) => /a sign-in factor was added/.test(s)).length, 1, subjects.join(" | "));
    assert.equal(subjects.filter((s) => /a sign-in factor was removed/.test(s)).length, 1, subjects.join(" | "));
  });

  it("WebAuthn registration options are served; assertion options need a passkey; junk assertions fail", async () => {
    const { b, password } = await enrolTOTP("passkey@example.org");
    const reg = await b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    assert.equal(reg.statusCode, 200, reg.body);
    assert.equal(reg.json().rp.id, "bulwark.test");
    assert.ok(reg.json().challenge);
    const pending = fx.browser();
    await pending.login("passkey@example.org", password);
    const auth = await pending.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    // This user has TOTP but no passkey: nothing to assert with.
    assert.equal(auth.statusCode, 409, auth.body);
    assert.equal(auth.json().error.code, "BULWARK_ERR_MFA_NOT_ENROLLED");
    const junk = await pending.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: { id: "x", rawId: "x", type: "public-key", response: {} } } });
    assert.equal(junk.statusCode, 401, "a malformed assertion is a failed one");
  });
});

describe("passkeys over HTTP", () => {
  it("registers a passkey, steps up with it, and refuses a replayed or phished assertion", async () => {
    const ana = await fx.user("passkey-flow@example.org");
    const b = fx.browser();
    await b.login(ana.email, ana.password);
    const key = new SoftAuthenticator();
    const options = await b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    assert.equal(options.statusCode, 200, options.body);
    const registered = await b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: "laptop key" } });
    assert.equal(registered.statusCode, 200, registered.body);
    assert.equal(registered.json().aal, 2);
    const listed = (await b.request("GET", "/auth/mfa/webauthn")).json().credentials as Array<{ id: string; name: string }>;
    assert.deepEqual(listed.map((c) => c.name), ["laptop key"]);

    const pending = fx.browser();
    assert.equal((await pending.login(ana.email, ana.password)).json().mfaRequired, true);
    const req = await pending.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal(req.statusCode, 200, req.body);
    const phished = key.authenticate(req.json(), "https://bulwark-login.example");
    assert.equal((await pending.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: phished } })).statusCode, 401, "attack: an assertion made for another origin");
    const req2 = await pending.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    const assertion = key.authenticate(req2.json(), ORIGIN);
    const ok = await pending.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: assertion } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().aal, 2);

    const attacker = fx.browser();
    await attacker.login(ana.email, ana.password);
    const replay = await attacker.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: assertion } });
    assert.equal(replay.statusCode, 401, "attack: a replayed assertion (its challenge is spent)");

    const removed = await b.request("DELETE", `/auth/mfa/webauthn/${encodeURIComponent(listed[0]?.id ?? "")}`, { csrf: true });
    assert.equal(removed.statusCode, 200, removed.body);
    await fx.deliver();
    const subjects = fx.mailTo(ana.email).map((m) => m.subject);
    assert.equal(subjects.filter((s) => /factor was added/.test(s)).length, 1);
    assert.equal(subjects.filter((s) => /factor was removed/.test(s)).length, 1);
  });

  /** Registers a passkey for a new user over HTTP; returns the user and the key. */
  async function withPasskey(email: string): Promise<{ user: { email: string; password: string; id: string }; key: SoftAuthenticator }> {
    const user = await fx.user(email);
    const b = fx.browser();
    await b.login(user.email, user.password);
    const key = new SoftAuthenticator();
    const options = await b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    const registered = await b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: "key" } });
    assert.equal(registered.statusCode, 200, registered.body);
    return { user, key };
  }

  it("attack: an assertion over one pending session's challenge does not step up another session of the same user", async () => {
    const { user, key } = await withPasskey("passkey-two-sessions@example.org");
    const p1 = fx.browser();
    const p2 = fx.browser();
    assert.equal((await p1.login(user.email, user.password)).json().mfaRequired, true);
    assert.equal((await p2.login(user.email, user.password)).json().mfaRequired, true);
    const options = await p1.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal(options.statusCode, 200, options.body);
    const assertion = key.authenticate(options.json(), ORIGIN);
    const stolen = await p2.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: assertion } });
    assert.equal(stolen.statusCode, 401, stolen.body);
    assert.equal((await p2.request("GET", "/auth/session")).json().aal, 1, "the other session stays at the gate");
    const own = await p1.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: assertion } });
    assert.equal(own.statusCode, 200, own.body);
    assert.equal(own.json().aal, 2);
  });

  it("attack: registration options asked for in one session do not enrol a key from another", async () => {
    const user = await fx.user("passkey-register-two-sessions@example.org");
    const b1 = fx.browser();
    const b2 = fx.browser();
    await b1.login(user.email, user.password);
    await b2.login(user.email, user.password);
    const options = await b1.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    const response = new SoftAuthenticator().register(options.json(), ORIGIN);
    const elsewhere = await b2.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response, name: "key" } });
    assert.equal(elsewhere.statusCode, 400, elsewhere.body);
    assert.equal((await b1.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response, name: "key" } })).statusCode, 200);
  });

  it("attack: a flood of options calls from one pending session leaves only a few live challenges", async () => {
    const { user, key } = await withPasskey("passkey-flood@example.org");
    const p = fx.browser();
    await p.login(user.email, user.password);
    let last: unknown;
    for (let i = 0; i < 40; i++) {
      const options = await p.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
      assert.equal(options.statusCode, 200, options.body);
      last = options.json();
    }
    const rows = await fx.app.db.db.selectFrom("webauthn_challenges").select((eb) => eb.fn.countAll<number>().as("n")).where("user_id", "=", user.id).executeTakeFirstOrThrow();
    assert.ok(Number(rows.n) <= MAX_LIVE_WEBAUTHN_CHALLENGES, `${rows.n} live challenges`);
    const ok = await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: key.authenticate(last as never, ORIGIN) } });
    assert.equal(ok.statusCode, 200, ok.body);
  });
});

describe("administrators must enrol MFA", () => {
  it("attack: an admin without MFA reaches only enrolment until a factor is confirmed", async () => {
    const admin = await fx.user("admin@example.org", { roles: ["admin"] });
    const b = fx.browser();
    const login = await b.login(admin.email, admin.password);
    assert.equal(login.json().mfaEnrolmentRequired, true);
    const blocked = await b.request("GET", "/auth/sessions");
    assert.equal(blocked.statusCode, 403);
    assert.equal(blocked.json().error.code, "BULWARK_ERR_MFA_ENROLMENT_REQUIRED");
    assert.equal((await b.request("GET", "/auth/session")).json().mfaEnrolmentRequired, true);
    const begin = await b.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(begin.statusCode, 200);
    const confirm = await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(begin.json().secret, fx.clock.now()) } });
    assert.equal(confirm.statusCode, 200, confirm.body);
    assert.equal((await b.request("GET", "/auth/sessions")).statusCode, 200);
    fx.clock.advance(30_000);
  });

  it("attack: someone with only the password cannot plant recovery codes at the enrolment gate that later pass as a second factor", async () => {
    const admin = await fx.user("admin-planted@example.org", { roles: ["admin"] });
    const attacker = fx.browser();
    assert.equal((await attacker.login(admin.email, admin.password)).json().mfaEnrolmentRequired, true);
    const planted = await attacker.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
    assert.equal(planted.statusCode, 409, planted.body);
    assert.equal(planted.json().error.code, "BULWARK_ERR_MFA_NOT_ENROLLED");
    assert.match(planted.json().error.message, /recovery codes stand in for an authenticator app or a security key: enrol one first/);
    assert.equal(await fx.app.accounts.mfa.recovery.remaining(admin.id), 0);

    // Codes an older build let someone make without a factor are discarded when the first factor is enrolled.
    const legacy = await fx.app.accounts.mfa.recovery.generate(admin.id);
    fx.clock.advance(1000);
    const owner = fx.browser();
    await owner.login(admin.email, admin.password);
    const begin = await owner.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal((await owner.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(begin.json().secret, fx.clock.now()) } })).statusCode, 200);
    assert.equal(await fx.app.accounts.mfa.recovery.remaining(admin.id), 0, "the codes from before any factor are gone");
    const removed = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.mfa.removed").where("subject", "=", admin.id).execute();
    assert.deepEqual(removed.map((r) => JSON.parse(r.data) as Record<string, unknown>).map((d) => [d["factor"], d["unused"], d["reason"]]), [["recovery-codes", 10, "made-before-any-factor"]]);
    fx.clock.advance(30_000);
    const again = fx.browser();
    await again.login(admin.email, admin.password);
    const v = await again.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: legacy[0] } });
    assert.equal(v.statusCode, 401, "a planted code is no second factor");
    // With a factor enrolled, the owner makes codes as before.
    const fresh = await owner.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
    assert.equal(fresh.statusCode, 200, fresh.body);
    assert.equal(fresh.json().codes.length, 10);
  });
});

describe("refusals of the hourly budgets are recorded, sampled", () => {
  /** The `auth.mfa.budget-refused` events about `userId`, oldest first, with their data parsed. */
  async function budgetRefusals(userId: string): Promise<Array<Record<string, unknown>>> {
    const rows = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.mfa.budget-refused").where("subject", "=", userId).orderBy("seq").execute();
    return rows.map((r) => JSON.parse(r.data) as Record<string, unknown>);
  }

  it("attack: a session looping app replacements and recovery-code sets past their hourly budgets is recorded (auth.mfa.budget-refused: the budget, the code, the address and the session), once a minute per account and budget, the next one kept counting those left out, the rest written by the maintenance pass (ASVS 16.3.3, 16.3.1, 2.4.1)", async () => {
    const owner = await enrolTOTP("budget-refused@example.org");
    const sessionId = (await owner.b.request("GET", "/auth/session")).json().sessionId as string;
    for (let i = 0; i < 5; i++) assert.equal((await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true })).statusCode, 200, `replacement ${i + 1}`);
    for (let i = 0; i < 5; i++) assert.equal((await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).statusCode, 200, `set ${i + 1}`);
    assert.deepEqual(await budgetRefusals(owner.id), [], "nothing refused yet");
    for (let i = 0; i < 4; i++) {
      const replace = await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
      assert.equal(replace.json().error.code, "BULWARK_ERR_MFA_REPLACE_RATE");
      const codes = await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
      assert.equal(codes.json().error.code, "BULWARK_ERR_RECOVERY_CODES_RATE");
    }
    const first = await budgetRefusals(owner.id);
    assert.deepEqual(first.map((e) => [e["budget"], e["code"], e["limit"]]), [["app-replacement", "BULWARK_ERR_MFA_REPLACE_RATE", 5], ["recovery-codes", "BULWARK_ERR_RECOVERY_CODES_RATE", 5]],
      "one row per budget for four refusals of each in a minute");
    for (const e of first) {
      assert.equal(e["sessionId"], sessionId, "it names the session that asked");
      assert.equal(typeof e["ip"], "string", "and its address");
    }
    // A minute on: the next refusal is kept with the count of those left out.
    fx.clock.advance(60_000);
    assert.equal((await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).statusCode, 429);
    const next = (await budgetRefusals(owner.id)).slice(2);
    assert.deepEqual(next.map((e) => [e["budget"], e["unrecordedBefore"]]), [["recovery-codes", 3]]);
    // The replacements' three left out, whose sender stopped, are written once their minute is over.
    const maintenance = startMaintenance(fx.app, { intervalMs: 3_600_000, firstPassDelayMs: 3_600_000 });
    try {
      await maintenance.runOnce();
    } finally {
      await maintenance.stop();
    }
    const unrecorded = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.refusals.unrecorded").where("subject", "=", `mfa-budget:app-replacement:${owner.id}`).execute();
    assert.deepEqual(unrecorded.map((r) => JSON.parse(r.data).unrecorded), [3]);
  });
});
