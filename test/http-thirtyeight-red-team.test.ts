// Red team 38: the HTTP account machinery (src/http/auth, src/http/api, src/accounts/{sessions,csrf,mfa,tokens,
// password-reset,email-change,roles}), looking for gaps between features rather than in one of them.
//
// Tried:
// - Every route of the router, walked from Fastify's own route tree, called by a session held at each of the three
//   sign-in gates (second factor due, MFA enrolment due for an administrator, password change due) with a valid CSRF
//   token and same-origin headers: only the routes that list the gate (and the public ones) may answer anything but the
//   gate's refusal (ASVS 6.3.3, 8.2.1).
// - A CSRF token read by the password-only session at the second-factor gate, replayed after the step-up replaced that
//   session (ASVS 3.5.1, 7.2.4).
// - One recovery code raced between two sessions held at the gate, and between a step-up and a reset completion; two
//   completions of one reset link in parallel; a login with the old password racing the reset; a step-up racing the
//   reset (ASVS 6.5.1, 6.4.3, 7.4.3).
// - A session held at the second-factor gate stepping up after an administrator ended the account's sessions (ASVS 7.4.1).
// - A TOTP step spent at the step-up presented again, in the same 30 s, with a reset link (ASVS 6.5.1).
// - A reset link's passkey challenge presented at a sign-in's second-factor step (ASVS 6.4.3, 6.5.x).
// - An email-change link asked for before a password reset (or before an administrator ended the account's sessions),
//   confirmed after it (ASVS 7.4.3, 7.4.1).
// - An API token's scope after the role behind it is taken away, and a token minting another with it (ASVS 8.2.1, 8.3.1).
// - Over a real loopback socket: Origin, Sec-Fetch-Site and x-csrf-token each sent twice (Node joins repeats of these
//   into one comma-separated value), and a lower-case or mixed-case method on an unsafe route.
// - HEAD and OPTIONS on unsafe /auth routes; a text/plain body carrying `_csrf`; a cross-site text/plain logout.
// - Path spellings of /api/v1 routes (double slash, %2F, case, dot segments, `;`, NUL) with a token lacking the permission.
// - `next` values: /\evil, /%5Cevil, //evil, tab and newline inside, /%2F/evil, dot segments that collapse to //evil,
//   schemes, and double encoding (ASVS 3.7.2).
//
// Found: nothing that breaks a security promise; every attack here is refused, and each "held:" test records that the
// code holds, so a regression fails it. One wrong answer, fixed since: the per-process lock on one reset link answered a
// second, parallel completion with the refusal of a spent link even when the first then failed and left the link good
// (now 409 BULWARK_ERR_RESET_BUSY, still recorded as a refused use of the genuine link).
import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { connect, type AddressInfo } from "node:net";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { requirePasswordChange } from "../src/accounts/users/admin-changes.ts";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { GOOD_PASSWORD, HOST, ORIGIN, totpCode, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows, EMAIL_LINK, STEP } from "./helpers/auth-flows.ts";
import { routesFromTree } from "./helpers/routes.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const fx = sharedFixture();
const flows = authFlows(() => fx);

const SAME_ORIGIN = { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin" } as const;
/** A well-formed session id that names no session. */
const NO_SESSION = `ses_${"a".repeat(26)}`;
const NEW_PASSWORD = "copper lanterns over the quiet harbour";
const OTHER_PASSWORD = "seven herons circling a granite quarry";

let n = 0;
const address = (tag: string): string => `rt38-${tag}-${++n}@example.org`;

function cookieOf(b: Browser): string {
  assert.ok(b.cookie, "the browser holds a session cookie");
  return `${SESSION_COOKIE}=${b.cookie}`;
}

async function whoIs(cookie: string): Promise<{ authenticated: boolean; userId?: string; aal?: number }> {
  const res = await fx.server.inject({ method: "GET", url: "/auth/session", headers: { host: HOST, cookie } });
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as { authenticated: boolean; userId?: string; aal?: number };
}

function codeOf(res: LightMyRequestResponse): string | undefined {
  try {
    return (res.json() as { error?: { code?: string } }).error?.code;
  } catch {
    return undefined;
  }
}

async function resetComplete(body: Record<string, unknown>): Promise<LightMyRequestResponse> {
  return fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body });
}

