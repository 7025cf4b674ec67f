// Second-round attacks on API tokens, roles and /api/v1 access: boundaries the first round left open (the live-token
// cap at the exact expiry millisecond, the admin implication one permission short, pagination limits ±1), the
// Authorization scheme forms an attacker may try beside a valid cookie, what a token id alone can do to the owner's
// view of the token (last use, address), and a role deleted (rather than revoked from its holder) under a live token.
// Real server, real credentials (authFixture, tokens from the token service, sessions from the session manager);
// nothing fakes request.auth. Each test is an attack that must fail on correct code; ASVS 5.0 ids in the names.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { PERMISSIONS } from "../src/accounts/roles/index.ts";
import { MAX_LIVE_TOKENS } from "../src/http/api/tokens.ts";
import { authFixture, HOST, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

let fx: AuthFixture;
let n = 0;
// An administrator never demoted or locked here, so the last-admin rule never gets in a test's way.
let rootId: string;

before(async () => {
  fx = await authFixture();
  rootId = await user(["admin"]);
  await ensureSecondFactor(fx.app, rootId); // an administrator without a factor: the MFA policy would hold its tokens
});
after(async () => {
  await fx.close();
});

/** A user holding these permissions through a fresh role of its own (named `sr<n>`). */
async function user(permissions: string[]): Promise<string> {
  const u = await fx.user(`sr${++n}@example.org`);
  if (permissions.length) {
    await fx.app.accounts.roles.create({ name: `sr${n}`, permissions }, "test");
    await fx.app.accounts.roles.grant(u.id, `sr${n}`, "test");
  }
  return u.id;
}

async function token(userId: string, scopes: string[], expiresAt?: number): Promise<{ token: string; id: string }> {
  const made = await fx.app.accounts.tokens.create(userId, { name: `t${++n}`, scopes, ...(expiresAt === undefined ? {} : { expiresAt }) });
  return { token: made.token, id: made.info.id };
}

/** A fully signed-in, fresh browser session of `userId` (aal 2, so no MFA gate). */
async function session(userId: string): Promise<Browser> {
  const b = fx.browser();
  b.cookie = (await fx.app.accounts.sessions.createSession(userId, { aal: 2 })).token;
  return b;
}

function api(method: "GET" | "POST" | "DELETE", url: string, authorization: string | null, body?: unknown): Promise<LightMyRequestResponse> {
  return fx.server.inject({
    method, url, headers: { host: HOST, ...(authorization === null ? {} : { authorization }) },
    ...(body === undefined ? {} : { payload: body as object }),
  });
}

const bearer = (t: string): string => `Bearer ${t}`;

function code(res: LightMyRequestResponse): string | undefined {
  return (res.json() as { error?: { code?: string } }).error?.code;
}

async function infoOf(userId: string, tokenId: string): Promise<{ lastUsedAt: number | null; lastUsedIp: string | null }> {
  const t = (await fx.app.accounts.tokens.list(userId)).find((x) => x.id === tokenId);
  assert.ok(t, `token ${tokenId} is listed`);
  return { lastUsedAt: t.lastUsedAt, lastUsedIp: t.lastUsedIp };
}

describe("red team, second round: API tokens and roles", () => {
  it(`attack: at the live-token cap (${MAX_LIVE_TOKENS}), a slot is freed only at the very millisecond an expiring token stops working, never a millisecond before (ASVS 7.4.1, 2.4.1)`, async () => {
    // The cap and verify must agree on the instant: a token that still works at T-1 must still count, or a user
    // (a stolen token minting siblings) could hold 51 usable credentials for that millisecond, and more by repetition.
    const owner = await user(["accounts.read", "audit.read"]);
    const T = fx.clock.now() + 3_600_000;
    const expiring = await token(owner, ["audit.read"], T);
    const main = await token(owner, ["accounts.read", "audit.read"]);
    for (let i = 2; i < MAX_LIVE_TOKENS; i++) await token(owner, ["audit.read"]);
    fx.clock.set(T - 1);
    assert.equal((await api("GET", "/api/v1/audit/events?limit=1", bearer(expiring.token))).statusCode, 200, "the expiring token still works at T-1");
    const early = await api("POST", "/api/v1/tokens", bearer(main.token), { name: "early", scopes: ["audit.read"] });
    assert.equal(early.statusCode, 409, early.body);
    assert.equal(code(early), "BULWARK_ERR_API_TOKEN_LIMIT");
    fx.clock.set(T);
    assert.equal((await api("GET", "/api/v1/audit/events?limit=1", bearer(expiring.token))).statusCode, 401, "refused from T on");
    const onTime = await api("POST", "/api/v1/tokens", bearer(main.token), { name: "on time", scopes: ["audit.read"] });
    assert.equal(onTime.statusCode, 201, onTime.body);
    const again = await api("POST", "/api/v1/tokens", bearer(main.token), { name: "one more", scopes: ["audit.read"] });
    assert.equal(again.statusCode, 409, "one slot freed, one taken");
    const usable = [];
    for (const t of await fx.app.accounts.tokens.list(owner)) if (await fx.app.accounts.tokens.usable(t.id)) usable.push(t.id);
    assert.equal(usable.length, MAX_LIVE_TOKENS, "never more usable tokens than the cap");
  });

  it("attack: a user holding every permission but `admin` is no administrator: an admin-scoped token of theirs cannot create or grant roles, mint an admin token or act on an administrator (ASVS 8.2.1, 8.2.2, 8.3.3)", async () => {
    // The boundary of "admin implies everything": the reverse (everything implies admin) must never hold.
    const almost = await user(PERMISSIONS.filter((p) => p !== "admin"));
    await ensureSecondFactor(fx.app, almost); // administrative permissions: without a factor the MFA policy would hold the token
    const wide = await token(almost, ["admin"]);
    const target = await user([]);
    const attempts: Array<[method: "POST" | "DELETE", url: string, body?: unknown]> = [
      ["POST", "/api/v1/roles", { name: `esc${n}`, permissions: ["admin"] }],
      ["POST", `/api/v1/users/${almost}/roles/admin`],
      ["POST", `/api/v1/users/${target}/roles/auditor`],
      ["DELETE", `/api/v1/users/${rootId}/roles/admin`],
      ["DELETE", "/api/v1/roles/responder"],
    ];
    for (const [method, url, body] of attempts) {
      const res = await api(method, url, bearer(wide.token), body);
      assert.equal(res.statusCode, 403, `${method} ${url}: ${res.statusCode} ${res.body}`);
      assert.equal(code(res), "BULWARK_ERR_API_FORBIDDEN", `${method} ${url}`);
    }
    const mint = await api("POST", "/api/v1/tokens", bearer(wide.token), { name: "escalate", scopes: ["admin"] });
    assert.equal(mint.statusCode, 403, mint.body);
    assert.equal(code(mint), "BULWARK_ERR_API_TOKEN_SCOPE_TOO_WIDE");
    const lock = await api("POST", `/api/v1/users/${rootId}/lock`, bearer(wide.token));
    assert.equal(lock.statusCode, 403, lock.body);
    assert.equal(code(lock), "BULWARK_ERR_API_OUTRANKED");
    assert.equal((await fx.app.accounts.users.getById(rootId))?.lockedAt, null);
    assert.equal((await fx.app.accounts.roles.rolesOf(almost)).includes("admin"), false);
    assert.equal((await fx.app.accounts.roles.permissionsOf(almost)).has("admin"), false);
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(target), []);
    assert.ok((await fx.app.accounts.roles.list()).some((r) => r.name === "responder"), "the built-in role is still there");
    assert.equal((await fx.app.accounts.roles.list()).some((r) => r.permissions.includes("admin") && r.name.startsWith("esc")), false);
    // What the user does hold, the token can use: the refusals above are about admin, not a broken token.
    assert.equal((await api("GET", "/api/v1/users?limit=1", bearer(wide.token))).statusCode, 200);
  });

  it("attack: deleting the role that grants a permission (not revoking it from the holder) takes it from the holder's live token on the very next request, and re-creating the role under the same name gives nothing back (ASVS 8.3.2)", async () => {
    const holder = await user([]);
    await fx.app.accounts.roles.create({ name: "readers2", permissions: ["accounts.read"] }, "test");
    await fx.app.accounts.roles.grant(holder, "readers2", "test");
    const t = await token(holder, ["accounts.read"]);
    assert.equal((await api("GET", "/api/v1/users?limit=1", bearer(t.token))).statusCode, 200);
    const admin = await token(rootId, ["admin"]);
    assert.equal((await api("DELETE", "/api/v1/roles/readers2", bearer(admin.token))).statusCode, 204);
    const after = await api("GET", "/api/v1/users?limit=1", bearer(t.token));
    assert.equal(after.statusCode, 403, after.body);
    assert.equal(code(after), "BULWARK_ERR_API_FORBIDDEN");
    const recreated = await api("POST", "/api/v1/roles", bearer(admin.token), { name: "readers2", permissions: ["accounts.read", "accounts.write"] });
    assert.equal(recreated.statusCode, 201, recreated.body);
    assert.equal((await api("GET", "/api/v1/users?limit=1", bearer(t.token))).statusCode, 403, "the re-created role has no holders");
    assert.deepEqual(await fx.app.accounts.roles.rolesOf(holder), []);
  });

  it("attack: an Authorization header in another scheme form (Bearer=, Bearer:, no separator, Token, a bare token, a trailing comma, an empty bearer) is a 401 even beside a valid administrator cookie, never served by the cookie (ASVS 8.3.1)", async () => {
    const reader = await user(["accounts.read"]);
    const good = (await token(reader, ["accounts.read"])).token;
    const admin = await session(rootId);
    // The forms that are accepted (the scheme is case-insensitive, RFC 9110 §11.1) are accepted as the token's owner,
    // not the cookie's: the token only reads.
    for (const accepted of [`Bearer ${good}`, `bearer ${good}`, `BEARER\t${good}`]) {
      const res = await admin.request("GET", "/api/v1/users?limit=1", { headers: { authorization: accepted } });
      assert.equal(res.statusCode, 200, `${JSON.stringify(accepted.slice(0, 8))}: ${res.body}`);
      const write = await admin.request("POST", `/api/v1/users/${reader}/lock`, { headers: { authorization: accepted } });
      assert.equal(write.statusCode, 403, "acts as the token, not as the administrator's cookie");
    }
    const refused = [
      `Bearer=${good}`, `Bearer:${good}`, `Bearer${good}`, `Token ${good}`, good, `Bearer ${good},`, `Bearer ${good};`,
      "Bearer", "Bearer ", `Bearer "${good}"`, `Bearer ${good} extra`, `Bearer bwk_${good.slice(4).replace(/_([a-z2-7]{52})$/, "-$1")}`,
    ];
    for (const header of refused) {
      const res = await admin.request("GET", "/api/v1/users?limit=1", { headers: { authorization: header } });
      assert.equal(res.statusCode, 401, `${JSON.stringify(header.slice(0, 16))}… (${header.length}): ${res.statusCode} ${res.body.slice(0, 120)}`);
      const lock = await admin.request("POST", `/api/v1/users/${reader}/lock`, { csrf: true, headers: { authorization: header } });
      assert.notEqual(lock.statusCode, 200, `${JSON.stringify(header.slice(0, 16))}: the cookie must not act`);
    }
    assert.equal((await fx.app.accounts.users.getById(reader))?.lockedAt, null, "no request acted with the administrator's cookie");
  });

  it("attack: someone who knows a token's id (audit log, token list) cannot write its last-use time or address with made-up secrets; a real use, even one refused for scope, is recorded (ASVS 8.3.1, 16.3.2)", async () => {
    const owner = await user(["accounts.read", "audit.read"]);
    const t = await token(owner, ["audit.read"]);
    assert.equal((await api("GET", "/api/v1/audit/events?limit=1", bearer(t.token))).statusCode, 200);
    const first = await infoOf(owner, t.id);
    assert.equal(first.lastUsedAt, fx.clock.now());
    assert.equal(first.lastUsedIp, "127.0.0.1");
    fx.clock.advance(5 * 60_000);
    const other = await token(owner, ["audit.read"]);
    const forged = [
      `${t.token.slice(0, -52)}${"a".repeat(52)}`,
      `${t.token.slice(0, -52)}${other.token.slice(-52)}`, // the id with another live token's genuine secret
      `${t.token.slice(0, -52)}${t.token.slice(-52, -1)}${t.token.at(-1) === "a" ? "b" : "a"}`,
    ];
    for (const bad of forged) assert.equal((await api("GET", "/api/v1/audit/events?limit=1", bearer(bad))).statusCode, 401);
    assert.deepEqual(await infoOf(owner, t.id), first, "nothing was recorded for the forgeries");
    assert.deepEqual(await infoOf(owner, other.id), { lastUsedAt: null, lastUsedIp: null }, "the donor of the secret is not marked used either");
    // A use the guard refuses is still a use of the credential: the owner must see a stolen token probing.
    const probe = await api("GET", "/api/v1/users?limit=1", bearer(t.token));
    assert.equal(probe.statusCode, 403, probe.body);
    assert.equal((await infoOf(owner, t.id)).lastUsedAt, fx.clock.now(), "the refused-for-scope use is recorded");
  });

  it("attack: /api/v1/users page size and search bounds hold at ±1 and against repeated or malformed parameters, never a page wider than 200 (ASVS 2.2.1, 2.4.1)", async () => {
    const reader = (await token(await user(["accounts.read"]), ["accounts.read"])).token;
    for (let i = 0; i < 3; i++) await fx.user(`pager${i}-${n}@example.org`);
    const total = await fx.app.accounts.users.count();
    const ok = await api("GET", "/api/v1/users?limit=200", bearer(reader));
    assert.equal(ok.statusCode, 200, ok.body);
    assert.equal((ok.json() as { users: unknown[] }).users.length, Math.min(200, total));
    const one = await api("GET", "/api/v1/users?limit=1", bearer(reader));
    assert.equal((one.json() as { users: unknown[] }).users.length, 1);
    for (const query of [
      "limit=0", "limit=-1", "limit=201", "limit=1.5", "limit=1&limit=2", "limit=", "limit=true", "limit=null", "limit=1e9",
      `q=${"a".repeat(255)}`, "q=", "q=a&q=b", "cursor=", `cursor=${"A".repeat(513)}`, "offset=10", "limit=1&page=2",
    ]) {
      const res = await api("GET", `/api/v1/users?${query}`, bearer(reader));
      assert.equal(res.statusCode, 400, `${query.slice(0, 30)}: ${res.statusCode} ${res.body.slice(0, 120)}`);
    }
    const longest = await api("GET", `/api/v1/users?q=${"a".repeat(254)}`, bearer(reader));
    assert.equal(longest.statusCode, 200, longest.body);
    assert.deepEqual((longest.json() as { users: unknown[] }).users, []);
  });
});
