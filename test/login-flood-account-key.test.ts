// Flood control counts an account once, whatever names it at the login: its email in any case or its username
// share one per-account window and one 100-failure cap (ASVS 6.3.1), and an unknown identifier is still counted
// exactly like a known one (ASVS 6.3.8). Written as the attacks that must fail, on SQLite and PostgreSQL.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "./helpers/dialects.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { FloodControl } from "../src/accounts/flood/index.ts";
import { login, type LoginDeps, type LoginResult } from "../src/accounts/login/index.ts";
import { createPasswordContext, type PasswordContext } from "../src/accounts/passwords/index.ts";
import { createUserStore, type UserStore } from "../src/accounts/users/user-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { keyedDigest, keyedFingerprint } from "../src/crypto/tokens.ts";

/** Flood-control rows' keys under a fixed test key (the app keys them with Keyring.floodKey). */
const floodKeyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x5f), text);

// Cheap argon2 parameters: these tests are about counting, not the hash cost.
const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
const REAL = "the owner's real password";

/** The context, counting every check of a password against a stored hash (whichever method the login uses). */
function countingChecks(inner: PasswordContext): { passwords: PasswordContext; checks: () => number } {
  let checks = 0;
  return {
    passwords: {
      ...inner,
      verify: async (password, hash) => (checks++, inner.verify(password, hash)),
      verifyAndRehash: async (password, hash) => (checks++, inner.verifyAndRehash(password, hash)),
    },
    checks: () => checks,
  };
}

async function setup(db: Database): Promise<{ deps: LoginDeps; users: UserStore; flood: FloodControl; checks: () => number }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  const users = createUserStore({ database: db, clock, random: systemRandom });
  const flood = new FloodControl({ database: db, clock, keyOf: floodKeyOf });
  const counting = countingChecks(passwords);
  const deps: LoginDeps = { users, passwords: counting.passwords, flood, audit: new AuditLog({ database: db, clock, random: systemRandom }), logger: { warn() {}, error() {} }, tag: (text: string) => keyedFingerprint(new Uint8Array(32), text) };
  await users.create({ email: "Victim@Example.org", username: "victim", passwordHash: await passwords.hash(REAL), passwordScheme: "argon2id" });
  return { deps, users, flood, checks: counting.checks };
}

const outcome = (r: LoginResult): string => r.outcome;

