// Red team, round "tightened config": the operator learns of a breach, tightens Bulwark's configuration and restarts
// the server on the same data dir. The attacker already holds what the looser configuration handed out: a session
// cookie issued under the old lifetimes, a pending sign-up link mailed while registration was open, a reset link, an
// API token an administrator without a second factor minted under BULWARK_REQUIRE_MFA=none, an initial password issued
// under the longer BULWARK_INITIAL_PASSWORD_HOURS, part of an hour's mail-request budget. What must hold: the
// tightened rule applies to everything already issued from the moment it takes effect, and what the operator reads
// (GET /auth/session's expiresAt, the API's initialPasswordExpiresAt) does not say otherwise.
// Each test builds one site (a temp data dir, a manual clock and an SMTP sink kept across restarts), issues the
// credential under one configuration, closes the app and opens a new one with the tightened configuration.
// Tried: shorter idle and absolute session lifetimes, a shorter re-authentication window, registration closed, the MFA
// policy raised from none to administrative (the session and the API token of an administrator without a factor), a
// shorter initial-password lifetime, a smaller hourly mail-request budget, a longer minimum and a breached-password
// file for a reset link issued before, and a corrected BULWARK_PUBLIC_URL with a link mail still queued.
// Held (kept as attacks): the idle limit, the re-authentication window, the MFA gate of an old session, the mail-request
// budget and the new-password policy at a reset link's completion are all read live (config at request time, counts
// in the store), so what was issued before the restart meets the tightened rule at once.
// Found (fixed since: a session ends at the earlier of its stored expiry and its creation time plus the absolute
// lifetime in force, and expiresAt says that time; an API token is refused (403 BULWARK_ERR_TOKEN_OWNER_MFA_REQUIRED)
// while the policy in force requires a factor of its owner and the owner has none; while registration is closed an
// unfinished sign-up's link is refused as a dead one and a reset request for it mails nothing; an initial password
// expires at the earlier of its stored expiry and the time it was set plus the lifetime in force; the outbox stores a
// link mail without its origin and sends it on the public URL configured at sending, one naming another origin going
// dead with the reason):
// - a session's absolute expiry is the one written when it was issued (sessions.expires_at): a shortened
//   BULWARK_SESSION_ABSOLUTE_MINUTES never reaches sessions already out, and GET /auth/session promises the old end;
// - an API token an administrator with no factor minted under BULWARK_REQUIRE_MFA=none keeps the whole admin API after
//   the policy is raised, while the same administrator's session is held at enrolment;
// - a sign-up link mailed while registration was open still finishes the account and signs it in once it is closed;
// - an initial password's expiry is the one written at creation: a shortened BULWARK_INITIAL_PASSWORD_HOURS leaves
//   issued ones signing in, and the API shows the old expiry;
// - a link mail queued before BULWARK_PUBLIC_URL was corrected is delivered after the restart pointing at the old origin.
// Not findings (documented or not configurable): a stored password the stricter policy would refuse keeps signing in
// (docs/password-policy.md is "for new passwords"; docs/password-migration.md: the policy "applies when a password is
// set"); reset and email-change link lifetimes, the TOTP enrolment window and token expiry bounds are constants, not
// settings. Nothing else the operator reads (/healthz, the start-up log; there is no config command) restates a
// setting. Loopback and temp dirs only.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { buildServer } from "../src/http/server.ts";
import { Browser, GOOD_PASSWORD, HOST, ORIGIN } from "../src/http/auth/test-client.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { createSMTPTransport, OutboxSender } from "../src/notify/index.ts";
import { decodeQuotedPrintable, startTestSMTPServer, type TestSMTPServer } from "../src/notify/smtp-test-server.ts";
import { RESET_LINK } from "./helpers/auth-flows.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

type Res = LightMyRequestResponse;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const show = (r: Res): string => `${r.statusCode} ${r.body.slice(0, 200)}`;

