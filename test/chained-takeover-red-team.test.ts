// Red team round: chained account takeover. The attacker starts with exactly ONE foothold on a victim whose account has
// a password, an authenticator app and recovery codes (in one test also a passkey), and tries to chain Bulwark's own
// features — password reset, email change, factor enrolment and removal, re-authentication, session and token routes —
// into a full takeover: an aal-2 session the owner cannot end, the owner's password, address or factors changed by the
// attacker, or the owner locked out of their own account. Footholds, one per group:
//   (a) the password only (a credential-stuffing hit), from the attacker's own computer;
//   (b) read access to the victim's mailbox only (every mail Bulwark sends, reset links and notices included);
//   (c) a stolen half-signed-in (aal 1) cookie (the stolen aal-2 copy the owner then ends is pinned elsewhere);
//   (e) an API token of the victim with the scopes of a help desk (accounts.read, accounts.write; not admin).
// (d) one stolen recovery code has no test of its own: no route takes a code without the password, a session or a
// reset link, so every chain from it alone stops at its first step.
// Chains refused at a step already pinned elsewhere are not repeated here (a reset link without the factor:
// http-auth-password; an aal-1 session removing factors, changing password or address: http-factors-links-attacks;
// a stolen aal-2 copy surviving "sign out everywhere" or a password change: stolen-session-red-team; a token on
// cookie-only /auth routes: asvs-auth-pathways, api-access-attacks; a stale cookie refreshing itself: http-auth-reauth).
// Each test is an attack that must fail. Found and fixed (the tests say what was, "was: …"): replacing the authenticator
// app meant removing it first, and the window with no factor let a password-only or mailbox-only attacker enrol its own
// app and move the address (now POST /auth/mfa/totp/replace); reset-link guesses locked the owner's sign-in factors
// (now a reset counter of their own); a help-desk token ended its own owner's sessions through the API (now refused).
// The manual clock is moved a second after anything that ends every session: a stamp refuses sessions created in its
// own millisecond, which a real clock would have left.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { HOST, ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, EMAIL_LINK, RESET_LINK, STEP } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

const { withTOTP, pending, resetToken, tokenFor } = authFlows(() => fx);
const MINUTE = 60_000;
const NEW_PASSWORD = "copper meadow whistles softly";

/** What GET /auth/session says of a browser's session. */
async function state(b: Browser): Promise<{ authenticated: boolean; aal?: number; mfaRequired?: boolean; fresh?: boolean }> {
  return (await b.request("GET", "/auth/session")).json();
}

/** The owner, fully signed in (aal 2) with the authenticator app, holding ten fresh recovery codes. */
async function ownerWithCodes(email: string): Promise<Awaited<ReturnType<typeof withTOTP>> & { codes: string[] }> {
  const owner = await withTOTP(email);
  const made = await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
  assert.equal(made.statusCode, 200, made.body);
  return { ...owner, codes: made.json().codes as string[] };
}

/** A request with a fresh CSRF token; a browser whose session has ended gets the 401 it would get, not a thrown error. */
async function send(b: Browser, method: "POST" | "DELETE", url: string, body?: unknown): Promise<{ statusCode: number; body: string }> {
  const csrf = await b.request("GET", "/auth/csrf");
  if (csrf.statusCode !== 200) return { statusCode: csrf.statusCode, body: csrf.body };
  return b.request(method, url, { csrf: csrf.json().token as string, ...(body === undefined ? {} : { body }) });
}

/** A six-digit code that is not the app's current one (nor its neighbours'). */
function wrongCode(secret: string, at: number): string {
  const right = new Set([-STEP, 0, STEP].map((d) => totpCode(secret, at + d)));
  for (let i = 0; ; i++) {
    const guess = String((Number(totpCode(secret, at)) + 500_000 + i) % 1_000_000).padStart(6, "0");
    if (!right.has(guess)) return guess;
  }
}

/**
 * Whether `secret` (someone's authenticator app) steps a fresh password login of `identifier` up to aal 2; false when the
 * login itself fails (the address moved, the password changed) or is not held at the second-factor gate.
 */