forEachDialect("flood control counts the account, not the identifier typed", (fx) => {
  it("attack: five guesses by email, then five by username, from one IP — five password checks, not ten (ASVS 6.3.1)", async () => {
    const s = await setup(await fx.fresh());
    const ip = "198.51.100.7";
    const byEmail: string[] = [];
    for (let i = 0; i < 5; i++) byEmail.push(outcome(await login(s.deps, { identifier: "victim@example.org", password: `e${i}`, ip })));
    assert.deepEqual(byEmail, ["invalid", "invalid", "invalid", "invalid", "invalid"]);
    const byUsername: string[] = [];
    for (let i = 0; i < 4; i++) byUsername.push(outcome(await login(s.deps, { identifier: "victim", password: `u${i}`, ip })));
    // Even the right password: the account's window is full, so nothing is checked.
    byUsername.push(outcome(await login(s.deps, { identifier: "victim", password: REAL, ip })));
    // Answered as an unknown identifier typed this way would be (a failure, then 429 once this spelling's own five
    // are spent: see the enumeration test below), but the username opens no second window of password checks.
    assert.deepEqual(byUsername, ["invalid", "invalid", "invalid", "invalid", "invalid"]);
    assert.equal(outcome(await login(s.deps, { identifier: "victim", password: REAL, ip })), "throttled");
    assert.equal(s.checks(), 5, "the account's window allows five password checks per IP, whatever identifier names it");
    // The email in another case is the same spelling: its window is full.
    assert.equal(outcome(await login(s.deps, { identifier: "VICTIM@example.ORG", password: REAL, ip })), "throttled");
  });

  it("attack: enumeration by shared windows — a username and an email that name one account answer exactly like two unknown identifiers (ASVS 6.3.8)", async () => {
    const s = await setup(await fx.fresh());
    /** Five failures by the first spelling, then six attempts by the second, from one IP: the outcomes. */
    const probe = async (first: string, second: string, ip: string): Promise<string[]> => {
      const seen: string[] = [];
      for (let i = 0; i < 5; i++) seen.push(outcome(await login(s.deps, { identifier: first, password: `a${i}`, ip })));
      for (let i = 0; i < 6; i++) {
        const r = await login(s.deps, { identifier: second, password: `b${i}`, ip });
        seen.push(r.outcome === "throttled" ? `throttled:${r.reason}:${r.retryAfterMs}` : r.outcome);
      }
      return seen;
    };
    const known = await probe("victim", "victim@example.org", "198.51.100.20");
    const unknown = await probe("nosuch", "nosuch@example.org", "198.51.100.21");
    assert.deepEqual(known, unknown, "a 429 must not come sooner for a pair that is one account");
    assert.deepEqual(known.slice(0, 10), Array(10).fill("invalid"));
    assert.match(known[10] as string, /^throttled:account:/);
    assert.equal(s.checks(), 5, "and the account still got only five password checks from that address");
  });

  it("failures counted with no spelling (before migration 18, or by re-authentication) still fill the account's window: no password is checked", async () => {
    const s = await setup(await fx.fresh());
    const ip = "198.51.100.30";
    for (let i = 0; i < 5; i++) await s.flood.registerFailure({ identifier: "victim@example.org", ip });
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push(outcome(await login(s.deps, { identifier: "victim@example.org", password: REAL, ip })));
    assert.deepEqual(seen, ["invalid", "invalid", "invalid", "invalid", "invalid", "throttled"], "answered as for this spelling alone");
    assert.equal(s.checks(), 0, "the account's five were spent: not even the right password was checked");
    assert.deepEqual(await s.flood.check({ identifier: "victim@example.org", ip }), { allowed: false, reason: "account", retryAfterMs: 6 * 60 * 60 * 1000 }, "asked without a spelling, the account is throttled");
  });

  it("attack: 100 failures by username spread over 20 addresses stop the email too — one cap per account (NIST SP 800-63B §5.2.2)", async () => {
    const s = await setup(await fx.fresh());
    const results: string[] = [];
    for (let i = 0; i < 100; i++) results.push(outcome(await login(s.deps, { identifier: "victim", password: `spray ${i}`, ip: `10.0.0.${i % 20}` })));
    assert.ok(results.every((r) => r === "invalid"), "five per address, twenty addresses: every one was checked");
    const viaEmail = await login(s.deps, { identifier: "victim@example.org", password: REAL, ip: "10.9.9.9" });
    assert.deepEqual(viaEmail, { outcome: "throttled", retryAfterMs: viaEmail.outcome === "throttled" ? viaEmail.retryAfterMs : -1, reason: "consecutive" });
    assert.equal(s.checks(), 100, "the 101st guess, by the other identifier, was not checked");
  });

  it("attack: 100 failures by email stop the username too, and clearStreak(email) — what a password reset calls — lifts both", async () => {
    const s = await setup(await fx.fresh());
    for (let i = 0; i < 100; i++) await s.flood.registerFailure({ identifier: "victim@example.org", ip: `10.1.${i >> 8}.${i & 255}` });
    assert.equal(outcome(await login(s.deps, { identifier: "victim", password: REAL, ip: "10.9.9.9" })), "throttled");
    await s.flood.clearStreak("victim@example.org");
    assert.equal(outcome(await login(s.deps, { identifier: "victim", password: REAL, ip: "10.9.9.9" })), "success");
  });

  it("attack: the 100-failure stop answers alike for a known and an unknown identifier, and says that time does not lift it (ASVS 6.3.8)", async () => {
    const s = await setup(await fx.fresh());
    for (const identifier of ["victim", "ghost"]) {
      for (let i = 0; i < 100; i++) await s.flood.registerFailure({ identifier: identifier === "victim" ? "victim@example.org" : identifier, ip: `10.2.${i >> 8}.${i & 255}` });
    }
    const known = await login(s.deps, { identifier: "victim", password: "guess", ip: "10.9.9.9" });
    const unknown = await login(s.deps, { identifier: "ghost", password: "guess", ip: "10.9.9.9" });
    assert.equal(known.outcome === "throttled" && known.reason, "consecutive", "the caller can tell a stop that needs a reset from a window");
    assert.deepEqual(known, unknown, "the same answer, field for field");
  });

  it("an unknown username still has its own counters (it names no account, so it cannot reach one)", async () => {
    const s = await setup(await fx.fresh());
    for (let i = 0; i < 5; i++) await login(s.deps, { identifier: "ghost", password: `g${i}`, ip: "198.51.100.8" });
    assert.equal(outcome(await login(s.deps, { identifier: "ghost", password: "g5", ip: "198.51.100.8" })), "throttled");
    assert.equal(outcome(await login(s.deps, { identifier: "victim", password: REAL, ip: "198.51.100.8" })), "success", "the real account was not touched");
  });
});
