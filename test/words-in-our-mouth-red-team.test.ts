// Red team, round "words in our mouth": making Bulwark's own trusted channels — the security notices it mails, its link
// pages, its API answers, the CLI's output — carry text the attacker chose, so that a genuine, DKIM-signed notice or an
// answer from the genuine origin speaks the attacker's lure (a phishing line, a link, a terminal escape) as Bulwark's.
// Attackers: a hijacker holding a fresh session of the owner's account (a phished password) who names things in it (a
// passkey, an API token), signs in with a User-Agent of its choosing and asks to move the account's email to an address
// it typed; an anonymous client who signs in (wrongly) with any header bytes it likes; a help desk (accounts.write) who
// writes a lock's reason; an administrator who describes a role it grants; anyone who can put a link to the genuine
// origin in front of a victim (a phishing mail whose link's domain really is Bulwark's).
// Tried: a User-Agent, a passkey name, a token name, a role description and a lock reason carrying a lure, through to
// what the owner receives over real SMTP (body and raw headers) and the answers the locked owner gets; a link-shaped
// address in the email-change notices; link pages opened with a crafted query and fragment; a path holding a sentence;
// C1 controls (8-bit CSI/OSC) in a sign-in's User-Agent, read back through GET /api/v1/audit/events and GET /auth/sessions.
// Held: no name, description, lock reason or User-Agent of the attacker's reaches a mail (fixed wording and labels only,
// the new browser by no text at all); a locked owner gets the fixed login and reset answers; the link pages reflect
// nothing of their URL and answer a forged token with the fixed message only; names the owner reads in their own lists
// (passkeys, tokens) refuse zero-width characters and direction marks.
// Found (fixed since: every notice names an address through noticeAddress, src/notify/notice-address.ts — in full only
// when its local part is plain, else "an address at <domain>"; the 404 and framework-error answers say fixed words,
// never the path, src/http/server.ts; every JSON answer has DEL, C1, bidi controls and U+2028/9 escaped as \uXXXX
// after serialization, inertJSONReply in server.ts's onSend hook):
// - the email-change notices quote the address the requester typed verbatim, so an address the outbox can mail but whose
//   local part is a scheme-less link (www.bulwark-help.example/keep-account?case=7731@…) puts the hijacker's link into
//   the owner's genuine "a change was requested", "your email address was changed" and, after an administrator sets the
//   address back, "an administrator set your email address" notices — the guard (addressProblem) keeps out only
//   addresses the outbox cannot mail (`x+https://…`), not links without a scheme, which RFC 5322 atext spells;
// - a path that matches no route (or that Fastify cannot decode) is echoed into the 404 (400) answer of the genuine
//   origin ("no route GET /Your_Bulwark_account_is_locked._Call_…"), a sentence of the attacker's at a Bulwark address;
// - the JSON API writes stored request text as JSON.stringify leaves it: C1 controls (U+009B CSI, U+009D OSC) from an
//   anonymous client's User-Agent reach a responder's terminal raw through GET /api/v1/audit/events (and the owner's
//   through GET /auth/sessions), where the CLI (inertJSON) and the server log (inertJSONText) escape the same text.
// Not repeated (pinned elsewhere): unmailable addresses in the change-requested notice (output-injection-red-team), the
// follow-up's browser label (docs-claims-sixth), invisible passkey names (mfa-attacks), bidi in display names and lock
// reasons (output-injection-red-team, cli-admin-attacks), header injection through addresses and subjects
// (src/notify/outbox.security.test.ts), C1 escaping of `audit tail`/export and `outbox status` (audit-cli,
// poison-data-red-team, cli-outbox). Read and not tested: the pages and mails hold no HTML body at all; display names,
// lock reasons and role descriptions may hold zero-width characters and U+200E/U+200F by the documented rule
// (docs/api.md: "Any other Unicode text passes"); GET /auth/sessions shows a session's User-Agent as sent (documented).
// SQLite in a temp dir, loopback only, mail delivered through the in-process SMTP server. ASVS 5.0 ids.
import assert from "node:assert/strict";
import { connect } from "node:net";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { SoftAuthenticator } from "../src/accounts/mfa/testing/soft-authenticator.ts";
import { GOOD_PASSWORD, HOST, ORIGIN, type AuthFixture } from "../src/http/auth/test-client.ts";
import { authFlows, EMAIL_LINK } from "./helpers/auth-flows.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

