// Red team, round "twenty-three, new code": attacks on what this session added (2fe8b22..14dae1b). Attackers: (1) someone
// with write access to the database but not the master key, and the holder of a leaked master key (a backup, a copied
// master.key) against the keyring's new check of the recorded master key at every read of the key table (3c87c31);
// (2) an outsider who signs up an address, and races its link against the administrator's set-email or the owner's
// confirmed email change that would delete that unfinished sign-up (8e292e6); (3) a stuffer shaping a campaign around
// `check logins`' new look-back, /48 sites and sparse walk (5e1c6d2, a28c131, 84a0b83) — and a compromised host that
// makes a whole campus look like it; (4) an API client sending number fields in other JSON shapes (131978b).
// Tried and held (tests below): a forged master check neither switches the server to another key nor stops sign-ins or
// sealing (it makes every browser new, as documented); a sign-up link followed at the very moment set-email or an email
// confirmation takes its address ends in one consistent state on SQLite and PostgreSQL (either may win; both were seen across the dialects); the
// sparse median and wave walk equal the dense per-hour/per-bucket reference on twelve random campaigns; a /48 written in
// every spelling is one site, 6to4 and Teredo tunnels one IPv4 client each, a bracketed sign-in found in the site;
// digit strings, [10], {}, "1e1", 1e400, duplicate keys and an options object as a one-element array in the contain
// jobs' number fields are 400s naming the field.
// Read and not tested (held on reading or pinned elsewhere): a sign-up that is locked, has a role, a session, a factor, a
// linked identity, a username or display name, or was made by an administrator is never taken (isUnfinishedSignUp; the
// role and invitation cases in signup-shell); only the register route writes `user.created` with actor anonymous and
// via register; look-alike holders cannot be sign-ups (sign-up takes plain ASCII, whose skeleton is its key); the first
// TOTP enrolment's session binding, hand-over at re-authentication, listing and purge (half-done-red-team,
// http-auth-mfa, mfa.conformance), an API token reaching the enrolment routes (requireSession refuses it), the confirm's
// re-encryption retry (same secret only); the huge windows and 1e400 time fields (numbers-red-team). Documented limits not
// counted: a campaign slower than the bar per 48 hours, a stuffer spread over several /48s, an address held by a sign-up
// answered as taken at the email-change request, an account guessed only the day before the window.
// Found (all fixed since: #checkMaster decides the device key afresh at every read — the random one only while the
// store records a key the process cannot have, its own master's again once the store records it, the followed key's
// after a rotation — and says each change to the log (onMasterKeyChange); sprayingSites leaves a /64 that is a spraying
// client on its own out of its site's count):
//  - Keyring.#checkMaster: once a check it could not follow made it take a random device key (#deviceKeyOrphaned), a
//    process never derives the device key from its master again — a forged check row written for a moment and put back
//    makes every browser new on a running server until it is restarted, silently;
//  - the same flag is never cleared when #followMaster later follows a rotation, so a node that followed a first rotation
//    by a copied key file and cannot follow a second keeps the device key of the master the second rotation retired:
//    cookies forged with that leaked key are still known there;
//  - queries.ts sprayingSites counts a /64 that is a spraying client on its own towards its /48's site bar, so one
//    compromised host plus any other /64 of the /48 with a failure makes the whole campus a spraying site: every
//    new-browser sign-in from it is reported high and written to --ids-out.
// Temp dirs, loopback and a private PostgreSQL cluster only.
import assert from "node:assert/strict";
import { after, afterEach, before, beforeEach, describe, it } from "node:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUCKET_MS, checkLogins, DEFAULT_LOGINS_OPTIONS } from "../src/checks/logins/index.ts";
import { Keyring, MASTER_CHECK_META, masterKeyCheck, masterKeyId } from "../src/crypto/keyring.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { createKeyStore, rotateMasterKey } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { openSQLite, type Database } from "../src/store/database.ts";
import { rawAuditStore, type AuditRow } from "./helpers/audit-rows.ts";
import type { LightMyRequestResponse } from "fastify";
import { authFixture, HOST, type AuthFixture, type Browser } from "../src/http/auth/test-client.ts";
import { systemRandom } from "../src/lib/random.ts";
import { authFixtureOn, authFlows, EMAIL_LINK } from "./helpers/auth-flows.ts";
import { forEachDialect, type DialectFixture } from "./helpers/dialects.ts";
import { prng } from "../src/dev/seed.ts";
import { ensureSecondFactor } from "./helpers/second-factor.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/** Midnight UTC, 10 December 2026 (sign-in events carry sessionId, newDevice and failuresBefore). */
const T0 = Date.UTC(2026, 11, 10);

