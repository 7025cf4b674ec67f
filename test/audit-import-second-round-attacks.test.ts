// Second-round attacks on the audit log (verify, export, tail, GET /api/v1/audit/events): what the first round
// (test/audit-attacks, audit-cli, audit-api, audit-concurrency, src/audit/*.test.ts) missed, chiefly where a defence
// added in one place is not noticed by another. (The `users import` attacks tried this round held, and are already
// pinned by test/cli-users-import*, import-hash-attacks and src/accounts/import/*.test.ts.) Each test is an attack that must fail on
// correct code; an "attack: … (was: …)" test failed on the code before its fix.
// SQLite only; temp dirs only; the CLI runs in this process.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { openApp, type OpenedApp } from "../src/app/index.ts";
import { AuditLog } from "../src/audit/audit-log.ts";
import { eventHash, GENESIS_HASH } from "../src/audit/chain.ts";
import { verifyChain } from "../src/audit/verify.ts";
import { Keyring } from "../src/crypto/keyring.ts";
import { openSQLite } from "../src/store/database.ts";
import { createKeyStore } from "../src/store/key-store.ts";
import { migrate } from "../src/store/migrator.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { systemRandom } from "../src/lib/random.ts";
import { openAPIFixture, type APIFixture } from "./helpers/api-fixture.ts";
import { bulwarkInProcess } from "./helpers/cli.ts";

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "bulwark-audit-import-r2-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

let counter = 0;

/** A fresh data dir initialised in this process; returns its env (for the CLI) and the open app. */
async function initialised(): Promise<{ env: Record<string, string>; app: OpenedApp; dbPath: string }> {
  const dir = join(root, `d${++counter}`);
  const env = { BULWARK_DATA_DIR: dir, BULWARK_LOG_LEVEL: "silent" };
  const app = await openApp({ env, mode: "init", actor: "cli:test" });
  return { env, app, dbPath: join(dir, "bulwark.db") };
}

describe("red team (round 2): audit verify on a database", () => {
  it("attack: a log emptied whole (every event, every checkpoint, the head reset to #0) is not reported intact: every opened store records its migrations as events, as the offline verify already knows an empty export was cut (ASVS 16.4.2) (was: \"intact: 0 events\", exit 0)", async () => {
    const { env, app, dbPath } = await initialised();
    for (let i = 0; i < 5; i++) await app.audit.append({ type: "auth.login.failed", actor: "id:abc", data: { i } });
    await app.audit.checkpoint();
    const before = await app.audit.verify();
    assert.equal(before.ok, true);
    assert.ok(before.events > 5 && before.checkpointsChecked > 0, "an initialised log holds init's events and a checkpoint");
    await app.close();

    // The intruder with the database file: three statements.
    const raw = new DatabaseSync(dbPath);
    raw.exec("DELETE FROM audit_events; DELETE FROM audit_checkpoints; UPDATE audit_head SET seq = 0, hash = '" + "0".repeat(64) + "' WHERE id = 1;");
    raw.close();

    const r = await bulwarkInProcess(["audit", "verify", "--json"], env);
    const report = JSON.parse(r.stdout || "{}") as { ok?: boolean; events?: number };
    assert.equal(report.events, 0);
    assert.equal(r.code, 1, `an emptied log must not verify as intact (exit ${r.code}): ${r.stdout}`);
    assert.equal(report.ok, false);
  });
});

describe("an empty log that is rightly empty (companion of the attack above)", () => {
  it("a store between its migrations and its first events, as while init runs, verifies intact; once it holds a key, an empty log is an emptied one", async () => {
    // What openApp does before it appends store.migrated: migrations committed, the keyring opened, no key yet.
    const clock = new ManualClock();
    const database = openSQLite(join(root, `fresh${++counter}.db`), { create: true });
    try {
      assert.equal((await migrate(database, clock)).error, undefined);
      const keyring = await Keyring.open({ masterKey: systemRandom.bytes(32), store: createKeyStore(database), clock, random: systemRandom });
      const audit = new AuditLog({ database, clock, random: systemRandom });
      const fresh = await audit.verify();
      assert.equal(fresh.ok, true, fresh.problem?.problem);
      assert.equal(fresh.events, 0);
      // init creates the keys only after the store.migrated events are appended: keys with no event mean the log was emptied.
      await keyring.ensureKeys();
      const emptied = await audit.verify();
      assert.equal(emptied.ok, false);
      assert.match(emptied.problem?.problem ?? "", /the log was emptied/);
    } finally {
      await database.close();
    }
  });
});

