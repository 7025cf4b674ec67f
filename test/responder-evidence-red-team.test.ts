// Red team, round on what the operator sees while an attack is under way: the audit trail as an incident responder's
// evidence (src/audit/, the /auth events in src/http/auth/, the /api/v1 events in src/http/api/). The attacker: an
// intruder who guessed or phished an account's password (and, for an account with an authenticator app, one code),
// signing in from an address of its own or from the owner's own network (the same NAT, Wi-Fi or CGNAT address, the same
// browser build), who then digs in — passes the second factor, enrols its own authenticator app, makes recovery codes,
// asks to move the account's email, throws the owner's sessions out — and reads account data with an API token. It
// wants its actions to leave no usable trace, or one a responder attributes to the owner. Each test asks one question a
// responder must answer from the audit log alone (which session did this, so that it can be ended; from which address;
// did that sign-in pass the second factor; what did the token read) and fails when the log cannot answer it.
// Not repeated here (pinned by earlier rounds): forged X-Forwarded-For with and without a trusted proxy
// (credential-stuffing-red-team), session id and address of /api/v1 changes (audit-completeness-red-team), C1/bidi
// escaping of `audit tail`/export (audit-cli, terminal.ts). Not reported: the session id and new-device flag of
// auth.login.succeeded (pinned in device-cookie-attacks). SQLite in a temp dir, injected requests from chosen socket
// addresses, cheap argon2. The round's four findings are fixed; their tests say what they were ("was: …").
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { HOST, totpCode } from "../src/http/auth/test-client.ts";
import { authFlows, STEP } from "./helpers/auth-flows.ts";
import { AddressedBrowser } from "./helpers/addressed-browser.ts";
import { auditHead as head, eventsSince as since, type AuditEventRow } from "./helpers/audit-events.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

/** The owner's browser and, in the shared-network tests, the intruder's too (stuffing kits send a browser's). */
const UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15";
const OWNER_IP = "198.51.100.7";
const INTRUDER_IP = "203.0.113.66";

const fx = sharedFixture();
const flows = authFlows(() => fx);

/** A browser on its own computer at socket address `address` (AddressedBrowser) whose sign-ins must succeed. */
class Client extends AddressedBrowser {
  constructor(address: string, ua: string = UA) {
    super(() => fx, address, ua);
  }

  override async login(identifier: string, password: string): Promise<LightMyRequestResponse> {
    const res = await this.request("POST", "/auth/login", { body: { identifier, password } });
    assert.equal(res.statusCode, 200, res.body);
    return res;
  }

  /** The id of the session this browser holds now (GET /auth/session). */
  async sessionId(): Promise<string> {
    const res = await this.request("GET", "/auth/session");
    const id = res.json().sessionId as string | undefined;
    assert.ok(id, `no session: ${res.body}`);
    return id;
  }
}

type Row = AuditEventRow;

/** The audit log's newest position (events after it belong to the test). */
const auditHead = (): Promise<number> => head(fx.app.db.db);
/** Events after position `mark`, oldest first, optionally of the given types only. */
const eventsSince = (mark: number, types?: string[]): Promise<Row[]> => since(fx.app.db.db, mark, types);

/** The one event of `type` in `rows`. */
function only(rows: Row[], type: string): Row {
  const hits = rows.filter((r) => r.type === type);
  assert.equal(hits.length, 1, `expected one ${type}, got ${hits.length}: ${JSON.stringify(rows.map((r) => r.type))}`);
  return hits[0] as Row;
}

/** Whether the event's data names `text` anywhere (field names left open: the fix chooses them). */
function names(row: Row, text: string): boolean {
  return row.raw.includes(text);
}