async function canLogIn(email: string, password: string): Promise<boolean> {
  const res = await fx.browser({ newDevice: true }).login(email, password);
  return res.statusCode === 200;
}

// ---------------------------------------------------------------------------------------------------------------------

type GateName = "mfa-verify" | "mfa-enrol" | "password-change";

/** Routes anyone may call (access: public): not the gates' business. */
const PUBLIC = new Set([
  "GET /healthz", "POST /auth/login", "GET /auth/session", "POST /auth/password/reset/request", "POST /auth/password/reset/webauthn/options",
  "POST /auth/password/reset/complete", "POST /auth/register", "POST /auth/email/confirm", "GET /reset-password", "GET /confirm-email",
  "POST /confirm-email/account", "GET /assets/bulwark-pages.js", "GET /assets/bulwark-pages.css",
]);
/** Reachable at every gate (ANY_GATE). Not called: logout would end the session under test. */
const ANY_GATE = new Set(["POST /auth/logout", "GET /auth/csrf"]);
/** What each gate lists as reachable, as docs/http-auth.md describes it. */
const REACHABLE: Record<GateName, ReadonlySet<string>> = {
  "mfa-verify": new Set(["POST /auth/mfa/verify", "POST /auth/mfa/webauthn/authenticate/options"]),
  "mfa-enrol": new Set([
    "GET /auth/mfa", "POST /auth/mfa/totp", "POST /auth/mfa/totp/confirm", "POST /auth/mfa/recovery-codes", "POST /auth/mfa/webauthn/register/options",
    "POST /auth/mfa/webauthn/register", "POST /auth/reauthenticate", "POST /auth/reauthenticate/webauthn/options",
  ]),
  "password-change": new Set(["POST /auth/password/change"]),
};
const GATE_CODE: Record<GateName, string> = {
  "mfa-verify": "BULWARK_ERR_MFA_REQUIRED",
  "mfa-enrol": "BULWARK_ERR_MFA_ENROLMENT_REQUIRED",
  "password-change": "BULWARK_ERR_PASSWORD_CHANGE_REQUIRED",
};

/**
 * Calls every routed method and path (HEAD aside) but the public ones and those `gate` lists, with the session of `b`,
 * a valid CSRF token and same-origin headers, and returns what was not refused with the gate's own answer.
 */
async function gateSweep(b: Browser, gate: GateName): Promise<{ problems: string[]; checked: number }> {
  const csrf = await b.csrf();
  const routes = routesFromTree(fx.server.printRoutes({ commonPrefix: false }))
    .flatMap((r) => r.methods.filter((m) => m !== "HEAD").map((m) => `${m} ${r.url}`));
  const problems: string[] = [];
  let checked = 0;
  for (const route of routes) {
    if (PUBLIC.has(route) || ANY_GATE.has(route) || REACHABLE[gate].has(route)) continue;
    const [method, url] = route.split(" ") as [string, string];
    const path = url.replace(/:id\b/g, NO_SESSION).replace(/:role\b/g, "auditor").replace(/:name\b/g, "auditor");
    const withBody = method === "POST";
    const res = await fx.server.inject({
      method: method as "POST", url: path,
      headers: { ...SAME_ORIGIN, cookie: cookieOf(b), "x-csrf-token": csrf, ...(withBody ? { "content-type": "application/json" } : {}) },
      ...(withBody ? { payload: "{}" } : {}),
    });
    checked++;
    const want = url.startsWith("/api/") ? "BULWARK_ERR_API_SIGN_IN_INCOMPLETE" : GATE_CODE[gate];
    if (res.statusCode !== 403 || codeOf(res) !== want) problems.push(`${route}: ${res.statusCode} ${codeOf(res) ?? res.body.slice(0, 80)}`);
  }
  return { problems, checked };
}