describe("red team (round 2): a time no Date can hold, in the CLI's human output", () => {
  it("attack: the newest event re-hashed with a time past Date's range (8.64e15 ms, yet a safe integer) is named by `audit verify` as altered, not an internal error (ASVS 16.4.2) (was: the chain verified, then printing its time failed: internal error, exit 3)", async () => {
    const { env, app, dbPath } = await initialised();
    for (let i = 0; i < 3; i++) await app.audit.append({ type: "r2.demo", actor: "system", data: { i } });
    await app.close();
    // The newest event is covered by no checkpoint (documented): its hash and the head can be recomputed. The time
    // chosen is one no append writes: below the bound verify checks (Number.MAX_SAFE_INTEGER), past Date's.
    const raw = new DatabaseSync(dbPath);
    const row = raw.prepare("SELECT * FROM audit_events ORDER BY seq DESC LIMIT 1").get() as Record<string, string | number>;
    const at = 9_000_000_000_000_000;
    const hash = eventHash({ seq: Number(row["seq"]), id: String(row["id"]), type: String(row["type"]), actor: String(row["actor"]), subject: String(row["subject"]), at, requestId: String(row["request_id"]), prevHash: String(row["prev_hash"]), data: String(row["data"]) });
    raw.prepare("UPDATE audit_events SET at = ?, hash = ? WHERE seq = ?").run(at, hash, row["seq"]!);
    raw.prepare("UPDATE audit_head SET hash = ? WHERE id = 1").run(hash);
    raw.close();

    const verify = await bulwarkInProcess(["audit", "verify"], env);
    assert.doesNotMatch(verify.stderr, /internal error/, `verify must report, not crash: ${verify.stderr.trim()}`);
    assert.equal(verify.code, 1, `a time no append writes is an altered row: exit ${verify.code} ${verify.stdout}`);
    assert.match(verify.stdout, new RegExp(`BROKEN at event #${row["seq"]}`));
  });

  it("attack: an export whose event was re-hashed with a time no Date can hold is named as altered offline too, as the database's verify does (ASVS 16.4.2)", async () => {
    const base = { seq: 1, id: "evt_1", type: "t", actor: "system", subject: "", requestId: "", prevHash: GENESIS_HASH, data: "{}" };
    const at = 9_000_000_000_000_000;
    const report = await verifyChain((async function* () {
      yield { ...base, at, hash: eventHash({ ...base, at }) };
    })());
    assert.equal(report.ok, false);
    assert.match(report.problem?.problem ?? "", /holds the time 9000000000000000, which no append writes/);
  });

  it("attack: `audit tail` on a log with one row whose time was altered past Date's range still shows that row and the newer ones, instead of an internal error after the older ones (ASVS 16.4.2, 16.5.3) (was: internal error, exit 3, the newer events not shown)", async () => {
    const { env, app, dbPath } = await initialised();
    const altered = await app.audit.append({ type: "r2.tail.altered", actor: "system" });
    await app.audit.append({ type: "r2.tail.newer", actor: "system", subject: "usr_evidence" });
    await app.close();
    const raw = new DatabaseSync(dbPath);
    raw.prepare("UPDATE audit_events SET at = ? WHERE seq = ?").run(9_000_000_000_000_000, altered.seq);
    raw.close();

    const tail = await bulwarkInProcess(["audit", "tail", "-n", "5"], env);
    assert.doesNotMatch(tail.stderr, /internal error/, `tail must not crash on an altered row: ${tail.stderr.trim()}`);
    assert.equal(tail.code, 0);
    assert.match(tail.stdout, /r2\.tail\.altered/);
    assert.match(tail.stdout, /r2\.tail\.newer actor=system subject=usr_evidence/, "the events after the altered row are shown");
  });
});

