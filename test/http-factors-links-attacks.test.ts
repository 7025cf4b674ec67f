// Attacks on the second factors (TOTP, recovery codes, passkeys) and the mailed links (password reset,
// email change, registration) over HTTP: each test is an attack that must fail. Beyond the per-route tests
// (http-auth-mfa, -password, -email, -reauth, -links-races), these combine flows: a factor spent in one flow
// tried in another, races across flows, guesses spread over sessions and routes, links opened in another
// user's browser, a poisoned Host header, header injection through addresses. ASVS 5.0 ids in the names.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { authFixture, ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, EMAIL_LINK, RESET_LINK, STEP } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";


const fx = sharedFixture(() => authFixture({ BULWARK_REGISTRATION: "open" }));

const { signedIn, withTOTP, pending, tokenIn, resetToken } = authFlows(() => fx);

/** A 6-digit code that is none of the codes valid now (±1 step) for `secret`. */
function wrongCode(secret: string, salt = 0): string {
  const valid = new Set([-1, 0, 1].map((o) => totpCode(secret, fx.clock.now() + o * STEP)));
  for (let i = salt; ; i++) {
    const c = String((i * 137_911) % 1_000_000).padStart(6, "0");
    if (!valid.has(c)) return c;
  }
}



function completeReset(body: Record<string, unknown>, b: Browser = fx.browser(), csrf?: true): Promise<LightMyRequestResponse> {
  return b.request("POST", "/auth/password/reset/complete", { body, ...(csrf ? { csrf } : {}) });
}

const codes = (rs: LightMyRequestResponse[]): number[] => rs.map((r) => r.statusCode).sort();

