// Red team, audit completeness (ASVS 16.2.1, 16.3.1–16.3.4; docs/audit-log.md, docs/api.md "Every state change writes
// an audit event"). The attacker is an insider who wants to act without a trace: an administrator, a help desk holding
// accounts.write, or an operator with the CLI. Each test performs a state change (or a refused attempt) through the
// real server or CLI and reads the audit log back: one event (or the documented set) naming the actor, the subject and
// the outcome; a refused attempt recorded; a change whose event cannot be written leaves no effect (the effect and its
// event share a transaction); a change that fails half-way claims no success; no secret in any event.
// The "append fails" tests install a SQLite trigger that refuses one event type: the stand-in for any failure of the
// audit insert (a full disk, a head moved behind the log, which fails every append: docs/audit-log.md).
// This round found seven gaps, all fixed: refused /api/v1 requests and CSRF refusals unrecorded, three changes that
// stood without their event, API events without the session or address, and a CLI creation claiming a role it lacked.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { parseSessionToken, SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { whileAuditRefuses } from "./helpers/audit-tamper.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

interface Row { seq: number; type: string; actor: string; subject: string; requestId: string; data: Record<string, unknown>; raw: string }

async function headOf(db: APIFixture["app"]["db"]): Promise<number> {
  return Number((await db.db.selectFrom("audit_head").select("seq").executeTakeFirstOrThrow()).seq);
}

/** Every event stored after position `seq`, in chain order. */
async function eventsAfter(db: APIFixture["app"]["db"], seq: number): Promise<Row[]> {
  const rows = await db.db.selectFrom("audit_events").select(["seq", "type", "actor", "subject", "request_id", "data"]).where("seq", ">", seq).orderBy("seq").execute();
  return rows.map((r) => ({
    seq: Number(r.seq), type: r.type, actor: r.actor, subject: r.subject, requestId: r.request_id, data: JSON.parse(r.data) as Record<string, unknown>,
    raw: `${r.type}\n${r.actor}\n${r.subject}\n${r.request_id}\n${r.data}`,
  }));
}

