// Red team, round "half done": flows of two or more steps, and what is left of them when they are not finished by the
// one who began them. Attackers: (1) an intruder at the owner's unlocked computer (a fresh session of the owner's for a
// few minutes, then again some day later), who begins a step and keeps what it hands out (a TOTP seed, a passkey
// attestation) without finishing it, so that the owner's notices say nothing; (2) a hijacker who holds the password for
// a while, moves the account to a mailbox of theirs and, as an outsider, starts a sign-up for the address it left; (3) a
// mailbox thief holding a reset link asked before the owner's first factor; (4) a password relay held at the
// second-factor gate. Each test asserts what must hold; the round's three findings are fixed ("was: …").
// Tried and held (kept, not pinned elsewhere): a passkey registration begun by the intruder (options fetched, attestation
// made and kept) cannot be finished after the owner's password change rotated the session — its challenge belongs to the
// session that asked; a reset link asked before the owner's first enrolment asks for that factor afterwards; a
// half-logged-in session from before the owner's "sign out everywhere else" cannot be finished with a phished code.
// Read and not repeated (pinned elsewhere): reset and email-change links voided by a password change, a reset, an email
// change, an end of sessions, a lock and unlock, require-mfa-reenrolment (links-fourth-look, http-factors-links-attacks,
// mailbox-thief, takeback); the app replacement's session binding, expiry and notice (http-auth-mfa, planted-persistence,
// docs-claims-fourth); enrolment confirmed from two sessions at once and a confirm racing a reset (mfa-third-look);
// challenges bound to their session or link (http-auth-mfa, webauthn-second-look). Not counted (documented): a job
// posted from a browser session goes on after that session ends (docs/containment.md), a lock keeps reset links.
// Found:
//  - (fixed since: a first enrolment belongs to the session that began it, as a replacement does — migration 35,
//    mfa_totp.enrolment_session_id; only that session confirms it, within 30 minutes (TOTP_ENROLMENT_TTL_MS), a
//    re-authentication hands it on, a password change, a reset and sign-out everywhere delete it (totp.cancelUnconfirmed),
//    GET /auth/mfa lists it (totpEnrolment) while its session stands, the maintenance pass deletes expired ones) the first
//    authenticator app's enrolment belonged to nobody: POST /auth/mfa/totp stored a seed for the account, not for the
//    session, with no lifetime, unrecorded, unmailed and not listed in GET /auth/mfa; the owner's password reset, password
//    change, sign-out everywhere and email change all left it, and days later one request from any fresh session of the
//    owner (the intruder back at the computer) enrolled the intruder's app. The replacement of an app was given exactly
//    these guards (migration 32, TOTP_REPLACEMENT_TTL_MS) for exactly this story; the first enrolment was not.
//  - (fixed since: set-email and the email-change confirmation take an address held only by an unfinished sign-up — made
//    by sign-up, no password ever set, never signed in, holding nothing — deleting it and its link in the change's
//    transaction, audited as user.sign-up-removed; src/accounts/email-change/sign-up-shell.ts) a sign-up never finished
//    held its address for ever: a hijacker who moved the account away signs up the address it
//    left (an account with no password, nobody proved the mailbox), and the administrator's documented way back
//    (`users set-email` / POST /api/v1/users/:id/email to the owner's address) is refused as "taken". Read, same cause:
//    an owner's own email change to an address an outsider signed up meanwhile is answered 409 at the link.
//  - (fixed since: totp.pendingReplacement, and pendingEnrolment likewise, reads the session that began it — its row,
//    expiry and revocation stamps — so whatever path ended that session, nothing is listed that no session can confirm)
//    a replacement of the app that the owner began was still listed as waiting after the owner's email change ended every
//    session, though no session could confirm it (the sign-out-everywhere case was fixed for this; this path was not).
//    Read, same cause: every other end of all sessions without cancelReplacement (lock, sessions/revoke, import).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { setEmailByAdministrator } from "../src/accounts/email-change/set-by-administrator.ts";
import { authFixture, ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, EMAIL_LINK, STEP, type Signed } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const DAY = 24 * 60 * 60_000;
const NEW_PASSWORD = "amber lanterns drift over quiet harbours";