describe("TOTP across flows", () => {
  it("attack: codes two steps away (t−2, t+2) do not step up, and a code spent at the step-up does not re-authenticate (ASVS 6.5.1, 6.5.5)", async () => {
    const u = await withTOTP("rt-window@example.org");
    const p = await pending(u);
    for (const offset of [-2, 2, -3, 3]) {
      const code = totpCode(u.secret, fx.clock.now() + offset * STEP);
      if (code === totpCode(u.secret, fx.clock.now())) continue; // a one-in-a-million collision proves nothing
      const r = await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
      assert.equal(r.statusCode, 401, `step ${offset}: ${r.body}`);
    }
    const code = totpCode(u.secret, fx.clock.now());
    assert.equal((await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } })).statusCode, 200);
    // The attacker watched the code typed (and knows the password) and holds another of the owner's cookies:
    // re-authenticating with the same code, within its 30 seconds, must not renew that session.
    const stolen = u.b;
    const before = stolen.cookie;
    const re = await stolen.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: u.password, totp: code } });
    assert.equal(re.statusCode, 401, re.body);
    assert.equal(re.json().error.code, "BULWARK_ERR_REAUTH_FAILED");
    assert.equal(stolen.cookie, before, "no new session");
    fx.clock.advance(STEP);
  });

  it("attack: one TOTP code sent on two pending sessions at once (Promise.all) steps up exactly one of them (ASVS 6.5.1)", async () => {
    const u = await withTOTP("rt-race-totp@example.org");
    const [p1, p2] = [await pending(u), await pending(u)];
    const code = totpCode(u.secret, fx.clock.now());
    const rs = await Promise.all([p1, p2].map((p) => p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } })));
    assert.deepEqual(codes(rs), [200, 401], rs.map((r) => r.body).join(" | "));
    const aals = await Promise.all([p1, p2].map(async (p) => (await p.request("GET", "/auth/session")).json().aal as number));
    assert.deepEqual(aals.sort(), [1, 2]);
    fx.clock.advance(STEP);
  });

  it("attack: a secret from a pending (never confirmed) enrolment passes no step-up, reset or re-authentication of a passkey user", async () => {
    const u = await signedIn("rt-pending-totp@example.org");
    const key = new SoftAuthenticator();
    const options = await u.b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    assert.equal((await u.b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN) } })).statusCode, 200);
    // The QR code of an enrolment begun and abandoned (a screenshot, a shoulder-surfer) is in the attacker's hands.
    const begun = await u.b.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(begun.statusCode, 200, begun.body);
    const secret = begun.json().secret as string;
    const p = await pending(u);
    assert.equal((await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } })).statusCode, 401);
    assert.equal((await p.request("GET", "/auth/session")).json().aal, 1);
    const token = await resetToken(u.email);
    const reset = await completeReset({ token, newPassword: "granite orchard ninety lamps", totp: totpCode(secret, fx.clock.now()) });
    assert.equal(reset.statusCode, 401, reset.body);
    assert.equal(reset.json().error.code, "BULWARK_ERR_MFA_INVALID");
    const re = await u.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: u.password, totp: totpCode(secret, fx.clock.now()) } });
    assert.equal(re.statusCode, 401, re.body);
    assert.equal((await fx.browser().login(u.email, "granite orchard ninety lamps")).statusCode, 401, "the password did not change");
  });

  it("attack: a second authenticator app is not enrolled over a confirmed one, and a stale session cannot even begin (ASVS 6.3.7, 7.5.1)", async () => {
    const u = await withTOTP("rt-second-totp@example.org");
    const again = await u.b.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(again.statusCode, 409, again.body);
    assert.equal(again.json().error.code, "BULWARK_ERR_MFA_ALREADY_ENROLLED");
    assert.equal(again.json().secret, undefined);
    fx.clock.advance(11 * 60_000);
    const stale = await u.b.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(stale.statusCode, 403, stale.body);
    assert.equal(stale.json().error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    // The original app still signs in.
    const p = await pending(u);
    assert.equal((await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(u.secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(STEP);
  });
});

describe("recovery codes across flows", () => {
  it("attack: codes from before a regeneration are dead, and one live code raced over two step-ups and a reset completion is spent once (ASVS 6.5.1)", async () => {
    const u = await withTOTP("rt-recovery@example.org");
    const old = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const fresh = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    assert.equal(fresh.length, 10);
    const p0 = await pending(u);
    for (const c of [old[0], (old[1] as string).toUpperCase().replaceAll("-", " ")]) {
      assert.equal((await p0.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: c } })).statusCode, 401, "a code of the replaced set");
    }
    const token = await resetToken(u.email);
    const [p1, p2] = [await pending(u), await pending(u)];
    const code = fresh[0] as string;
    const rs = await Promise.all([
      p1.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: code } }),
      p2.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: code } }),
      completeReset({ token, newPassword: "saffron ladder tides at noon", recoveryCode: code }),
    ]);
    assert.deepEqual(codes(rs), [200, 401, 401], rs.map((r) => r.body).join(" | "));
    assert.equal((await fx.app.accounts.mfa.factors(u.id)).recoveryCodes, 9);
  });

  it("attack: a cookie thief guessing the password at /auth/reauthenticate with a factor burns no recovery code and no TOTP step (ASVS 6.5.1, 7.5.1)", async () => {
    const u = await withTOTP("rt-reauth-burn@example.org");
    const list = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const code = totpCode(u.secret, fx.clock.now());
    for (const factor of [{ recoveryCode: list[0] }, { totp: code }]) {
      const r = await u.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: "not the password at all", ...factor } });
      assert.equal(r.statusCode, 401, r.body);
      assert.equal(r.json().error.code, "BULWARK_ERR_REAUTH_FAILED");
    }
    assert.equal((await fx.app.accounts.mfa.factors(u.id)).recoveryCodes, 10, "no code was spent");
    // The owner's own step-up with the same code and the same recovery code still works.
    assert.equal((await (await pending(u)).request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } })).statusCode, 200);
    assert.equal((await (await pending(u)).request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: list[0] } })).statusCode, 200);
    fx.clock.advance(STEP);
  });

  // A factor is proven first and spent in the transaction of what it earns (the rotation, the redeemed link), so the
  // request that loses that race rolls its spend back: a double submit never burns a single-use code for nothing.
  it("attack: two step-ups raced on one pending session — the request that gains nothing spends no recovery code (ASVS 6.5.1)", async () => {
    const u = await withTOTP("rt-race-burn@example.org");
    const list = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const p = await pending(u);
    // Two tabs (or a double click) submit two of the owner's codes.
    const rs = await Promise.all([list[0], list[1]].map((recoveryCode) => p.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode } })));
    assert.equal(rs.filter((r) => r.statusCode === 200).length, 1, rs.map((r) => r.body).join(" | "));
    const loser = rs.find((r) => r.statusCode !== 200) as LightMyRequestResponse;
    assert.equal(loser.statusCode, 401, loser.body);
    assert.equal(loser.json().error.code, "BULWARK_ERR_SESSION_REPLACED", "the page is told its session moved on, not that the code was wrong");
    assert.equal((await fx.app.accounts.mfa.factors(u.id)).recoveryCodes, 9, `a second recovery code was spent by a request answered ${loser.statusCode} ${loser.body}`);
    // The loser's code is still good for a later sign-in.
    const loserCode = rs[0] === loser ? list[0] : list[1];
    const later = await pending(u);
    assert.equal((await later.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: loserCode } })).statusCode, 200);
  });

  it("attack: two re-authentications raced on one session — the one that loses the rotation spends no recovery code (ASVS 6.5.1, 7.5.1)", async () => {
    const u = await withTOTP("rt-race-reauth@example.org");
    const list = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const csrf = await u.b.csrf();
    const rs = await Promise.all([list[0], list[1]].map((recoveryCode) => u.b.request("POST", "/auth/reauthenticate", { csrf, body: { password: u.password, recoveryCode } })));
    assert.equal(rs.filter((r) => r.statusCode === 200).length, 1, rs.map((r) => r.body).join(" | "));
    const loser = rs.find((r) => r.statusCode !== 200) as LightMyRequestResponse;
    assert.equal(loser.json().error.code, "BULWARK_ERR_SESSION_REPLACED", loser.body);
    assert.equal((await fx.app.accounts.mfa.factors(u.id)).recoveryCodes, 9, "only the winner's code is used");
  });

  it("attack: one reset link completed twice at once with two recovery codes — the completion that loses the link spends no code (ASVS 6.4.1, 6.5.1)", async () => {
    const u = await withTOTP("rt-race-reset@example.org");
    const list = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const token = await resetToken(u.email);
    const rs = await Promise.all([list[0], list[1]].map((recoveryCode, i) =>
      completeReset({ token, newPassword: i === 0 ? "obsidian willow parade" : "copper lantern harbour", recoveryCode })));
    assert.equal(rs.filter((r) => r.statusCode === 200).length, 1, rs.map((r) => r.body).join(" | "));
    assert.ok(rs.every((r) => r.statusCode < 500), rs.map((r) => r.body).join(" | "));
    assert.equal((await fx.app.accounts.mfa.factors(u.id)).recoveryCodes, 9, "only the completion that reset spends its code");
  });
});

