// Attacks on TOTP and recovery codes that must fail, on SQLite and PostgreSQL: replayed codes (also raced),
// codes from outside the ±1 window, brute force beyond the rate limit, ciphertexts moved between rows, reused
// and raced recovery codes, another user's code, and a stolen code hash.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { systemRandom } from "../../lib/random.ts";
import { FloodControl } from "../flood/flood.ts";
import { createMfaService, floodIdentifier, MFA_FLOOD_POLICY } from "./index.ts";
import { mfaFixture, ORIGIN, RP_ID, totpCode, type MfaFixture } from "./testing/setup.ts";

const STEP = 30_000;

/** A user with a confirmed authenticator app, the clock moved past the confirming step. */
async function enrolled(f: MfaFixture, email: string): Promise<{ userId: string; secret: string }> {
  const user = await f.users.create({ email });
  const { secret } = await f.mfa.totp.begin(user.id, email);
  assert.equal(await f.mfa.totp.confirm(user.id, totpCode(secret, f.clock.now())), true);
  f.clock.advance(5 * STEP);
  return { userId: user.id, secret };
}

/** Six digits that are not any code of the window around `now` (so a "wrong guess" is really wrong). */
function wrongCode(secret: string, now: number, seed: number): string {
  const valid = new Set([-1, 0, 1].map((o) => totpCode(secret, now, o)));
  for (let n = seed; ; n = (n + 7919) % 1_000_000) {
    const guess = String(n).padStart(6, "0");
    if (!valid.has(guess)) return guess;
  }
}

