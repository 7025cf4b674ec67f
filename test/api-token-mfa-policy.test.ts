// ASVS 6.3.3: an API token is held like its owner's session by the MFA policy in force (BULWARK_REQUIRE_MFA). A token
// whose owner the policy requires a second factor of, and who holds none, acts for nobody, on /api/v1 and /auth alike:
// 403 BULWARK_ERR_TOKEN_OWNER_MFA_REQUIRED, naming the way out, until the owner enrols a factor or the token is revoked.
// Owners with a factor, and owners the policy does not count, are served as before. The policy raised under a token
// already out: test/tightened-config-red-team.test.ts. See docs/http-auth.md, "API tokens and the MFA policy".
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { LightMyRequestResponse } from "fastify";
import { PERMISSIONS } from "../src/accounts/roles/index.ts";
import { authFixture, HOST, totpCode, type AuthFixture } from "../src/http/auth/test-client.ts";
import { auditHead, eventsSince } from "./helpers/audit-events.ts";

const HELD = "BULWARK_ERR_TOKEN_OWNER_MFA_REQUIRED";

/** A request with `token` as its bearer credential (a JSON body when `payload` is given). */
function bearer(fx: AuthFixture, token: string, method: "GET" | "POST", url: string, payload?: object): Promise<LightMyRequestResponse> {
  return fx.server.inject({
    method, url,
    headers: { host: HOST, authorization: `Bearer ${token}`, ...(payload ? { "content-type": "application/json" } : {}) },
    ...(payload ? { payload: JSON.stringify(payload) } : {}),
  });
}

const codeOf = (res: LightMyRequestResponse): string | undefined => (res.json() as { error?: { code: string } }).error?.code;

/** Confirms an authenticator app for `userId` through the MFA service, as a finished enrolment leaves it. */
async function enrolTOTP(fx: AuthFixture, user: { id: string; email: string }): Promise<void> {
  const { secret } = await fx.app.accounts.mfa.totp.begin(user.id, user.email);
  assert.equal(await fx.app.accounts.mfa.totp.confirm(user.id, totpCode(secret, fx.clock.now())), true);
}

