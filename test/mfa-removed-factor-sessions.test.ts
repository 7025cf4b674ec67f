// A session stepped up with a second factor rests on that factor: when the factor is removed while others remain, the
// sessions it stepped up lose their second factor (aal 1) and the others keep theirs. The attacker: someone who held
// the password and, for a while, a second factor of the victim's — a passkey registered from a hijacked session, the
// victim's authenticator app read over a shoulder — and stepped a session up with it. The owner sees the factor in
// their list (and was mailed when it was added) and removes it; the attacker's session must not keep the assurance it
// had from it (for an administrator: the admin API). Before migration 25 only the removal of the LAST factor lowered
// sessions, so the attacker kept aal 2 for as long as the owner had another factor. ASVS 6.3.3, 7.4.3 (sessions end or
// lose what a changed factor gave them).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

const { withPasskey, pending } = authFlows(() => fx);

/** What GET /auth/session says of a browser's session. */
async function state(b: Browser): Promise<{ aal: number; mfaEnrolmentRequired: boolean; sessionId: string }> {
  return (await b.request("GET", "/auth/session")).json();
}

/** An administrator with a passkey (`key`) and an authenticator app (`secret`); `b` stepped up last with the app. */
async function adminWithBoth(email: string) {
  const u = await withPasskey(email, ["admin"]);
  const secret = (await u.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
  const confirmed = await u.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
  assert.equal(confirmed.statusCode, 200, confirmed.body);
  fx.clock.advance(STEP);
  return { ...u, secret };
}

/** A new sign-in of `u` finished with the passkey. */
async function viaPasskey(u: Awaited<ReturnType<typeof adminWithBoth>>): Promise<Browser> {
  const b = await pending(u);
  const options = await b.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
  const verified = await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: u.key.authenticate(options.json(), ORIGIN) } });
  assert.equal(verified.statusCode, 200, verified.body);
  return b;
}

/** A new sign-in of `u` finished with the app. */
async function viaApp(u: Awaited<ReturnType<typeof adminWithBoth>>): Promise<Browser> {
  const b = await pending(u);
  const verified = await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(u.secret, fx.clock.now()) } });
  assert.equal(verified.statusCode, 200, verified.body);
  fx.clock.advance(STEP);
  return b;
}

/** Whether the session's holder reaches the admin API (an administrator below aal 2 is held at the gate). */
async function adminAPI(b: Browser): Promise<number> {
  return (await b.request("GET", "/api/v1/tokens")).statusCode;
}

describe("removing one of several second factors (ASVS 6.3.3, 7.4.3)", () => {
  it("attack: a session stepped up with a passkey the owner then removes keeps no second factor, nor the admin API", async () => {
    const u = await adminWithBoth("passkey-gone@example.org");
    const attacker = await viaPasskey(u);
    assert.equal((await state(attacker)).aal, 2);
    assert.equal(await adminAPI(attacker), 200);
    // The owner sees which factor stepped each session up.
    const listed = (await u.b.request("GET", "/auth/sessions")).json().sessions as Array<{ current: boolean; secondFactor: string | null }>;
    assert.deepEqual(listed.map((s) => [s.current, s.secondFactor]).sort(), [[false, "webauthn"], [true, "totp"]]);

    const removed = await u.b.request("DELETE", `/auth/mfa/webauthn/${encodeURIComponent(u.credentialId)}`, { csrf: true });
    assert.equal(removed.statusCode, 200, removed.body);

    assert.equal((await state(attacker)).aal, 1, "the passkey that stepped it up is gone");
    assert.equal(await adminAPI(attacker), 403, "an administrator's session below aal 2 is held at the gate");
    // The owner's session was stepped up with the app, which stays: it keeps its assurance.
    assert.equal((await state(u.b)).aal, 2);
    assert.equal(await adminAPI(u.b), 200);
  });

  it("attack: a session stepped up with the authenticator app the owner then removes keeps no second factor", async () => {
    const u = await adminWithBoth("app-gone@example.org");
    const attacker = await viaApp(u);
    const owner = await viaPasskey(u);
    assert.equal((await state(attacker)).aal, 2);

    const removed = await owner.request("DELETE", "/auth/mfa/totp", { csrf: true });
    assert.equal(removed.statusCode, 200, removed.body);

    assert.equal((await state(attacker)).aal, 1, "the app that stepped it up is gone");
    assert.equal((await state(u.b)).aal, 1, "the session the app's enrolment stepped up rested on it too");
    assert.equal((await state(owner)).aal, 2, "the passkey's session keeps its assurance");
  });

  it("the session that removes the factor it was stepped up with keeps its assurance (it has just re-authenticated), and loses it at the next removal", async () => {
    const u = await adminWithBoth("own-factor@example.org");
    const other = await viaApp(u);
    const removed = await u.b.request("DELETE", "/auth/mfa/totp", { csrf: true });
    assert.equal(removed.statusCode, 200, removed.body);
    assert.equal((await state(u.b)).aal, 2, "replacing the factor one signed in with needs no second step-up");
    assert.equal((await state(other)).aal, 1);
    // It rests on no factor it can name now: the next removal of any factor lowers it (here from an outside path).
    await fx.app.accounts.sessions.lowerAssurance(u.id, { factor: "webauthn:another" });
    assert.equal((await state(u.b)).aal, 1);
  });

  it("attack: a password change in flight while the owner removes the passkey that stepped its session up does not bring the assurance back", async () => {
    // The password change rotates its session keeping the assurance; the request read its session (aal 2) before the
    // slow hash, and the removal lowered the row while the hash ran. The new session must be the lowered one, not
    // aal 2 because the user still holds another factor.
    const u = await adminWithBoth("stale-rotation@example.org");
    const attacker = await viaPasskey(u);
    const passwords = fx.app.accounts.passwords as { hash: typeof fx.app.accounts.passwords.hash };
    const original = passwords.hash;
    let removal: number | null = null;
    passwords.hash = async (...args) => {
      passwords.hash = original;
      removal = (await u.b.request("DELETE", `/auth/mfa/webauthn/${encodeURIComponent(u.credentialId)}`, { csrf: true })).statusCode;
      return original(...args);
    };
    let change;
    try {
      change = await attacker.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: u.password, newPassword: "copper meadow whistles softly" } });
    } finally {
      passwords.hash = original;
    }
    assert.equal(removal, 200);
    assert.equal(change.statusCode, 200, change.body);
    assert.equal((await state(attacker)).aal, 1, "the session the removed passkey stepped up stays lowered");
    assert.equal(await adminAPI(attacker), 403);
  });

  it("attack: removing every factor through the library (removeAll) leaves no session with a second factor", async () => {
    const u = await adminWithBoth("remove-all@example.org");
    assert.equal((await state(u.b)).aal, 2);
    await fx.app.accounts.mfa.removeAll(u.id);
    assert.equal((await state(u.b)).aal, 1);
    assert.equal((await state(u.b)).mfaEnrolmentRequired, true);
  });
});