/** One running node of a site: the app opened with one configuration, its server and its outbox sender. */
interface Node {
  app: OpenedApp;
  server: FastifyInstance;
  /** Delivers every queued message to the site's SMTP sink. */
  deliver(): Promise<void>;
  /** A same-origin page client on this node, carrying `cookie` (a session cookie issued before a restart) when given. */
  browser(cookie?: string | null): Browser;
  close(): Promise<void>;
}

/** A deployment: a data dir, a clock and a mailbox that outlive restarts; `start(env)` (re)opens it with a configuration. */
interface Site {
  clock: ManualClock;
  smtp: TestSMTPServer;
  start(env?: Record<string, string>): Promise<Node>;
  /** The newest link token of `pattern` mailed to `address`. */
  linkTo(address: string, pattern: RegExp): string;
}

async function site(t: TestContext): Promise<Site> {
  const root = mkdtempSync(join(tmpdir(), "bulwark-tightened-"));
  const smtp = await startTestSMTPServer();
  const clock = new ManualClock(Date.UTC(2026, 10, 2, 9));
  let running: Node | null = null;
  let opened = 0;
  t.after(async () => {
    await running?.close();
    await smtp.close();
    rmSync(root, { recursive: true, force: true });
  });
  const base = {
    BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "silent", BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
    BULWARK_MAIL_REQUESTS_PER_HOUR: "100000", BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4096", BULWARK_MAX_CLOCK_SKEW_SECONDS: "0",
    BULWARK_PUBLIC_URL: ORIGIN, BULWARK_SMTP_URL: `smtp://127.0.0.1:${smtp.port}?requireTLS=false`, BULWARK_MAIL_FROM: "security@bulwark.test",
  };
  return {
    clock, smtp,
    async start(env = {}) {
      await running?.close();
      running = null;
      // The first start makes the store (bulwark init); a restart opens it as `serve` does.
      const app = await openApp({ env: { ...base, ...env }, mode: opened++ === 0 ? "init" : "migrate", clock });
      const server = await buildServer(app);
      const transport = await createSMTPTransport(app.config.http.mail!);
      const sender = new OutboxSender({ outbox: app.accounts.outbox, transport, clock, random: app.random }, { name: "test" });
      const node: Node = {
        app, server,
        deliver: async () => void (await sender.drain()),
        browser(cookie = null) {
          const b = new Browser(server);
          b.cookie = cookie;
          return b;
        },
        async close() {
          await server.close();
          await transport.close();
          await app.close();
          if (running === node) running = null;
        },
      };
      running = node;
      return node;
    },
    linkTo(address, pattern) {
      const bodies = smtp.accepted.filter((m) => m.envelopeTo.includes(address)).map((m) => decodeQuotedPrintable(m.body)).filter((b) => pattern.test(b));
      const body = bodies.at(-1);
      assert.ok(body !== undefined, `no link mailed to ${address}`);
      return (pattern.exec(body) as RegExpExecArray)[1] as string;
    },
  };
}

/** An active account with `password` (default GOOD_PASSWORD) and `roles`. */
async function account(node: Node, email: string, roles: string[] = [], password = GOOD_PASSWORD): Promise<{ id: string; email: string; password: string }> {
  const user = await node.app.accounts.users.create({ email, passwordHash: await node.app.accounts.passwords.hash(password), passwordScheme: "argon2id" });
  for (const role of roles) await node.app.accounts.roles.grant(user.id, role, "test");
  return { id: user.id, email, password };
}

async function signedIn(node: Node, user: { email: string; password: string }): Promise<Browser> {
  const b = node.browser();
  const r = await b.login(user.email, user.password);
  assert.equal(r.statusCode, 200, show(r));
  return b;
}

/** GET /auth/session as the holder of `cookie` sees it. */
async function sessionOf(node: Node, cookie: string | null): Promise<Record<string, unknown>> {
  const r = await node.browser(cookie).request("GET", "/auth/session");
  assert.equal(r.statusCode, 200, show(r));
  return r.json() as Record<string, unknown>;
}