describe("gates and throttles of the second factor", () => {
  it("attack: a password-only (aal 1) session of an MFA user removes no factor, replaces no codes, changes no password or address, and cannot re-authenticate (ASVS 6.3.3)", async () => {
    const u = await withTOTP("rt-aal1@example.org");
    const p = await pending(u);
    const attempts: Array<[string, "POST" | "DELETE", string, unknown]> = [
      ["remove TOTP", "DELETE", "/auth/mfa/totp", undefined],
      ["remove a passkey", "DELETE", "/auth/mfa/webauthn/anything", undefined],
      ["replace recovery codes", "POST", "/auth/mfa/recovery-codes", undefined],
      ["begin a passkey", "POST", "/auth/mfa/webauthn/register/options", undefined],
      ["change password", "POST", "/auth/password/change", { currentPassword: u.password, newPassword: "quartz meadow violins at dusk" }],
      ["change email", "POST", "/auth/email/change", { newEmail: "rt-aal1-thief@example.org" }],
      ["re-authenticate", "POST", "/auth/reauthenticate", { password: u.password, totp: wrongCode(u.secret) }],
      ["end other sessions", "DELETE", "/auth/sessions", undefined],
    ];
    for (const [what, method, url, body] of attempts) {
      const r = await p.request(method, url, { csrf: true, ...(body === undefined ? {} : { body }) });
      assert.equal(r.statusCode, 403, `${what}: ${r.body}`);
      assert.equal(r.json().error.code, "BULWARK_ERR_MFA_REQUIRED", what);
    }
    assert.equal((await fx.app.accounts.mfa.factors(u.id)).totp, true);
    assert.equal((await u.b.request("GET", "/auth/session")).json().authenticated, true, "the owner's session lives");
    assert.equal((await fx.browser().login(u.email, "quartz meadow violins at dusk")).statusCode, 401);
  });

  it("attack: second-factor guesses spread over sessions, client addresses and flows (step-up, re-authentication) share one per-account limit; the sixth waits even when right (ASVS 6.3.1). Guesses sent with reset links count apart (their holder may have only the mailbox, test/chained-takeover-red-team.test.ts; test/http-auth-password.test.ts pins their own limit)", async () => {
    const u = await withTOTP("rt-spread@example.org");
    const guesses: Array<() => Promise<LightMyRequestResponse>> = [];
    for (let i = 0; i < 4; i++) {
      guesses.push(async () => (await pending(u)).request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrongCode(u.secret, i) }, headers: { "x-forwarded-for": `203.0.113.${i + 1}` } }));
    }
    guesses.push(() => u.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: u.password, totp: wrongCode(u.secret, 4) } }));
    for (const guess of guesses) assert.equal((await guess()).statusCode, 401);
    const right = totpCode(u.secret, fx.clock.now());
    const p = await pending(u);
    const sixth = await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: right } });
    assert.equal(sixth.statusCode, 429, sixth.body);
    fx.clock.advance(5 * 60_000 + STEP);
    const later = await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(u.secret, fx.clock.now()) } });
    assert.equal(later.statusCode, 200, later.body);
    fx.clock.advance(STEP);
  });
});

