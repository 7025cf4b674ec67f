// Red team, round "new code twenty-four": today's fixes (commit 53e755cd and its neighbours) each add a rule judged
// "by the configuration in force" — a session's absolute expiry bounded by the lifetime in force, API tokens held
// while the MFA policy requires a factor of an owner who has none, link mails sent on the public URL in force, mail
// about an account sent only while it still has the address. The attacker holds what was handed out before the rule
// changed (a cookie, an API token, a half-begun enrolment) and looks for a reader of the same state that was left out.
// Tried: every reader of sessions.expires_at outside the session manager (totp.ts sessionStands, containment scope,
// revoke-sessions counts); a token whose owner becomes due by a role grant (not by a policy change) reaching /api/v1
// and /auth; the link-origin rewrite against user-controlled text (none reaches a link mail's body: the composers put
// only configuration and the token in it); the account_id check against case differences (both sides lower-cased);
// requeued notices and the aged share (priority 20 stays aged-eligible); the closed sign-up refusal (same reads for
// an unfinished sign-up, another account and none).
// Held (kept as attacks): a token minted by an auditor (nothing administrative) without a factor is held the moment an administrative role
// is granted, on /api/v1 and /auth alike, and served again once a factor is enrolled.
// Found (fixed since: sessionStands judges a session by the lifetimes in force, absolute and idle, as the session
// manager does):
// - a first authenticator-app enrolment begun in a session that the shortened BULWARK_SESSION_ABSOLUTE_MINUTES has
//   ended is still listed by GET /auth/mfa as waiting (totpEnrolment): totp.ts sessionStands judges the session by the
//   expires_at written when it was issued, not by the lifetime in force that validate now applies (toSession), so the
//   owner is shown an enrolment "in progress" that no session can confirm — exactly what sessionStands exists to prevent.
// Loopback and temp dirs only.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { buildServer } from "../src/http/server.ts";
import { authFixture, Browser, GOOD_PASSWORD, HOST, ORIGIN, totpCode } from "../src/http/auth/test-client.ts";
import { ManualClock } from "../src/lib/clock.ts";

type Res = LightMyRequestResponse;
const MINUTE = 60_000;
const show = (r: Res): string => `${r.statusCode} ${r.body.slice(0, 300)}`;
const HELD = "BULWARK_ERR_TOKEN_OWNER_MFA_REQUIRED";
const codeOf = (r: Res): string | undefined => (r.json() as { error?: { code: string } }).error?.code;

/** One data dir and clock that outlive restarts; `start(env)` (re)opens the app with a configuration. */
async function restartable(t: TestContext): Promise<{ clock: ManualClock; start(env?: Record<string, string>): Promise<{ app: OpenedApp; server: FastifyInstance }> }> {
  const root = mkdtempSync(join(tmpdir(), "bulwark-nc24-"));
  const clock = new ManualClock(Date.UTC(2026, 10, 2, 9));
  let open: { app: OpenedApp; server: FastifyInstance } | null = null;
  let starts = 0;
  const stop = async (): Promise<void> => {
    if (!open) return;
    await open.server.close();
    await open.app.close();
    open = null;
  };
  t.after(async () => {
    await stop();
    rmSync(root, { recursive: true, force: true });
  });
  const base = {
    BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
    BULWARK_MAIL_REQUESTS_PER_HOUR: "100000", BULWARK_MAX_CLOCK_SKEW_SECONDS: "0", BULWARK_PUBLIC_URL: ORIGIN,
  };
  return {
    clock,
    async start(env = {}) {
      await stop();
      const app = await openApp({ env: { ...base, ...env }, mode: starts++ === 0 ? "init" : "migrate", clock });
      const server = await buildServer(app);
      open = { app, server };
      return open;
    },
  };
}