describe("red team: sessions issued before the lifetimes were shortened", () => {
  it("attack: a cookie left idle 20 minutes under BULWARK_SESSION_IDLE_MINUTES=60 is presented after a restart with 10 — refused, the row gone (ASVS 7.3.1)", async (t) => {
    const s = await site(t);
    let node = await s.start({ BULWARK_SESSION_IDLE_MINUTES: "60" });
    const user = await account(node, "idle@example.org");
    const cookie = (await signedIn(node, user)).cookie;
    assert.equal((await sessionOf(node, cookie))["authenticated"], true, "control: the session works");
    s.clock.advance(20 * MINUTE);
    node = await s.start({ BULWARK_SESSION_IDLE_MINUTES: "10" });
    const seen = await sessionOf(node, cookie);
    assert.equal(seen["authenticated"], false, `a session idle 20 minutes still served under a 10-minute idle limit: ${JSON.stringify(seen)}`);
    const rows = await node.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", user.id).execute();
    assert.equal(rows.length, 0, "the expired row is deleted when presented");
  });

  it("attack: a thief keeps a cookie issued under BULWARK_SESSION_ABSOLUTE_MINUTES=720 busy after the operator restarts with 60 — it is refused 60 minutes after its sign-in, and GET /auth/session promises no more than that hour (ASVS 7.3.2, 7.1.1) (was: the session kept the 12 hours written when it was issued, and GET /auth/session promised them)", async (t) => {
    const s = await site(t);
    let node = await s.start();
    const user = await account(node, "absolute@example.org");
    const cookie = (await signedIn(node, user)).cookie;
    const signedInAt = s.clock.now();
    node = await s.start({ BULWARK_SESSION_ABSOLUTE_MINUTES: "60" });
    // Busy enough that the idle limit (30 minutes) never ends it: only the absolute limit can.
    s.clock.advance(25 * MINUTE);
    const inside = await sessionOf(node, cookie);
    assert.equal(inside["authenticated"], true, "control: inside the new hour the session still works");
    s.clock.advance(25 * MINUTE);
    assert.equal((await sessionOf(node, cookie))["authenticated"], true, "control: 50 minutes in, still inside the new hour");
    s.clock.advance(25 * MINUTE);
    const past = await sessionOf(node, cookie);
    const promised = Number(inside["expiresAt"]);
    assert.ok(
      past["authenticated"] === false && promised <= signedInAt + 60 * MINUTE,
      `a session signed in ${Math.round((s.clock.now() - signedInAt) / MINUTE)} minutes ago is still served (authenticated: ${String(past["authenticated"])}) after the restart with BULWARK_SESSION_ABSOLUTE_MINUTES=60, and GET /auth/session promises it until ${Math.round((promised - signedInAt) / MINUTE)} minutes after sign-in: its absolute expiry is the one written under the old 720 (sessions.expires_at), which validate() compares instead of also bounding it by created_at + the absolute limit in force`,
    );
  });

  it("attack: a session fresh for 60 minutes under BULWARK_REAUTH_MINUTES=60 is, 20 minutes on and after a restart with 10, no longer fresh: minting an API token asks for re-authentication (ASVS 7.5.1, 7.5.3)", async (t) => {
    const s = await site(t);
    let node = await s.start({ BULWARK_REAUTH_MINUTES: "60" });
    const user = await account(node, "reauth@example.org");
    const cookie = (await signedIn(node, user)).cookie;
    s.clock.advance(20 * MINUTE);
    assert.equal((await sessionOf(node, cookie))["fresh"], true, "control: 20 minutes in, fresh under a 60-minute window");
    node = await s.start({ BULWARK_REAUTH_MINUTES: "10" });
    const seen = await sessionOf(node, cookie);
    assert.equal(seen["fresh"], false, `GET /auth/session still says fresh under a 10-minute window: ${JSON.stringify(seen)}`);
    const b = node.browser(cookie);
    const mint = await b.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "kept", scopes: ["accounts.read"] } });
    assert.equal(mint.statusCode, 403, show(mint));
    assert.equal((mint.json() as { error: { code: string } }).error.code, "BULWARK_ERR_REAUTH_REQUIRED");
    assert.equal((await node.app.db.db.selectFrom("api_tokens").select("id").execute()).length, 0, "no token was minted");
  });
});

