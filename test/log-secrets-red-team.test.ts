// Red team, round "what the logs, error bodies and audit details reveal" (ASVS 16.2.5, 16.5.1, 14.2.1, 14.2.4).
// Attacker: anyone who reads what the server writes down — a log aggregator, a support engineer, a backup of the log
// files, an `audit.read` token holder — and an outsider who reads error answers. Method: a real app (SQLite) whose
// pino log is captured at trace (every level an operator can pick), its HTTP server driven through whole flows
// (login right / wrong / unknown / throttled, TOTP, recovery codes, password change, reset, registration, email
// change, /api/v1 users with an initial password, API tokens minted, used, revoked; malformed bodies, 413, a forced
// 500 in a store call), mail delivered through a real in-process SMTP peer by an OutboxSender logging as the server's
// mail runner does; then every log line, every audit event and every error body is searched for the secrets used.
// Each test is an attack that must fail: it passes when the product is safe. The three leaks this round found (a
// flooded mailbox named in the audit log, a relay's quote of a live reset link, tokens in a logged query) are fixed.
// Not repeated here (test/http-server-attacks.test.ts, test/audit-attacks.test.ts, test/api-access-attacks.test.ts):
// the basic login / TOTP / reset / bearer secrets in the log, raw bytes of unparseable requests, audit TOTP secrets.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { Browser, HOST, ORIGIN, totpCode } from "../src/http/auth/test-client.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { buildServer } from "../src/http/server.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { createSMTPTransport, OutboxSender, type MailTransport } from "../src/notify/index.ts";
import { decodeQuotedPrintable, startTestSMTPServer, type TestSMTPServer } from "../src/notify/smtp-test-server.ts";
import { EMAIL_LINK, RESET_LINK, STEP } from "./helpers/auth-flows.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

const SAME_ORIGIN = { host: HOST, origin: ORIGIN, "sec-fetch-site": "same-origin" } as const;
/** Any single-use link token the product mints (reset / registration / containment: prt_, email change: ect_). */
const LINK_TOKEN = /[a-z]{3}_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}/;

let root: string;
let clock: ManualClock;
let smtp: TestSMTPServer;
let app: OpenedApp;
let server: FastifyInstance;
let transport: MailTransport;
let sender: OutboxSender;
const logLines: string[] = [];
/** Every answer the server gave (method, url, status, body), in order. */
const answers: Array<{ method: string; url: string; status: number; body: string }> = [];

before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-log-secrets-"));
  clock = new ManualClock(Date.UTC(2026, 10, 2, 9));
  smtp = await startTestSMTPServer();
  app = await openApp({
    env: {
      BULWARK_DATA_DIR: join(root, "data"), BULWARK_LOG_LEVEL: "trace", BULWARK_PUBLIC_URL: ORIGIN,
      BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1",
      BULWARK_MAIL_REQUESTS_PER_HOUR: "100000", BULWARK_PASSWORD_CHECKS_IN_FLIGHT: "4096", BULWARK_REGISTRATION: "open",
      BULWARK_SMTP_URL: `smtp://127.0.0.1:${smtp.port}?requireTLS=false`, BULWARK_MAIL_FROM: "security@bulwark.test",
    },
    mode: "init", clock,
    logDestination: { write: (line: string) => void logLines.push(...line.split("\n").filter((l) => l !== "")) },
  });
  server = await buildServer(app);
  // Every answer is kept, whoever sent the request (Browser or a bare inject).
  const inject = server.inject.bind(server) as (o: unknown) => Promise<LightMyRequestResponse>;
  (server as unknown as { inject: (o: { method: string; url: string }) => Promise<LightMyRequestResponse> }).inject = async (o) => {
    const res = await inject(o);
    answers.push({ method: o.method, url: o.url, status: res.statusCode, body: res.body });
    return res;
  };
  // As startMailRunner builds it: the server's logger goes to the sender.
  transport = await createSMTPTransport(app.config.http.mail!);
  sender = new OutboxSender({ outbox: app.accounts.outbox, transport, clock, random: app.random, logger: app.logger }, { name: "rt-logs" });
});
after(async () => {
  await server.close();
  await transport.close();
  await smtp.close();
  await app.close();
  rmSync(root, { recursive: true, force: true });
});

