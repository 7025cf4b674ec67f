// Hardening of /api/v1 input, on SQLite and PostgreSQL, written as attacks that must fail:
// - a field a route does not declare is a 400 naming it, also on routes that take no body or query string at
//   all (`{"dryRun": true}` sent to an undo used to run a real undo; `{"id": …}` sent to DELETE /tokens
//   revoked every token of the caller; `?roles=admin` on create-user was ignored);
// - the 50-live-token bound holds under 100 concurrent mints (it was count-then-insert: 101 on PostgreSQL);
// - `expiresAt: ""` is refused, not coerced to null (a token that never expires); null still means never;
// - a control character (NUL above all: 500 on PostgreSQL) in any string field is a 400 naming the field,
//   while real-world text (accents, CJK, emoji, plus-addressing) still passes;
// - a future route whose string field admits control characters stops the server from booting.
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { RouteOptions } from "fastify";
import { text } from "../src/http/api/common.ts";
import { apiRoutesOf, type APIRoute } from "../src/http/api/index.ts";
import { assertTextFieldsSafe } from "../src/http/api/strict-fields.ts";
import { MAX_LIVE_TOKENS } from "../src/http/api/tokens.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { sharedCluster } from "./helpers/dialects.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";

interface ErrorBody { error: { code: string; message: string } }
interface JobBody { id: string; kind: string; status: string; undoOf?: string }

const errorOf = (res: { json(): unknown }): ErrorBody["error"] => (res.json() as ErrorBody).error;

// Path values that are well formed but name nothing: a request that got through would still touch no row.
function concrete(url: string): string {
  return url.replace(":id", "usr_aaaaaaaaaaaaaaaaaaaaaaaaaa").replace(":role", "auditor").replace(":name", "auditor");
}

// A body each route's schema accepts, so the only thing wrong with the request is the added field.
function bodyFor(route: APIRoute): Record<string, unknown> {
  if (route.method !== "POST") return {};
  if (route.url === "/api/v1/users") return { email: "walk@example.org" };
  if (route.url === "/api/v1/roles") return { name: "walked", permissions: ["accounts.read"] };
  if (route.url === "/api/v1/tokens") return { name: "walk", scopes: ["accounts.read"] };
  if (route.url === "/api/v1/contain/jobs") return { levers: ["lock-accounts"], scope: { all: true }, dryRun: false };
  return {};
}

