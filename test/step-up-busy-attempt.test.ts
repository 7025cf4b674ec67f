// A right second factor at the sign-in gate (/auth/mfa/verify), at re-authentication (/auth/reauthenticate) or with a
// reset link (/auth/password/reset/complete) whose work then fails because the store is busy (the audit head held past
// PostgreSQL's lock_timeout: 503 BULWARK_ERR_DB_BUSY "try again shortly") gives its factor attempt back, as a login gives
// back its flood attempt (abandonLogin): an owner unlucky during a DBA's long lock does not burn the factor's
// 5-per-5-minutes window, nor its 100-in-a-row stop. A wrong code always counts, whatever fails after it:
// failures an attacker can cause must not make guesses free. So does a right code beside a new password the reset refuses
// (the same password again, for an account whose password must change). Loopback and temp dirs only; skipped (loudly) when
// PostgreSQL is not installed.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import pg from "pg";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, totpCode, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { requirePasswordChange } from "../src/accounts/users/admin-changes.ts";
import { MFA_FLOOD_POLICY } from "../src/accounts/mfa/index.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { testMasterKey } from "./helpers/master-key.ts";
import { pgSites, within, HOLD_AUDIT_HEAD } from "./helpers/pg-site.ts";

// Every test waits out the bound (once or twice): its sites refuse a held row after 2 s, not the product's 5 s.
const { unavailable, site, lockBoundMs } = pgSites("stepbusy", testMasterKey("step-up-busy-attempt"), { lockTimeoutSeconds: 2 });
/** Real time a wait past the bound takes to be refused, with room. */
const PAST_BOUND_MS = lockBoundMs + 3_000;
const skip = unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {};
/** Wrong factor attempts allowed in the window (5 per 5 minutes). */
const LIMIT = MFA_FLOOD_POLICY.accountLimit;

/** Runs `request` while the DBA holds the audit head in an open transaction; the lock is let go after. */
async function behindHeldHead(dba: pg.Client, request: () => Promise<LightMyRequestResponse>): Promise<LightMyRequestResponse> {
  await dba.query("BEGIN");
  await dba.query(HOLD_AUDIT_HEAD);
  const pending = request();
  const answered = await within(pending, PAST_BOUND_MS);
  await dba.query("ROLLBACK");
  assert.ok(answered !== null, "control: the request answered within the bound");
  return answered;
}

const codeOf = (r: LightMyRequestResponse): string | undefined => (r.json() as { error?: { code?: string } }).error?.code;

/** A six-digit code that is none of the codes the window (±1 step) accepts now. */
function wrongCode(secret: string, now: number): string {
  const accepted = new Set([-30_000, 0, 30_000].map((d) => totpCode(secret, now + d)));
  for (let n = 0; ; n++) {
    const candidate = String(n).padStart(6, "0");
    if (!accepted.has(candidate)) return candidate;
  }
}

/** How many wrong codes in a row the gate answers 401 before it answers 429 (at most LIMIT + 1 tried). */
async function wrongCodesAllowed(fx: AuthFixture, gate: Browser, secret: string): Promise<number> {
  for (let n = 0; n <= LIMIT; n++) {
    const r = await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrongCode(secret, fx.clock.now()) } });
    if (r.statusCode === 429) return n;
    assert.equal(r.statusCode, 401, `a wrong code is refused: ${r.body}`);
  }
  return LIMIT + 1;
}

