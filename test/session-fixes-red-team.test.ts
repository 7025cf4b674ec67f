// Red team, round on this session's own fixes, attacked as new code: the sampled refusal events they added
// (api.refused from src/http/api/common.ts auditRefusal and the onError hook of src/http/api/index.ts; auth.csrf.refused
// from refusedCrossSite in src/http/auth/authenticate.ts), both drawn from the one RefusalSampler every anonymous
// throttle also drew from (src/accounts/login/refusal-sampler.ts, app.accounts.refusals). Both findings are fixed:
// signed-in callers' refusals draw from app.accounts.callerRefusals, and a refusal's failed append never replaces it.
// The attackers: an insider holding a help desk's token and session (accounts.write) who wants an escalation attempt to
// leave no trace naming them, with a confederate botnet sending wrong passwords from many addresses in the same minute;
// and a page on another site riding a signed-in browser while the audit store fails.
// SQLite in temp dirs, a manual clock, injected requests only, cheap argon2. ASVS 5.0 ids in the names.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { RefusalSampler } from "../src/accounts/login/refusal-sampler.ts";
import { SESSION_COOKIE } from "../src/accounts/sessions/index.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { HOST } from "../src/http/auth/test-client.ts";
import { loginFrom } from "./helpers/auth-flows.ts";
import { whileAuditRefuses } from "./helpers/audit-tamper.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";
import { sharedFixture } from "./helpers/shared-fixture.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Row { seq: number; type: string; actor: string; subject: string; data: Record<string, unknown> }

const fx = sharedFixture();
let counter = 0;

async function auditHead(): Promise<number> {
  return Number((await fx.app.db.db.selectFrom("audit_head").select("seq").executeTakeFirstOrThrow()).seq);
}

async function eventsAfter(seq: number): Promise<Row[]> {
  const rows = await fx.app.db.db.selectFrom("audit_events").select(["seq", "type", "actor", "subject", "data"]).where("seq", ">", seq).orderBy("seq").execute();
  return rows.map((r) => ({ seq: Number(r.seq), type: r.type, actor: r.actor, subject: r.subject, data: JSON.parse(r.data) as Record<string, unknown> }));
}

/** A help desk: a user holding accounts.read and accounts.write through a role of its own, with an API token and a browser session (cookie + CSRF token). */
async function helpDesk(): Promise<{ id: string; token: string; cookie: string; csrf: string }> {
  const n = ++counter;
  const user = await fx.app.accounts.users.create({ email: `desk${n}@example.org` });
  await fx.app.accounts.roles.create({ name: `desk${n}`, permissions: ["accounts.read", "accounts.write"] }, "test");
  await fx.app.accounts.roles.grant(user.id, `desk${n}`, "test");
  await ensureSecondFactor(fx.app, user.id); // accounts.write is administrative: without a factor the MFA policy holds the token
  const token = (await fx.app.accounts.tokens.create(user.id, { name: `desk token ${n}`, scopes: ["accounts.read", "accounts.write"] })).token;
  const { token: sessionToken } = await fx.app.accounts.sessions.createSession(user.id, { aal: 2 });
  const cookie = `${SESSION_COOKIE}=${sessionToken}`;
  const res = await fx.server.inject({ method: "GET", url: "/auth/csrf", headers: { host: HOST, cookie } });
  assert.equal(res.statusCode, 200, res.body);
  return { id: user.id, token, cookie, csrf: (res.json() as { token: string }).token };
}

/** The help desk granting itself the administrator role with its token: refused 403. */
function selfGrant(desk: { id: string; token: string }): Promise<LightMyRequestResponse> {
  return fx.server.inject({ method: "POST", url: `/api/v1/users/${desk.id}/roles/admin`, remoteAddress: "203.0.113.77", headers: { host: HOST, authorization: `Bearer ${desk.token}` } });
}

/** A page on another site riding the help desk's browser: a cross-site POST with the cookie, no CSRF token. */
function crossSiteLock(desk: { cookie: string }, target: string): Promise<LightMyRequestResponse> {
  return fx.server.inject({
    method: "POST", url: `/api/v1/users/${target}/lock`, remoteAddress: "203.0.113.78",
    headers: { host: HOST, cookie: desk.cookie, origin: "https://evil.example", "sec-fetch-site": "cross-site", "content-type": "application/json" },
    payload: "{}",
  });
}

/** Runs `fn` with `sampler` as the app's refusal sampler. */
async function withSampler<T>(sampler: RefusalSampler, fn: () => Promise<T>): Promise<T> {
  const original = fx.app.accounts.refusals;
  (fx.app.accounts as { refusals: RefusalSampler }).refusals = sampler;
  try {
    return await fn();
  } finally {
    (fx.app.accounts as { refusals: RefusalSampler }).refusals = original;
  }
}

