// Password reset tokens on SQLite and PostgreSQL: issue, check, redeem once, expiry, supersession, rate limit,
// and the attacks that must fail (a copied row, a tampered secret, a second redeem, a race).
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { hashSecret } from "../../crypto/tokens.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { MIGRATIONS } from "../../store/migrations/index.ts";
import { createUserStore } from "../users/user-store.ts";
import { createPasswordResetService, type PasswordResetService } from "./reset-service.ts";

const MINUTE = 60_000;

async function setup(database: Database): Promise<{ clock: ManualClock; resets: PasswordResetService; userId: string; otherId: string }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
  const outcome = await migrate(database, clock, MIGRATIONS);
  if (outcome.error) throw outcome.error;
  const users = createUserStore({ database, clock, random: systemRandom });
  const user = await users.create({ email: "ana@example.org" });
  const other = await users.create({ email: "bo@example.org" });
  return { clock, resets: createPasswordResetService({ database, clock, random: systemRandom }), userId: user.id, otherId: other.id };
}

forEachDialect("password reset tokens", (fx) => {
  it("issues a token that checks as valid for 30 minutes and stores only a hash of its secret (ASVS 6.4.1)", async () => {
    const database = await fx.fresh();
    const { clock, resets, userId } = await setup(database);
    const issued = await resets.issue(userId);
    assert.ok(issued.issued);
    assert.match(issued.token, /^prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}$/);
    assert.equal(issued.expiresAt, clock.now() + 30 * MINUTE);
    const check = await resets.check(issued.token);
    assert.deepEqual(check, { valid: true, tokenId: issued.token.split(".")[0], userId, expiresAt: issued.expiresAt });
    const rows = await database.db.selectFrom("password_reset_tokens").selectAll().execute();
    assert.equal(rows.length, 1);
    const secret = issued.token.split(".")[1] as string;
    assert.ok(!JSON.stringify(rows).includes(secret), "the secret is not stored");
    assert.equal(rows[0]?.secret_hash, hashSecret(secret));
    clock.advance(30 * MINUTE);
    assert.deepEqual(await resets.check(issued.token), { valid: false, reason: "expired" });
    assert.deepEqual(await resets.redeem(issued.token), { valid: false, reason: "expired" });
  });

  it("redeems a token exactly once and supersedes the user's other open tokens", async () => {
    const { resets, userId, otherId } = await setup(await fx.fresh());
    const first = await resets.issue(userId);
    const second = await resets.issue(userId);
    const others = await resets.issue(otherId);
    assert.ok(first.issued && second.issued && others.issued);
    const used = await resets.redeem(second.token);
    assert.equal(used.valid, true);
    assert.deepEqual(await resets.redeem(second.token), { valid: false, reason: "used" }, "a reused link fails");
    assert.deepEqual(await resets.check(first.token), { valid: false, reason: "used" }, "older links die with it");
    assert.equal((await resets.check(others.token)).valid, true, "another user's link is untouched");
  });

  it("attack: two concurrent redeems of one token — only one wins", async () => {
    const database = await fx.fresh();
    const { resets, userId } = await setup(database);
    const issued = await resets.issue(userId);
    assert.ok(issued.issued);
    const results = await Promise.all([0, 1, 2].map(() => database.transaction((trx) => resets.redeem(issued.token, trx))));
    assert.equal(results.filter((r) => r.valid).length, 1);
  });

  it("attack: a copied database row, a tampered secret and junk are all refused", async () => {
    const database = await fx.fresh();
    const { resets, userId } = await setup(database);
    const issued = await resets.issue(userId);
    assert.ok(issued.issued);
    const row = await database.db.selectFrom("password_reset_tokens").selectAll().executeTakeFirstOrThrow();
    assert.deepEqual(await resets.check(`${row.id}.${row.secret_hash}`), { valid: false, reason: "malformed" }, "the stored hash is not a token");
    const [id, secret] = issued.token.split(".") as [string, string];
    const flipped = `${id}.${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
    assert.deepEqual(await resets.check(flipped), { valid: false, reason: "bad-secret" });
    const otherId = id.replace(/.$/, (c) => (c === "a" ? "b" : "a"));
    assert.deepEqual(await resets.check(`${otherId}.${secret}`), { valid: false, reason: "unknown" });
    for (const junk of [undefined, 42, "", "x".repeat(5000), `${issued.token}\n`]) assert.equal((await resets.check(junk)).valid, false);
    assert.equal((await resets.check(issued.token)).valid, true, "the real token still works after the attempts");
  });

  it("limits links per account per hour, and the limit lifts when the window passes", async () => {
    const { clock, resets, userId, otherId } = await setup(await fx.fresh());
    for (let i = 0; i < 3; i++) assert.equal((await resets.issue(userId)).issued, true);
    assert.deepEqual(await resets.issue(userId), { issued: false, reason: "rate-limited" });
    assert.equal((await resets.issue(otherId)).issued, true, "per account, not global");
    clock.advance(61 * MINUTE);
    assert.equal((await resets.issue(userId)).issued, true);
    assert.ok((await resets.purgeExpired()) >= 3);
  });

  it("attack: ten issues at once for one account stay within the hourly limit", async () => {
    const { resets, userId } = await setup(await fx.fresh());
    const results = await Promise.all(Array.from({ length: 10 }, () => resets.issue(userId)));
    assert.equal(results.filter((r) => r.issued).length, 3, JSON.stringify(results));
  });

  it("revokeAll supersedes open links (after a password change)", async () => {
    const { resets, userId } = await setup(await fx.fresh());
    const issued = await resets.issue(userId);
    assert.ok(issued.issued);
    assert.equal(await resets.revokeAll(userId), 1);
    assert.deepEqual(await resets.check(issued.token), { valid: false, reason: "used" });
  });
});