type Res = LightMyRequestResponse;
const show = (r: Res): string => `${r.statusCode} ${r.body.slice(0, 200)}`;

/** The mails delivered (through real SMTP) to `address` since the `from`-th, with their raw headers and body. */
function mailsTo(fx: AuthFixture, address: string, from = 0): Array<{ subject: string; body: string; raw: string }> {
  return fx.mailTo(address).slice(from).map((m) => ({ subject: m.subject, body: m.body, raw: m.mail.raw }));
}

/** Sends raw bytes to the listening server and resolves with the whole answer (Latin-1) once it closes the connection. */
function rawRequest(port: number, bytes: Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => socket.write(bytes));
    const chunks: Buffer[] = [];
    socket.on("data", (d: Buffer) => chunks.push(d));
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
  });
}

// What a terminal acts on in text it prints: C0 (but tab and newline, which JSON escapes anyway), DEL and C1 (8-bit
// CSI U+009B, OSC U+009D, ST U+009C …), and the bidirectional controls that reorder a line on screen.
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe("a genuine security notice", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);

  it("attack: a hijacker asks to move the account to an address whose local part is a scheme-less link (www.bulwark-help.example/keep-account?case=7731@evil.test, one the outbox mails) — the owner's genuine \"a change was requested\", \"your email address was changed\" and (once an administrator sets it back) \"an administrator set your email address\" notices name it by its domain only, never carrying that link as Bulwark's words (ASVS 6.3.7, 1.3.11; CWE-74) (was: all three quoted the typed address verbatim, link and all)", async () => {
    const owner = await flows.signedIn("link-owner@example.org");
    // Every character of it is one RFC 5322 allows in a local part (atext: / ? = and the dots), so addressProblem passes
    // it and the confirmation mail is queued to it; mail clients turn "www.…/…" into a link to www.bulwark-help.example.
    const lure = "www.bulwark-help.example/keep-account?case=7731@evil.test";
    const link = "www.bulwark-help.example/keep-account";
    const asked = await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: lure } });
    await fx.deliver();
    const requested = mailsTo(fx, owner.email).filter((m) => m.subject.endsWith("a change of your email address was requested"));
    const carrying: string[] = [];
    if (asked.statusCode === 202) {
      assert.equal(requested.length, 1, "the owner is told of the request");
      if (requested[0]?.body.includes(link)) carrying.push(`"change requested": ${JSON.stringify(requested[0].body.split(/\r?\n/).find((l) => l.includes(link)))}`);
      // The hijacker holds that mailbox (its own domain), opens the link and completes the move.
      const token = await flows.tokenIn(lure, EMAIL_LINK);
      const confirmed = await fx.browser({ newDevice: true }).request("POST", "/auth/email/confirm", { body: { token } });
      assert.equal(confirmed.statusCode, 200, show(confirmed));
      await fx.deliver();
      const changed = mailsTo(fx, owner.email).filter((m) => m.subject.endsWith("your email address was changed"));
      assert.equal(changed.length, 1, "the old address is told of the change");
      if (changed[0]?.body.includes(link)) carrying.push(`"email changed": ${JSON.stringify(changed[0].body.split(/\r?\n/).find((l) => l.includes(link)))}`);
      // The owner turns to the administrators, who set the address back (POST /api/v1/users/:id/email): the owner's
      // notice of that, the one that sends them to "the link in the separate message sent to this address", names the
      // address the account had.
      const admin = await fx.user("link-admin@example.org", { roles: ["admin"] });
      await ensureSecondFactor(fx.app, admin.id); // an administrator without a factor: the MFA policy would hold the token
      const adminToken = (await fx.app.accounts.tokens.create(admin.id, { name: "restore", scopes: ["admin"] })).token;
      const restored = await fx.server.inject({
        method: "POST", url: `/api/v1/users/${owner.id}/email`,
        headers: { host: HOST, authorization: `Bearer ${adminToken}`, "content-type": "application/json" }, payload: JSON.stringify({ email: owner.email }),
      });
      assert.equal(restored.statusCode, 200, show(restored));
      await fx.deliver();
      const set = mailsTo(fx, owner.email).filter((m) => m.subject.endsWith("an administrator set your email address"));
      assert.equal(set.length, 1, "the owner is told the administrator set the address back");
      if (set[0]?.body.includes(link)) carrying.push(`"an administrator set your email address": ${JSON.stringify(set[0].body.split(/\r?\n/).find((l) => l.includes(link)))}`);
    } else {
      // Refusing such an address at the request (400) is one secure answer: then nothing of it may reach the owner.
      assert.equal(asked.statusCode, 400, show(asked));
      assert.deepEqual(requested.filter((m) => m.body.includes(link)).map((m) => m.subject), []);
    }
    assert.deepEqual(carrying, [], `the owner's genuine security notices (signed by the service) quote the hijacker's link verbatim, ready for a mail client to make clickable — ${carrying.join("; ")}`);
  });

  it("attack: a hijacker's words — a User-Agent, a passkey name and an API token name carrying a lure, and an administrator's role description — reach none of the genuine notices the owner receives (new browser, factor added, token created, administrator's role received: fixed wording and labels only, body and raw headers alike); names the owner reads in their own lists refuse zero-width characters and direction marks (ASVS 6.3.5, 6.3.7, 1.3.11)", async () => {
    await fx.app.accounts.roles.create({ name: "lure-reader", permissions: ["audit.read"] }, "test");
    const owner = await fx.user("lure-target@example.org", { roles: ["lure-reader"] });
    // The lures: each distinctive word below is checked for in every mail the owner receives.
    const words = ["555-0100", "bulwark-verify", "no action needed", "keep access", "VERIFIED"];
    const userAgent = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0 Bulwark security: this sign-in was our VERIFIED scan, no action needed, see https://bulwark-verify.example/scan";
    const passkeyName = "Bulwark support key: call 555-0100 to keep access";
    const tokenName = "Bulwark VERIFIED sync - do not revoke, call 555-0100 or visit bulwark-verify.example";
    const description = "Temporary access granted by Bulwark support. No action needed; questions: 555-0100, https://bulwark-verify.example";

    // The hijacker signs in from its own browser with its User-Agent (a new browser: the owner is told at once).
    const thief = fx.browser({ newDevice: true });
    const signed = await thief.request("POST", "/auth/login", { body: { identifier: owner.email, password: owner.password }, headers: { "user-agent": userAgent } });
    assert.equal(signed.statusCode, 200, show(signed));
    // Names the owner reads in the lists of their passkeys and tokens cannot hide characters: zero-width space, a
    // right-to-left mark, a word joiner (refused before anything is stored or mailed).
    const key = new SoftAuthenticator();
    for (const hidden of ["support\u200bkey", "key \u200f(owner)", "sync\u2060token"]) {
      const options = await thief.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
      const refused = await thief.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: hidden } });
      assert.equal(refused.statusCode, 400, `passkey name ${JSON.stringify(hidden)}: ${show(refused)}`);
    }
    const options = await thief.request("POST", "/auth/mfa/webauthn/register/options", { csrf: true });
    const registered = await thief.request("POST", "/auth/mfa/webauthn/register", { csrf: true, body: { response: key.register(options.json(), ORIGIN), name: passkeyName } });
    assert.equal(registered.statusCode, 200, show(registered));
    for (const hidden of ["ci\u200b", "deploy \u200f(owner)", "sync\u2060token"]) {
      const refused = await thief.request("POST", "/api/v1/tokens", { csrf: true, body: { name: hidden, scopes: ["audit.read"] } });
      assert.equal(refused.statusCode, 400, `token name ${JSON.stringify(hidden)}: ${show(refused)}`);
    }
    const minted = await thief.request("POST", "/api/v1/tokens", { csrf: true, body: { name: tokenName, scopes: ["audit.read"] } });
    assert.equal(minted.statusCode, 201, show(minted));
    // An administrator (an API token) describes a role in words of its own and grants it: the owner is told of an
    // administrator's role by its name and permissions only.
    const admin = await fx.user("lure-admin@example.org", { roles: ["admin"] });
    await ensureSecondFactor(fx.app, admin.id); // an administrator without a factor: the MFA policy would hold the token
    const adminToken = (await fx.app.accounts.tokens.create(admin.id, { name: "admin-ci", scopes: ["admin"] })).token;
    const api = (method: "POST", url: string, body?: unknown): Promise<Res> =>
      fx.server.inject({ method, url, headers: { host: HOST, authorization: `Bearer ${adminToken}`, ...(body === undefined ? {} : { "content-type": "application/json" }) }, ...(body === undefined ? {} : { payload: JSON.stringify(body) }) });
    const role = await api("POST", "/api/v1/roles", { name: "lure-writer", permissions: ["accounts.write"], description });
    assert.equal(role.statusCode, 201, show(role));
    const granted = await api("POST", `/api/v1/users/${owner.id}/roles/lure-writer`);
    assert.equal(granted.statusCode, 200, show(granted));

    await fx.deliver();
    const mails = mailsTo(fx, owner.email);
    const subjects = mails.map((m) => m.subject.replace(/^Bulwark: /, ""));
    for (const expected of ["a sign-in from a new device or browser", "a sign-in factor was added", "an API token was created", "your account was given an administrator's role"]) {
      assert.ok(subjects.includes(expected), `the owner is told: ${expected} (got ${JSON.stringify(subjects)})`);
    }
    const carrying = mails.flatMap((m) => words.filter((w) => m.raw.includes(w) || m.body.includes(w)).map((w) => `${m.subject}: ${w}`));
    assert.deepEqual(carrying, [], "a lure of the attacker's reached a genuine notice");
    // What the notices say instead: fixed labels.
    const added = mails.find((m) => m.subject.endsWith("a sign-in factor was added"));
    assert.match(added?.body ?? "", /a passkey or security key was added/);
  });
  it("attack: a help desk (accounts.write) locks the owner with a reason that is a lure (\"Bulwark security: call 555-0100 to unlock\") — the owner meets none of it: the login's 401 and the reset request's 202 are the fixed bodies, and no mail is sent that quotes it (ASVS 6.3.8, 1.3.11)", async () => {
    const owner = await fx.user("locked-owner@example.org");
    const desk = await fx.user("help-desk@example.org");
    await fx.app.accounts.roles.create({ name: "desk", permissions: ["accounts.write"] }, "test");
    await fx.app.accounts.roles.grant(desk.id, "desk", "test");
    await ensureSecondFactor(fx.app, desk.id); // accounts.write is administrative: without a factor the MFA policy would hold the token
    const deskToken = (await fx.app.accounts.tokens.create(desk.id, { name: "desk", scopes: ["accounts.write"] })).token;
    const reason = "Bulwark security: call 555-0100 to unlock";
    const locked = await fx.server.inject({
      method: "POST", url: `/api/v1/users/${owner.id}/lock`,
      headers: { host: HOST, authorization: `Bearer ${deskToken}`, "content-type": "application/json" }, payload: JSON.stringify({ reason }),
    });
    assert.equal(locked.statusCode, 200, show(locked));
    await fx.deliver();
    const before = fx.mailTo(owner.email).length;
    const unknown = await fx.browser({ newDevice: true }).login("nobody-at-all@example.org", owner.password);
    const login = await fx.browser({ newDevice: true }).login(owner.email, owner.password);
    assert.equal(login.statusCode, 401, show(login));
    assert.equal(login.body, unknown.body, "a locked account's login answer is the fixed failure body");
    const reset = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/request", { body: { email: owner.email } });
    const resetUnknown = await fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/request", { body: { email: "nobody-at-all@example.org" } });
    assert.equal(reset.statusCode, 202, show(reset));
    assert.equal(reset.body, resetUnknown.body);
    await fx.deliver();
    const mails = mailsTo(fx, owner.email);
    assert.equal(mails.length, before, "a locked account gets no mail from a reset request");
    assert.deepEqual(mails.filter((m) => m.raw.includes("555-0100") || m.body.includes("555-0100")).map((m) => m.subject), [], "the lock's reason reached a mail");
  });
});

