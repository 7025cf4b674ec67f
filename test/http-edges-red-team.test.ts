// Red team, round "http edges": the edges of Bulwark's HTTP layer (src/http/server.ts, framing.ts, security-headers.ts,
// the authentication hook and the CSRF wall in src/http/auth/authenticate.ts, the /api/v1 guard). The attacker: a page
// on a sibling subdomain of the deployment (same-site, so the SameSite=Lax session cookie goes along with its POSTs:
// what a taken-over or user-content subdomain can do), riding a signed-in user's browser; and a client speaking odd but
// legal HTTP/1.x over a raw socket (no client-side normalisation).
// Tried: a same-site ride of an ordinary user's session to administrative /api/v1 routes, of a session past the
// re-authentication window to sensitive /auth and /api/v1 routes, and with body shapes the parser refuses
// (multipart/form-data, a body over the limit) — what each answers and what the audit log then says; requests Node
// answers itself (HTTP/1.1 without Host, an Expect other than 100-continue); the body of a request refused for its
// Expect header carrying a second request (desync); Content-Type spellings that name JSON in a parameter or a suffix;
// an HTTP/1.0 request without Host whose Origin names "undefined" or "null" as a host. Also run and not kept (held, and
// pinned elsewhere or without effect): Upgrade: websocket / h2c (served as plain requests), CONNECT (connection closed),
// OPTIONS * and GET * (our 404), a request target without "/" (our 400), HTTP/2.0 and HTTP/0.9 request lines, Host with
// userinfo, QUERY (our 400), 2000+ header lines to make Node drop Content-Encoding (Node's 16 KiB head limit answers 431
// long before its 2000-line count); method overrides, HEAD, OPTIONS, TRACE, path spellings, doubled browser headers,
// charset labels, Content-Encoding (test/http-sessions-csrf-attacks, request-shapes-red-team, http-server-attacks).
// Found (fixed since: the cross-site half of the CSRF wall — Origin / Sec-Fetch-Site, which needs no body — runs in
// onRequest right after authentication, before the guards, the freshness check and the body parser, and records
// auth.csrf.refused there; the token stays in preValidation. Node's own checks are replaced by ours: Host is required
// of HTTP/1.1 by our first onRequest hook (requireHostHeader off), and a 'checkExpectation' listener answers 417; both
// with our headers, request id, no-store and error body):
// - the CSRF wall judged a request after the access guard and the freshness check (onRequest) and after the body parser:
//   a sibling page riding an ordinary user's browser to POST /api/v1/users/<admin>/roles/admin wrote `api.refused` with
//   the victim as actor — a forged escalation attempt, exactly the event docs/audit-log.md says traces "a help desk
//   granting itself admin" — and no `auth.csrf.refused` naming the foreign origin; riding a session past the
//   re-authentication window wrote `auth.reauth.required` (docs: "a thief on a stale stolen cookie") instead; and a
//   multipart form or an oversized body was answered 415 / 413 with no trace at all (docs/http-auth.md: "a page on
//   another site riding the owner's browser leaves a trace");
// - two answers Node wrote itself left the pipeline bare: 400 to an HTTP/1.1 request without Host and 417 to an
//   unknown Expect — no security headers, no request id, no error body, no no-store though a session cookie was sent
//   (the same class as the bare 400/431 fixed in test/http-server-attacks.test.ts).
// Held (kept): a request answered 417 has its body discarded, never read as a second request; JSON named only in a
// parameter or a suffix of another type is never parsed as JSON; a Host-less request cannot pass the origin wall with
// an Origin of "https://undefined" or "https://null".
// ASVS ids: 16.2.1, 16.3.2, 16.3.3, 1.5.3, 13.4.x are in shared/asvs; 3.4.x (headers) and 3.5.x (CSRF) are ASVS 5.0's
// web frontend chapter, cited as the other red-team files cite them. Loopback and temp dirs only; SQLite, cheap argon2.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { HOST, ORIGIN, type Browser } from "../src/http/auth/test-client.ts";
import { SECURITY_HEADERS } from "../src/http/security-headers.ts";
import { auditHead, eventsSince, type AuditEventRow } from "./helpers/audit-events.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();
const MINUTE = 60_000;
/** A page on a sibling subdomain: same-site, so a SameSite=Lax cookie rides its POSTs (the browser says so). */
const SIBLING = "https://wiki.bulwark.test";
const SIBLING_HEADERS = { host: HOST, origin: SIBLING, "sec-fetch-site": "same-site", "sec-fetch-mode": "navigate", "sec-fetch-dest": "document" } as const;
let n = 0;

async function signedIn(tag: string): Promise<{ b: Browser; id: string; cookie: string }> {
  const user = await fx.user(`edges-${tag}-${++n}@example.org`);
  const b = fx.browser();
  const res = await b.login(user.email, user.password);
  assert.equal(res.statusCode, 200, res.body);
  return { b, id: user.id, cookie: `${SESSION_COOKIE}=${b.cookie}` };
}

