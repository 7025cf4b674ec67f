// Link tokens: the exact shape issued parses; anything else (another kind's prefix, extra length, a tampered
// secret) is refused before any lookup or fails the hash check; a found row is judged secret first, state after.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { systemRandom } from "../lib/random.ts";
import { datedAheadToleranceFor, DEFAULT_MAX_CLOCK_SKEW_MS } from "../store/clock-skew.ts";
import { linkTokenKind } from "./link-token.ts";

/** The tolerance for dates ahead every check here is given: the default skew limit (datedAheadToleranceFor). */
const AHEAD = DEFAULT_MAX_CLOCK_SKEW_MS;

describe("link tokens", () => {
  const reset = linkTokenKind("prt");
  const email = linkTokenKind("ect");

  it("round-trips a generated token and stores only a hash of a 256-bit secret", () => {
    const t = reset.generate(systemRandom);
    assert.match(t.token, /^prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}$/);
    assert.equal(t.token.length, reset.maxLength);
    assert.deepEqual(reset.parse(t.token), { id: t.id, secret: t.secret });
    assert.notEqual(t.secretHash, t.secret);
    const row = { secret_hash: t.secretHash, used_at: null, created_at: 0, expires_at: 2_000 };
    assert.deepEqual(reset.check(t.secret, row, 1_000, AHEAD), { row }, "the issued secret matches its stored hash");
  });

  it("a time-ordered id (orderedAt, for a batch of thousands) has the same shape, parses and checks alike, and sorts by its time; its secret is as random", () => {
    const at = Date.UTC(2026, 11, 7, 10);
    const batch = Array.from({ length: 50 }, (_, i) => reset.generate(systemRandom, { orderedAt: at + (i % 5) }));
    for (const t of batch) {
      assert.match(t.token, /^prt_[a-z2-7]{26}\.[A-Za-z0-9_-]{43}$/);
      assert.deepEqual(reset.parse(t.token), { id: t.id, secret: t.secret });
      const row = { secret_hash: t.secretHash, used_at: null, created_at: at, expires_at: at + 2_000 };
      assert.deepEqual(reset.check(t.secret, row, at + 1_000, AHEAD), { row });
    }
    // Ids made later sort later, byte for byte (what puts a batch at the primary key's end).
    const byId = [...batch].sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
    const times = byId.map((t) => batch.indexOf(t) % 5);
    assert.deepEqual(times, [...times].sort((x, y) => x - y), "sorted by id is sorted by time");
    assert.equal(new Set(batch.map((t) => t.id)).size, 50, "ids of one millisecond differ (80 random bits)");
    assert.equal(new Set(batch.map((t) => t.secret)).size, 50);
    assert.notEqual(reset.generate(systemRandom).id.slice(4, 14), reset.generate(systemRandom, { orderedAt: at }).id.slice(4, 14), "without orderedAt the id stays random");
  });

  it("attack: another kind's token, a longer one, junk and a tampered secret are refused", () => {
    const t = reset.generate(systemRandom);
    assert.equal(email.parse(t.token), null, "a reset link is not an email-change link");
    assert.equal(reset.parse(`${t.token}x`), null);
    assert.equal(reset.parse(t.token.toUpperCase()), null);
    for (const junk of [null, 42, "", ".", "prt_.x", "a".repeat(10_000)]) assert.equal(reset.parse(junk), null);
    const flipped = `${t.secret.slice(0, -1)}${t.secret.endsWith("A") ? "B" : "A"}`;
    assert.deepEqual(reset.check(flipped, { secret_hash: t.secretHash, used_at: null, created_at: 0, expires_at: 2_000 }, 1_000, AHEAD), { reason: "bad-secret" });
    assert.throws(() => linkTokenKind("p_t"), /three lowercase letters/);
  });

  it("attack: a wrong secret learns nothing of the row's state — it is refused as bad-secret whether used, expired or live", () => {
    const t = reset.generate(systemRandom);
    const wrong = `${t.secret.slice(0, -1)}${t.secret.endsWith("A") ? "B" : "A"}`;
    const live = { id: t.id, secret_hash: t.secretHash, used_at: null, created_at: 0, expires_at: 2_000 };
    const used = { ...live, used_at: 500 };
    for (const row of [live, used, { ...live, expires_at: 900 }, { ...used, expires_at: 900 }]) assert.deepEqual(reset.check(wrong, row, 1_000, AHEAD), { reason: "bad-secret" });
    assert.deepEqual(reset.check(t.secret, undefined, 1_000, AHEAD), { reason: "unknown" });
    assert.deepEqual(reset.check(t.secret, used, 1_000, AHEAD), { reason: "used" });
    assert.deepEqual(reset.check(t.secret, { ...live, expires_at: 1_000 }, 1_000, AHEAD), { reason: "expired" }, "expired at its expiry instant");
    assert.deepEqual(reset.check(t.secret, live, 1_000, AHEAD), { row: live });
  });

  it("attack: a link dated further ahead of the judging clock than the servers' clocks may differ is refused as future-dated, as a session is (a node 20 minutes fast would make a 30-minute link live 50; ASVS 6.4.1)", () => {
    const t = reset.generate(systemRandom);
    const now = 10 * 60_000;
    const issuedAhead = { id: t.id, secret_hash: t.secretHash, used_at: null, created_at: now + 20 * 60_000, expires_at: now + 50 * 60_000 };
    assert.deepEqual(reset.check(t.secret, issuedAhead, now, AHEAD), { reason: "future-dated" });
    assert.deepEqual(reset.check(t.secret, { ...issuedAhead, created_at: now + AHEAD + 1 }, now, AHEAD), { reason: "future-dated" }, "just past the tolerated skew");
    const withinSkew = { ...issuedAhead, created_at: now + AHEAD };
    assert.deepEqual(reset.check(t.secret, withinSkew, now, AHEAD), { row: withinSkew }, "clocks apart by as much as a node may be and still serve still work");
    assert.deepEqual(reset.check(`${t.secret.slice(0, -1)}${t.secret.endsWith("A") ? "B" : "A"}`, issuedAhead, now, AHEAD), { reason: "bad-secret" }, "the secret is judged first");
    assert.deepEqual(email.check(t.secret, issuedAhead, now, AHEAD), { reason: "future-dated" }, "every link kind (reset and sign-up links share the reset kind)");
  });

  it("tolerates exactly the dates ahead it is told to (the services pass the skew a node may have and still serve), and refuses a tolerance that is no count of milliseconds", () => {
    const t = reset.generate(systemRandom);
    const now = 10 * 60_000;
    // A node 10 s ahead issued it: a genuine link of a healthy node under the default 30 s, future-dated under a 5 s limit.
    const tenAhead = { id: t.id, secret_hash: t.secretHash, used_at: null, created_at: now + 10_000, expires_at: now + 30 * 60_000 + 10_000 };
    assert.deepEqual(reset.check(t.secret, tenAhead, now, 30_000), { row: tenAhead });
    assert.deepEqual(reset.check(t.secret, tenAhead, now, 10_000), { row: tenAhead }, "at the tolerance itself");
    assert.deepEqual(reset.check(t.secret, tenAhead, now, 9_999), { reason: "future-dated" });
    assert.deepEqual(reset.check(t.secret, tenAhead, now, 5_000), { reason: "future-dated" });
    assert.deepEqual(reset.check(t.secret, { ...tenAhead, created_at: now }, now, 0), { row: { ...tenAhead, created_at: now } }, "0: nothing ahead, the present is not");
    // Forgotten (plain JavaScript) or NaN, every comparison with it is false and no link is ever refused as dated ahead;
    // a negative, fractional or infinite one is no tolerance a caller meant either.
    for (const bad of [undefined, Number.NaN, -1, 1.5, Number.POSITIVE_INFINITY]) {
      assert.throws(() => reset.check(t.secret, tenAhead, now, bad as unknown as number), /tolerance for dates ahead must be a whole number of milliseconds/);
    }
  });

  it("the services' tolerance is twice the skew a node may have and still serve (BULWARK_MAX_CLOCK_SKEW_SECONDS: two nodes within it on either side), and twice the default 30 s when that limit is off (0: only warn)", () => {
    assert.equal(datedAheadToleranceFor(30_000), 60_000);
    assert.equal(datedAheadToleranceFor(10_000), 20_000);
    assert.equal(datedAheadToleranceFor(3_600_000), 7_200_000);
    assert.equal(datedAheadToleranceFor(0), 2 * DEFAULT_MAX_CLOCK_SKEW_MS, "the limit off: a row an hour ahead must still not live an hour longer");
    assert.equal(DEFAULT_MAX_CLOCK_SKEW_MS, 30_000);
    for (const bad of [-1, Number.NaN, 0.5]) assert.throws(() => datedAheadToleranceFor(bad), /maximum clock skew must be a whole number of milliseconds/);
  });
});
