// The work a login does must not tell an attacker what a 401 hides (ASVS 6.3.8: "different response times"):
// a known account whose stored hash is cheaper than the default argon2id tops its verify up with the dummy verify
// an unknown account pays, and a locked or disabled account, or an initial password past its expiry, does the same
// work for a right and a wrong password (no rehash before the account state is checked). Measured as work — calls
// to the dummy verify, argon2id hashes produced, random bytes the password context drew — never as time, so the
// tests are deterministic.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { it } from "node:test";
import { hash as bcryptHash } from "@node-rs/bcrypt";
import { forEachDialect } from "./helpers/dialects.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { FloodControl } from "../src/accounts/flood/index.ts";
import { login, type LoginDeps } from "../src/accounts/login/index.ts";
import { createPasswordContext, type PasswordContext } from "../src/accounts/passwords/index.ts";
import { createUserStore, type UserStore } from "../src/accounts/users/user-store.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom, type RandomSource } from "../src/lib/random.ts";
import type { Database } from "../src/store/database.ts";
import { migrate } from "../src/store/migrator.ts";
import { keyedDigest, keyedFingerprint } from "../src/crypto/tokens.ts";

/** Flood-control rows' keys under a fixed test key (the app keys them with Keyring.floodKey). */
const floodKeyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x5f), text);

const ARGON2 = { memoryCost: 1024, timeCost: 1, parallelism: 1 };
const REAL = "the real one, long enough";
const WRONG = "a wrong guess entirely";

/** What the password context did during some logins. */
interface Work {
  /** dummyVerify calls (each one argon2id verify with the default parameters). */
  dummies: number;
  /** argon2id hashes the context handed out (hash, or a rehash inside verifyAndRehash): each one argon2id run. */
  produced: number;
  /** Sizes of the random draws the context made (salts of new hashes, salt and tag of each dummy). */
  draws: number[];
}

/**
 * A password context whose work is observed from two sides: its methods are wrapped (whichever the login calls),
 * and its random source records every draw, which also sees work done inside a method (verifyAndRehash's rehash).
 */
function observed(): { passwords: PasswordContext; work: Work; reset(): Work } {
  let work: Work = { dummies: 0, produced: 0, draws: [] };
  const random: RandomSource = { bytes: (size) => (work.draws.push(size), systemRandom.bytes(size)) };
  const inner = createPasswordContext({ random, argon2: ARGON2 });
  const fresh = (value: unknown): boolean =>
    (typeof value === "string" && value.startsWith("$argon2id$")) ||
    (typeof value === "object" && value !== null && typeof (value as { newHash?: unknown }).newHash === "string");
  const wrapped = Object.fromEntries(
    Object.entries(inner).map(([name, value]) => {
      if (typeof value !== "function") return [name, value];
      return [name, (...args: unknown[]) => {
        if (name === "dummyVerify") work.dummies++;
        const out: unknown = (value as (...a: unknown[]) => unknown).apply(inner, args);
        if (out instanceof Promise) return out.then((v: unknown) => (fresh(v) && work.produced++, v));
        return out;
      }];
    }),
  ) as unknown as PasswordContext;
  return {
    passwords: wrapped,
    get work() { return work; },
    reset() {
      const before = work;
      work = { dummies: 0, produced: 0, draws: [] };
      return before;
    },
  };
}

async function setup(db: Database): Promise<{ deps: LoginDeps; users: UserStore; obs: ReturnType<typeof observed>; clock: ManualClock }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  const users = createUserStore({ database: db, clock, random: systemRandom });
  const obs = observed();
  const deps: LoginDeps = {
    users, passwords: obs.passwords, audit: new AuditLog({ database: db, clock, random: systemRandom }), logger: { warn() {}, error() {} }, tag: (text: string) => keyedFingerprint(new Uint8Array(32), text),
    // Generous limits: these tests count the work of each attempt, not the throttle.
    flood: new FloodControl({ database: db, clock, keyOf: floodKeyOf, policy: { accountLimit: 1000, ipLimit: 1000 } }),
  };
  return { deps, users, obs, clock };
}

/** The work of one login, and its outcome. */
async function workOf(s: Awaited<ReturnType<typeof setup>>, identifier: string, password: string): Promise<Work & { outcome: string }> {
  s.obs.reset();
  const result = await login(s.deps, { identifier, password, ip: "203.0.113.1" });
  return { ...s.obs.reset(), outcome: result.outcome };
}

const md5 = (text: string): string => createHash("md5").update(text).digest("hex");