describe("a right second factor whose step-up meets a held audit head (PostgreSQL)", skip, () => {
  it("attack: the owner's right TOTP code meets an audit head held past the bound — the 503 gives the attempt back: exactly the full limit of wrong codes is still allowed after it (ASVS 6.3.1, 6.5.1, 16.5.3) (was: the 503'd right code counted as a failed attempt, one fewer allowed; a long lock burned the owner's window and streak)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("busy-right-code@example.org");
      const gate = await flows.pending(u);
      const code = totpCode(u.secret, fx.clock.now());
      const res = await behindHeldHead(dba, () => gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } }));
      assert.equal(res.statusCode, 503, `control: refused as busy: ${res.body}`);
      assert.equal(codeOf(res), "BULWARK_ERR_DB_BUSY");
      assert.equal(await wrongCodesAllowed(fx, gate, u.secret), LIMIT, "the wrong codes still allowed after the 503 of a right code");
    } finally {
      await close();
    }
  });

  it("attack: the owner's right TOTP code meets a held audit head, then the same still-valid code is retried after a few typos — the rolled-back step-up left the time step unspent and the attempt given back, so the retry (the limit's last attempt) steps up; its replay is refused (ASVS 6.3.1, 6.5.1, 16.5.3) (was: the retry was refused 429, its attempt spent by the 503)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("busy-retry@example.org");
      const gate = await flows.pending(u);
      const code = totpCode(u.secret, fx.clock.now());
      const res = await behindHeldHead(dba, () => gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } }));
      assert.equal(res.statusCode, 503, `control: refused as busy: ${res.body}`);
      for (let n = 0; n < LIMIT - 1; n++) {
        const r = await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrongCode(u.secret, fx.clock.now()) } });
        assert.equal(r.statusCode, 401, `typo ${n + 1} refused as wrong: ${r.body}`);
      }
      const retry = await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
      assert.equal(retry.statusCode, 200, `the owner's retry with the same code steps up: ${retry.body}`);
      const replay = await (await flows.pending(u)).request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
      assert.equal(replay.statusCode, 401, `a replay of the spent step is refused: ${replay.body}`);
    } finally {
      await close();
    }
  });

  it("attack: the owner's right recovery code meets a held audit head — the 503 leaves the code unused and gives the attempt back: exactly the full limit of wrong recovery codes is still allowed, and the code then works (ASVS 6.3.1, 6.5.1, 16.5.3) (was: the 503'd right code counted as a failed attempt)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("busy-recovery@example.org");
      const [code] = await fx.app.accounts.mfa.recovery.generate(u.id);
      assert.ok(code);
      const gate = await flows.pending(u);
      const res = await behindHeldHead(dba, () => gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: code } }));
      assert.equal(res.statusCode, 503, `control: refused as busy: ${res.body}`);
      let allowed = 0;
      for (; allowed <= LIMIT; allowed++) {
        const r = await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: `wrong-code-${allowed}` } });
        if (r.statusCode === 429) break;
        assert.equal(r.statusCode, 401, r.body);
      }
      assert.equal(allowed, LIMIT, "the wrong recovery codes still allowed after the 503 of a right one");
      fx.clock.advance(MFA_FLOOD_POLICY.accountWindowMs + 1_000);
      const retry = await gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: code } });
      assert.equal(retry.statusCode, 200, `the unused code works once the window has passed: ${retry.body}`);
    } finally {
      await close();
    }
  });

  it("attack: an attacker holding the password sends wrong TOTP codes while the audit head is held past the bound — each still counts though its request failed after the check, so the failures buy no free guesses (ASVS 6.3.1, 6.6.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("busy-wrong-code@example.org");
      const gate = await flows.pending(u);
      const during = 2;
      for (let n = 0; n < during; n++) {
        const res = await behindHeldHead(dba, () => gate.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrongCode(u.secret, fx.clock.now()) } }));
        assert.ok(res.statusCode === 503 || res.statusCode === 401, `a wrong code is refused: ${res.statusCode} ${res.body}`);
      }
      assert.equal(await wrongCodesAllowed(fx, gate, u.secret), LIMIT - during, "the wrong codes sent during the held head counted");
    } finally {
      await close();
    }
  });
});

/** How many wrong codes in a row `send` gets refused (401) before it is throttled (429), at most LIMIT + 1 tried. */
async function wrongAllowed(send: (code: string) => Promise<LightMyRequestResponse>, secret: string, now: () => number): Promise<number> {
  for (let n = 0; n <= LIMIT; n++) {
    const r = await send(wrongCode(secret, now()));
    if (r.statusCode === 429) return n;
    assert.equal(r.statusCode, 401, `a wrong code is refused: ${r.body}`);
  }
  return LIMIT + 1;
}

describe("a right second factor whose re-authentication meets a held audit head (PostgreSQL)", skip, () => {
  const reauth = (b: Browser, password: string, totp: string): Promise<LightMyRequestResponse> =>
    b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password, totp } });

  it("attack: the owner's right password and TOTP code at /auth/reauthenticate meet an audit head held past the bound — the 503 gives the factor's attempt back: exactly the full limit of wrong codes is still allowed after it (ASVS 6.3.1, 7.5.1, 16.5.3) (was: the rotation committed before its record failed: the step spent, the browser left on a replaced session)", async () => {
    const { fx, dba, close } = await site();
    try {
      const u = await authFlows(() => fx).withTOTP("busy-reauth-right@example.org");
      // The enrolment's confirmation used this step: the next one is the owner's right code.
      fx.clock.advance(30_000);
      const res = await behindHeldHead(dba, () => reauth(u.b, u.password, totpCode(u.secret, fx.clock.now())));
      assert.equal(res.statusCode, 503, `control: refused as busy: ${res.body}`);
      assert.equal(codeOf(res), "BULWARK_ERR_DB_BUSY");
      assert.equal(await wrongAllowed((code) => reauth(u.b, u.password, code), u.secret, () => fx.clock.now()), LIMIT, "the wrong codes still allowed after the 503 of a right code");
    } finally {
      await close();
    }
  });

  it("attack: a thief holding the session and the password sends wrong TOTP codes to /auth/reauthenticate while the audit head is held past the bound — each still counts though its request failed after the check (ASVS 6.3.1, 7.5.1)", async () => {
    const { fx, dba, close } = await site();
    try {
      const u = await authFlows(() => fx).withTOTP("busy-reauth-wrong@example.org");
      const during = 2;
      for (let n = 0; n < during; n++) {
        const res = await behindHeldHead(dba, () => reauth(u.b, u.password, wrongCode(u.secret, fx.clock.now())));
        assert.ok(res.statusCode === 503 || res.statusCode === 401, `a wrong code is refused: ${res.statusCode} ${res.body}`);
      }
      assert.equal(await wrongAllowed((code) => reauth(u.b, u.password, code), u.secret, () => fx.clock.now()), LIMIT - during, "the wrong codes sent during the held head counted");
    } finally {
      await close();
    }
  });
});

