// Sign-in states the /auth attack tests start from, over an AuthFixture: signed in, with an authenticator app,
// held at the second-factor gate; and the tokens of the links the outbox mails.
import assert from "node:assert/strict";
import { SoftAuthenticator } from "../../src/accounts/mfa/testing/soft-authenticator.ts";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, HOST, ORIGIN, totpCode, type AuthFixture, type Browser } from "../../src/http/auth/test-client.ts";
import type { DialectFixture } from "./dialects.ts";
import { testMasterKey } from "./master-key.ts";
import { ensureSecondFactor } from "./second-factor.ts";

/** One TOTP time step. */
export const STEP = 30_000;

/** The token of a mailed password-reset link (the fragment of /reset-password). */
export const RESET_LINK = /#token=(prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;
/** The token of a mailed email-change link (the fragment of /confirm-email). */
export const EMAIL_LINK = /#token=(ect_[a-z2-7]{26}\.[A-Za-z0-9_-]{43})/;

export type Signed = { b: Browser; id: string; email: string; password: string };

/**
 * The flows over the fixture `fx()` returns (a getter: test files open theirs in `before`).
 *
 * @example
 * const { signedIn, withTOTP, pending } = authFlows(() => fx);
 */
export function authFlows(fx: () => AuthFixture) {
  let made = 0;

  /** A user (its id) holding exactly `permissions` through a fresh role, plus the built-in role `builtin` when given. */
  async function userWith(permissions: string[], builtin?: string): Promise<string> {
    const k = ++made;
    const u = await fx().user(`holder${k}@example.org`);
    if (builtin) await fx().app.accounts.roles.grant(u.id, builtin, "test");
    if (permissions.length) {
      await fx().app.accounts.roles.create({ name: `holder${k}`, permissions }, "test");
      await fx().app.accounts.roles.grant(u.id, `holder${k}`, "test");
    }
    return u.id;
  }

  /** A real API token of `userId` with `scopes`, expiring at `expiresAt` when given. */
  async function tokenFor(userId: string, scopes: string[], expiresAt?: number): Promise<string> {
    await ensureSecondFactor(fx().app, userId);
    return (await fx().app.accounts.tokens.create(userId, { name: `t${++made}`, scopes, ...(expiresAt === undefined ? {} : { expiresAt }) })).token;
  }

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

  /** A user (with `roles`) who registered a passkey over HTTP, at the enrolment gate for an administrator; `b` is aal 2. */
  async function withPasskey(email: string, roles: string[] = []): Promise<Signed & { credentialId: string; key: SoftAuthenticator }> {
    const user = await fx().user(email, { roles });
    const b = fx().browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const key = new SoftAuthenticator();
    const options = await b.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    const registered = await b.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: "key" } });
    assert.equal(registered.statusCode, 200, registered.body);
    return { ...user, b, credentialId: registered.json().credentialId as string, key };
  }

  /** A password-only login of an MFA user: held at the second-factor gate. */
  async function pending(u: { email: string; password: string }): Promise<Browser> {
    const b = fx().browser();
    const r = await b.login(u.email, u.password);
    assert.equal(r.json().mfaRequired, true, r.body);
    return b;
  }

  /** The token of the newest mail to `address` matching `link` (the outbox delivered first). */
  async function tokenIn(address: string, link: RegExp): Promise<string> {
    await fx().deliver();
    const hit = fx().mailTo(address).filter((m) => link.test(m.body)).at(-1);
    assert.ok(hit, `no link mailed to ${address}`);
    return (link.exec(hit.body) as RegExpExecArray)[1] as string;
  }

  /** Asks for a password reset of `address` and returns the mailed link's token. */
  async function resetToken(address: string): Promise<string> {
    const r = await fx().browser().request("POST", "/auth/password/reset/request", { body: { email: address } });
    assert.equal(r.statusCode, 202, r.body);
    return tokenIn(address, RESET_LINK);
  }

  /**
   * An outsider's sign-up for `address` (registration open), never finished: the account it made (no password) and the
   * token of the link mailed for it.
   */
  async function unfinishedSignUp(address: string): Promise<{ id: string; link: string }> {
    const asked = await fx().browser({ newDevice: true }).request("POST", "/auth/register", { body: { email: address } });
    assert.equal(asked.statusCode, 202, asked.body);
    const holder = await fx().app.accounts.users.findByIdentifier(address);
    assert.ok(holder && holder.passwordHash === null, "control: the sign-up made an account with no password");
    return { id: holder.id, link: await tokenIn(address, RESET_LINK) };
  }

  return { signedIn, withTOTP, withPasskey, pending, tokenIn, resetToken, userWith, tokenFor, unfinishedSignUp };
}

/**
 * An /auth server (authFixture) on the dialect of `fx`: SQLite in the fixture's own data dir, or a fresh PostgreSQL
 * schema with a master key from the environment (`label` names the key, see testMasterKey).
 *
 * @example
 * forEachDialect("…", (fx) => { let auth: AuthFixture; before(async () => { auth = await authFixtureOn(fx, "my-file"); }); });
 */
export async function authFixtureOn(fx: DialectFixture, label: string, env: Record<string, string> = {}): Promise<AuthFixture> {
  await fx.fresh();
  const url = fx.lastTarget().databaseURL;
  return authFixture(url ? { BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: testMasterKey(label), ...env } : env);
}

/**
 * A JSON login as a same-origin page sends it, from socket address `address` (flood control's client), with a
 * browser's user agent unless `headers` says otherwise.
 */
export function loginFrom(fx: AuthFixture, identifier: string, password: string, address = "127.0.0.1", headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return fx.server.inject({
    method: "POST", url: "/auth/login", remoteAddress: address,
    headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "application/json", "user-agent": "Mozilla/5.0", ...headers },
    payload: JSON.stringify({ identifier, password }),
  });
}