describe("red team: what an administrator without a second factor got under BULWARK_REQUIRE_MFA=none", () => {
  it("attack: the administrator's password-only session from before the restart with BULWARK_REQUIRE_MFA=administrative reaches only enrolment: the admin API and account settings are refused (ASVS 6.3.3)", async (t) => {
    const s = await site(t);
    let node = await s.start({ BULWARK_REQUIRE_MFA: "none" });
    const admin = await account(node, "admin-none@example.org", ["admin"]);
    const cookie = (await signedIn(node, admin)).cookie;
    const before = await node.browser(cookie).request("GET", "/api/v1/users");
    assert.equal(before.statusCode, 200, `control: under none the password-only session has the admin API: ${show(before)}`);
    node = await s.start({ BULWARK_REQUIRE_MFA: "administrative" });
    const seen = await sessionOf(node, cookie);
    assert.equal(seen["mfaEnrolmentRequired"], true, `the old session is not held at enrolment: ${JSON.stringify(seen)}`);
    const users = await node.browser(cookie).request("GET", "/api/v1/users");
    assert.equal(users.statusCode, 403, `the old password-only session still lists every account: ${show(users)}`);
    assert.equal((users.json() as { error: { code: string } }).error.code, "BULWARK_ERR_API_SIGN_IN_INCOMPLETE");
    const sessions = await node.browser(cookie).request("GET", "/auth/sessions");
    assert.equal(sessions.statusCode, 403, `the old session reaches more than enrolment: ${show(sessions)}`);
  });

  it("attack: the API token that administrator minted under none is held like the session it came from after the restart with BULWARK_REQUIRE_MFA=administrative: 403, no account listed or locked (ASVS 6.3.3, 8.2.1) (was: it kept the whole admin API, listing every account and locking another, while the same account's session was held at enrolment)", async (t) => {
    const s = await site(t);
    let node = await s.start({ BULWARK_REQUIRE_MFA: "none" });
    const admin = await account(node, "admin-token@example.org", ["admin"]);
    const victim = await account(node, "victim@example.org");
    const b = await signedIn(node, admin);
    const mint = await b.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "automation", scopes: ["admin"] } });
    assert.equal(mint.statusCode, 201, `control: under none the administrator mints a token: ${show(mint)}`);
    const token = (mint.json() as { token: string }).token;
    node = await s.start({ BULWARK_REQUIRE_MFA: "administrative" });
    assert.equal(await node.app.accounts.mfa.hasMfa(admin.id), false, "control: the administrator still holds no factor");
    const sessionAPI = await node.browser(b.cookie).request("GET", "/api/v1/users");
    assert.equal(sessionAPI.statusCode, 403, "control: the administrator's own session is held at enrolment");
    const call = (method: "GET" | "POST", url: string, payload?: object) =>
      node.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${token}`, ...(payload ? { "content-type": "application/json" } : {}) }, ...(payload ? { payload: JSON.stringify(payload) } : {}) });
    const listed = await call("GET", "/api/v1/users");
    const locked = await call("POST", `/api/v1/users/${victim.id}/lock`, {});
    const victimRow = await node.app.db.db.selectFrom("users").select("locked_at").where("id", "=", victim.id).executeTakeFirstOrThrow();
    assert.ok(
      listed.statusCode === 403 && victimRow.locked_at === null,
      `a token minted without any second factor under BULWARK_REQUIRE_MFA=none still acts as the administrator after the policy was raised to administrative (GET /api/v1/users ${listed.statusCode}, lock of another account ${locked.statusCode}, locked: ${victimRow.locked_at !== null}), while the same account's session is held at enrolment: the API guard judges the MFA policy only for sessions (gateOf), never for the owner of a token`,
    );
  });
});