/** What the newest auth.login.succeeded of `userId` says of the browser (newDevice: no known-device cookie it could read). */
async function lastLoginNewDevice(fx: AuthFixture, userId: string): Promise<unknown> {
  const event = await fx.app.db.db.selectFrom("audit_events").select("data").where("type", "=", "auth.login.succeeded")
    .where("subject", "=", userId).orderBy("seq", "desc").limit(1).executeTakeFirstOrThrow();
  return (JSON.parse(event.data as string) as { newDevice?: unknown }).newDevice;
}

describe("the recorded master key check, written by someone with database access", () => {
  // One server per test: what a forged check does to a running process stays with it until it is restarted.
  let fx: AuthFixture;
  beforeEach(async () => {
    fx = await authFixture({ BULWARK_REQUIRE_MFA: "none" });
  });
  afterEach(async () => {
    await fx?.close();
  });

  const check = async (): Promise<string> =>
    (await fx.app.db.db.selectFrom("bulwark_meta").select("value").where("name", "=", MASTER_CHECK_META).executeTakeFirstOrThrow()).value;
  const writeCheck = (value: string): Promise<unknown> =>
    fx.app.db.db.updateTable("bulwark_meta").set({ value }).where("name", "=", MASTER_CHECK_META).execute();

  /** Signs `browser` in as `u` two hours on (past every freshness window) and says whether it counted as a new browser. */
  async function signIn(browser: Browser, u: { id: string; email: string; password: string }): Promise<unknown> {
    fx.clock.advance(2 * HOUR);
    const res = await browser.login(u.email, u.password);
    assert.equal(res.statusCode, 200, `the sign-in failed: ${res.body}`);
    return lastLoginNewDevice(fx, u.id);
  }

  it("attack: a forged keyring.master_check row (database write, no master key) neither switches the running server to another master key, nor stops sign-ins or sealing: it only makes every browser new, as the docs say of a rotation it cannot follow (ASVS 13.3.4, 11.6.1)", async () => {
    const u = await fx.user("forged-check@example.org", { password: "Marmalade Summer 2013 harbour" });
    const home = fx.browser({ newDevice: true });
    assert.equal(await signIn(home, u), true, "control: the first sign-in is a new browser's");
    assert.equal(await signIn(home, u), false, "control: the second is a known browser's");
    const held = fx.app.keyring.masterKeyId;
    const genuine = await check();
    try {
      await writeCheck(Buffer.from(systemRandom.bytes(32)).toString("hex"));
      assert.equal(await signIn(home, u), true, "a check the server cannot follow leaves it knowing no browser (the documented answer)");
      assert.equal(fx.app.keyring.masterKeyId, held, "the server took another master key from a forged check");
      const sealed = await fx.app.keyring.seal("still sealing", { table: "t", column: "c", row: "r" });
      assert.equal(await fx.app.keyring.unsealString(sealed, { table: "t", column: "c", row: "r" }), "still sealing");
    } finally {
      await writeCheck(genuine);
    }
  });

  it("attack: a forged keyring.master_check row written for a moment and put back — once the check names the very key the running server holds again, its known browsers are known again (ASVS 13.3.4, 6.3.5) (was: no browser known until a restart, each of the owner's sign-ins mailed as a stranger's, silently)", async () => {
    const u = await fx.user("restored-check@example.org", { password: "Marmalade Summer 2013 harbour" });
    const office = fx.browser({ newDevice: true });
    assert.equal(await signIn(office, u), true, "control: the first sign-in is a new browser's");
    assert.equal(await signIn(office, u), false, "control: the office browser is known");
    const genuine = await check();
    await writeCheck(Buffer.from(systemRandom.bytes(32)).toString("hex"));
    // Anyone's sign-in reads the key table (Keyring.fresh before the known-device cookie): the server meets the forged check.
    const other = await fx.user("restored-check-other@example.org", { password: "Marmalade Summer 2013 harbour" });
    await signIn(fx.browser({ newDevice: true }), other);
    // The row is put back (the intruder covers its tracks, or the operator restores it): it names the key the server holds.
    await writeCheck(genuine);
    const officeAfter = await signIn(office, u);
    assert.equal(officeAfter, false,
      "the office browser, known before and never signed in meanwhile, is new again once the recorded check names the server's own master key again: " +
        "Keyring.#checkMaster replaced the device key with a random one (#deviceKeyOrphaned) on a check it could not follow and never derives it " +
        "from the master key again, so one edited row makes every known browser new on this process until a restart — and nothing logged it");
  });
});