forEachDialect("locked and disabled accounts: a right guess costs what a wrong one does", (fx) => {
  it("attack: a right and a wrong password against a locked md5 account do the same hashing work, and the hash is not rewritten (ASVS 6.3.8)", async () => {
    const db = await fx.fresh();
    const s = await setup(db);
    const u = await s.users.create({ email: "locked@example.org", passwordHash: md5(REAL), passwordScheme: "md5" });
    await db.db.updateTable("users").set({ locked_at: s.clock.now(), locked_reason: "containment" }).where("id", "=", u.id).execute();
    const wrong = await workOf(s, "locked@example.org", WRONG);
    const right = await workOf(s, "locked@example.org", REAL);
    assert.equal(right.outcome, "invalid");
    assert.deepEqual(right, wrong, "a right guess must not do extra work (an argon2id rehash) that a wrong one does not");
    assert.equal(right.produced, 0, "no new hash is made for an account that cannot sign in");
    assert.equal((await s.users.getById(u.id))?.passwordHash, md5(REAL), "the locked account's stored hash is left alone");
  });

  it("attack: the same for a disabled account with a bcrypt hash and one with an argon2id hash below the policy", async () => {
    const s = await setup(await fx.fresh());
    const weak = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
    await s.users.create({ email: "off-bcrypt@example.org", passwordHash: await bcryptHash(REAL, { cost: 4 }), passwordScheme: "bcrypt", status: "disabled" });
    await s.users.create({ email: "off-argon@example.org", passwordHash: await weak.hash(REAL), passwordScheme: "argon2id", status: "disabled" });
    for (const email of ["off-bcrypt@example.org", "off-argon@example.org"]) {
      const wrong = await workOf(s, email, WRONG);
      const right = await workOf(s, email, REAL);
      assert.deepEqual(right, wrong, `${email}: a right guess did different work`);
      assert.equal(right.produced, 0, `${email}: rehashed although the account cannot sign in`);
    }
  });

  it("attack: the same for an initial password past its expiry, on a hash login would upgrade: refused alike, not rehashed (ASVS 6.4.1, 6.3.8)", async () => {
    const s = await setup(await fx.fresh());
    const weak = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
    const stored = await weak.hash(REAL);
    const u = await s.users.create({ email: "initial@example.org", passwordHash: stored, passwordScheme: "argon2id", passwordMustChange: true, passwordInitialExpiresAt: s.clock.now() + 3_600_000 });
    s.clock.advance(3_600_000);
    const wrong = await workOf(s, "initial@example.org", WRONG);
    const right = await workOf(s, "initial@example.org", REAL);
    assert.equal(right.outcome, "invalid");
    assert.deepEqual(right, wrong, "a right guess must not do extra work (an argon2id rehash) that a wrong one does not");
    assert.equal(right.produced, 0);
    assert.equal((await s.users.getById(u.id))?.passwordHash, stored, "the expired password's hash is left alone");
  });

  it("a usable account is still upgraded at its next successful login (the rehash moved, it did not go)", async () => {
    const s = await setup(await fx.fresh());
    const u = await s.users.create({ email: "usable@example.org", passwordHash: md5(REAL), passwordScheme: "md5" });
    const ok = await workOf(s, "usable@example.org", REAL);
    assert.equal(ok.outcome, "success");
    assert.equal(ok.produced, 1);
    assert.match((await s.users.getById(u.id))?.passwordHash ?? "", /^\$argon2id\$/);
  });
});

forEachDialect("known accounts with cheap hashes cost what unknown accounts cost", (fx) => {
  it("attack: a wrong password for an imported md5 account does the argon2id work of an unknown account (ASVS 6.3.8)", async () => {
    const s = await setup(await fx.fresh());
    await s.users.create({ email: "imported@example.org", passwordHash: md5(REAL), passwordScheme: "md5" });
    const unknown = await workOf(s, "nobody@example.org", WRONG);
    const known = await workOf(s, "imported@example.org", WRONG);
    assert.deepEqual([unknown.outcome, known.outcome], ["invalid", "invalid"]);
    assert.equal(unknown.dummies, 1);
    assert.deepEqual(known, unknown, "the md5 account skipped the argon2id work an unknown account pays");
  });

  it("attack: every cheap stored form pays the dummy verify, on failure and success alike", async () => {
    const s = await setup(await fx.fresh());
    const weak = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 64, timeCost: 1, parallelism: 1 } });
    const cheap: Record<string, string> = {
      "sha1@example.org": createHash("sha1").update(REAL).digest("hex"),
      "ssha@example.org": `{SSHA}${Buffer.concat([createHash("sha1").update(REAL).update("saltsalt").digest(), Buffer.from("saltsalt")]).toString("base64")}`,
      "weak-argon@example.org": await weak.hash(REAL),
      "bcrypt@example.org": await bcryptHash(REAL, { cost: 4 }),
    };
    for (const [email, hash] of Object.entries(cheap)) await s.users.create({ email, passwordHash: hash, passwordScheme: s.deps.passwords.identify(hash) });
    for (const email of Object.keys(cheap)) {
      const wrong = await workOf(s, email, WRONG);
      assert.deepEqual([wrong.outcome, wrong.dummies], ["invalid", 1], `${email}: a wrong password skipped the dummy verify`);
      const right = await workOf(s, email, REAL);
      assert.deepEqual([right.outcome, right.dummies], ["success", 1], `${email}: a right password skipped the dummy verify`);
    }
  });

  it("a stored hash the policy refuses pays the dummy verify too (it is refused before any hashing)", async () => {
    const s = await setup(await fx.fresh());
    // bcrypt cost 31: out of bounds, so verify refuses it at once.
    await s.users.create({ email: "odd@example.org", passwordHash: `$2b$31$${"a".repeat(53)}`, passwordScheme: "bcrypt" });
    const unknown = await workOf(s, "nobody@example.org", WRONG);
    const odd = await workOf(s, "odd@example.org", WRONG);
    assert.deepEqual(odd, unknown);
  });

  it("an account already at the default argon2id pays no extra dummy verify (its own verify is the same work)", async () => {
    const s = await setup(await fx.fresh());
    await s.users.create({ email: "current@example.org", passwordHash: await s.deps.passwords.hash(REAL), passwordScheme: "argon2id" });
    const wrong = await workOf(s, "current@example.org", WRONG);
    const right = await workOf(s, "current@example.org", REAL);
    assert.deepEqual([wrong.outcome, wrong.dummies, right.outcome, right.dummies, right.produced], ["invalid", 0, "success", 0, 0]);
  });
});
