// ASVS 6.1.3 / 6.3.4: every authentication pathway is documented (docs/asvs.md § "Authentication pathways")
// and there is no undocumented one. The router is walked, not a hand-kept list: any route that answers an
// anonymous caller, or any /auth route that serves an API token, must be one the documentation names.
// Attacks that must fail: an API token (even an `admin`-scoped one) used as a side door around the
// browser-session controls (MFA step-up, freshness, current password) to change how an account signs in.
// ASVS 8.2.3 (read side): no response exposes a password hash, a TOTP secret or a token secret.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { PERMISSIONS } from "../src/accounts/roles/index.ts";
import { GOOD_PASSWORD, HOST, totpCode } from "../src/http/auth/test-client.ts";
import { routesFromTree } from "./helpers/routes.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

/** "METHOD /path" of every route in Fastify's router (HEAD twins left out). */
function routedPaths(tree: string): string[] {
  return routesFromTree(tree).flatMap((r) => r.methods.filter((m) => m !== "HEAD").map((m) => `${m} ${r.url}`));
}

/** Path parameters filled with well-formed ids that name nothing, so a request cannot touch a real row. */
function concrete(url: string): string {
  return url.replace(/:id\b/g, "ses_aaaaaaaaaaaaaaaaaaaaaaaaaa").replace(/:role\b/g, "auditor").replace(/:name\b/g, "auditor");
}

/** The routes anyone may call without credentials, as documented in docs/asvs.md and docs/http-auth.md. */
const DOCUMENTED_PUBLIC = new Set([
  "GET /healthz",
  "POST /auth/login",
  "GET /auth/session",
  "POST /auth/password/reset/request",
  "POST /auth/password/reset/webauthn/options",
  "POST /auth/password/reset/complete",
  "POST /auth/register",
  "POST /auth/email/confirm",
  // Which account a confirmation link moves (its masked current address), for the page before its button; spends nothing.
  "POST /confirm-email/account",
  // The pages the mailed links open, and their script and stylesheet: static, they act only through the
  // public routes above (docs/http-auth.md § The link pages).
  "GET /reset-password",
  "GET /confirm-email",
  "GET /assets/bulwark-pages.js",
  "GET /assets/bulwark-pages.css",
]);

/** Refusals that mean "you are not signed in (the right way)": the guard's, the API guard's and requireSession's. */
const UNAUTHENTICATED = new Set(["BULWARK_ERR_AUTH_REQUIRED", "BULWARK_ERR_API_UNAUTHENTICATED", "BULWARK_ERR_SESSION_REQUIRED"]);

describe("authentication pathways (ASVS 6.1.3, 6.3.4)", () => {
  it("finds no undocumented pathway: every route an anonymous caller reaches is a documented public one", async () => {
    const routes = routedPaths(fx.server.printRoutes({ commonPrefix: false }));
    assert.ok(routes.length >= 40, `the walk sees the whole router (${routes.length} routes)`);
    const reached: string[] = [];
    for (const route of routes) {
      const [method, url] = route.split(" ") as [string, string];
      const res = await fx.server.inject({
        method: method as "GET", url: concrete(url), headers: { host: HOST, "content-type": "application/json" },
        ...(method === "GET" || method === "DELETE" ? {} : { payload: "{}" }),
      });
      const code = res.statusCode === 401 ? (res.json() as { error?: { code?: string } }).error?.code : undefined;
      if (!(res.statusCode === 401 && code !== undefined && UNAUTHENTICATED.has(code))) reached.push(route);
      assert.ok(res.statusCode < 500, `${route} answered ${res.statusCode}: ${res.body}`);
    }
    assert.deepEqual(reached.filter((r) => !DOCUMENTED_PUBLIC.has(r)), [], "routes reachable without credentials that docs/asvs.md does not list");
    for (const r of DOCUMENTED_PUBLIC) assert.ok(routes.includes(r), `documented public route ${r} exists`);
  });

  it("attack: an admin-scoped API token cannot stand in for a browser session on any /auth route that needs one", async () => {
    const admin = await fx.user("token-walk@example.org", { roles: ["admin"] });
    const { token } = await fx.app.accounts.tokens.create(admin.id, { name: "everything", scopes: [...PERMISSIONS] });
    const routes = routedPaths(fx.server.printRoutes({ commonPrefix: false })).filter((r) => r.split(" ")[1]?.startsWith("/auth/"));
    const served: string[] = [];
    let walked = 0;
    for (const route of routes) {
      if (DOCUMENTED_PUBLIC.has(route)) continue;
      const [method, url] = route.split(" ") as [string, string];
      const res = await fx.server.inject({
        method: method as "GET", url: concrete(url),
        headers: { host: HOST, authorization: `Bearer ${token}`, "content-type": "application/json" },
        ...(method === "GET" || method === "DELETE" ? {} : { payload: "{}" }),
      });
      walked++;
      if (res.statusCode < 400) served.push(route);
    }
    assert.ok(walked >= 15, `walked ${walked} session-only /auth routes`);
    assert.deepEqual(served, [], "browser-only /auth routes served to a bearer token");
  });

  it("attack: a stolen token of a user with MFA changes no factor, no password and ends no session (token ≠ session)", async () => {
    const ana = await fx.user("token-sidedoor@example.org", { roles: ["admin"] });
    const { secret } = await fx.app.accounts.mfa.totp.begin(ana.id, ana.email);
    assert.equal(await fx.app.accounts.mfa.totp.confirm(ana.id, totpCode(secret, fx.clock.now())), true);
    fx.clock.advance(30_000);
    const laptop = fx.browser();
    laptop.cookie = (await fx.app.accounts.sessions.createSession(ana.id, { aal: 2 })).token;
    const { token } = await fx.app.accounts.tokens.create(ana.id, { name: "ci", scopes: [...PERMISSIONS] });
    const bearer = { authorization: `Bearer ${token}` };
    const thief = fx.browser();
    const attempts: Array<[method: "POST" | "DELETE", url: string, body?: unknown]> = [
      ["DELETE", "/auth/mfa/totp"],
      ["POST", "/auth/mfa/totp"],
      ["POST", "/auth/mfa/recovery-codes"],
      ["DELETE", "/auth/sessions"],
      ["POST", "/auth/password/change", { currentPassword: ana.password, newPassword: `${GOOD_PASSWORD} stolen` }],
      ["POST", "/auth/reauthenticate", { password: ana.password, totp: totpCode(secret, fx.clock.now()) }],
      ["POST", "/auth/mfa/verify", { totp: totpCode(secret, fx.clock.now()) }],
    ];
    for (const [method, url, body] of attempts) {
      const res = await thief.request(method, url, { bare: true, headers: bearer, ...(body === undefined ? {} : { body }) });
      assert.equal(res.statusCode, 401, `${method} ${url}: ${res.body}`);
      assert.equal(res.json().error.code, "BULWARK_ERR_SESSION_REQUIRED", `${method} ${url}`);
    }
    assert.equal(await fx.app.accounts.mfa.hasMfa(ana.id), true, "the authenticator is still enrolled");
    assert.equal((await laptop.request("GET", "/auth/session")).json().authenticated, true, "the owner's session lives");
    assert.equal((await fx.browser().login(ana.email, ana.password)).statusCode, 200, "the password is unchanged");
    // The same token does keep working where the documentation says it works: /api/v1 within its scopes.
    const api = await thief.request("GET", `/api/v1/users/${ana.id}`, { bare: true, headers: bearer });
    assert.equal(api.statusCode, 200, api.body);
  });
});