async function appStepsUp(identifier: string, password: string, secret: string): Promise<boolean> {
  const p = fx.browser({ newDevice: true });
  const login = await p.login(identifier, password);
  if (login.statusCode !== 200 || login.json().mfaRequired !== true) return false;
  const r = await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } });
  return r.statusCode === 200;
}

/** The account's address now (the attacker may have moved it). */
async function addressOf(userId: string): Promise<string> {
  return (await fx.app.accounts.users.getById(userId))?.email ?? "";
}

describe("(a) the password only: the owner replacing the authenticator app", () => {
  it("attack: a password-only attacker gains nothing while the owner replaces the authenticator app — the new app waits beside the old one (POST /auth/mfa/totp/replace), so the attacker's password login stays at the second-factor gate, enrols no app of its own and moves no address; the owner's new app is the one enrolled and the old one's codes stop (ASVS 6.3.3, 7.5.1, 6.4.4) (was: the only replacement was remove, begin, confirm; in between the account had no factor, and the attacker's fresh full login enrolled its own app and moved the address)", async () => {
    const owner = await ownerWithCodes("swap-owner@example.org");
    fx.clock.advance(11 * MINUTE);
    // The owner's phone is lost: "confirm it's you" (password + a printed recovery code), then begin the new app beside
    // the old one (POST /auth/mfa/totp/replace; removing the old app first was the only way before).
    const reauth = await owner.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, recoveryCode: owner.codes[0] } });
    assert.equal(reauth.statusCode, 200, reauth.body);
    const begun = await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    assert.equal(begun.statusCode, 200, begun.body);
    const ownerSecret = begun.json().secret as string;

    // The attacker, polling the login with the stuffed password, sees mfaRequired turn false and acts at once.
    const thief = fx.browser({ newDevice: true });
    const login = await thief.login(owner.email, owner.password);
    const thiefSteps: string[] = [`login ${login.statusCode} mfaRequired ${login.json().mfaRequired}`];
    const thiefBegin = await thief.request("POST", "/auth/mfa/totp", { csrf: true });
    thiefSteps.push(`begin ${thiefBegin.statusCode}`);
    const thiefSecret = thiefBegin.statusCode === 200 ? (thiefBegin.json().secret as string) : null;
    if (thiefSecret) {
      const c = await thief.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(thiefSecret, fx.clock.now()) } });
      thiefSteps.push(`confirm ${c.statusCode}`);
    }
    const move = await thief.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "swap-thief@evil.example" } });
    thiefSteps.push(`email change ${move.statusCode}`);
    await fx.deliver();
    const link = fx.mailTo("swap-thief@evil.example").map((m) => EMAIL_LINK.exec(m.body)?.[1]).find((t) => t !== undefined);
    if (link) thiefSteps.push(`email confirm ${(await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token: link } })).statusCode}`);
    thiefSteps.push(`thief session aal ${(await state(thief)).aal}`);

    // The owner scans the QR code and types the new app's code.
    fx.clock.advance(1000);
    const confirmed = await send(owner.b, "POST", "/auth/mfa/totp/replace/confirm", { code: totpCode(ownerSecret, fx.clock.now()) });
    fx.clock.advance(STEP);
    const address = await addressOf(owner.id);
    assert.deepEqual({
      ownerConfirm: confirmed.statusCode,
      ownerNewAppSignsIn: await appStepsUp(owner.email, owner.password, ownerSecret),
      oldAppSignsIn: await appStepsUp(owner.email, owner.password, owner.secret),
      thiefAppSignsIn: thiefSecret === null ? false : await appStepsUp(address, owner.password, thiefSecret),
      address,
    }, {
      ownerConfirm: 200,
      ownerNewAppSignsIn: true,
      oldAppSignsIn: false,
      thiefAppSignsIn: false,
      address: owner.email,
    }, `the attacker's password-only login during the owner's app replacement did: ${thiefSteps.join(", ")}`);
    assert.equal(login.json().mfaRequired, true, "the old app stood until the new one was confirmed: the password alone was half a sign-in");
  });

  it("attack: with a passkey kept, the same replacement leaves no window — the attacker's password login stays held at the second-factor gate, cannot begin or confirm an app of its own, and the owner's new app is the one enrolled (ASVS 6.3.3)", async () => {
    const owner = await ownerWithCodes("swap-keyed@example.org");
    const key = new SoftAuthenticator();
    const options = await owner.b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    assert.equal((await owner.b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: "key" } })).statusCode, 200);
    assert.equal((await owner.b.request("DELETE", "/auth/mfa/totp", { csrf: true })).statusCode, 200);
    const ownerSecret = (await owner.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;

    const thief = fx.browser({ newDevice: true });
    const login = await thief.login(owner.email, owner.password);
    assert.equal(login.json().mfaRequired, true, "a passkey still stands: the password alone is half a sign-in");
    const begin = await thief.request("POST", "/auth/mfa/totp", { csrf: true });
    const confirmOwners = await thief.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(ownerSecret, fx.clock.now()) } });
    const confirmed = await owner.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(ownerSecret, fx.clock.now()) } });
    fx.clock.advance(STEP);
    assert.deepEqual({ begin: begin.statusCode, confirmOwners: confirmOwners.statusCode, ownerConfirm: confirmed.statusCode, thief: (await state(thief)).aal },
      { begin: 403, confirmOwners: 403, ownerConfirm: 200, thief: 1 });
    assert.equal(await appStepsUp(owner.email, owner.password, ownerSecret), true);
  });
});

