// Second-round attacks on MFA over HTTP: what the first round (mfa-attacks, http-auth-mfa, asvs-mfa-policy,
// http-factors-links-attacks, the mfa *.security tests) did not combine. Invariant under attack: a session counts as
// multi-factor (aal 2) only while its user holds a second factor, because the gates (src/http/auth/authenticate.ts
// gateOf) are worked out below aal 2 only — an aal-2 session of a user with no factor passes the MFA policy for good,
// whatever roles the user is granted later (ASVS 6.3.3). Also: a role granted while a session is live, a change
// that half fails, and the exact edges of a passkey challenge's life.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { WEBAUTHN_CHALLENGE_TTL_MS } from "../src/accounts/mfa/index.ts";
import { ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

const { signedIn, withTOTP, withPasskey, pending } = authFlows(() => fx);

/** A second fully signed-in (aal 2, fresh) session of a TOTP user, stepped up with the current step's code. */
async function secondSession(u: { email: string; password: string; secret: string }): Promise<Browser> {
  const b = await pending(u);
  const r = await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(u.secret, fx.clock.now()) } });
  assert.equal(r.statusCode, 200, r.body);
  fx.clock.advance(STEP);
  return b;
}

/** What GET /auth/session says of a browser's session. */
async function state(b: Browser): Promise<{ authenticated: boolean; aal: number; mfaRequired: boolean; mfaEnrolmentRequired: boolean }> {
  return (await b.request("GET", "/auth/session")).json();
}

async function auditTypes(userId: string): Promise<string[]> {
  return (await fx.app.db.db.selectFrom("audit_events").select("type").where("subject", "=", userId).execute()).map((e) => e.type);
}

