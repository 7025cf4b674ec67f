// Every /api/v1 route, walked: each declares its access (a route without one fails this test and the server's
// boot), and each refuses, as attacks that must fail, an anonymous caller (401), a user whose roles lack the
// permission (403), and a token whose scopes lack it although its user holds it (403). ASVS 8.1.1, 8.2.1,
// 8.3.1 (authorization enforced at the service layer, deny by default), 8.2.2 (no privilege escalation).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyRequest } from "fastify";
import { isPermission, PERMISSIONS } from "../src/accounts/roles/index.ts";
import { apiRoutesOf, type APIRoute } from "../src/http/api/index.ts";
import { accessGuard } from "../src/http/api/guard.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { routesFromTree } from "./helpers/routes.ts";

let fx: APIFixture;
before(async () => {
  fx = await openAPIFixture();
});
after(async () => {
  await fx.close();
});

// Values for path parameters: well-formed but naming nothing, so a refused request cannot have touched a row.
function concrete(url: string): string {
  return url.replace(":id", "usr_aaaaaaaaaaaaaaaaaaaaaaaaaa").replace(":role", "auditor").replace(":name", "auditor");
}

// A body that passes each route's schema, so what is tested is the guard and not the validator.
function bodyFor(route: APIRoute): unknown {
  if (route.method === "GET" || route.method === "HEAD" || route.method === "DELETE") return undefined;
  if (route.url === "/api/v1/users") return { email: "walk@example.org" };
  if (route.url === "/api/v1/roles") return { name: "walked", permissions: ["accounts.read"] };
  if (route.url === "/api/v1/tokens") return { name: "walk", scopes: ["accounts.read"] };
  if (route.url === "/api/v1/contain/jobs") return { levers: ["lock-accounts"], scope: { all: true }, dryRun: false };
  return {};
}