/** A sibling page's HTML form posted through the victim's browser: the cookie goes along, no CSRF token can. */
function ride(cookie: string, method: "POST" | "DELETE", url: string, type = "application/x-www-form-urlencoded", payload = ""): Promise<LightMyRequestResponse> {
  return fx.server.inject({ method, url, headers: { ...SIBLING_HEADERS, cookie, "content-type": type }, payload });
}

const show = (events: AuditEventRow[]): string => events.map((e) => `${e.type}(actor ${e.actor}, ${JSON.stringify(e.data)})`).join("; ") || "none";

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Every HTTP/1.1 answer in `text`, in order (bodies by Content-Length or chunked). */
function parseAnswers(text: string): RawAnswer[] {
  const out: RawAnswer[] = [];
  let rest = text;
  while (rest.startsWith("HTTP/")) {
    const end = rest.indexOf("\r\n\r\n");
    if (end === -1) break;
    const [statusLine = "", ...lines] = rest.slice(0, end).split("\r\n");
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(statusLine.split(" ")[1]);
    rest = rest.slice(end + 4);
    let body = "";
    if (status === 100) {
      continue;
    } else if (headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      body = rest.slice(0, length);
      rest = rest.slice(length);
    } else if (headers["transfer-encoding"] === "chunked") {
      for (;;) {
        const lineEnd = rest.indexOf("\r\n");
        const size = parseInt(rest.slice(0, lineEnd), 16);
        rest = rest.slice(lineEnd + 2);
        if (!(size > 0)) {
          rest = rest.slice(2);
          break;
        }
        body += rest.slice(0, size);
        rest = rest.slice(size + 2);
      }
    }
    out.push({ status, headers, body });
  }
  return out;
}

let port = 0;
/** Writes `text` on a fresh connection and collects everything until the server closes it (bounded: 3 s). */
function raw(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    let out = "";
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(out);
    }, 3_000);
    socket.on("data", (d: Buffer) => (out += d.toString("latin1")));
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(text);
  });
}

