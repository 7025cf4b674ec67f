// The bound of an asynchronous wait for another process's SQLite write lock (waitForLock, src/store/sqlite-dialect.ts),
// driven by a hand-moved clock: a statement that fails SQLITE_BUSY is tried again after a short pause (5 ms doubling to
// 50 ms, never past the time left) while less than the connection's lock bound has passed since the first try; once the
// bound has passed the last busy error is thrown, as SQLite's own wait would have. It must never give up before the
// bound (a write failing busy while the lock was about to be released) nor wait on past it (a request held long after
// the bound it promises), never retry inside an open transaction (the statements before the failed one would be lost),
// and never retry an error that is not busy. The clock and the pauses are injected (waitForLock's third parameter), so
// nothing here measures real time; the statements are real, on a temp-dir database whose write lock another
// connection holds (test/helpers/sqlite-lock.ts). Found: nothing; these replace the wall-clock bounds the async-wait
// attacks once asserted (test/sqlite-wait-async.test.ts).
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, before, describe, it } from "node:test";
import { setLockBound, SQLITE_BUSY_SLICE_MS, waitForLock, type LockWaitTime } from "../src/store/sqlite-dialect.ts";
import { holdWriteLock } from "./helpers/sqlite-lock.ts";

/** The connection's lock bound, in fake milliseconds. */
const BOUND_MS = 200;
/** A wait that pauses more often than this has not stopped at the bound: the test fails instead of looping on. */
const RUNAWAY_PAUSES = 200;

/** A clock moved by hand: `sleep` moves it by the pause asked for, and records it; `onSleep` runs after each move. */
function fakeTime(onSleep: (now: number) => void = () => {}): LockWaitTime & { at: number; pauses: number[] } {
  const time = {
    at: 0,
    pauses: [] as number[],
    now: () => time.at,
    async sleep(ms: number) {
      if (time.pauses.length >= RUNAWAY_PAUSES) throw new Error(`still waiting after ${RUNAWAY_PAUSES} pauses, at ${time.at} ms of a ${BOUND_MS} ms bound`);
      time.pauses.push(ms);
      time.at += ms;
      onSleep(time.at);
    },
  };
  return time;
}

const isBusy = (error: unknown): boolean => (((error as { errcode?: number }).errcode ?? 0) & 0xff) === 5;