describe("red team: a sign-up link from while registration was open", () => {
  it("attack: an outsider signs up while BULWARK_REGISTRATION=open and follows the mailed link after the restart with closed — no account is finished or signed in through it (ASVS 6.4.1) (was: the link set the password of the account POST /auth/register had made, and it signed in)", async (t) => {
    const s = await site(t);
    let node = await s.start({ BULWARK_REGISTRATION: "open" });
    const address = "outsider@example.net";
    const asked = await node.browser().request("POST", "/auth/register", { body: { email: address } });
    assert.equal(asked.statusCode, 202, show(asked));
    await node.deliver();
    const link = s.linkTo(address, RESET_LINK);
    node = await s.start({ BULWARK_REGISTRATION: "closed" });
    const refused = await node.browser().request("POST", "/auth/register", { body: { email: "another@example.net" } });
    assert.equal(refused.statusCode, 403, `control: registration is closed now: ${show(refused)}`);
    s.clock.advance(5 * MINUTE);
    const chosen = "amber quilt over frozen rivers 7781";
    const done = await node.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword: chosen } });
    const login = await node.browser().login(address, chosen);
    assert.ok(
      done.statusCode !== 200 && login.statusCode !== 200,
      `the sign-up started while registration was open was finished after it was closed (reset completion ${done.statusCode}, login ${login.statusCode}): the account POST /auth/register made is an ordinary password-less account, and the reset link mailed for it sets its password whatever BULWARK_REGISTRATION says now`,
    );
  });
});

describe("red team: an initial password issued under the longer BULWARK_INITIAL_PASSWORD_HOURS", () => {
  it("attack: an initial password an administrator set under 72 hours, found in a ticket 2 hours later, after the restart with BULWARK_INITIAL_PASSWORD_HOURS=1 — it signs nobody in, and the API shows the one-hour expiry (ASVS 6.4.1) (was: it still signed in, to the change gate, and the API showed the 72-hour expiry written at creation)", async (t) => {
    const s = await site(t);
    let node = await s.start();
    const admin = await account(node, "desk@example.org", ["admin"]);
    await ensureSecondFactor(node.app, admin.id); // an administrator without a factor: the MFA policy would hold the token
    const token = (await node.app.accounts.tokens.create(admin.id, { name: "desk", scopes: ["accounts.write", "accounts.read"] })).token;
    const initial = "granite lantern beside the quiet harbour";
    const made = await node.server.inject({
      method: "POST", url: "/api/v1/users", headers: { host: HOST, authorization: `Bearer ${token}`, "content-type": "application/json" },
      payload: JSON.stringify({ email: "newhire@example.org", password: initial }),
    });
    assert.equal(made.statusCode, 201, show(made));
    const id = (made.json() as { user: { id: string } }).user.id;
    const issuedAt = s.clock.now();
    node = await s.start({ BULWARK_INITIAL_PASSWORD_HOURS: "1" });
    s.clock.advance(2 * HOUR);
    const shown = await node.server.inject({ method: "GET", url: `/api/v1/users/${id}`, headers: { host: HOST, authorization: `Bearer ${token}` } });
    assert.equal(shown.statusCode, 200, show(shown));
    const expiresAt = Date.parse(String((shown.json() as { user: { initialPasswordExpiresAt: string } }).user.initialPasswordExpiresAt));
    const login = await node.browser().login("newhire@example.org", initial);
    assert.ok(
      login.statusCode === 401 && expiresAt <= issuedAt + HOUR,
      `an initial password issued ${Math.round((s.clock.now() - issuedAt) / HOUR)} hours ago still signs in (${login.statusCode}) after the restart with BULWARK_INITIAL_PASSWORD_HOURS=1, and the API shows it valid until ${new Date(expiresAt).toISOString()} (${Math.round((expiresAt - issuedAt) / HOUR)} hours after issue): users.password_initial_expires_at is written once at creation and the login compares only it`,
    );
  });
});

