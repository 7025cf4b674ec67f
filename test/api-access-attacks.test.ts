// Attacks on API tokens, roles and the /api/v1 access rules (privilege escalation, IDOR, token
// tampering, lock-out of the administrators). Each test is an attack that must fail on correct code: it passes
// when the product is safe. Real server, real credentials (authFixture, tokens from the token service, sessions
// from the session manager); nothing fakes request.auth. ASVS 5.0 ids in the test names.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, HOST, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { authFlows } from "./helpers/auth-flows.ts";

let fx: AuthFixture;
let n = 0;
// An administrator who is never demoted or locked here, so the last-admin rule never gets in a test's way.
let rootId: string;
let rootToken: string;

before(async () => {
  fx = await authFixture();
  rootId = await user(["admin"]);
  rootToken = await token(rootId, ["admin"]);
});
after(async () => {
  await fx.close();
});

const { userWith: user, tokenFor: token } = authFlows(() => fx);

/** A fully signed-in, fresh browser session of `userId` (aal 2, so no MFA gate). */
async function session(userId: string): Promise<Browser> {
  const b = fx.browser();
  b.cookie = (await fx.app.accounts.sessions.createSession(userId, { aal: 2 })).token;
  return b;
}

function api(method: "GET" | "POST" | "DELETE" | "HEAD", url: string, bearer: string | null, body?: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return fx.server.inject({
    method, url, headers: { host: HOST, ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }), ...headers },
    ...(body === undefined ? {} : { payload: body as object }),
  });
}

function code(res: LightMyRequestResponse): string | undefined {
  return (res.json() as { error?: { code?: string } }).error?.code;
}

/** Status and body of an answer, without the request id that differs on every request. */
function answer(res: LightMyRequestResponse): [number, unknown] {
  const body = res.json() as { error?: Record<string, unknown> };
  if (body.error) delete body.error["requestId"];
  return [res.statusCode, body];
}