describe("(c) a stolen half-signed-in (aal 1) cookie", () => {
  it("attack: a stolen password-only cookie older than the re-authentication window gains nothing from the owner's no-factor moment while replacing the app — its gate opens, but it begins no app, mints no API token and asks for no address change, all of which need a fresh authentication (ASVS 7.5.1, 7.5.3)", async () => {
    const owner = await ownerWithCodes("stale-pending@example.org");
    const stolen = await pending(owner);
    fx.clock.advance(11 * MINUTE);
    assert.equal((await owner.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, recoveryCode: owner.codes[0] } })).statusCode, 200);
    assert.equal((await owner.b.request("DELETE", "/auth/mfa/totp", { csrf: true })).statusCode, 200);
    const ownerSecret = (await owner.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    const s = await state(stolen);
    assert.equal(s.mfaRequired, false, "with no factor left the stolen cookie's gate is open");
    assert.equal(s.fresh, false);
    const csrf = await stolen.csrf();
    const begin = await stolen.request("POST", "/auth/mfa/totp", { csrf });
    const mint = await stolen.request("POST", "/api/v1/tokens", { csrf, body: { name: "x", scopes: ["audit.read"] } });
    const move = await stolen.request("POST", "/auth/email/change", { csrf, body: { newEmail: "stale-thief@evil.example" } });
    assert.deepEqual([begin, mint, move].map((r) => r.statusCode), [403, 403, 403]);
    assert.deepEqual([begin, move].map((r) => r.json().error.code), ["BULWARK_ERR_REAUTH_REQUIRED", "BULWARK_ERR_REAUTH_REQUIRED"]);
    const confirmed = await owner.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(ownerSecret, fx.clock.now()) } });
    assert.equal(confirmed.statusCode, 200, "the owner's pending app was left alone");
    assert.equal((await state(stolen)).mfaRequired, true, "and the stolen cookie is back at the gate");
  });
});

