// Red team, round "new code twenty-six b": today's code (1ca0407..HEAD) the first round only read — the maintenance
// pass's clock-jump guard (clockJump, Clock.elapsed), the FOR UPDATE row lock deleteUnfinishedSignUp now takes on
// PostgreSQL, the checkpointer's pinned warning and the audit keys dated ahead (firstCheckpointProblem).
// Attackers / adversities: no one holds a clock, but the host's clock is stepped (NTP, `date -s`, a resumed VM) at a
// moment nobody chooses; an incident responder's containment job and the maintenance pass run at once on PostgreSQL
// while an ordinary request (a reset link asked for a sign-up, a role grant) is in flight.
// Tried: a jump that lands while the pass's last clock-judged step runs (is it noticed by the next pass, or absorbed
// into the reading the pass takes at its end?); a slow pass on the real system clock (a step holding the event loop:
// does it read as a jump?); every production clock has `elapsed` (open-app uses systemClock unless a test gives one);
// the purge's per-candidate lock order (link, row, next candidate) against a lock-accounts batch over two sign-ups
// (rows locked in id order); signing and verify after a normal NTP step back of 30 s on a fresh store.
// Held: a slow pass on the system clock reads no jump (wall and monotonic move together); keys dated 30 s ahead of the
// clock after an NTP step back are within the dated-ahead tolerance (verify and routine signing work at once); a big
// commit followed by ordinary traffic (a read that starts after the full copy) gives no pinned warning (the WAL restarts).
// Found: (1) (fixed since: the pass keeps its old reading when the clock moved after its last check, so the next
// pass finds the jump) a clock step landing during the pass's last clock-judged step (the sign-up purge) is taken into the
// reading the pass keeps at its end (lastReading in the finally): the next pass sees no jump, judges by the stepped
// clock, deletes a minute-old sign-up as abandoned and never logs the jump. (2) PostgreSQL: the purge locks each
// candidate (link, then row FOR UPDATE) in created_at order within one batch transaction, a lock-accounts batch locks
// the same rows in id order: with a foreign-key insert on one sign-up in flight they deadlock and the containment
// job fails ("deadlock detected", resumable). (Fixed since: the purge takes its batch's link locks in key order, then
// its rows FOR UPDATE in id order, before the first delete, containment's order; the batch no longer waits for the
// purge, and the test's control accepts a batch that finished where it waited before.) (3) (fixed since: pinned only after 3 partial runs in a
// row over the backstop too; recovery said as soon as a run copies everything) one big commit (> the 4,000-page
// backstop) while another process's short read is open makes the next run partial with the WAL over the backstop: the
// "blocked … long read transaction" warning fires at once, and its recovery line waits until a later commit restarts the WAL.
// Temp dirs and loopback only: SQLite (authFixture, fake clock fx.clock), PostgreSQL on the shared private cluster.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { sql, type Transaction } from "kysely";
import { removeAbandonedSignUps, SIGN_UP_REMOVED_EVENT } from "../src/accounts/email-change/sign-up-shell.ts";
import { firstCheckpointProblem } from "../src/audit/signing-keys.ts";
import { containDeps, createContainJob, runJob } from "../src/contain/index.ts";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { CLOCK_JUDGED_STEPS, clockJump, startMaintenance, STEP_LOCK_TIMEOUT_MS } from "../src/http/maintenance.ts";
import { systemClock } from "../src/lib/clock.ts";
import { startCheckpointer } from "../src/store/checkpointer.ts";
import { openSQLite } from "../src/store/database.ts";
import type { Schema } from "../src/store/schema.ts";
import { authFlows } from "./helpers/auth-flows.ts";
import { sharedCluster } from "./helpers/dialects.ts";
import { holdOpen } from "./helpers/held-transaction.ts";
import { postgresUnavailable } from "./helpers/postgres.ts";
import { testMasterKey } from "./helpers/master-key.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const WEEK = 7 * DAY;

