// The login core and flood control on SQLite and PostgreSQL, written as the attacks they stop:
// password guessing per account, per IP, spread over IPs, and enumeration through lockout.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { AuditLog } from "../../audit/audit-log.ts";
import { keyedDigest, keyedFingerprint } from "../../crypto/tokens.ts";
import { ManualClock } from "../../lib/clock.ts";
import { systemRandom } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import { migrate } from "../../store/migrator.ts";
import { FloodControl, type FloodPolicy } from "../flood/flood.ts";
import { createPasswordContext } from "../passwords/index.ts";
import { createUserStore, type UserStore } from "../users/user-store.ts";
import { login, type LoginDeps } from "./login.ts";

/** Flood-control rows' keys under a fixed test key (the app keys them with Keyring.floodKey). */
const floodKeyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x5f), text);

const HOUR = 3_600_000;
// Cheap argon2 parameters: these tests are about the login flow, not the hash cost.
const passwords = createPasswordContext({ random: systemRandom, argon2: { memoryCost: 1024, timeCost: 1, parallelism: 1 } });
const silent = { warn: () => {}, error: () => {} };
/** The audit tag's key (Keyring.identifierTag derives one from the master key). */
const TAG_KEY = new Uint8Array(32).fill(7);

async function setup(db: Database, policy: Partial<FloodPolicy> = {}): Promise<LoginDeps & { clock: ManualClock; users: UserStore }> {
  const clock = new ManualClock(Date.UTC(2026, 10, 1));
  await migrate(db, clock);
  const users = createUserStore({ database: db, clock, random: systemRandom });
  const audit = new AuditLog({ database: db, clock, random: systemRandom });
  const flood = new FloodControl({ database: db, clock, keyOf: floodKeyOf, policy });
  return { users, passwords, flood, audit, logger: silent, tag: (text) => keyedFingerprint(TAG_KEY, text), clock };
}

async function types(deps: LoginDeps): Promise<string[]> {
  return (await deps.audit.tail(1000)).map((e) => e.type);
}

forEachDialect("login core", (fx) => {
  it("logs in with the right password and refuses a wrong one with the same answer as an unknown account", async () => {
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "Ana@Example.org", passwordHash: await passwords.hash("correct horse battery"), passwordScheme: "argon2id" });
    const ok = await login(deps, { identifier: "ana@example.ORG", password: "correct horse battery", ip: "203.0.113.1" });
    assert.equal(ok.outcome, "success");
    const wrong = await login(deps, { identifier: "ana@example.org", password: "Correct horse battery", ip: "203.0.113.1" });
    const unknown = await login(deps, { identifier: "nobody@example.org", password: "x", ip: "203.0.113.1" });
    assert.deepEqual(wrong, { outcome: "invalid" });
    assert.deepEqual(unknown, wrong, "an unknown account gets exactly the same result");
    const events = await deps.audit.tail(10);
    const failed = events.filter((e) => e.type === "auth.login.failed").map((e) => e.data["reason"]);
    assert.deepEqual(failed, ["wrong-password", "unknown-account"]);
    assert.ok(events.every((e) => !JSON.stringify(e).includes("horse")), "no password in the audit log");
  });

  it("rehashes a legacy hash to argon2id at login, and keeps it working", async () => {
    const deps = await setup(await fx.fresh());
    const md5 = createHash("md5").update("sourcelair-era password").digest("hex");
    const user = await deps.users.create({ email: "old@example.org", passwordHash: md5, passwordScheme: "md5" });
    const first = await login(deps, { identifier: "old@example.org", password: "sourcelair-era password", ip: null });
    assert.equal(first.outcome, "success");
    assert.equal(first.outcome === "success" && first.rehashed, true);
    const stored = await deps.users.getById(user.id);
    assert.match(stored?.passwordHash ?? "", /^\$argon2id\$/);
    assert.equal(stored?.passwordScheme, "argon2id");
    const second = await login(deps, { identifier: "old@example.org", password: "sourcelair-era password", ip: null });
    assert.equal(second.outcome === "success" && second.rehashed, false);
  });

  it("still logs in when storing the rehashed password fails", async () => {
    const deps = await setup(await fx.fresh());
    const md5 = createHash("md5").update("pw-for-failing-store").digest("hex");
    await deps.users.create({ email: "f@example.org", passwordHash: md5, passwordScheme: "md5" });
    const errors: string[] = [];
    const broken: UserStore = { ...deps.users, swapPasswordHash: async () => { throw new Error("disk full"); } };
    const result = await login({ ...deps, users: broken, logger: { warn: () => {}, error: (_o: unknown, m: string) => void errors.push(m) } as never }, { identifier: "f@example.org", password: "pw-for-failing-store", ip: null });
    assert.equal(result.outcome, "success");
    assert.equal(errors.length, 1);
  });

  it("refuses a disabled or locked account even with the right password, with the usual answer", async () => {
    const deps = await setup(await fx.fresh());
    const u = await deps.users.create({ email: "d@example.org", passwordHash: await passwords.hash("pw pw pw pw"), passwordScheme: "argon2id", status: "disabled" });
    assert.deepEqual(await login(deps, { identifier: "d@example.org", password: "pw pw pw pw", ip: null }), { outcome: "invalid" });
    const reason = (await deps.audit.tail(1))[0]?.data["reason"];
    assert.equal(reason, "disabled");
    assert.ok(u.id.startsWith("usr_"));
  });

  it("lets an expired password work once and asks for a new one", async () => {
    const db = await fx.fresh();
    const deps = await setup(db);
    const u = await deps.users.create({ email: "e@example.org", passwordHash: await passwords.hash("expiring pw"), passwordScheme: "argon2id" });
    await db.db.updateTable("users").set({ password_must_change: 1 }).where("id", "=", u.id).execute();
    const result = await login(deps, { identifier: "e@example.org", password: "expiring pw", ip: null });
    assert.equal(result.outcome, "must-change-password");
  });

  it("does not overwrite a hash that changed since it was read (compare-and-set)", async () => {
    const deps = await setup(await fx.fresh());
    const u = await deps.users.create({ email: "c@example.org", passwordHash: "aaaa", passwordScheme: "md5" });
    assert.equal(await deps.users.swapPasswordHash(u.id, "bbbb", { hash: "x", scheme: "argon2id", changed: false }), false);
    assert.equal(await deps.users.swapPasswordHash(u.id, "aaaa", { hash: "x", scheme: "argon2id", changed: false }), true);
  });
});

