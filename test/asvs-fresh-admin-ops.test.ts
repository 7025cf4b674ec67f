// ASVS 7.5.3: highly sensitive administrative operations need further authentication. Written as attacks that
// must fail: an administrator's cookie that is no longer fresh — with a valid CSRF token, so only freshness stands
// in the way — cannot start a containment job or undo one, grant or revoke a role (itself included), create or
// delete a role, or mint an API token; each is 403 BULWARK_ERR_REAUTH_REQUIRED and changes nothing. The owner
// re-authenticates and goes on; an API token is its own credential and is not asked to (docs/http-auth.md).
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, totpCode, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";

const MINUTE = 60_000;
let fx: AuthFixture;
let owner: Browser;
let secret: string;
let password: string;
let adminId: string;
let victimId: string;
let accompliceId: string;

before(async () => {
  fx = await authFixture();
  // The administrator signs in and enrols TOTP, as the default policy (administrative) makes them: aal 2, fresh.
  const admin = await fx.user("boss@example.org", { roles: ["admin"] });
  adminId = admin.id;
  password = admin.password;
  owner = fx.browser();
  assert.equal((await owner.login(admin.email, admin.password)).statusCode, 200);
  const begin = await owner.request("POST", "/auth/mfa/totp", { csrf: true });
  assert.equal(begin.statusCode, 200, begin.body);
  secret = begin.json().secret as string;
  const confirm = await owner.request("POST", "/auth/mfa/totp/confirm", { csrf: true, body: { code: totpCode(secret, fx.clock.now()) } });
  assert.equal(confirm.statusCode, 200, confirm.body);
  victimId = (await fx.user("victim@example.org", { roles: ["auditor"] })).id;
  accompliceId = (await fx.user("accomplice@example.org")).id;
  await fx.app.accounts.roles.create({ name: "temp", permissions: ["checks.run"] }, "test");
});
after(async () => {
  await fx.close();
});

/** A copy of the owner's cookie in another client (malware, a shared computer, a log line). */
function steal(victim: Browser): Browser {
  const thief = fx.browser();
  thief.cookie = victim.cookie;
  return thief;
}

function assertReauthRequired(res: LightMyRequestResponse, what: string): void {
  assert.equal(res.statusCode, 403, `${what}: ${res.body}`);
  assert.equal(res.json().error.code, "BULWARK_ERR_REAUTH_REQUIRED", what);
}

/** Polls a containment job until it is finished (it runs in the server's background). */
async function finished(b: Browser, id: string): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const res = await b.request("GET", `/api/v1/contain/jobs/${id}`);
    assert.equal(res.statusCode, 200, res.body);
    const status = res.json().job.status as string;
    if (status === "done" || status === "failed") return status;
    await sleep(25);
  }
  throw new Error(`job ${id} did not finish`);
}

const rolesOf = (id: string): Promise<string[]> => fx.app.accounts.roles.rolesOf(id);
const jobCount = async (b: Browser): Promise<number> => ((await b.request("GET", "/api/v1/contain/jobs")).json().jobs as unknown[]).length;