forEachDialect("TOTP and recovery-code attacks", (fx) => {
  it("a replayed TOTP code (same step twice) is refused", async () => {
    // ASVS 6.5.1: a TOTP is usable once. RFC 6238 §5.2: the verifier must not accept the second attempt.
    const f = await mfaFixture(await fx.fresh());
    const { userId, secret } = await enrolled(f, "replay@example.org");
    const code = totpCode(secret, f.clock.now());
    assert.equal(await f.mfa.totp.verify(userId, code), "ok");
    assert.equal(await f.mfa.totp.verify(userId, code), "replayed");
    f.clock.advance(STEP - 1);
    assert.equal(await f.mfa.totp.verify(userId, code), "replayed", "still inside the window, still spent");
  });

  it("a code of an earlier step is refused once a later step was accepted", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, secret } = await enrolled(f, "order@example.org");
    const now = f.clock.now();
    assert.equal(await f.mfa.totp.verify(userId, totpCode(secret, now, +1)), "ok");
    assert.equal(await f.mfa.totp.verify(userId, totpCode(secret, now, 0)), "replayed");
    assert.equal(await f.mfa.totp.verify(userId, totpCode(secret, now, -1)), "replayed");
  });

  it("the same TOTP code raced by concurrent requests passes exactly once", async () => {
    // The compare-and-set on last_step decides; on PostgreSQL the requests run on separate connections.
    const f = await mfaFixture(await fx.fresh());
    const { userId, secret } = await enrolled(f, "race@example.org");
    const code = totpCode(secret, f.clock.now());
    const results = await Promise.all(Array.from({ length: 4 }, () => f.mfa.totp.verify(userId, code)));
    assert.equal(results.filter((r) => r === "ok").length, 1, JSON.stringify(results));
    assert.ok(results.every((r) => r === "ok" || r === "replayed"), JSON.stringify(results));
  });

  it("codes from two or more steps away (outside ±1) are refused", async () => {
    // ASVS 6.5.5: a TOTP has a defined lifetime (here at most 90 s), checked on the server clock (6.5.8).
    const f = await mfaFixture(await fx.fresh());
    const { userId, secret } = await enrolled(f, "window@example.org");
    const now = f.clock.now();
    for (const offset of [-2, +2, -20, +20]) {
      const code = totpCode(secret, now, offset);
      // Skip the (one in a million) offsets whose code happens to equal one inside the window.
      if ([-1, 0, 1].some((o) => totpCode(secret, now, o) === code)) continue;
      assert.equal(await f.mfa.totp.verify(userId, code), "invalid", `offset ${offset}`);
    }
  });

  it("TOTP guessing is throttled after 5 failures: even the right code is not evaluated until the window passes", async () => {
    // ASVS 6.3.1 / NIST SP 800-63B §5.2.2: rate limiting per user, whatever the client's address.
    const f = await mfaFixture(await fx.fresh());
    const { userId, secret } = await enrolled(f, "brute@example.org");
    for (let i = 0; i < MFA_FLOOD_POLICY.accountLimit; i++) {
      assert.equal(await f.mfa.totp.verify(userId, wrongCode(secret, f.clock.now(), i * 1000)), "invalid");
    }
    assert.equal(await f.mfa.totp.verify(userId, totpCode(secret, f.clock.now())), "throttled");
    assert.equal(await f.mfa.totp.verify(userId, "not a code"), "throttled");
    f.clock.advance(MFA_FLOOD_POLICY.accountWindowMs);
    assert.equal(await f.mfa.totp.verify(userId, totpCode(secret, f.clock.now())), "ok", "the owner gets in once the window passed");
  });

  it("attack: guessing the code that confirms an enrolment is throttled on the TOTP counter, in parallel too (ASVS 6.3.1)", async () => {
    // Was: confirm had no limit, so a script could try codes against a pending enrolment without end.
    const f = await mfaFixture(await fx.fresh());
    const user = await f.users.create({ email: "confirm-brute@example.org" });
    const { secret } = await f.mfa.totp.begin(user.id, user.email);
    const outcome = (p: Promise<boolean>): Promise<string> => p.then((ok) => (ok ? "ok" : "invalid"), (e: { code?: string }) => String(e.code));
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => outcome(f.mfa.totp.confirm(user.id, wrongCode(secret, f.clock.now(), i * 1000)))));
    assert.equal(results.filter((r) => r === "invalid").length, MFA_FLOOD_POLICY.accountLimit, JSON.stringify(results));
    assert.equal(results.filter((r) => r === "BULWARK_ERR_MFA_THROTTLED").length, 20 - MFA_FLOOD_POLICY.accountLimit);
    assert.equal(await outcome(f.mfa.totp.confirm(user.id, totpCode(secret, f.clock.now()))), "BULWARK_ERR_MFA_THROTTLED", "even the right code is not evaluated");
    assert.deepEqual(await f.mfa.factors(user.id), { totp: false, webauthn: 0, recoveryCodes: 0 });
    f.clock.advance(MFA_FLOOD_POLICY.accountWindowMs);
    assert.equal(await f.mfa.totp.confirm(user.id, totpCode(secret, f.clock.now())), true, "the owner confirms once the window passed");
  });

  it("attack: a hundred TOTP guesses sent at once get five evaluated, not a hundred (parallel guesses count each other)", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, secret } = await enrolled(f, "parallel@example.org");
    const results = await Promise.all(Array.from({ length: 100 }, (_, i) => f.mfa.totp.verify(userId, wrongCode(secret, f.clock.now(), i * 1000))));
    assert.equal(results.filter((r) => r === "invalid").length, MFA_FLOOD_POLICY.accountLimit, JSON.stringify(results));
    assert.equal(results.filter((r) => r === "throttled").length, 100 - MFA_FLOOD_POLICY.accountLimit);
    const codes = await f.mfa.recovery.generate(userId);
    const guesses = await Promise.all(Array.from({ length: 40 }, (_, i) => f.mfa.recovery.verify(userId, `aaaa-bbbb-cccc-dddd-eeee-${String(i).padStart(4, "2").replace(/[01]/g, "z")}`)));
    assert.equal(guesses.filter((r) => r === "invalid").length, MFA_FLOOD_POLICY.accountLimit, JSON.stringify(guesses));
    assert.equal(await f.mfa.recovery.remaining(userId), codes.length);
  });

  it("100 consecutive TOTP failures stop the factor until an explicit unlock, even across windows", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId, secret } = await enrolled(f, "streak@example.org");
    let failures = 0;
    while (failures < MFA_FLOOD_POLICY.maxConsecutive) {
      for (let i = 0; i < MFA_FLOOD_POLICY.accountLimit; i++, failures++) {
        assert.equal(await f.mfa.totp.verify(userId, wrongCode(secret, f.clock.now(), failures * 37)), "invalid");
      }
      f.clock.advance(MFA_FLOOD_POLICY.accountWindowMs);
    }
    f.clock.advance(24 * 3_600_000);
    assert.equal(await f.mfa.totp.verify(userId, totpCode(secret, f.clock.now())), "throttled", "time alone does not heal the streak");
    await f.mfa.clearThrottle(userId);
    assert.equal(await f.mfa.totp.verify(userId, totpCode(secret, f.clock.now())), "ok");
  });

  it("attack: failed logins typed as the MFA identifier (\"mfa:totp:<user id>\") never reach the second factor's counters", async () => {
    // The login and the second factor share the flood tables; a user id is no secret (accounts.read lists it).
    const f = await mfaFixture(await fx.fresh());
    const { userId, secret } = await enrolled(f, "victim@example.org");
    const login = new FloodControl({ database: f.database, clock: f.clock, keyOf: (text) => f.keyring.floodKey(text) });
    for (const factor of ["totp", "recovery"] as const) {
      for (let i = 0; i < MFA_FLOOD_POLICY.maxConsecutive; i++) {
        await login.registerFailure({ identifier: floodIdentifier(factor, userId), ip: `198.51.100.${i % 20}` });
      }
    }
    assert.equal((await login.check({ identifier: floodIdentifier("totp", userId), ip: "198.51.100.1" })).allowed, false, "the login limiter did count them");
    assert.equal((await f.flood.check({ identifier: floodIdentifier("totp", userId), ip: null })).allowed, true, "the MFA limiter saw none of them");
    assert.equal(await f.mfa.totp.verify(userId, totpCode(secret, f.clock.now())), "ok", "the owner's right code works");
    // And the other way round: MFA failures do not throttle a login whose identifier spells the MFA one.
    for (let i = 0; i < MFA_FLOOD_POLICY.accountLimit; i++) await f.mfa.totp.verify(userId, "000000");
    assert.equal((await login.check({ identifier: "someone-else@example.org", ip: "198.51.100.1" })).allowed, true);
  });

  it("refuses to build the MFA service over a limiter without the MFA namespace", async () => {
    const f = await mfaFixture(await fx.fresh());
    const shared = new FloodControl({ database: f.database, clock: f.clock, keyOf: (text) => f.keyring.floodKey(text), policy: MFA_FLOOD_POLICY });
    assert.throws(
      () => createMfaService({ database: f.database, clock: f.clock, random: systemRandom, keyring: f.keyring, flood: shared, issuer: "t", webauthn: { rpID: RP_ID, rpName: "t", origins: [ORIGIN] } }),
      /needs a FloodControl with namespace "mfa"/,
    );
    assert.throws(() => new FloodControl({ database: f.database, clock: f.clock, keyOf: (text) => f.keyring.floodKey(text), namespace: "MFA:x" }), /short lower-case name/);
  });

  it("another user's throttle does not lock this user, and the throttle is per user, not per address", async () => {
    const f = await mfaFixture(await fx.fresh());
    const a = await enrolled(f, "a@example.org");
    const b = await enrolled(f, "b@example.org");
    for (let i = 0; i < MFA_FLOOD_POLICY.accountLimit; i++) await f.mfa.totp.verify(a.userId, wrongCode(a.secret, f.clock.now(), i));
    assert.equal(await f.mfa.totp.verify(a.userId, totpCode(a.secret, f.clock.now())), "throttled");
    assert.equal(await f.mfa.totp.verify(b.userId, totpCode(b.secret, f.clock.now())), "ok");
    assert.equal((await f.flood.check({ identifier: floodIdentifier("totp", a.userId), ip: "203.0.113.9" })).allowed, false, "a new address changes nothing");
  });

  it("an encrypted TOTP secret copied to another user's row does not decrypt, and the attacker's codes do not work", async () => {
    // The keyring binds the ciphertext to (mfa_totp, secret_ct, user id) as AEAD associated data.
    const f = await mfaFixture(await fx.fresh());
    const attacker = await enrolled(f, "attacker@example.org");
    const victim = await enrolled(f, "victim@example.org");
    const attackerRow = await f.database.db.selectFrom("mfa_totp").select("secret_ct").where("user_id", "=", attacker.userId).executeTakeFirstOrThrow();
    await f.database.db.updateTable("mfa_totp").set({ secret_ct: attackerRow.secret_ct }).where("user_id", "=", victim.userId).execute();
    await assert.rejects(f.mfa.totp.verify(victim.userId, totpCode(attacker.secret, f.clock.now())), { code: "BULWARK_ERR_DECRYPT", message: /copied from another row/ });
    assert.equal(await f.mfa.totp.verify(attacker.userId, totpCode(attacker.secret, f.clock.now())), "ok", "the attacker's own row is unaffected");
  });

  it("a recovery code is usable once; reuse is refused", async () => {
    // ASVS 6.5.1: lookup secrets are usable once.
    const f = await mfaFixture(await fx.fresh());
    const user = await f.users.create({ email: "reuse@example.org" });
    const [code] = await f.mfa.recovery.generate(user.id);
    assert.equal(await f.mfa.recovery.consume(user.id, code!), true);
    assert.equal(await f.mfa.recovery.consume(user.id, code!), false);
    assert.equal(await f.mfa.recovery.verify(user.id, code!.toUpperCase()), "invalid");
    assert.equal(await f.mfa.recovery.remaining(user.id), 9);
  });

  it("attack: recovery codes left from a removed factor do not count again when a new factor is enrolled", async () => {
    const f = await mfaFixture(await fx.fresh());
    const { userId } = await enrolled(f, "orphan@example.org");
    const codes = await f.mfa.recovery.generate(userId);
    assert.equal(await f.mfa.recovery.consume(userId, codes[0]!), true);
    assert.equal(await f.mfa.discardRecoveryCodesIfNoFactor(userId), 0, "a factor is left: the codes stay");
    assert.equal(await f.mfa.recovery.remaining(userId), 9);
    assert.equal(await f.mfa.totp.remove(userId), true);
    assert.equal(await f.mfa.discardRecoveryCodesIfNoFactor(userId), 9, "the last factor is gone: so are its codes (9 unused)");
    assert.equal(await f.mfa.recovery.remaining(userId), 0);
    // A new factor later: the old set (perhaps written down, perhaps leaked) is dead.
    const { secret } = await f.mfa.totp.begin(userId, "orphan@example.org");
    assert.equal(await f.mfa.totp.confirm(userId, totpCode(secret, f.clock.now())), true);
    assert.equal(await f.mfa.recovery.verify(userId, codes[1]!), "invalid");
  });

  it("a recovery code raced by concurrent requests is consumed exactly once", async () => {
    const f = await mfaFixture(await fx.fresh());
    const user = await f.users.create({ email: "code-race@example.org" });
    const [code] = await f.mfa.recovery.generate(user.id);
    const results = await Promise.all(Array.from({ length: 4 }, () => f.mfa.recovery.consume(user.id, code!)));
    assert.equal(results.filter(Boolean).length, 1, JSON.stringify(results));
  });

  it("guessing recovery codes beyond the rate limit fails, even when a guess is right", async () => {
    // ASVS 6.3.1: brute force defence. 120-bit codes cannot be guessed anyway; the limit also stops noise.
    const f = await mfaFixture(await fx.fresh());
    const user = await f.users.create({ email: "guess@example.org" });
    const codes = await f.mfa.recovery.generate(user.id);
    for (let i = 0; i < MFA_FLOOD_POLICY.accountLimit; i++) {
      assert.equal(await f.mfa.recovery.verify(user.id, `aaaa-bbbb-cccc-dddd-eeee-fff${"234567"[i]}`), "invalid");
    }
    assert.equal(await f.mfa.recovery.verify(user.id, codes[0]!), "throttled");
    assert.equal(await f.mfa.recovery.consume(user.id, codes[0]!), false);
    assert.equal(await f.mfa.recovery.remaining(user.id), 10, "a throttled attempt spends nothing");
    f.clock.advance(MFA_FLOOD_POLICY.accountWindowMs);
    assert.equal(await f.mfa.recovery.consume(user.id, codes[0]!), true);
  });

  it("another user's recovery code, a stored hash and junk are refused", async () => {
    const f = await mfaFixture(await fx.fresh());
    const alice = await f.users.create({ email: "alice-codes@example.org" });
    const bob = await f.users.create({ email: "bob-codes@example.org" });
    await f.mfa.recovery.generate(alice.id);
    const bobs = await f.mfa.recovery.generate(bob.id);
    assert.equal(await f.mfa.recovery.consume(alice.id, bobs[0]!), false, "codes are bound to their user");
    const row = await f.database.db.selectFrom("mfa_recovery_codes").select("code_hash").where("user_id", "=", alice.id).executeTakeFirstOrThrow();
    assert.equal(await f.mfa.recovery.consume(alice.id, row.code_hash), false, "a leaked hash is not a code");
    assert.equal(await f.mfa.recovery.consume(alice.id, ""), false);
    assert.equal(await f.mfa.recovery.consume(alice.id, "x".repeat(100_000)), false);
    assert.equal(await f.mfa.recovery.consume(alice.id, undefined as unknown as string), false);
    assert.equal(await f.mfa.recovery.remaining(alice.id), 10);
    assert.equal(await f.mfa.recovery.consume(bob.id, bobs[0]!), true, "bob's code still works for bob");
  });
});