describe("(b) read access to the victim's mailbox only", () => {
  it("attack: a mailbox-only attacker cannot lock the owner out — wrong codes sent with reset links count on a reset counter of their own (per account), so the owner's right app code and recovery code still pass at sign-in (ASVS 6.3.1, 6.4.3) (was: they counted on the sign-in counters, and past 100 the owner's right factors were refused until an administrator cleared them)", async () => {
    const owner = await ownerWithCodes("stopped-owner@example.org");
    let token = await resetToken(owner.email);
    let linkAt = fx.clock.now();
    const answers: Record<string, number> = {};
    for (let i = 0; i < 105; i++) {
      if (i > 0 && i % 5 === 0) fx.clock.advance(5 * MINUTE + 1);
      // A link lives 30 minutes; the mailbox is asked for a new one now and then (3 an hour are allowed).
      if (fx.clock.now() - linkAt > 20 * MINUTE) {
        token = await resetToken(owner.email);
        linkAt = fx.clock.now();
      }
      const attacker = fx.browser({ newDevice: true });
      const t = await attacker.request("POST", "/auth/password/reset/complete", { body: { token, newPassword: NEW_PASSWORD, totp: wrongCode(owner.secret, fx.clock.now()) } });
      const r = await attacker.request("POST", "/auth/password/reset/complete", { body: { token, newPassword: NEW_PASSWORD, recoveryCode: "aaaa-bbbb-cccc-dddd-eeee-ffff" } });
      const key = `${t.statusCode}/${r.statusCode}`;
      answers[key] = (answers[key] ?? 0) + 1;
    }
    // Every guess was refused; the attacker got nothing but the block.
    assert.equal(answers["200/200"], undefined);
    // The attacker stops. Well after every window has run out, the owner signs in from their own browser.
    fx.clock.advance(30 * MINUTE);
    const viaApp = await (await pending(owner)).request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } });
    const viaCode = await (await pending(owner)).request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: owner.codes[1] } });
    assert.deepEqual({ app: viaApp.statusCode, recoveryCode: viaCode.statusCode }, { app: 200, recoveryCode: 200 },
      `the owner's right factors were refused after the mailbox holder's guesses (${JSON.stringify(answers)}): ${viaApp.body}`);
  });

  it("attack: a mailbox-only attacker gains nothing while the owner replaces the authenticator app — the old app stands until the new one is confirmed, so the reset link still asks for a second factor (ASVS 6.4.3, 6.3.3) (was: in the remove-then-enrol window the link needed none, and the attacker set the password, enrolled its own app and moved the address)", async () => {
    const owner = await ownerWithCodes("swap-mailbox@example.org");
    fx.clock.advance(11 * MINUTE);
    assert.equal((await owner.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: owner.password, recoveryCode: owner.codes[0] } })).statusCode, 200);
    const ownerSecret = (await owner.b.request("POST", "/auth/mfa/totp/replace", { csrf: true })).json().secret as string;
    // The mailbox holder watches for the moment: the attacker asks for a link at once.
    const steps: string[] = [];
    const token = await resetToken(owner.email);
    const reset = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token, newPassword: NEW_PASSWORD } });
    steps.push(`reset ${reset.statusCode}`);
    fx.clock.advance(1000);
    let thiefSecret: string | null = null;
    if (reset.statusCode === 200) {
      const thief = fx.browser({ newDevice: true });
      steps.push(`login ${(await thief.login(owner.email, NEW_PASSWORD)).statusCode}`);
      const begun = await thief.request("POST", "/auth/mfa/totp", { csrf: true });
      steps.push(`begin ${begun.statusCode}`);
      if (begun.statusCode === 200) {
        thiefSecret = begun.json().secret as string;
        steps.push(`confirm ${(await thief.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(thiefSecret, fx.clock.now()) } })).statusCode}`);
      }
    }
    const confirmed = await send(owner.b, "POST", "/auth/mfa/totp/replace/confirm", { code: totpCode(ownerSecret, fx.clock.now()) });
    fx.clock.advance(STEP);
    assert.deepEqual({
      ownerConfirm: confirmed.statusCode,
      thiefAppSignsIn: thiefSecret === null ? false : await appStepsUp(await addressOf(owner.id), NEW_PASSWORD, thiefSecret),
    }, { ownerConfirm: 200, thiefAppSignsIn: false }, `the mailbox holder during the owner's app replacement did: ${steps.join(", ")}`);
  });

  it("attack: the mailbox yields no second factor — across enrolment, two code regenerations, a password reset with a recovery code, failed and new-device sign-ins, no mail carries the app's seed, an otpauth URI or any recovery code, and reset links completed with every code-shaped string the mailbox holds are refused, leaving the password as it was (ASVS 6.4.3, 6.5.2, 14.2.7)", async () => {
    const owner = await ownerWithCodes("mailbox-read@example.org");
    const second = (await owner.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    // The owner's own reset with a printed code (a notice says how many are left), a refused factor, a new computer.
    const own = await resetToken(owner.email);
    assert.equal((await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token: own, newPassword: NEW_PASSWORD, recoveryCode: second[0] } })).statusCode, 200);
    fx.clock.advance(1000);
    const p = await pending({ email: owner.email, password: NEW_PASSWORD });
    await p.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrongCode(owner.secret, fx.clock.now()) } });
    await fx.browser({ newDevice: true }).login(owner.email, NEW_PASSWORD);
    await resetToken(owner.email);
    await fx.deliver();
    const mails = fx.mailTo(owner.email);
    assert.ok(mails.length >= 6, `expected the owner's notices and links, got ${mails.length}`);
    const everything = mails.map((m) => `${m.subject}\n${m.body}`).join("\n").toLowerCase();
    const canonical = (c: string): string => c.replace(/[-\s]/g, "").toLowerCase();
    const squashed = everything.replace(/[-\s]/g, "");
    for (const secret of [owner.secret, ...owner.codes, ...second]) assert.ok(!squashed.includes(canonical(secret)), "a factor secret was mailed");
    assert.ok(!everything.includes("otpauth"), "an otpauth URI was mailed");
    // Whatever the mailbox holds that could pass for a code is tried with the freshest link.
    const candidates = new Set<string>([...everything.matchAll(/\b[a-z2-7]{4}(?:-[a-z2-7]{4}){5}\b/g)].map((m) => m[0]));
    for (const six of everything.matchAll(/\b\d{6}\b/g)) candidates.add(six[0]);
    const link = RESET_LINK.exec(mails.filter((m) => RESET_LINK.test(m.body)).at(-1)?.body ?? "")?.[1];
    assert.ok(link, "a reset link is in the mailbox");
    for (const c of [...candidates].slice(0, 4)) {
      const field = /^\d{6}$/.test(c) ? { totp: c } : { recoveryCode: c };
      const r = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "stolen lantern rivers at noon", ...field } });
      assert.notEqual(r.statusCode, 200, `a string from the mailbox passed as a factor: ${c}`);
    }
    const bare = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: "stolen lantern rivers at noon" } });
    assert.equal(bare.json().error.code, "BULWARK_ERR_MFA_REQUIRED");
    assert.equal((await fx.browser().login(owner.email, NEW_PASSWORD)).statusCode, 200, "the owner's password still stands");
  });
});