describe("two master key rotations, a node that followed the first by a copied key file [sqlite]", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-nc23-ring-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("attack: node B cannot follow the first rotation (its key file still holds K1) and knows no browser; the operator copies K2 to it and B follows; then a second rotation to K3 (K2 leaked too) that B cannot follow — B knows no browser again, and cookies forged with the leaked K2 are not known there (ASVS 13.3.4, 11.1.1) (was: B stayed on K2's device key: a one-way flag was never cleared)", async () => {
    const db = openSQLite(join(dir, "two-rotations.sqlite"), { create: true });
    try {
      await migrate(db, new ManualClock());
      const store = createKeyStore(db);
      const k1 = systemRandom.bytes(32);
      const k2 = systemRandom.bytes(32);
      const k3 = systemRandom.bytes(32);
      const nodeA = await Keyring.open({ masterKey: k1, store, clock: new ManualClock(Date.now()), random: systemRandom });
      await nodeA.ensureKeys();
      // Node B reads its own copy of master.key: what findRotatedMasterKey would find there.
      let fileOfB = k1;
      const reads = new ManualClock(Date.now());
      const nodeB = await Keyring.open({ masterKey: k1, store, clock: reads, random: systemRandom, findMasterKey: (check) => (masterKeyCheck(fileOfB) === check ? fileOfB : null) });
      const text = "known-device:devA:usr_x:0";
      const tagUnder = async (master: Uint8Array): Promise<string> =>
        (await Keyring.open({ masterKey: master, store, clock: new ManualClock(Date.now()), random: systemRandom })).deviceTag(text);

      await rotateMasterKey(db, nodeA, k2); // the first response: K1 was copied
      reads.advance(2_000);
      await nodeB.fresh();
      assert.notEqual(nodeB.deviceTag(text), await tagUnder(k2), "control: B cannot follow and knows no browser");
      fileOfB = k2; // the operator copies the new master.key to node B, as docs/containment.md says
      reads.advance(2_000);
      await nodeB.fresh();
      assert.equal(nodeB.masterKeyId, masterKeyId(k2), "control: B follows once its file holds the key the store records");
      assert.equal(nodeB.deviceTag(text), await tagUnder(k2), "control: B's device key is K2's again");

      const nodeA2 = await Keyring.open({ masterKey: k2, store, clock: new ManualClock(Date.now()), random: systemRandom });
      const forgedWithK2 = nodeA2.deviceTag(text); // what the holder of the leaked K2 computes
      await rotateMasterKey(db, nodeA2, k3); // the second response: K2 leaked as well
      reads.advance(2_000);
      await nodeB.fresh();
      assert.equal(nodeB.masterKeyId, masterKeyId(k2), "control: B's file still holds K2, so it cannot follow");
      assert.notEqual(nodeB.deviceTag(text), forgedWithK2,
        "node B, unable to follow the second rotation, still takes a known-device tag computed with the leaked K2: Keyring.#checkMaster returns early " +
          "when #deviceKeyOrphaned is already set, and #followMaster (which put K2's device key back) never clears that flag, so the second unfollowable " +
          "rotation leaves the device key of the key it replaced in place");
    } finally {
      await db.close();
    }
  });
});

