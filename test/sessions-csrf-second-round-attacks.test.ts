// Second round of attacks on browser sessions, CSRF and the cookie/redirect plumbing of the HTTP layer. The first
// round (test/http-sessions-csrf-attacks.test.ts, test/http-auth-sessions.test.ts) tried shapes of the token, origins
// on a few routes and `next` spellings one by one; this round looks at interactions and exact instants: the
// one-minute last-seen write throttle against the idle limit and the session list, the CSRF wall over every unsafe
// route the router has (not a hand-kept list), the clearing Set-Cookie on every error path, a stale cookie meeting a
// login (two places that each write the same cookie), and `next` values that are safe only until one hop decodes them.
// Each test is an attack that must fail.
// ASVS ids: 7.3.1, 7.5.2, 14.3.2 (shared/asvs); 3.3.x cookies, 3.5.x CSRF, 3.7.2 redirects (ASVS 5.0 chapter V3).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { sql } from "kysely";
import { csrfToken, API_ACTION } from "../src/accounts/csrf/index.ts";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { safeNext } from "../src/http/auth/safe-redirect.ts";
import { HOST, ORIGIN, type Browser } from "../src/http/auth/test-client.ts";
import { routesFromTree } from "./helpers/routes.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const MINUTE = 60_000;
const SAME_ORIGIN = { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin" } as const;
/** A well-formed session token that names no row. */
const DEAD = `ses_${"a".repeat(26)}.${"A".repeat(43)}`;

const fx = sharedFixture();

let n = 0;
async function signedIn(tag: string): Promise<{ b: Browser; id: string; email: string; password: string }> {
  const user = await fx.user(`r2-${tag}-${++n}@example.org`);
  const b = fx.browser();
  const res = await b.login(user.email, user.password);
  assert.equal(res.statusCode, 200, res.body);
  return { b, ...user };
}

function setCookies(res: LightMyRequestResponse): string[] {
  const raw = res.headers["set-cookie"];
  return Array.isArray(raw) ? raw : raw === undefined ? [] : [String(raw)];
}

/** The attributes a browser requires before it accepts (or lets a response delete) a __Host- cookie. */
function assertHostCookie(line: string, what: string): void {
  const [pair, ...attrs] = line.split(";").map((s) => s.trim());
  assert.match(pair as string, /^__Host-/, what);
  const lower = attrs.map((a) => a.toLowerCase());
  assert.ok(lower.includes("path=/"), `${what}: Path=/ (${line})`);
  assert.ok(lower.includes("secure"), `${what}: Secure`);
  assert.ok(lower.includes("httponly"), `${what}: HttpOnly`);
  assert.ok(lower.includes("samesite=lax") || lower.includes("samesite=strict"), `${what}: SameSite`);
  assert.ok(!lower.some((a) => a.startsWith("domain=")), `${what}: no Domain`);
}

describe("session lifecycle at the exact instants (ASVS 7.3.1, 7.5.2)", () => {
  it("attack: requests inside the one-minute write throttle do not stretch the idle limit — a session last written at t0 dies at exactly t0 + 30 min although it was used at t0 + 59.999 s; the owner's list drops it at that same instant; its row is deleted and its cookie cleared", async () => {
    const { b, email, password } = await signedIn("idle");
    const t0 = fx.clock.now();
    const sessionId = (await b.request("GET", "/auth/session")).json().sessionId as string;
    const watcher = fx.browser();
    const listOf = async (): Promise<Map<string, number>> => {
      const res = await watcher.request("GET", "/auth/sessions");
      assert.equal(res.statusCode, 200, res.body);
      return new Map((res.json().sessions as Array<{ id: string; lastSeenAt: number }>).map((s) => [s.id, s.lastSeenAt]));
    };
    // Used just inside the throttle: nothing written, so the idle clock still counts from t0 (it errs short).
    fx.clock.set(t0 + MINUTE - 1);
    assert.equal((await b.request("GET", "/auth/session")).json().authenticated, true);
    assert.equal((await watcher.login(email, password)).statusCode, 200);
    assert.equal((await listOf()).get(sessionId), t0, "a request inside the throttle writes no last-seen");
    // One millisecond before the limit, counted from the last write: listed and working.
    fx.clock.set(t0 + 30 * MINUTE - 1);
    assert.equal((await listOf()).has(sessionId), true, "listed until the last millisecond");
    // Exactly at the limit: gone from the list and refused, whatever the request in between.
    fx.clock.set(t0 + 30 * MINUTE);
    assert.equal((await listOf()).has(sessionId), false, "the list and validation agree on the instant");
    const res = await b.request("GET", "/auth/session");
    assert.equal(res.json().authenticated, false, "idle-expired at exactly 30 minutes after the last write");
    const cleared = setCookies(res).find((l) => l.startsWith(`${SESSION_COOKIE}=;`));
    assert.ok(cleared, "the cookie is cleared");
    assertHostCookie(cleared, "idle clear");
    assert.equal(res.headers["cache-control"], "no-store");
    const row = await fx.app.db.db.selectFrom("sessions").select("id").where("id", "=", sessionId).executeTakeFirst();
    assert.equal(row, undefined, "the expired row is deleted when presented");
  });
});

/** "METHOD /path" of every unsafe route in the router. */
function unsafeRoutes(): Array<[method: string, url: string]> {
  return routesFromTree(fx.server.printRoutes({ commonPrefix: false }))
    .flatMap((r) => r.methods.map((m) => [m, r.url] as [string, string]))
    .filter(([m]) => !["GET", "HEAD", "OPTIONS"].includes(m));
}

/** Path parameters filled with well-formed ids that name nothing. */
function concrete(url: string): string {
  return url.replace(/:id\b/g, "ses_aaaaaaaaaaaaaaaaaaaaaaaaaa").replace(/:role\b/g, "auditor").replace(/:name\b/g, "auditor");
}

/** Row counts of every table a state-changing route could write. */
async function snapshot(): Promise<Record<string, number>> {
  const tables = ["users", "sessions", "api_tokens", "user_roles", "roles", "jobs", "outbox_messages", "audit_events", "email_change_tokens",
    "password_reset_tokens", "mfa_totp", "mfa_recovery_codes", "webauthn_credentials", "revocation_stamps", "replaced_sessions"];
  const out: Record<string, number> = {};
  for (const t of tables) {
    const { rows } = await sql<{ n: number | string }>`SELECT count(*) AS n FROM ${sql.table(t)}`.execute(fx.app.db.db);
    out[t] = Number(rows[0]?.n);
  }
  return out;
}

describe("the CSRF wall over the whole router (ASVS 3.5.1, 3.5.3)", () => {
  it("attack: every unsafe route under /auth and /api/v1, called with a fully open and fresh administrator session and its valid CSRF token, is refused 403 BULWARK_ERR_CSRF from a sibling subdomain, a sandboxed frame, another port, plain http, a contradicted same-origin claim or a header-less client, and with same-origin headers but the token only in the query string; nothing is written", async () => {
    const admin = await fx.user(`r2-walk-${++n}@example.org`, { roles: ["admin"] });
    // aal 2, created now: past every gate and inside the re-authentication window, so only the CSRF wall can refuse.
    const { token: cookie } = await fx.app.accounts.sessions.createSession(admin.id, { aal: 2 });
    const secret = cookie.split(".")[1] as string;
    const token = csrfToken(secret, API_ACTION);
    const routes = unsafeRoutes();
    assert.ok(routes.length >= 30, `the walk sees the whole router (${routes.length} unsafe routes)`);
    assert.ok(routes.some(([m]) => m === "DELETE") && routes.some(([, u]) => u.startsWith("/api/v1/")), "DELETE and /api/v1 routes are walked");
    const variants: Array<[string, Record<string, string>, string]> = [
      ["sibling subdomain", { origin: "https://evil.bulwark.test", "sec-fetch-site": "same-site", "x-csrf-token": token }, ""],
      ["sibling, no Sec-Fetch-Site", { origin: "https://evil.bulwark.test", "x-csrf-token": token }, ""],
      ["null origin", { origin: "null", "x-csrf-token": token }, ""],
      ["null origin claiming same-origin", { origin: "null", "sec-fetch-site": "same-origin", "x-csrf-token": token }, ""],
      ["another port", { origin: `${ORIGIN}:8443`, "x-csrf-token": token }, ""],
      ["plain http", { origin: "http://bulwark.test", "x-csrf-token": token }, ""],
      ["same-origin claim, foreign Origin", { origin: "https://evil.example", "sec-fetch-site": "same-origin", "x-csrf-token": token }, ""],
      ["navigation claim, foreign Origin", { origin: "https://evil.example", "sec-fetch-site": "none", "x-csrf-token": token }, ""],
      ["no browser headers", { "x-csrf-token": token }, ""],
      ["token only in the query string", { ...SAME_ORIGIN }, `?_csrf=${token}&x-csrf-token=${token}`],
      ["no token", { ...SAME_ORIGIN }, ""],
    ];
    const before = await snapshot();
    const escaped: string[] = [];
    for (const [method, url] of routes) {
      for (const [what, headers, query] of variants) {
        const request: InjectOptions = {
          method: method as "POST", url: concrete(url) + query,
          headers: { host: HOST, cookie: `${SESSION_COOKIE}=${cookie}`, ...headers, ...(method === "DELETE" ? {} : { "content-type": "application/json" }) },
          ...(method === "DELETE" ? {} : { payload: "{}" }),
        };
        const res = await fx.server.inject(request);
        const code = res.statusCode === 403 ? (res.json() as { error?: { code?: string } }).error?.code : undefined;
        if (code !== "BULWARK_ERR_CSRF") escaped.push(`${method} ${url} [${what}]: ${res.statusCode} ${res.body.slice(0, 100)}`);
      }
    }
    assert.deepEqual(escaped, [], "unsafe requests that got past the CSRF wall");
    const afterWalk = await snapshot();
    // Nothing but the trace of the refusals: one sampled auth.csrf.refused row for the account (the rest counted).
    assert.deepEqual(afterWalk, { ...before, audit_events: before["audit_events"]! + 1 }, "no refused request wrote anything but its sampled audit row");
    // Control: the session and the token were good all along, so each refusal above was the wall's own.
    const control = await fx.server.inject({ method: "POST", url: "/auth/logout", headers: { ...SAME_ORIGIN, cookie: `${SESSION_COOKIE}=${cookie}`, "x-csrf-token": token } });
    assert.equal(control.statusCode, 200, control.body);
  });
});

describe("the clearing Set-Cookie on error paths (ASVS 3.3.1, 14.3.2)", () => {
  it("attack: a stale session cookie sent to a 413, 415, 400, 403 (CSRF), 404 and 401 answer is deleted with the exact __Host- attributes a browser needs to accept the deletion, once, and the answer is no-store", async () => {
    const cookie = `${SESSION_COOKIE}=${DEAD}`;
    const cases: Array<[string, number, InjectOptions]> = [
      ["413 login", 413, { method: "POST", url: "/auth/login", headers: { ...SAME_ORIGIN, cookie, "content-type": "application/json" }, payload: JSON.stringify({ a: "x".repeat(1_100_000) }) }],
      ["415 login", 415, { method: "POST", url: "/auth/login", headers: { ...SAME_ORIGIN, cookie, "content-type": "application/xml" }, payload: "<a/>" }],
      ["400 bad form", 400, { method: "POST", url: "/auth/password/reset/request", headers: { ...SAME_ORIGIN, cookie, "content-type": "application/x-www-form-urlencoded" }, payload: "email=%FF" }],
      ["403 login CSRF", 403, { method: "POST", url: "/auth/login", headers: { host: HOST, origin: "https://evil.example", cookie, "content-type": "application/json" }, payload: "{}" }],
      ["404", 404, { method: "GET", url: "/auth/nope", headers: { host: HOST, cookie } }],
      ["401 signed-in route", 401, { method: "DELETE", url: "/auth/sessions", headers: { ...SAME_ORIGIN, cookie } }],
      ["401 api", 401, { method: "GET", url: "/api/v1/users", headers: { host: HOST, cookie } }],
    ];
    for (const [what, status, request] of cases) {
      const res = await fx.server.inject(request);
      assert.equal(res.statusCode, status, `${what}: ${res.body.slice(0, 120)}`);
      const lines = setCookies(res).filter((l) => l.startsWith(`${SESSION_COOKIE}=`));
      assert.equal(lines.length, 1, `${what}: one Set-Cookie for the session cookie (${JSON.stringify(lines)})`);
      assert.match(lines[0] as string, /^__Host-bulwark-session=;.*Max-Age=0/, what);
      assertHostCookie(lines[0] as string, what);
      assert.equal(res.headers["cache-control"], "no-store", what);
    }
  });

  // authenticate() clears a dead cookie in onRequest; the login handler then sets the new one: two Set-Cookie lines for
  // one cookie name in one answer. RFC 6265 §4.1.1: servers SHOULD NOT; the outcome then depends on every hop keeping
  // both lines in order. One that keeps a single value per name (the first) turns the successful login into a sign-out.
  it("attack: a login sent with a stale cookie (after an idle timeout, say) answers exactly one Set-Cookie for __Host-bulwark-session — the new session — not a clearing line followed by it (RFC 6265 §4.1.1, ASVS 3.3.1) (was: the clearing line queued by authenticate() went out before the new cookie, two lines for one name)", async () => {
    const user = await fx.user(`r2-stale-${++n}@example.org`);
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    fx.clock.advance(31 * MINUTE); // the session idles out; the browser still holds its cookie
    const res = await b.request("POST", "/auth/login", { body: { identifier: user.email, password: user.password } });
    assert.equal(res.statusCode, 200, res.body);
    const lines = setCookies(res).filter((l) => l.startsWith(`${SESSION_COOKIE}=`));
    assert.deepEqual(lines.map((l) => l.split(";")[0]), [`${SESSION_COOKIE}=${b.cookie}`], "one line, carrying the new session");
    assertHostCookie(lines[0] as string, "login after a stale cookie");
    assert.equal((await b.request("GET", "/auth/session")).json().authenticated, true);
  });
});

describe("redirects: `next` that is safe only until one hop decodes it (ASVS 3.7.2)", () => {
  // safeNext refuses "/%2f…" and "/%5c…" because "a later hop can decode them into the forms refused above" (//evil,
  // /\evil). The same hop turns "/%09/evil.example" into "/\t/evil.example", which every browser reads as
  // "//evil.example" (tabs and newlines are stripped from URLs): the same open redirect, one decode away.
  it("attack: a percent-encoded tab, newline or carriage return at the start of next (/%09/evil.example) is refused as %2f and %5c are, through login, logout and safeNext itself (was: only %2f and %5c were refused; /%09/evil.example came back as is, //evil.example after one decode)", async () => {
    const offsite = (value: string): boolean => {
      let decoded: string;
      try {
        decoded = decodeURIComponent(value);
      } catch {
        return false;
      }
      return new URL(decoded, ORIGIN).origin !== ORIGIN;
    };
    // The rule's own cases, held today: one decode of what safeNext returns stays on this origin.
    for (const held of ["/%2f/evil.example", "/%5c/evil.example", "/%2F%2Fevil.example"]) assert.equal(offsite(safeNext(held)), false, held);
    const bad = ["/%09/evil.example", "/%0a/evil.example", "/%0d/evil.example", "/%0D%0A/evil.example"];
    const leaks: string[] = [];
    for (const next of bad) if (offsite(safeNext(next))) leaks.push(`safeNext(${next}) -> ${safeNext(next)}`);
    const user = await fx.user(`r2-next-${++n}@example.org`);
    for (const next of bad) {
      const b = fx.browser();
      const login = await b.request("POST", "/auth/login", { body: { identifier: user.email, password: user.password, next } });
      assert.equal(login.statusCode, 200, login.body);
      if (offsite(login.json().next as string)) leaks.push(`login next ${next} -> ${login.json().next as string}`);
      const logout = await b.request("POST", "/auth/logout", { csrf: true, body: { next } });
      assert.equal(logout.statusCode, 200, logout.body);
      if (offsite(logout.json().next as string)) leaks.push(`logout next ${next} -> ${logout.json().next as string}`);
    }
    assert.deepEqual(leaks, [], "next values one decode away from another origin");
  });
});
