// Link tokens: the exact shape issued parses; anything else (another kind's prefix, extra length, a tampered
// secret) is refused before any lookup or fails the hash check; a found row is judged secret first, state after.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { systemRandom } from "../lib/random.ts";
import { CLOCK_SKEW_WARN_MS } from "../store/clock-skew.ts";
import { LINK_CLOCK_SKEW_MS, linkTokenKind } from "./link-token.ts";

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
    assert.deepEqual(reset.check(t.secret, row, 1_000), { row }, "the issued secret matches its stored hash");
  });

  it("attack: another kind's token, a longer one, junk and a tampered secret are refused", () => {
    const t = reset.generate(systemRandom);
    assert.equal(email.parse(t.token), null, "a reset link is not an email-change link");
    assert.equal(reset.parse(`${t.token}x`), null);
    assert.equal(reset.parse(t.token.toUpperCase()), null);
    for (const junk of [null, 42, "", ".", "prt_.x", "a".repeat(10_000)]) assert.equal(reset.parse(junk), null);
    const flipped = `${t.secret.slice(0, -1)}${t.secret.endsWith("A") ? "B" : "A"}`;
    assert.deepEqual(reset.check(flipped, { secret_hash: t.secretHash, used_at: null, created_at: 0, expires_at: 2_000 }, 1_000), { reason: "bad-secret" });
    assert.throws(() => linkTokenKind("p_t"), /three lowercase letters/);
  });

  it("attack: a wrong secret learns nothing of the row's state — it is refused as bad-secret whether used, expired or live", () => {
    const t = reset.generate(systemRandom);
    const wrong = `${t.secret.slice(0, -1)}${t.secret.endsWith("A") ? "B" : "A"}`;
    const live = { id: t.id, secret_hash: t.secretHash, used_at: null, created_at: 0, expires_at: 2_000 };
    const used = { ...live, used_at: 500 };
    for (const row of [live, used, { ...live, expires_at: 900 }, { ...used, expires_at: 900 }]) assert.deepEqual(reset.check(wrong, row, 1_000), { reason: "bad-secret" });
    assert.deepEqual(reset.check(t.secret, undefined, 1_000), { reason: "unknown" });
    assert.deepEqual(reset.check(t.secret, used, 1_000), { reason: "used" });
    assert.deepEqual(reset.check(t.secret, { ...live, expires_at: 1_000 }, 1_000), { reason: "expired" }, "expired at its expiry instant");
    assert.deepEqual(reset.check(t.secret, live, 1_000), { row: live });
  });

  it("attack: a link dated further ahead of the judging clock than the servers' clocks may differ is refused as future-dated, as a session is (a node 20 minutes fast would make a 30-minute link live 50; ASVS 6.4.1)", () => {
    const t = reset.generate(systemRandom);
    const now = 10 * 60_000;
    const issuedAhead = { id: t.id, secret_hash: t.secretHash, used_at: null, created_at: now + 20 * 60_000, expires_at: now + 50 * 60_000 };
    assert.deepEqual(reset.check(t.secret, issuedAhead, now), { reason: "future-dated" });
    assert.deepEqual(reset.check(t.secret, { ...issuedAhead, created_at: now + LINK_CLOCK_SKEW_MS + 1 }, now), { reason: "future-dated" }, "just past the tolerated skew");
    const withinSkew = { ...issuedAhead, created_at: now + LINK_CLOCK_SKEW_MS };
    assert.deepEqual(reset.check(t.secret, withinSkew, now), { row: withinSkew }, "clocks a little apart (within the skew a node warns beyond) still work");
    assert.deepEqual(reset.check(`${t.secret.slice(0, -1)}${t.secret.endsWith("A") ? "B" : "A"}`, issuedAhead, now), { reason: "bad-secret" }, "the secret is judged first");
    assert.deepEqual(email.check(t.secret, issuedAhead, now), { reason: "future-dated" }, "every link kind (reset and sign-up links share the reset kind)");
  });

  it("tolerates exactly the clock skew beyond which a node warns and a session is future-dated (crypto cannot import it: the two are checked here)", () => {
    assert.equal(LINK_CLOCK_SKEW_MS, CLOCK_SKEW_WARN_MS);
  });
});