describe("the sampled refusal events share one budget with anonymous throttles (ASVS 16.3.2, 16.3.3)", () => {
  it("attack: a botnet's wrong passwords from many addresses in the same minute cannot crowd out a help desk's escalation attempt (api.refused) nor a cross-site ride (auth.csrf.refused): signed-in callers' refusals have a sampler budget of their own (ASVS 16.3.2, 16.3.3) (was: one shared budget, the insider's refusals left as a bare count under \"others\")", async () => {
    // A budget of 3 events a minute stands in for the default 600: reached by 600 throttled keys in one minute (a
    // client address over its window, or an account+address pair after five wrong guesses), which a botnet or a single
    // holder of a few /48s produces without signing in (the credential-stuffing round's own stand-in, same arithmetic).
    const sampler = new RefusalSampler({ budget: 3 });
    await withSampler(sampler, async () => {
      fx.clock.advance(7 * HOUR);
      fx.clock.advance(60_000 - (fx.clock.now() % 60_000) + 1_000); // the start of a sampler window
      const desk = await helpDesk();
      const victim = await fx.user(`victim${++counter}@example.org`);
      const mark = await auditHead();
      // The confederates: each bot guesses one made-up address five times (its account+address window fills), then
      // once more (throttled: one sampler key of its own, one event of the budget).
      for (let b = 0; b < 4; b++) {
        const address = `198.51.100.${10 + b}`;
        for (let i = 0; i < 5; i++) assert.equal((await loginFrom(fx, `nobody${counter}-${b}@leak.example`, `guess ${i}`, address)).statusCode, 401);
        assert.equal((await loginFrom(fx, `nobody${counter}-${b}@leak.example`, "guess more", address)).statusCode, 429);
      }
      // Same minute: the insider's real attempts, each the first of its own key.
      const grant = await selfGrant(desk);
      assert.equal(grant.statusCode, 403, grant.body);
      const ride = await crossSiteLock(desk, victim.id);
      assert.equal(ride.statusCode, 403, ride.body);
      assert.equal((await fx.app.accounts.roles.rolesOf(desk.id)).includes("admin"), false, "the refusal itself held");
      // The minute ends; the maintenance pass writes what the sampler still holds.
      fx.clock.advance(5 * 60_000);
      const maintenance = startMaintenance(fx.app, { intervalMs: DAY, firstPassDelayMs: DAY });
      await maintenance.runOnce();
      await maintenance.stop();
      const events = await eventsAfter(mark);
      const missing: string[] = [];
      if (!events.some((e) => e.type === "api.refused" && e.actor === desk.id)) missing.push("api.refused (help desk self-grant of admin)");
      if (!events.some((e) => e.type === "auth.csrf.refused" && e.actor === desk.id)) missing.push("auth.csrf.refused (cross-site ride of the help desk's session)");
      const others = events.filter((e) => e.type === "auth.refusals.unrecorded" && e.subject === "others").map((e) => e.data["unrecorded"]);
      assert.deepEqual(missing, [], `no event names the help desk for: ${missing.join("; ")}; what the log holds of them: "others" counts ${JSON.stringify(others)}`);
    });
  });
});

describe("a refusal whose audit event cannot be written (ASVS 16.3.3)", () => {
  it("attack: an escalation attempt whose api.refused append fails is still the 403 it was, and the role is not granted", async () => {
    await withSampler(new RefusalSampler(), async () => {
      const desk = await helpDesk();
      const res = await whileAuditRefuses(fx.app.db, "api.refused", () => selfGrant(desk));
      assert.equal(res.statusCode, 403, res.body);
      assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_API_FORBIDDEN");
      assert.equal((await fx.app.accounts.roles.rolesOf(desk.id)).includes("admin"), false);
    });
  });

  it("attack: a cross-site request riding a session while auth.csrf.refused cannot be written is still answered the CSRF 403, the failed append logged (ASVS 16.3.3) (was: a 500)", async () => {
    await withSampler(new RefusalSampler(), async () => {
      const desk = await helpDesk();
      const victim = await fx.user(`victim${++counter}@example.org`);
      const res = await whileAuditRefuses(fx.app.db, "auth.csrf.refused", () => crossSiteLock(desk, victim.id));
      // The change itself must not happen whatever the answer.
      assert.equal((await fx.app.accounts.users.getById(victim.id))?.lockedAt, null, "the ride locked the account");
      assert.equal(res.statusCode, 403, `the CSRF refusal became ${res.statusCode}: ${res.body}`);
      assert.equal((res.json() as { error: { code: string } }).error.code, "BULWARK_ERR_CSRF");
    });
  });
});
