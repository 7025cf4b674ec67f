// Red team, round "cookie jar": cookies and browser state. The attacker controls a sibling subdomain, or a network
// position on plain HTTP for any host of the parent domain (so it can set cookies that are not `__Host-` prefixed for
// the parent domain, and toss the ones it sets), or has brief access to the victim's browser (so it can plant a cookie
// of its own there or copy one). Its aim: make the server read a cookie it planted as Bulwark's own (session swapping,
// login CSRF), have its own session promoted, outlive a logout, or find a Set-Cookie with weak attributes or a
// cacheable answer.
// Tried: a look-alike of `__Host-bulwark-session` whose name begins with a no-break space (byte 0xA0: no prefix for
// the browser, so a sibling or a network attacker may set it for the whole parent domain) sent over a real socket,
// alone and beside the victim's real cookie, and the same for `__Host-bulwark-device`; the attacker's own live session
// planted as the real cookie (brief access) then the victim signing in in that browser, with a CSRF token the attacker
// minted for its own session; a cookie copied before logout, replayed at once on every route that answers a session
// held at the second-factor gate (step-up with a right code included); the known-device Set-Cookie of every path that
// renews it (step-up, password change, reset completion).
// Held: an attacker's session planted as the real cookie is rotated away by the victim's login (new id and secret,
// the attacker's CSRF token dead); a logged-out cookie is refused everywhere at once, cleared, and answered no-store,
// and the right TOTP code it sent is not spent; every device line keeps the browser's id with the fixed attributes.
// Found (fixed since: names and values lose only spaces and tabs, withoutOWS in src/accounts/sessions/cookie.ts): the
// Cookie parser (parseCookieHeader) trimmed names with String.prototype.trim, which strips far more than the
// spaces and tabs RFC 6265 allows around a name — a no-break space among them (a 0xA0 byte, as Node decodes headers as
// latin1). A browser checks the `__Host-` prefix on the literal name, so "\u00a0__Host-bulwark-session" is an ordinary
// cookie that a sibling subdomain (or a man in the middle on any plain-http host of the domain) may set with
// Domain=<parent>; the server reads it as the session cookie. Beside the victim's real cookie the two values are
// "ambiguous" and the answer deletes the real one (Max-Age=0), leaving the planted one: from the next request on, the
// victim's browser is signed in to the attacker's account (session swapping, what docs/sessions.md says the prefix
// rules out). The device cookie is read by the same parser: a planted look-alike device id is adopted as the browser's
// own at the victim's login, and one beside a real device cookie makes the owner's known browser new.
// The same class of discrepancy as PortSwigger's "Cookie Chaos" prefix bypass (Django and ASP.NET trimmed Unicode
// whitespace off cookie names); whether a given browser stores and sends the raw 0xA0 byte is the browser's business —
// the server must not widen what counts as our name. ASVS 5.0 ids in the names (3.3.x and 3.5.x are the web frontend
// chapter, not in shared/asvs's selection; other red-team files cite them the same way).
import assert from "node:assert/strict";
import { connect } from "node:net";
import { describe, it } from "node:test";
import { DEVICE_COOKIE, SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { HOST, ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import type { LightMyRequestResponse } from "fastify";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();
const flows = authFlows(() => fx);
const SAME_ORIGIN = { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin" } as const;
/** A no-break space: what String.prototype.trim strips and RFC 6265 does not (a 0xA0 byte on the wire). */
const NBSP = "\u00a0";
let n = 0;
const email = (tag: string): string => `cj-${tag}-${++n}@example.org`;

interface RawAnswer {
  status: number;
  setCookies: string[];
  cacheControl: string | null;
  body: string;
}

/**
 * One request over a real socket, its head written as latin1 bytes (so "\u00a0" goes out as the single byte 0xA0, the
 * way a browser sends a cookie name it stored byte for byte): what Node's own header decoding makes of it is tested,
 * not what light-my-request passes through.
 */
async function raw(method: "GET" | "POST", path: string, cookie: string, body?: unknown): Promise<RawAnswer> {
  if (!fx.server.server.listening) await fx.server.listen({ host: "127.0.0.1", port: 0 });
  const { port } = fx.server.server.address() as { port: number };
  const payload = body === undefined ? "" : JSON.stringify(body);
  const head = [
    `${method} ${path} HTTP/1.1`, `Host: ${HOST}`, `Origin: ${ORIGIN}`, "Sec-Fetch-Site: same-origin", `Cookie: ${cookie}`,
    ...(body === undefined ? [] : ["Content-Type: application/json", `Content-Length: ${Buffer.byteLength(payload)}`]),
    "Connection: close", "", "",
  ].join("\r\n");
  const text = await new Promise<string>((resolve, reject) => {
    // Not half-closed: the server answers, then closes (Connection: close).
    const socket = connect(port, "127.0.0.1", () => socket.write(Buffer.concat([Buffer.from(head, "latin1"), Buffer.from(payload, "utf8")])));
    let out = "";
    socket.setEncoding("latin1").on("data", (d: string) => (out += d)).on("end", () => resolve(out)).on("error", reject);
  });
  const [headText = "", ...rest] = text.split("\r\n\r\n");
  const lines = headText.split("\r\n");
  const header = (name: string): string[] => lines.slice(1).filter((l) => l.toLowerCase().startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).trim());
  return { status: Number((lines[0] ?? "").split(" ")[1]), setCookies: header("set-cookie"), cacheControl: header("cache-control")[0] ?? null, body: rest.join("\r\n\r\n") };
}

function who(answer: RawAnswer): string {
  const json = JSON.parse(answer.body) as { authenticated: boolean; userId?: string };
  return json.authenticated ? (json.userId as string) : "nobody";
}

/** The Set-Cookie lines of an injected answer. */
function linesOf(res: LightMyRequestResponse): string[] {
  const set = res.headers["set-cookie"];
  return Array.isArray(set) ? set : set === undefined ? [] : [String(set)];
}

const deviceIdOf = (line: string | undefined): string | null => (line === undefined ? null : (/^__Host-bulwark-device=d2\.([A-Za-z0-9_-]{22})/.exec(line)?.[1] ?? null));

describe("cookie jar: look-alike names, planted sessions, logout, device lines", () => {
  it("attack: a sibling subdomain plants \"\\u00a0__Host-bulwark-session\" (no prefix for the browser) holding the attacker's session — the server does not read it as the session cookie, nor delete the victim's real cookie over it (ASVS 3.3.3, 7.2.1, 7.2.4) (was: the Cookie parser trimmed the no-break space off the name, read the planted cookie as ours, cleared the real one as ambiguous and swapped the victim into the attacker's session)", async () => {
    const victim = await fx.user(email("swap-victim"));
    const mallory = await fx.user(email("swap-mallory"));
    const mb = fx.browser({ newDevice: true });
    assert.equal((await mb.login(mallory.email, mallory.password)).statusCode, 200);
    const vb = fx.browser({ newDevice: true });
    const signedIn = await vb.login(victim.email, victim.password);
    assert.equal(signedIn.statusCode, 200, signedIn.body);
    const real = `${SESSION_COOKIE}=${vb.cookie as string}`;
    const knownDevice = (linesOf(signedIn).find((l) => l.startsWith(`${DEVICE_COOKIE}=`)) as string).split(";")[0] as string;
    // Set by https://evil.example.org (or a MITM on http://anything.example.org): `\xA0__Host-bulwark-session=…;
    // Domain=example.org; Path=/`. The name does not start with "__Host-", so the browser applies no prefix rule.
    const planted = `${NBSP}${SESSION_COOKIE}=${mb.cookie as string}`;
    const problems: string[] = [];

    // The browser sends both: its own host cookie and the planted domain cookie.
    const both = await raw("GET", "/auth/session", `${real}; ${planted}`);
    assert.equal(both.status, 200, both.body);
    if (who(both) !== victim.id) problems.push(`with the victim's cookie and the look-alike, the request was answered as ${who(both) === mallory.id ? "the attacker" : "nobody"}, not the victim`);
    const clearing = both.setCookies.find((l) => l.startsWith(`${SESSION_COOKIE}=;`) && /Max-Age=0/.test(l));
    if (clearing) problems.push(`the answer deletes the victim's real cookie (${clearing.split(";")[0]}…Max-Age=0) as "ambiguous", leaving the planted one in the jar`);
    // What the browser holds after that answer: the planted cookie alone.
    const alone = await raw("GET", "/auth/session", planted);
    if (who(alone) === mallory.id) problems.push("the look-alike alone signs the victim's browser in to the attacker's account (session swapping)");
    if (who(alone) === mallory.id) {
      // And everything the victim does from here lands in the attacker's account: the page gets a CSRF token for it.
      const csrf = await raw("GET", "/auth/csrf", planted);
      if (csrf.status === 200) problems.push("GET /auth/csrf hands the victim's page a CSRF token for the attacker's session");
    }

    // The known-device cookie goes through the same parser. A victim's browser without one (a new browser, or one the
    // sibling emptied) signs in carrying a planted look-alike whose device id the attacker chose.
    const chosen = "AttackerChoseThisId_01";
    const fresh = await raw("POST", "/auth/login", `${NBSP}${DEVICE_COOKIE}=d2.${chosen}`, { identifier: victim.email, password: victim.password });
    assert.equal(fresh.status, 200, fresh.body);
    const renewed = deviceIdOf(fresh.setCookies.find((l) => l.startsWith(`${DEVICE_COOKIE}=`)));
    if (renewed === chosen) problems.push(`the login adopted the planted look-alike's device id ${chosen} as this browser's own __Host-bulwark-device`);
    // Beside the owner's real device cookie, the look-alike makes the two "ambiguous": the owner's known browser is read
    // as none (a new device id is minted), losing the window of its own that keeps an outsider's guesses from locking it out.
    const beside = await raw("POST", "/auth/login", `${knownDevice}; ${NBSP}${DEVICE_COOKIE}=d2.${chosen}`, { identifier: victim.email, password: victim.password });
    assert.equal(beside.status, 200, beside.body);
    const kept = deviceIdOf(beside.setCookies.find((l) => l.startsWith(`${DEVICE_COOKIE}=`)));
    if (kept !== deviceIdOf(knownDevice)) problems.push(`beside the owner's real device cookie the look-alike made the known browser new (device id ${String(deviceIdOf(knownDevice))} replaced by ${String(kept)})`);

    assert.deepEqual(problems, [], `a cookie the browser never treated as __Host- was read as Bulwark's own (parseCookieHeader trims names with String.prototype.trim, stripping U+00A0):\n- ${problems.join("\n- ")}`);
  });

  it("attack: the attacker's own live session planted as the real cookie (brief access), with a CSRF token minted for it, is rotated away by the victim's login — new id and secret, the attacker's cookie and token dead, no session of the attacker's left (ASVS 7.2.4, 3.5.1)", async () => {
    const victim = await fx.user(email("plant-victim"));
    const mallory = await fx.user(email("plant-mallory"));
    const mb = fx.browser({ newDevice: true });
    assert.equal((await mb.login(mallory.email, mallory.password)).statusCode, 200);
    const planted = mb.cookie as string;
    const malloryToken = await mb.csrf(); // Mallory knows her session's secret: she can mint these at will.
    const vb = fx.browser({ newDevice: true });
    vb.cookie = planted;
    assert.equal((await vb.request("GET", "/auth/session")).json().userId, mallory.id, "the plant works as the real cookie: the precondition");

    // The sign-in page of a signed-in browser sends the token its session yields (a cookie-authenticated POST).
    const login = await vb.request("POST", "/auth/login", { csrf: true, body: { identifier: victim.email, password: victim.password } });
    assert.equal(login.statusCode, 200, login.body);
    assert.equal(linesOf(login).filter((l) => l.startsWith(`${SESSION_COOKIE}=`)).length, 1, "one session line");
    assert.ok(vb.cookie && vb.cookie !== planted, "a new token");
    assert.notEqual((vb.cookie as string).split(".")[0], planted.split(".")[0], "with a new id, not only a new secret");
    assert.equal((await vb.request("GET", "/auth/session")).json().userId, victim.id);

    // Mallory's copy of the planted cookie: no longer hers, and never the victim's.
    const copy = await mb.request("GET", "/auth/session");
    assert.equal(copy.json().authenticated, false, copy.body);
    assert.equal((await fx.app.accounts.sessions.validate(planted)).valid, false);
    assert.deepEqual(await fx.app.accounts.sessions.list(mallory.id), [], "the planted session ended with the rotation");
    // The token she minted for it is dead beside the victim's new cookie.
    const ride = await vb.request("POST", "/auth/logout", { csrf: malloryToken });
    assert.equal(ride.statusCode, 403, ride.body);
    assert.equal(ride.json().error.code, "BULWARK_ERR_CSRF");
    const listed = (await vb.request("GET", "/auth/sessions")).json().sessions as Array<{ current: boolean }>;
    assert.equal(listed.length, 1, "the victim's one session");
    assert.equal(listed[0]?.current, true);
  });

  it("attack: a cookie copied from a session held at the second-factor gate, replayed right after its logout with a CSRF token minted before it, is refused on every route (csrf, session, step-up with a right code, passkey options, re-authentication, logout, sign-out-everywhere, /api/v1), each answer clearing it and no-store, and its right code is not spent (ASVS 7.4.1, 14.3.2)", async () => {
    const u = await flows.withTOTP(email("logout"));
    const b = await flows.pending(u);
    const copy = `${SESSION_COOKIE}=${b.cookie as string}`;
    const token = await b.csrf();
    const out = await b.request("POST", "/auth/logout", { csrf: token });
    assert.equal(out.statusCode, 200, out.body);
    assert.equal(b.cookie, null, "the browser's cookie is cleared");
    const code = totpCode(u.secret, fx.clock.now());
    const json = { ...SAME_ORIGIN, cookie: copy, "x-csrf-token": token, "content-type": "application/json" };
    const cases: Array<[string, "GET" | "POST" | "DELETE", string, unknown]> = [
      ["csrf", "GET", "/auth/csrf", undefined],
      ["step-up with the right code", "POST", "/auth/mfa/verify", { totp: code }],
      ["passkey assertion options", "POST", "/auth/mfa/webauthn/authenticate/options", {}],
      ["re-authentication", "POST", "/auth/reauthenticate", { password: u.password, totp: code }],
      ["logout again", "POST", "/auth/logout", {}],
      ["sign out everywhere else", "DELETE", "/auth/sessions", undefined],
      ["sessions list", "GET", "/auth/sessions", undefined],
      ["api", "GET", "/api/v1/tokens", undefined],
    ];
    for (const [what, method, url, body] of cases) {
      const headers = body === undefined ? { ...SAME_ORIGIN, cookie: copy, "x-csrf-token": token } : json;
      const res = await fx.server.inject({ method, url, headers, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
      assert.equal(res.statusCode, 401, `${what}: ${res.body}`);
      const lines = linesOf(res);
      assert.equal(lines.length, 1, `${what}: one Set-Cookie line, the clearing one: ${lines.join(" | ")}`);
      assert.match(lines[0] as string, /^__Host-bulwark-session=; Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=0/, what);
      assert.equal(res.headers["cache-control"], "no-store", what);
    }
    const session = await fx.server.inject({ method: "GET", url: "/auth/session", headers: { host: HOST, cookie: copy } });
    assert.deepEqual(session.json(), { authenticated: false });
    assert.equal(session.headers["cache-control"], "no-store");
    const live = await fx.app.accounts.sessions.list(u.id);
    assert.equal(live.length, 1, "only the owner's aal-2 session from the enrolment is left: the replay created none");
    assert.equal(live[0]?.id, (await u.b.request("GET", "/auth/session")).json().sessionId);
    // The code the replay sent was never evaluated: the owner's own pending sign-in still passes with it.
    const again = await flows.pending(u);
    const verified = await again.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
    assert.equal(verified.statusCode, 200, verified.body);
  });

  it("attack: every answer that renews the known-device cookie (login, step-up, password change, reset completion) sends exactly one device line for the same device id, Path=/; Secure; HttpOnly; SameSite=Lax; a year; no Domain — and is no-store (ASVS 3.3.1–3.3.4, 14.3.2)", async () => {
    const u = await flows.withTOTP(email("device-lines"));
    const b: Browser = fx.browser({ newDevice: true });
    const LINE = /^__Host-bulwark-device=d2\.[A-Za-z0-9_-]{22}(\.[0-9a-f]{16}){0,10}; Path=\/; Secure; HttpOnly; SameSite=Lax; Max-Age=31536000$/;
    let deviceId: string | null = null;
    const check = (res: LightMyRequestResponse, what: string, tagged: boolean): void => {
      assert.equal(res.statusCode, 200, `${what}: ${res.body}`);
      const devices = linesOf(res).filter((l) => l.startsWith(`${DEVICE_COOKIE}=`));
      assert.equal(devices.length, 1, `${what}: one device line: ${devices.join(" | ")}`);
      const line = devices[0] as string;
      assert.match(line, LINE, what);
      assert.doesNotMatch(line, /domain=/i, what);
      if (tagged) assert.match(line, /\.[0-9a-f]{16};/, `${what}: remembered for the account`);
      deviceId ??= deviceIdOf(line);
      assert.equal(deviceIdOf(line), deviceId, `${what}: the browser keeps its device id`);
      assert.equal(res.headers["cache-control"], "no-store", what);
    };
    check(await b.login(u.email, u.password), "login (password only, at the gate)", false);
    fx.clock.advance(STEP);
    check(await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(u.secret, fx.clock.now()) } }), "step-up", true);
    check(await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: u.password, newPassword: "amber lanterns over quiet harbours" } }), "password change", true);
    const reset = await flows.resetToken(u.email);
    fx.clock.advance(STEP);
    const completed = await b.request("POST", "/auth/password/reset/complete", { csrf: true, body: { token: reset, newPassword: "copper kites above the salt marsh", totp: totpCode(u.secret, fx.clock.now()) } });
    check(completed, "reset completion", true);
  });
});