forEachDialect("an unfinished sign-up taken at the moment its link is followed", (dx) => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  let writer: string;
  let n = 0;
  const NEW_PASSWORD = "amber lanterns drift over quiet harbours";
  before(async () => {
    fx = await authFixtureOn(dx, "nc23-signup-race", { BULWARK_REGISTRATION: "open" });
    const writerId = await flows.userWith(["accounts.write", "accounts.read"]);
    writer = await flows.tokenFor(writerId, ["accounts.write", "accounts.read"]);
  });
  after(async () => {
    await fx?.close();
  });

  const setEmail = (id: string, email: string): Promise<LightMyRequestResponse> =>
    fx.server.inject({ method: "POST", url: `/api/v1/users/${id}/email`, headers: { host: HOST, authorization: `Bearer ${writer}`, "content-type": "application/json" }, payload: JSON.stringify({ email }) });
  const complete = (token: string): Promise<LightMyRequestResponse> =>
    fx.browser({ newDevice: true }).request("POST", "/auth/password/reset/complete", { body: { token, newPassword: NEW_PASSWORD } });

  const signUp = (address: string): Promise<{ id: string; link: string }> => flows.unfinishedSignUp(address);

  /** The one consistent end of a race between a change taking `address` for `taker` and the sign-up `squat` finished by its link. */
  async function oneWinner(label: string, change: LightMyRequestResponse, finished: LightMyRequestResponse, taker: string, squat: string, address: string): Promise<string> {
    const holder = await fx.app.accounts.users.findByIdentifier(address);
    const signUp = await fx.app.accounts.users.getById(squat);
    const state = {
      change: change.statusCode, finished: finished.statusCode, holder: holder?.id === taker ? "taker" : holder?.id === squat ? "sign-up" : String(holder?.id),
      signUp: signUp === null ? "deleted" : signUp.passwordHash === null ? "unfinished" : "finished",
    };
    const changeWon = { change: 200, finished: 400, holder: "taker", signUp: "deleted" };
    const signUpWon = { change: 409, finished: 200, holder: "sign-up", signUp: "finished" };
    assert.ok(JSON.stringify(state) === JSON.stringify(changeWon) || JSON.stringify(state) === JSON.stringify(signUpWon),
      `${label}: the race ended in neither consistent state: ${JSON.stringify(state)} (change: ${change.body.slice(0, 160)}; link: ${finished.body.slice(0, 160)})`);
    return state.change === 200 ? "change" : "sign-up";
  }

  it("attack: an outsider follows its sign-up link at the very moment the administrator's set-email, or the owner's confirmed email change, takes the address — one of the two wins whole: never both answered 200, never a 500, never a deleted account whose link set a password nor an address left to nobody (ASVS 2.3.1, 6.4.1)", async () => {
    const winners: string[] = [];
    for (let round = 0; round < 4; round++) {
      // The administrator's way back: an account moved away from `address`, which an outsider signed up meanwhile.
      const address = `race-${++n}@example.org`;
      const account = await flows.signedIn(address);
      const elsewhere = `elsewhere-${n}@evil.test`;
      assert.equal((await account.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: elsewhere } })).statusCode, 202);
      assert.equal((await fx.browser().request("POST", "/auth/email/confirm", { body: { token: await flows.tokenIn(elsewhere, EMAIL_LINK) } })).statusCode, 200);
      fx.clock.advance(1_000);
      const squat = await signUp(address);
      const [changed, finished] = round % 2 === 0
        ? await Promise.all([setEmail(account.id, address), complete(squat.link)])
        : await Promise.all([complete(squat.link), setEmail(account.id, address)]).then(([f, c]) => [c, f] as const);
      winners.push(await oneWinner(`set-email, round ${round}`, changed, finished, account.id, squat.id, address));
      fx.clock.advance(1_000);
    }
    for (let round = 0; round < 4; round++) {
      // The owner's own change: the link mailed to the new address, an outsider's sign-up for it after.
      const owner = await flows.signedIn(`owner-${++n}@example.org`);
      const target = `target-${n}@example.org`;
      assert.equal((await owner.b.request("POST", "/auth/email/change", { csrf: true, body: { newEmail: target } })).statusCode, 202);
      const token = await flows.tokenIn(target, EMAIL_LINK);
      const squat = await signUp(target);
      const confirm = (): Promise<LightMyRequestResponse> => fx.browser().request("POST", "/auth/email/confirm", { body: { token } });
      const [changed, finished] = round % 2 === 0
        ? await Promise.all([confirm(), complete(squat.link)])
        : await Promise.all([complete(squat.link), confirm()]).then(([f, c]) => [c, f] as const);
      winners.push(await oneWinner(`email confirm, round ${round}`, changed, finished, owner.id, squat.id, target));
      fx.clock.advance(1_000);
    }
    assert.equal(winners.length, 8);
  });
});


