// Red team, round "lock holds": how much work Bulwark's own bulk operations do inside one hold of SQLite's write lock.
//
// Attacker / situation: nobody malicious holds anything here — the "attack" is Bulwark's own operator (or its own
// server's maintenance pass) doing bulk or destructive work on an incident day, on a site of realistic size, while
// `bulwark serve` keeps serving beside it. SQLite has ONE write lock for the whole file: while a CLI process or the
// server's own maintenance holds it, every write of every request (a login's session, a flood count, an audit
// event) waits up to the busy timeout (10 s) and then answers 503 BULWARK_ERR_DB_BUSY. A single transaction (or a
// single autocommit statement) that holds the lock for seconds is an outage of logins.
//
// What must hold (our judgement, from docs/containment.md "batches stay short and logins are not held up",
// ARCHITECTURE.md "batched work (containment, census, imports, purges) is far shorter", ADR 0005's accepted 1.4 s
// whole-table step at two million sessions): bulk work is cut into write transactions whose size is fixed by a
// batch, never by the size of the site. Per operation, from what its code writes:
//   contain --all: a batch transaction changes at most (rows per account) × --batch-size rows plus a few rows of
//     bookkeeping (the job's progress row, its audit events). Rows per account: each lever updates the account's row
//     and records one undo row (contain_changes); expire-passwords also queues one notice (outbox_messages). So
//     lock-accounts + expire-passwords: 5; expire-passwords alone: 3. At the largest allowed --batch-size (5000; no
//     bound is documented for it) the same rule.
//   users import: at most --batch accounts per transaction (default 500).
//   users migrate-hashes: at most --batch accounts per transaction (default 200); the hashing happens before it.
//   keys rotate-master: one transaction that writes each wrapped key once, the master check and its audit event.
//   maintenance, sessions purge: at most PURGE_BATCH rows per DELETE statement, each its own autocommit statement.
//   maintenance, flood_events prune: at most PRUNE_BATCH (5,000) events per DELETE, each its own autocommit statement.
// Not bounded by a batch, by design, and so only checked for what they do: the scope recorded at a job's creation
// (one INSERT … SELECT, a narrow row per account in scope) and `contain revoke-sessions`' whole-table rebuild (ADR 0005).
//
// How it is observed: counted, not timed. test/helpers/write-transactions.ts wraps node:sqlite (statement run/all/get/
// iterate and DatabaseSync.exec) and records, per write transaction (BEGIN … COMMIT/ROLLBACK) and per autocommit write
// statement, the rows changed, per table, and the statements run. A spawned `bulwark` gets it preloaded (NODE_OPTIONS
// --import) and writes the record as JSON at exit; the maintenance pass runs in this process with the recorder
// installed around it. A hold grows with the rows its transaction changes, so a batch that is not applied shows as a
// transaction of the whole site's rows, on any host, however fast or slow. The site is small (3,000 users, 6 sessions
// each) but every batched operation runs at least three batches. How long the holds last, in ms, on a site of 50,000
// users is measured by the benchmark bench/lock-holds.ts (`npm run bench -- lock-holds`), with the numbers this file
// used to list; it is never asserted here.
//
// Found (fixed since: purgeExpired deletes in batches of PURGE_BATCH rows, each its own statement, with a turn for the
// event loop between them): the maintenance pass's `sessions` step (SessionManager.purgeExpired) deleted every expired
// session in one autocommit DELETE whose WHERE (`not openSessionSQL`) no index serves. After any outage longer than the
// idle timeout (an upgrade, a reboot) every session is expired, and the first pass — 0.5–1 s after `serve` starts,
// exactly when everyone signs in again — held the write lock for seconds on a site of a few hundred thousand sessions.
// Found next (fixed since the same way: FloodControl.prune deletes oldest first, PRUNE_BATCH events a statement): the
// flood_events prune was the same shape, one DELETE of the pass's whole share, ~2.5 µs an event; pinned as accepted
// while its share looked bounded by the windows, but a credential-stuffing hour of a million refusals makes it a
// 2.5 s hold (bench/lock-holds.ts measured 0.62 s at 150,000 on a loaded host).
import assert from "node:assert/strict";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it, type TestContext } from "node:test";
import { openApp } from "../src/app/open-app.ts";
import { startMaintenance } from "../src/http/maintenance.ts";
import { ManualClock } from "../src/lib/clock.ts";
import { bulwark } from "./helpers/cli.ts";
import { largest, recordingEnv, recordWriteTransactions, type WriteRecord, type WriteTransaction } from "./helpers/write-transactions.ts";