function hardeningSuite(name: string, open: () => Promise<APIFixture>): void {
  describe(name, () => {
    let fx: APIFixture;
    let admin: { id: string; email: string };
    let adminToken: string;
    before(async () => {
      fx = await open();
      admin = await fx.user(["admin"]);
      adminToken = await fx.token(admin.id, ["admin"]);
    });
    after(async () => {
      await fx?.close();
    });

    const finished = (token: string, id: string): Promise<JobBody> => fx.finishedJob<JobBody>(token, id);

    const lockedAt = async (id: string): Promise<number | null> => (await fx.app.accounts.users.getById(id))?.lockedAt ?? null;

    // Finding 1: unknown fields on routes without a body or querystring schema.

    it("attack: {dryRun: true} sent to an undo is refused (400 naming dryRun) and no undo runs: the user stays locked", async () => {
      const responder = await fx.user(["contain.run"]);
      const token = await fx.token(responder.id, ["contain.run"]);
      const victim = await fx.user([]);
      const created = await fx.call("POST", "/api/v1/contain/jobs", { token, body: { levers: ["lock-accounts"], scope: { ids: [victim.id] } } });
      assert.equal(created.statusCode, 202, created.body);
      const job = (created.json() as { job: JobBody }).job;
      assert.equal((await finished(token, job.id)).status, "done");
      assert.notEqual(await lockedAt(victim.id), null, "the job locked the victim");

      const undo = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token, body: { dryRun: true } });
      assert.equal(undo.statusCode, 400, undo.body);
      assert.equal(errorOf(undo).code, "BULWARK_ERR_API_UNKNOWN_FIELD");
      assert.equal(errorOf(undo).message, 'body has field(s) this route does not accept: "dryRun"');
      await sleep(100); // a background undo, had one started, would have had time to unlock
      assert.notEqual(await lockedAt(victim.id), null, "the victim is still locked: no undo ran");
      const jobs = (await fx.call("GET", "/api/v1/contain/jobs", { token })).json() as { jobs: JobBody[] };
      assert.equal(jobs.jobs.some((j) => j.undoOf === job.id), false, "no undo job was created");

      // The same undo without the stray field (no body, or an empty one) is the real undo, as documented.
      const real = await fx.call("POST", `/api/v1/contain/jobs/${job.id}/undo`, { token, body: {} });
      assert.equal(real.statusCode, 202, real.body);
      assert.equal((await finished(token, (real.json() as { job: JobBody }).job.id)).status, "done");
      assert.equal(await lockedAt(victim.id), null, "the real undo unlocked the victim");
    });

    it("attack: DELETE /tokens with {id} is refused (400 naming id) and revokes nothing: every token still works", async () => {
      const user = await fx.user(["accounts.read"]);
      const keep = await fx.token(user.id, ["accounts.read"]);
      const other = await fx.token(user.id, ["accounts.read"]);
      const otherId = other.split("_").slice(1, 3).join("_");
      const res = await fx.call("DELETE", "/api/v1/tokens", { token: other, body: { id: otherId } });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(errorOf(res).code, "BULWARK_ERR_API_UNKNOWN_FIELD");
      assert.equal(errorOf(res).message, 'body has field(s) this route does not accept: "id"');
      for (const token of [keep, other]) assert.equal((await fx.call("GET", "/api/v1/tokens", { token })).statusCode, 200, "the token still works");
      assert.equal((await fx.app.accounts.tokens.list(user.id)).filter((t) => t.revokedAt === null).length, 2);
      const audit = await fx.app.db.db.selectFrom("audit_events").select("id").where("type", "=", "api.token.revoked-all").where("subject", "=", user.id).execute();
      assert.equal(audit.length, 0, "no revoke-all was recorded");
    });

    it("attack: ?roles=admin&status=disabled on create-user is refused (400 naming both) and no account is created", async () => {
      const users = await fx.app.accounts.users.count();
      const res = await fx.call("POST", "/api/v1/users?roles=admin&status=disabled", { token: adminToken, body: { email: "qs-attack@example.org" } });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(errorOf(res).code, "BULWARK_ERR_API_UNKNOWN_FIELD");
      assert.equal(errorOf(res).message, 'query string has field(s) this route does not accept: "roles", "status"');
      assert.equal(await fx.app.accounts.users.count(), users, "no account was created");
    });

    it("attack: {sessionId} sent to sessions/revoke is refused (400 naming it) and the account's sessions live on", async () => {
      const target = await fx.user([]);
      const session = await fx.session(target.id);
      assert.equal((await fx.call("GET", "/api/v1/tokens", { session })).statusCode, 200);
      const res = await fx.call("POST", `/api/v1/users/${target.id}/sessions/revoke`, { token: adminToken, body: { sessionId: "ses_only_this_one" } });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(errorOf(res).code, "BULWARK_ERR_API_UNKNOWN_FIELD");
      assert.equal(errorOf(res).message, 'body has field(s) this route does not accept: "sessionId"');
      assert.equal((await fx.call("GET", "/api/v1/tokens", { session })).statusCode, 200, "the session was not ended");
    });

    it("attack: every /api/v1 route refuses an undeclared query-string field and an undeclared body field, naming it", async () => {
      const users = await fx.app.accounts.users.count();
      const jobs = (await fx.app.accounts.jobs.list({ kind: "contain" })).length;
      const tokens = (await fx.app.accounts.tokens.list(admin.id)).length;
      const routes = apiRoutesOf(fx.server);
      assert.ok(routes.length >= 20);
      for (const route of routes) {
        const hasBody = route.method !== "GET" && route.method !== "HEAD";
        const query = await fx.call(route.method, `${concrete(route.url)}?debug=1`, { token: adminToken, ...(hasBody ? { body: bodyFor(route) } : {}) });
        assert.equal(query.statusCode, 400, `${route.method} ${route.url}?debug=1 answered ${query.statusCode}: ${query.body.slice(0, 200)}`);
        if (route.method === "HEAD") continue; // Fastify's HEAD twin of a GET route: same answer, no body to read
        assert.equal(errorOf(query).code, "BULWARK_ERR_API_UNKNOWN_FIELD", `${route.method} ${route.url}`);
        assert.equal(errorOf(query).message, 'query string has field(s) this route does not accept: "debug"');
        if (!hasBody) continue;
        const body = await fx.call(route.method, concrete(route.url), { token: adminToken, body: { ...bodyFor(route), sneaky: true } });
        assert.equal(body.statusCode, 400, `${route.method} ${route.url} with {sneaky} answered ${body.statusCode}: ${body.body.slice(0, 200)}`);
        assert.equal(errorOf(body).code, "BULWARK_ERR_API_UNKNOWN_FIELD", `${route.method} ${route.url}`);
        assert.equal(errorOf(body).message, 'body has field(s) this route does not accept: "sneaky"');
      }
      assert.equal(await fx.app.accounts.users.count(), users, "no account was created");
      assert.equal((await fx.app.accounts.jobs.list({ kind: "contain" })).length, jobs, "no containment job was created");
      assert.equal((await fx.app.accounts.tokens.list(admin.id)).length, tokens, "no token was minted");
      assert.equal((await fx.app.accounts.roles.list()).some((r) => r.name === "walked"), false, "no role was created");
    });

    it("attack: a body that is not an object, sent to a route that takes none, is refused", async () => {
      const target = await fx.user([]);
      const res = await fx.call("POST", `/api/v1/users/${target.id}/unlock`, { token: adminToken, body: ["reason"] });
      assert.equal(res.statusCode, 400, res.body);
      assert.equal(errorOf(res).code, "BULWARK_ERR_VALIDATION");
      assert.equal(errorOf(res).message, "this route takes no body");
    });

    it("still takes the lock's optional {reason}: absent, given, and refused when it carries other fields or control characters", async () => {
      const a = await fx.user([]);
      const absent = await fx.call("POST", `/api/v1/users/${a.id}/lock`, { token: adminToken });
      assert.equal(absent.statusCode, 200, absent.body);
      assert.equal((absent.json() as { user: { lockedReason: string } }).user.lockedReason, "locked by an administrator");
      const b = await fx.user([]);
      const given = await fx.call("POST", `/api/v1/users/${b.id}/lock`, { token: adminToken, body: { reason: "  phished — ticket 4711  " } });
      assert.equal(given.statusCode, 200, given.body);
      assert.equal((given.json() as { user: { lockedReason: string } }).user.lockedReason, "phished — ticket 4711");
      const c = await fx.user([]);
      const extra = await fx.call("POST", `/api/v1/users/${c.id}/lock`, { token: adminToken, body: { reason: "x", roles: ["admin"] } });
      assert.equal(extra.statusCode, 400);
      assert.equal(errorOf(extra).message, 'body has field(s) this route does not accept: "roles"');
      const control = await fx.call("POST", `/api/v1/users/${c.id}/lock`, { token: adminToken, body: { reason: "x\u0000y" } });
      assert.equal(control.statusCode, 400);
      assert.equal(errorOf(control).message, "body/reason must not contain control characters (such as NUL, tab or newline), unpaired surrogates or bidirectional overrides");
      const blank = await fx.call("POST", `/api/v1/users/${c.id}/lock`, { token: adminToken, body: { reason: "   " } });
      assert.equal(blank.statusCode, 400);
      assert.equal(await lockedAt(c.id), null, "the refused locks changed nothing");
    });

    // Finding 2: the live-token bound under concurrency.

    it("attack: 100 concurrent mints never exceed the 50 live-token cap", async () => {
      const user = await fx.user(["accounts.read"]);
      const token = await fx.token(user.id, ["accounts.read"]);
      const results = await Promise.all(Array.from({ length: 100 }, (_, i) =>
        fx.call("POST", "/api/v1/tokens", { token, body: { name: `burst ${i}`, scopes: ["accounts.read"] } })));
      const created = results.filter((r) => r.statusCode === 201).length;
      const refused = results.filter((r) => r.statusCode === 409);
      // Past the hour's mints (TOKEN_MINTS_PER_HOUR), a 429: a burst is refused by one bound or the other, never served.
      const rated = results.filter((r) => r.statusCode === 429 && errorOf(r).code === "BULWARK_ERR_TOKEN_MINT_RATE");
      assert.equal(created + refused.length + rated.length, 100, `unexpected answers: ${results.filter((r) => r.statusCode !== 201 && r.statusCode !== 409 && r.statusCode !== 429).map((r) => r.body.slice(0, 120)).join(" | ")}`);
      assert.equal(created, MAX_LIVE_TOKENS - 1, "exactly up to the bound (one token existed)");
      for (const r of refused) {
        assert.equal(errorOf(r).code, "BULWARK_ERR_API_TOKEN_LIMIT");
        assert.equal(errorOf(r).message, `you already have ${MAX_LIVE_TOKENS} live API tokens; revoke some first`);
      }
      const live = (await fx.app.accounts.tokens.list(user.id)).filter((t) => t.revokedAt === null);
      assert.equal(live.length, MAX_LIVE_TOKENS);

      // A revoked token frees its place, once: two concurrent mints, one place.
      const [victim] = live.filter((t) => t.name.startsWith("burst"));
      assert.equal((await fx.call("DELETE", `/api/v1/tokens/${victim?.id}`, { token })).statusCode, 204);
      const pair = await Promise.all([0, 1].map((i) => fx.call("POST", "/api/v1/tokens", { token, body: { name: `refill ${i}`, scopes: ["accounts.read"] } })));
      assert.deepEqual(pair.map((r) => r.statusCode).sort(), [201, 409]);
      assert.equal((await fx.app.accounts.tokens.list(user.id)).filter((t) => t.revokedAt === null).length, MAX_LIVE_TOKENS);
    });

    // Finding 3: a blank expiry.

    it("attack: expiresAt \"\" is refused with 400 naming expiresAt, and no never-expiring token is minted", async () => {
      const user = await fx.user(["accounts.read"]);
      const session = await fx.session(user.id);
      const before = (await fx.app.accounts.tokens.list(user.id)).length;
      const blank = await fx.call("POST", "/api/v1/tokens", { session, body: { name: "ci", scopes: ["accounts.read"], expiresAt: "" } });
      assert.equal(blank.statusCode, 400, blank.body);
      assert.equal(errorOf(blank).code, "BULWARK_ERR_VALIDATION");
      assert.equal(errorOf(blank).message, 'body field "expiresAt" is an empty string: give a value, or null (or leave the field out) for none');
      for (const [value, code] of [[" ", "BULWARK_ERR_API_TIME"], [false, "BULWARK_ERR_API_TIME"], [0, "BULWARK_ERR_API_TOKEN_EXPIRY"]] as const) {
        const res = await fx.call("POST", "/api/v1/tokens", { session, body: { name: "ci", scopes: ["accounts.read"], expiresAt: value } });
        assert.equal(res.statusCode, 400, `${JSON.stringify(value)}: ${res.body}`);
        assert.equal(errorOf(res).code, code, JSON.stringify(value));
        assert.match(errorOf(res).message, /expiresAt/);
      }
      assert.equal((await fx.app.accounts.tokens.list(user.id)).length, before, "nothing was minted");

      // An explicit null is still the documented "never"; a real time still works.
      const never = await fx.call("POST", "/api/v1/tokens", { session, body: { name: "ci", scopes: ["accounts.read"], expiresAt: null } });
      assert.equal(never.statusCode, 201, never.body);
      assert.equal((never.json() as { info: { expiresAt: string | null } }).info.expiresAt, null);
      const at = new Date(Date.now() + 86_400_000);
      const dated = await fx.call("POST", "/api/v1/tokens", { session, body: { name: "ci", scopes: ["accounts.read"], expiresAt: at.toISOString() } });
      assert.equal(dated.statusCode, 201, dated.body);
      assert.equal((dated.json() as { info: { expiresAt: string | null } }).info.expiresAt, at.toISOString());
    });

    // Finding 4: control characters (NUL: 500 on PostgreSQL) in free text.

    it("attack: a NUL in /auth input (login identifier, reset address, session id) is a 400 naming the field, never a 500", async () => {
      const user = await fx.user([]);
      const session = await fx.session(user.id);
      const origin = { origin: fx.app.config.http.publicURL };
      const cases: Array<[string, string, Record<string, unknown> | undefined, string, { cookie: string; csrf: string } | undefined]> = [
        ["POST", "/auth/login", { identifier: "nul\u0000@example.org", password: "whatever it is" }, "body/identifier", undefined],
        ["POST", "/auth/password/reset/request", { email: "nul\u0000@example.org" }, "body/email", undefined],
        ["DELETE", "/auth/sessions/ses_%00x", undefined, "params/id", session],
      ];
      for (const [method, url, body, field, as] of cases) {
        const res = await fx.call(method, url, { ...(body ? { body } : {}), ...(as ? { session: as } : { headers: origin }) });
        assert.equal(res.statusCode, 400, `${method} ${url}: ${res.body}`);
        assert.match(res.body, new RegExp(`${field.replace("/", "\\/")} must not contain control characters`), res.body);
      }
      // A password is never refused for its characters: one set elsewhere may hold any (here: a wrong one, 401).
      const login = await fx.call("POST", "/auth/login", { body: { identifier: user.email, password: "tab\tand nul\u0000" }, headers: origin });
      assert.equal(login.statusCode, 401, login.body);
    });

    it("attack: a NUL or another control character in any string field is a 400 naming the field, never a 500, and changes nothing", async () => {
      const target = await fx.user([]);
      const users = await fx.app.accounts.users.count();
      const jobs = (await fx.app.accounts.jobs.list({ kind: "contain" })).length;
      const cases: Array<[string, string, Record<string, unknown> | undefined, string]> = [
        ["POST", "/api/v1/users", { email: "nul@example.org", displayName: "a\u0000b" }, "body/displayName"],
        ["POST", "/api/v1/users", { email: "nul\u0000@example.org" }, "body/email"],
        ["POST", "/api/v1/users", { email: "nul2@example.org", username: "a\u0000" }, "body/username"],
        ["POST", "/api/v1/users", { email: "nul3@example.org", displayName: "line\nbreak" }, "body/displayName"],
        ["POST", "/api/v1/users", { email: "nul4@example.org", password: "correct horse\u0000battery staple" }, "body/password"],
        ["POST", "/api/v1/roles", { name: "nulrole", description: "a\u0000b", permissions: [] }, "body/description"],
        ["POST", "/api/v1/roles", { name: "nulrole", permissions: ["accounts.read\u0000"] }, "body/permissions/0"],
        ["POST", "/api/v1/tokens", { name: "a\u0000b", scopes: ["accounts.read"] }, "body/name"],
        ["POST", "/api/v1/tokens", { name: "t", scopes: ["accounts.read\u0000"] }, "body/scopes/0"],
        ["GET", "/api/v1/audit/events?type=a%00b", undefined, "querystring/type"],
        ["GET", "/api/v1/users?q=a%00b", undefined, "querystring/q"],
        ["GET", "/api/v1/users?cursor=a%00b", undefined, "querystring/cursor"],
        ["POST", "/api/v1/contain/jobs", { levers: ["lock-accounts"], scope: { scheme: "a\u0000b" }, dryRun: true }, "body/scope/scheme"],
        ["POST", "/api/v1/contain/jobs", { levers: ["lock-accounts"], scope: { ids: [target.id, "usr_\u0000"] }, dryRun: true }, "body/scope/ids/1"],
        ["POST", "/api/v1/contain/jobs", { levers: ["lock-accounts"], scope: { roles: ["r\u0000"] }, dryRun: true }, "body/scope/roles/0"],
        ["POST", "/api/v1/contain/jobs", { levers: ["lock-accounts\u0000"], scope: { all: true }, dryRun: true }, "body/levers/0"],
        ["POST", "/api/v1/contain/jobs", { levers: ["lock-accounts"], scope: { ids: [target.id] }, options: { lockReason: "x\u001b[31m" } }, "body/options/lockReason"],
        ["POST", `/api/v1/users/${target.id}/lock`, { reason: "a\u0000b" }, "body/reason"],
      ];
      for (const [method, url, body, field] of cases) {
        const res = await fx.call(method, url, { token: adminToken, ...(body !== undefined ? { body } : {}) });
        assert.equal(res.statusCode, 400, `${method} ${url} (${field}) answered ${res.statusCode}: ${res.body.slice(0, 200)}`);
        assert.equal(errorOf(res).code, "BULWARK_ERR_VALIDATION", field);
        assert.equal(errorOf(res).message, `${field} must not contain control characters (such as NUL, tab or newline), unpaired surrogates or bidirectional overrides`);
      }
      // The time fields refuse them too (their text branch carries the same pattern).
      const since = await fx.call("GET", "/api/v1/audit/events?since=2026-01-01%00", { token: adminToken });
      assert.equal(since.statusCode, 400, since.body);
      assert.match(errorOf(since).message, /^querystring\/since must not contain control characters/);

      assert.equal(await fx.app.accounts.users.count(), users, "no account was created");
      assert.equal((await fx.app.accounts.roles.list()).some((r) => r.name === "nulrole"), false, "no role was created");
      assert.equal(await lockedAt(target.id), null, "nobody was locked");
      assert.equal((await fx.app.accounts.jobs.list({ kind: "contain" })).length, jobs, "no containment job was created");
    });

    it("attack: an unpaired surrogate or a right-to-left override in free text (name, description, reason) is a 400, not text stored otherwise than it reads", async () => {
      const target = await fx.user([]);
      const users = await fx.app.accounts.users.count();
      const cases: Array<[string, string, Record<string, unknown>, string]> = [
        ["POST", "/api/v1/users", { email: "lone@example.org", displayName: "ci\ud800" }, "body/displayName"],
        ["POST", "/api/v1/users", { email: "rlo@example.org", displayName: "admin\u202egpj.exe" }, "body/displayName"],
        ["POST", "/api/v1/roles", { name: "bidirole", description: "read-only \u2066admin\u2069", permissions: [] }, "body/description"],
        ["POST", "/api/v1/tokens", { name: "ci\udc00", scopes: ["accounts.read"] }, "body/name"],
        ["POST", `/api/v1/users/${target.id}/lock`, { reason: "phished \u202dticket" }, "body/reason"],
      ];
      for (const [method, url, body, field] of cases) {
        const res = await fx.call(method, url, { token: adminToken, body });
        assert.equal(res.statusCode, 400, `${method} ${url} (${field}) answered ${res.statusCode}: ${res.body.slice(0, 200)}`);
        assert.equal(errorOf(res).message, `${field} must not contain control characters (such as NUL, tab or newline), unpaired surrogates or bidirectional overrides`);
      }
      assert.equal(await fx.app.accounts.users.count(), users, "no account was created");
      assert.equal(await lockedAt(target.id), null, "nobody was locked");
      // Right-to-left text keeps its direction marks, and a well-formed pair (an emoji) is one character.
      const rtl = await fx.call("POST", "/api/v1/users", { token: adminToken, body: { email: "rtl@example.org", displayName: "\u200fשלום 🚀" } });
      assert.equal(rtl.statusCode, 201, rtl.body);
    });

    it("still accepts real-world text: accents, CJK, emoji, plus-addressing, punctuation", async () => {
      const created = await fx.call("POST", "/api/v1/users", {
        token: adminToken, body: { email: "Zoë.Ångström+oncall@example.org", username: "zoë_ångström", displayName: "Zoë Ångström — 山田太郎 🚀 (O'Brien)" },
      });
      assert.equal(created.statusCode, 201, created.body);
      const user = (created.json() as { user: { id: string; displayName: string; username: string } }).user;
      assert.equal(user.displayName, "Zoë Ångström — 山田太郎 🚀 (O'Brien)");
      const found = await fx.call("GET", `/api/v1/users?q=${encodeURIComponent("zoë")}`, { token: adminToken });
      assert.equal(found.statusCode, 200, found.body);
      assert.ok((found.json() as { users: Array<{ id: string }> }).users.some((u) => u.id === user.id), "found by a non-ASCII prefix");
      const role = await fx.call("POST", "/api/v1/roles", { token: adminToken, body: { name: "astreinte", description: "Équipe d'astreinte 24/7 ✓ — 当番", permissions: ["accounts.read"] } });
      assert.equal(role.statusCode, 201, role.body);
      const minted = await fx.call("POST", "/api/v1/tokens", { token: adminToken, body: { name: "déploiement ✓ 🚀", scopes: ["accounts.read"] } });
      assert.equal(minted.statusCode, 201, minted.body);
      const events = await fx.call("GET", "/api/v1/audit/events?type=api.role.created&limit=5", { token: adminToken });
      assert.equal(events.statusCode, 200, events.body);
      const lock = await fx.call("POST", `/api/v1/users/${user.id}/lock`, { token: adminToken, body: { reason: "compte compromis — 不正アクセス" } });
      assert.equal(lock.statusCode, 200, lock.body);
    });
  });
}