/**
 * The window's median hour and its waves as `check logins` computed them before 84a0b83: one array slot per hour of the
 * window and one loop step per 10-minute bucket (dense). The reference the sparse walk must agree with. Since red team
 * 38 a wave is judged over 6 and 24 hours too (bars: --wave-min, and --wave-factor times the usual hours), failures
 * counted from 24 hours before the window, the 60-minute waves' buckets left out of the longer spans' counts, and a
 * longer span's wave running from the first to the last of its buckets above twice the usual rate.
 */
function denseReference(failures: readonly number[], since: number, until: number, waveMin: number, waveFactor: number): { median: number; waves: Array<[string, string, number]> } {
  const from = since - 24 * HOUR;
  const byBucket = new Map<number, number>();
  for (const at of failures) if (at >= from && at < until) byBucket.set(Math.floor(at / BUCKET_MS), (byBucket.get(Math.floor(at / BUCKET_MS)) ?? 0) + 1);
  const windowHours = Math.max(1, Math.ceil((until - since) / HOUR));
  const perHour = Array.from({ length: windowHours }, () => 0);
  for (const [bucket, n] of byBucket) if (bucket * BUCKET_MS >= since) perHour[Math.min(windowHours - 1, Math.floor((bucket * BUCKET_MS - since) / HOUR))]! += n;
  const sorted = [...perHour].sort((a, b) => a - b);
  const median = sorted[Math.floor((sorted.length - 1) / 2)]!;
  const n = (b: number): number => byBucket.get(b) ?? 0;
  const first = Math.floor(from / BUCKET_MS);
  const end = Math.ceil(until / BUCKET_MS);
  const hot = new Set<number>();
  const hourly = new Set<number>();
  for (const hours of [1, 6, 24]) {
    const threshold = Math.max(waveMin, waveFactor * Math.max(median, 1) * hours);
    const perWindow = (hours * HOUR) / BUCKET_MS;
    const count = (b: number): number => (hours > 1 && hourly.has(b) ? 0 : n(b));
    const above = Math.max(1, (2 * median) / 6);
    let sum = 0;
    for (let b = first; b < end; b++) {
      sum += count(b) - (b - perWindow >= first ? count(b - perWindow) : 0);
      if (sum < threshold) continue;
      if (hours === 1) {
        for (let k = Math.max(first, b - perWindow + 1); k <= b; k++) if (n(k) * 12 >= threshold) hourly.add(k);
        continue;
      }
      const marked = [];
      for (let k = Math.max(first, b - perWindow + 1); k <= b; k++) if (count(k) >= above) marked.push(k);
      if (marked.length > 0) for (let k = marked[0]!; k <= marked.at(-1)!; k++) hot.add(k);
    }
  }
  for (const b of hourly) hot.add(b);
  const spans: Array<{ first: number; last: number }> = [];
  for (const b of [...hot].sort((x, y) => x - y)) {
    const open = spans.at(-1);
    if (open && open.last === b - 1) open.last = b;
    else spans.push({ first: b, last: b });
  }
  const waves = spans.filter((w) => (w.last + 1) * BUCKET_MS > since).map((w): [string, string, number] => {
    let total = 0;
    for (let b = w.first; b <= w.last; b++) total += n(b);
    return [new Date(w.first * BUCKET_MS).toISOString(), new Date((w.last + 1) * BUCKET_MS).toISOString(), total];
  });
  return { median, waves };
}