const USERS = 3_000;
const SESSIONS_PER_USER = 6;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/**
 * The most sessions one purge statement may delete: PURGE_BATCH as src/accounts/sessions/session-manager.ts sets it
 * (about 6 ms of write lock). A number here, not the import, so a purge made one statement by raising the constant fails too.
 */
const PURGE_ROWS = 1_000;
/** The most flood events one prune statement may delete: PRUNE_BATCH of src/accounts/flood/flood.ts, written out here likewise. */
const FLOOD_PRUNE_BATCH = 5_000;
/** Rows a batch transaction may write besides the accounts' own: the job's progress row and its audit events. */
const BOOKKEEPING = 5;

const cheap = { BULWARK_ARGON2_MEMORY_KIB: "1024", BULWARK_ARGON2_TIME: "1", BULWARK_LOG_LEVEL: "silent", BULWARK_BREACH_RANGE_URL: "", BULWARK_BREACH_FILE: "" };

let root: string;
let seeded: string;
let copies = 0;
let records = 0;

async function seed(dir: string, users: number, sessionsPerUser: number): Promise<void> {
  const env = { BULWARK_DATA_DIR: dir, ...cheap };
  const init = await bulwark(["init"], { env });
  assert.equal(init.code, 0, init.stderr);
  const r = await bulwark(["dev", "seed", "--users", String(users), "--sessions-per-user", String(sessionsPerUser), "--json"], { env, limitMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), "bulwark-lock-holds-"));
  seeded = join(root, "seeded");
  await seed(seeded, USERS, SESSIONS_PER_USER);
});
after(() => rmSync(root, { recursive: true, force: true }));

type Site = { data: string; db: string; env: NodeJS.ProcessEnv };

/** A copy of the seeded data dir `from` (the file and its key), for one test to change. */
function site(from = seeded): Site {
  const data = join(root, `copy-${++copies}`);
  cpSync(from, data, { recursive: true });
  return { data, db: join(data, "bulwark.db"), env: { BULWARK_DATA_DIR: data, ...cheap } };
}

/** Runs `bulwark ARGS` on `s` with the write-transaction recorder preloaded; the command must succeed. */
async function recordCLI(t: TestContext, s: Site, args: string[]): Promise<WriteRecord & { stdout: string }> {
  const out = join(root, `record-${++records}.json`);
  const r = await bulwark(args, { env: { ...s.env, ...recordingEnv(out) }, limitMs: 120_000 });
  assert.equal(r.signal, null, "the command ended on its own");
  assert.equal(r.code, 0, r.stderr);
  const record = JSON.parse(readFileSync(out, "utf8")) as WriteRecord;
  t.diagnostic(`bulwark ${args.join(" ")}: ${summary(record)}`);
  return { ...record, stdout: r.stdout };
}

/** One maintenance pass of a server opened in this process on `s` at `clock`, with the recorder installed around it. */
async function recordMaintenance(t: TestContext, s: Site, clock: ManualClock): Promise<WriteRecord & { removed: Record<string, number> }> {
  // Installed before the app opens, so every statement of its connection is known to belong to it.
  const recorder = recordWriteTransactions();
  let removed: Record<string, number> = {};
  let record: WriteRecord;
  try {
    const app = await openApp({ env: { ...s.env, BULWARK_DATABASE_URL: "", BULWARK_MASTER_KEY: "", BULWARK_MAX_CLOCK_SKEW_SECONDS: "0" }, mode: "open", clock });
    try {
      const maintenance = startMaintenance(app, { intervalMs: 10 * 24 * HOUR, firstPassDelayMs: 10 * 24 * HOUR });
      try {
        removed = await maintenance.runOnce();
      } finally {
        await maintenance.stop();
      }
    } finally {
      await app.close();
    }
  } finally {
    record = recorder.stop();
  }
  t.diagnostic(`maintenance pass: ${summary(record)}; removed ${JSON.stringify(Object.fromEntries(Object.entries(removed).filter(([, n]) => n !== 0)))}`);
  return { ...record, removed };
}