describe("a right second factor whose reset completion meets a held audit head (PostgreSQL)", skip, () => {
  const complete = (fx: AuthFixture, token: string, totp: string): Promise<LightMyRequestResponse> =>
    fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword: "a brand new passphrase for the owner", totp } });

  it("attack: the owner completes a password reset with the link and a right TOTP code while the audit head is held past the bound — the 503 rolls the link and the code back and gives the attempt back: exactly the full limit of wrong codes is still allowed on the reset counter (ASVS 6.3.1, 6.4.3, 16.5.3) (was: the 503'd right code counted as a failed attempt, one fewer allowed)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("busy-reset-right@example.org");
      const token = await flows.resetToken(u.email);
      fx.clock.advance(30_000);
      const res = await behindHeldHead(dba, () => complete(fx, token, totpCode(u.secret, fx.clock.now())));
      assert.equal(res.statusCode, 503, `control: refused as busy: ${res.body}`);
      assert.equal(codeOf(res), "BULWARK_ERR_DB_BUSY");
      assert.equal(await wrongAllowed((code) => complete(fx, token, code), u.secret, () => fx.clock.now()), LIMIT, "the wrong codes still allowed after the 503 of a right code");
    } finally {
      await close();
    }
  });

  it("attack: the holder of a reset link sends wrong TOTP codes while the audit head is held past the bound — each still counts on the reset counter though its request failed after the check (ASVS 6.3.1, 6.4.3)", async () => {
    const { fx, dba, close } = await site();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("busy-reset-wrong@example.org");
      const token = await flows.resetToken(u.email);
      const during = 2;
      for (let n = 0; n < during; n++) {
        const res = await behindHeldHead(dba, () => complete(fx, token, wrongCode(u.secret, fx.clock.now())));
        assert.ok(res.statusCode === 503 || res.statusCode === 401, `a wrong code is refused: ${res.statusCode} ${res.body}`);
      }
      assert.equal(await wrongAllowed((code) => complete(fx, token, code), u.secret, () => fx.clock.now()), LIMIT - during, "the wrong codes sent during the held head counted");
    } finally {
      await close();
    }
  });
});

describe("a right second factor beside a new password refused at reset completion", () => {
  it("attack: the owner of an account whose password must change completes a reset with a right TOTP code and the same password again — the 400 gives the code's attempt back: exactly the full limit of wrong codes is still allowed on the reset counter, and the right code then works with another password (ASVS 6.3.1, 6.4.3) (was: the refused password cost the right code one attempt)", async () => {
    const fx = await authFixture();
    try {
      const flows = authFlows(() => fx);
      const u = await flows.withTOTP("unchanged-reset@example.org");
      assert.equal(await requirePasswordChange(fx.app.db.db, u.id, fx.clock.now()), "required");
      const token = await flows.resetToken(u.email);
      fx.clock.advance(30_000);
      const complete = (newPassword: string, totp: string): Promise<LightMyRequestResponse> =>
        fx.browser().request("POST", "/auth/password/reset/complete", { body: { token, newPassword, totp } });
      const same = await complete(u.password, totpCode(u.secret, fx.clock.now()));
      assert.equal(same.statusCode, 400, `control: the same password is refused: ${same.body}`);
      assert.equal(codeOf(same), "BULWARK_ERR_PASSWORD_UNCHANGED");
      assert.equal(await wrongAllowed((code) => complete("a brand new passphrase for the owner", code), u.secret, () => fx.clock.now()), LIMIT, "the wrong codes still allowed after a right code beside a refused password");
      // The window's limit is reached by the wrong codes: once it has passed, the right code (unspent) sets the new password.
      fx.clock.advance(MFA_FLOOD_POLICY.accountWindowMs);
      const done = await complete("a brand new passphrase for the owner", totpCode(u.secret, fx.clock.now()));
      assert.equal(done.statusCode, 200, `the link and a right code complete the reset: ${done.body}`);
    } finally {
      await fx.close();
    }
  });
});