describe("reset links", () => {
  it("attack: one reset link completed twice at once (different passwords) resets once; the loser's password never works (ASVS 6.4.1)", async () => {
    const u = await fx.user("rt-reset-twice@example.org");
    const token = await resetToken(u.email);
    const pw = ["harbour candle seventy kites", "marble thistle ocean drums"];
    const rs = await Promise.all(pw.map((newPassword) => completeReset({ token, newPassword })));
    assert.deepEqual(codes(rs), [200, 409], rs.map((r) => r.body).join(" | "));
    const winner = rs[0]?.statusCode === 200 ? 0 : 1;
    assert.equal((await fx.browser().login(u.email, pw[winner] as string)).statusCode, 200);
    assert.equal((await fx.browser().login(u.email, pw[1 - winner] as string)).statusCode, 401);
  });

  it("attack: a reset link mailed before the owner changed the password at /auth/password/change resets nothing (ASVS 6.4.1)", async () => {
    const u = await signedIn("rt-reset-after-change@example.org");
    const token = await resetToken(u.email);
    const changed = await u.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: u.password, newPassword: "velvet compass ninety owls" } });
    assert.equal(changed.statusCode, 200, changed.body);
    const r = await completeReset({ token, newPassword: "attacker chosen long phrase" });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal((await fx.browser().login(u.email, "velvet compass ninety owls")).statusCode, 200);
  });

  it("attack: A's reset link completed in B's signed-in browser signs nobody in as A and leaves B signed in as B (ASVS 7.4.3)", async () => {
    const a = await signedIn("rt-reset-a@example.org");
    const b = await signedIn("rt-reset-b@example.org");
    const token = await resetToken(a.email);
    const before = b.b.cookie;
    const r = await completeReset({ token, newPassword: "cobalt rainfall eleven foxes" }, b.b, true);
    assert.equal(r.statusCode, 200, r.body);
    // No session is handed out by a reset (only the known-device cookie of the browser that completed it).
    const set = [r.headers["set-cookie"] ?? []].flat();
    assert.ok(!set.some((c) => c.startsWith("__Host-bulwark-session=")), `no session is handed out by a reset: ${set.join(" | ")}`);
    assert.equal(b.b.cookie, before);
    const who = (await b.b.request("GET", "/auth/session")).json();
    assert.equal(who.userId, b.id);
    assert.equal((await a.b.request("GET", "/auth/session")).json().authenticated, false, "A's sessions ended");
  });
});