describe("no response exposes a stored secret (ASVS 8.2.3 read side)", () => {
  it("attack: an accounts.read caller and the owner never see a password hash, TOTP secret or token secret", async () => {
    const ana = await fx.user("fields@example.org");
    const { secret } = await fx.app.accounts.mfa.totp.begin(ana.id, ana.email);
    assert.equal(await fx.app.accounts.mfa.totp.confirm(ana.id, totpCode(secret, fx.clock.now())), true);
    fx.clock.advance(30_000);
    const codes = await fx.app.accounts.mfa.recovery.generate(ana.id);
    const own = await fx.app.accounts.tokens.create(ana.id, { name: "own", scopes: ["accounts.read"] });
    await fx.app.accounts.roles.create({ name: "fields-reader", permissions: ["accounts.read"] }, "test");
    const reader = await fx.user("reader@example.org", { roles: ["fields-reader"] });
    const { token } = await fx.app.accounts.tokens.create(reader.id, { name: "read", scopes: ["accounts.read"] });
    const row = await fx.app.db.db.selectFrom("users").select(["password_hash"]).where("id", "=", ana.id).executeTakeFirstOrThrow();
    const hash = row.password_hash as string;
    assert.match(hash, /^\$argon2id\$/);
    const ownerSession = fx.browser();
    ownerSession.cookie = (await fx.app.accounts.sessions.createSession(ana.id, { aal: 2 })).token;
    const responses = [
      await fx.browser().request("GET", `/api/v1/users/${ana.id}`, { bare: true, headers: { authorization: `Bearer ${token}` } }),
      await fx.browser().request("GET", `/api/v1/users?q=fields`, { bare: true, headers: { authorization: `Bearer ${token}` } }),
      await ownerSession.request("GET", "/auth/mfa"),
      await ownerSession.request("GET", "/auth/session"),
      await ownerSession.request("GET", "/api/v1/tokens"),
    ];
    for (const res of responses) assert.equal(res.statusCode, 200, res.body);
    const bodies = responses.map((r) => r.body);
    assert.ok(bodies[4]?.includes(own.info.id), "the owner sees the token's row");
    assert.ok(bodies[0]?.includes(ana.id) && bodies[1]?.includes(ana.id), "the reader sees the account");
    const secretSecret = own.token.split("_").at(-1) as string;
    for (const body of bodies) {
      assert.ok(!body.includes(hash) && !body.includes("$argon2"), `a password hash leaked: ${body}`);
      assert.ok(!body.includes(secret), `the TOTP secret leaked: ${body}`);
      assert.ok(!body.includes(secretSecret), `a token secret leaked: ${body}`);
      for (const code of codes) assert.ok(!body.includes(code), `a recovery code leaked: ${body}`);
      assert.doesNotMatch(body, /password_?hash|secret_ct|secret_hash|code_hash/i, "no stored-secret field at all");
    }
  });
});