describe("audit completeness over /api/v1 (insider: administrator, help desk)", () => {
  let fx: APIFixture;
  let admin: { id: string; email: string };
  let adminToken: string;
  before(async () => {
    fx = await openAPIFixture();
    admin = await fx.user(["admin"]);
    adminToken = await fx.token(admin.id, ["admin"]);
  });
  after(async () => {
    await fx?.close();
  });

  it("attack: refused authorization attempts are recorded as api.refused naming the caller, target and code: a help desk granting itself admin (403), a help desk locking an administrator (403 outranked), an administrator removing the last administrator (409) (ASVS 16.3.2, 16.3.3) (was: no event at all)", async () => {
    const desk = await fx.user(["accounts.write", "accounts.read"]);
    const deskToken = await fx.token(desk.id, ["accounts.write", "accounts.read"]);
    const deskRoles = await fx.app.accounts.roles.rolesOf(desk.id);
    const [adminRole] = await fx.app.accounts.roles.rolesOf(admin.id);
    assert.ok(adminRole, "the only administrator's role");
    const attempts = [
      { what: "help desk self-grant of admin", actor: desk.id, token: deskToken, method: "POST", url: `/api/v1/users/${desk.id}/roles/admin`, subject: desk.id, status: 403, code: "BULWARK_ERR_API_FORBIDDEN" },
      { what: "help desk lock of an administrator", actor: desk.id, token: deskToken, method: "POST", url: `/api/v1/users/${admin.id}/lock`, body: {}, subject: admin.id, status: 403, code: "BULWARK_ERR_API_OUTRANKED" },
      { what: "removal of the last administrator's role", actor: admin.id, token: adminToken, method: "DELETE", url: `/api/v1/users/${admin.id}/roles/${adminRole}`, subject: admin.id, status: 409, code: "BULWARK_ERR_LAST_ADMIN" },
    ];
    const unrecorded: string[] = [];
    for (const a of attempts) {
      const before = await headOf(fx.app.db);
      const res = await fx.call(a.method, a.url, { token: a.token, ...(a.body ? { body: a.body } : {}) });
      assert.equal(res.statusCode, a.status, `${a.what}: ${res.body}`);
      const error = (res.json() as { error: { code: string; requestId: string } }).error;
      assert.equal(error.code, a.code);
      // What a responder needs: who tried (the user, and the token it used), on whom, and that it was refused.
      const recorded = (await eventsAfter(fx.app.db, before)).find((e) => e.actor === a.actor && (e.subject === a.subject || e.requestId === error.requestId));
      if (!recorded) unrecorded.push(`${a.what} (${a.code})`);
      else assert.notEqual(recorded.data["tokenId"], undefined, `${a.what}: the event names the token used`);
    }
    assert.deepEqual(unrecorded, [], `refused attempts with no audit event: ${unrecorded.join("; ")}`);
    // The refusals themselves held.
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(desk.id), deskRoles);
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(admin.id), [adminRole]);
    assert.equal((await fx.app.accounts.users.getById(admin.id))?.lockedAt, null);
  });

  it("attack: an administrator's POST /users/:id/sessions/revoke whose user.sessions-revoked cannot be written ends no session (ASVS 16.3.3) (was: the sessions ended, unrecorded)", async () => {
    const victim = await fx.user([]);
    await fx.app.accounts.sessions.createSession(victim.id, { aal: 1 });
    await fx.app.accounts.sessions.createSession(victim.id, { aal: 1 });
    const before = await headOf(fx.app.db);
    const res = await whileAuditRefuses(fx.app.db, "user.sessions-revoked", () => fx.call("POST", `/api/v1/users/${victim.id}/sessions/revoke`, { token: adminToken }));
    assert.equal(res.statusCode, 500, "the failed append is reported");
    const events = (await eventsAfter(fx.app.db, before)).filter((e) => e.subject === victim.id);
    const left = await fx.app.db.db.selectFrom("sessions").select("id").where("user_id", "=", victim.id).execute();
    // Secure: either the sessions and the event commit together, or neither does.
    assert.ok(events.some((e) => e.type === "user.sessions-revoked") || left.length === 2,
      `the administrator ended ${2 - left.length} session(s) of ${victim.id} and the log records nothing (events: ${events.map((e) => e.type).join(", ") || "none"})`);
  });

  it("attack: a help desk's POST /users/:id/throttles/clear whose user.throttles-cleared cannot be written leaves the 100-failure login stop in place (ASVS 16.3.3) (was: lifted unrecorded, brute force resumed with no trace)", async () => {
    const desk = await fx.user(["accounts.write"]);
    const deskToken = await fx.token(desk.id, ["accounts.write"]);
    const victim = await fx.user([]);
    const flood = fx.app.accounts.flood;
    for (let i = 0; i < flood.policy.maxConsecutive; i++) await flood.registerFailure({ identifier: victim.email, ip: `198.51.100.${i % 50}` });
    assert.equal((await flood.check({ identifier: victim.email, ip: "203.0.113.9" })).allowed, false, "the account is stopped");
    const before = await headOf(fx.app.db);
    const res = await whileAuditRefuses(fx.app.db, "user.throttles-cleared", () => fx.call("POST", `/api/v1/users/${victim.id}/throttles/clear`, { token: deskToken }));
    assert.equal(res.statusCode, 500);
    const recorded = (await eventsAfter(fx.app.db, before)).some((e) => e.type === "user.throttles-cleared" && e.subject === victim.id);
    const stillStopped = !(await flood.check({ identifier: victim.email, ip: "203.0.113.9" })).allowed;
    assert.ok(recorded || stillStopped, "the login stop was lifted and no event records who lifted it");
  });

  it("attack: the second factor's 100-failure stop lifted by throttles/clear commits with user.throttles-cleared: when the event cannot be written the stop stays (ASVS 16.3.3) (was: lifted before its event was written, and kept lifted when the write failed)", async () => {
    const { FloodControl } = await import("../src/accounts/flood/flood.ts");
    const { MFA_FLOOD_NAMESPACE, MFA_FLOOD_POLICY } = await import("../src/accounts/mfa/index.ts");
    const { floodIdentifier } = await import("../src/accounts/mfa/policy.ts");
    const desk = await fx.user(["accounts.write"]);
    const deskToken = await fx.token(desk.id, ["accounts.write"]);
    const victim = await fx.user([]);
    // The second factor's counter, as the MFA service keeps it (same store, same namespace).
    const mfaFlood = new FloodControl({ database: fx.app.db, clock: fx.app.clock, keyOf: (text) => fx.app.keyring.floodKey(text), policy: MFA_FLOOD_POLICY, namespace: MFA_FLOOD_NAMESPACE });
    const attempt = { identifier: floodIdentifier("totp", victim.id), ip: null };
    for (let i = 0; i < MFA_FLOOD_POLICY.maxConsecutive; i++) await mfaFlood.registerFailure(attempt);
    assert.equal((await mfaFlood.check(attempt)).allowed, false, "the second factor is stopped");
    const res = await whileAuditRefuses(fx.app.db, "user.throttles-cleared", () => fx.call("POST", `/api/v1/users/${victim.id}/throttles/clear`, { token: deskToken }));
    assert.equal(res.statusCode, 500);
    assert.equal((await mfaFlood.check(attempt)).allowed, false, "the second factor's stop was lifted with no event recording it");
    const ok = await fx.call("POST", `/api/v1/users/${victim.id}/throttles/clear`, { token: deskToken });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((await mfaFlood.check(attempt)).allowed, true, "control: the clearing itself lifts the stop");
  });

  it("attack: DELETE /api/v1/tokens/:id and DELETE /api/v1/tokens whose api.token.revoked / revoked-all cannot be written revoke nothing (ASVS 16.3.3) (was: revoked, unrecorded)", async () => {
    const owner = await fx.user(["accounts.read"]);
    const one = await fx.token(owner.id, ["accounts.read"]);
    const [info] = await fx.app.accounts.tokens.list(owner.id);
    const session = await fx.session(owner.id);
    const works = async (token: string): Promise<boolean> => (await fx.call("GET", "/api/v1/users?limit=1", { token })).statusCode === 200;
    assert.ok(await works(one), "the token works before");
    const before = await headOf(fx.app.db);
    const single = await whileAuditRefuses(fx.app.db, "api.token.revoked", () => fx.call("DELETE", `/api/v1/tokens/${(info as { id: string }).id}`, { session }));
    assert.equal(single.statusCode, 500, single.body);
    const others = [await fx.token(owner.id, ["accounts.read"]), await fx.token(owner.id, ["accounts.read"])];
    const all = await whileAuditRefuses(fx.app.db, "api.token.revoked-all", () => fx.call("DELETE", "/api/v1/tokens", { session }));
    assert.equal(all.statusCode, 500, all.body);
    const types = (await eventsAfter(fx.app.db, before)).filter((e) => e.actor === owner.id).map((e) => e.type);
    const silent: string[] = [];
    if (!types.includes("api.token.revoked") && !(await works(one))) silent.push("DELETE /api/v1/tokens/:id revoked the token");
    if (!types.includes("api.token.revoked-all") && !(await works(others[0]!)) && !(await works(others[1]!))) silent.push("DELETE /api/v1/tokens revoked every token");
    assert.deepEqual(silent, [], "revocations committed with no event");
  });

  it("attack: the account changes that commit with their event leave nothing behind when the event cannot be written (create, lock, unlock, require-password-change, set-email, token mint, role grant)", async () => {
    const victim = await fx.user([]);
    const state = async (): Promise<string> => JSON.stringify(await fx.app.db.db.selectFrom("users").select(["email", "locked_at", "password_must_change", "password_invalidated_at"]).where("id", "=", victim.id).executeTakeFirstOrThrow());
    const session = await fx.session(admin.id);
    const cases: Array<{ type: string; call: () => Promise<{ statusCode: number; body: string }>; unchanged: () => Promise<void> }> = [];
    const original = await state();
    const same = async (): Promise<void> => assert.equal(await state(), original, "the account is as it was");
    cases.push({ type: "user.locked", call: () => fx.call("POST", `/api/v1/users/${victim.id}/lock`, { token: adminToken, body: { reason: "quietly" } }), unchanged: same });
    cases.push({ type: "user.password-change-required", call: () => fx.call("POST", `/api/v1/users/${victim.id}/require-password-change`, { token: adminToken }), unchanged: same });
    cases.push({ type: "user.email-set", call: () => fx.call("POST", `/api/v1/users/${victim.id}/email`, { token: adminToken, body: { email: "attacker-mailbox@example.org" } }), unchanged: same });
    cases.push({
      type: "user.created", call: () => fx.call("POST", "/api/v1/users", { token: adminToken, body: { email: "ghost@example.org" } }),
      unchanged: async () => assert.equal(await fx.app.accounts.users.findByIdentifier("ghost@example.org"), null, "no unrecorded account"),
    });
    cases.push({
      type: "api.token.created", call: () => fx.call("POST", "/api/v1/tokens", { session, body: { name: "backdoor", scopes: ["admin"] } }),
      unchanged: async () => assert.equal((await fx.app.accounts.tokens.list(admin.id)).some((t) => t.name === "backdoor"), false, "no unrecorded token"),
    });
    cases.push({
      type: "role.granted", call: () => fx.call("POST", `/api/v1/users/${victim.id}/roles/auditor`, { session }),
      unchanged: async () => assert.deepEqual(await fx.app.accounts.roles.rolesOf(victim.id), [], "no unrecorded grant"),
    });
    for (const c of cases) {
      const res = await whileAuditRefuses(fx.app.db, c.type, c.call);
      assert.ok(res.statusCode >= 500, `${c.type}: ${res.statusCode} ${res.body.slice(0, 200)}`);
      await c.unchanged();
    }
    // And unlock, on an account locked with its event.
    assert.equal((await fx.call("POST", `/api/v1/users/${victim.id}/lock`, { token: adminToken, body: {} })).statusCode, 200);
    const locked = await state();
    const res = await whileAuditRefuses(fx.app.db, "user.unlocked", () => fx.call("POST", `/api/v1/users/${victim.id}/unlock`, { token: adminToken }));
    assert.equal(res.statusCode, 500);
    assert.equal(await state(), locked, "still locked: no unrecorded unlock");
    // Each refusal above was the event's: with the log writable, the same calls succeed.
    assert.equal((await fx.call("POST", `/api/v1/users/${victim.id}/unlock`, { token: adminToken })).statusCode, 200);
    for (const c of cases) {
      const ok = await c.call();
      assert.ok(ok.statusCode >= 200 && ok.statusCode < 300, `${c.type} without the failure: ${ok.statusCode} ${ok.body.slice(0, 200)}`);
    }
  });

  it("attack: a role grant made through an administrator's browser session records the session id and client address, so a thief riding that cookie can be told from the administrator's other sessions (ASVS 16.2.1) (was: neither recorded)", async () => {
    const victim = await fx.user([]);
    const session = await fx.session(admin.id);
    const before = await headOf(fx.app.db);
    const res = await fx.call("POST", `/api/v1/users/${victim.id}/roles/auditor`, { session });
    assert.equal(res.statusCode, 200, res.body);
    const events = await eventsAfter(fx.app.db, before);
    assert.deepEqual(events.map((e) => [e.type, e.actor, e.subject]), [["role.granted", admin.id, victim.id], ["api.role.granted", admin.id, victim.id]], "the documented pair, right actor and subject");
    const api = events[1]!;
    assert.equal(api.data["auth"], "session");
    // The session the request rode (a cookie is `id.secret`): the one to end if it was a thief's.
    const sessionId = parseSessionToken(session.cookie.slice(SESSION_COOKIE.length + 1))?.id;
    assert.ok(sessionId, "the session's id");
    const missing = [...(api.raw.includes(sessionId) ? [] : ["the session id"]), ...(api.data["ip"] === undefined ? ["the client address"] : [])];
    assert.deepEqual(missing, [], `api.role.granted carries ${JSON.stringify(api.data)}`);
  });

  it("attack: no credential reaches the log: an API token's text, a session token, a CSRF token, an initial password set by an administrator (ASVS 16.2.5)", async () => {
    const before = await headOf(fx.app.db);
    const session = await fx.session(admin.id);
    const minted = await fx.call("POST", "/api/v1/tokens", { session, body: { name: "ci", scopes: ["accounts.read"] } });
    assert.equal(minted.statusCode, 201, minted.body);
    const tokenText = (minted.json() as { token: string }).token;
    const initial = "wombat orbit ladder 91 quiet";
    const created = await fx.call("POST", "/api/v1/users", { token: adminToken, body: { email: "starter@example.org", password: initial } });
    assert.equal(created.statusCode, 201, created.body);
    assert.equal((await fx.call("DELETE", "/api/v1/tokens", { token: tokenText })).statusCode, 200);
    const events = await eventsAfter(fx.app.db, before);
    assert.ok(events.some((e) => e.type === "api.token.created") && events.some((e) => e.type === "user.created") && events.some((e) => e.type === "api.token.revoked-all"));
    const sessionSecret = session.cookie.slice(SESSION_COOKIE.length + 1).split(".").at(-1)!;
    const tokenSecret = tokenText.split("_").at(-1)!;
    for (const [what, secret] of [["API token", tokenText], ["API token secret", tokenSecret], ["session secret", sessionSecret], ["CSRF token", session.csrf], ["initial password", initial]] as const) {
      assert.ok(secret.length >= 16, `${what} is a real secret`);
      for (const e of events) assert.equal(e.raw.includes(secret), false, `${what} found in ${e.type} #${e.seq}`);
    }
  });
});

