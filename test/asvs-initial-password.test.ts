// ASVS 6.4.1: a system-generated initial password, or one an administrator chose for another user, never becomes
// the long-term password. `users create --generate-password` and `POST /api/v1/users` with a password mark the
// account "must change password": the password signs in once and the session is held at the password-change
// gate until the owner picks their own; then the new password works and the initial one does not.
// A password the operator types on stdin for themselves (the bootstrap administrator) is their choice and stays.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { openApp } from "../src/app/index.ts";
import { authFixture, Browser, GOOD_PASSWORD, ORIGIN } from "../src/http/auth/test-client.ts";
import { buildServer } from "../src/http/server.ts";
import { bulwark } from "./helpers/cli.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

const NEW_PASSWORD = "a quiet harbour full of kites";

/**
 * The first sign-in with an initial password: it works, but only the password change is reachable; after the
 * change the new password opens a normal session and the initial one is refused.
 */
async function firstSignIn(server: FastifyInstance, email: string, initial: string): Promise<void> {
  const b = new Browser(server);
  const login = await b.login(email, initial);
  assert.equal(login.statusCode, 200, login.body);
  assert.equal(login.json().mustChangePassword, true);
  const held = await b.request("GET", "/auth/sessions");
  assert.equal(held.statusCode, 403);
  assert.equal(held.json().error.code, "BULWARK_ERR_PASSWORD_CHANGE_REQUIRED");
  const api = await b.request("GET", "/api/v1/tokens");
  assert.equal(api.statusCode, 403);
  assert.equal(api.json().error.code, "BULWARK_ERR_API_SIGN_IN_INCOMPLETE");
  assert.match(api.json().error.message, /change your password/);
  assert.equal((await b.request("GET", "/auth/session")).json().mustChangePassword, true);
  const change = await b.request("POST", "/auth/password/change", { csrf: true, body: { currentPassword: initial, newPassword: NEW_PASSWORD } });
  assert.equal(change.statusCode, 200, change.body);
  assert.equal((await b.request("GET", "/auth/sessions")).statusCode, 200, "the session opens once the password is the owner's");

  const next = new Browser(server);
  const again = await next.login(email, NEW_PASSWORD);
  assert.equal(again.statusCode, 200, again.body);
  assert.equal(again.json().mustChangePassword, false);
  assert.equal((await next.request("GET", "/api/v1/tokens")).statusCode, 200);
  const old = await new Browser(server).login(email, initial);
  assert.equal(old.statusCode, 401, "the initial password no longer signs in");
}

describe("initial passwords must be changed at first sign-in (ASVS 6.4.1)", () => {
  it("a generated password from users create --generate-password signs in once, held at the password-change gate; a typed one is kept", async () => {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-initial-"));
    const env = { BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_PUBLIC_URL: ORIGIN };
    try {
      assert.equal((await bulwark(["init"], { env })).code, 0);
      const gen = await bulwark(["users", "create", "--email", "ops@example.org", "--generate-password", "--json"], { env });
      assert.equal(gen.code, 0, gen.stderr);
      const created = JSON.parse(gen.stdout) as { password: string; mustChangePassword: boolean };
      assert.equal(created.mustChangePassword, true);
      const typed = await bulwark(["users", "create", "--email", "root@example.org", "--json"], { env, input: `${GOOD_PASSWORD}\n` });
      assert.equal(typed.code, 0, typed.stderr);
      assert.equal(JSON.parse(typed.stdout).mustChangePassword, false, "the operator's own password is not forced to change");

      const app = await openApp({ env: { ...env, BULWARK_LOG_LEVEL: "silent" }, mode: "open" });
      try {
        const server = await buildServer(app);
        try {
          await firstSignIn(server, "ops@example.org", created.password);
          const root = await new Browser(server).login("root@example.org", GOOD_PASSWORD);
          assert.equal(root.json().mustChangePassword, false);
          // The audit trail says the account was created with a password that must change.
          const events = await app.db.db.selectFrom("audit_events").select(["subject", "data"]).where("type", "=", "user.created").orderBy("seq").execute();
          assert.deepEqual(events.map((e) => JSON.parse(e.data).mustChangePassword), [true, false]);
        } finally {
          await server.close();
        }
      } finally {
        await app.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a password an administrator sets in POST /api/v1/users signs in once, held at the password-change gate", async () => {
    const fx = await authFixture();
    try {
      const admin = await fx.user("admin@example.org", { roles: ["admin"] });
      await ensureSecondFactor(fx.app, admin.id); // the MFA policy holds an administrator's token while it has no factor
      const { token } = await fx.app.accounts.tokens.create(admin.id, { name: "provisioning", scopes: ["accounts.write"] });
      const res = await fx.server.inject({
        method: "POST", url: "/api/v1/users", headers: { authorization: `Bearer ${token}` },
        payload: { email: "newhire@example.org", password: "the administrator picked this one" },
      });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().user.passwordMustChange, true);
      // Without a password nothing is set: the owner chooses one through a reset link (no flag needed).
      const bare = await fx.server.inject({ method: "POST", url: "/api/v1/users", headers: { authorization: `Bearer ${token}` }, payload: { email: "linkonly@example.org" } });
      assert.equal(bare.statusCode, 201, bare.body);
      assert.equal(bare.json().user.passwordMustChange, false);
      assert.equal(bare.json().user.hasPassword, false);
      await firstSignIn(fx.server, "newhire@example.org", "the administrator picked this one");
    } finally {
      await fx.close();
    }
  });
});