describe("the sign-in gates over the whole router (ASVS 6.3.3, 8.2.1)", () => {
  it("held: a password-only session of a user with an authenticator app reaches only the second-factor step — every other route of /auth and /api/v1 answers the gate's 403", async () => {
    const u = await flows.withTOTP(address("gate-verify"));
    const b = await flows.pending(u);
    const { problems, checked } = await gateSweep(b, "mfa-verify");
    assert.ok(checked >= 30, `walked ${checked} routes`);
    assert.deepEqual(problems, []);
    const after = await whoIs(cookieOf(b));
    assert.equal(after.aal, 1, "still held at the gate");
  });

  it("held: an administrator with no second factor reaches only enrolment (and re-authentication) — every other route answers the enrolment gate's 403, the admin API included", async () => {
    const admin = await fx.user(address("gate-enrol"), { roles: ["admin"] });
    const b = fx.browser();
    const login = await b.login(admin.email, admin.password);
    assert.equal(login.statusCode, 200, login.body);
    assert.equal(login.json().mfaEnrolmentRequired, true, login.body);
    const { problems, checked } = await gateSweep(b, "mfa-enrol");
    assert.ok(checked >= 30, `walked ${checked} routes`);
    assert.deepEqual(problems, []);
  });

  it("held: an account that must change its password reaches only the password change — every other route answers the gate's 403", async () => {
    const email = address("gate-pw");
    const hash = await fx.app.accounts.passwords.hash(GOOD_PASSWORD);
    await fx.app.accounts.users.create({ email, passwordHash: hash, passwordScheme: "argon2id", passwordMustChange: true });
    const b = fx.browser();
    const login = await b.login(email, GOOD_PASSWORD);
    assert.equal(login.statusCode, 200, login.body);
    assert.equal(login.json().mustChangePassword, true, login.body);
    const { problems, checked } = await gateSweep(b, "password-change");
    assert.ok(checked >= 30, `walked ${checked} routes`);
    assert.deepEqual(problems, []);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe("CSRF tokens across the step-up, and header shapes (ASVS 3.5.1, 7.2.4)", () => {
  it("held: the CSRF token read by the password-only session is worthless once the step-up replaced that session — refused with the new cookie, and the old cookie is refused outright", async () => {
    const u = await flows.withTOTP(address("csrf-stepup"));
    const b = await flows.pending(u);
    const oldCsrf = await b.csrf();
    const oldCookie = cookieOf(b);
    const verified = await b.request("POST", "/auth/mfa/verify", { csrf: oldCsrf, body: { totp: totpCode(u.secret, fx.clock.now()) } });
    assert.equal(verified.statusCode, 200, verified.body);
    assert.notEqual(cookieOf(b), oldCookie, "the step-up issued a new cookie");
    // A fresh aal-2 session: only the CSRF wall can refuse this (a session id that names nothing answers 404 otherwise).
    const replayed = await b.request("DELETE", `/auth/sessions/${NO_SESSION}`, { csrf: oldCsrf });
    assert.equal(replayed.statusCode, 403, replayed.body);
    assert.equal(codeOf(replayed), "BULWARK_ERR_CSRF");
    const control = await b.request("DELETE", `/auth/sessions/${NO_SESSION}`, { csrf: true });
    assert.equal(control.statusCode, 404, control.body);
    const oldOne = await fx.server.inject({ method: "DELETE", url: `/auth/sessions/${NO_SESSION}`, headers: { ...SAME_ORIGIN, cookie: oldCookie, "x-csrf-token": oldCsrf } });
    assert.equal(oldOne.statusCode, 401, oldOne.body);
  });

  it("held: a text/plain body carrying a valid `_csrf` is not read for the token (only a parsed form or the header counts), and a cross-site text/plain logout is refused; the session stands", async () => {
    const u = await flows.signedIn(address("textplain"));
    const csrf = await u.b.csrf();
    const plain = await fx.server.inject({ method: "POST", url: "/auth/logout", headers: { ...SAME_ORIGIN, cookie: cookieOf(u.b), "content-type": "text/plain" }, payload: `_csrf=${csrf}` });
    assert.equal(plain.statusCode, 403, plain.body);
    assert.equal(codeOf(plain), "BULWARK_ERR_CSRF");
    const cross = await fx.server.inject({
      method: "POST", url: "/auth/logout",
      headers: { host: HOST, origin: "https://evil.example", "sec-fetch-site": "cross-site", cookie: cookieOf(u.b), "content-type": "text/plain", "x-csrf-token": csrf },
      payload: "x",
    });
    assert.equal(cross.statusCode, 403, cross.body);
    assert.equal((await whoIs(cookieOf(u.b))).authenticated, true);
    // The legitimate form post, for contrast: `_csrf` in an urlencoded body signs out.
    const form = await u.b.request("POST", "/auth/logout", { form: true, body: { _csrf: csrf } });
    assert.equal(form.statusCode, 200, form.body);
  });

  it("held: HEAD and OPTIONS on unsafe /auth routes run nothing (no route answers them; HEAD /auth/sessions is the read-only listing) and every session stands", async () => {
    const u = await flows.signedIn(address("head"));
    const other = fx.browser({ newDevice: true });
    assert.equal((await other.login(u.email, u.password)).statusCode, 200);
    const csrf = await u.b.csrf();
    const unsafeOnly = ["/auth/logout", `/auth/sessions/${NO_SESSION}`, "/auth/email/change", "/auth/password/change", "/auth/mfa/recovery-codes"];
    for (const [method, urls] of [["HEAD", unsafeOnly], ["OPTIONS", [...unsafeOnly, "/auth/sessions"]]] as const) {
      for (const url of urls) {
        const res = await fx.server.inject({ method, url, headers: { ...SAME_ORIGIN, cookie: cookieOf(u.b), "x-csrf-token": csrf } });
        assert.ok(res.statusCode === 404 || res.statusCode === 405, `${method} ${url}: ${res.statusCode}`);
      }
    }
    // HEAD on the path of "sign out everywhere else" is its GET twin, the list: it ends nothing.
    const listing = await fx.server.inject({ method: "HEAD", url: "/auth/sessions", headers: { ...SAME_ORIGIN, cookie: cookieOf(u.b), "x-csrf-token": csrf } });
    assert.equal(listing.statusCode, 200);
    assert.equal((await whoIs(cookieOf(u.b))).authenticated, true);
    assert.equal((await whoIs(cookieOf(other))).authenticated, true, "the other session was not ended");
  });

  it("held: over a real socket, Origin, Sec-Fetch-Site or x-csrf-token sent twice (joined by Node into one value) is refused, never read as its first copy; a lower- or mixed-case method is refused by the parser", async () => {
    const u = await flows.signedIn(address("dupes"));
    const csrf = await u.b.csrf();
    await fx.server.listen({ host: "127.0.0.1", port: 0 });
    const { port } = fx.server.server.address() as AddressInfo;
    const send = (headers: Record<string, string | string[]>): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port, method: "DELETE", path: `/auth/sessions/${NO_SESSION}`, headers: { host: HOST, cookie: cookieOf(u.b), ...headers } }, (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (chunk: string) => (body += chunk));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on("error", reject);
        req.end();
      });
    const control = await send({ origin: ORIGIN, "sec-fetch-site": "same-origin", "x-csrf-token": csrf });
    assert.equal(control.status, 404, control.body);
    const shapes: Array<[string, Record<string, string | string[]>]> = [
      ["two Origins, ours first", { origin: [ORIGIN, "https://evil.example"], "x-csrf-token": csrf }],
      ["two Origins, both ours", { origin: [ORIGIN, ORIGIN], "x-csrf-token": csrf }],
      ["two Sec-Fetch-Site", { origin: ORIGIN, "sec-fetch-site": ["same-origin", "cross-site"], "x-csrf-token": csrf }],
      ["two CSRF tokens", { origin: ORIGIN, "sec-fetch-site": "same-origin", "x-csrf-token": [csrf, csrf] }],
    ];
    for (const [what, headers] of shapes) {
      const res = await send(headers);
      assert.equal(res.status, 403, `${what}: ${res.status} ${res.body}`);
      assert.match(res.body, /BULWARK_ERR_CSRF/, what);
    }
    for (const method of ["delete", "Delete", "pOST"]) {
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = connect(port, "127.0.0.1", () => {
          socket.end(`${method} /auth/sessions/${NO_SESSION} HTTP/1.1\r\nHost: ${HOST}\r\nOrigin: ${ORIGIN}\r\nSec-Fetch-Site: same-origin\r\nCookie: ${cookieOf(u.b)}\r\nX-CSRF-Token: ${csrf}\r\nContent-Length: 0\r\n\r\n`);
        });
        let got = "";
        socket.setEncoding("utf8");
        socket.on("data", (chunk: string) => (got += chunk));
        socket.on("end", () => resolve(got));
        socket.on("close", () => resolve(got));
        socket.on("error", reject);
      });
      assert.match(raw, /^HTTP\/1\.1 (400|404|405)/, `${method}: ${raw.slice(0, 60)}`);
    }
    assert.equal((await whoIs(cookieOf(u.b))).authenticated, true);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe("single-use factors and links under concurrency (ASVS 6.5.1, 6.4.3, 7.4.3)", () => {
  it("held: one recovery code raced by two sessions held at the second-factor gate steps up exactly one of them, and is spent", async () => {
    const u = await flows.withTOTP(address("rc-race"));
    const codes = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    assert.equal(codes.length, 10);
    const code = codes[0] as string;
    const b1 = await flows.pending(u);
    const b2 = await flows.pending(u);
    const [c1, c2] = [await b1.csrf(), await b2.csrf()];
    const results = await Promise.all([
      b1.request("POST", "/auth/mfa/verify", { csrf: c1, body: { recoveryCode: code } }),
      b2.request("POST", "/auth/mfa/verify", { csrf: c2, body: { recoveryCode: code } }),
    ]);
    assert.deepEqual(results.map((r) => r.statusCode).sort(), [200, 401], results.map((r) => r.body).join(" | "));
    const b3 = await flows.pending(u);
    const third = await b3.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: code } });
    assert.equal(third.statusCode, 401, third.body);
  });

  it("held: one recovery code raced between a reset completion and a step-up is spent once; the loser gains nothing and no stepped-up session outlives a reset that won", async () => {
    const u = await flows.withTOTP(address("rc-reset"));
    const codes = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const code = codes[1] as string;
    const b = await flows.pending(u);
    const csrf = await b.csrf();
    const link = await flows.resetToken(u.email);
    const [stepUp, reset] = await Promise.all([
      b.request("POST", "/auth/mfa/verify", { csrf, body: { recoveryCode: code } }),
      resetComplete({ token: link, newPassword: NEW_PASSWORD, recoveryCode: code }),
    ]);
    assert.ok(!(stepUp.statusCode === 200 && reset.statusCode === 200), `both used one code: ${stepUp.statusCode} ${reset.statusCode}`);
    assert.ok(stepUp.statusCode === 200 || reset.statusCode === 200, `neither won: ${stepUp.body} | ${reset.body}`);
    if (reset.statusCode === 200) {
      assert.equal((await whoIs(cookieOf(b))).authenticated, false, "the reset ended the session held at the gate");
      assert.equal(await canLogIn(u.email, NEW_PASSWORD), true);
    } else {
      assert.equal((await whoIs(cookieOf(b))).aal, 2);
      assert.equal(await canLogIn(u.email, NEW_PASSWORD), false, "the losing reset set no password");
    }
  });

  it("held: two completions of one reset link in parallel, with different passwords: one wins, the other is told the link is in use (409), and only the winner's password signs in", async () => {
    const user = await fx.user(address("link-race"));
    const link = await flows.resetToken(user.email);
    const results = await Promise.all([
      resetComplete({ token: link, newPassword: NEW_PASSWORD }),
      resetComplete({ token: link, newPassword: OTHER_PASSWORD }),
    ]);
    assert.deepEqual(results.map((r) => r.statusCode).sort(), [200, 409], results.map((r) => r.body).join(" | "));
    const loser = results.find((r) => r.statusCode === 409) as LightMyRequestResponse;
    assert.equal(codeOf(loser), "BULWARK_ERR_RESET_BUSY");
    const first = results[0]?.statusCode === 200;
    assert.equal(await canLogIn(user.email, first ? NEW_PASSWORD : OTHER_PASSWORD), true);
    assert.equal(await canLogIn(user.email, first ? OTHER_PASSWORD : NEW_PASSWORD), false);
    assert.equal(await canLogIn(user.email, user.password), false);
    const again = await resetComplete({ token: link, newPassword: "a third passphrase nobody should set" });
    assert.equal(again.statusCode, 400, again.body);
  });

  // Found by this round and fixed: the in-process guard that lets one completion of a link run at a time answered the
  // second with the refusal of a spent link ("invalid, expired or already used; request a new one") although the first
  // might still fail and leave the link good — here the first offers the password that must change again.
  it("attack: a completion arriving while another of the same link runs and then fails is told the link is busy, not spent, and the link then completes (ASVS 6.4.3) (was: 400 BULWARK_ERR_RESET_TOKEN, 'already used; request a new one')", async () => {
    const user = await fx.user(address("busy-link"));
    assert.equal(await requirePasswordChange(fx.app.db.db, user.id, fx.clock.now()), "required");
    const link = await flows.resetToken(user.email);
    const [same, fresh] = await Promise.all([
      resetComplete({ token: link, newPassword: user.password }),
      resetComplete({ token: link, newPassword: NEW_PASSWORD }),
    ]);
    const answers = [same, fresh].map((r) => `${r.statusCode} ${codeOf(r)}`);
    assert.ok(answers.includes("409 BULWARK_ERR_RESET_BUSY"), `one completion runs at a time; the other is told so: ${answers.join(" | ")}`);
    assert.ok(!answers.includes("400 BULWARK_ERR_RESET_TOKEN"), `no answer calls the link spent while it is not: ${answers.join(" | ")}`);
    if (same.statusCode === 400) {
      assert.equal(codeOf(same), "BULWARK_ERR_PASSWORD_UNCHANGED");
      const retry = await resetComplete({ token: link, newPassword: NEW_PASSWORD });
      assert.equal(retry.statusCode, 200, `the link the failed completion left unspent still works: ${retry.body}`);
    }
    assert.equal(await canLogIn(user.email, NEW_PASSWORD), true);
  });

  it("held: a login with the old password racing the reset completion leaves no session of the old password alive", async () => {
    const user = await fx.user(address("login-race"));
    const link = await flows.resetToken(user.email);
    const b = fx.browser({ newDevice: true });
    const [login, reset] = await Promise.all([b.login(user.email, user.password), resetComplete({ token: link, newPassword: NEW_PASSWORD })]);
    assert.equal(reset.statusCode, 200, reset.body);
    if (login.statusCode === 200) assert.equal((await whoIs(cookieOf(b))).authenticated, false, "the old password's session outlived the reset");
    assert.equal(await canLogIn(user.email, user.password), false);
  });

  it("held: a step-up racing the reset completion (each with its own factor) does not outlive the reset — the stepped-up session is refused afterwards", async () => {
    const u = await flows.withTOTP(address("stepup-race"));
    const codes = (await u.b.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).json().codes as string[];
    const b = await flows.pending(u);
    const csrf = await b.csrf();
    const link = await flows.resetToken(u.email);
    const [stepUp, reset] = await Promise.all([
      b.request("POST", "/auth/mfa/verify", { csrf, body: { totp: totpCode(u.secret, fx.clock.now()) } }),
      resetComplete({ token: link, newPassword: NEW_PASSWORD, recoveryCode: codes[2] as string }),
    ]);
    assert.equal(reset.statusCode, 200, reset.body);
    assert.ok([200, 401].includes(stepUp.statusCode), stepUp.body);
    assert.equal((await whoIs(cookieOf(b))).authenticated, false, "a session of the old password survived the reset");
  });

  it("held: a session held at the second-factor gate whose sessions an administrator ended cannot step up, and the code it presented stays unspent for the owner's next sign-in", async () => {
    const u = await flows.withTOTP(address("revoked-gate"));
    const b = await flows.pending(u);
    const csrf = await b.csrf();
    const heldCookie = cookieOf(b);
    const adminToken = await flows.tokenFor(await flows.userWith(["accounts.write"]), ["accounts.write"]);
    const revoked = await fx.server.inject({ method: "POST", url: `/api/v1/users/${u.id}/sessions/revoke`, headers: { host: HOST, authorization: `Bearer ${adminToken}` } });
    assert.ok(revoked.statusCode >= 200 && revoked.statusCode < 300, revoked.body);
    fx.clock.advance(1000);
    const code = totpCode(u.secret, fx.clock.now());
    const refused = await b.request("POST", "/auth/mfa/verify", { csrf, body: { totp: code } });
    assert.equal(refused.statusCode, 401, refused.body);
    assert.equal(b.cookie, null, "the dead cookie was cleared");
    assert.equal((await whoIs(heldCookie)).authenticated, false);
    const owner = await flows.pending(u);
    const ok = await owner.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
    assert.equal(ok.statusCode, 200, ok.body);
  });

  it("held: the TOTP step spent at the step-up is refused as a replay when presented with a reset link in the same 30 seconds; the password stays", async () => {
    const u = await flows.withTOTP(address("totp-reuse"));
    const b = await flows.pending(u);
    const code = totpCode(u.secret, fx.clock.now());
    const verified = await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } });
    assert.equal(verified.statusCode, 200, verified.body);
    const link = await flows.resetToken(u.email);
    const reset = await resetComplete({ token: link, newPassword: NEW_PASSWORD, totp: code });
    assert.equal(reset.statusCode, 401, reset.body);
    assert.equal(codeOf(reset), "BULWARK_ERR_MFA_INVALID");
    assert.equal(await canLogIn(u.email, NEW_PASSWORD), false);
    // The next step's code works with the same, unspent link.
    fx.clock.advance(STEP);
    const next = await resetComplete({ token: link, newPassword: NEW_PASSWORD, totp: totpCode(u.secret, fx.clock.now()) });
    assert.equal(next.statusCode, 200, next.body);
  });

  it("held: a passkey assertion answering a reset link's challenge does not pass a sign-in's second-factor step, and the refused attempt does not burn the link's challenge", async () => {
    const u = await flows.withPasskey(address("passkey-ctx"));
    fx.clock.advance(STEP);
    const link = await flows.resetToken(u.email);
    const options = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/webauthn/options", { body: { token: link } });
    assert.equal(options.statusCode, 200, options.body);
    const assertion = u.key.authenticate(options.json(), ORIGIN);
    const b = await flows.pending(u);
    const crossed = await b.request("POST", "/auth/mfa/verify", { csrf: true, body: { webauthn: assertion } });
    assert.equal(crossed.statusCode, 401, crossed.body);
    assert.equal((await whoIs(cookieOf(b))).aal, 1, "still held at the gate");
    const reset = await resetComplete({ token: link, newPassword: NEW_PASSWORD, webauthn: assertion });
    assert.equal(reset.statusCode, 200, reset.body);
    assert.ok(u.key instanceof SoftAuthenticator);
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe("links and tokens outliving the change that should end them (ASVS 7.4.1, 7.4.3, 8.2.1, 8.3.1)", () => {
  it("held: an email-change link asked for before a password reset cannot be confirmed after it; the address stays", async () => {
    const u = await flows.signedIn(address("email-reset"));
    const target = address("email-reset-new");
    const asked = await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } });
    assert.equal(asked.statusCode, 202, asked.body);
    const emailLink = await flows.tokenIn(target, EMAIL_LINK);
    const link = await flows.resetToken(u.email);
    assert.equal((await resetComplete({ token: link, newPassword: NEW_PASSWORD })).statusCode, 200);
    const confirm = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token: emailLink } });
    assert.equal(confirm.statusCode, 400, confirm.body);
    assert.equal((await fx.app.accounts.users.getById(u.id))?.email, u.email);
  });

  it("held: an email-change link asked for before an administrator ended the account's sessions (POST /api/v1/users/:id/sessions/revoke) cannot be confirmed after it", async () => {
    const u = await flows.signedIn(address("email-revoke"));
    const target = address("email-revoke-new");
    const asked = await u.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } });
    assert.equal(asked.statusCode, 202, asked.body);
    const emailLink = await flows.tokenIn(target, EMAIL_LINK);
    const adminToken = await flows.tokenFor(await flows.userWith(["accounts.write"]), ["accounts.write"]);
    const revoked = await fx.server.inject({ method: "POST", url: `/api/v1/users/${u.id}/sessions/revoke`, headers: { host: HOST, authorization: `Bearer ${adminToken}` } });
    assert.ok(revoked.statusCode >= 200 && revoked.statusCode < 300, revoked.body);
    assert.equal((await whoIs(cookieOf(u.b))).authenticated, false);
    fx.clock.advance(1000);
    const confirm = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token: emailLink } });
    assert.equal(confirm.statusCode, 400, confirm.body);
    assert.equal((await fx.app.accounts.users.getById(u.id))?.email, u.email);
  });

  it("held: an API token scoped to accounts.read stops reading accounts the moment the role behind the scope is taken away, and cannot mint a token with that scope; a token minted before keeps no more than its owner", async () => {
    const id = await flows.userWith(["accounts.read"]);
    const token = await flows.tokenFor(id, ["accounts.read"]);
    const call = (method: "GET" | "POST", url: string, body?: unknown): Promise<LightMyRequestResponse> =>
      fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) }, ...(body ? { payload: JSON.stringify(body) } : {}) });
    assert.equal((await call("GET", "/api/v1/users")).statusCode, 200);
    const [role] = await fx.app.accounts.roles.rolesOf(id);
    assert.ok(role);
    assert.equal(await fx.app.accounts.roles.revoke(id, role, "test"), true);
    const read = await call("GET", "/api/v1/users");
    assert.equal(read.statusCode, 403, read.body);
    assert.equal(codeOf(read), "BULWARK_ERR_API_FORBIDDEN");
    const mint = await call("POST", "/api/v1/tokens", { name: "child", scopes: ["accounts.read"] });
    assert.equal(mint.statusCode, 403, mint.body);
  });

  it("held: spellings of an /api/v1 path (trailing slash, double slash, %2F, case, dot segments, `;`, NUL, an encoded letter) never reach a route without its permission", async () => {
    const id = await flows.userWith([]);
    const token = await flows.tokenFor(id, ["audit.read"]);
    const spellings = [
      "/api/v1/users", "/api/v1/users/", "/api/v1//users", "/api//v1/users", "//api/v1/users", "/api/v1/%75sers", "/API/v1/users", "/api/V1/users",
      "/api/v1/users;x", "/api/v1/./users", "/api/v1/x/../users", "/api/v1/users%2F", "/api/v1%2Fusers", "/api/v1/users%00", "/api/v1/audit/../users",
      "/api/v1/audit/events", "/api/v1/audit%2Fevents", "/api/v1/roles/", "/api/v1/contain/jobs/",
    ];
    for (const url of spellings) {
      for (const headers of [{ host: HOST }, { host: HOST, authorization: `Bearer ${token}` }]) {
        const res = await fx.server.inject({ method: "GET", url, headers });
        assert.ok([400, 401, 403, 404].includes(res.statusCode), `${url} (${"authorization" in headers ? "token" : "anonymous"}): ${res.statusCode} ${res.body.slice(0, 120)}`);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------

describe("next= after sign-in and sign-out (ASVS 3.7.2)", () => {
  it("held: every off-site spelling of `next` comes back as \"/\", and plain paths come back as they were", async () => {
    const user = await fx.user(address("next"));
    const offSite = [
      "/\\evil.example", "/%5Cevil.example", "/%5cevil.example", "//evil.example", "///evil.example", "/\t/evil.example", "/\n/evil.example", "/%09/evil.example",
      "/%0a/evil.example", "/%2F/evil.example", "/%2f%2fevil.example", "/.%2e//evil.example", "/%2e%2e//evil.example", "/a/..//evil.example", "https:evil.example",
      "https://evil.example", "javascript:alert(1)", "\\\\evil.example", " /evil", "/%E0%A4%A", "/%C0%AF/evil.example",
    ];
    const onSite: Array<[string, string]> = [["/account?tab=2", "/account?tab=2"], ["/a/b%2Fc", "/a/b%2Fc"], ["/search?q=a%20b", "/search?q=a%20b"]];
    const loginNext = async (next: string): Promise<string> => {
      const b = fx.browser();
      const res = await b.request("POST", "/auth/login", { body: { identifier: user.email, password: user.password, next } });
      if (res.statusCode === 400) return "refused";
      assert.equal(res.statusCode, 200, res.body);
      return res.json().next as string;
    };
    for (const value of offSite) {
      const got = await loginNext(value);
      assert.ok(got === "/" || got === "refused", `${JSON.stringify(value)} came back as ${JSON.stringify(got)}`);
    }
    for (const [value, want] of onSite) assert.equal(await loginNext(value), want, value);
    // Sign-out's `next` goes through the same rule.
    const b = fx.browser();
    assert.equal((await b.login(user.email, user.password)).statusCode, 200);
    const out = await b.request("POST", "/auth/logout", { csrf: true, body: { next: "/%5C/evil.example" } });
    assert.equal(out.statusCode, 200, out.body);
    assert.equal(out.json().next, "/");
  });
});