describe("the link pages and the origin's error answers", () => {
  const fx = sharedFixture();

  it("attack: a link to the genuine reset and confirmation pages with a crafted query and a fragment \"token\" that is a sentence (Your.account.is.locked.-Call.555-0100) — the pages reflect nothing of their URL, and the JSON routes they post to answer with their fixed message only (ASVS 1.2.1, 3.4.3)", async () => {
    const b = fx.browser({ newDevice: true });
    for (const page of ["/reset-password", "/confirm-email"]) {
      const plain = await b.request("GET", page);
      const crafted = await b.request("GET", `${page}?next=%3Cscript%3Ealert(1)%3C%2Fscript%3E&service=Call+555-0100&msg=Your+account+is+locked#token=Your.account.is.locked.-Call.555-0100`);
      assert.equal(crafted.statusCode, 200);
      assert.equal(crafted.body, plain.body, `${page}: the page is the same whatever its query says`);
      assert.match(String(crafted.headers["content-type"]), /^text\/html; charset=utf-8$/);
      assert.match(String(crafted.headers["content-security-policy"]), /script-src 'self'/);
      assert.doesNotMatch(crafted.body, /555-0100|locked|<script>alert/);
    }
    // What the page's script posts for such a fragment (it matches the page's token pattern), and what it then shows.
    const sentence = "Your.account.is.locked.-Call.555-0100";
    const reset = await b.request("POST", "/auth/password/reset/complete", { body: { token: sentence, newPassword: GOOD_PASSWORD } });
    const confirm = await b.request("POST", "/auth/email/confirm", { body: { token: sentence } });
    for (const r of [reset, confirm]) {
      assert.equal(r.statusCode, 400, show(r));
      const message = (r.json() as { error: { message: string } }).error.message;
      assert.doesNotMatch(message, /555-0100|locked/, `the message the page shows quotes the link: ${message}`);
    }
  });

  it("attack: a phishing mail links to the genuine origin at a path that is a sentence (/Your_Bulwark_account_is_locked._Call_+1-555-0100_to_restore_it) — Bulwark's 404 and bad-URL 400 answers say fixed words, never the attacker's sentence back from its own address (ASVS 1.2.1; CWE-74, content spoofing) (was: both repeated the path: \"no route GET /Your_Bulwark_…\")", async () => {
    const sentence = "Your_Bulwark_account_is_locked._Call_+1-555-0100_to_restore_it";
    const echoed: string[] = [];
    // Three 404s (the catch-all, under /auth, under /api/v1) and a path Fastify cannot decode (a stray %zz: 400).
    for (const [path, status] of [[`/${sentence}`, 404], [`/auth/${sentence}`, 404], [`/api/v1/${sentence}`, 404], [`/${sentence}%zz`, 400]] as const) {
      const r = await fx.browser({ newDevice: true }).request("GET", path);
      assert.equal(r.statusCode, status, show(r));
      // Held: never rendered as a page (JSON, nosniff, a CSP that runs nothing).
      assert.match(String(r.headers["content-type"]), /^application\/json/);
      assert.equal(r.headers["x-content-type-options"], "nosniff");
      if (r.body.includes("555-0100")) echoed.push(`${path} → ${(r.json() as { error: { message: string } }).error.message}`);
    }
    assert.deepEqual(echoed, [], `the 404 (and bad-URL 400) answer of the genuine origin repeats the requested path, so a link in a phishing mail makes Bulwark say the attacker's sentence: ${echoed.join(" | ")}`);
  });
});