async function user(email: string, password: string, roles: string[] = []): Promise<{ id: string; email: string }> {
  const created = await app.accounts.users.create({ email, passwordHash: await app.accounts.passwords.hash(password), passwordScheme: "argon2id" });
  for (const role of roles) await app.accounts.roles.grant(created.id, role, "test");
  return { id: created.id, email };
}

function api(method: "GET" | "POST" | "DELETE", url: string, token: string, body?: unknown): Promise<LightMyRequestResponse> {
  return server.inject({
    method, url,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
}

/** The newest link token mailed to `address` matching `link`, after the outbox delivered. */
async function mailedToken(address: string, link: RegExp): Promise<string> {
  await sender.drain();
  const hit = smtp.accepted.filter((m) => m.envelopeTo.includes(address)).map((m) => decodeQuotedPrintable(m.body)).filter((b) => link.test(b)).at(-1);
  assert.ok(hit, `no link mailed to ${address}`);
  return (link.exec(hit) as RegExpExecArray)[1] as string;
}

/** The forms of a secret a careless line might hold: as is, lower case, base64, and the secret half of an `id.secret`. */
function forms(secret: string): string[] {
  const out = [secret, secret.toLowerCase(), Buffer.from(secret).toString("base64"), Buffer.from(secret).toString("base64url")];
  const dot = secret.indexOf(".");
  if (dot > 0) out.push(secret.slice(dot + 1));
  return out.filter((f) => f.length >= 6);
}

/** The names of the secrets whose some form `text` holds. */
function leaked(text: string, secrets: Record<string, string>): string[] {
  return Object.entries(secrets).filter(([, s]) => forms(s).some((f) => text.includes(f))).map(([name]) => name);
}

async function auditText(): Promise<string> {
  const rows = await app.db.db.selectFrom("audit_events").select(["type", "actor", "subject", "data", "request_id"]).execute();
  return rows.map((r) => JSON.stringify(r)).join("\n");
}

describe("secrets of whole flows", () => {
  it("attack: recovery codes, a TOTP code, an initial password set over /api/v1, an API token minted / used / revoked over HTTP, registration and email-change link tokens, a throttled guess and a forced-500 request leave no secret in the trace log, the audit log or any error answer (ASVS 16.2.5, 16.5.1)", async () => {
    const fromLog = logLines.length;
    const fromAnswers = answers.length;
    const secrets: Record<string, string> = {};

    // An account with TOTP and recovery codes, used at the second-factor step.
    secrets["password"] = "Pw1-pheasant quarry lantern vellum";
    const ana = await user("rt-flows-ana@example.org", secrets["password"]);
    const b = new Browser(server);
    assert.equal((await b.login(ana.email, secrets["password"])).statusCode, 200);
    secrets["csrf"] = await b.csrf();
    const totp = (await b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    secrets["totpSecret"] = totp;
    assert.equal((await b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(totp, clock.now()) } })).statusCode, 200);
    const generated = await b.request("POST", "/auth/mfa/recovery-codes", { csrf: true });
    assert.equal(generated.statusCode, 200, generated.body);
    const codes = generated.json().codes as string[];
    codes.forEach((c, i) => (secrets[`recovery${i}`] = c));
    secrets["cookie1"] = b.cookie as string;
    clock.advance(STEP);
    const viaCode = new Browser(server);
    assert.equal((await viaCode.login(ana.email, secrets["password"])).json().mfaRequired, true);
    assert.equal((await viaCode.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[0] } })).statusCode, 200);
    const reuse = new Browser(server);
    await reuse.login(ana.email, secrets["password"]);
    assert.equal((await reuse.request("POST", "/auth/mfa/verify", { csrf: true, body: { recoveryCode: codes[0] } })).statusCode, 401, "a used recovery code is refused");
    secrets["cookie2"] = viaCode.cookie as string;
    const viaTOTP = new Browser(server);
    await viaTOTP.login(ana.email, secrets["password"]);
    const code = totpCode(totp, clock.now());
    assert.equal((await viaTOTP.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: code } })).statusCode, 200);
    secrets["cookie3"] = viaTOTP.cookie as string;

    // An administrator's token mints another over HTTP; it is used, revoked, then tried again.
    const admin = await user("rt-flows-admin@example.org", "Pw-admin unused passphrase here", ["admin"]);
    await ensureSecondFactor(app, admin.id); // the MFA policy holds the token of an administrator without a factor
    secrets["adminToken"] = (await app.accounts.tokens.create(admin.id, { name: "rt-flows", scopes: ["admin"] })).token;
    const minted = await api("POST", "/api/v1/tokens", secrets["adminToken"], { name: "rt-minted", scopes: ["audit.read"] });
    assert.equal(minted.statusCode, 201, minted.body);
    secrets["mintedToken"] = minted.json().token as string;
    assert.equal((await api("GET", "/api/v1/audit/events?limit=1", secrets["mintedToken"])).statusCode, 200);
    const revoked = await api("DELETE", `/api/v1/tokens/${minted.json().info.id as string}`, secrets["adminToken"]);
    assert.equal(revoked.statusCode, 204, revoked.body);
    assert.equal((await api("GET", "/api/v1/audit/events?limit=1", secrets["mintedToken"])).statusCode, 401);

    // An account created over /api/v1 with an initial password, whose owner signs in and replaces it.
    secrets["initial"] = "Pw2-initial walrus harpsichord meadow";
    const created = await api("POST", "/api/v1/users", secrets["adminToken"], { email: "rt-flows-bob@example.org", password: secrets["initial"] });
    assert.equal(created.statusCode, 201, created.body);
    const bob = new Browser(server);
    assert.equal((await bob.login("rt-flows-bob@example.org", secrets["initial"])).statusCode, 200);
    secrets["bobOwn"] = "Pw3-own chosen cobalt ferry orchard";
    assert.equal((await bob.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: secrets["initial"], newPassword: secrets["bobOwn"] } })).statusCode, 200);
    secrets["cookie4"] = bob.cookie as string;

    // Email change: the link mailed to the new address is confirmed, then replayed. (A link asked for in the very
    // millisecond of a password change counts as older than it: the manual clock moves on first.)
    clock.advance(1_000);
    const changed = await bob.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "rt-flows-bob-new@example.org" } });
    assert.ok(changed.statusCode < 300, changed.body);
    secrets["emailLink"] = await mailedToken("rt-flows-bob-new@example.org", EMAIL_LINK);
    const confirmed = await new Browser(server).request("POST", "/auth/email/confirm", { body: { token: secrets["emailLink"] } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    assert.ok((await new Browser(server).request("POST", "/auth/email/confirm", { body: { token: secrets["emailLink"] } })).statusCode >= 400);

    // Registration: the mailed link, its password, and the link replayed.
    assert.equal((await new Browser(server).request("POST", "/auth/register", { body: { email: "rt-flows-carol@example.org" } })).statusCode, 202);
    secrets["registerLink"] = await mailedToken("rt-flows-carol@example.org", RESET_LINK);
    secrets["carolPassword"] = "Pw4-she picks tangerine lighthouse";
    const completed = await new Browser(server).request("POST", "/auth/password/reset/complete", { body: { token: secrets["registerLink"], newPassword: secrets["carolPassword"] } });
    assert.equal(completed.statusCode, 200, completed.body);
    assert.ok((await new Browser(server).request("POST", "/auth/password/reset/complete", { body: { token: secrets["registerLink"], newPassword: secrets["carolPassword"] } })).statusCode >= 400);

    // Guesses until the account throttles, the last ones answered 429.
    const dave = await user("rt-flows-dave@example.org", "Pw5-dave real passphrase unused");
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      secrets[`guess${i}`] = `Pw6-guess number ${i} of seven`;
      statuses.push((await new Browser(server).login(dave.email, secrets[`guess${i}`] as string)).statusCode);
    }
    assert.equal(statuses.at(-1), 429, `the guesses were throttled: ${statuses.join(",")}`);

    // A store call failing under a password change (the new password in the body): a 500.
    const b500 = new Browser(server);
    secrets["pw500"] = "Pw7-erin real passphrase for 500";
    const erin = await user("rt-flows-erin@example.org", secrets["pw500"]);
    assert.equal((await b500.login(erin.email, secrets["pw500"])).statusCode, 200);
    secrets["cookie500"] = b500.cookie as string;
    const csrf500 = await b500.csrf();
    secrets["csrf500"] = csrf500;
    secrets["new500"] = "Pw8-new password lost to a 500 error";
    const users = app.accounts.users as unknown as Record<string, unknown>;
    const swap = users["swapPasswordHash"];
    users["swapPasswordHash"] = async () => {
      // What node:sqlite throws when the disk fails under a write (a busy store, SQLITE_BUSY, answers 503 instead).
      throw Object.assign(new Error("disk I/O error"), { code: "ERR_SQLITE_ERROR", errcode: 10, errstr: "disk I/O error" });
    };
    let boom: LightMyRequestResponse;
    try {
      boom = await b500.request("POST", "/auth/password/change", { csrf: csrf500, body: { currentPassword: secrets["pw500"], newPassword: secrets["new500"] } });
    } finally {
      users["swapPasswordHash"] = swap;
    }
    assert.equal(boom.statusCode, 500, boom.body);
    const body500 = boom.json() as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(body500.error).sort(), ["code", "message", "requestId"], "the 500 says nothing but a code, a fixed message and the request id");
    assert.equal(body500.error["code"], "BULWARK_ERR_INTERNAL");
    assert.doesNotMatch(boom.body, /disk|sqlite|\.ts|at \w|stack/i, "no internals in the 500");
    await sender.drain();

    const lines = logLines.slice(fromLog);
    const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string; requestId?: string; err?: { stack?: string } });
    const failed = records.find((r) => r.level === 50 && r.msg === "request failed");
    assert.equal(failed?.requestId, body500.error["requestId"], "the 500 is in the log under the id its answer gave");
    assert.match(failed?.err?.stack ?? "", /disk I\/O error/, "the operator gets the cause");
    assert.deepEqual(leaked(lines.join("\n"), secrets), [], "no secret in the log");
    assert.deepEqual(leaked(await auditText(), secrets), [], "no secret in the audit log");
    const errorBodies = answers.slice(fromAnswers).filter((a) => a.status >= 400).map((a) => a.body).join("\n");
    assert.deepEqual(leaked(errorBodies, secrets), [], "no secret in an error answer");
    assert.ok(!lines.join("\n").includes(`"${code}"`), "the TOTP code is not in the log");
  });
});