describe("check logins: new rules of this session [sqlite]", () => {
  let dir: string;
  const opened: Database[] = [];
  let k = 0;
  const open = (): Database => {
    const db = openSQLite(join(dir, `logins-${++k}.sqlite`), { create: true });
    opened.push(db);
    return db;
  };
  const sqlite: DialectFixture = {
    fresh: async () => open(),
    empty: async () => open(),
    lastTarget: () => ({}),
  };
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-nc23-"));
  });
  after(async () => {
    for (const db of opened) await db.close().catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  });

  it("attack: on random campaigns (bursts at random minutes, background noise, windows of 3 to 40 hours starting off the 10-minute grid, failures in the hour before the window) the window's median hour and every wave's span and count equal what the dense per-hour, per-bucket walk gives — the sparse walk of 84a0b83 hides no wave and invents none (ASVS 16.3.1)", async () => {
    const differ: string[] = [];
    for (let seed = 1; seed <= 12; seed++) {
      const rnd = prng(seed * 7919);
      const since = T0 + Math.floor(rnd() * 6 * HOUR) + Math.floor(rnd() * 600) * 1_000;
      const until = since + Math.floor((3 + rnd() * 37) * HOUR) + Math.floor(rnd() * 59) * MINUTE;
      const failures: number[] = [];
      // Background noise over the hour before the window to past its end.
      const noise = Math.floor(rnd() * 400);
      for (let i = 0; i < noise; i++) failures.push(since - HOUR - 30 * MINUTE + Math.floor(rnd() * (until - since + 2 * HOUR)));
      // Bursts: a few minutes to two hours long, some straddling the window's start or end, some in the same hour.
      const bursts = 1 + Math.floor(rnd() * 6);
      for (let j = 0; j < bursts; j++) {
        const start = since - HOUR + Math.floor(rnd() * (until - since + HOUR));
        const length = Math.floor((2 + rnd() * 118) * MINUTE);
        const size = 20 + Math.floor(rnd() * 300);
        for (let i = 0; i < size; i++) failures.push(start + Math.floor(rnd() * length));
      }
      const { database, insert } = await rawAuditStore(sqlite, T0 - 30 * DAY, `pt${seed}x`);
      await insert(failures.sort((a, b) => a - b).map((at, i): AuditRow => ({
        type: "auth.login.failed", subject: `id:tag${seed}n${i % 97}`, at, data: { ip: `198.51.100.${(i % 200) + 1}`, reason: "unknown-account", userAgent: "Mozilla/5.0" },
      })));
      const waveMin = 10 + Math.floor(rnd() * 60);
      const waveFactor = 1 + Math.floor(rnd() * 4);
      const report = await checkLogins(database, { ...DEFAULT_LOGINS_OPTIONS, since, until, waveMin, waveFactor, baselineDays: 0, sprayMin: 1_000, guessMin: 1_000 });
      const expected = denseReference(failures, since, until, waveMin, waveFactor);
      const got = { median: report.medianFailedPerHour, waves: report.waves.map((w): [string, string, number] => [w.from, w.to, w.failed]) };
      if (JSON.stringify(got) !== JSON.stringify(expected)) differ.push(`seed ${seed}: sparse ${JSON.stringify(got)} vs dense ${JSON.stringify(expected)}`);
    }
    assert.deepEqual(differ, [], "the sparse walk disagrees with the dense one");
  });

  it("attack: a /48 rotating its /64s writes them in every spelling (upper case, leading zeros, brackets and a port, a zone id) and signs in as `[2001:DB8:0048:FFFF::7]:443`; a 6to4 host and a Teredo client rotate the /64s their IPv4 address gives them — the /48 is one site, each tunnel one IPv4 client, and the sign-in is from the site (ASVS 16.3.1)", async () => {
    const { database, insert } = await rawAuditStore(sqlite, T0 - 30 * DAY, "spell");
    const rows: AuditRow[] = [];
    const failed = (subject: string, at: number, ip: string): AuditRow => ({ type: "auth.login.failed", subject, at, data: { ip, reason: "unknown-account", userAgent: "Mozilla/5.0" } });
    const hex = (i: number, width = 0): string => i.toString(16).padStart(width, "0");
    const spell = [
      (i: number) => `2001:db8:48:${hex(0x100 + i)}::1`,
      (i: number) => `2001:DB8:48:${hex(0x100 + i).toUpperCase()}::A`,
      (i: number) => `2001:0db8:0048:${hex(0x100 + i, 4)}:0000:0000:0000:0001`,
      (i: number) => `[2001:db8:48:${hex(0x100 + i)}::2]:44${i % 10}`,
      (i: number) => `2001:db8:48:${hex(0x100 + i)}::3%eth0`,
    ];
    for (let i = 0; i < 210; i++) rows.push(failed(`id:site${i}`, T0 + 6 * HOUR + i * 150_000, spell[i % spell.length]!(i)));
    // 6to4: 2002:c000:0201::/48 is 192.0.2.1's, and every /64 of it too.
    for (let i = 0; i < 30; i++) rows.push(failed(`id:sixtofour${i}`, T0 + 7 * HOUR + i * MINUTE, `2002:c000:201:${hex(i + 1)}::1`));
    // Teredo: 2001:0:server:flags:port:client (inverted) — another server or port is another /64, the same client 198.51.100.9.
    for (let i = 0; i < 25; i++) rows.push(failed(`id:teredo${i}`, T0 + 8 * HOUR + i * MINUTE, `2001:0:${hex(0x4136 + i)}:e378:8000:${hex(0x63bf + i)}:39cc:9bf6`));
    rows.push({
      type: "auth.login.succeeded", subject: "usr_site", at: T0 + 17 * HOUR,
      data: { ip: "[2001:DB8:0048:FFFF::7]:443", userAgent: "Mozilla/5.0", rehashed: false, fromScheme: "argon2id", mustChangePassword: false, failuresBefore: 0, sessionId: "ses_site", newDevice: true },
    });
    rows.sort((a, b) => a.at - b.at);
    await insert(rows);
    const report = await checkLogins(database, { ...DEFAULT_LOGINS_OPTIONS, since: T0, until: T0 + DAY, pageSize: 100 });
    assert.deepEqual(report.sprayingAddresses.map((a) => [a.ip, a.accounts, a.signIns]).sort(),
      [["192.0.2.1", 30, 0], ["198.51.100.9", 25, 0], ["2001:db8:48::/48", 210, 1]], JSON.stringify(report.sprayingAddresses));
    assert.deepEqual(report.reportedAccounts, ["usr_site"]);
  });

  it("attack: one compromised host's /64 on a campus /48 sprays 250 accounts while 60 other /64s of the campus each mistype one password — only that /64 is a spraying client, and a staff member's new laptop on another /64 is not reported (ASVS 16.3.1) (was: the /48 listed as a spraying site, the laptop's sign-in high and in --ids-out)", async () => {
    const { database, insert } = await rawAuditStore(sqlite, T0 - 30 * DAY, "site");
    const rows: AuditRow[] = [];
    const failed = (subject: string, at: number, ip: string): AuditRow => ({
      type: "auth.login.failed", subject, at, data: { ip, reason: subject.startsWith("id:") ? "unknown-account" : "wrong-password", userAgent: "Mozilla/5.0" },
    });
    const signedIn = (userId: string, at: number, ip: string, newDevice: boolean): AuditRow => ({
      type: "auth.login.succeeded", subject: userId, at,
      data: { ip, userAgent: "Mozilla/5.0", rehashed: false, fromScheme: "argon2id", mustChangePassword: false, failuresBefore: 0, sessionId: `ses_${userId}_${at}`, newDevice },
    });
    // The compromised host: 250 accounts over ten hours from addresses of its one /64 (25 an hour: no wave).
    for (let i = 0; i < 250; i++) rows.push(failed(`id:sprayed${i}`, T0 + 6 * HOUR + i * 144_000, `2001:db8:ca:bad::${(i % 5) + 1}`));
    // The rest of the campus: 60 machines, each on its own /64, each mistyping its owner's password once.
    for (let i = 1; i <= 60; i++) rows.push(failed(`usr_staff${i}`, T0 + 5 * HOUR + i * MINUTE, `2001:db8:ca:${i.toString(16)}::1`));
    // The stuffer's hit from its /64, and a staff member's new laptop on another /64 of the campus.
    rows.push(signedIn("usr_victim", T0 + 17 * HOUR, "2001:db8:ca:bad::9", true));
    rows.push(signedIn("usr_staff7", T0 + 18 * HOUR, "2001:db8:ca:7::20", true));
    rows.sort((a, b) => a.at - b.at);
    await insert(rows);
    const report = await checkLogins(database, { ...DEFAULT_LOGINS_OPTIONS, since: T0, until: T0 + DAY, pageSize: 100 });
    // 25 an hour for ten hours against a quiet store is a wave of the longer spans (since red team 38b); no sign-in
    // came during it, so it names no one.
    assert.ok(report.waves.every((w) => w.newDeviceSignIns === 0), JSON.stringify(report.waves));
    assert.deepEqual(report.guessedAccounts, [], "no account guessed (this test's premise)");
    const listed = report.sprayingAddresses.map((a) => [a.ip, a.accounts, a.signIns]);
    assert.deepEqual({ sprayingAddresses: listed, reportedAccounts: [...report.reportedAccounts].sort() },
      { sprayingAddresses: [["2001:db8:ca:bad::/64", 250, 1]], reportedAccounts: ["usr_victim"] },
      "the spraying /64's own 250 accounts carried the campus /48 over the site bar (ten times --spray-min) with the 60 typos of its other /64s: " +
        "queries.ts sprayingSites sums every /64 of the /48, the one already a spraying client included, so any second /64 with a failure makes the whole " +
        "/48 a spraying client, and every new-browser sign-in from the campus is reported high and written to --ids-out");
  });
});