describe("API tokens under BULWARK_REQUIRE_MFA (ASVS 6.3.3)", () => {
  it("attack: an administrator's token with no factor behind it changes nothing and reads nothing under the default policy, told why and recorded; once the owner enrols a factor it is served", async () => {
    const fx = await authFixture();
    try {
      assert.equal(fx.app.config.requireMFA, "administrative");
      const admin = await fx.user("token-admin@example.org", { roles: ["admin"] });
      const victim = await fx.user("token-victim@example.org");
      const { token } = await fx.app.accounts.tokens.create(admin.id, { name: "automation", scopes: [...PERMISSIONS] });
      const mark = await auditHead(fx.app.db.db);
      const listed = await bearer(fx, token, "GET", "/api/v1/users");
      assert.equal(listed.statusCode, 403, listed.body);
      assert.equal(codeOf(listed), HELD);
      const message = (listed.json() as { error: { message: string } }).error.message;
      for (const words of ["BULWARK_REQUIRE_MFA", "second factor", "/auth/mfa", "revoke"]) assert.ok(message.includes(words), `the refusal says ${words}: ${message}`);
      const locked = await bearer(fx, token, "POST", `/api/v1/users/${victim.id}/lock`, {});
      assert.equal(locked.statusCode, 403, locked.body);
      assert.equal(codeOf(locked), HELD);
      const minted = await bearer(fx, token, "POST", "/api/v1/tokens", { name: "spare", scopes: ["admin"] });
      assert.equal(minted.statusCode, 403, "no spare token to outlast the hold");
      const row = await fx.app.db.db.selectFrom("users").select("locked_at").where("id", "=", victim.id).executeTakeFirstOrThrow();
      assert.equal(row.locked_at, null, "nothing changed");
      assert.equal((await fx.app.accounts.tokens.list(admin.id)).length, 1, "nothing minted");
      // The /auth routes' guard holds it as well (before a route says it wants a browser session).
      const sessions = await bearer(fx, token, "GET", "/auth/sessions");
      assert.equal(sessions.statusCode, 403, sessions.body);
      assert.equal(codeOf(sessions), HELD);
      // GET /auth/session (public) tells the script why: held at enrolment, as the owner's session would be.
      const session = await bearer(fx, token, "GET", "/auth/session");
      assert.equal(session.statusCode, 200, session.body);
      assert.equal((session.json() as { mfaEnrolmentRequired?: boolean }).mfaEnrolmentRequired, true, session.body);
      const refused = await eventsSince(fx.app.db.db, mark, ["api.refused"]);
      assert.ok(refused.some((e) => e.actor === admin.id && e.data["code"] === HELD && e.data["auth"] === "token"), `the refusals are recorded against the account: ${JSON.stringify(refused.map((e) => e.data))}`);

      await enrolTOTP(fx, admin);
      const after = await bearer(fx, token, "GET", "/api/v1/users");
      assert.equal(after.statusCode, 200, `with a factor enrolled the token is served again: ${after.body}`);
      assert.equal((((await bearer(fx, token, "GET", "/auth/session")).json()) as { mfaEnrolmentRequired?: boolean }).mfaEnrolmentRequired, false);
    } finally {
      await fx.close();
    }
  });

  it("serves the tokens of owners the policy does not hold: a plain user under administrative, an administrator with a factor, anyone under none", async () => {
    const fx = await authFixture();
    try {
      const reader = await fx.user("token-reader@example.org", { roles: ["auditor"] });
      const readerToken = (await fx.app.accounts.tokens.create(reader.id, { name: "report", scopes: ["audit.read"] })).token;
      const read = await bearer(fx, readerToken, "GET", "/api/v1/audit/events");
      assert.equal(read.statusCode, 200, `a user without an administrative permission needs no factor: ${read.body}`);
      const admin = await fx.user("token-admin-mfa@example.org", { roles: ["admin"] });
      await enrolTOTP(fx, admin);
      const adminToken = (await fx.app.accounts.tokens.create(admin.id, { name: "ci", scopes: ["admin"] })).token;
      assert.equal((await bearer(fx, adminToken, "GET", "/api/v1/users")).statusCode, 200, "an administrator with a factor");
    } finally {
      await fx.close();
    }
    const loose = await authFixture({ BULWARK_REQUIRE_MFA: "none" });
    try {
      const admin = await loose.user("token-admin-none@example.org", { roles: ["admin"] });
      const token = (await loose.app.accounts.tokens.create(admin.id, { name: "drill", scopes: ["admin"] })).token;
      assert.equal((await bearer(loose, token, "GET", "/api/v1/users")).statusCode, 200, "none holds nobody");
    } finally {
      await loose.close();
    }
  });

  it("a passkey suspended as cloned still counts as the owner's factor until it is removed, as at sign-in: the token is served, then held once the passkey is gone", async () => {
    const fx = await authFixture();
    try {
      const admin = await fx.user("token-admin-cloned@example.org", { roles: ["admin"] });
      const now = fx.clock.now();
      // The account's only factor, suspended when a copy of it was caught (src/accounts/mfa/webauthn.ts).
      await fx.app.db.db.insertInto("webauthn_credentials").values({ id: "cred-cloned", user_id: admin.id, public_key: "pk", counter: 7, transports: "[]", created_at: now, last_used_at: now, name: "key", suspended_at: now }).execute();
      const { token } = await fx.app.accounts.tokens.create(admin.id, { name: "ci", scopes: ["admin"] });
      // Sign-in still asks this account for a second factor: a suspension never leaves it behind the password alone.
      assert.equal(await fx.app.accounts.mfa.hasMfa(admin.id), true);
      assert.equal((await bearer(fx, token, "GET", "/api/v1/users")).statusCode, 200, "held as the sign-in is: by the factor it still counts");
      await fx.app.db.db.deleteFrom("webauthn_credentials").where("id", "=", "cred-cloned").execute();
      const held = await bearer(fx, token, "GET", "/api/v1/users");
      assert.equal(held.statusCode, 403, held.body);
      assert.equal(codeOf(held), HELD);
    } finally {
      await fx.close();
    }
  });

  it("under all, a plain user's token with no factor is held too, and served once the owner enrols one", async () => {
    const fx = await authFixture({ BULWARK_REQUIRE_MFA: "all" });
    try {
      const reader = await fx.user("token-all@example.org", { roles: ["auditor"] });
      const token = (await fx.app.accounts.tokens.create(reader.id, { name: "report", scopes: ["audit.read"] })).token;
      const held = await bearer(fx, token, "GET", "/api/v1/audit/events");
      assert.equal(held.statusCode, 403, held.body);
      assert.equal(codeOf(held), HELD);
      await enrolTOTP(fx, reader);
      assert.equal((await bearer(fx, token, "GET", "/api/v1/audit/events")).statusCode, 200);
    } finally {
      await fx.close();
    }
  });
});
