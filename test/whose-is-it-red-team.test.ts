// Red-team round "whose is it": object-level authorization (ASVS 8.2.2, 8.2.3).
// Attacker: an insider holding one of: an ordinary account's browser session, an API token scoped to one permission
// (accounts.read, accounts.write, contain.run, audit.read, checks.run, incidents.manage, inventory.manage) for an
// account holding exactly that permission, an administrator's session still at the second-factor gate (aal 1, MFA
// enrolment due), or an administrator's stale (not fresh) session. The attacker knows the ids of another person's
// objects (an administrator's user id, token id, session id, role name, containment job id, passkey id).
// Tried: a sweep built from the API catalogue (apiRoutesOf, checked against Fastify's printed router) putting the
// administrator's ids into every :id/:role/:name route for every caller kind, asserting 403/404 (or the documented
// allowance) and that no row, audit event (other than a recorded refusal) or outbox message changed; ids of the wrong
// kind, ids differing by case or by a trailing character on the /auth routes acting on "my" sessions and passkeys
// and on DELETE /api/v1/tokens/:id; the outranking rule with a scoped administrator token.
// Held: every id route refused every non-entitled caller (403/404) with no row, outbox message or audit event written
// (beyond api.token.used and recorded refusals); accounts.read reading any account and contain.run reading any job are
// the documented allowances; the outranking rule follows the token's scopes, not the user's roles; the /auth session
// and passkey routes and DELETE /api/v1/tokens/:id are scoped by owner and exact (case-sensitive) id. No finding.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { PERMISSIONS } from "../src/accounts/roles/index.ts";
import { apiRoutesOf } from "../src/http/api/index.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { routesFromTree } from "./helpers/routes.ts";

let fx: APIFixture;
let victim: { id: string; email: string };
let victimToken: string;
let victimTokenId: string;
let victimSession: { cookie: string; csrf: string };
let victimSessionId: string;
let victimRole: string;
let victimJobId: string;
const PASSKEY_ID = "victimPasskey_AAAAAAAAAAAAAAAAAAAAAA";