describe("red team: new code twenty-four", () => {
  it("attack: a first authenticator-app enrolment begun in a session the shortened BULWARK_SESSION_ABSOLUTE_MINUTES has ended — GET /auth/mfa lists no enrolment waiting that no session can confirm (ASVS 7.3.2, 6.3.7) (was: listed as waiting, judged by the expiry written at issue)", async (t) => {
    const s = await restartable(t);
    // Before: a 12-hour absolute lifetime, a long idle limit and re-authentication window so one session can begin
    // an enrolment 55 minutes after its sign-in.
    const loose = { BULWARK_SESSION_IDLE_MINUTES: "600", BULWARK_REAUTH_MINUTES: "120" };
    let node = await s.start(loose);
    const user = await node.app.accounts.users.create({ email: "owner24@example.org", passwordHash: await node.app.accounts.passwords.hash(GOOD_PASSWORD), passwordScheme: "argon2id" });
    const first = new Browser(node.server);
    assert.equal((await first.login(user.email, GOOD_PASSWORD)).statusCode, 200);
    s.clock.advance(55 * MINUTE);
    const begun = await first.request("POST", "/auth/mfa/totp", { csrf: true });
    assert.equal(begun.statusCode, 200, `control: the enrolment begins: ${show(begun)}`);
    const cookie = first.cookie;

    // The operator shortens the absolute lifetime to 60 minutes; 10 minutes later the first session is past it.
    node = await s.start({ BULWARK_SESSION_ABSOLUTE_MINUTES: "60" });
    s.clock.advance(10 * MINUTE);
    // Not presented (validate would delete its row): the thief who began the enrolment simply stops; the row waits for
    // the maintenance purge. Under the lifetime in force it ended 5 minutes ago (signed in 65 minutes ago).
    assert.ok(cookie !== null, "control: the first session had a cookie");
    const lapsed = await node.app.db.db.selectFrom("sessions").select(["created_at", "expires_at"]).where("user_id", "=", user.id).executeTakeFirst();
    assert.ok(lapsed !== undefined && s.clock.now() >= Number(lapsed.created_at) + 60 * MINUTE, "control: the first session is past the lifetime in force");

    // The owner signs in again and looks at the factors (the enrolment's own 30 minutes have not run out).
    const second = new Browser(node.server);
    assert.equal((await second.login(user.email, GOOD_PASSWORD)).statusCode, 200);
    const factors = await second.request("GET", "/auth/mfa");
    assert.equal(factors.statusCode, 200, show(factors));
    const listed = factors.json() as { totpEnrolment?: unknown };
    assert.equal(listed.totpEnrolment, undefined,
      `GET /auth/mfa lists an enrolment (${JSON.stringify(listed.totpEnrolment)}) whose session ended 5 minutes ago under BULWARK_SESSION_ABSOLUTE_MINUTES=60: ` +
      "totp.ts sessionStands still judges it by the 12-hour expires_at written at sign-in, not by the lifetime in force (session-manager toSession)");
  });

  it("attack: an auditor's token with no factor behind it is held the moment an administrative role is granted — /api/v1 and /auth alike — and served again once a factor is enrolled (ASVS 6.3.3, 8.2.1)", async (t) => {
    const fx = await authFixture();
    t.after(() => fx.close());
    // An auditor (accounts.read, audit.read: nothing administrative) is not due to enrol under the default policy.
    const user = await fx.user("plain24@example.org", { roles: ["auditor"] });
    const { token } = await fx.app.accounts.tokens.create(user.id, { name: "script", scopes: ["accounts.read"] });
    const bearer = (method: "GET", url: string): Promise<Res> => fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${token}` } });
    const before = await bearer("GET", "/api/v1/users");
    assert.equal(before.statusCode, 200, `control: an auditor's token is served under administrative: ${show(before)}`);

    await fx.app.accounts.roles.grant(user.id, "admin", "test");
    for (const url of ["/api/v1/tokens", "/api/v1/users", "/auth/sessions", "/auth/mfa"]) {
      const r = await bearer("GET", url);
      assert.equal(r.statusCode, 403, `${url} served a token whose owner became due to enrol a factor by a role grant: ${show(r)}`);
      if (url === "/api/v1/tokens" || url === "/auth/sessions") assert.equal(codeOf(r), HELD, `${url}: ${show(r)}`);
    }

    const { secret } = await fx.app.accounts.mfa.totp.begin(user.id, user.email);
    assert.equal(await fx.app.accounts.mfa.totp.confirm(user.id, totpCode(secret, fx.clock.now())), true);
    const after = await bearer("GET", "/api/v1/tokens");
    assert.equal(after.statusCode, 200, `the hold lifts once the owner holds a factor: ${show(after)}`);
  });
});