describe("red team: budgets and policies read again after the restart", () => {
  it("attack: 5 mail-sending requests under BULWARK_MAIL_REQUESTS_PER_HOUR=100000, then a restart with 5 — the sixth in the hour is refused: the count survived the restart (ASVS 2.4.1)", async (t) => {
    const s = await site(t);
    let node = await s.start();
    const ask = (n: Node, i: number) => n.browser().request("POST", "/auth/password/reset/request", { body: { email: `nobody${i}@example.org` } });
    for (let i = 0; i < 5; i++) assert.equal((await ask(node, i)).statusCode, 202);
    s.clock.advance(10 * MINUTE);
    node = await s.start({ BULWARK_MAIL_REQUESTS_PER_HOUR: "5" });
    const sixth = await ask(node, 6);
    assert.equal(sixth.statusCode, 429, `the restart gave the client a fresh budget under the smaller limit: ${show(sixth)}`);
    s.clock.advance(51 * MINUTE);
    assert.equal((await ask(node, 7)).statusCode, 202, "control: the hour over, the client may ask again");
  });

  it("attack: a reset link mailed under the 15-character minimum is completed after a restart with BULWARK_PASSWORD_MIN_LENGTH=24 and a breached-password file — a short or breached password is refused and the link stays usable (ASVS 6.2.1, 6.2.12)", async (t) => {
    const s = await site(t);
    let node = await s.start();
    const user = await account(node, "owner@example.org");
    assert.equal((await node.browser().request("POST", "/auth/password/reset/request", { body: { email: user.email } })).statusCode, 202);
    await node.deliver();
    const link = s.linkTo(user.email, RESET_LINK);
    const breached = "a rather long passphrase that leaked in 2025";
    const dir = mkdtempSync(join(tmpdir(), "bulwark-tightened-breach-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "pwned.txt");
    const sha1 = (text: string): string => createHash("sha1").update(text, "utf8").digest("hex").toUpperCase();
    writeFileSync(file, `${[sha1(breached), "0".repeat(40)].sort().map((h) => `${h}:7`).join("\n")}\n`);
    node = await s.start({ BULWARK_PASSWORD_MIN_LENGTH: "24", BULWARK_BREACH_FILE: file });
    const complete = (newPassword: string) => node.browser().request("POST", "/auth/password/reset/complete", { body: { token: link, newPassword } });
    const short = await complete("sixteen chars ok!!"); // 18: enough before, not now
    assert.equal(short.statusCode, 400, `a password under the new minimum was accepted: ${show(short)}`);
    const leaked = await complete(breached);
    assert.equal(leaked.statusCode, 400, `a password in the new breach file was accepted: ${show(leaked)}`);
    const good = await complete("twenty-four characters at the very least");
    assert.equal(good.statusCode, 200, `control: the link was not spent by the refusals: ${show(good)}`);
  });
});

describe("red team: a new public URL", () => {
  it("attack: a reset link queued while the mail relay was down goes out after the restart with a corrected BULWARK_PUBLIC_URL — it points at the corrected origin, never at the one the operator left (ASVS 13.2.4, 6.4.1) (was: the link was written into the sealed body at enqueue and delivered as it was, pointing at the old origin)", async (t) => {
    const s = await site(t);
    let node = await s.start();
    const user = await account(node, "moving@example.org");
    assert.equal((await node.browser().request("POST", "/auth/password/reset/request", { body: { email: user.email } })).statusCode, 202);
    // Not delivered before the restart (the relay was down): it waits in the outbox.
    node = await s.start({ BULWARK_PUBLIC_URL: "https://accounts.example.org" });
    await node.deliver();
    const mail = s.smtp.accepted.filter((m) => m.envelopeTo.includes(user.email)).map((m) => decodeQuotedPrintable(m.body)).find((b) => RESET_LINK.test(b));
    assert.ok(mail !== undefined, "control: the reset mail went out after the restart");
    const links = [...mail.matchAll(/https?:\/\/[^\s/"<>]+/g)].map((m) => m[0]);
    assert.ok(links.length > 0 && links.every((l) => l === "https://accounts.example.org"), `the reset link delivered after the restart with BULWARK_PUBLIC_URL=https://accounts.example.org points at ${[...new Set(links)].join(", ")}, the origin the operator replaced: the link mail is rendered and sealed at enqueue (resetMailer.request with the publicURL of the time) and the sender delivers it as it was, so whoever holds the old origin reads the token from the page it opens`);
  });
});