describe("email change links", () => {
  it("attack: a reset link mailed to the old address before an email change resets nothing after it; the freed address signs up a separate account", async () => {
    const a = await signedIn("rt-oldbox@example.org");
    const stale = await resetToken(a.email);
    assert.equal((await a.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "rt-newbox@example.org" } })).statusCode, 202);
    assert.equal((await fx.browser().request("POST", "/auth/email/confirm", { body: { token: await tokenIn("rt-newbox@example.org", EMAIL_LINK) } })).statusCode, 200);
    // Whoever still reads the old mailbox holds that link.
    const r = await completeReset({ token: stale, newPassword: "ember glacier ninety flutes" });
    assert.equal(r.statusCode, 400, r.body);
    assert.equal((await fx.browser().request("POST", "/auth/register", { body: { email: "rt-oldbox@example.org" } })).statusCode, 202);
    const fresh = await tokenIn("rt-oldbox@example.org", RESET_LINK);
    assert.equal((await completeReset({ token: fresh, newPassword: "ember glacier ninety flutes" })).statusCode, 200);
    const login = await fx.browser().login("rt-oldbox@example.org", "ember glacier ninety flutes");
    assert.equal(login.statusCode, 200);
    assert.notEqual(login.json().userId, a.id, "the old address now names another account");
    assert.equal((await fx.browser().login("rt-newbox@example.org", a.password)).json().userId, a.id, "the moved account keeps its password");
  });

  it("attack: A's confirmation link opened in B's signed-in browser moves only A, ends only A's sessions, and B stays B", async () => {
    const a = await signedIn("rt-email-a@example.org");
    const b = await signedIn("rt-email-b@example.org");
    assert.equal((await a.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "rt-email-a2@example.org" } })).statusCode, 202);
    const token = await tokenIn("rt-email-a2@example.org", EMAIL_LINK);
    const r = await b.b.request("POST", "/auth/email/confirm", { csrf: true, body: { token } });
    assert.equal(r.statusCode, 200, r.body);
    assert.equal((await fx.app.accounts.users.getById(a.id))?.email, "rt-email-a2@example.org");
    assert.equal((await fx.app.accounts.users.getById(b.id))?.email, b.email);
    assert.equal((await b.b.request("GET", "/auth/session")).json().userId, b.id);
    assert.equal((await a.b.request("GET", "/auth/session")).json().authenticated, false);
  });

  it("attack: moving an account to another account's address in other letter case mails no link and moves nothing; the answer is the free address's (ASVS 6.3.8)", async () => {
    const victim = await fx.user("rt-victim@example.org");
    const thief = await signedIn("rt-thief@example.org");
    const free = await thief.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "rt-free@example.org" } });
    const taken = await thief.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "  RT-Victim@Example.ORG " } });
    assert.equal(taken.statusCode, free.statusCode);
    assert.equal(taken.body, free.body);
    await fx.deliver();
    assert.ok(fx.smtp.accepted.every((m) => !(m.envelopeTo.join(",").toLowerCase().includes("rt-victim@example.org") && EMAIL_LINK.test(m.body))), "no confirmation link to the taken address");
    // The earlier free-address link was superseded by the newer request before the outbox delivered its mail: that mail
    // is not sent (its link closed, docs/decisions/0004-email-outbox.md), so no link reaches the free address at all.
    assert.ok(fx.mailTo("rt-free@example.org").every((m) => !EMAIL_LINK.test(m.body)), "no superseded link mailed to the free address");
    assert.equal((await fx.app.accounts.users.getById(thief.id))?.email, thief.email);
    assert.equal((await fx.app.accounts.users.getById(victim.id))?.email, victim.email);
  });
});