function summary(record: WriteRecord): string {
  const top = largest(record.transactions);
  return `${record.transactions.length} write transactions/statements, largest ${top.rows} rows (${JSON.stringify(top.byTable)})`;
}

/** The transactions that wrote to `table`. */
function touching(record: WriteRecord, table: string): WriteTransaction[] {
  return record.transactions.filter((x) => (x.byTable[table] ?? 0) > 0);
}

/**
 * A containment job's batch transactions (those that changed accounts) each change at most `perAccount` × `batch` rows
 * plus bookkeeping, and there are at least `batches` of them; every account in scope was reached.
 */
function assertContainBatches(record: WriteRecord, options: { levers: number; perAccount: number; batch: number; users: number; what: string }): void {
  const batches = touching(record, "users");
  const bound = options.perAccount * options.batch + BOOKKEEPING;
  const top = largest(batches);
  assert.ok(top.rows <= bound,
    `${options.what}: one write transaction changed ${top.rows} rows (${JSON.stringify(top.byTable)}), more than ${options.perAccount} rows per account × a batch of ${options.batch} ` +
    `+ ${BOOKKEEPING} (${bound}): the batch size was not applied, and SQLite's write lock is held for the whole site's work at once`);
  const expected = Math.ceil(options.users / options.batch);
  assert.ok(batches.length >= expected, `the recorder saw the job's batches: ${batches.length} transactions changed accounts, expected at least ${expected}`);
  assert.equal(batches.reduce((n, x) => n + (x.byTable["contain_changes"] ?? 0), 0), options.users * options.levers, "an undo row per lever and account, all recorded");
}

describe("containment over --all (docs/containment.md: batches of 1000 on SQLite so logins are not held up)", () => {
  it("attack: `contain lock-accounts expire-passwords --all` at the default batch size (a mail queued per user) — no write transaction larger than 5 rows per account × 1000 (ASVS 13.1.3, 16.5.2)", { timeout: 120_000 }, async (t) => {
    const s = site();
    const r = await recordCLI(t, s, ["contain", "lock-accounts", "expire-passwords", "--all", "--yes", "--json"]);
    const job = JSON.parse(r.stdout) as { status: string; counts: Record<string, Record<string, number>> };
    assert.equal(job.status, "done");
    assert.equal(job.counts["expire-passwords"]?.["noticesQueued"], USERS, "a notice per user");
    assertContainBatches(r, { levers: 2, perAccount: 5, batch: 1000, users: USERS, what: "contain lock-accounts expire-passwords --all" });
  });

  it("attack: `contain expire-passwords --all --batch-size 5000` (the largest allowed; no bound documented) — no write transaction larger than 3 rows per account × 5000 (ASVS 13.1.3)", { timeout: 180_000 }, async (t) => {
    // Three batches of the largest size need more accounts than the shared site has: a site of its own, without sessions.
    const users = 11_000;
    const big = join(root, "seeded-11000");
    await seed(big, users, 0);
    const s = site(big);
    const r = await recordCLI(t, s, ["contain", "expire-passwords", "--all", "--yes", "--json", "--batch-size", "5000"]);
    assert.equal(JSON.parse(r.stdout).status, "done");
    assertContainBatches(r, { levers: 1, perAccount: 3, batch: 5000, users, what: "contain expire-passwords --all --batch-size 5000" });
  });

  it("attack: `contain revoke-sessions --all` runs its whole-table step (a table rebuild) in one transaction — ADR 0005's accepted step, its hold measured by bench/lock-holds.ts (ASVS 13.1.3)", { timeout: 120_000 }, async (t) => {
    const s = site();
    const r = await recordCLI(t, s, ["contain", "revoke-sessions", "--all", "--yes", "--json"]);
    const job = JSON.parse(r.stdout) as { status: string; counts: Record<string, Record<string, number>> };
    assert.equal(job.status, "done");
    assert.equal(job.counts["revoke-sessions"]?.["sessions"], USERS * SESSIONS_PER_USER);
    const db = new DatabaseSync(s.db, { readOnly: true });
    try {
      assert.equal((db.prepare("SELECT count(*) AS n FROM sessions").get() as { n: number }).n, 0, "every session is gone");
    } finally {
      db.close();
    }
    // The rebuild is one step by design (ADR 0005): it drops and recreates the table inside the job's transaction, so
    // it shows as few rows here; what is pinned is that it is one transaction of the job, committed.
    assert.ok(r.transactions.length >= 2 && r.transactions.every((x) => x.end === "commit" || x.end === "autocommit"), "the job's transactions committed");
  });
});

