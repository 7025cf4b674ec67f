// API token service behaviour on SQLite and PostgreSQL: create, verify, list, revoke, the last-use throttle,
// scope validation, stamps and account state.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { raiseStamp } from "../sessions/revocation.ts";
import { tokenUserScope, TOKENS_GLOBAL_SCOPE } from "./index.ts";
import { setup } from "./test-setup.ts";

const MINUTE = 60_000;

forEachDialect("API tokens", (fx) => {
  it("creates a bwk_ token with a 256-bit secret that verifies with its scopes, and stores only a hash", async () => {
    const database = await fx.fresh();
    const { users, tokens } = await setup(database);
    const user = await users.create({ email: "ops@example.org" });
    const { token, info } = await tokens.create(user.id, { name: "  backup script ", scopes: ["audit.read", "checks.run", "audit.read"] });
    assert.match(token, /^bwk_tok_[a-z2-7]{26}_[a-z2-7]{52}$/, "prefix, id and 52 base32 characters (260 bits of text for 256 random bits)");
    assert.equal(info.name, "backup script");
    assert.deepEqual(info.scopes, ["audit.read", "checks.run"], "duplicates removed, order kept");
    assert.equal(info.expiresAt, null);
    const row = await database.db.selectFrom("api_tokens").selectAll().executeTakeFirstOrThrow();
    assert.equal(row.id, info.id);
    assert.match(row.secret_hash, /^[0-9a-f]{64}$/);
    assert.ok(!token.includes(row.secret_hash) && !row.secret_hash.includes(token.slice(-52)), "the secret itself is not stored");
    assert.deepEqual(await tokens.verify(token, "192.0.2.10"), { valid: true, tokenId: info.id, userId: user.id, scopes: ["audit.read", "checks.run"], expiresAt: null, ownerHasMFA: false });
  });

  it("says whether the owner holds a second factor now: a confirmed app or a passkey, not an unconfirmed app nor recovery codes alone", async () => {
    const database = await fx.fresh();
    const { clock, users, tokens } = await setup(database);
    const user = await users.create({ email: "factors@example.org" });
    const { token } = await tokens.create(user.id, { name: "ci", scopes: ["accounts.read"] });
    const now = clock.now();
    const ownerHasMFA = async (): Promise<boolean> => {
      const verdict = await tokens.verify(token);
      assert.ok(verdict.valid);
      return verdict.ownerHasMFA;
    };
    const db = database.db;
    await db.insertInto("mfa_recovery_codes").values({ id: "rc_1", user_id: user.id, code_hash: "0".repeat(64), created_at: now, used_at: null }).execute();
    await db.insertInto("mfa_totp").values({ user_id: user.id, secret_ct: "sealed", created_at: now, confirmed_at: null, last_step: null }).execute();
    assert.equal(await ownerHasMFA(), false, "an app waiting for its first code and recovery codes are no factor");
    await db.updateTable("mfa_totp").set({ confirmed_at: now }).where("user_id", "=", user.id).execute();
    assert.equal(await ownerHasMFA(), true, "a confirmed app");
    await db.deleteFrom("mfa_totp").where("user_id", "=", user.id).execute();
    await db.insertInto("webauthn_credentials").values({ id: "cred-1", user_id: user.id, public_key: "pk", counter: 0, transports: "[]", created_at: now, last_used_at: null, name: "key" }).execute();
    assert.equal(await ownerHasMFA(), true, "a passkey");
    const other = await users.create({ email: "other@example.org" });
    const theirs = await tokens.verify((await tokens.create(other.id, { name: "ci", scopes: ["accounts.read"] })).token);
    assert.ok(theirs.valid && !theirs.ownerHasMFA, "another account's factors count for nobody else");
  });

  it("two tokens never share an id or a secret", async () => {
    const { users, tokens } = await setup(await fx.fresh());
    const user = await users.create({ email: "two@example.org" });
    const a = await tokens.create(user.id, { name: "a", scopes: ["accounts.read"] });
    const b = await tokens.create(user.id, { name: "b", scopes: ["accounts.read"] });
    assert.notEqual(a.info.id, b.info.id);
    assert.notEqual(a.token.slice(-52), b.token.slice(-52));
  });

  it("refuses unknown scopes, empty scopes, bad names and expiries in the past with clear input errors", async () => {
    const { clock, users, tokens } = await setup(await fx.fresh());
    const user = await users.create({ email: "input@example.org" });
    await assert.rejects(tokens.create(user.id, { name: "x", scopes: ["accounts.read", "root"] }), (e: Error & { code?: string; kind?: string }) =>
      e.code === "BULWARK_ERR_TOKEN_SCOPE" && e.kind === "input" && /unknown scope "root"/.test(e.message) && /accounts\.read/.test(e.message));
    await assert.rejects(tokens.create(user.id, { name: "x", scopes: [] }), { code: "BULWARK_ERR_TOKEN_INPUT", message: /at least one scope/ });
    await assert.rejects(tokens.create(user.id, { name: "   ", scopes: ["admin"] }), { code: "BULWARK_ERR_TOKEN_INPUT", message: /name is empty/ });
    await assert.rejects(tokens.create(user.id, { name: "a".repeat(101), scopes: ["admin"] }), { message: /longer than 100/ });
    await assert.rejects(tokens.create(user.id, { name: "bell\u0007", scopes: ["admin"] }), { message: /control/ });
    await assert.rejects(tokens.create(user.id, { name: "x", scopes: ["admin"], expiresAt: clock.now() }), { message: /in the past/ });
    await assert.rejects(tokens.create(user.id, { name: "x", scopes: ["admin"], expiresAt: 1.5 }), { message: /integer milliseconds/ });
    await assert.rejects(tokens.create("usr_nobody", { name: "x", scopes: ["admin"] }), { code: "BULWARK_ERR_TOKEN_USER" });
    assert.deepEqual(await tokens.list(user.id), [], "nothing was stored by refused input");
    // Characters are counted as the API's schema counts them (code points), not in UTF-16 units.
    await assert.rejects(tokens.create(user.id, { name: "🔑".repeat(101), scopes: ["admin"] }), { message: /longer than 100/ });
    const emoji = await tokens.create(user.id, { name: "🔑".repeat(100), scopes: ["admin"] });
    assert.equal(emoji.info.name, "🔑".repeat(100), "100 characters of two UTF-16 units each are 100 characters");
  });

  it("lists a user's tokens newest first without secrets, and only theirs", async () => {
    const { clock, users, tokens } = await setup(await fx.fresh());
    const alice = await users.create({ email: "alice@example.org" });
    const bob = await users.create({ email: "bob@example.org" });
    const first = await tokens.create(alice.id, { name: "first", scopes: ["accounts.read"] });
    clock.advance(MINUTE);
    const second = await tokens.create(alice.id, { name: "second", scopes: ["accounts.write"], expiresAt: clock.now() + 60 * MINUTE });
    await tokens.create(bob.id, { name: "bob's", scopes: ["admin"] });
    const list = await tokens.list(alice.id);
    assert.deepEqual(list.map((t) => t.name), ["second", "first"]);
    assert.equal(list[0]!.expiresAt, clock.now() + 60 * MINUTE);
    assert.deepEqual(Object.keys(list[0]!).sort(), ["createdAt", "expiresAt", "id", "lastUsedAt", "lastUsedIp", "name", "revokedAt", "scopes"]);
    assert.ok(!JSON.stringify(list).includes(first.token.slice(-52)) && !JSON.stringify(list).includes(second.token.slice(-52)));
  });

  it("records last use and IP at most once a minute", async () => {
    const { clock, users, tokens } = await setup(await fx.fresh());
    const user = await users.create({ email: "touch@example.org" });
    const { token, info } = await tokens.create(user.id, { name: "cron", scopes: ["checks.run"] });
    const t0 = clock.now();
    assert.equal((await tokens.verify(token, "192.0.2.1")).valid, true);
    clock.advance(30_000);
    assert.equal((await tokens.verify(token, "192.0.2.2")).valid, true);
    let seen = (await tokens.list(user.id)).find((t) => t.id === info.id)!;
    assert.equal(seen.lastUsedAt, t0, "second use inside the minute is not written");
    assert.equal(seen.lastUsedIp, "192.0.2.1");
    clock.advance(30_000);
    assert.equal((await tokens.verify(token, "198.51.100.7\n")).valid, true);
    seen = (await tokens.list(user.id)).find((t) => t.id === info.id)!;
    assert.equal(seen.lastUsedAt, t0 + MINUTE);
    assert.equal(seen.lastUsedIp, "198.51.100.7", "control characters stripped");
  });

  it("revokes one token of its owner only, and all tokens of a user", async () => {
    const { users, tokens } = await setup(await fx.fresh());
    const alice = await users.create({ email: "a@example.org" });
    const mallory = await users.create({ email: "m@example.org" });
    const a1 = await tokens.create(alice.id, { name: "1", scopes: ["accounts.read"] });
    const a2 = await tokens.create(alice.id, { name: "2", scopes: ["accounts.read"] });
    const a3 = await tokens.create(alice.id, { name: "3", scopes: ["accounts.read"] });
    const m1 = await tokens.create(mallory.id, { name: "m", scopes: ["accounts.read"] });
    assert.equal(await tokens.revoke(mallory.id, a1.info.id), false, "another user cannot revoke alice's token");
    assert.equal((await tokens.verify(a1.token)).valid, true);
    assert.equal(await tokens.revoke(alice.id, a1.info.id), true);
    assert.equal(await tokens.revoke(alice.id, a1.info.id), false, "already revoked");
    assert.equal(await tokens.revokeAllForUser(alice.id), 2);
    for (const t of [a1, a2, a3]) assert.deepEqual(await tokens.verify(t.token), { valid: false, reason: "revoked" });
    assert.equal((await tokens.verify(m1.token)).valid, true, "other users' tokens are untouched");
    assert.ok((await tokens.list(alice.id)).every((t) => t.revokedAt !== null));
  });

  it("a user stamp revokes that user's older tokens only; list shows them revoked; newer tokens work", async () => {
    const database = await fx.fresh();
    const { clock, users, tokens } = await setup(database);
    const alice = await users.create({ email: "stamp-a@example.org" });
    const bob = await users.create({ email: "stamp-b@example.org" });
    const old = await tokens.create(alice.id, { name: "old", scopes: ["admin"] });
    const bobs = await tokens.create(bob.id, { name: "bob", scopes: ["admin"] });
    clock.advance(1000);
    const stamp = await raiseStamp(database.db, tokenUserScope(alice.id), clock.now(), clock.now());
    clock.advance(1000);
    const fresh = await tokens.create(alice.id, { name: "fresh", scopes: ["admin"] });
    assert.deepEqual(await tokens.verify(old.token), { valid: false, reason: "revoked" });
    assert.equal((await tokens.verify(fresh.token)).valid, true);
    assert.equal((await tokens.verify(bobs.token)).valid, true);
    const list = await tokens.list(alice.id);
    assert.equal(list.find((t) => t.id === old.info.id)!.revokedAt, stamp);
    assert.equal(list.find((t) => t.id === fresh.info.id)!.revokedAt, null);
    assert.equal(TOKENS_GLOBAL_SCOPE, "tokens:global");
    assert.equal(tokenUserScope("usr_x"), "tokens:user:usr_x");
  });

  it("refuses the tokens of a disabled or locked account, and accepts them again when the account is restored", async () => {
    const database = await fx.fresh();
    const { users, tokens } = await setup(database);
    const user = await users.create({ email: "locked@example.org" });
    const { token } = await tokens.create(user.id, { name: "t", scopes: ["accounts.read"] });
    await database.db.updateTable("users").set({ status: "disabled" }).where("id", "=", user.id).execute();
    assert.deepEqual(await tokens.verify(token), { valid: false, reason: "account-disabled" });
    await database.db.updateTable("users").set({ status: "active", locked_at: 1, locked_reason: "containment" }).where("id", "=", user.id).execute();
    assert.deepEqual(await tokens.verify(token), { valid: false, reason: "account-disabled" });
    await database.db.updateTable("users").set({ locked_at: null, locked_reason: null }).where("id", "=", user.id).execute();
    assert.equal((await tokens.verify(token)).valid, true);
  });

  it("a deleted user's tokens go with them", async () => {
    const database = await fx.fresh();
    const { users, tokens } = await setup(database);
    const user = await users.create({ email: "gone@example.org" });
    const { token } = await tokens.create(user.id, { name: "t", scopes: ["accounts.read"] });
    await database.db.deleteFrom("users").where("id", "=", user.id).execute();
    assert.deepEqual(await tokens.verify(token), { valid: false, reason: "unknown" });
  });
});