describe("did the intruder's sign-in pass the second factor, and which session is it now? (ASVS 16.3.1, 7.5.2)", () => {
  it("attack: an intruder who passes the second factor with a phished code is told from the owner held at the gate: auth.mfa.verified and auth.mfa.failed name the address and the session, and the step-up's new session is named (ASVS 16.2.1, 7.5.2) (was: {factor} and {reason} only, the aal-2 session named by no event)", async () => {
    const owner = await flows.withTOTP("mfa-owner@example.org");
    const mark = await auditHead();
    // The owner, at home, and the intruder, elsewhere, both give the right password: two auth.login.succeeded.
    const home = new Client(OWNER_IP);
    const intruder = new Client(INTRUDER_IP);
    const homeLogin = (await home.login(owner.email, owner.password)).json() as { sessionId: string; mfaRequired: boolean };
    const thiefLogin = (await intruder.login(owner.email, owner.password)).json() as { sessionId: string; mfaRequired: boolean };
    assert.equal(thiefLogin.mfaRequired, true);
    // The owner mistypes a code; the intruder enters the code it phished a moment ago.
    const wrong = totpCode(owner.secret, fx.clock.now() + 20 * STEP);
    assert.equal((await home.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: wrong } })).statusCode, 401);
    const stepped = await intruder.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(owner.secret, fx.clock.now()) } });
    assert.equal(stepped.statusCode, 200, stepped.body);
    const live = stepped.json().sessionId as string;
    assert.notEqual(live, thiefLogin.sessionId, "the step-up replaced the session (a new id)");

    const rows = await eventsSince(mark);
    const verified = only(rows, "auth.mfa.verified");
    const failed = only(rows, "auth.mfa.failed");
    const problems: string[] = [];
    if (verified.data["ip"] !== INTRUDER_IP) problems.push(`auth.mfa.verified does not name the address that passed the factor (${INTRUDER_IP}): ${verified.raw}`);
    if (!names(verified, thiefLogin.sessionId)) problems.push(`auth.mfa.verified does not name the session it stepped up (${thiefLogin.sessionId}, the login's), so it cannot be tied to either sign-in: ${verified.raw}`);
    if (!rows.some((r) => names(r, live))) problems.push(`the intruder's live aal-2 session ${live} is named by no event: the responder cannot end it from the log`);
    if (failed.data["ip"] !== OWNER_IP) problems.push(`auth.mfa.failed does not name the address whose code was refused (${OWNER_IP}): ${failed.raw}`);
    if (!names(failed, homeLogin.sessionId)) problems.push(`auth.mfa.failed does not name the session held at the gate (${homeLogin.sessionId}): ${failed.raw}`);
    assert.deepEqual(problems, []);
  });
});

describe("which session made this change, so that it can be ended? (ASVS 16.2.1, 7.5.2)", () => {
  it("attack: an intruder signed in from the owner's own network (same address, same browser build) who enrols an authenticator app, makes recovery codes and asks to move the email is told from the owner by the session each event names (ASVS 16.2.1, 7.5.2) (was: auth.mfa.added, auth.mfa.recovery-codes-generated and auth.email.change-requested named no session)", async () => {
    const owner = await fx.user("same-nat-owner@example.org");
    // Both behind the one address of a shared network; the owner signed in first.
    const home = new Client(OWNER_IP);
    await home.login(owner.email, owner.password);
    const ownerSession = await home.sessionId();
    const intruder = new Client(OWNER_IP);
    await intruder.login(owner.email, owner.password);
    const mark = await auditHead();

    const acting: Array<{ type: string; session: string }> = [];
    // Its own authenticator app: confirming it replaces the intruder's session by an aal-2 one.
    let session = await intruder.sessionId();
    const secret = (await intruder.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    const confirmed = await intruder.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    acting.push({ type: "auth.mfa.added", session });
    fx.clock.advance(STEP);
    // Recovery codes to come back with.
    session = await intruder.sessionId();
    assert.equal((await intruder.request("POST", "/auth/mfa/recovery-codes", { csrf: true })).statusCode, 200);
    acting.push({ type: "auth.mfa.recovery-codes-generated", session });
    // And the account's email moved to its own mailbox.
    session = await intruder.sessionId();
    assert.equal((await intruder.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: "drop-box@attacker.example" } })).statusCode, 202);
    acting.push({ type: "auth.email.change-requested", session });

    const rows = await eventsSince(mark, acting.map((a) => a.type));
    const problems: string[] = [];
    for (const a of acting) {
      const row = only(rows, a.type);
      // The address is there, but it is the owner's too: only the session tells the two apart.
      assert.equal(row.data["ip"], OWNER_IP);
      if (!names(row, a.session)) problems.push(`${a.type} does not name the session that made it (${a.session}; the owner's is ${ownerSession}): ${row.raw}`);
    }
    assert.deepEqual(problems, []);
  });

  it("attack: an intruder who throws the owner out (DELETE /auth/sessions/:id, then \"sign out everywhere else\") is named by address and session in auth.session.ended and auth.session.ended-others, which also name the ended session and the one left standing (ASVS 16.2.1, 16.3.1, 7.5.2) (was: the ended session's id only, and the surviving session named nowhere)", async () => {
    const owner = await fx.user("thrown-out-owner@example.org");
    const laptop = new Client(OWNER_IP);
    const phone = new Client("198.51.100.8");
    await laptop.login(owner.email, owner.password);
    await phone.login(owner.email, owner.password);
    const laptopSession = await laptop.sessionId();
    const intruder = new Client(INTRUDER_IP);
    await intruder.login(owner.email, owner.password);
    const mark = await auditHead();

    const before = await intruder.sessionId();
    const one = await intruder.request("DELETE", `/auth/sessions/${laptopSession}`, { csrf: true });
    assert.equal(one.statusCode, 200, one.body);
    const all = await intruder.request("DELETE", "/auth/sessions", { csrf: true });
    assert.equal(all.statusCode, 200, all.body);
    assert.equal(all.json().ended, 1, "the owner's phone session ended");
    const survivor = await intruder.sessionId();
    assert.notEqual(survivor, before, "the caller's session was replaced (a new id)");
    assert.equal((await laptop.request("GET", "/auth/session")).json().authenticated, false, "the owner is out");

    const rows = await eventsSince(mark);
    const ended = only(rows, "auth.session.ended");
    const others = only(rows, "auth.session.ended-others");
    const problems: string[] = [];
    if (ended.data["ip"] !== INTRUDER_IP) problems.push(`auth.session.ended does not name the address that ended the session: ${ended.raw}`);
    if (!names(ended, before)) problems.push(`auth.session.ended does not name the session that ended it (${before}): ${ended.raw}`);
    if (others.data["ip"] !== INTRUDER_IP) problems.push(`auth.session.ended-others does not name the address: ${others.raw}`);
    if (!names(others, survivor)) problems.push(`auth.session.ended-others does not name the session left standing (${survivor}), the one to end now: ${others.raw}`);
    if (!rows.some((r) => names(r, survivor))) problems.push(`the surviving session ${survivor} appears in no event`);
    assert.deepEqual(problems, []);
  });
});