describe("accounts bulk commands", () => {
  it("attack: `users import` of a 3,000-row file at the default --batch (500) beside a serving site — no write transaction of more than 500 accounts (ASVS 13.1.3)", { timeout: 120_000 }, async (t) => {
    const s = site();
    const file = join(root, "import-3000.csv");
    const rows = Array.from({ length: USERS }, (_, i) => `imported${i}@example.org,imported${i}`);
    writeFileSync(file, `email,username\n${rows.join("\n")}\n`);
    const r = await recordCLI(t, s, ["users", "import", file, "--json"]);
    assert.equal(JSON.parse(r.stdout).created, USERS);
    const batches = touching(r, "users");
    const top = largest(batches);
    assert.ok((top.byTable["users"] ?? 0) <= 500 && top.rows <= 500 + BOOKKEEPING,
      `one import transaction wrote ${top.byTable["users"]} accounts (${top.rows} rows: ${JSON.stringify(top.byTable)}), more than the --batch of 500`);
    assert.ok(batches.length >= USERS / 500, `the recorder saw the import's batches (${batches.length} transactions wrote accounts)`);
    assert.equal(batches.reduce((n, x) => n + (x.byTable["users"] ?? 0), 0), USERS, "every imported account was seen written");
  });

  it("attack: `users migrate-hashes` over every legacy hash of 3,000 seeded users (argon2 wrapping) — each transaction writes at most a batch (200) of accounts, hashed before it (ASVS 13.1.3)", { timeout: 120_000 }, async (t) => {
    const s = site();
    const r = await recordCLI(t, s, ["users", "migrate-hashes", "--json"]);
    const job = JSON.parse(r.stdout) as { status: string; done: number };
    assert.equal(job.status, "done");
    assert.ok(job.done > 300, `a realistic share of legacy hashes was migrated (${job.done})`);
    const batches = touching(r, "users");
    const top = largest(batches);
    assert.ok((top.byTable["users"] ?? 0) <= 200 && top.rows <= 200 + BOOKKEEPING,
      `one migrate-hashes transaction wrote ${top.byTable["users"]} accounts (${top.rows} rows), more than a batch of 200`);
    assert.ok(batches.length >= 3, `the recorder saw several batches (${batches.length})`);
    assert.equal(batches.reduce((n, x) => n + (x.byTable["users"] ?? 0), 0), job.done, "every migrated hash was seen written");
  });
});

