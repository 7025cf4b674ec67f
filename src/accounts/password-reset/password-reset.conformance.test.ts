// Password reset tokens on SQLite and PostgreSQL: issue, check, redeem once, expiry, supersession, rate limit,
// purging, and the attacks that must fail (a copied row, a tampered secret, a second redeem, races).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { hashSecret } from "../../crypto/tokens.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { MIGRATIONS } from "../../store/migrations/index.ts";
import { createUserStore, type UserStore } from "../users/user-store.ts";
import { createPasswordResetService, type PasswordResetPolicy, type PasswordResetService } from "./reset-service.ts";
import { generateResetToken } from "./token.ts";
import { authFixture } from "../../http/auth/test-client.ts";

const MINUTE = 60_000;

async function setup(
  database: Database, policy: Partial<PasswordResetPolicy> = {},
): Promise<{ clock: ManualClock; resets: PasswordResetService; users: UserStore; userId: string; otherId: string }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1, 9));
  const outcome = await migrate(database, clock, MIGRATIONS);
  if (outcome.error) throw outcome.error;
  const users = createUserStore({ database, clock, random: systemRandom });
  const user = await users.create({ email: "ana@example.org" });
  const other = await users.create({ email: "bo@example.org" });
  return { clock, resets: createPasswordResetService({ database, clock, random: systemRandom, policy }), users, userId: user.id, otherId: other.id };
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
    // A genuine link (its secret matched): whose it is comes back, for the caller's audit of the refusal.
    const genuine = { userId, tokenId: issued.token.split(".")[0] };
    assert.deepEqual(await resets.check(issued.token), { valid: false, reason: "expired", genuine });
    assert.deepEqual(await resets.redeem(issued.token), { valid: false, reason: "expired", genuine });
    assert.deepEqual(await resets.check(`${issued.token.slice(0, -4)}AAAA`), { valid: false, reason: "bad-secret" }, "a wrong secret names nobody");
  });

  it("redeems a token exactly once and supersedes the user's other open tokens", async () => {
    const { resets, userId, otherId } = await setup(await fx.fresh());
    const first = await resets.issue(userId);
    const second = await resets.issue(userId);
    const others = await resets.issue(otherId);
    assert.ok(first.issued && second.issued && others.issued);
    const used = await resets.redeem(second.token);
    assert.equal(used.valid, true);
    const genuine = (token: string) => ({ userId, tokenId: token.split(".")[0] });
    assert.deepEqual(await resets.redeem(second.token), { valid: false, reason: "used", genuine: genuine(second.token) }, "a reused link fails");
    assert.deepEqual(await resets.check(first.token), { valid: false, reason: "used", genuine: genuine(first.token) }, "older links die with it");
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

  it("attack: two different links of one user redeemed at once — one wins, the other is refused, nothing throws", async () => {
    // On PostgreSQL each redeem marked its own row, then revokeAll() waited for the other's: a lock cycle, and
    // "deadlock detected" thrown (a 500 over HTTP) instead of one winner and one clean refusal.
    const database = await fx.fresh();
    const { users, resets } = await setup(database, { maxPerWindow: 1000 });
    for (let i = 0; i < 25; i++) {
      const user = await users.create({ email: `pair${i}@example.org` });
      const a = await resets.issue(user.id);
      const b = await resets.issue(user.id);
      assert.ok(a.issued && b.issued);
      const settled = await Promise.allSettled([a.token, b.token].map((t) => database.transaction((trx) => resets.redeem(t, trx))));
      const thrown = settled.flatMap((r) => (r.status === "rejected" ? [String((r.reason as Error).message)] : []));
      assert.deepEqual(thrown, [], `round ${i}: a redeem threw`);
      const results = settled.map((r) => (r.status === "fulfilled" ? r.value : null));
      assert.equal(results.filter((r) => r?.valid).length, 1, `round ${i}: exactly one winner`);
      const loser = results.find((r) => r && !r.valid);
      assert.deepEqual(loser && !loser.valid ? { reason: loser.reason, user: loser.genuine?.userId } : null, { reason: "used", user: user.id }, `round ${i}: the loser is refused as used`);
    }
  });

  it("attack: a redeem and a supersession of the same user's links at once (a password change) — nothing throws", async () => {
    // The supersession is one UPDATE over the user's open rows; the redeem held one of them and wanted the others.
    const database = await fx.fresh();
    const { users, resets } = await setup(database, { maxPerWindow: 1000 });
    for (let i = 0; i < 80; i++) {
      const user = await users.create({ email: `sup${i}@example.org` });
      const links = [await resets.issue(user.id), await resets.issue(user.id), await resets.issue(user.id)];
      const middle = links[1];
      assert.ok(middle?.issued);
      const settled = await Promise.allSettled([database.transaction((trx) => resets.redeem(middle.token, trx)), resets.revokeAll(user.id)]);
      const thrown = settled.flatMap((r) => (r.status === "rejected" ? [String((r.reason as Error).message)] : []));
      assert.deepEqual(thrown, [], `round ${i}`);
    }
  });

  it("purgeExpired keeps a link until its own expiry (a 24-hour containment link) and every row of the rate window; only live links count towards the limit", async () => {
    const database = await fx.fresh();
    const { clock, resets, userId } = await setup(database);
    const containment = generateResetToken(systemRandom);
    await resets.store(containment, userId, { lifetimeMs: 24 * 60 * MINUTE });
    const short = await resets.issue(userId);
    assert.ok(short.issued);
    clock.advance(2 * 60 * MINUTE); // the maintenance run every 15 minutes got here long ago
    assert.equal(await resets.purgeExpired(), 1, "only the 30-minute link goes: expired, and out of the rate window");
    assert.equal((await resets.check(containment.token)).valid, true, "the 24-hour link still works after 2 hours");
    assert.deepEqual(await resets.check(short.token), { valid: false, reason: "unknown" });
    // Expired but inside the rate window: kept (a replay of it is told apart from a guess), but no longer counted: a
    // limit reached with dead links left the owner none that worked.
    assert.ok((await resets.issue(userId)).issued);
    clock.advance(45 * MINUTE);
    assert.equal(await resets.purgeExpired(), 0);
    assert.equal(await resets.recentCount(userId), 0, "the expired link no longer counts (and the 24-hour one is older than the window)");
    clock.advance(24 * 60 * MINUTE);
    assert.equal(await resets.purgeExpired(), 2, "both gone once past their expiry and the window");
  });

  it("a link issued by a node whose clock is 10 s ahead (inside the skew a node may have and still serve) works on the node with the right time and outlives its maintenance pass; one dated further ahead than the tolerance is refused as future-dated and spent (ASVS 6.4.1)", async () => {
    const database = await fx.fresh();
    const { clock, resets, userId } = await setup(database);
    const nodeAhead = (ms: number) => createPasswordResetService({ database, clock: new ManualClock(clock.now() + ms), random: systemRandom });
    const genuine = await nodeAhead(10_000).issue(userId);
    assert.ok(genuine.issued);
    assert.equal((await resets.check(genuine.token)).valid, true, "a healthy node's genuine link works here");
    assert.equal(await resets.purgeExpired(), 0, "and maintenance here leaves it alone");
    assert.equal((await resets.check(genuine.token)).valid, true);
    // The tolerance is the policy's (the app passes its node's skew limit): a 5 s limit makes that node one not to serve.
    const strict = createPasswordResetService({ database, clock, random: systemRandom, policy: { datedAheadToleranceMs: 5_000 } });
    assert.deepEqual(await strict.check(genuine.token), { valid: false, reason: "future-dated", genuine: { userId, tokenId: genuine.token.split(".")[0] } });
    // Beyond the default 60 s (twice the 30 s a node may be off): refused, and spent by the pass so that it never lives
    // on once real time passes its date.
    const ahead = await nodeAhead(61_000).issue(userId);
    assert.ok(ahead.issued);
    const tokenId = ahead.token.split(".")[0];
    assert.deepEqual(await resets.check(ahead.token), { valid: false, reason: "future-dated", genuine: { userId, tokenId } });
    assert.equal(await resets.purgeExpired(), 1, "only the link beyond the tolerance is spent");
    clock.advance(60_000);
    assert.deepEqual(await resets.check(ahead.token), { valid: false, reason: "used", genuine: { userId, tokenId } }, "spent for good");
    assert.equal((await resets.check(genuine.token)).valid, true, "the healthy node's link still works a minute later");
    assert.throws(() => createPasswordResetService({ database, clock, random: systemRandom, policy: { datedAheadToleranceMs: 0 } }), { code: "BULWARK_ERR_RESET_POLICY" });
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
    assert.deepEqual(await resets.check(issued.token), { valid: false, reason: "used", genuine: { userId, tokenId: issued.token.split(".")[0] } });
  });
});

describe("the tolerance for links and sessions dated ahead, as an app wires it", () => {
  it("is twice BULWARK_MAX_CLOCK_SKEW_SECONDS (two nodes each within it, on either side, are up to twice it apart) for reset links, email-change links and sessions alike, and 60 s when that limit is 0 (only warn)", async () => {
    for (const [seconds, expected] of [["10", 20_000], ["0", 60_000]] as const) {
      const fx = await authFixture({ BULWARK_MAX_CLOCK_SKEW_SECONDS: seconds });
      try {
        const { passwordReset, emailChanges, sessions } = fx.app.accounts;
        assert.deepEqual([passwordReset.policy.datedAheadToleranceMs, emailChanges.policy.datedAheadToleranceMs, sessions.policy.datedAheadToleranceMs], [expected, expected, expected], `BULWARK_MAX_CLOCK_SKEW_SECONDS=${seconds}`);
      } finally {
        await fx.close();
      }
    }
  });
});