describe("what did the intruder's API token read? (ASVS 16.2.1, 16.3.1)", () => {
  it("attack: an API token of a help desk account paging through every account's email address and reading the audit log from the intruder's address is recorded as api.token.used, naming the token, the address and the route (ASVS 16.2.1, 16.3.1) (was: only changes through the API were recorded; the token left no trace)", async () => {
    const helper = await flows.userWith(["accounts.read", "audit.read"]);
    const { token, info } = await fx.app.accounts.tokens.create(helper, { name: "ci", scopes: ["accounts.read", "audit.read"] });
    // A few accounts whose addresses are personal data.
    for (let i = 0; i < 3; i++) await fx.user(`customer${i}@example.org`);
    const mark = await auditHead();
    const read = async (url: string): Promise<LightMyRequestResponse> =>
      fx.server.inject({ method: "GET", url, remoteAddress: INTRUDER_IP, headers: { host: HOST, authorization: `Bearer ${token}`, "user-agent": "python-requests/2.32" } });
    const users = await read("/api/v1/users?limit=100");
    assert.equal(users.statusCode, 200, users.body);
    assert.ok((users.json().users as Array<{ email: string }>).some((u) => u.email === "customer0@example.org"), "the read returned personal data");
    const audit = await read("/api/v1/audit/events?limit=10");
    assert.equal(audit.statusCode, 200, audit.body);
    // The token row keeps only its last use (written at most every few minutes): not evidence a log keeps.
    const rows = await eventsSince(mark);
    const traced = rows.filter((r) => names(r, info.id) || r.subject === info.id);
    assert.ok(traced.length > 0, `no event names token ${info.id} after it read /api/v1/users and /api/v1/audit/events; events written: ${JSON.stringify(rows.map((r) => r.type))}`);
    assert.ok(traced.some((r) => names(r, INTRUDER_IP)), `no event names the address ${INTRUDER_IP} the token was used from`);
  });
});

