// Attacks on API tokens that must fail, on SQLite and PostgreSQL: a tampered secret, a valid secret grafted
// onto another id, a revoked or expired token, a token older than a revocation stamp, a database row
// replayed as a token, junk that must be refused before any lookup, and a name the database would silently alter.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { raiseStamp } from "../sessions/revocation.ts";
import { tokenUserScope, TOKENS_GLOBAL_SCOPE } from "./index.ts";
import { setup } from "./test-setup.ts";

const HOUR = 3_600_000;

/** Changes the character at `at` to another character of the base32 alphabet. */
function flip(text: string, at: number): string {
  const c = text[at] === "a" ? "b" : "a";
  return text.slice(0, at) + c + text.slice(at + 1);
}

forEachDialect("API token attacks", (fx) => {
  it("a tampered token (one character of the secret changed, anywhere) is refused", async () => {
    // ASVS 11.2.4: the hash comparison is constant-time; here we prove every position matters.
    const { users, tokens } = await setup(await fx.fresh());
    const user = await users.create({ email: "tamper@example.org" });
    const { token } = await tokens.create(user.id, { name: "t", scopes: ["admin"] });
    for (const at of [token.length - 52, token.length - 26, token.length - 1]) {
      assert.deepEqual(await tokens.verify(flip(token, at)), { valid: false, reason: "mismatch" }, `position ${at}`);
    }
    assert.equal((await tokens.verify(token)).valid, true, "the genuine token still works");
  });

  it("a valid secret grafted onto another token's id is refused", async () => {
    const { users, tokens } = await setup(await fx.fresh());
    const attacker = await users.create({ email: "attacker@example.org" });
    const victim = await users.create({ email: "victim@example.org" });
    const mine = await tokens.create(attacker.id, { name: "mine", scopes: ["accounts.read"] });
    const theirs = await tokens.create(victim.id, { name: "admin", scopes: ["admin"] });
    const grafted = `bwk_${theirs.info.id}_${mine.token.slice(-52)}`;
    assert.deepEqual(await tokens.verify(grafted), { valid: false, reason: "mismatch" });
  });

  it("a revoked token is refused, also after time passes", async () => {
    const { clock, users, tokens } = await setup(await fx.fresh());
    const user = await users.create({ email: "revoked@example.org" });
    const { token, info } = await tokens.create(user.id, { name: "t", scopes: ["admin"] });
    assert.equal(await tokens.revoke(user.id, info.id), true);
    assert.deepEqual(await tokens.verify(token), { valid: false, reason: "revoked" });
    clock.advance(365 * 24 * HOUR);
    assert.deepEqual(await tokens.verify(token), { valid: false, reason: "revoked" });
  });

  it("an expired token is refused from its expiry instant on", async () => {
    const { clock, users, tokens } = await setup(await fx.fresh());
    const user = await users.create({ email: "expired@example.org" });
    const { token } = await tokens.create(user.id, { name: "t", scopes: ["admin"], expiresAt: clock.now() + HOUR });
    clock.advance(HOUR - 1);
    assert.equal((await tokens.verify(token)).valid, true);
    clock.advance(1);
    assert.deepEqual(await tokens.verify(token), { valid: false, reason: "expired" });
  });

  it("a token created before the global stamp is revoked (the revoke-all-tokens lever), a later one is not", async () => {
    const database = await fx.fresh();
    const { clock, users, tokens } = await setup(database);
    const a = await users.create({ email: "g1@example.org" });
    const b = await users.create({ email: "g2@example.org" });
    const ta = await tokens.create(a.id, { name: "a", scopes: ["admin"] });
    const tb = await tokens.create(b.id, { name: "b", scopes: ["admin"] });
    clock.advance(10);
    await raiseStamp(database.db, TOKENS_GLOBAL_SCOPE, clock.now(), clock.now());
    assert.deepEqual(await tokens.verify(ta.token), { valid: false, reason: "revoked" });
    assert.deepEqual(await tokens.verify(tb.token), { valid: false, reason: "revoked" });
    clock.advance(10);
    const after = await tokens.create(a.id, { name: "after", scopes: ["admin"] });
    assert.equal((await tokens.verify(after.token)).valid, true);
    // A stamp never moves backwards: a later, older stamp cannot resurrect the revoked tokens.
    await raiseStamp(database.db, TOKENS_GLOBAL_SCOPE, 0, clock.now());
    assert.deepEqual(await tokens.verify(ta.token), { valid: false, reason: "revoked" });
  });

  it("a token created before its user's stamp is revoked even though its row says live", async () => {
    const database = await fx.fresh();
    const { clock, users, tokens } = await setup(database);
    const user = await users.create({ email: "ustamp@example.org" });
    const { token } = await tokens.create(user.id, { name: "t", scopes: ["admin"] });
    clock.advance(1);
    await raiseStamp(database.db, tokenUserScope(user.id), clock.now(), clock.now());
    const row = await database.db.selectFrom("api_tokens").select("revoked_at").executeTakeFirstOrThrow();
    assert.equal(row.revoked_at, null, "the stamp works before any row is touched");
    assert.deepEqual(await tokens.verify(token), { valid: false, reason: "revoked" });
  });

  it("a copied database row cannot be replayed as a token", async () => {
    // A leaked backup holds id and SHA-256(secret); neither the hash nor any part of the row is the token.
    const database = await fx.fresh();
    const { users, tokens } = await setup(database);
    const user = await users.create({ email: "row@example.org" });
    await tokens.create(user.id, { name: "t", scopes: ["admin"] });
    const row = await database.db.selectFrom("api_tokens").selectAll().executeTakeFirstOrThrow();
    assert.deepEqual(await tokens.verify(`bwk_${row.id}_${row.secret_hash}`), { valid: false, reason: "malformed" });
    // Even squeezed into the issued alphabet and length, the hash is not the secret.
    const squeezed = row.secret_hash.replace(/[0189]/g, "a").slice(0, 52).padEnd(52, "a");
    assert.deepEqual(await tokens.verify(`bwk_${row.id}_${squeezed}`), { valid: false, reason: "mismatch" });
  });

  it("junk, oversized and near-miss shapes are refused as malformed before any lookup", async () => {
    const { users, tokens } = await setup(await fx.fresh());
    const user = await users.create({ email: "junk@example.org" });
    const { token, info } = await tokens.create(user.id, { name: "t", scopes: ["admin"] });
    const secret = token.slice(-52);
    for (const bad of [
      "", "bwk_", token.toUpperCase(), `Bearer ${token}`, `${token}a`, token.slice(0, -1), `bwk_${info.id}.${secret}`,
      `xyz_${info.id}_${secret}`, `bwk_${info.id}_${secret.slice(0, 51)}=`, "bwk_".padEnd(100_000, "a"), `bwk_${info.id}_${secret}\n`,
    ]) {
      assert.deepEqual(await tokens.verify(bad), { valid: false, reason: "malformed" }, JSON.stringify(bad.slice(0, 80)));
    }
    assert.deepEqual(await tokens.verify(42 as unknown as string), { valid: false, reason: "malformed" });
    assert.deepEqual(await tokens.verify(`bwk_tok_${"a".repeat(26)}_${secret}`), { valid: false, reason: "unknown" });
  });

  it("a token name with an unpaired surrogate is refused, not stored as U+FFFD while the caller is told the original (ASVS 2.2.1)", async () => {
    const database = await fx.fresh();
    const { users, tokens } = await setup(database);
    const user = await users.create({ email: "surrogate@example.org" });
    for (const name of ["ci\ud800", "\udc00ci", "c\udfffi", "ci\ud800\ud800"]) {
      await assert.rejects(tokens.create(user.id, { name, scopes: ["audit.read"] }),
        { code: "BULWARK_ERR_TOKEN_INPUT", message: /unpaired surrogate/ }, JSON.stringify(name));
    }
    assert.equal((await tokens.list(user.id)).length, 0, "nothing was stored");
    const paired = await tokens.create(user.id, { name: "ci \u{1F510}", scopes: ["audit.read"] });
    assert.equal(paired.info.name, "ci \u{1F510}", "a well-formed pair (an emoji) is one character and allowed");
    assert.equal((await tokens.list(user.id))[0]?.name, "ci \u{1F510}");
  });

  it("scopes tampered in the database to a non-permission grant nothing (fail closed)", async () => {
    const database = await fx.fresh();
    const { users, tokens } = await setup(database);
    const user = await users.create({ email: "scopes@example.org" });
    const { token } = await tokens.create(user.id, { name: "t", scopes: ["audit.read"] });
    await database.db.updateTable("api_tokens").set({ scopes: JSON.stringify(["audit.read", "superuser", 7]) }).execute();
    const result = await tokens.verify(token);
    assert.ok(result.valid);
    assert.deepEqual(result.scopes, ["audit.read"]);
  });
});