describe("waitForLock: the bound of an asynchronous wait for another connection's write lock, on a hand-moved clock", () => {
  let dir: string;
  let path: string;
  let handle: DatabaseSync;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "bulwark-wait-bound-"));
    path = join(dir, "bulwark.db");
    handle = new DatabaseSync(path);
    handle.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER)");
    // As the store opens it (src/store/database.ts): the short slice as the busy timeout, the bound set beside it.
    handle.exec(`PRAGMA busy_timeout = ${SQLITE_BUSY_SLICE_MS}`);
    setLockBound(handle, BOUND_MS);
  });
  after(() => {
    handle.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** An insert into `t` whose tries are recorded: the fake time each began at, and each busy error. */
  function insert(time: LockWaitTime & { at: number }, cost = 0): { attempt: () => unknown; triedAt: number[]; errors: unknown[] } {
    const triedAt: number[] = [];
    const errors: unknown[] = [];
    return {
      triedAt,
      errors,
      attempt: () => {
        triedAt.push(time.now());
        try {
          return handle.prepare("INSERT INTO t (v) VALUES (1)").run();
        } catch (error) {
          errors.push(error);
          throw error;
        } finally {
          // The time the try itself took in SQLite's busy handler (the slice), on the fake clock.
          if (cost > 0) time.at += cost;
        }
      },
    };
  }

  const rows = (): number => Number((handle.prepare("SELECT count(*) AS n FROM t").get() as { n: number }).n);

  it("attack: a write behind a lock held past the bound — tried again after 5, 10, 20, 40, 50 ms pauses while below the bound, the last pause cut to the time left, and the last busy error thrown exactly when the bound has passed, not before (ASVS 16.5.3) (was: a wait measured against the wall clock)", async () => {
    const lock = holdWriteLock(path);
    const time = fakeTime();
    const tries = insert(time);
    try {
      const error = await waitForLock(handle, tries.attempt, time).then(() => null, (e: unknown) => e);
      assert.ok(error, "the write failed");
      assert.ok(isBusy(error), `failed SQLITE_BUSY: ${String(error)}`);
      assert.equal(error, tries.errors.at(-1), "the last try's own error");
      assert.deepEqual(time.pauses, [5, 10, 20, 40, 50, 50, 25], "the documented backoff, the last pause cut to the time left");
      assert.deepEqual(tries.triedAt, [0, 5, 15, 35, 75, 125, 175, 200], "tried while below the bound, and once at it");
      assert.equal(time.at, BOUND_MS, "gave up once the bound had passed, not before and not later");
      assert.ok(tries.errors.every(isBusy), "every try met the lock");
    } finally {
      lock.release();
    }
    assert.equal(rows(), 0, "nothing written");
  });

  it("the time a try spends in SQLite's own busy handler counts against the bound: no pause past the time left, and no try once the bound has passed", async () => {
    const lock = holdWriteLock(path);
    const time = fakeTime();
    // Each try takes 35 fake ms of the bound before it fails busy.
    const tries = insert(time, 35);
    try {
      const error = await waitForLock(handle, tries.attempt, time).then(() => null, (e: unknown) => e);
      assert.ok(isBusy(error), `failed SQLITE_BUSY: ${String(error)}`);
      assert.deepEqual(tries.triedAt, [0, 40, 85, 140, 200]);
      assert.deepEqual(time.pauses, [5, 10, 20, 25], "the fourth pause cut from 40 to the 25 ms left");
      assert.equal(time.at, 235, "the last try ended past the bound, and none followed it");
    } finally {
      lock.release();
    }
  });

  it("a write whose lock is released just before the bound is tried once more and succeeds", async () => {
    let lock: { release(): void } | null = holdWriteLock(path);
    // The lock is let go at 175 fake ms, the last pause before the bound.
    const time = fakeTime((now) => {
      if (now >= 175 && lock) {
        lock.release();
        lock = null;
      }
    });
    const tries = insert(time);
    try {
      await waitForLock(handle, tries.attempt, time);
      assert.deepEqual(tries.triedAt, [0, 5, 15, 35, 75, 125, 175]);
      assert.equal(tries.errors.length, 6, "six tries met the lock, the seventh wrote");
      assert.equal(rows(), 1);
    } finally {
      (lock as { release(): void } | null)?.release();
      handle.exec("DELETE FROM t");
    }
  });

  it("attack: a statement inside an open transaction meets the lock — thrown at its first busy failure, never tried again (the transaction's earlier statements would not be in a retry) (ASVS 16.5.3)", async () => {
    const lock = holdWriteLock(path);
    const time = fakeTime();
    try {
      handle.exec("BEGIN");
      const inside = insert(time);
      const error = await waitForLock(handle, inside.attempt, time).then(() => null, (e: unknown) => e);
      assert.ok(isBusy(error), `failed SQLITE_BUSY: ${String(error)}`);
      assert.equal(inside.triedAt.length, 1, "tried once");
      assert.deepEqual(time.pauses, [], "no pause");
      handle.exec("ROLLBACK");
      // A transaction the try itself opened, and left open when its next statement failed busy: not retried either.
      let opened = 0;
      const error2 = await waitForLock(handle, () => {
        opened++;
        handle.exec("BEGIN; INSERT INTO t (v) VALUES (2)");
      }, time).then(() => null, (e: unknown) => e);
      assert.ok(isBusy(error2), `failed SQLITE_BUSY: ${String(error2)}`);
      assert.equal(handle.isTransaction, true, "control: the try left its transaction open");
      assert.equal(opened, 1, "tried once");
      assert.deepEqual(time.pauses, [], "no pause");
    } finally {
      if (handle.isTransaction) handle.exec("ROLLBACK");
      lock.release();
    }
  });

  it("an error that is not busy is thrown at once: no pause, no second try", async () => {
    const time = fakeTime();
    let tries = 0;
    const error = await waitForLock(handle, () => {
      tries++;
      return handle.prepare("INSERT INTO no_such_table (v) VALUES (1)").run();
    }, time).then(() => null, (e: unknown) => e as Error);
    assert.ok(error, "the write failed");
    assert.match(error.message, /no such table/);
    assert.equal(tries, 1);
    assert.deepEqual(time.pauses, []);
    const plain = new Error("not a database error");
    await assert.rejects(waitForLock(handle, () => {
      throw plain;
    }, time), (e) => e === plain);
    assert.deepEqual(time.pauses, []);
  });
});