describe("half-done flows finished by someone else", () => {
  // Sign-up open: the hijacker of the second finding starts one.
  const fx = sharedFixture(() => authFixture({ BULWARK_REGISTRATION: "open" }));
  const { signedIn, withTOTP, pending, resetToken, tokenIn } = authFlows(() => fx);
  let n = 0;

  /** What GET /auth/session says of a browser. */
  async function state(b: Browser): Promise<{ authenticated: boolean; aal?: number }> {
    return (await b.request("GET", "/auth/session")).json();
  }

  /** Moves `u` to `newEmail` through the owner's own request and the link mailed there; every session ends. */
  async function changeEmail(u: Signed, newEmail: string): Promise<void> {
    const asked = await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail } });
    assert.equal(asked.statusCode, 202, asked.body);
    const token = await tokenIn(newEmail, EMAIL_LINK);
    const confirmed = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    // Past the millisecond of the revocation stamp the confirmation raised (a login in that very millisecond is refused).
    fx.clock.advance(1_000);
  }

  it("attack: an intruder at the owner's unlocked computer begins an authenticator app and keeps its seed; after the owner's password reset, password change, sign-out everywhere or email change, one request from the owner's next fresh session two days later enrols nothing — a half-done enrolment belongs to the session that began it, for 30 minutes, and dies with it, as an app replacement does (ASVS 2.3.1, 7.4.3, 6.3.7) (was: the enrolment waited, unlisted, through every remedy, and the kept seed's code enrolled the intruder's app from any later session)", async () => {
    // Each remedy the owner has against someone who used their session; returns how the owner signs in afterwards.
    const remedies: Record<string, (u: Signed) => Promise<{ email: string; password: string }>> = {
      "password reset": async (u) => {
        const token = await resetToken(u.email);
        const done = await fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: NEW_PASSWORD } });
        assert.equal(done.statusCode, 200, done.body);
        return { email: u.email, password: NEW_PASSWORD };
      },
      "password change": async (u) => {
        const changed = await u.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: u.password, newPassword: NEW_PASSWORD } });
        assert.equal(changed.statusCode, 200, changed.body);
        return { email: u.email, password: NEW_PASSWORD };
      },
      "sign out everywhere else": async (u) => {
        const ended = await u.b.request("DELETE", "/auth/sessions", { csrf: true });
        assert.equal(ended.statusCode, 200, ended.body);
        return { email: u.email, password: u.password };
      },
      "email change": async (u) => {
        const moved = `moved-${n}-${u.email}`;
        await changeEmail(u, moved);
        return { email: moved, password: u.password };
      },
    };
    const survived: string[] = [];
    for (const [remedy, apply] of Object.entries(remedies)) {
      const u = await signedIn(`seed-kept-${++n}@example.org`);
      // The intruder, in the owner's fresh session: one request, the seed kept; nothing confirmed, so nothing is mailed.
      const begun = await u.b.request("POST", "/auth/mfa/totp", { csrf: true });
      assert.equal(begun.statusCode, 200, begun.body);
      const seed = begun.json().secret as string;
      // The owner comes back and does what they would do after someone used the session.
      const after = await apply(u);
      // Two days later the owner signs in again (a fresh session); the intruder gets one request at that computer.
      fx.clock.advance(2 * DAY);
      const later = fx.browser();
      const login = await later.login(after.email, after.password);
      assert.equal(login.statusCode, 200, login.body);
      const listed = (await later.request("GET", "/auth/mfa")).json() as Record<string, unknown>;
      const confirmed = await later.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(seed, fx.clock.now()) } });
      if (confirmed.statusCode === 200) survived.push(`${remedy}: the kept seed's code enrolled the intruder's app (${confirmed.body.slice(0, 80)}); GET /auth/mfa had shown the owner ${JSON.stringify(listed)}`);
      fx.clock.advance(STEP);
    }
    assert.deepEqual(survived, [], `a TOTP enrolment begun in a session the owner's remedy ended outlived it and was confirmed days later from another session:\n${survived.join("\n")}`);
  });

  it("attack: a hijacker who moved the account to their mailbox starts a sign-up for the address it left and never finishes it; the administrator's documented way back — set-email to the owner's address — works, the unfinished sign-up deleted and recorded (ASVS 2.3.1, 6.4.1) (was: refused as BULWARK_ERR_EMAIL_TAKEN by an account nobody proved)", async () => {
    const owner = await fx.user(`hijacked-${++n}@example.org`);
    const hijackerMailbox = `keeps-${n}@evil.test`;
    // The hijacker holds the password for a while: signs in, moves the account to a mailbox of theirs.
    const hijacker = fx.browser({ newDevice: true });
    assert.equal((await hijacker.login(owner.email, owner.password)).statusCode, 200);
    const asked = await hijacker.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: hijackerMailbox } });
    assert.equal(asked.statusCode, 202, `${asked.statusCode} ${asked.body}`);
    const token = await tokenIn(hijackerMailbox, EMAIL_LINK);
    const moved = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token } });
    assert.equal(moved.statusCode, 200, moved.body);
    // Then, as anyone may, a sign-up for the address the account left: one request, the link it mails never followed.
    const squat = await fx.browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: owner.email } });
    assert.equal(squat.statusCode, 202, squat.body);
    const holder = await fx.app.accounts.users.findByIdentifier(owner.email);
    assert.ok(holder && holder.id !== owner.id && holder.passwordHash === null, "control: the sign-up made an account with no password, never completed");
    // The owner reads the old address's notice and calls the administrators, who check who is asking and restore it.
    fx.clock.advance(10 * 60_000);
    let refusal: unknown = null;
    let changed = false;
    try {
      changed = (await setEmailByAdministrator(fx.app, { userId: owner.id, email: owner.email, actor: "cli:operator", via: "cli" })).changed;
    } catch (error) {
      refusal = error;
    }
    const code = (refusal as { code?: string } | null)?.code;
    assert.ok(
      changed && refusal === null,
      `the administrator's restore of ${owner.email} to the hijacked account was refused (${code ?? String(refusal)}): the hijacker's unfinished sign-up ` +
        `(account ${holder.id}, no password, its link never followed) holds the address the owner proved for years, and no step of docs/http-auth.md's recovery frees it`,
    );
  });

  it("attack: a replacement of the authenticator app begun by the owner, then the owner's email change that ended every session — GET /auth/mfa no longer lists it: it is dropped with the session it belonged to, as sign-out everywhere drops it (ASVS 2.3.1, 7.4.1) (was: listed as waiting until its expiry, though no session could confirm it)", async () => {
    const u = await withTOTP(`replace-then-move-${++n}@example.org`);
    const begun = await u.b.request("POST", "/auth/mfa/totp/replace", { csrf: true });
    assert.equal(begun.statusCode, 200, begun.body);
    const seed = begun.json().secret as string;
    const moved = `moved-${n}@example.org`;
    await changeEmail(u, moved);
    // The owner signs in with the new address and passes the second factor with the old app (still the confirmed one).
    const again = fx.browser();
    assert.equal((await again.login(moved, u.password)).json().mfaRequired, true);
    fx.clock.advance(STEP);
    const stepped = await again.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(u.secret, fx.clock.now()) } });
    assert.equal(stepped.statusCode, 200, stepped.body);
    const listed = (await again.request("GET", "/auth/mfa")).json() as { totpReplacement?: { expiresAt: number } };
    fx.clock.advance(STEP);
    const confirmed = await again.request("POST", "/auth/mfa/totp/replace/confirm", { csrf: true, body: { code: totpCode(seed, fx.clock.now()) } });
    assert.ok(
      confirmed.statusCode === 200 || listed.totpReplacement === undefined,
      `GET /auth/mfa lists a replacement waiting until ${new Date(listed.totpReplacement?.expiresAt ?? 0).toISOString()} though the email change ended the session it belonged to, and its confirmation from the owner's session answers ${confirmed.statusCode} ${confirmed.body}`,
    );
    fx.clock.advance(STEP);
  });

  it("attack: the intruder at the owner's unlocked computer asks for passkey registration options and keeps the attestation its key made; after the owner's password change rotated the session, presenting it from that browser enrols nothing (ASVS 2.3.1, 7.4.3)", async () => {
    const u = await signedIn(`passkey-kept-${++n}@example.org`);
    const key = new SoftAuthenticator();
    const options = await u.b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    assert.equal(options.statusCode, 200, options.body);
    const kept = key.register(options.json(), ORIGIN);
    const changed = await u.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: u.password, newPassword: NEW_PASSWORD } });
    assert.equal(changed.statusCode, 200, changed.body);
    fx.clock.advance(60_000);
    // The same browser, its new fresh cookie: the intruder's one request later.
    const late = await u.b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: kept, name: "mine" } });
    assert.equal(late.statusCode, 400, late.body);
    assert.equal((await fx.app.accounts.mfa.webauthn.list(u.id)).length, 0, "no passkey stored");
    assert.equal((await state(u.b)).aal, 1, "the owner's session was not stepped up by the intruder's key");
  });

  it("attack: a mailbox thief keeps a reset link asked while the account had no factor; once the owner enrols an authenticator app, the kept link resets nothing without it (ASVS 6.4.3)", async () => {
    const u = await signedIn(`kept-link-${++n}@example.org`);
    const token = await resetToken(u.email);
    const begun = await u.b.request("POST", "/auth/mfa/totp", { csrf: true });
    const secret = begun.json().secret as string;
    assert.equal((await u.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(STEP);
    const thief = fx.browser({ newDevice: true });
    const done = await thief.request("POST", "/auth/password/reset/complete", { body: { token, newPassword: NEW_PASSWORD } });
    assert.equal(done.statusCode, 401, done.body);
    assert.equal(done.json().error.code, "BULWARK_ERR_MFA_REQUIRED");
    // The password is the owner's still: the old one signs in (to the second-factor gate), the thief's does not.
    assert.equal((await fx.browser().login(u.email, u.password)).statusCode, 200);
    assert.equal((await fx.browser().login(u.email, NEW_PASSWORD)).statusCode, 401);
  });

  it("attack: a relay holding the password waits at the second-factor gate; after the owner signs out everywhere else, a code phished from the owner finishes nothing (ASVS 7.4.1, 7.5.2)", async () => {
    const u = await withTOTP(`gate-left-${++n}@example.org`);
    const relay = await pending(u);
    const csrf = await relay.csrf();
    const ended = await u.b.request("DELETE", "/auth/sessions", { csrf: true });
    assert.equal(ended.statusCode, 200, ended.body);
    fx.clock.advance(STEP);
    const stepUp = await relay.request("POST", "/auth/mfa/verify", { csrf, body: { totp: totpCode(u.secret, fx.clock.now()) } });
    assert.equal(stepUp.statusCode, 401, stepUp.body);
    assert.equal((await state(relay)).authenticated, false);
    // The phished code is still the owner's to use.
    assert.equal((await u.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: u.password, totp: totpCode(u.secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(STEP);
  });
});