describe("a role granted while a session is live (ASVS 6.3.3)", () => {
  it("attack: a password-only session opened before the user was made administrator is held at enrolment from its next request, on /auth and /api/v1 alike", async () => {
    const u = await signedIn("promoted-live@example.org");
    assert.equal((await u.b.request("GET", "/api/v1/tokens")).statusCode, 200, "a plain user without MFA is fully signed in");
    assert.equal(await fx.app.accounts.roles.grant(u.id, "admin", "test"), true);
    // No new login: the very same cookie. The gate is worked out per request, not fixed at login.
    const s = await state(u.b);
    assert.deepEqual([s.authenticated, s.aal, s.mfaEnrolmentRequired], [true, 1, true]);
    const api = await u.b.request("GET", "/api/v1/users");
    assert.equal(api.statusCode, 403, api.body);
    assert.equal(api.json().error.code, "BULWARK_ERR_API_SIGN_IN_INCOMPLETE");
    const sessions = await u.b.request("GET", "/auth/sessions");
    assert.equal(sessions.json().error.code, "BULWARK_ERR_MFA_ENROLMENT_REQUIRED");
    // The way out is enrolment, from the same session; then the admin API opens.
    const secret = (await u.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    const confirmed = await u.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    assert.equal((await u.b.request("GET", "/api/v1/users")).statusCode, 200);
  });
});

describe("aal 2 without a second factor (ASVS 6.3.3)", () => {
  it("attack: a password change racing the removal of the last factor (another tab) leaves a fresh aal-2 session with no factor, which later passes the administrator's MFA gate (was: the rotated session took aal 2 from the session as read before the slow hash, undoing the removal's lowering)", async () => {
    const u = await withTOTP("pc-race@example.org");
    const phone = await secondSession(u);
    // The owner removes the authenticator app on the phone while the laptop's password change is hashing (the slow
    // part, a real window of a few hundred milliseconds at production cost).
    const passwords = fx.app.accounts.passwords as { hash: typeof fx.app.accounts.passwords.hash };
    const original = passwords.hash;
    let removal: number | null = null;
    passwords.hash = async (...args) => {
      passwords.hash = original;
      removal = (await phone.request("DELETE", "/auth/mfa/totp", { csrf: true })).statusCode;
      return original(...args);
    };
    let change;
    try {
      change = await u.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: u.password, newPassword: "copper meadow whistles softly" } });
    } finally {
      passwords.hash = original;
    }
    assert.equal(removal, 200, "a plain user may remove the last factor");
    assert.equal(change.statusCode, 200, change.body);
    assert.equal(await fx.app.accounts.mfa.hasMfa(u.id), false);
    // The removal lowered every session to aal 1; the change then rotated the laptop's session with the assurance it
    // read at the start of the request (password-routes.ts: aal: cs.session.aal === 2 ? 2 : 1).
    await fx.app.accounts.roles.grant(u.id, "admin", "test");
    const s = await state(u.b);
    const api = await u.b.request("GET", "/api/v1/users");
    // The session is fresh too (no factor left, so the change did not keep its lifetime): it mints a lasting admin token.
    const mint = await u.b.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "no-mfa", scopes: ["admin"] } });
    assert.deepEqual([s.aal, s.mfaEnrolmentRequired, api.statusCode, mint.statusCode], [1, true, 403, 403], `an administrator with no factor at all reaches the admin API: ${mint.body}`);
  });

  it("attack: the last factor removed in another tab while re-authentication checks the password: the code proves nothing and no aal-2 session is made (ASVS 7.5.1)", async () => {
    const u = await withTOTP("reauth-race@example.org");
    const phone = await secondSession(u);
    const passwords = fx.app.accounts.passwords as { verify: typeof fx.app.accounts.passwords.verify };
    const original = passwords.verify;
    let removal: number | null = null;
    passwords.verify = async (...args) => {
      passwords.verify = original;
      removal = (await phone.request("DELETE", "/auth/mfa/totp", { csrf: true })).statusCode;
      return original(...args);
    };
    const before = u.b.cookie;
    let re;
    try {
      re = await u.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: u.password, totp: totpCode(u.secret, fx.clock.now()) } });
    } finally {
      passwords.verify = original;
    }
    assert.equal(removal, 200);
    assert.equal(re.statusCode, 401, re.body);
    assert.equal(u.b.cookie, before, "no new session");
    assert.equal((await state(u.b)).aal, 1, "lowered with the removal");
  });

  it("attack: removing the last factor fails half-way (the recovery-codes notice cannot be written): the codes are gone untold, the sessions keep aal 2, and a retry cannot repair it (ASVS 6.3.3, 6.3.7) (was: codes discarded, notice queued and sessions lowered after the removal had committed, each on its own)", async () => {
    const u = await withTOTP("half-removed@example.org");
    const phone = await secondSession(u);
    await fx.app.accounts.mfa.recovery.generate(u.id);
    const outbox = fx.app.accounts.outbox;
    const original = outbox.enqueue.bind(outbox);
    let calls = 0;
    // The factor's own notice is written in the removal's transaction; the database then fails (a full disk, a lost
    // connection) on the next write: the notice of the recovery codes discarded with the last factor.
    outbox.enqueue = async (...args: Parameters<typeof outbox.enqueue>) => {
      calls++;
      if (calls > 1) throw new Error("disk I/O error");
      return original(...args);
    };
    let failed;
    try {
      failed = await u.b.request("DELETE", "/auth/mfa/totp", { csrf: true });
    } finally {
      delete (outbox as { enqueue?: unknown }).enqueue;
    }
    assert.equal(failed.statusCode, 500, failed.body);
    // The retry the user makes after an error page: the app is gone already, so nothing runs the rest.
    const retry = await u.b.request("DELETE", "/auth/mfa/totp", { csrf: true });
    assert.equal(await fx.app.accounts.mfa.hasMfa(u.id), false, "the factor's removal committed");
    const types = await auditTypes(u.id);
    // One "removed" mail for the app and one for the unused codes that went with it.
    const removalMails = (await fx.app.db.db.selectFrom("outbox_messages").select("kind").where("to_address", "=", u.email).execute())
      .filter((m) => /removed/.test(m.kind)).length;
    assert.equal(await fx.app.accounts.mfa.recovery.remaining(u.id), 0, "the codes were discarded");
    await fx.app.accounts.roles.grant(u.id, "admin", "test");
    const phoneState = await state(phone);
    const laptopState = await state(u.b);
    assert.deepEqual(
      { retry: retry.statusCode, laptop: laptopState.aal, phone: phoneState.aal, phoneHeld: phoneState.mfaEnrolmentRequired, removalMails },
      { retry: retry.statusCode, laptop: 1, phone: 1, phoneHeld: true, removalMails: 2 },
      `sessions of a user without any factor still count as multi-factor; audit: ${types.join(",")}`,
    );
  });

  it("attack: cancelling a pending TOTP enrolment while another tab confirms it deletes the now-confirmed factor as a mere cancellation: no removal notice, and the confirming session keeps aal 2 with no factor (ASVS 6.3.3, 6.3.7) (was: the cancel deleted whatever row it found, confirmed or not)", async () => {
    const u = await signedIn("cancel-race@example.org");
    const other = fx.browser();
    assert.equal((await other.login(u.email, u.password)).statusCode, 200);
    const secret = (await u.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    const otherCsrf = await other.csrf();
    // The other tab's cancel reads the factors (an unconfirmed enrolment), then this tab's confirmation commits,
    // then the cancel deletes the row: the interleaving two tabs (or PostgreSQL connections) can produce.
    const mfa = fx.app.accounts.mfa;
    const factors = mfa.factors;
    let confirm: number | null = null;
    mfa.factors = async (userId) => {
      mfa.factors = factors;
      const seen = await factors(userId);
      confirm = (await u.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode;
      return seen;
    };
    let cancel;
    try {
      cancel = await other.request("DELETE", "/auth/mfa/totp", { csrf: otherCsrf });
    } finally {
      mfa.factors = factors;
    }
    assert.equal(confirm, 200, "the enrolment was confirmed: the owner was told a factor was added");
    assert.equal(cancel.statusCode, 200, cancel.body);
    const hasMfa = await fx.app.accounts.mfa.hasMfa(u.id);
    const types = await auditTypes(u.id);
    const s = await state(u.b);
    // Secure: either the confirmed app survives a cancel meant for an unconfirmed one, or its removal is a removal —
    // audited and mailed as one, with the sessions lowered to aal 1.
    assert.ok(hasMfa || (types.includes("auth.mfa.removed") && s.aal === 1), `factor kept: ${hasMfa}; session aal ${s.aal}; audit: ${types.join(",")}`);
  });
});