describe("red team (round 2): GET /api/v1/audit/events", () => {
  let fx: APIFixture;
  let token: string;
  before(async () => {
    fx = await openAPIFixture();
    const auditor = await fx.user(["audit.read"]);
    token = await fx.token(auditor.id, ["audit.read"]);
  });
  after(async () => {
    await fx?.close();
  });

  it("attack: ?since= drops an intact event appended by a node whose clock is behind, though `audit export --since` keeps it: a poller misses it silently (ASVS 16.4.2, 16.3.1) (was: every page filtered by time, the event silently dropped)", async () => {
    const a = await fx.app.audit.append({ type: "r2.since.first", actor: "system" });
    // Another node (or this one after an NTP step) a minute behind appends the next event of the same chain.
    const lagging = new ManualClock(a.at - 60_000);
    const other = new AuditLog({ database: fx.app.db, clock: lagging, random: systemRandom });
    const b = await other.append({ type: "r2.since.lagging-node", actor: "usr_suspect", subject: "usr_victim" });
    const c = await fx.app.audit.append({ type: "r2.since.third", actor: "system" });
    assert.deepEqual([b.seq, c.seq], [a.seq + 1, a.seq + 2], "one chain, in order");
    assert.equal((await fx.app.audit.verify()).ok, true, "the log is intact: nothing was tampered with");

    // What the CLI export of the same window holds (read-events: from the first event at or after T, every later one).
    const exported: string[] = [];
    for await (const e of fx.app.audit.events({ sinceAt: a.at })) exported.push(e.type);
    assert.deepEqual(exported.slice(0, 3), ["r2.since.first", "r2.since.lagging-node", "r2.since.third"]);

    const res = await fx.call("GET", `/api/v1/audit/events?since=${a.at}&limit=200`, { token });
    assert.equal(res.statusCode, 200, res.body);
    const seqs = (res.json() as { events: Array<{ seq: number }> }).events.map((e) => e.seq);
    assert.ok(seqs.includes(b.seq), `the API window from #${a.seq} on must not skip #${b.seq}: got ${seqs.join(",")}`);
  });

  it("attack: one row whose time was altered past what a Date holds does not fail the page (500) and stall every poller's cursor behind it (ASVS 16.4.2, 16.5.3) (was: 500 on every page holding the row)", async () => {
    const last = (await fx.app.audit.tail(1))[0]!;
    const first = await fx.app.audit.append({ type: "r2.time.before", actor: "system" });
    const victim = await fx.app.audit.append({ type: "r2.time.altered", actor: "system" });
    await fx.app.audit.append({ type: "r2.time.after", actor: "system" });
    assert.ok(first.seq > last.seq);
    // A safe integer (so verify reads it and names the row as altered), but past Date's 8.64e15 ms.
    await fx.app.db.db.updateTable("audit_events").set({ at: 9_000_000_000_000_000 }).where("seq", "=", victim.seq).execute();
    const verdict = await fx.app.audit.verify();
    assert.equal(verdict.ok, false, "verify names the altered row");

    const res = await fx.call("GET", `/api/v1/audit/events?since=0&limit=200`, { token });
    assert.equal(res.statusCode, 200, `an altered row must not fail the page: ${res.statusCode} ${res.body.slice(0, 200)}`);
    const types = (res.json() as { events: Array<{ type: string }> }).events.map((e) => e.type);
    assert.ok(types.includes("r2.time.before") && types.includes("r2.time.after"), "the intact events around it are served");
    const shown = (res.json() as { events: Array<{ seq: number; at: string | null; rawAt?: string }> }).events.find((e) => e.seq === victim.seq);
    assert.deepEqual([shown?.at, shown?.rawAt], [null, "9000000000000000"], "the altered time is shown as stored, as rawData is");
  });

  it("a poller paging ?since= one event at a time reaches every event from the start on, whatever its time, and its cursor stays bound to the window", async () => {
    const a = await fx.app.audit.append({ type: "r2.page.first", actor: "system" });
    const other = new AuditLog({ database: fx.app.db, clock: new ManualClock(a.at - 3_600_000), random: systemRandom });
    const b = await other.append({ type: "r2.page.lagging", actor: "system" });
    const c = await fx.app.audit.append({ type: "r2.page.third", actor: "system" });
    const seen: number[] = [];
    let cursor: string | null = null;
    let first: string | null = null;
    do {
      const url: string = `/api/v1/audit/events?since=${a.at}&limit=1${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const res = await fx.call("GET", url, { token });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json() as { events: Array<{ seq: number }>; nextCursor: string | null };
      seen.push(...body.events.map((e) => e.seq));
      cursor = body.nextCursor;
      first ??= cursor;
    } while (cursor !== null && seen.length < 50);
    assert.deepEqual(seen.filter((s) => s >= a.seq).slice(0, 3), [a.seq, b.seq, c.seq]);
    // A cursor of this window cannot be carried into one starting later. (One millisecond later, not at c.at: a and c
    // are often appended in the same millisecond, and then since=c.at was the same window and the cursor fit it.)
    const moved = await fx.call("GET", `/api/v1/audit/events?since=${a.at + 1}&limit=1&cursor=${encodeURIComponent(first!)}`, { token });
    assert.equal(moved.statusCode, 400);
  });
});