describe("audit completeness over /auth (a cross-site request riding a signed-in session)", () => {
  const fx = sharedFixture();
  const flows = authFlows(() => fx);

  it("attack: a cross-site request (foreign Origin) riding a fresh session to end the owner's other sessions is refused and recorded against the account as auth.csrf.refused (ASVS 16.3.3) (was: refused with no trace)", async () => {
    const u = await flows.signedIn("csrf-target@example.org");
    const before = await headOf(fx.app.db);
    const res = await u.b.request("DELETE", "/auth/sessions", { csrf: true, headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
    assert.equal(res.statusCode, 403, res.body);
    assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_CSRF");
    const events = await eventsAfter(fx.app.db, before);
    assert.ok(events.some((e) => e.subject === u.id), `no event records the refused cross-site request against ${u.id} (events: ${events.map((e) => e.type).join(", ") || "none"})`);
  });
  it("attack: a page repeating cross-site requests, and a cookie replayed without its CSRF token, leave sampled auth.csrf.refused rows naming the route, reason, session and claimed origin, the rest counted, never one row each (ASVS 16.3.3, 16.3.1)", async () => {
    const u = await flows.signedIn("csrf-flood@example.org");
    const before = await headOf(fx.app.db);
    for (let i = 0; i < 40; i++) {
      const res = await u.b.request("POST", "/auth/logout", { csrf: true, headers: { origin: "https://evil.example", "sec-fetch-site": "cross-site" } });
      assert.equal(res.statusCode, 403, res.body);
    }
    const noToken = await u.b.request("DELETE", "/auth/sessions"); // same-origin, no token
    assert.equal(noToken.statusCode, 403, noToken.body);
    const events = (await eventsAfter(fx.app.db, before)).filter((e) => e.type === "auth.csrf.refused");
    assert.ok(events.length >= 1 && events.length <= 2, `sampled, not one row per request: ${events.length} rows for 41 refusals`);
    const first = events[0]!;
    assert.equal(first.subject, u.id);
    assert.equal(first.data["reason"], "cross-site");
    assert.equal(first.data["origin"], "https://evil.example");
    assert.equal(first.data["route"], "POST /auth/logout");
    assert.equal(typeof first.data["sessionId"], "string");
    assert.ok(!first.raw.includes(u.b.cookie!.split(".").at(-1)!), "the session secret stays out of the event");
    // The other 40 are not lost: the maintenance pass writes the counts no event carried.
    const { recordUnrecordedRefusals } = await import("../src/accounts/login/refusal-sampler.ts");
    const counted = await recordUnrecordedRefusals(fx.app.accounts.callerRefusals, fx.app.audit, fx.app.clock.now(), { all: true });
    assert.ok(counted >= 39, `the refusals left out are counted (${counted})`);
  });
});
// The CLI's half-made creation (a role grant failing after the account exists) is pinned in test/cli-users-admin.test.ts.