describe("error answers", () => {
  it("attack: a password inside a body the server refuses — JSON broken right at the password (Node's JSON.parse message quotes the text there), bad UTF-8 in a form field, a control character, over the length bound, a refused initial password, an unknown field, 413 — is never echoed in the answer (ASVS 16.5.1, 14.2.1)", async () => {
    const admin = await user("rt-echo-admin@example.org", "Pw-echo admin unused passphrase", ["admin"]);
    await ensureSecondFactor(app, admin.id); // else the MFA policy's 403 answers before the body is judged
    const token = (await app.accounts.tokens.create(admin.id, { name: "rt-echo", scopes: ["admin"] })).token;
    const pw = "Zy8qWv3mPtLk2sDx7nHbRc4J";
    const short = "Kj4hRb7xTq";
    const json = { ...SAME_ORIGIN, "content-type": "application/json" };
    const got: LightMyRequestResponse[] = [
      // Unquoted: JSON.parse says `Unexpected token 'Z', ..."password":Zy8qWv3mP"... is not valid JSON`.
      await server.inject({ method: "POST", url: "/auth/login", headers: json, payload: `{"identifier":"rt-echo@example.org","password":${pw}}` }),
      await server.inject({ method: "POST", url: "/api/v1/users", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, payload: `{"email":"rt-echo-x@example.org","password":${pw}}` }),
      await server.inject({ method: "POST", url: "/auth/login", headers: { ...SAME_ORIGIN, "content-type": "application/x-www-form-urlencoded" }, payload: `identifier=rt-echo%40example.org&password=${pw}%E9%FF` }),
      await server.inject({ method: "POST", url: "/auth/login", headers: { ...SAME_ORIGIN, "content-type": "application/x-www-form-urlencoded" }, payload: `identifier=rt-echo%40example.org&password=${pw}&password=${pw}` }),
      await api("POST", "/api/v1/users", token, { email: "rt-echo-y@example.org", password: `${pw}\u0007` }),
      await api("POST", "/api/v1/users", token, { email: "rt-echo-z@example.org", password: pw.repeat(60) }),
      await api("POST", "/api/v1/users", token, { email: "rt-echo-w@example.org", password: short }),
      await api("POST", "/api/v1/users", token, { email: "rt-echo-v@example.org", password: pw, pasword: pw }),
      await server.inject({ method: "POST", url: "/auth/login", headers: json, payload: JSON.stringify({ identifier: "rt-echo@example.org", password: pw + "x".repeat(1_100_000) }) }),
    ];
    const statuses = got.map((r) => r.statusCode);
    assert.ok(statuses.every((s) => s >= 400 && s < 500), `each was refused: ${statuses.join(",")}`);
    assert.ok(statuses.includes(413), "one was too large");
    // Any 8 characters of the password in a row count as an echo.
    const windows = Array.from({ length: pw.length - 7 }, (_, i) => pw.slice(i, i + 8));
    for (const r of got) {
      const echoed = windows.find((w) => r.body.includes(w)) ?? (r.body.includes(short) ? short : undefined);
      assert.equal(echoed, undefined, `${r.statusCode} answer echoes the password: ${r.body}`);
    }
  });
});