describe("links in mail and the addresses they go to", () => {
  it("attack: a poisoned Host or X-Forwarded-Host does not reach the reset, sign-up or email-change links (ASVS 6.4.1)", async () => {
    const u = await signedIn("rt-host@example.org");
    const evil = { host: "evil.test", "x-forwarded-host": "evil.test", "x-forwarded-proto": "http", forwarded: "host=evil.test;proto=http" };
    const reset = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: u.email }, bare: true, headers: evil });
    assert.equal(reset.statusCode, 202, reset.body);
    const signUp = await fx.browser().request("POST", "/auth/register", { body: { email: "rt-host-new@example.org" }, bare: true, headers: evil });
    assert.equal(signUp.statusCode, 202, signUp.body);
    const change = await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "rt-host-moved@example.org" }, headers: { "x-forwarded-host": "evil.test", forwarded: "host=evil.test" } });
    assert.equal(change.statusCode, 202, change.body);
    await fx.deliver();
    const mails = ["rt-host@example.org", "rt-host-new@example.org", "rt-host-moved@example.org"].map((a) => fx.mailTo(a));
    for (const list of mails) assert.ok(list.some((m) => /https:\/\/bulwark\.test\/(reset-password|confirm-email)#token=/.test(m.body)), "each got its link");
    for (const m of mails.flat()) assert.doesNotMatch(m.body, /evil\.test|http:\/\//, m.subject);
  });

  it("attack: sign-up with another letter case or padding of a taken address makes no second account; its link goes to the owner's address only (ASVS 6.3.8)", async () => {
    const owner = await fx.user("rt-case@example.org");
    const count = await fx.app.accounts.users.count();
    for (const variant of ["RT-CASE@EXAMPLE.ORG", " rt-case@Example.org ", "Rt-Case@example.ORG"]) {
      const r = await fx.browser().request("POST", "/auth/register", { body: { email: variant } });
      assert.equal(r.statusCode, 202, r.body);
    }
    assert.equal(await fx.app.accounts.users.count(), count, "no second account");
    await fx.deliver();
    const toVariants = fx.smtp.accepted.filter((m) => m.envelopeTo.some((t) => t.toLowerCase() === "rt-case@example.org" && t !== owner.email));
    assert.deepEqual(toVariants, [], "mail goes to the address the account has, not the one typed");
    // A look-alike with a Kelvin sign (U+212A lower-cases to k) is refused before any lookup: no account, no mail.
    const kelvin = await fx.browser().request("POST", "/auth/register", { body: { email: "rt-\u212Aelvin@example.org" } });
    assert.equal(kelvin.statusCode, 400, kelvin.body);
  });

  it("attack: CR/LF in an address injects no mail header or extra recipient (reset request, sign-up, email change) (ASVS 1.3.11)", async () => {
    const u = await signedIn("rt-crlf@example.org");
    const injected = (base: string): string => `${base}\r\nBcc: rt-crlf-spy@evil.test\r\nSubject: pwned`;
    // Known or not, the injected address gets one answer (whichever it is), and no mail.
    const reset = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: injected(u.email) } });
    const unknown = await fx.browser().request("POST", "/auth/password/reset/request", { body: { email: injected("rt-crlf-nobody@example.org") } });
    assert.equal(reset.statusCode, unknown.statusCode);
    assert.equal(reset.json().error?.code, unknown.json().error?.code);
    const signUp = await fx.browser().request("POST", "/auth/register", { body: { email: injected("rt-crlf-new@example.org") } });
    assert.equal(signUp.statusCode, 400, signUp.body);
    const change = await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: injected("rt-crlf-2@example.org") } });
    assert.equal(change.statusCode, 400, change.body);
    const lsep = await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "rt-crlf-3@example.org\u2028Bcc: rt-crlf-spy@evil.test" } });
    assert.equal(lsep.statusCode, 400, lsep.body);
    await fx.deliver();
    for (const m of fx.smtp.accepted) {
      assert.ok(!m.envelopeTo.some((t) => /evil\.test/.test(t)), `mail to ${m.envelopeTo.join(",")}`);
      assert.notEqual(m.headers.get("subject"), "pwned");
    }
    assert.equal(await fx.app.accounts.users.findByIdentifier("rt-crlf-new@example.org"), null);
  });
});