describe("/api/v1 route walk", () => {
  it("registers the routes the brief lists, every one with a declared access", () => {
    const routes = apiRoutesOf(fx.server);
    assert.ok(routes.length >= 20, `expected the full API, found ${routes.length} routes`);
    for (const r of routes) assert.ok(r.access !== undefined, `${r.method} ${r.url} declares no access`);
    for (const r of routes) assert.ok(r.access === "authenticated" || r.access === "public" || isPermission(r.access as string), `${r.method} ${r.url}: unknown access ${String(r.access)}`);
    const keys = new Set(routes.map((r) => `${r.method} ${r.url}`));
    for (const expected of [
      "GET /api/v1/users", "GET /api/v1/users/:id", "POST /api/v1/users", "POST /api/v1/users/:id/lock", "POST /api/v1/users/:id/unlock",
      "POST /api/v1/users/:id/require-password-change", "POST /api/v1/users/:id/sessions/revoke", "POST /api/v1/users/:id/throttles/clear", "GET /api/v1/roles", "POST /api/v1/roles",
      "DELETE /api/v1/roles/:name", "POST /api/v1/users/:id/roles/:role", "DELETE /api/v1/users/:id/roles/:role", "GET /api/v1/tokens",
      "POST /api/v1/tokens", "DELETE /api/v1/tokens/:id", "DELETE /api/v1/tokens", "POST /api/v1/contain/jobs", "GET /api/v1/contain/jobs",
      "GET /api/v1/contain/jobs/:id", "POST /api/v1/contain/jobs/:id/undo", "GET /api/v1/audit/events",
    ]) assert.ok(keys.has(expected), `missing route ${expected}`);
  });

  it("finds no /api/v1 route in Fastify's router that escaped the access catalogue", () => {
    const tree = routesFromTree(fx.server.printRoutes({ commonPrefix: false }));
    const api = tree.filter((r) => r.url.startsWith("/api/v1"));
    assert.ok(api.length >= 10, "the printed router lists the API routes");
    const known = new Map(apiRoutesOf(fx.server).map((r) => [`${r.method} ${r.url}`, r.access]));
    for (const r of api) for (const method of r.methods) {
      assert.ok(known.has(`${method} ${r.url}`), `${method} ${r.url} is routed but was not registered through the API plugin`);
      assert.notEqual(known.get(`${method} ${r.url}`), undefined, `${method} ${r.url} declares no access`);
    }
  });

  it("fails closed: the guard refuses a route that declares no access, even to an anonymous caller", async () => {
    const guard = accessGuard(fx.app);
    const request = { method: "GET", url: "/api/v1/x", routeOptions: { config: {}, url: "/api/v1/x" }, auth: null } as unknown as FastifyRequest;
    await assert.rejects(guard(request), { code: "BULWARK_ERR_API_NO_ACCESS_DECLARED" });
  });

  it("refuses every route to an anonymous caller with 401 (ASVS 8.1.1)", async () => {
    for (const route of apiRoutesOf(fx.server)) {
      if (route.access === "public") continue;
      const res = await fx.call(route.method, concrete(route.url), { body: bodyFor(route) });
      assert.equal(res.statusCode, 401, `${route.method} ${route.url} answered ${res.statusCode} without credentials`);
    }
  });

  it("refuses every permission route to a user whose roles lack the permission, even with a broad token (403)", async () => {
    const nobody = await fx.user([]);
    // The token claims every scope: scopes never add to what the user's roles grant.
    const token = await fx.token(nobody.id, [...PERMISSIONS]);
    const users = await fx.app.accounts.users.count();
    for (const route of apiRoutesOf(fx.server)) {
      if (route.access === "public" || route.access === "authenticated") continue;
      const res = await fx.call(route.method, concrete(route.url), { token, body: bodyFor(route) });
      assert.equal(res.statusCode, 403, `${route.method} ${route.url} answered ${res.statusCode} to a user without ${route.access}`);
    }
    assert.equal(await fx.app.accounts.users.count(), users, "no account was created by a refused request");
    assert.equal((await fx.app.accounts.roles.list()).some((r) => r.name === "walked"), false, "no role was created by a refused request");
  });

  it("refuses every permission route to a token whose scopes lack the permission although its user holds it (403)", async () => {
    const admin = await fx.user(["admin"]);
    for (const route of apiRoutesOf(fx.server)) {
      if (route.access === "public" || route.access === "authenticated") continue;
      // A scope that is not the one needed (and not admin, which implies all).
      const other = PERMISSIONS.find((p) => p !== route.access && p !== "admin") as string;
      const token = await fx.token(admin.id, [other]);
      const res = await fx.call(route.method, concrete(route.url), { token, body: bodyFor(route) });
      assert.equal(res.statusCode, 403, `${route.method} ${route.url} answered ${res.statusCode} to a token scoped ${other}`);
    }
    const jobs = await fx.app.accounts.jobs.list({ kind: "contain" });
    assert.equal(jobs.length, 0, "no containment job was created by a refused request");
  });

  it("admits each permission route for a token scoped to exactly that permission", async () => {
    const admin = await fx.user(["admin"]);
    for (const route of apiRoutesOf(fx.server)) {
      if (route.method !== "GET" || route.url.includes(":")) continue;
      const token = await fx.token(admin.id, [route.access === "authenticated" ? "accounts.read" : (route.access as string)]);
      const res = await fx.call(route.method, route.url, { token });
      assert.equal(res.statusCode, 200, `${route.method} ${route.url} answered ${res.statusCode}: ${res.body.slice(0, 200)}`);
      assert.equal(res.headers["cache-control"], "no-store");
    }
  });

  it("applies a role revocation on the very next request made with an existing token (ASVS 8.3.2)", async () => {
    const user = await fx.user(["accounts.read"]);
    const token = await fx.token(user.id, ["accounts.read"]);
    assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { token })).statusCode, 200);
    for (const role of await fx.app.accounts.roles.rolesOf(user.id)) await fx.app.accounts.roles.revoke(user.id, role, "test");
    assert.equal((await fx.call("GET", "/api/v1/users?limit=1", { token })).statusCode, 403);
  });

  it("refuses a tampered, revoked or made-up bearer token with 401", async () => {
    const admin = await fx.user(["admin"]);
    const token = await fx.token(admin.id, ["admin"]);
    const last = token.at(-1) === "a" ? "b" : "a";
    for (const bad of [`${token.slice(0, -1)}${last}`, "bwk_tok_aaaaaaaaaaaaaaaaaaaaaaaaaa_" + "a".repeat(43), "not-a-token"]) {
      const res = await fx.call("GET", "/api/v1/users", { token: bad });
      assert.equal(res.statusCode, 401, `token ${bad.slice(0, 12)}… was accepted`);
    }
    const [info] = await fx.app.accounts.tokens.list(admin.id);
    await fx.app.accounts.tokens.revoke(admin.id, (info as { id: string }).id);
    assert.equal((await fx.call("GET", "/api/v1/users", { token })).statusCode, 401);
  });
});