describe("the audit log", () => {
  it("attack: an audit reader learns no address of whoever a sign-up flood targeted: the summary event auth.refusals.unrecorded names the mailbox by its keyed tag (ASVS 16.2.5, 14.2.4) (was: register-mailbox:<address> in clear)", async () => {
    // Sign-ups for one inbox (its + spellings fold into one mailbox) beyond the mailbox's hourly budget (3):
    // the first refusal is audited under the address's tag, the rest are counted, and the maintenance pass writes
    // the counts of a window that has ended.
    const spellings = Array.from({ length: 6 }, (_, i) => `Flood.Target+s${i}@gmail.com`);
    for (const email of spellings) assert.equal((await new Browser(server).request("POST", "/auth/register", { body: { email } })).statusCode, 202);
    clock.advance(2 * 60_000);
    const maintenance = startMaintenance(app, { intervalMs: 3_600_000, firstPassDelayMs: 3_600_000 });
    try {
      const ran = await maintenance.runOnce();
      assert.ok((ran["unrecordedRefusals"] ?? 0) > 0, "the maintenance pass wrote the unrecorded counts");
    } finally {
      await maintenance.stop();
    }
    const rows = await app.db.db.selectFrom("audit_events").select(["type", "subject", "data"]).where("type", "in", ["auth.register.mailbox-limited", "auth.refusals.unrecorded"]).execute();
    assert.ok(rows.some((r) => r.type === "auth.register.mailbox-limited"), "the refusal itself was audited (by tag)");
    const text = JSON.stringify(rows).toLowerCase();
    for (const fragment of ["floodtarget", "flood.target", "@gmail.com"]) {
      assert.ok(!text.includes(fragment), `the audit log names the targeted mailbox (${fragment}): ${JSON.stringify(rows.filter((r) => JSON.stringify(r).toLowerCase().includes(fragment)))}`);
    }
  });
});