describe("(e) an API token of the victim (a help desk's accounts.read + accounts.write, not admin)", () => {
  function api(method: "POST" | "DELETE" | "GET", url: string, bearer: string): Promise<LightMyRequestResponse> {
    return fx.server.inject({ method, url, remoteAddress: "203.0.113.66", headers: { host: HOST, authorization: `Bearer ${bearer}` } });
  }

  it("attack: a leaked help-desk token cannot keep its owner signed out — sessions/revoke and throttles/clear refuse the caller's own account with 403, naming the /auth routes (ASVS 7.5.2, 7.4.1) (was: 200, ending the owner's sessions with no re-authentication each time they signed in to revoke the token)", async () => {
    await fx.app.accounts.roles.create({ name: "helpdesk-e", permissions: ["accounts.read", "accounts.write"] }, "test");
    const owner = await fx.user("desk-owner@example.org", { roles: ["helpdesk-e"] });
    const b = fx.browser();
    assert.equal((await b.login(owner.email, owner.password)).statusCode, 200);
    const secret = (await b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    assert.equal((await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(STEP);
    const leaked = await tokenFor(owner.id, ["accounts.read", "accounts.write"]);

    // The owner learns of the leak and signs in to revoke the token; the thief's script ends the account's sessions in a loop.
    const p = await pending(owner);
    const csrf = await p.csrf();
    const thrownOut = await api("POST", `/api/v1/users/${owner.id}/sessions/revoke`, leaked);
    const stepUp = await p.request("POST", "/auth/mfa/verify", { csrf, body: { totp: totpCode(secret, fx.clock.now()) } });
    assert.deepEqual({ selfRevoke: thrownOut.statusCode, ownerStepUp: stepUp.statusCode, ownerSignedIn: (await state(p)).authenticated },
      { selfRevoke: 403, ownerStepUp: 200, ownerSignedIn: true },
      `the token ended its own owner's sessions without any re-authentication: ${thrownOut.body.slice(0, 160)}`);
  });
});