describe("/api/v1 number fields against JSON of another shape", () => {
  let fx: AuthFixture;
  let token: string;
  before(async () => {
    fx = await authFixture();
    const admin = await fx.user("nc23-numbers-admin@example.org", { roles: ["admin"] });
    await ensureSecondFactor(fx.app, admin.id); // the MFA policy holds an administrator's token while the account has no factor
    token = (await fx.app.accounts.tokens.create(admin.id, { name: "nc23-numbers", scopes: ["admin"] })).token;
  });
  after(async () => {
    await fx?.close();
  });

  it("attack: the number fields of POST /api/v1/contain/jobs given as a digit string, a one-element array, an object, an exponent string, 1e400 (Infinity), a duplicate key whose last value is text, or inside an options object sent as a one-element array are each a 400 naming the field — never read as 10, and no job is made (ASVS 2.2.1, 16.5.3)", async () => {
    const victim = (await fx.user("nc23-numbers-victim@example.org")).id;
    const jobsBefore = (await fx.app.db.db.selectFrom("jobs").select("id").execute()).length;
    const base = `"levers":["demote-inactive-admins","invalidate-passwords"],"scope":{"ids":["${victim}"]},"dryRun":true`;
    const bodies: Array<[string, string]> = [];
    for (const value of [`"10"`, `[10]`, `{}`, `"1e1"`, `1e400`]) {
      bodies.push(["batchSize", `{${base},"batchSize":${value}}`]);
      bodies.push(["inactiveDays", `{${base},"options":{"inactiveDays":${value}}}`]);
      bodies.push(["emailChangedWithinDays", `{${base},"options":{"emailChangedWithinDays":${value}}}`]);
    }
    bodies.push(["batchSize", `{${base},"batchSize":10,"batchSize":"10"}`]);
    bodies.push(["emailChangedWithinDays", `{${base},"options":{"emailChangedWithinDays":30,"emailChangedWithinDays":null}}`]);
    bodies.push(["options", `{${base},"options":[{"emailChangedWithinDays":null}]}`]);
    bodies.push(["options", `{${base},"options":[{"inactiveDays":true}]}`]);
    const wrong: string[] = [];
    for (const [field, body] of bodies) {
      const res = await fx.server.inject({ method: "POST", url: "/api/v1/contain/jobs", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, payload: body });
      if (!(res.statusCode === 400 && res.body.includes(field))) wrong.push(`${body.slice(base.length + 2)} → ${res.statusCode} ${res.body.slice(0, 140)}`);
    }
    assert.deepEqual(wrong, [], "a number field took a value of another JSON shape");
    assert.equal((await fx.app.db.db.selectFrom("jobs").select("id").execute()).length, jobsBefore, "no job was made");
  });
});