hardeningSuite("/api/v1 hardening [sqlite]", () => openAPIFixture());

const unavailable = postgresUnavailable();
describe("/api/v1 hardening on PostgreSQL", unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
  let n = 0;
  hardeningSuite("/api/v1 hardening [postgres]", async () => {
    const cluster = await sharedCluster();
    if (!cluster) throw new Error("PostgreSQL cluster did not start");
    return openAPIFixture({ databaseURL: await cluster.createDatabase(`hardening_${process.pid}_${++n}`) });
  });
  after(async () => {
    await (await sharedCluster())?.stop();
  });
});

describe("/api/v1 string fields are checked at boot", () => {
  it("attack: a future route with a plain string field (no control-character pattern) cannot be registered", () => {
    const route = (body: unknown): RouteOptions => ({ method: "POST", url: "/api/v1/future", handler: async () => ({}), schema: { body } }) as RouteOptions;
    assert.throws(
      () => assertTextFieldsSafe(route({ type: "object", properties: { note: { type: "string", maxLength: 100 } } })),
      /POST \/api\/v1\/future: string field\(s\) body\.note admit control characters/,
    );
    assert.throws(() => assertTextFieldsSafe(route({ type: "object", properties: { tags: { type: "array", items: { type: "string", pattern: "^.*$" } } } })), /body\.tags\[\]/);
    assert.throws(() => assertTextFieldsSafe(route({ type: "object", properties: { when: { anyOf: [{ type: "string" }, { type: "integer" }] } } })), /body\.when/);
    assert.doesNotThrow(() => assertTextFieldsSafe(route({ type: "object", properties: { note: text(0, 100), tags: { type: "array", items: text(1, 40) } } })));
    assert.doesNotThrow(() => assertTextFieldsSafe(route({ type: "object", properties: { id: { type: "string", pattern: "^[A-Za-z0-9_-]+$" } } })));
  });
});