describe("red team: the maintenance pass's clock-jump guard (SQLite)", () => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  before(async () => {
    fx = await authFixture({ BULWARK_REGISTRATION: "open" });
  });
  after(async () => {
    await fx.close();
  });
  const judged = (removed: Record<string, number>): string[] => [...CLOCK_JUDGED_STEPS].filter((name) => name in removed);

  it("attack: the host's clock is stepped eight days ahead while a maintenance pass runs its last step (the abandoned sign-ups' purge, recording a removal) and is corrected only later — the next pass finds the jump and judges no row by it; a sign-up made a minute earlier (real time) is not deleted as abandoned (no ASVS id: availability and data loss) (was: the jump was taken into the reading kept at the pass's end; the next pass deleted the sign-up and never logged the jump)", async (t) => {
    const maintenance = startMaintenance(fx.app, { intervalMs: DAY, firstPassDelayMs: DAY });
    const errors = t.mock.method(fx.app.logger, "error");
    try {
      // An old abandoned sign-up, so the pass's last step has work (and records user.sign-up-removed).
      const old = await flows.unfinishedSignUp("long-gone-twentysix-b@example.org");
      fx.clock.advance(WEEK + HOUR);
      const live = await flows.unfinishedSignUp("new-hire-twentysix-b@example.org");
      fx.clock.advance(MINUTE);
      // The step: NTP (or `date -s`) moves the wall clock 8 days ahead while the purge records its removal, i.e. after
      // the pass's last clock check and before the reading the pass keeps for the next one.
      const audit = fx.app.audit;
      const appendIn = audit.appendIn.bind(audit);
      let stepped = false;
      t.mock.method(audit, "appendIn", (async (...args: Parameters<typeof appendIn>) => {
        if (!stepped && (args[1] as { type?: string }).type === SIGN_UP_REMOVED_EVENT) {
          stepped = true;
          fx.clock.jump(8 * DAY);
        }
        return appendIn(...args);
      }) as typeof audit.appendIn);
      const first = await maintenance.runOnce();
      assert.ok(stepped && first.abandonedSignUps === 1, `control: the jump landed inside the purge of the old sign-up ${old.id}: ${JSON.stringify(first)}`);
      // Fifteen real minutes on, the clock still 8 days ahead: the next pass.
      fx.clock.advance(15 * MINUTE);
      const second = await maintenance.runOnce();
      fx.clock.jump(-8 * DAY);
      const kept = await fx.app.accounts.users.getById(live.id);
      assert.ok(kept !== null,
        `a sign-up made 16 minutes ago (real time) was deleted as abandoned by the pass after a clock step of 8 days that landed during the previous pass's ` +
        `last step (second pass: ${JSON.stringify(second)}): the pass takes its next reading (lastReading = readClock in the pass's finally) after its last ` +
        "clock check, so a jump after that check becomes the baseline and the next pass never sees it");
      assert.deepEqual(judged(second), [], `the pass after the jump judged rows by the stepped clock: ${JSON.stringify(second)}`);
      assert.ok(errors.mock.calls.some((c) => /clock jumped/.test(String(c.arguments[1]))),
        `the jump was never said at error level: ${JSON.stringify(errors.mock.calls.map((c) => c.arguments[1]))}`);
    } finally {
      await maintenance.stop();
    }
  });

  it("attack: a maintenance pass on the real system clock is slow (a step holding the event loop 300 ms, as a big purge batch or a step waiting on a lock does) — no jump is read: wall and monotonic time move together, so slowness never makes maintenance skip its purges (no ASVS id: availability)", () => {
    const since = { wall: systemClock.now(), elapsed: systemClock.elapsed!() };
    const until = Date.now() + 300;
    while (Date.now() < until) { /* the event loop held, as a long synchronous step holds it */ }
    assert.equal(clockJump(since, systemClock, 1_000), null, "a slow pass read as a clock jump on the system clock");
    // And the margin the guard uses is not something a pass's length can approach: even a 1 ms margin holds here.
    assert.ok(Math.abs((systemClock.now() - since.wall) - (systemClock.elapsed!() - since.elapsed)) < 50, "wall and monotonic time parted during a busy pass");
  });

  it("attack: a fresh store whose keys were made a moment before NTP stepped the clock back 30 s (a VM's first boot) — routine signing works at once and `audit verify`'s first-checkpoint rule raises no alarm: 30 s ahead is inside the dated-ahead tolerance; a day ahead is still a problem (ASVS 16.4.2)", () => {
    const now = Date.UTC(2026, 5, 1, 12);
    assert.equal(firstCheckpointProblem({ keysSince: now + 30_000 }, now), null, "keys 30 s ahead after an ordinary NTP step back read as a problem");
    assert.equal(firstCheckpointProblem({ keysSince: now + 30_000 }, now, { aheadToleranceMs: 60_000 }), null);
    assert.match(firstCheckpointProblem({ keysSince: now + DAY }, now) ?? "", /dated ahead of this clock/, "control: a day ahead is a problem");
  });
});