describe("red team: /api/v1 access control", () => {
  it("attack: a demoted administrator's leftover admin-scoped token cannot grant itself admin back, create a role or mint an admin token (ASVS 8.2.2, 8.3.2)", async () => {
    const ex = await user(["accounts.read"], "admin");
    const leftover = await token(ex, ["admin"]);
    await fx.app.accounts.roles.revoke(ex, "admin", "test");
    const regrant = await api("POST", `/api/v1/users/${ex}/roles/admin`, leftover);
    assert.equal(regrant.statusCode, 403, regrant.body);
    assert.equal((await fx.app.accounts.roles.rolesOf(ex)).includes("admin"), false);
    assert.equal((await api("POST", "/api/v1/roles", leftover, { name: "comeback", permissions: ["admin"] })).statusCode, 403);
    assert.equal((await fx.app.accounts.roles.list()).some((r) => r.name === "comeback"), false);
    for (const scope of ["admin", "accounts.write", "contain.run"]) {
      const mint = await api("POST", "/api/v1/tokens", leftover, { name: "again", scopes: [scope] });
      assert.equal(mint.statusCode, 403, `${scope}: ${mint.body}`);
      assert.equal(code(mint), "BULWARK_ERR_API_TOKEN_SCOPE_TOO_WIDE");
    }
    // What the user still holds (accounts.read, within the token's admin scope) is all the token can do or hand on.
    const narrow = await api("POST", "/api/v1/tokens", leftover, { name: "reader", scopes: ["accounts.read"] });
    assert.equal(narrow.statusCode, 201, narrow.body);
    assert.equal((await api("POST", `/api/v1/users/${rootId}/lock`, leftover)).statusCode, 403);
  });

  it("attack: an accounts.write holder with a fresh session cannot grant itself admin or create a role carrying it (ASVS 8.2.2)", async () => {
    const helpdesk = await user(["accounts.read", "accounts.write"]);
    const b = await session(helpdesk);
    const grant = await b.request("POST", `/api/v1/users/${helpdesk}/roles/admin`, { csrf: true });
    assert.equal(grant.statusCode, 403, grant.body);
    const role = await b.request("POST", "/api/v1/roles", { csrf: true, body: { name: "helpdesk-plus", permissions: ["admin"] } });
    assert.equal(role.statusCode, 403, role.body);
    const mint = await b.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "x", scopes: ["accounts.write", "admin"] } });
    assert.equal(mint.statusCode, 403, mint.body);
    assert.equal((await fx.app.accounts.roles.rolesOf(helpdesk)).includes("admin"), false);
    assert.equal((await fx.app.accounts.roles.list()).some((r) => r.name === "helpdesk-plus"), false);
    assert.equal((await fx.app.accounts.tokens.list(helpdesk)).length, 0);
  });

  it("attack: an administrator's token narrowed to accounts.write cannot lock an account holding a permission outside its scopes (ASVS 8.2.2, 8.3.3)", async () => {
    const admin = await user([], "admin");
    const narrow = await token(admin, ["accounts.write"]);
    const auditor = await user(["audit.read"]);
    const res = await api("POST", `/api/v1/users/${auditor}/lock`, narrow);
    assert.equal(res.statusCode, 403, res.body);
    assert.equal(code(res), "BULWARK_ERR_API_OUTRANKED");
    assert.equal((await fx.app.accounts.users.getById(auditor))?.lockedAt, null);
    const plain = await user([]);
    assert.equal((await api("POST", `/api/v1/users/${plain}/lock`, narrow)).statusCode, 200, "an account holding nothing is within its reach");
  });

  it("attack: an accounts.write holder cannot unlock an administrator another administrator locked, nor clear its throttles (ASVS 8.2.2)", async () => {
    const suspect = await user([], "admin");
    const locked = await api("POST", `/api/v1/users/${suspect}/lock`, rootToken, { reason: "compromised" });
    assert.equal(locked.statusCode, 200, locked.body);
    const helpdesk = await token(await user(["accounts.read", "accounts.write"]), ["accounts.read", "accounts.write"]);
    for (const path of ["unlock", "throttles/clear"]) {
      const res = await api("POST", `/api/v1/users/${suspect}/${path}`, helpdesk);
      assert.equal(res.statusCode, 403, `${path}: ${res.body}`);
      assert.equal(code(res), "BULWARK_ERR_API_OUTRANKED", path);
    }
    const after = await fx.app.accounts.users.getById(suspect);
    assert.notEqual(after?.lockedAt, null, "the administrator stays locked");
    assert.equal(after?.lockedReason, "compromised");
  });

  it("attack: an API token, even admin-scoped, cannot use any cookie-only /auth route: sessions, password, email, MFA, re-authentication (ASVS 7.5.1, 7.5.2)", async () => {
    const owner = await fx.user(`owner${++n}@example.org`, { roles: ["admin"] });
    const b = await session(owner.id);
    const sessionId = (await b.request("GET", "/auth/session")).json().sessionId as string;
    // tokenFor gives the owner the authenticator app the MFA policy requires of a token's owner: enrolled before the
    // snapshot, so the attempts below must leave the factors exactly as they were.
    const stolen = await token(owner.id, ["admin"]);
    const before = await fx.app.accounts.users.getById(owner.id);
    const factorsBefore = await fx.app.accounts.mfa.factors(owner.id);
    const attempts: Array<[method: "GET" | "POST" | "DELETE", url: string, body?: unknown]> = [
      ["GET", "/auth/sessions"], ["DELETE", "/auth/sessions"], ["DELETE", `/auth/sessions/${sessionId}`],
      ["POST", "/auth/password/change", { currentPassword: owner.password, newPassword: "an entirely new passphrase 42" }],
      ["POST", "/auth/email/change", { newEmail: "thief@example.net" }],
      ["POST", "/auth/reauthenticate", { password: owner.password }],
      ["GET", "/auth/mfa"], ["POST", "/auth/mfa/totp"], ["DELETE", "/auth/mfa/totp"], ["POST", "/auth/mfa/recovery-codes"],
      ["POST", "/auth/mfa/webauthn/register/options"], ["GET", "/auth/csrf"], ["POST", "/auth/logout"],
    ];
    for (const [method, url, body] of attempts) {
      const res = await api(method, url, stolen, body, body === undefined ? {} : { "content-type": "application/json" });
      assert.equal(res.statusCode, 401, `${method} ${url}: ${res.statusCode} ${res.body}`);
    }
    const afterwards = await fx.app.accounts.users.getById(owner.id);
    assert.equal(afterwards?.passwordHash, before?.passwordHash, "the password is unchanged");
    assert.equal(afterwards?.email, before?.email);
    assert.deepEqual(await fx.app.accounts.mfa.factors(owner.id), factorsBefore, "no factor was enrolled or begun, none removed, no recovery codes made");
    assert.equal((await b.request("GET", "/auth/session")).json().authenticated, true, "the owner's session lives on");
    assert.equal(fx.mailTo("thief@example.net").length, 0);
  });

  it("attack: a bearer header that is not a well-formed token is refused with 401, never downgraded to the cookie or anonymous (ASVS 8.3.1)", async () => {
    const reader = await user(["accounts.read"]);
    const good = await token(reader, ["accounts.read"]);
    const other = await token(reader, ["accounts.read"]);
    const [, goodId] = /^bwk_(tok_[a-z2-7]{26})_/.exec(good) ?? [];
    const otherSecret = other.slice(-52);
    assert.equal((await api("GET", "/api/v1/users?limit=1", good)).statusCode, 200);
    const variants = [
      good.toUpperCase(), `BWK_${good.slice(4)}`, `${good}a`, `${good}=`, good.slice(0, -1), `bwk_${goodId}_${otherSecret}`,
      `${good} ${good}`, `bwk_${goodId!.toUpperCase()}_${good.slice(-52)}`, good.replace(/_([a-z2-7]{52})$/, ".$1"), `bwk_${"a".repeat(5000)}`,
    ];
    for (const bad of variants) {
      const res = await api("GET", "/api/v1/users?limit=1", bad);
      assert.equal(res.statusCode, 401, `${bad.slice(0, 24)}… (${bad.length}): ${res.statusCode}`);
    }
    // Another scheme, with a valid session cookie beside it, is refused rather than served by the cookie.
    const admin = await session(rootId);
    const basic = await admin.request("GET", "/api/v1/users?limit=1", { headers: { authorization: `Basic ${Buffer.from("a:b").toString("base64")}` } });
    assert.equal(basic.statusCode, 401, basic.body);
    // A token in the query string is not a credential (ASVS 14.2.1): anonymous, and the field is not accepted.
    const inQuery = await api("GET", `/api/v1/tokens?access_token=${good}`, null);
    assert.equal(inQuery.statusCode, 401, inQuery.body);
    // One kind of credential is never taken for the other: a session cookie as a bearer token, a token as the cookie.
    assert.equal((await api("GET", "/api/v1/tokens", admin.cookie as string)).statusCode, 401);
    const asCookie = fx.browser();
    asCookie.cookie = good;
    assert.equal((await asCookie.request("GET", "/api/v1/tokens")).statusCode, 401);
  });

  it("attack: a token is refused from the very millisecond it expires, and one minted at the last moment cannot outlive it (ASVS 7.4.1)", async () => {
    const owner = await user(["accounts.read"]);
    const expiresAt = fx.clock.now() + 60_000;
    const parent = await token(owner, ["accounts.read"], expiresAt);
    fx.clock.set(expiresAt - 1);
    assert.equal((await api("GET", "/api/v1/users?limit=1", parent)).statusCode, 200);
    const later = await api("POST", "/api/v1/tokens", parent, { name: "later", scopes: ["accounts.read"], expiresAt: expiresAt + 1 });
    assert.equal(later.statusCode, 403, later.body);
    const never = await api("POST", "/api/v1/tokens", parent, { name: "never", scopes: ["accounts.read"], expiresAt: null });
    assert.equal(never.statusCode, 403, never.body);
    const child = await api("POST", "/api/v1/tokens", parent, { name: "child", scopes: ["accounts.read"] });
    assert.equal(child.statusCode, 201, child.body);
    const childToken = child.json().token as string;
    assert.equal(child.json().info.expiresAt, new Date(expiresAt).toISOString());
    fx.clock.set(expiresAt);
    assert.equal((await api("GET", "/api/v1/users?limit=1", parent)).statusCode, 401, "the parent, at its expiry");
    assert.equal((await api("GET", "/api/v1/users?limit=1", childToken)).statusCode, 401, "the child, with its parent");
    assert.equal((await api("POST", "/api/v1/tokens", parent, { name: "late", scopes: ["accounts.read"] })).statusCode, 401);
  });

  it("attack: an expiresAt beyond what a date can hold is refused with 400, not stored to break the owner's token list (ASVS 2.2.1)", async () => {
    const owner = await user(["accounts.read"]);
    const b = await session(owner);
    // Past 8.64e15 ms `new Date()` is invalid: stored, such an expiry would make every view of the token (the answer,
    // GET /tokens, the owner's notice) throw. Today it is refused because the schema turns it into 16-digit text.
    for (const expiresAt of [8_640_000_000_000_001, Number.MAX_SAFE_INTEGER]) {
      const res = await b.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "far", scopes: ["accounts.read"], expiresAt } });
      assert.equal(res.statusCode, 400, `${expiresAt}: ${res.statusCode} ${res.body}`);
    }
    const list = await b.request("GET", "/api/v1/tokens");
    assert.equal(list.statusCode, 200, list.body);
    assert.deepEqual(list.json().tokens, []);
  });

  it("attack: the last usable administrator cannot be removed by deleting, or revoking, the custom role that carries admin (ASVS 8.2.2)", async () => {
    // Every administrator of this fixture but one is locked for the duration, so `sole` is the last usable one.
    const sole = await user([]);
    await fx.app.accounts.roles.create({ name: "superops", permissions: ["admin"] }, "test");
    await fx.app.accounts.roles.grant(sole, "superops", "test");
    const soleToken = await token(sole, ["admin"]);
    const others = (await fx.app.db.db.selectFrom("user_roles").innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
      .innerJoin("users", "users.id", "user_roles.user_id").where("role_permissions.permission", "=", "admin").where("users.locked_at", "is", null)
      .where("users.id", "!=", sole).select("users.id").distinct().execute()).map((r) => r.id);
    const now = fx.clock.now();
    await fx.app.db.db.updateTable("users").set({ locked_at: now, locked_reason: "red team" }).where("id", "in", others).execute();
    try {
      const del = await api("DELETE", "/api/v1/roles/superops", soleToken);
      assert.equal(del.statusCode, 409, del.body);
      assert.equal(code(del), "BULWARK_ERR_LAST_ADMIN");
      const revoke = await api("DELETE", `/api/v1/users/${sole}/roles/superops`, soleToken);
      assert.equal(revoke.statusCode, 409, revoke.body);
      const self = await api("POST", `/api/v1/users/${sole}/lock`, soleToken);
      assert.equal(self.statusCode, 409, self.body);
      assert.deepEqual(await fx.app.accounts.roles.rolesOf(sole), ["superops"]);
      assert.equal((await fx.app.accounts.users.getById(sole))?.lockedAt, null);
    } finally {
      await fx.app.db.db.updateTable("users").set({ locked_at: null, locked_reason: null }).where("id", "in", others).where("locked_reason", "=", "red team").execute();
    }
  });

  it("attack: a user id in another form (upper case, an email, padded) reaches no account, so no self-lock guard is sidestepped (ASVS 8.2.2)", async () => {
    const admin = await user([], "admin");
    const t = await token(admin, ["admin"]);
    const email = (await fx.app.accounts.users.getById(admin))?.email as string;
    for (const [id, status] of [[admin.toUpperCase(), 404], [encodeURIComponent(email), 400], [`${admin}%20`, 400], [`${admin}%00`, 400], [`${admin}_`, 404]] as const) {
      const res = await api("POST", `/api/v1/users/${id}/lock`, t);
      assert.equal(res.statusCode, status, `${id}: ${res.body}`);
    }
    assert.equal((await api("POST", `/api/v1/users/${admin}/lock`, t)).statusCode, 409);
    assert.equal((await fx.app.accounts.users.getById(admin))?.lockedAt, null);
  });

  it("attack: without accounts.read, GET /users/:id answers the same for a real and a made-up id (no existence oracle, ASVS 8.2.2)", async () => {
    const auditor = await token(await user(["audit.read"]), ["audit.read"]);
    const real = await api("GET", `/api/v1/users/${rootId}`, auditor);
    const fake = await api("GET", "/api/v1/users/usr_aaaaaaaaaaaaaaaaaaaaaaaaaa", auditor);
    assert.equal(real.statusCode, 403);
    assert.deepEqual(answer(real), answer(fake));
    const lockReal = await api("POST", `/api/v1/users/${rootId}/lock`, auditor);
    const lockFake = await api("POST", "/api/v1/users/usr_aaaaaaaaaaaaaaaaaaaaaaaaaa/lock", auditor);
    assert.deepEqual(answer(lockReal), answer(lockFake));
    const anonReal = await api("GET", `/api/v1/users/${rootId}`, null);
    assert.equal(anonReal.statusCode, 401);
    assert.deepEqual(answer(anonReal), answer(await api("GET", "/api/v1/users/usr_aaaaaaaaaaaaaaaaaaaaaaaaaa", null)));
  });

  it("attack: someone who knows a token's id (it is in the audit log) learns nothing of its state: unknown, wrong secret, revoked, expired or locked all answer alike (ASVS 8.3.1)", async () => {
    const owner = await user(["accounts.read"]);
    const revoked = await fx.app.accounts.tokens.create(owner, { name: "r", scopes: ["accounts.read"] });
    await fx.app.accounts.tokens.revoke(owner, revoked.info.id);
    const expiring = await token(owner, ["accounts.read"], fx.clock.now() + 1_000);
    const live = await token(owner, ["accounts.read"]);
    const lockedOwner = await user(["accounts.read"]);
    const ofLocked = await token(lockedOwner, ["accounts.read"]);
    assert.equal((await api("POST", `/api/v1/users/${lockedOwner}/lock`, rootToken)).statusCode, 200);
    fx.clock.advance(1_000);
    const wrongSecret = `${live.slice(0, -52)}${"a".repeat(52)}`;
    const unknown = `bwk_tok_${"b".repeat(26)}_${live.slice(-52)}`;
    const answers = [];
    for (const bad of [unknown, wrongSecret, revoked.token, expiring, ofLocked, "junk"]) answers.push(answer(await api("GET", "/api/v1/users?limit=1", bad)));
    assert.equal(answers[0]?.[0], 401);
    for (const other of answers.slice(1)) assert.deepEqual(other, answers[0]);
    assert.equal((await api("GET", "/api/v1/users?limit=1", live)).statusCode, 200);
  });

  it("attack: HEAD requests pass through the same guard as GET (ASVS 8.1.1)", async () => {
    const auditor = await token(await user(["audit.read"]), ["audit.read"]);
    for (const url of ["/api/v1/users", `/api/v1/users/${rootId}`, "/api/v1/roles", "/api/v1/contain/jobs"]) {
      assert.equal((await api("HEAD", url, null)).statusCode, 401, `anonymous HEAD ${url}`);
      assert.equal((await api("HEAD", url, auditor)).statusCode, 403, `audit.read HEAD ${url}`);
    }
    assert.equal((await api("HEAD", "/api/v1/audit/events", auditor)).statusCode, 200);
  });

  it("attack: quotes, backslashes and comment markers in search and filter text are data, not SQL (ASVS 1.2.4)", async () => {
    const reader = await token(await user(["accounts.read", "audit.read"]), ["accounts.read", "audit.read"]);
    for (const q of ["' OR '1'='1", "\\", "\\%", "x' --", "\") OR 1=1 --", "*"]) {
      const res = await api("GET", `/api/v1/users?q=${encodeURIComponent(q)}`, reader);
      assert.equal(res.statusCode, 200, `${q}: ${res.body}`);
      assert.deepEqual(res.json().users, [], q);
    }
    const events = await api("GET", `/api/v1/audit/events?type=${encodeURIComponent("x' OR '1'='1")}`, reader);
    assert.equal(events.statusCode, 200, events.body);
    assert.deepEqual(events.json().events, []);
  });

  it("attack: an audit.read token reads the log but finds no credential in it: no token text, secret, password or session cookie (ASVS 16.2.5)", async () => {
    const admin = await session(rootId);
    const minted = await admin.request("POST", "/api/v1/tokens", { csrf: true, body: { name: "ci", scopes: ["accounts.read"] } });
    assert.equal(minted.statusCode, 201, minted.body);
    const secretToken = minted.json().token as string;
    const initial = "a temporary passphrase for bob 7";
    const created = await admin.request("POST", "/api/v1/users", { csrf: true, body: { email: `bob${++n}@example.org`, password: initial } });
    assert.equal(created.statusCode, 201, created.body);
    const victim = await fx.user(`carol${++n}@example.org`);
    const guess = "carols wrong guess 12345 xyz";
    await fx.browser().login(victim.email, guess);
    const auditor = await token(await user(["audit.read"]), ["audit.read"]);
    let body = "";
    let cursor: string | null = null;
    do {
      const res = await api("GET", `/api/v1/audit/events?limit=200${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`, auditor);
      assert.equal(res.statusCode, 200, res.body);
      body += res.body;
      cursor = res.json().nextCursor as string | null;
    } while (cursor);
    assert.ok(body.includes("api.token.created"), "the mint is audited");
    for (const [what, secret] of [["token", secretToken], ["token secret", secretToken.slice(-52)], ["initial password", initial], ["guessed password", guess], ["session cookie", admin.cookie as string], ["root token secret", rootToken.slice(-52)]]) {
      assert.equal(body.includes(secret as string), false, `${what} appears in the audit log`);
    }
  });
});
