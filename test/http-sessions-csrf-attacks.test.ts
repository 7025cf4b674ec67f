// Attacks over HTTP on sessions, CSRF and origin checks, redirects, security headers and body parsing.
// Each test is an attack that must fail: the test passes when the product is safe. They add to
// test/http-auth-sessions.test.ts and test/http-foundation.test.ts (content-type and shape tricks around the
// CSRF token, method overrides, login CSRF variants, rotated tokens, cookie tossing, logout's unvalidated body,
// headers on every error answer, caching of cookie-dependent answers, prototype-pollution keys).
// ASVS ids: V3 (3.3.x cookies, 3.4.x headers, 3.5.x CSRF, 3.7.2 redirects) is ASVS 5.0's web frontend chapter;
// 1.5.2, 7.2.x, 7.4.1 and 14.3.2 are in shared/asvs.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { InjectOptions, LightMyRequestResponse } from "fastify";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { HOST, ORIGIN, type Browser } from "../src/http/auth/test-client.ts";
import { buildServer } from "../src/http/server.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();

const SAME_ORIGIN = { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin" } as const;
let n = 0;

/** A fresh user signed in from a fresh browser. */
async function signedIn(tag: string): Promise<{ b: Browser; id: string; email: string; password: string }> {
  const user = await fx.user(`rt-${tag}-${++n}@example.org`);
  const b = fx.browser();
  const res = await b.login(user.email, user.password);
  assert.equal(res.statusCode, 200, res.body);
  return { b, ...user };
}

function cookieOf(b: Browser): string {
  assert.ok(b.cookie, "signed in");
  return `${SESSION_COOKIE}=${b.cookie}`;
}

async function whoIs(cookie: string): Promise<{ authenticated: boolean; userId?: string; res: LightMyRequestResponse }> {
  const res = await fx.server.inject({ method: "GET", url: "/auth/session", headers: { host: HOST, cookie } });
  assert.equal(res.statusCode, 200, res.body);
  return { ...(res.json() as { authenticated: boolean; userId?: string }), res };
}

/** Every header applySecurityHeaders promises, with HSTS since the fixture is published over https. */
function assertSecurityHeaders(res: LightMyRequestResponse, what: string): void {
  assert.match(String(res.headers["content-security-policy"]), /default-src 'none'.*frame-ancestors 'none'/, what);
  assert.equal(res.headers["x-content-type-options"], "nosniff", what);
  assert.equal(res.headers["x-frame-options"], "DENY", what);
  assert.equal(res.headers["referrer-policy"], "no-referrer", what);
  assert.equal(res.headers["cross-origin-resource-policy"], "same-origin", what);
  assert.equal(res.headers["cross-origin-opener-policy"], "same-origin", what);
  assert.match(String(res.headers["strict-transport-security"]), /max-age=\d+/, what);
  assert.equal(res.headers["access-control-allow-origin"], undefined, `${what}: no CORS grant`);
  assert.equal(res.headers["access-control-allow-credentials"], undefined, `${what}: no CORS grant`);
}

describe("CSRF token: content-type and shape tricks", () => {
  it("attack: a token smuggled as text/plain, multipart, an array, an object, a duplicated header or under a case variant is refused; the session survives (ASVS 3.5.1)", async () => {
    const { b } = await signedIn("shape");
    const token = await b.csrf();
    const cookie = cookieOf(b);
    const post = (contentType: string, payload: string, extra: Record<string, string> = {}) =>
      fx.server.inject({ method: "POST", url: "/auth/logout", headers: { ...SAME_ORIGIN, cookie, "content-type": contentType, ...extra }, payload });
    const attempts: Array<[string, Promise<LightMyRequestResponse>]> = [
      // A cross-site "simple request" can only send these three types; none may carry a token we read.
      ["text/plain JSON", post("text/plain", JSON.stringify({ _csrf: token }))],
      ["multipart", post("multipart/form-data; boundary=x", `--x\r\nContent-Disposition: form-data; name="_csrf"\r\n\r\n${token}\r\n--x--\r\n`)],
      ["form, wrong case", post("application/x-www-form-urlencoded", `_CSRF=${token}`)],
      ["form, token as name", post("application/x-www-form-urlencoded", `${token}=_csrf`)],
      // Ajv's coerceTypes would unwrap a one-element array for a schema: the CSRF check runs before, on the raw body.
      ["JSON array", post("application/json", JSON.stringify({ _csrf: [token] }))],
      ["JSON object", post("application/json", JSON.stringify({ _csrf: { toString: token, valueOf: token } }))],
      ["JSON string body", post("application/json", JSON.stringify(token))],
      ["JSON null body", post("application/json", "null")],
      // Two x-csrf-token headers arrive joined by Node ("a, b"); an empty header is not replaced by the body's.
      ["duplicated header", post("application/json", "{}", { "x-csrf-token": `${token}, ${token}` })],
      ["empty header, good body", post("application/json", JSON.stringify({ _csrf: token }), { "x-csrf-token": "" })],
      ["truncated header token", post("application/json", "{}", { "x-csrf-token": token.slice(0, 63) })],
    ];
    for (const [what, pending] of attempts) {
      const res = await pending;
      assert.ok(res.statusCode === 403 || res.statusCode === 415, `${what}: ${res.statusCode} ${res.body}`);
      assert.notEqual(res.headers["set-cookie"]?.toString().includes("Max-Age=0"), true, `${what}: no logout`);
    }
    assert.equal((await whoIs(cookie)).authenticated, true, "still signed in after every refusal");
  });

  it("attack: __proto__ / constructor.prototype keys (escaped or in a form) neither pollute Object.prototype nor supply _csrf (ASVS 1.5.2, 3.5.1)", async () => {
    const { b } = await signedIn("proto");
    const token = await b.csrf();
    const cookie = cookieOf(b);
    const bodies: Array<[string, string]> = [
      ["application/json", JSON.stringify({ ["__proto__"]: { _csrf: token } }).replace('"__proto__"', '"\\u005f_proto__"')],
      ["application/json", `{"c\\u006fnstructor":{"prototype":{"_csrf":"${token}","polluted":true}}}`],
      ["application/json", `{"__proto__":{"_csrf":"${token}","polluted":true}}`],
      ["application/x-www-form-urlencoded", `__proto__=${token}&constructor=x&prototype=y&toString=z`],
      ["application/x-www-form-urlencoded", `__proto__%5B_csrf%5D=${token}&constructor%5Bprototype%5D%5Bpolluted%5D=1`],
    ];
    for (const [type, payload] of bodies) {
      const res = await fx.server.inject({ method: "POST", url: "/auth/logout", headers: { ...SAME_ORIGIN, cookie, "content-type": type }, payload });
      assert.ok(res.statusCode === 400 || res.statusCode === 403, `${payload.slice(0, 40)}: ${res.statusCode} ${res.body}`);
    }
    // The same keys on a pre-login form route: an ordinary failed login, never a 500.
    const login = await fx.server.inject({
      method: "POST", url: "/auth/login", headers: { ...SAME_ORIGIN, "content-type": "application/x-www-form-urlencoded" },
      payload: "identifier=nobody%40example.org&password=x&__proto__=1&constructor=2&hasOwnProperty=3",
    });
    assert.equal(login.statusCode, 401, login.body);
    assert.equal((Object.prototype as Record<string, unknown>)["polluted"], undefined);
    assert.equal((Object.prototype as Record<string, unknown>)["_csrf"], undefined);
    assert.equal((await whoIs(cookie)).authenticated, true);
  });

  it("attack: a 200 000-deep JSON body is answered (no stack overflow, no 500) before and after the CSRF wall", async () => {
    const { b } = await signedIn("deep");
    const deep = "[".repeat(200_000) + "]".repeat(200_000);
    const anon = await fx.server.inject({ method: "POST", url: "/auth/login", headers: { ...SAME_ORIGIN, "content-type": "application/json" }, payload: `{"identifier":"a@example.org","password":"x","z":${deep}}` });
    assert.ok([400, 401].includes(anon.statusCode), `${anon.statusCode} ${anon.body.slice(0, 120)}`);
    const cookieAuth = await fx.server.inject({ method: "POST", url: "/auth/logout", headers: { ...SAME_ORIGIN, cookie: cookieOf(b), "content-type": "application/json" }, payload: `{"z":${deep}}` });
    assert.equal(cookieAuth.statusCode, 403, cookieAuth.body.slice(0, 120));
  });
});

describe("CSRF: methods and origins", () => {
  it("attack: method-override headers, _method, HEAD, OPTIONS and TRACE reach no state-changing route; no CORS preflight is granted; TRACE is not served (ASVS 3.5.3, 13.4.4)", async () => {
    const victim = await signedIn("override");
    const phone = fx.browser();
    assert.equal((await phone.login(victim.email, victim.password)).statusCode, 200);
    const token = await victim.b.csrf();
    const override = { "x-http-method-override": "DELETE", "x-http-method": "DELETE", "x-method-override": "DELETE" };
    const tries: Array<[string, string, Record<string, string>]> = [
      ["POST", "/auth/sessions", { ...override, "x-csrf-token": token }],
      ["POST", "/auth/sessions?_method=DELETE", { "x-csrf-token": token }],
      ["GET", "/auth/sessions", override],
      ["GET", "/auth/logout", {}],
      ["HEAD", "/auth/logout", {}],
      ["OPTIONS", "/auth/logout", { "access-control-request-method": "POST", "access-control-request-headers": "x-csrf-token" }],
      ["OPTIONS", "/auth/sessions", { "access-control-request-method": "DELETE" }],
      ["PUT", "/auth/sessions", { "x-csrf-token": token }],
      ["PATCH", "/auth/logout", { "x-csrf-token": token }],
      // TRACE would echo the request, cookie included, to a script (cross-site tracing).
      ["TRACE", "/auth/session", {}],
      ["TRACE", "/auth/logout", {}],
    ];
    for (const [method, url, headers] of tries) {
      const res = await fx.server.inject({ method: method as "GET", url, headers: { ...SAME_ORIGIN, cookie: cookieOf(victim.b), ...headers } });
      // 404 (no such route), or 403 when the CSRF wall sees an unsafe method first; only a plain GET is served.
      assert.ok([403, 404].includes(res.statusCode) || (method === "GET" && res.statusCode === 200), `${method} ${url}: ${res.statusCode}`);
      assert.equal(res.headers["access-control-allow-origin"], undefined, `${method} ${url}`);
      assert.equal(res.headers["access-control-allow-methods"], undefined, `${method} ${url}`);
      assert.ok(!res.body.includes(victim.b.cookie as string), `${method} ${url}: the cookie is never echoed`);
    }
    const list = await victim.b.request("GET", "/auth/sessions");
    assert.equal(list.json().sessions.length, 2, "no session was ended");
    assert.equal((await whoIs(cookieOf(phone))).authenticated, true);
  });

  it("attack: login CSRF from a sibling subdomain, a sandboxed frame, a cross-site HTML form or a text/plain fetch is refused and sets no cookie (ASVS 3.5.1)", async () => {
    const ana = await fx.user(`rt-logincsrf-${++n}@example.org`);
    const json = JSON.stringify({ identifier: ana.email, password: ana.password });
    const form = new URLSearchParams({ identifier: ana.email, password: ana.password }).toString();
    const cases: Array<[Record<string, string>, string, string]> = [
      [{ origin: "https://evil.bulwark.test", "sec-fetch-site": "same-site" }, "application/json", json],
      [{ origin: "null", "sec-fetch-site": "cross-site" }, "application/x-www-form-urlencoded", form],
      [{ origin: "null" }, "application/x-www-form-urlencoded", form],
      [{ origin: "https://evil.example", "sec-fetch-site": "cross-site" }, "application/x-www-form-urlencoded", form],
      [{ origin: "https://evil.example", "sec-fetch-site": "cross-site" }, "text/plain", json],
      [{ "sec-fetch-site": "cross-site" }, "application/json", json],
      // A same-origin claim or a navigation marker contradicted by Origin.
      [{ origin: "https://evil.example", "sec-fetch-site": "same-origin" }, "application/json", json],
      [{ origin: "https://evil.example", "sec-fetch-site": "none" }, "application/json", json],
      // Forwarding headers are not consulted: only the Host the browser itself sent.
      [{ origin: "https://evil.example", "x-forwarded-host": "evil.example", forwarded: "host=evil.example;proto=https" }, "application/json", json],
      [{ origin: `${ORIGIN}.evil.example`, "sec-fetch-site": "cross-site" }, "application/json", json],
    ];
    for (const [headers, type, payload] of cases) {
      const res = await fx.server.inject({ method: "POST", url: "/auth/login", headers: { host: HOST, "content-type": type, ...headers }, payload });
      assert.equal(res.statusCode, 403, `${JSON.stringify(headers)} ${type}: ${res.body}`);
      assert.equal(res.json().error.code, "BULWARK_ERR_CSRF");
      assert.equal(res.headers["set-cookie"], undefined, JSON.stringify(headers));
    }
    assert.deepEqual(await fx.app.accounts.sessions.list(ana.id), [], "no session was created");
  });

  it("attack: a CSRF token leaked before a re-authentication, or from a session that was logged out, is dead in the new session (ASVS 7.2.4, 7.4.1, 3.5.1)", async () => {
    const { b, password, email } = await signedIn("rotate");
    const before = await b.csrf();
    const reauth = await b.request("POST", "/auth/reauthenticate", { csrf: before, body: { password } });
    assert.equal(reauth.statusCode, 200, reauth.body);
    const stale = await b.request("POST", "/auth/logout", { csrf: before });
    assert.equal(stale.statusCode, 403, "a token of the replaced session");
    assert.equal(stale.json().error.code, "BULWARK_ERR_CSRF");
    const beforeLogout = await b.csrf();
    assert.equal((await b.request("POST", "/auth/logout", { csrf: beforeLogout })).statusCode, 200);
    assert.equal((await b.login(email, password)).statusCode, 200);
    for (const old of [before, beforeLogout]) {
      const res = await b.request("DELETE", "/auth/sessions", { csrf: old });
      assert.equal(res.statusCode, 403, "a token of a logged-out session");
    }
    assert.equal((await b.request("POST", "/auth/logout", { csrf: true })).statusCode, 200, "the new session's own token works");
  });
});

describe("session cookie tricks", () => {
  it("attack: cookie tossing — the attacker's own valid session under a look-alike name or beside the victim's never signs the victim in as the attacker (ASVS 3.3.1, 7.2.1)", async () => {
    const victim = await signedIn("tossv");
    const mallory = await signedIn("tossm");
    const v = victim.b.cookie as string;
    const m = mallory.b.cookie as string;
    for (const cookie of [`bulwark-session=${m}`, `__host-bulwark-session=${m}`, `__Secure-bulwark-session=${m}`, `__Host-bulwark-session.=${m}`, `__Host-bulwark-session%3D=${m}`]) {
      assert.equal((await whoIs(cookie)).authenticated, false, cookie.slice(0, 30));
    }
    // Two different values for our own name: ambiguous, so neither is used and the cookie is cleared.
    for (const cookie of [`${SESSION_COOKIE}=${m}; ${SESSION_COOKIE}=${v}`, `${SESSION_COOKIE}=${v}; ${SESSION_COOKIE}=${m}`, `${SESSION_COOKIE}=${v}; ${SESSION_COOKIE}=`]) {
      const who = await whoIs(cookie);
      assert.equal(who.authenticated, false, cookie.slice(-20));
      assert.match(String(who.res.headers["set-cookie"]), /Max-Age=0/);
    }
    const mixed = await whoIs(`bulwark-session=${m}; ${SESSION_COOKIE}=${v}; __Secure-bulwark-session=${m}`);
    assert.equal(mixed.userId, victim.id, "the look-alikes are ignored, the real cookie is used");
    // The victim's session id with Mallory's secret: refused, and neither real session is harmed by the attempt.
    const grafted = `${v.split(".")[0]}.${m.split(".")[1]}`;
    assert.equal((await whoIs(`${SESSION_COOKIE}=${grafted}`)).authenticated, false);
    assert.equal((await whoIs(`${SESSION_COOKIE}=${v}`)).userId, victim.id);
    assert.equal((await whoIs(`${SESSION_COOKIE}=${m}`)).userId, mallory.id);
  });

  it("attack: a huge, junk-filled or binary Cookie header is answered as anonymous, never a 500", async () => {
    const bad = [
      `${SESSION_COOKIE}=${"a".repeat(100_000)}`,
      `${SESSION_COOKIE}=ses_${"a".repeat(26)}.${"A".repeat(43)}\u0000`,
      `${SESSION_COOKIE}=ses_${"A".repeat(26)}.${"A".repeat(43)}`,
      `${SESSION_COOKIE}=${"x=;".repeat(20_000)}`,
      ";".repeat(50_000) + `${SESSION_COOKIE}="`,
      `${SESSION_COOKIE}=ses_${"a".repeat(26)}.${"A".repeat(43)}; ${SESSION_COOKIE}=ses_${"a".repeat(26)}.${"A".repeat(43)}`,
    ];
    for (const cookie of bad) {
      const res = await fx.server.inject({ method: "GET", url: "/auth/session", headers: { host: HOST, cookie } });
      assert.equal(res.statusCode, 200, `${cookie.slice(0, 40)}: ${res.body}`);
      assert.equal(res.json().authenticated, false);
      assert.equal(res.headers["cache-control"], "no-store");
    }
  });
});

describe("redirects", () => {
  it("attack: open redirect through logout's next, which has no body schema: control characters, unicode look-alikes, non-strings (ASVS 3.7.2)", async () => {
    const nexts: Array<[unknown, boolean]> = [
      ["/\t/evil.example", false], ["/\n/evil.example", false], ["/\r\n/evil.example", false], ["\u0000//evil.example", false], ["/\\evil.example", false],
      ["https:evil.example", false], ["/%2F%2Fevil.example", false], ["/%5C%5Cevil.example", false], ["\u3000//evil.example", false], [" //evil.example", false],
      ["/\u2215\u2215evil.example", false], ["/\uff0f\uff0fevil.example", false], [["//evil.example"], false], [{ toString: "//evil.example" }, false],
      // The same through an HTML form (form-encoded, where the body is all strings).
      ["/\t/evil.example", true], ["//evil.example", true], ["/\\evil.example", true],
    ];
    for (const [next, form] of nexts) {
      const { b } = await signedIn("next");
      const res = await b.request("POST", "/auth/logout", { csrf: true, form, body: form ? { next: next as string } : { next } });
      assert.equal(res.statusCode, 200, `${JSON.stringify(next)}: ${res.body}`);
      const out = res.json().next as string;
      assert.equal(typeof out, "string");
      assert.equal(new URL(out, ORIGIN).origin, ORIGIN, `${JSON.stringify(next)} -> ${out}`);
      assert.ok(out.startsWith("/") && !/^\/(\/|\\|%2f|%5c)/i.test(out), `${JSON.stringify(next)} -> ${out}`);
      assert.doesNotMatch(out, /[\u0000-\u0020\u007f]/, `${JSON.stringify(next)}: no control character or space survives`);
    }
  });
});

describe("security headers and caching", () => {
  it("attack: every error answer (404 echoing markup, 400, 401, 403, 413, 415) and HEAD carries the security headers, is JSON, and is not cached when a cookie was sent (ASVS 3.4.3, 3.4.4, 3.4.6, 14.3.2)", async () => {
    const { b } = await signedIn("headers");
    const cookie = cookieOf(b);
    const json = { ...SAME_ORIGIN, cookie, "content-type": "application/json" };
    const token = await b.csrf();
    const cases: Array<[string, number, InjectOptions]> = [
      ["404 with markup in the path", 404, { method: "GET", url: "/%3Csvg%20onload=alert(1)%3E", headers: { host: HOST, cookie } }],
      ["404 under /auth", 404, { method: "GET", url: "/auth/%3Cscript%3E", headers: { host: HOST, cookie } }],
      ["400 bad JSON", 400, { method: "POST", url: "/auth/logout", headers: { ...json, "x-csrf-token": token }, payload: "{" }],
      ["400 bad form", 400, { method: "POST", url: "/auth/logout", headers: { ...json, "content-type": "application/x-www-form-urlencoded", "x-csrf-token": token }, payload: "a=%FF" }],
      ["403 CSRF", 403, { method: "POST", url: "/auth/logout", headers: json, payload: "{}" }],
      ["413", 413, { method: "POST", url: "/auth/logout", headers: { ...json, "x-csrf-token": token }, payload: JSON.stringify({ a: "x".repeat(1_100_000) }) }],
      ["415", 415, { method: "POST", url: "/auth/logout", headers: { ...json, "content-type": "application/xml", "x-csrf-token": token }, payload: "<a/>" }],
      ["401 bad bearer", 401, { method: "GET", url: "/auth/sessions", headers: { host: HOST, cookie, authorization: "Bearer nope" } }],
      ["HEAD /auth/session", 200, { method: "HEAD", url: "/auth/session", headers: { host: HOST, cookie } }],
      ["HEAD /auth/csrf", 200, { method: "HEAD", url: "/auth/csrf", headers: { host: HOST, cookie } }],
      ["cross-site read of /auth/csrf", 200, { method: "GET", url: "/auth/csrf", headers: { host: HOST, cookie, origin: "https://evil.example", "sec-fetch-site": "cross-site", "sec-fetch-mode": "no-cors" } }],
    ];
    for (const [what, status, request] of cases) {
      const res = await fx.server.inject(request);
      assert.equal(res.statusCode, status, `${what}: ${res.body.slice(0, 160)}`);
      assertSecurityHeaders(res, what);
      assert.equal(res.headers["cache-control"], "no-store", what);
      if (request.method !== "HEAD") assert.match(String(res.headers["content-type"]), /^application\/json/, what);
      assert.doesNotMatch(res.body, /<svg|<script/i, `${what}: markup is never echoed raw`);
    }
    assert.equal((await whoIs(cookie)).authenticated, true);
  });

  it("attack: a 500 answer to a signed-in request keeps every security header and no-store, and leaks nothing (ASVS 3.4.4, 14.3.2, 16.5.1)", async () => {
    const { b } = await signedIn("boom");
    const server = await buildServer(fx.app);
    try {
      server.get("/rt-boom", async () => {
        throw new Error("postgres://admin:hunter2@db failed");
      });
      const res = await server.inject({ method: "GET", url: "/rt-boom", headers: { host: HOST, cookie: cookieOf(b) } });
      assert.equal(res.statusCode, 500);
      assertSecurityHeaders(res, "500");
      assert.equal(res.headers["cache-control"], "no-store");
      assert.doesNotMatch(res.body, /hunter2|postgres/);
    } finally {
      await server.close();
    }
  });

  it("attack: a dead cookie sent to a publicly cacheable asset does not let a shared cache store the Set-Cookie that clears it (ASVS 14.3.2)", async () => {
    for (const url of ["/assets/bulwark-pages.js", "/assets/bulwark-pages.css", "/healthz"]) {
      const res = await fx.server.inject({ method: "GET", url, headers: { host: HOST, cookie: `${SESSION_COOKIE}=ses_${"a".repeat(26)}.${"A".repeat(43)}` } });
      assert.equal(res.statusCode, 200, url);
      assert.match(String(res.headers["set-cookie"]), /^__Host-bulwark-session=;.*Max-Age=0/, url);
      assert.equal(res.headers["cache-control"], "no-store", `${url}: a cached clearing Set-Cookie would sign out everyone behind the cache`);
    }
  });

  // The router percent-decodes the path, so /%61uth/session reaches GET /auth/session: the no-store rule must key on
  // the matched route, not on the raw URL (an answer that depends on the cookie, sessionReplaced, was cacheable).
  it("attack: a cookie-dependent /auth answer reached through a percent-encoded path is still marked no-store (ASVS 14.3.2)", async () => {
    const { b, password } = await signedIn("encoded");
    const replaced = cookieOf(b);
    assert.equal((await b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password } })).statusCode, 200);
    for (const url of ["/auth/session", "/%61uth/session", "/auth/%73ession", "/%61%75%74%68/session?x=1"]) {
      const res = await fx.server.inject({ method: "GET", url, headers: { host: HOST, cookie: replaced } });
      assert.equal(res.statusCode, 200, url);
      assert.equal(res.json().sessionReplaced, true, `${url}: the answer depends on the cookie sent`);
      assert.equal(res.headers["cache-control"], "no-store", url);
    }
  });
});
