// `bulwark users create` and `bulwark roles …` end to end.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { bulwark } from "./helpers/cli.ts";

let dir: string;
const env = (): NodeJS.ProcessEnv => ({ BULWARK_DATA_DIR: join(dir, "data"), BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1" });
before(async () => {
  dir = mkdtempSync(join(tmpdir(), "bulwark-users-"));
  assert.equal((await bulwark(["init"], { env: env() })).code, 0);
});
after(() => rmSync(dir, { recursive: true, force: true }));

describe("users create", () => {
  it("bootstraps an administrator with a password from stdin", async () => {
    const r = await bulwark(["users", "create", "--email", "root@example.org", "--role", "admin", "--json"], { env: env(), input: "a long and unusual passphrase 42\n" });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.match(out.id, /^usr_[a-z2-7]{26}$/);
    assert.deepEqual(out.roles, ["admin"]);
    assert.equal(out.password, undefined, "a password from stdin is never printed");
    assert.equal(out.mustChangePassword, false, "the operator's own password is kept (ASVS 6.4.1: not system-generated)");
    const verify = await bulwark(["hash", "verify", "x"], { env: env() });
    assert.equal(verify.code, 2);
  });

  it("prints a generated password once and refuses weak or duplicate input with exit 2", async () => {
    const gen = await bulwark(["users", "create", "--email", "ops@example.org", "--generate-password", "--json"], { env: env() });
    assert.equal(gen.code, 0, gen.stderr);
    assert.match(JSON.parse(gen.stdout).password, /^[a-z2-7]{32}$/);
    assert.equal(JSON.parse(gen.stdout).mustChangePassword, true, "ASVS 6.4.1: a generated password is for the first sign-in only");
    const weak = await bulwark(["users", "create", "--email", "weak@example.org"], { env: env(), input: "password\n" });
    assert.equal(weak.code, 2);
    assert.match(weak.stderr, /refused/);
    const context = await bulwark(["users", "create", "--email", "jonathan.appleseed@example.org"], { env: env(), input: "appleseed-appleseed-appleseed\n" });
    assert.equal(context.code, 2, "a password made of the email's words is refused");
    const dup = await bulwark(["users", "create", "--email", "ROOT@example.org", "--generate-password"], { env: env() });
    assert.equal(dup.code, 2);
    assert.match(dup.stderr, /already exists/);
    const badRole = await bulwark(["users", "create", "--email", "x@example.org", "--role", "superuser", "--generate-password"], { env: env() });
    assert.equal(badRole.code, 2);
    assert.match(badRole.stderr, /no role named "superuser"/);
  });
});

describe("roles", () => {
  it("lists, creates, grants and revokes", async () => {
    const list = await bulwark(["roles", "list", "--json"], { env: env() });
    assert.deepEqual(JSON.parse(list.stdout).map((r: { name: string }) => r.name), ["admin", "auditor", "responder"]);
    assert.equal((await bulwark(["roles", "create", "ops", "--permission", "contain.run"], { env: env() })).code, 0);
    const grant = await bulwark(["roles", "grant", "ops@example.org", "ops"], { env: env() });
    assert.equal(grant.code, 0, grant.stderr);
    assert.match(grant.stdout, /granted ops/);
    assert.match((await bulwark(["roles", "revoke", "ops@example.org", "ops"], { env: env() })).stdout, /revoked/);
    assert.equal((await bulwark(["roles", "delete", "admin"], { env: env() })).code, 2);
    assert.equal((await bulwark(["roles", "grant", "nobody@example.org", "ops"], { env: env() })).code, 2);
  });
});