describe("fresh session for highly sensitive operations (ASVS 7.5.3)", () => {
  let jobId: string;

  it("a fresh administrator session starts a real containment job", async () => {
    const res = await owner.request("POST", "/api/v1/contain/jobs", { csrf: true, body: { levers: ["lock-accounts"], scope: { ids: [victimId] } } });
    assert.equal(res.statusCode, 202, res.body);
    jobId = res.json().job.id as string;
    assert.equal(await finished(owner, jobId), "done");
  });

  it("attack: a stale stolen cookie with a valid CSRF token cannot start a containment job or undo one", async () => {
    fx.clock.advance(11 * MINUTE); // the window is 10 minutes; the idle timeout (30) has not passed
    const thief = steal(owner);
    const csrf = await thief.csrf();
    assert.equal((await thief.request("GET", "/auth/session")).json().fresh, false);
    assert.equal((await thief.request("GET", "/api/v1/users")).statusCode, 200, "the cookie still works for ordinary requests");
    const before = await jobCount(thief);
    assertReauthRequired(await thief.request("POST", "/api/v1/contain/jobs", { csrf, body: { levers: ["lock-accounts", "revoke-sessions"], scope: { all: true } } }), "real job");
    assertReauthRequired(await thief.request("POST", "/api/v1/contain/jobs", { csrf, body: { levers: ["lock-accounts"], scope: { all: true }, dryRun: false } }), "explicit dryRun false");
    assertReauthRequired(await thief.request("POST", `/api/v1/contain/jobs/${jobId}/undo`, { csrf }), "undo");
    assert.equal(await jobCount(thief), before, "no job was created");
    assert.equal((await fx.app.accounts.users.getById(adminId))?.lockedAt, null, "scope all would have locked the administrator too");
    // A dry run changes nothing and stays available (an investigator may look without re-authenticating).
    const dry = await thief.request("POST", "/api/v1/contain/jobs", { csrf, body: { levers: ["lock-accounts"], scope: { all: true }, dryRun: true } });
    assert.equal(dry.statusCode, 200, dry.body);
  });

  it("attack: a stale stolen cookie cannot grant itself or an accomplice a role, revoke one, or create or delete a role", async () => {
    const thief = steal(owner);
    const csrf = await thief.csrf();
    assertReauthRequired(await thief.request("POST", `/api/v1/users/${adminId}/roles/responder`, { csrf }), "grant to self");
    assertReauthRequired(await thief.request("POST", `/api/v1/users/${accompliceId}/roles/admin`, { csrf }), "grant admin to an accomplice");
    assertReauthRequired(await thief.request("DELETE", `/api/v1/users/${victimId}/roles/auditor`, { csrf }), "revoke");
    assertReauthRequired(await thief.request("POST", "/api/v1/roles", { csrf, body: { name: "backdoor", permissions: ["admin"] } }), "create role");
    assertReauthRequired(await thief.request("DELETE", "/api/v1/roles/temp", { csrf }), "delete role");
    assert.deepEqual(await rolesOf(adminId), ["admin"]);
    assert.deepEqual(await rolesOf(accompliceId), []);
    assert.deepEqual(await rolesOf(victimId), ["auditor"]);
    const names = (await fx.app.accounts.roles.list()).map((r) => r.name);
    assert.ok(!names.includes("backdoor") && names.includes("temp"), names.join(","));
  });

  it("attack: a stale stolen cookie cannot mint an API token (a credential that would outlive the session)", async () => {
    const thief = steal(owner);
    const csrf = await thief.csrf();
    assertReauthRequired(await thief.request("POST", "/api/v1/tokens", { csrf, body: { name: "exfil", scopes: ["admin"] } }), "mint token");
    assert.deepEqual(await fx.app.accounts.tokens.list(adminId), []);
  });

  it("an API token is its own credential: it grants and mints without re-authentication, within its scopes", async () => {
    const { token } = await fx.app.accounts.tokens.create(adminId, { name: "automation", scopes: ["admin"] });
    fx.clock.advance(60 * MINUTE);
    const call = (method: "POST" | "DELETE", url: string, body?: unknown): Promise<LightMyRequestResponse> =>
      fx.server.inject({ method, url, headers: { authorization: `Bearer ${token}` }, ...(body === undefined ? {} : { payload: body as object }) });
    const grant = await call("POST", `/api/v1/users/${accompliceId}/roles/temp`);
    assert.equal(grant.statusCode, 200, grant.body);
    const minted = await call("POST", "/api/v1/tokens", { name: "narrow", scopes: ["accounts.read"] });
    assert.equal(minted.statusCode, 201, minted.body);
    assert.equal((await call("DELETE", `/api/v1/users/${accompliceId}/roles/temp`)).statusCode, 200);
  });

  it("after POST /auth/reauthenticate the owner does all of it; the thief's copy is dead", async () => {
    // The owner's session went idle in the previous test; sign in again (password + TOTP), let it go stale, then
    // re-authenticate: the path a real administrator takes.
    fx.clock.advance(30_000);
    assert.equal((await owner.login("boss@example.org", password)).statusCode, 200);
    assert.equal((await owner.request("POST", "/auth/mfa/verify", { csrf: true, body: { totp: totpCode(secret, fx.clock.now()) } })).statusCode, 200);
    fx.clock.advance(11 * MINUTE);
    const thief = steal(owner);
    assertReauthRequired(await owner.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "ci", scopes: ["accounts.read"] } }), "stale owner");
    const reauth = await owner.request("POST", "/auth/reauthenticate", { csrf: true, body: { password, totp: totpCode(secret, fx.clock.now()) } });
    assert.equal(reauth.statusCode, 200, reauth.body);
    const minted = await owner.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "ci", scopes: ["accounts.read"] } });
    assert.equal(minted.statusCode, 201, minted.body);
    const grant = await owner.request("POST", `/api/v1/users/${accompliceId}/roles/temp`, { csrf: true });
    assert.equal(grant.statusCode, 200, grant.body);
    const undo = await owner.request("POST", `/api/v1/contain/jobs/${jobId}/undo`, { csrf: true });
    assert.equal(undo.statusCode, 202, undo.body);
    assert.equal(await finished(owner, undo.json().job.id as string), "done");
    assert.equal((await fx.app.accounts.users.getById(victimId))?.lockedAt, null, "the undo unlocked the victim");
    assert.equal((await thief.request("GET", "/api/v1/users")).statusCode, 401, "the stolen copy of the old session is refused");
  });
});