describe("the record of a token's use stays bounded (app.accounts.tokenUses)", () => {
  it("attack: a script polling all hour from one host writes one api.token.used an hour, naming the route and how many requests went unrecorded; a second address, even seconds later, is recorded at once", async () => {
    const robot = await flows.userWith(["accounts.read"]);
    const { token, info } = await fx.app.accounts.tokens.create(robot, { name: "poller", scopes: ["accounts.read"] });
    fx.clock.advance(60 * 60_000 - (fx.clock.now() % (60 * 60_000)));
    const from = (address: string) => fx.server.inject({ method: "GET", url: "/api/v1/users?limit=1", remoteAddress: address, headers: { host: HOST, authorization: `Bearer ${token}` } });
    const used = async (): Promise<Array<Record<string, unknown>>> =>
      (await fx.app.audit.tail(400)).filter((e) => e.type === "api.token.used" && e.data["tokenId"] === info.id).map((e) => e.data);
    for (let i = 0; i < 30; i++) {
      assert.equal((await from(OWNER_IP)).statusCode, 200);
      fx.clock.advance(60_000);
    }
    assert.deepEqual((await used()).map((d) => [d["ip"], d["route"]]), [[OWNER_IP, "GET /api/v1/users"]], "thirty requests in one hour: one event");
    assert.equal((await from(INTRUDER_IP)).statusCode, 200);
    assert.deepEqual((await used()).map((d) => d["ip"]), [OWNER_IP, INTRUDER_IP], "a new address is recorded at its first request");
    fx.clock.advance(31 * 60_000);
    assert.equal((await from(OWNER_IP)).statusCode, 200);
    const next = (await used()).at(-1)!;
    assert.deepEqual([next["ip"], next["unrecordedBefore"]], [OWNER_IP, 29], "the next hour's event counts the requests left out");
  });
});

describe("every change that replaces a session names both (ASVS 16.2.1, 7.5.2)", () => {
  it("attack: an enrolment, a re-authentication, a password change, ending one's own session and a logout each name the acting session, and the replacing one where there is one, so a responder can follow a thief's cookie through every rotation", async () => {
    const sid = async (b: { request: (m: "GET", u: string) => Promise<LightMyRequestResponse> }): Promise<string> => (await b.request("GET", "/auth/session")).json().sessionId as string;
    const last = async (type: string): Promise<Record<string, unknown>> => (await fx.app.audit.tail(200)).filter((e) => e.type === type).at(-1)!.data;
    const u = await flows.signedIn("rotations-named@example.org");
    const s0 = await sid(u.b);
    const secret = (await u.b.request("POST", "/auth/mfa/totp", { csrf: true })).json().secret as string;
    const confirmed = await u.b.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
    assert.equal(confirmed.statusCode, 200, confirmed.body);
    const s1 = await sid(u.b);
    assert.equal(s1, confirmed.json().sessionId);
    assert.equal((await last("auth.mfa.added"))["sessionId"], s0, "the enrolment names the session that made it");
    assert.deepEqual(pick(await last("auth.session.replaced"), ["sessionId", "newSessionId", "reason"]), { sessionId: s0, newSessionId: s1, reason: "mfa-enrolled" });
    fx.clock.advance(STEP);
    const re = await u.b.request("POST", "/auth/reauthenticate", { csrf: true, body: { password: u.password, totp: totpCode(secret, fx.clock.now()) } });
    assert.equal(re.statusCode, 200, re.body);
    const s2 = await sid(u.b);
    assert.deepEqual(pick(await last("auth.reauthenticated"), ["sessionId", "newSessionId"]), { sessionId: s1, newSessionId: s2 });
    const changed = await u.b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: u.password, newPassword: "a whole new password of mine 42" } });
    assert.equal(changed.statusCode, 200, changed.body);
    const s3 = await sid(u.b);
    assert.deepEqual(pick(await last("auth.session.replaced"), ["sessionId", "newSessionId", "reason"]), { sessionId: s2, newSessionId: s3, reason: "password-changed" });
    assert.equal((await u.b.request("DELETE", `/auth/sessions/${s3}`, { csrf: true })).statusCode, 200);
    assert.deepEqual(pick(await last("auth.session.ended"), ["sessionId", "endedSessionId"]), { sessionId: s3, endedSessionId: s3 });
    const other = fx.browser();
    assert.equal((await other.login(u.email, "a whole new password of mine 42")).statusCode, 200);
    const s4 = await sid(other);
    assert.equal((await other.request("POST", "/auth/logout", { csrf: true })).statusCode, 200);
    assert.equal((await last("auth.logout"))["sessionId"], s4);
  });
});

function pick(data: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => [k, data[k]]));
}