describe("the log", () => {
  it("attack: a relay's rejection that quotes the reset link leaves no live link token in the warn line 'outbox message is dead…' nor in outbox_messages.last_error (ASVS 16.2.5) (was: the token whole, and it reset the password)", async () => {
    const from = logLines.length;
    // A content-filtering relay (URI blocklist) that quotes what it refused, as such filters do.
    await sender.drain(); // mail queued by earlier tests goes first, through the accepting relay
    smtp.respond = (mail) => {
      const link = /https:\/\/\S+#token=\S+/.exec(decodeQuotedPrintable(mail.body))?.[0];
      return link ? { code: 554, message: `5.7.1 Message content rejected: URL ${link} is listed in a URI blocklist` } : null;
    };
    let refusedBody: string;
    try {
      const fred = await user("rt-relay-fred@example.org", "Pw9-fred real passphrase unused");
      assert.equal((await new Browser(server).request("POST", "/auth/password/reset/request", { body: { email: fred.email } })).statusCode, 202);
      const report = await sender.drain();
      assert.equal(report.dead, 1, "the relay refused the link mail for good");
      refusedBody = decodeQuotedPrintable((smtp.refused.at(-1) as { body: string }).body);
    } finally {
      smtp.respond = () => null;
    }
    const token = (RESET_LINK.exec(refusedBody) as RegExpExecArray)[1] as string;
    const lines = logLines.slice(from);
    assert.ok(lines.some((l) => l.includes("outbox message is dead")), "the dead message was logged");
    const inLog = lines.filter((l) => l.includes(token) || l.includes(token.split(".")[1] as string));
    assert.deepEqual(inLog, [], "the live reset token is in the log");
    const stored = await app.db.db.selectFrom("outbox_messages").select(["last_error"]).where("status", "=", "dead").execute();
    assert.ok(!stored.some((r) => LINK_TOKEN.test(r.last_error ?? "")), `a link token is kept in outbox_messages.last_error: ${stored.map((r) => r.last_error).join(" | ")}`);
  });

  it("attack: a live API token sent as `?access_token=` (RFC 6750 §2.3) and a reset link token in a query string are not written to the log: the request line keeps the query's names, not its values (ASVS 16.2.5, 14.2.1) (was: both written whole at info)", async () => {
    const admin = await user("rt-query-admin@example.org", "Pw-query admin unused passphrase", ["admin"]);
    const token = (await app.accounts.tokens.create(admin.id, { name: "rt-query", scopes: ["admin"] })).token;
    const gina = await user("rt-query-gina@example.org", "Pw10-gina real passphrase unused");
    const issued = await app.accounts.passwordReset.issue(gina.id);
    assert.ok(issued.issued);
    const from = logLines.length;
    const refused = await server.inject({ method: "GET", url: `/api/v1/users?access_token=${token}`, headers: { host: HOST } });
    assert.equal(refused.statusCode, 401, "a token in the query string is not accepted");
    const page = await server.inject({ method: "GET", url: `/reset-password?token=${issued.token}`, headers: { host: HOST } });
    assert.equal(page.statusCode, 200);
    assert.ok(!page.body.includes(issued.token), "the page does not carry the token");
    const infoAndAbove = logLines.slice(from).filter((l) => (JSON.parse(l) as { level: number }).level >= 30);
    const leaks = leaked(infoAndAbove.join("\n"), { apiToken: token, resetToken: issued.token });
    assert.deepEqual(leaks, [], `the info log holds them: ${infoAndAbove.filter((l) => l.includes("token=")).join("\n")}`);
  });

  it("attack: the Authorization, Cookie and X-CSRF-Token headers of requests that fail in every way (a malformed cookie, a Basic and a malformed Bearer header, a wrong CSRF token, a 401, a 403, a 404) never reach the log, even at trace: the request serializer keeps method, url, host and address only (ASVS 16.2.5)", async () => {
    const password = "Pw11-hank real passphrase unused";
    const hank = await user("rt-headers-hank@example.org", password);
    const b = new Browser(server);
    assert.equal((await b.login(hank.email, password)).statusCode, 200);
    const cookie = b.cookie as string;
    const csrf = await b.csrf();
    const basic = Buffer.from(`${hank.email}:${password}`).toString("base64");
    const from = logLines.length;
    const sent: LightMyRequestResponse[] = [
      await server.inject({ method: "GET", url: "/auth/session", headers: { host: HOST, cookie: `${SESSION_COOKIE}=%E0%A4%A${cookie}; other=%%` } }),
      await server.inject({ method: "GET", url: "/api/v1/users", headers: { host: HOST, authorization: `Basic ${basic}` } }),
      await server.inject({ method: "GET", url: "/api/v1/users", headers: { host: HOST, authorization: `Bearer ${cookie} ${csrf}` } }),
      await server.inject({ method: "POST", url: "/auth/logout", headers: { ...SAME_ORIGIN, cookie: `${SESSION_COOKIE}=${cookie}`, "x-csrf-token": `${csrf}x`, "content-type": "application/json" }, payload: "{}" }),
      await server.inject({ method: "GET", url: "/api/v1/users", headers: { ...SAME_ORIGIN, cookie: `${SESSION_COOKIE}=${cookie}`, "x-csrf-token": csrf } }),
      await server.inject({ method: "GET", url: "/no/such/route", headers: { host: HOST, cookie: `${SESSION_COOKIE}=${cookie}`, "x-csrf-token": csrf } }),
    ];
    assert.ok(sent.every((r) => r.statusCode < 500), sent.map((r) => r.statusCode).join(","));
    assert.ok(sent.some((r) => r.statusCode === 401) && sent.some((r) => r.statusCode === 403) && sent.some((r) => r.statusCode === 404), sent.map((r) => r.statusCode).join(","));
    const text = logLines.slice(from).join("\n");
    assert.ok(logLines.slice(from).length >= 12, "every request was logged");
    assert.deepEqual(leaked(text, { cookie, csrf, basic, password }), []);
    assert.doesNotMatch(text, /authorization|"cookie"|x-csrf-token/i, "no header of the request is logged");
  });
});