describe("the CSRF wall judges a ridden request before anything refuses it on the victim's behalf", () => {
  it("attack: a sibling page rides an ordinary user's session to grant an administrator's role and lock an administrator — the ride is refused and recorded as a cross-site request (auth.csrf.refused naming the foreign origin), never as the user's own escalation attempt (api.refused with the victim as actor) (ASVS 3.5.1, 16.2.1, 16.3.3) (was: the access guard refused it first and recorded api.refused with the victim as actor, no auth.csrf.refused)", async () => {
    const victim = await signedIn("framed");
    const admin = await fx.user(`edges-admin-${++n}@example.org`, { roles: ["admin"] });
    const mark = await auditHead(fx.app.db.db);
    const grant = await ride(victim.cookie, "POST", `/api/v1/users/${victim.id}/roles/admin`);
    const lock = await ride(victim.cookie, "POST", `/api/v1/users/${admin.id}/lock`, "application/json", "{}");
    assert.equal(grant.statusCode, 403, grant.body);
    assert.equal(lock.statusCode, 403, lock.body);
    assert.equal((await fx.app.accounts.roles.rolesOf(victim.id)).includes("admin"), false, "the grant itself was refused");
    const events = await eventsSince(fx.app.db.db, mark);
    const forged = events.filter((e) => e.type === "api.refused" && e.actor === victim.id);
    const csrf = events.filter((e) => e.type === "auth.csrf.refused" && e.actor === victim.id);
    assert.deepEqual(
      forged.map((e) => e.data["route"]), [],
      `a page on ${SIBLING} made the audit log say that ${victim.id} (an ordinary user, who never asked) tried ${forged.map((e) => `${e.data["route"]} (${e.data["code"]})`).join(" and ")} — ` +
      `api.refused with the victim as actor, their session and address, the event a responder reads as an insider's escalation attempt; the access guard (onRequest) refused it before the CSRF wall (preValidation) saw the foreign origin. Events: ${show(events)}`,
    );
    assert.ok(csrf.some((e) => e.data["origin"] === SIBLING), `no auth.csrf.refused names the riding page's origin ${SIBLING}: the lead a responder follows is lost. Events: ${show(events)}`);
  });

  it("attack: a sibling page rides a session past the re-authentication window to end the owner's other sessions and mint an API token — recorded as a cross-site request naming the page, not as auth.reauth.required, the event of a thief on a stale stolen cookie (ASVS 3.5.1, 16.2.1, 16.3.3) (was: the freshness check refused first, recording auth.reauth.required without the origin)", async () => {
    const victim = await signedIn("stale");
    fx.clock.advance(11 * MINUTE); // past BULWARK_REAUTH_MINUTES (10), inside the 30-minute idle timeout
    const mark = await auditHead(fx.app.db.db);
    const end = await ride(victim.cookie, "DELETE", "/auth/sessions");
    assert.equal(end.statusCode, 403, end.body);
    fx.clock.advance(MINUTE + 1_000); // the next sampler window: each ride would be the first of its own
    const mint = await ride(victim.cookie, "POST", "/api/v1/tokens", "application/json", JSON.stringify({ name: "ci", scopes: ["accounts.read"] }));
    assert.equal(mint.statusCode, 403, mint.body);
    const events = await eventsSince(fx.app.db.db, mark);
    const misread = events.filter((e) => e.type === "auth.reauth.required" && e.actor === victim.id);
    const csrf = events.filter((e) => e.type === "auth.csrf.refused" && e.actor === victim.id && e.data["origin"] === SIBLING);
    assert.deepEqual(
      { reauthRequired: misread.map((e) => e.data["route"]), csrfRefused: csrf.map((e) => e.data["route"]) },
      { reauthRequired: [], csrfRefused: ["DELETE /auth/sessions", "POST /api/v1/tokens"] },
      `two rides by a page on ${SIBLING} were answered ${end.json().error.code} / ${mint.json().error.code} and recorded as a stale session's attempts (auth.reauth.required, without the origin), not as the cross-site requests they were: ` +
      `the freshness check (onRequest) ran before the CSRF wall (preValidation). Events: ${show(events)}`,
    );
  });

  it("attack: a sibling page rides a session with a multipart/form-data form, or a body over the limit — the refusal is recorded against the account as a cross-site request, as a urlencoded ride's is (ASVS 3.5.1, 16.3.3) (was: the body parser answered 415 / 413 first, nothing recorded)", async () => {
    const shapes: Array<[string, string, string]> = [
      ["multipart/form-data (an HTML form's enctype)", "multipart/form-data; boundary=x", `--x\r\nContent-Disposition: form-data; name="next"\r\n\r\n/\r\n--x--\r\n`],
      ["a urlencoded body over the 1 MiB limit", "application/x-www-form-urlencoded", `next=${"x".repeat(1_100_000)}`],
    ];
    const untraced: string[] = [];
    for (const [what, type, payload] of shapes) {
      const victim = await signedIn("shape");
      const mark = await auditHead(fx.app.db.db);
      const res = await ride(victim.cookie, "POST", "/auth/logout", type, payload);
      assert.ok(res.statusCode >= 400 && res.statusCode < 500, `${what}: ${res.statusCode}`);
      assert.notEqual(res.statusCode, 200, `${what}: the ride must not sign the victim out`);
      const events = await eventsSince(fx.app.db.db, mark, ["auth.csrf.refused"]);
      if (!events.some((e) => e.actor === victim.id && e.data["origin"] === SIBLING)) untraced.push(`${what}: answered ${res.statusCode} ${res.json().error.code}, nothing recorded`);
    }
    assert.deepEqual(untraced, [], `rides by a page on ${SIBLING} left no trace, because the body is parsed (and refused) before the CSRF wall judges the origin: ${untraced.join("; ")}`);
  });
});

