// Sign-in states the /auth attack tests start from, over an AuthFixture: signed in, with an authenticator app,
// held at the second-factor gate.
import assert from "node:assert/strict";
import { totpCode, type AuthFixture, type Browser } from "../../src/http/auth/test-client.ts";

/** One TOTP time step. */
export const STEP = 30_000;

export type Signed = { b: Browser; id: string; email: string; password: string };

/**
 * The flows over the fixture `fx()` returns (a getter: test files open theirs in `before`).
 *
 * @example
 * const { signedIn, withTOTP, pending } = authFlows(() => fx);
 */
export function authFlows(fx: () => AuthFixture) {
  /** A user signed in (fresh, aal 1, no factor). */
  async function signedIn(email: string): Promise<Signed> {
    const user = await fx().user(email);
    const b = fx().browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    return { ...user, b };
  }

  /** A user with a confirmed authenticator app; `b` is their aal-2 session. The clock is moved past the confirming step. */
  async function withTOTP(email: string): Promise<Signed & { secret: string }> {
    const u = await signedIn(email);
    const secret = (await u.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    const ok = await u.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx().clock.now()) } });
    assert.equal(ok.statusCode, 200, ok.body);
    fx().clock.advance(STEP);
    return { ...u, secret };
  }

  /** A password-only login of an MFA user: held at the second-factor gate. */
  async function pending(u: { email: string; password: string }): Promise<Browser> {
    const b = fx().browser();
    const r = await b.login(u.email, u.password);
    assert.equal(r.json().mfaRequired, true, r.body);
    return b;
  }

  return { signedIn, withTOTP, pending };
}