describe("passkey removal under the MFA policy (ASVS 6.3.3, 6.5.6)", () => {
  it("attack: an administrator with one passkey and an authenticator app begun but never confirmed cannot remove the passkey — a pending enrolment is no factor; once confirmed, the passkey may go and the session stays aal 2", async () => {
    const admin = await withPasskey("admin-passkey@example.org", ["admin"]);
    const secret = (await admin.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    const url = `/auth/mfa/webauthn/${encodeURIComponent(admin.credentialId)}`;
    const refused = await admin.b.request("DELETE", url, { csrf: true });
    assert.equal(refused.statusCode, 409, refused.body);
    assert.equal(refused.json().error.code, "BULWARK_ERR_MFA_LAST_FACTOR");
    assert.equal((await fx.app.accounts.mfa.webauthn.list(admin.id)).length, 1, "the passkey stays");
    assert.equal((await admin.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(STEP);
    assert.equal((await admin.b.request("DELETE", url, { csrf: true })).statusCode, 200);
    const s = await state(admin.b);
    assert.deepEqual([s.aal, s.mfaEnrolmentRequired], [2, false], "a factor is left: the session still counts as multi-factor");
    assert.equal((await admin.b.request("GET", "/api/v1/users")).statusCode, 200);
  });

  it("attack: an administrator's two factors removed at once (two tabs) leave one: the second removal sees the first under the same lock and is refused (ASVS 6.3.3) (was: both passed the last-factor check made before either removal, and the administrator was left with no factor)", async () => {
    const admin = await withPasskey("admin-two-tabs@example.org", ["admin"]);
    const secret = (await admin.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    assert.equal((await admin.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(STEP);
    const csrf = await admin.b.csrf();
    // Both requests look at the factors before either removes one (two tabs, two nodes): each look waits for the other.
    const mfa = fx.app.accounts.mfa;
    const factors = mfa.factors.bind(mfa);
    let arrived = 0;
    let release!: () => void;
    const both = new Promise<void>((resolve) => { release = resolve; });
    mfa.factors = async (userId) => {
      const seen = await factors(userId);
      if (++arrived === 2) release();
      await both;
      return seen;
    };
    let app, key;
    try {
      [app, key] = await Promise.all([
        admin.b.request("DELETE", "/auth/mfa/totp", { csrf }),
        admin.b.request("DELETE", `/auth/mfa/webauthn/${encodeURIComponent(admin.credentialId)}`, { csrf }),
      ]);
    } finally {
      mfa.factors = factors;
    }
    assert.equal(arrived, 2, "both requests looked at the factors");
    assert.deepEqual([app.statusCode, key.statusCode].sort(), [200, 409], `${app.body} | ${key.body}`);
    assert.equal([app, key].find((r) => r.statusCode === 409)?.json().error.code, "BULWARK_ERR_MFA_LAST_FACTOR");
    assert.equal(await fx.app.accounts.mfa.hasMfa(admin.id), true, "one factor is left");
  });

  it("attack: a fresh aal-2 session removing another user's passkey by its id removes nothing and leaves the owner's sessions multi-factor", async () => {
    const alice = await withPasskey("passkey-owner@example.org");
    const mallory = await withPasskey("passkey-thief@example.org");
    const r = await mallory.b.request("DELETE", `/auth/mfa/webauthn/${encodeURIComponent(alice.credentialId)}`, { csrf: true });
    assert.equal(r.statusCode, 404, r.body);
    assert.equal((await fx.app.accounts.mfa.webauthn.list(alice.id)).length, 1);
    assert.equal((await state(alice.b)).aal, 2);
    assert.equal((await state(mallory.b)).aal, 2, "the caller's own factor is untouched too");
  });
});

describe("the edges of a passkey challenge's life (ASVS 6.5.5, 6.7.2)", () => {
  it("attack: a step-up assertion over a challenge is accepted one millisecond before its five minutes end and refused at the exact instant they end", async () => {
    const { key, ...user } = await withPasskey("challenge-edge@example.org");

    const late = await pending(user);
    const asked = await late.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    assert.equal(asked.statusCode, 200, asked.body);
    const csrf = await late.csrf();
    fx.clock.advance(WEBAUTHN_CHALLENGE_TTL_MS);
    const refused = await late.request("POST", "/auth/mfa/verify", { csrf, body: { webauthn: key.authenticate(asked.json(), ORIGIN) } });
    assert.equal(refused.statusCode, 401, `a challenge at the end of its life: ${refused.body}`);

    const onTime = await pending(user);
    const asked2 = await onTime.request("POST", "/auth/mfa/webauthn/authenticate/options", { csrf: true });
    const csrf2 = await onTime.csrf();
    fx.clock.advance(WEBAUTHN_CHALLENGE_TTL_MS - 1);
    const ok = await onTime.request("POST", "/auth/mfa/verify", { csrf: csrf2, body: { webauthn: key.authenticate(asked2.json(), ORIGIN) } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal(ok.json().aal, 2);
  });
});