describe("answers written outside Fastify's pipeline, and requests Node treats specially (raw socket)", () => {
  before(async () => {
    await fx.server.listen({ port: 0, host: "127.0.0.1" });
    port = (fx.server.server.address() as { port: number }).port;
  });

  it("attack: an HTTP/1.1 request without Host (400) and one with an Expect other than 100-continue (417), each with a session cookie, are answered with every security header, a request id, no-store and the JSON error body (ASVS 3.4.3, 3.4.4, 14.3.2) (was: Node's own bare 400 and 417)", async () => {
    const { cookie } = await signedIn("bare");
    const cases: Array<[string, number, string]> = [
      ["HTTP/1.1 without Host", 400, `GET /auth/session HTTP/1.1\r\nCookie: ${cookie}\r\nConnection: close\r\n\r\n`],
      ["Expect: 200-ok", 417, `GET /auth/session HTTP/1.1\r\nHost: ${HOST}\r\nCookie: ${cookie}\r\nExpect: 200-ok\r\nConnection: close\r\n\r\n`],
    ];
    const bare: string[] = [];
    for (const [what, status, request] of cases) {
      const [answer] = parseAnswers(await raw(request));
      assert.ok(answer, `${what}: an answer`);
      assert.equal(answer.status, status, `${what}: ${answer.status}`);
      const missing = Object.keys(SECURITY_HEADERS).filter((name) => answer.headers[name] !== SECURITY_HEADERS[name]);
      if (answer.headers["x-request-id"] === undefined) missing.push("x-request-id");
      if (answer.headers["cache-control"] !== "no-store") missing.push("cache-control: no-store");
      let code: unknown;
      try {
        code = (JSON.parse(answer.body) as { error?: { code?: unknown } }).error?.code;
      } catch {
        code = undefined;
      }
      if (typeof code !== "string") missing.push(`the error body (got ${JSON.stringify(answer.body)})`);
      if (missing.length > 0) bare.push(`${what} → ${status} without ${missing.join(", ")}`);
    }
    assert.deepEqual(bare, [], `Node wrote these answers itself (requireHostHeader, and no 'checkExpectation' listener), outside the hooks that add our headers: ${bare.join("; ")}`);
  });

  it("attack: a request refused for its Expect header carries a whole second request as its body — the body is discarded, never served as a request of its own (no desync behind a proxy that forwards Expect) (ASVS 1.5.3)", async () => {
    const { cookie } = await signedIn("desync");
    // Served, the smuggled request would answer with the session's state: an answer no request sent in the open asked for.
    const smuggled = `GET /auth/session HTTP/1.1\r\nHost: ${HOST}\r\nCookie: ${cookie}\r\n\r\n`;
    const text = await raw(
      `POST /auth/logout HTTP/1.1\r\nHost: ${HOST}\r\nExpect: 200-ok\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(smuggled)}\r\n\r\n${smuggled}` +
      `GET /healthz HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`,
    );
    const answers = parseAnswers(text);
    assert.equal(answers[0]?.status, 417, `the Expect is refused: ${JSON.stringify(text.slice(0, 300))}`);
    // After the 417 the connection may go on (the next request is /healthz) or be closed; never a third answer.
    assert.ok(answers.length <= 2, `one answer per request sent in the open: got ${answers.map((a) => a.status).join(", ")}`);
    assert.ok(!answers.some((a) => a.body.includes('"authenticated"')), `the body was served as a request of its own: ${JSON.stringify(text.slice(0, 600))}`);
    if (answers[1] !== undefined) assert.match(answers[1].body, /"status":"ok"/, "the second answer is /healthz's");
  });

  it("attack: an HTTP/1.0 request without Host, riding a session with its valid CSRF token, cannot pass the origin wall by naming \"undefined\", \"null\" or an empty host as its Origin (ASVS 3.5.1)", async () => {
    const { b, cookie } = await signedIn("hostless");
    const token = await b.csrf();
    for (const origin of ["https://undefined", "https://null", "https://", "null", "https://wiki.bulwark.test"]) {
      const text = await raw(`POST /auth/logout HTTP/1.0\r\nCookie: ${cookie}\r\nOrigin: ${origin}\r\nX-CSRF-Token: ${token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
      const [answer] = parseAnswers(text);
      assert.equal(answer?.status, 403, `Origin ${origin}: ${text.slice(0, 200)}`);
      assert.equal((JSON.parse(answer.body) as { error: { code: string } }).error.code, "BULWARK_ERR_CSRF", origin);
    }
    const still = await fx.server.inject({ method: "GET", url: "/auth/session", headers: { host: HOST, cookie } });
    assert.equal(still.json().authenticated, true, "no Host-less request signed the session out");
  });
});

describe("Content-Type spellings", () => {
  it("attack: JSON named only in a parameter or a suffix of another media type (text/plain; x=application/json, application/jsonx, application/json+x, text/json, a list) is never parsed as JSON: a login sent so signs nobody in, and nothing answers 5xx (ASVS 1.5.3, 2.2.1)", async () => {
    const user = await fx.user(`edges-types-${++n}@example.org`);
    const json = JSON.stringify({ identifier: user.email, password: user.password });
    const types = ["text/plain; x=application/json", "text/plain;application/json", "application/jsonx", "application/json+x", "application/x-json", "text/json",
      "application/json, text/plain", "application/x-www-form-urlencoded, application/json", "*/*", ";", "application/", "application/json\u0000"];
    for (const type of types) {
      const res = await fx.server.inject({ method: "POST", url: "/auth/login", headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": type }, payload: json });
      assert.ok(res.statusCode === 400 || res.statusCode === 415, `${JSON.stringify(type)}: ${res.statusCode} ${res.body.slice(0, 160)}`);
      assert.equal(res.headers["set-cookie"]?.toString().includes(`${SESSION_COOKIE}=ses_`) ?? false, false, `${JSON.stringify(type)}: signed in`);
      assert.equal(res.headers["x-frame-options"], "DENY", `${JSON.stringify(type)}: security headers`);
    }
    // The control: the same body under application/json (parameters and case allowed) signs in.
    const ok = await fx.server.inject({ method: "POST", url: "/auth/login", headers: { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin", "content-type": "Application/JSON ; charset=utf-8" }, payload: json });
    assert.equal(ok.statusCode, 200, ok.body);
  });
});