forEachDialect("flood control", (fx) => {
  it("throttles the sixth guess at one account from one IP, with a Retry-After that counts down", async () => {
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "v@example.org", passwordHash: await passwords.hash("victim password"), passwordScheme: "argon2id" });
    for (let i = 0; i < 5; i++) assert.equal((await login(deps, { identifier: "v@example.org", password: `guess${i}`, ip: "198.51.100.7" })).outcome, "invalid");
    const blocked = await login(deps, { identifier: "v@example.org", password: "victim password", ip: "198.51.100.7" });
    assert.equal(blocked.outcome, "throttled", "even the right password is refused while throttled");
    const wait = blocked.outcome === "throttled" ? blocked.retryAfterMs : 0;
    assert.ok(wait > 5 * HOUR && wait <= 6 * HOUR);
    deps.clock.advance(wait);
    assert.equal((await login(deps, { identifier: "v@example.org", password: "victim password", ip: "198.51.100.7" })).outcome, "success");
    assert.ok((await types(deps)).includes("auth.login.throttled"));
  });

  it("counts per account+IP by default, per account when configured", async () => {
    const deps = await setup(await fx.fresh());
    for (let i = 0; i < 5; i++) await login(deps, { identifier: "w@example.org", password: "x", ip: "198.51.100.1" });
    assert.equal((await deps.flood.check({ identifier: "w@example.org", ip: "198.51.100.2" })).allowed, true);
    const deps2 = await setup(await fx.fresh(), { perAccountOnly: true });
    for (let i = 0; i < 5; i++) await login(deps2, { identifier: "w@example.org", password: "x", ip: `198.51.100.${i}` });
    assert.equal((await deps2.flood.check({ identifier: "w@example.org", ip: "198.51.100.99" })).allowed, false);
  });

  it("throttles one IP spraying many accounts after 50 failures in an hour", async () => {
    const deps = await setup(await fx.fresh());
    for (let i = 0; i < 50; i++) await deps.flood.registerFailure({ identifier: `user${i}@example.org`, ip: "192.0.2.66" });
    const verdict = await deps.flood.check({ identifier: "fresh@example.org", ip: "192.0.2.66" });
    assert.deepEqual(verdict.allowed ? "allowed" : verdict.reason, "ip");
    assert.equal((await deps.flood.check({ identifier: "fresh@example.org", ip: "192.0.2.67" })).allowed, true);
  });

  it("caps consecutive failures at 100 across any number of IPs, until a reset clears it", async () => {
    const deps = await setup(await fx.fresh());
    for (let i = 0; i < 100; i++) {
      await deps.flood.registerFailure({ identifier: "target@example.org", ip: `10.${i >> 8}.${i & 255}.1` });
      if (i % 4 === 3) deps.clock.advance(7 * HOUR); // the attacker waits out every window
    }
    const verdict = await deps.flood.check({ identifier: "target@example.org", ip: "10.200.0.1" });
    assert.equal(verdict.allowed ? "allowed" : verdict.reason, "consecutive");
    deps.clock.advance(30 * 24 * HOUR);
    assert.equal((await deps.flood.check({ identifier: "TARGET@example.org", ip: "10.200.0.1" })).allowed, false, "time alone does not clear it");
    await deps.flood.clearStreak("target@example.org");
    assert.equal((await deps.flood.check({ identifier: "target@example.org", ip: "10.200.0.1" })).allowed, true);
  });

  it("attack: an outsider's 100 failures from 20 addresses stop the account for every browser but the owner's known one, which has a window of its own — 10 per 6 hours, then a wait, never the stop —; its failures count in the streak and its success clears it (NIST SP 800-63B §5.2.2, ASVS 6.3.1)", async () => {
    const deps = await setup(await fx.fresh());
    const owner = await deps.users.create({ email: "known@example.org", passwordHash: await passwords.hash("owner password"), passwordScheme: "argon2id" });
    // The browser's cookie is valid for this account only (session-routes asks knownDevice): the text naming it, or null.
    const mine = (account: { id: string }): string | null => (account.id === owner.id ? "device:owner-laptop:0" : null);
    for (let i = 0; i < 100; i++) assert.equal((await login(deps, { identifier: "known@example.org", password: `outsider ${i}`, ip: `198.18.${Math.floor(i / 5)}.1` })).outcome, "invalid");
    const stranger = await login(deps, { identifier: "known@example.org", password: "owner password", ip: "203.0.113.7" });
    assert.equal(stranger.outcome === "throttled" ? stranger.reason : stranger.outcome, "consecutive", "a browser without the cookie stays stopped");
    // The owner's browser mistypes ten times from two addresses (the window follows the browser, not the address)...
    for (let i = 0; i < 10; i++) {
      const typo = await login(deps, { identifier: "known@example.org", password: `typo ${i}`, ip: i < 5 ? "203.0.113.7" : "2001:db8:5:5::1", knownBrowser: mine });
      assert.equal(typo.outcome, "invalid", `typo ${i} is checked`);
    }
    // ...and then waits, told when it may try again: the right password too, from a third address.
    const waits = await login(deps, { identifier: "known@example.org", password: "owner password", ip: "192.0.2.77", knownBrowser: mine });
    assert.equal(waits.outcome === "throttled" ? waits.reason : waits.outcome, "known");
    const wait = waits.outcome === "throttled" ? waits.retryAfterMs : 0;
    assert.ok(wait > 5 * HOUR && wait <= 6 * HOUR, `a wait of ${wait} ms`);
    deps.clock.advance(wait);
    const back = await login(deps, { identifier: "known@example.org", password: "owner password", ip: "192.0.2.77", knownBrowser: mine });
    assert.equal(back.outcome, "success");
    assert.equal(back.outcome === "success" && back.failuresBefore, 110, "the known browser's failures counted in the streak");
    assert.equal((await login(deps, { identifier: "known@example.org", password: "owner password", ip: "203.0.113.8" })).outcome, "success", "its success cleared the stop for every browser");
  });

  it("attack: a known browser is stopped too once known attempts alone have taken the streak to twice the cap; an unknown identifier is never anyone's known browser, whatever the caller says (ASVS 6.3.1, 6.3.8)", async () => {
    const deps = await setup(await fx.fresh(), { maxConsecutive: 3, knownLimit: 50 });
    await deps.users.create({ email: "copied@example.org", passwordHash: await passwords.hash("owner password"), passwordScheme: "argon2id" });
    const anyone = (): string => "device:copied-cookie:0";
    for (let i = 0; i < 3; i++) await login(deps, { identifier: "copied@example.org", password: `outsider ${i}`, ip: `198.18.1.${i}` });
    assert.equal((await login(deps, { identifier: "copied@example.org", password: "x", ip: "198.18.2.1" })).outcome, "throttled", "the outsider's failures end at the cap");
    // Past the cap only known attempts count: a thief with a copy of the cookie gets three more, not a guess a window for ever.
    for (let i = 0; i < 3; i++) assert.equal((await login(deps, { identifier: "copied@example.org", password: `thief ${i}`, ip: `198.18.3.${i}`, knownBrowser: anyone })).outcome, "invalid");
    const stopped = await login(deps, { identifier: "copied@example.org", password: "owner password", ip: "198.18.4.1", knownBrowser: anyone });
    assert.equal(stopped.outcome === "throttled" ? stopped.reason : stopped.outcome, "consecutive");
    // A name no account has: the caller's cookie cannot be valid for it, and it is stopped as it always was.
    for (let i = 0; i < 3; i++) await deps.flood.registerFailure({ identifier: "ghost@example.org", ip: `198.18.5.${i}` });
    const ghost = await login(deps, { identifier: "ghost@example.org", password: "owner password", ip: "198.18.6.1", knownBrowser: anyone });
    assert.equal(ghost.outcome === "throttled" ? ghost.reason : ghost.outcome, "consecutive");
  });

  it("counts a known browser per account+IP as any other by default, and only by its own window when configured per account (an outsider fills that one from anywhere)", async () => {
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "nat@example.org", passwordHash: await passwords.hash("owner password"), passwordScheme: "argon2id" });
    const mine = (): string => "device:nat-laptop:0";
    for (let i = 0; i < 5; i++) await login(deps, { identifier: "nat@example.org", password: `neighbour ${i}`, ip: "203.0.113.60" });
    const sameAddress = await login(deps, { identifier: "nat@example.org", password: "owner password", ip: "203.0.113.60", knownBrowser: mine });
    assert.equal(sameAddress.outcome === "throttled" ? sameAddress.reason : sameAddress.outcome, "account", "the address's window holds the known browser too");
    const perAccount = await setup(await fx.fresh(), { perAccountOnly: true });
    await perAccount.users.create({ email: "nat@example.org", passwordHash: await passwords.hash("owner password"), passwordScheme: "argon2id" });
    for (let i = 0; i < 5; i++) await login(perAccount, { identifier: "nat@example.org", password: `outsider ${i}`, ip: `198.18.7.${i}` });
    assert.equal((await login(perAccount, { identifier: "nat@example.org", password: "owner password", ip: "203.0.113.61" })).outcome, "throttled");
    assert.equal((await login(perAccount, { identifier: "nat@example.org", password: "owner password", ip: "203.0.113.61", knownBrowser: mine })).outcome, "success");
  });

  it("a known attempt taken back (a right password whose second factor is still due) leaves its own window as it was; a counted one fills it", async () => {
    const deps = await setup(await fx.fresh(), { knownLimit: 1 });
    const attempt = { identifier: "held@example.org", ip: "203.0.113.90", known: "session:s1" };
    const first = await deps.flood.begin(attempt);
    assert.ok(first.allowed);
    await deps.flood.release(first.ticket);
    assert.equal((await deps.flood.begin(attempt)).allowed, true, "the released attempt is not counted");
    const third = await deps.flood.begin({ ...attempt, ip: "203.0.113.91" });
    assert.equal(third.allowed ? "allowed" : third.reason, "known", "the counted one filled the window, from any address");
    assert.equal((await deps.flood.begin({ ...attempt, known: "session:s2" })).allowed, true, "another session has a window of its own");
  });

  it("throttles unknown identifiers exactly like real ones (lockout reveals nothing)", async () => {
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "real@example.org", passwordHash: await passwords.hash("pw real one"), passwordScheme: "argon2id" });
    const results: string[][] = [];
    for (const identifier of ["real@example.org", "ghost@example.org"]) {
      const seq: string[] = [];
      for (let i = 0; i < 7; i++) seq.push((await login(deps, { identifier, password: "wrong", ip: "203.0.113.50" })).outcome);
      results.push(seq);
    }
    assert.deepEqual(results[0], results[1]);
    assert.deepEqual(results[0], ["invalid", "invalid", "invalid", "invalid", "invalid", "throttled", "throttled"]);
  });

  it("clears the account's counter on success but not the IP's, and prunes old events", async () => {
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "s@example.org", passwordHash: await passwords.hash("pw success"), passwordScheme: "argon2id" });
    for (let i = 0; i < 4; i++) await login(deps, { identifier: "s@example.org", password: "bad", ip: "203.0.113.9" });
    assert.equal((await login(deps, { identifier: "s@example.org", password: "pw success", ip: "203.0.113.9" })).outcome, "success");
    for (let i = 0; i < 4; i++) await login(deps, { identifier: "s@example.org", password: "bad", ip: "203.0.113.9" });
    assert.equal((await deps.flood.check({ identifier: "s@example.org", ip: "203.0.113.9" })).allowed, true, "the counter restarted after the success");
    deps.clock.advance(7 * HOUR);
    assert.ok((await deps.flood.prune()) >= 8);
  });

  it("attack: a password typed as the login name is stored under keyed digests only: a word list hashed without the server's key matches no row, and a limiter built unkeyed is refused (ASVS 14.2.4, 16.2.5)", async () => {
    const db = await fx.fresh();
    const deps = await setup(db);
    const typed = "Marmalade Summer 2013!";
    assert.equal((await login(deps, { identifier: typed, password: typed, ip: "203.0.113.70" })).outcome, "invalid");
    const events = await db.db.selectFrom("flood_events").select(["key", "via"]).execute();
    const streaks = await db.db.selectFrom("flood_streaks").select("key").execute();
    const stored = new Set([...events.flatMap((r) => [r.key, r.via]), ...streaks.map((r) => r.key)].filter((k) => k !== ""));
    assert.ok(stored.size >= 3, "the failure was counted (account, IP, streak)");
    for (const k of stored) assert.match(k, /^[0-9a-f]{64}$/, "the columns keep their format: 64 hex characters");
    const id = typed.toLowerCase();
    const plain = [`streak\u0000${id}`, `account\u0000${id}\u0000203.0.113.70`, `ip\u0000203.0.113.70`].map((t) => createHash("sha256").update(t).digest("hex"));
    assert.deepEqual(plain.filter((h) => stored.has(h)), [], "no row is the plain SHA-256 of its text");
    assert.ok(stored.has(floodKeyOf(`streak\u0000${id}`)), "the streak is the keyed digest of its text");
    // A limiter with another key counts apart: the rows mean nothing without the key they were made under.
    const other = new FloodControl({ database: db, clock: deps.clock, keyOf: (text) => keyedDigest(new Uint8Array(32).fill(1), text), policy: { maxConsecutive: 1 } });
    assert.equal((await other.check({ identifier: typed, ip: null })).allowed, true, "another key's limiter sees none of the streak");
    // Secure by default: a keyer that is plain SHA-256, or not a 64-hex digest, is refused at construction.
    assert.throws(() => new FloodControl({ database: db, clock: deps.clock, keyOf: (text) => createHash("sha256").update(text).digest("hex") }), /plain SHA-256/);
    assert.throws(() => new FloodControl({ database: db, clock: deps.clock, keyOf: (text) => text }), /64 lower-case hex/);
  });

  it("attack: forty guesses sent at once get five verifies, not forty — parallel attempts count each other (ASVS 6.3.1)", async () => {
    const deps = await setup(await fx.fresh());
    await deps.users.create({ email: "p@example.org", passwordHash: await passwords.hash("the real one"), passwordScheme: "argon2id" });
    let verifies = 0;
    const counting: LoginDeps = { ...deps, passwords: { ...passwords, verifyAndRehash: async (pw, hash) => (verifies++, passwords.verifyAndRehash(pw, hash)) } };
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => login(counting, { identifier: "p@example.org", password: `guess ${i}`, ip: "203.0.113.50" })));
    assert.equal(results.filter((r) => r.outcome === "invalid").length, 5, "five attempts were judged");
    assert.equal(results.filter((r) => r.outcome === "throttled").length, 35);
    assert.equal(verifies, 5, "and only five passwords were checked");
    // Spread over many addresses, the consecutive cap holds as exactly: 100 checked, the rest throttled.
    const spread = await Promise.all(Array.from({ length: 130 }, (_, i) => login(counting, { identifier: "p@example.org", password: `spray ${i}`, ip: `198.51.100.${i}` })));
    assert.equal(spread.filter((r) => r.outcome === "invalid").length, 95, "the streak stops at 100 failures (5 before)");
    assert.equal(verifies, 100);
    // A success while failures are in flight takes back only its own count.
    const db = await fx.fresh();
    const other = await setup(db);
    await other.users.create({ email: "q@example.org", passwordHash: await passwords.hash("the real one"), passwordScheme: "argon2id" });
    const mixed = await Promise.all([
      login(other, { identifier: "q@example.org", password: "the real one", ip: "203.0.113.60" }),
      ...Array.from({ length: 3 }, (_, i) => login(other, { identifier: "x@example.org", password: `w${i}`, ip: "203.0.113.60" })),
    ]);
    assert.equal(mixed[0]?.outcome, "success");
    const ipCount = await db.db.selectFrom("flood_events").select((eb) => eb.fn.countAll<number>().as("n")).where("scope", "=", "ip").executeTakeFirstOrThrow();
    assert.equal(Number(ipCount.n), 3, "the IP keeps the three failures, not the success");
  });

  it("attack: requests that send mail, sent at once from one address, are counted exactly — per /64, apart from the login's counts, lifted after the window (ASVS 2.4.1)", async () => {
    const db = await fx.fresh();
    const deps = await setup(db);
    const mail = new FloodControl({ database: db, clock: deps.clock, keyOf: floodKeyOf, namespace: "mail", policy: { ipLimit: 3, ipWindowMs: HOUR } });
    const burst = await Promise.all(Array.from({ length: 12 }, () => mail.countRequest("2001:db8:7:7::1")));
    assert.equal(burst.filter((r) => r.allowed).length, 3, "three of twelve parallel requests pass");
    const refused = burst.find((r) => !r.allowed);
    assert.deepEqual(refused, { allowed: false, reason: "ip", retryAfterMs: HOUR });
    assert.equal((await mail.countRequest("2001:db8:7:7:ffff::2")).allowed, false, "another address of the same /64 shares the count");
    assert.equal((await mail.countRequest("203.0.113.80")).allowed, true, "another client has its own");
    assert.equal((await mail.countRequest(null)).allowed, true, "no address, no limit");
    // The login's per-IP window never sees these requests, nor they the login's failures.
    await deps.users.create({ email: "m@example.org", passwordHash: await passwords.hash("the real one"), passwordScheme: "argon2id" });
    assert.equal((await login(deps, { identifier: "m@example.org", password: "the real one", ip: "2001:db8:7:7::1" })).outcome, "success");
    deps.clock.advance(HOUR - 1);
    assert.equal((await mail.countRequest("2001:db8:7:7::1")).allowed, false);
    deps.clock.advance(1);
    assert.equal((await mail.countRequest("2001:db8:7:7::1")).allowed, true, "the window lifted");
  });

  it("attack: one holder of an IPv6 /48 rotating /64s past its site's window writes one sampled throttle event a minute, not one per /64 (ASVS 16.3.1; was: each /64 a sampler scope of its own)", async () => {
    const deps = await setup(await fx.fresh(), { siteLimit: 5 });
    const { RefusalSampler } = await import("./refusal-sampler.ts");
    const sampled: LoginDeps = { ...deps, refusals: new RefusalSampler(), now: () => deps.clock.now() };
    const from = (i: number): string => `2001:db8:77:${(i + 1).toString(16)}::1`;
    for (let i = 0; i < 5; i++) assert.equal((await login(sampled, { identifier: `spray${i}@example.org`, password: "guess", ip: from(i) })).outcome, "invalid");
    for (let i = 5; i < 25; i++) {
      const r = await login(sampled, { identifier: `spray${i}@example.org`, password: "guess", ip: from(i) });
      assert.equal(r.outcome === "throttled" ? r.reason : r.outcome, "ip", `attempt ${i} from a fresh /64 of the full /48`);
    }
    const throttled = (await deps.audit.tail(100)).filter((e) => e.type === "auth.login.throttled");
    assert.equal(throttled.length, 1, `${throttled.length} throttle events for one /48 in one minute`);
  });
});