describe("API answers an administrator reads in a terminal", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);

  it("attack: an anonymous client signs in (with a wrong password, then a thief with the right one) sending a User-Agent of 8-bit terminal controls (CSI U+009B \"2J\", OSC U+009D \"0;…\" ST U+009C) — GET /api/v1/audit/events, read by a responder with curl, and the owner's GET /auth/sessions carry them escaped (\\u009b), never raw (ASVS 16.4.1, 1.2.3; CWE-150) (was: JSON answers wrote them raw, as JSON.stringify leaves C1)", async () => {
    const owner = await flows.signedIn("terminal-owner@example.org");
    await fx.server.listen({ port: 0, host: "127.0.0.1" });
    const port = (fx.server.server.address() as { port: number }).port;
    // Node's parser takes any byte 0x80–0xFF in a header value (obs-text) and hands it over as that Latin-1 character.
    const controls = Buffer.from([0x9b, 0x32, 0x4a, 0x9d, 0x30, 0x3b, 0x61, 0x6c, 0x6c, 0x20, 0x63, 0x6c, 0x65, 0x61, 0x72, 0x9c]); // CSI 2J, OSC 0;all clear ST
    const login = (password: string): Buffer => {
      const body = Buffer.from(JSON.stringify({ identifier: owner.email, password }));
      return Buffer.concat([
        Buffer.from(`POST /auth/login HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\nUser-Agent: Mozilla/5.0 `),
        controls, Buffer.from("\r\n\r\n"), body,
      ]);
    };
    assert.match(await rawRequest(port, login("not the password, not at all")), /^HTTP\/1\.1 401 /);
    assert.match(await rawRequest(port, login(owner.password)), /^HTTP\/1\.1 200 /);

    const responder = await flows.userWith(["audit.read"]);
    const token = await flows.tokenFor(responder, ["audit.read"]);
    const events = await fx.server.inject({ method: "GET", url: "/api/v1/audit/events?type=auth.login.failed", headers: { host: HOST, authorization: `Bearer ${token}` } });
    assert.equal(events.statusCode, 200, show(events));
    // The planted text is there, whole (the answer must keep what was sent, escaped, not drop it).
    const agents = (events.json() as { events: Array<{ data: { userAgent?: string } }> }).events.map((e) => e.data.userAgent);
    assert.ok(agents.includes(`Mozilla/5.0 ${controls.toString("latin1")}`), JSON.stringify(agents));
    const sessions = await owner.b.request("GET", "/auth/sessions");
    assert.equal(sessions.statusCode, 200, show(sessions));

    const raw: string[] = [];
    for (const [what, r] of [["GET /api/v1/audit/events (a responder's curl)", events], ["GET /auth/sessions (the owner)", sessions]] as const) {
      const hit = RAW_CONTROL.exec(r.body);
      if (hit) raw.push(`${what}: raw U+${hit[0].charCodeAt(0).toString(16).padStart(4, "0").toUpperCase()} at ${JSON.stringify(r.body.slice(Math.max(0, hit.index - 20), hit.index)).slice(0, 40)}…`);
    }
    assert.deepEqual(raw, [], "the JSON answer carries the client's C1 controls raw, as JSON.stringify leaves them: printed on a responder's 8-bit terminal, CSI 2J clears the screen and OSC retitles it, where `bulwark audit tail --json` (inertJSON) and the server log (inertJSONText) write the same text as \\u009b");
  });
});