describe("the server's maintenance pass (src/http/maintenance.ts: one statement per step, autocommit on SQLite)", () => {
  it("attack: a credential-stuffing quarter-hour leaves 20,000 flood events to age out; the pass's prune removes them all, at most 5,000 a DELETE, so a million refusals never hold the write lock for seconds (ASVS 13.1.3, 6.3.1) (was: one DELETE of the pass's whole share, ~2.5 s at a million)", { timeout: 120_000 }, async (t) => {
    const s = site();
    const db = new DatabaseSync(s.db);
    const now = Date.now();
    const N = 20_000;
    try {
      // Older than both windows (accountWindowMs 6 h): what one pass finds to delete after an attack (a failure
      // records the account's event and the IP's).
      db.exec("BEGIN");
      const insert = db.prepare("INSERT INTO flood_events (scope, key, at, via) VALUES (?, ?, ?, '')");
      for (let i = 0; i < N; i++) insert.run(i % 2 ? "ip" : "account", `k${(i * 7919) % 60_000}-${"f".repeat(40)}`, now - 7 * HOUR + (i % (15 * MINUTE)));
      db.exec("COMMIT");
    } finally {
      db.close();
    }
    const r = await recordMaintenance(t, s, new ManualClock(now));
    assert.equal(r.removed["floodEvents"], N);
    const prune = touching(r, "flood_events");
    assert.equal(prune.reduce((n, x) => n + (x.byTable["flood_events"] ?? 0), 0), N, "the recorder saw the prune");
    // In batches (FloodControl.prune, PRUNE_BATCH): each its own autocommit statement, none larger than a batch (the
    // seeded events have distinct times, so no batch grows by events sharing its last millisecond).
    const largest = Math.max(...prune.map((x) => x.byTable["flood_events"] ?? 0));
    assert.ok(largest <= FLOOD_PRUNE_BATCH,
      `the flood_events prune (FloodControl.prune) deleted ${largest} events in one statement (${prune.length} statements for ${N}), more than a batch of ${FLOOD_PRUNE_BATCH}: ` +
      "one DELETE of a pass's whole share holds SQLite's one write lock for as long as it runs, and every login of the server waits on it");
    assert.ok(prune.every((x) => x.autocommit), "each batch its own statement, not one transaction around them");
    assert.ok(prune.length >= N / FLOOD_PRUNE_BATCH, `the recorder saw the batches (${prune.length})`);
  });

  it("attack: the first maintenance pass after a 31-minute outage deletes every idle-expired session (18,000) — at most PURGE_BATCH (1,000) rows per DELETE, so the write lock is never held for the whole table while everyone signs in again (ASVS 13.1.3, 16.5.2) (was: one unbatched DELETE held it 1.4–1.9 s at 300,000)", { timeout: 120_000 }, async (t) => {
    // The server was down for an upgrade or a reboot for 31 minutes: every session's last activity is now past the
    // 30-minute idle timeout (BULWARK_SESSION_IDLE_MINUTES, the default). `serve` runs its first pass 0.5–1 s after
    // start (FIRST_PASS_DELAY_MS), exactly when the users come back and sign in: each login's session insert, flood
    // count and audit event need the write lock the purge holds. Sessions seeded with last activity within the last
    // 25 minutes; the pass runs at a clock 31 minutes on.
    const s = site();
    const r = await recordMaintenance(t, s, new ManualClock(Date.now() + 31 * MINUTE));
    const total = USERS * SESSIONS_PER_USER;
    assert.equal(r.removed["sessions"], total, "every seeded session had idled out");
    const purge = touching(r, "sessions");
    assert.equal(purge.reduce((n, x) => n + (x.byTable["sessions"] ?? 0), 0), total, "the recorder saw every deleted session");
    assert.ok(purge.every((x) => x.autocommit), "each purge statement is its own (autocommit) write, not one transaction around them all");
    const top = largest(purge);
    assert.ok(top.largestStatementRows <= PURGE_ROWS && purge.length >= total / PURGE_ROWS,
      `the maintenance pass's sessions purge (SessionManager.purgeExpired) deleted ${top.largestStatementRows} sessions in one statement (${purge.length} statements for ${total}), ` +
      `more than PURGE_BATCH (${PURGE_ROWS}): one DELETE of every idle-expired session holds SQLite's write lock for the whole table, and every login and session write of the server waits on it`);
  });
});

describe("keys", () => {
  it("attack: `keys rotate-master` on a seeded site — one transaction that writes each wrapped key once, the master check and its audit event, nothing in proportion to the site (ASVS 13.1.3)", { timeout: 120_000 }, async (t) => {
    const s = site();
    const r = await recordCLI(t, s, ["keys", "rotate-master", "--yes"]);
    const db = new DatabaseSync(s.db, { readOnly: true });
    let keys: number;
    try {
      keys = (db.prepare("SELECT count(*) AS n FROM keyring_keys").get() as { n: number }).n;
    } finally {
      db.close();
    }
    const rotation = touching(r, "keyring_keys");
    assert.equal(rotation.length, 1, "the rotation is one transaction");
    const [tx] = rotation as [WriteTransaction];
    assert.equal(tx.end, "commit");
    assert.ok((tx.byTable["keyring_keys"] ?? 0) >= 1, "the recorder saw keys wrapped again");
    assert.ok((tx.byTable["keyring_keys"] ?? 0) <= keys && tx.rows <= keys + 2,
      `rotate-master's transaction changed ${tx.rows} rows (${JSON.stringify(tx.byTable)}), more than the ${keys} keys, the master check and its audit event`);
  });
});