before(async () => {
  fx = await openAPIFixture();
  victim = await fx.user(["admin"]);
  victimToken = await fx.token(victim.id, ["admin"]);
  victimTokenId = (await fx.app.db.db.selectFrom("api_tokens").select("id").where("user_id", "=", victim.id).executeTakeFirstOrThrow()).id;
  victimSession = await fx.session(victim.id);
  victimSessionId = (await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", victim.id).executeTakeFirstOrThrow()).id;
  victimRole = (await fx.app.accounts.roles.rolesOf(victim.id))[0] as string;
  const target = await fx.user([]);
  const job = await fx.call("POST", "/api/v1/contain/jobs", { token: victimToken, body: { levers: ["lock-accounts"], scope: { ids: [target.id] } } });
  assert.equal(job.statusCode, 202, job.body);
  victimJobId = (job.json() as { job: { id: string } }).job.id;
  await fx.finishedJob(victimToken, victimJobId);
  const now = fx.app.clock.now();
  await fx.app.db.db.insertInto("webauthn_credentials").values({ id: PASSKEY_ID, user_id: victim.id, public_key: "x", counter: 0, transports: "[]", created_at: now, last_used_at: null, name: "victim key" }).execute();
});
after(async () => {
  await fx.close();
});

/** Everything an object-level refusal must leave as it was. Refusals may be recorded; nothing else may be written. */
async function snapshot(): Promise<Record<string, string>> {
  const db = fx.app.db.db;
  const rows = {
    users: await db.selectFrom("users").select(["id", "email", "locked_at", "password_hash", "password_must_change"]).orderBy("id").execute(),
    userRoles: await db.selectFrom("user_roles").selectAll().orderBy("user_id").orderBy("role").execute(),
    roles: await db.selectFrom("roles").select("name").orderBy("name").execute(),
    rolePermissions: await db.selectFrom("role_permissions").selectAll().orderBy("role").orderBy("permission").execute(),
    sessions: await db.selectFrom("sessions").select(["id", "user_id", "aal"]).orderBy("id").execute(),
    tokens: await db.selectFrom("api_tokens").select(["id", "revoked_at"]).orderBy("id").execute(),
    jobs: await db.selectFrom("jobs").select(["id", "status"]).orderBy("id").execute(),
    passkeys: await db.selectFrom("webauthn_credentials").select(["id", "user_id"]).orderBy("id").execute(),
    outbox: await db.selectFrom("outbox_messages").select("id").orderBy("id").execute(),
    audit: (await db.selectFrom("audit_events").select(["type"]).orderBy("seq").execute()).map((e) => e.type).filter((t) => !/refused|denied|reauth|token\.used/i.test(t)),
  };
  return Object.fromEntries(Object.entries(rows).map(([k, v]) => [k, JSON.stringify(v)]));
}

/** The names of the tables whose rows differ between two snapshots. */
function changed(a: Record<string, string>, b: Record<string, string>): string[] {
  return Object.keys(a).filter((k) => a[k] !== b[k]);
}

function idFor(url: string): string {
  if (url.startsWith("/api/v1/tokens/")) return victimTokenId;
  if (url.startsWith("/api/v1/contain/jobs/")) return victimJobId;
  return victim.id;
}
function concrete(url: string): string {
  return url.replace(":id", idFor(url)).replace(":role", victimRole).replace(":name", victimRole);
}
function bodyFor(method: string, url: string): unknown {
  if (method === "GET" || method === "DELETE") return undefined;
  if (url.endsWith("/email")) return { email: "taken-over@example.org" };
  if (url.endsWith("/lock")) return { reason: "whose is it" };
  return undefined;
}

type CallerKind = { name: string; permission: string | null; creds: { token?: string; session?: { cookie: string; csrf: string } } };

/** Documented allowances: a reader may read any account; every contain.run holder sees every job (shared incident work). */
function allowed(kind: CallerKind, method: string, url: string): boolean {
  if (method !== "GET") return false;
  if (url === "/api/v1/users/:id") return kind.permission === "accounts.read";
  if (url === "/api/v1/contain/jobs/:id") return kind.permission === "contain.run";
  return false;
}

describe("whose is it: object-level authorization sweep", () => {
  it("attack: every caller kind puts an administrator's ids into every /api/v1 route that takes one — 403/404 and nothing changed (ASVS 8.2.2, 8.2.3)", async () => {
    const routed = new Set(routesFromTree(fx.server.printRoutes({ commonPrefix: false })).flatMap((r) => r.methods.map((m) => `${m} ${r.url}`)));
    const routes = apiRoutesOf(fx.server).filter((r) => r.url.includes(":") && r.method !== "HEAD");
    assert.ok(routes.length >= 12, `expected the id-taking routes, found ${routes.length}`);
    for (const r of routes) assert.ok(routed.has(`${r.method} ${r.url}`), `${r.method} ${r.url} is in the catalogue but not routed`);
    const kinds: CallerKind[] = [];
    const ordinary = await fx.user([]);
    kinds.push({ name: "ordinary session", permission: null, creds: { session: await fx.session(ordinary.id) } });
    for (const p of PERMISSIONS.filter((p) => p !== "admin")) {
      const u = await fx.user([p]);
      kinds.push({ name: `${p} token`, permission: p, creds: { token: await fx.token(u.id, [p]) } });
    }
    const problems: string[] = [];
    for (const kind of kinds) {
      for (const route of routes) {
        const before = await snapshot();
        const res = await fx.call(route.method, concrete(route.url), { ...kind.creds, body: bodyFor(route.method, route.url) });
        const ok = allowed(kind, route.method, route.url);
        // A contain.run holder may read every job (GET /contain/jobs/:id), so "it has ended" (409) tells it nothing new.
        const ended = kind.permission === "contain.run" && route.url.endsWith("/cancel") && res.statusCode === 409;
        if (ok ? res.statusCode !== 200 : res.statusCode !== 403 && res.statusCode !== 404 && !ended) {
          problems.push(`${kind.name}: ${route.method} ${route.url} answered ${res.statusCode} ${res.body.slice(0, 160)}`);
        }
        const diff = changed(before, await snapshot());
        if (diff.length) problems.push(`${kind.name}: ${route.method} ${route.url} (${res.statusCode}) changed ${diff.join(", ")}`);
      }
    }
    assert.deepEqual(problems, [], "object-level refusals that did not hold");
  });

  it("attack: an administrator's token scoped to accounts.write acts on accounts holding admin, audit.read or inventory.manage — outranked 403, nothing changed (ASVS 8.2.2, 8.3.1)", async () => {
    const admin = await fx.user(["admin"]);
    const scoped = await fx.token(admin.id, ["accounts.write"]);
    for (const held of ["admin", "audit.read", "inventory.manage"]) {
      const target = await fx.user([held]);
      await fx.session(target.id);
      for (const action of ["lock", "unlock", "require-password-change", "throttles/clear", "tokens/revoke", "sessions/revoke", "email"]) {
        const before = await snapshot();
        const res = await fx.call("POST", `/api/v1/users/${target.id}/${action}`, { token: scoped, body: action === "email" ? { email: `moved-${held}@example.org` } : undefined });
        assert.equal(res.statusCode, 403, `${action} on a ${held} holder with an accounts.write token answered ${res.statusCode}: ${res.body}`);
        assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_API_OUTRANKED", res.body);
        assert.deepEqual(changed(before, await snapshot()), [], `${action} on a ${held} holder changed stored state`);
      }
    }
  });

  it("attack: an administrator's session at the MFA gate (aal 1) or stale puts another administrator's ids into the id routes — refused, nothing changed (ASVS 6.3.3, 7.5.3, 8.2.2)", async () => {
    const admin = await fx.user(["admin"]);
    const pending = await fx.session(admin.id, { aal: 1 });
    const stale = await fx.session(admin.id);
    const staleId = (await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", admin.id).where("aal", "=", 2).executeTakeFirstOrThrow()).id;
    await fx.app.db.db.updateTable("sessions").set({ created_at: fx.app.clock.now() - 60 * 60_000 }).where("id", "=", staleId).execute();
    for (const route of apiRoutesOf(fx.server).filter((r) => r.url.includes(":") && r.method !== "HEAD")) {
      const before = await snapshot();
      const res = await fx.call(route.method, concrete(route.url), { session: pending, body: bodyFor(route.method, route.url) });
      assert.equal(res.statusCode, 403, `pending session: ${route.method} ${route.url} answered ${res.statusCode}: ${res.body}`);
      assert.deepEqual(changed(before, await snapshot()), [], `pending session: ${route.method} ${route.url} changed stored state`);
      if (route.access === "admin" || route.url.endsWith("/email") || route.url.endsWith("/cancel") || route.url.endsWith("/undo")) {
        const b2 = await snapshot();
        const r2 = await fx.call(route.method, concrete(route.url), { session: stale, body: bodyFor(route.method, route.url) });
        assert.equal(r2.statusCode, 403, `stale session: ${route.method} ${route.url} answered ${r2.statusCode}: ${r2.body}`);
        assert.equal((r2.json() as { error: { code: string } }).error.code, "BULWARK_ERR_REAUTH_REQUIRED", r2.body);
        assert.deepEqual(changed(b2, await snapshot()), [], `stale session: ${route.method} ${route.url} changed stored state`);
      }
    }
    for (const [url, who] of [[`/auth/sessions/${victimSessionId}`, "pending"], [`/auth/mfa/webauthn/${PASSKEY_ID}`, "pending"]] as const) {
      const before = await snapshot();
      const res = await fx.call("DELETE", url, { session: pending });
      assert.ok(res.statusCode === 403 || res.statusCode === 404 || res.statusCode === 401, `${who}: DELETE ${url} answered ${res.statusCode}: ${res.body}`);
      assert.deepEqual(changed(before, await snapshot()), [], `${who}: DELETE ${url} changed stored state`);
    }
  });

  it("attack: an ordinary fresh session ends another account's session and removes its passkey by id, by a case or trailing-character variant, or by an id of the wrong kind — 404, nothing changed (ASVS 8.2.2, 7.5.2)", async () => {
    const attacker = await fx.user([]);
    const session = await fx.session(attacker.id);
    const attackerToken = await fx.token(attacker.id, ["accounts.read"]);
    const attackerTokenId = (await fx.app.db.db.selectFrom("api_tokens").select("id").where("user_id", "=", attacker.id).executeTakeFirstOrThrow()).id;
    const flip = (s: string) => s.replace(/[a-z]/, (c) => c.toUpperCase());
    const sessionIds = [victimSessionId, victimSessionId.toUpperCase(), flip(victimSessionId), `${victimSessionId}x`, victimTokenId, victim.id, victimJobId, attackerTokenId];
    for (const id of sessionIds) {
      const before = await snapshot();
      const res = await fx.call("DELETE", `/auth/sessions/${encodeURIComponent(id)}`, { session });
      assert.equal(res.statusCode, 404, `DELETE /auth/sessions/${id} answered ${res.statusCode}: ${res.body}`);
      assert.deepEqual(changed(before, await snapshot()), [], `DELETE /auth/sessions/${id} changed stored state`);
    }
    for (const id of [PASSKEY_ID, PASSKEY_ID.toLowerCase(), `${PASSKEY_ID}x`, `${PASSKEY_ID} `, victimSessionId]) {
      const before = await snapshot();
      const res = await fx.call("DELETE", `/auth/mfa/webauthn/${encodeURIComponent(id)}`, { session });
      assert.equal(res.statusCode, 404, `DELETE /auth/mfa/webauthn/${id} answered ${res.statusCode}: ${res.body}`);
      assert.deepEqual(changed(before, await snapshot()), [], `DELETE /auth/mfa/webauthn/${id} changed stored state`);
    }
    // The API token routes: another's token id, its variants, and ids of other kinds; by session and by token.
    for (const creds of [{ session }, { token: attackerToken }]) {
      for (const id of [victimTokenId, victimTokenId.toUpperCase(), flip(victimTokenId), `${victimTokenId}x`, victimSessionId, victim.id, victimJobId]) {
        const before = await snapshot();
        const res = await fx.call("DELETE", `/api/v1/tokens/${encodeURIComponent(id)}`, creds);
        assert.ok(res.statusCode === 404 || res.statusCode === 400, `DELETE /api/v1/tokens/${id} answered ${res.statusCode}: ${res.body}`);
        assert.deepEqual(changed(before, await snapshot()), [], `DELETE /api/v1/tokens/${id} changed stored state`);
      }
    }
    // The victim's session and token still work.
    assert.equal((await fx.call("GET", "/api/v1/tokens", { session: victimSession })).statusCode, 200);
    assert.equal((await fx.call("GET", "/api/v1/tokens", { token: victimToken })).statusCode, 200);
  });

  it("attack: an accounts.write or contain.run token names an administrator by an id differing in case or by a trailing character — 404, nothing changed (ASVS 8.2.2)", async () => {
    const w = await fx.user(["accounts.write"]);
    const wt = await fx.token(w.id, ["accounts.write"]);
    const c = await fx.user(["contain.run"]);
    const ct = await fx.token(c.id, ["contain.run"]);
    for (const id of [victim.id.toUpperCase(), `${victim.id}x`, `${victim.id}_`]) {
      const before = await snapshot();
      const res = await fx.call("POST", `/api/v1/users/${id}/lock`, { token: wt });
      assert.equal(res.statusCode, 404, `lock ${id} answered ${res.statusCode}: ${res.body}`);
      assert.deepEqual(changed(before, await snapshot()), [], `lock ${id} changed stored state`);
    }
    for (const id of [victimJobId.toUpperCase(), `${victimJobId}x`]) {
      for (const action of ["cancel", "undo"]) {
        const before = await snapshot();
        const res = await fx.call("POST", `/api/v1/contain/jobs/${id}/${action}`, { token: ct });
        assert.equal(res.statusCode, 404, `${action} ${id} answered ${res.statusCode}: ${res.body}`);
        assert.deepEqual(changed(before, await snapshot()), [], `${action} ${id} changed stored state`);
      }
    }
  });
});