describe("red team: the purge's row lock against a containment batch (PostgreSQL)", { skip: postgresUnavailable() ?? false }, () => {
  let fx: AuthFixture;
  const flows = authFlows(() => fx);
  before(async () => {
    const cluster = await sharedCluster();
    assert.ok(cluster, "PostgreSQL did not start");
    const url = await cluster.createSchema(`ncb26_${process.pid}`);
    // The product's lock bound (no BULWARK_DB_LOCK_TIMEOUT_SECONDS) on purpose: the test never waits it out; it holds a
    // row and expects the purge and the batch waiting on it to go on and succeed once it is let go, so a shorter bound
    // would save nothing and only narrow the room for its polling (untilWaiters) under load.
    fx = await authFixture({ BULWARK_DATABASE_URL: url, BULWARK_MASTER_KEY: testMasterKey("new-code-twentysix-b"), BULWARK_REGISTRATION: "open" });
  });
  after(async () => {
    await fx?.close();
    await (await sharedCluster())?.stop();
  });

  /** The maintenance pass's purge as its step runs it: one bounded transaction a batch (maintenance.ts boundedTransaction). */
  const purge = () => removeAbandonedSignUps(fx.app.db, fx.app.audit, {
    now: fx.clock.now(), olderThanMs: fx.app.config.signUpAbandonedMs,
    transaction: <T>(work: (trx: Transaction<Schema>) => Promise<T>) => fx.app.db.transaction(async (trx) => {
      await sql.raw(`SET LOCAL lock_timeout = ${STEP_LOCK_TIMEOUT_MS}`).execute(trx);
      return work(trx);
    }),
  });

  /** How many backends wait on a lock now (every one on this private cluster is this test's). */
  async function lockWaiters(): Promise<number> {
    const r = await sql<{ n: string }>`select count(*) as n from pg_stat_activity where wait_event_type = 'Lock'`.execute(fx.app.db.db);
    return Number(r.rows[0]?.n ?? 0);
  }
  async function untilWaiters(n: number): Promise<boolean> {
    for (let i = 0; i < 300; i++) {
      if ((await lockWaiters()) >= n) return true;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return false;
  }

  it("attack: an incident responder runs lock-accounts over two abandoned sign-ups while the maintenance pass purges them and a request referencing one (a reset link asked for it, a role grant: its foreign key holds the row FOR KEY SHARE) is in flight — both finish: the job is done and the purge step does not fail (no ASVS id: availability of containment and maintenance) (was: opposite lock orders, \"deadlock detected\", the containment job failed)", async () => {
    // Two abandoned sign-ups: the purge takes them oldest first (older, then newer); the batch locks rows in id order.
    // Chosen so the orders differ: the newer one's id sorts first. Ids are random: each new sign-up is compared with the
    // highest id made before it (was: with the first one's only, which 20 tries missed about one run in 21 when that
    // id was among the lowest — a flaky control).
    const made: Array<{ id: string }> = [await flows.unfinishedSignUp(`older-${Date.now()}@corp.example`)];
    let older: { id: string } = made[0]!;
    let newer: { id: string } | null = null;
    for (let i = 0; i < 20 && newer === null; i++) {
      fx.clock.advance(1000);
      const next = await flows.unfinishedSignUp(`newer-${i}-${Date.now()}@corp.example`);
      const highest = made.reduce((a, b) => (b.id > a.id ? b : a));
      if (next.id < highest.id) {
        older = highest;
        newer = next;
      } else made.push(next);
    }
    assert.ok(newer, "control: a sign-up whose id sorts before an older one's");
    fx.clock.advance(WEEK + HOUR);
    const job = await createContainJob(containDeps(fx.app), { levers: ["lock-accounts"], scope: { ids: [older.id, newer.id] }, actor: "responder" });
    // The request in flight: its INSERT referencing the newer sign-up holds that row FOR KEY SHARE until it commits.
    const inFlight = await holdOpen(fx.app.db, (trx) => trx.selectFrom("users").select("id").where("id", "=", newer!.id).forKeyShare().execute());
    // The pass: deletes the older sign-up (its link lock, row lock), then waits for the newer one's row.
    const purging = purge().then((n) => ({ ok: true as const, n }), (error: unknown) => ({ ok: false as const, error }));
    const purgeWaits = await untilWaiters(1);
    // The batch: locks the newer row (KEY SHARE does not conflict with its FOR NO KEY UPDATE), then waits for the older one.
    const running = runJob(containDeps(fx.app), job.id).then((j) => ({ ok: true as const, j }), (error: unknown) => ({ ok: false as const, error }));
    // Until the batch waits too (the old lock orders crossed here) or has finished (in one lock order, it need not wait).
    const batchWaitedOrDone = await Promise.race([untilWaiters(2), running.then(() => true)]);
    await inFlight.commit();
    const [purged, ran] = await Promise.all([purging, running]);
    assert.ok(purgeWaits && batchWaitedOrDone, "control: the purge waited for the request's row, and the batch waited too or finished");
    const show = (r: { ok: boolean; error?: unknown }): string => (r.ok ? "ok" : String((r.error as Error)?.message ?? r.error));
    const status = ran.ok ? ran.j.status : "threw";
    const jobRow = await fx.app.accounts.jobs.get(job.id);
    assert.ok(purged.ok && ran.ok && status === "done",
      `the purge (${show(purged)}) and the lock-accounts job (run: ${show(ran)}, status ${jobRow.status}${jobRow.error ? `: ${jobRow.error}` : ""}) ` +
      "deadlocked: the purge locks each candidate's link then row in created_at order (deleteUnfinishedSignUp, one batch one transaction), " +
      "while the containment batch locks its accounts' rows in id order — opposite orders over two rows, one of them aborted");
  });
});

describe("red team: the checkpointer's pinned warning under normal load (SQLite)", () => {
  /**
   * A database of large notes rows with its checkpointer running (runs only when asked: runOnce), the warnings and info
   * lines it logs, and another server's connection on the same file (the docs allow two) to hold short reads.
   */
  function notesStore() {
    const dir = mkdtempSync(join(tmpdir(), "bulwark-ncb26-"));
    const path = join(dir, "bulwark.db");
    const database = openSQLite(path, { create: true });
    database.sqlite!.exec("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)");
    const warnings: string[] = [];
    const infos: string[] = [];
    const logger = { warn: (_: unknown, msg?: string) => void warnings.push(String(msg)), info: (_: unknown, msg?: string) => void infos.push(String(msg)), error: () => {} };
    const checkpointer = startCheckpointer(database, { intervalMs: 60_000, logger: logger as never })!;
    const otherServer = new DatabaseSync(path);
    const insert = database.sqlite!.prepare("INSERT INTO notes (id, body) VALUES (?, ?)");
    const close = async (): Promise<void> => {
      otherServer.close();
      await checkpointer.stop();
      await database.close();
      rmSync(dir, { recursive: true, force: true });
    };
    return { database, checkpointer, otherServer, insert, warnings, infos, close };
  }

  it("attack: a bulk change commits one transaction bigger than the backstop (a 10k-user import batch, `contain` over a big scope), then ordinary traffic goes on — a second server's request reading while one login writes makes one checkpoint run partial; no \"WAL checkpoints are blocked\" warning is logged for that (the WAL restarts under a reader that came after the full copy) (ASVS 16.3.4: no false alarm)", async () => {
    const { database, checkpointer, otherServer, insert, warnings, infos, close } = notesStore();
    let id = 0;
    try {
      for (let round = 0; round < 2; round++) {
        // The bulk change: ~2,500 rows of 2 pages each, one transaction (> the 4,000-page backstop).
        database.sqlite!.exec("BEGIN");
        for (let i = 0; i < 2500; i++) insert.run(++id, `${id} `.padEnd(8000, "x"));
        database.sqlite!.exec("COMMIT");
        const copied = await checkpointer.runOnce();
        assert.equal(copied.partialInARow, 0, "control: the big transaction alone is copied whole");
        // Ordinary traffic: the other server's request reads while a login writes a row; the next run meets both.
        otherServer.exec("BEGIN");
        otherServer.prepare("SELECT count(*) AS n FROM notes").get();
        insert.run(++id, "a login's row");
        const during = await checkpointer.runOnce();
        otherServer.exec("COMMIT");
        const afterwards = await checkpointer.runOnce();
        assert.equal(afterwards.partialInARow, 0, "control: the run after the request copies everything");
        assert.equal(during.partialInARow, 1, "control: the run during the request was partial");
      }
      assert.deepEqual(warnings.filter((w) => /blocked/.test(w)), [],
        `two bulk changes, each followed by one ordinary request reading during one checkpoint run, logged ${warnings.filter((w) => /blocked/.test(w)).length} ` +
        `"WAL checkpoints are blocked … likely a long read transaction" warnings (and ${infos.length} recovery lines): reportPinning counts one partial run as ` +
        "pinned whenever the WAL's frame count (left past the backstop by one big commit, which the WAL cannot restart under a reader) is over the backstop");
    } finally {
      await close();
    }
  });

  it("attack: a bulk change commits one transaction bigger than the backstop while a second server's request has a short read transaction open (it ends right after the next checkpoint run) — one partial run is no \"WAL checkpoints are blocked\" warning (ASVS 16.3.4: no false alarm) (was: warned at once, the WAL being over the backstop; the recovery line waited for a later commit)", async () => {
    const { database, checkpointer, otherServer, insert, warnings, infos, close } = notesStore();
    let id = 0;
    try {
      for (let round = 0; round < 2; round++) {
        // The other server's request: a read transaction, open while the bulk change commits and until the next run.
        otherServer.exec("BEGIN");
        otherServer.prepare("SELECT count(*) AS n FROM notes").get();
        database.sqlite!.exec("BEGIN");
        for (let i = 0; i < 2500; i++) insert.run(++id, `${id} `.padEnd(8000, "x"));
        database.sqlite!.exec("COMMIT");
        const during = await checkpointer.runOnce();
        otherServer.exec("COMMIT");
        const afterwards = await checkpointer.runOnce();
        assert.ok(during.partialInARow === 1 && afterwards.partialInARow === 0,
          `control: one partial run, then a whole one: ${JSON.stringify(during)} ${JSON.stringify(afterwards)}`);
      }
      const blocked = warnings.filter((w) => /blocked/.test(w));
      assert.deepEqual(blocked, [],
        `two bulk changes, each committed while a request read for less than one checkpoint interval, logged ${blocked.length} ` +
        `"WAL checkpoints are blocked … likely a long read transaction in another process" warning(s), and ${infos.length} recovery line(s) though the ` +
        "run after each copied every page: reportPinning (src/store/checkpointer.ts) counts a single partial run as pinned whenever the WAL's frame count " +
        "is over the backstop, which one big commit makes it until a later commit restarts the WAL (and the recovery line waits for that restart too)");
    } finally {
      await close();
    }
  });
});
