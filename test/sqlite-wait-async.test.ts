// A SQLite write waiting for another process's write lock (a CLI batch, a backup, an operator's `sqlite3` shell) waits
// without blocking the event loop: node:sqlite is synchronous, so a wait inside SQLite's busy handler froze the whole
// server (no /healthz, no reads, no other user's request) for up to the busy timeout. The connection's own busy timeout
// is a short slice; the rest of the wait is retried asynchronously, up to the same bound (BULWARK_DB_LOCK_TIMEOUT_SECONDS,
// or 10 s), and past it the write fails a named busy store as before (docs/decisions/0021-postgresql-wait-bounds.md).
// Loopback and temp dirs only; another process's lock is a second node:sqlite connection (test/helpers/sqlite-lock.ts).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DatabaseSync } from "node:sqlite";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { dbPath, holdWriteLock } from "./helpers/sqlite-lock.ts";

/** The store's lock bound here (BULWARK_DB_LOCK_TIMEOUT_SECONDS). */
const BOUND_S = 2;
const BOUND_MS = BOUND_S * 1000;
/** The largest gap between ticks of a 50 ms interval that still counts as "not frozen": generous for a loaded machine. */
const FROZEN_MS = 1_000;

/** Watches the event loop: the largest gap between ticks of a 50 ms interval until `stop`. */
function watchLoop(): { stop(): number } {
  let last = performance.now();
  let largest = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    largest = Math.max(largest, now - last);
    last = now;
  }, 50);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(largest, performance.now() - last);
    },
  };
}

function metaValue(fx: AuthFixture, name: string): string | undefined {
  const reader = new DatabaseSync(dbPath(fx), { readOnly: true });
  try {
    return (reader.prepare("SELECT value FROM bulwark_meta WHERE name = ?").get(name) as { value: string } | undefined)?.value;
  } finally {
    reader.close();
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("a SQLite write waiting for another process's write lock", () => {
  let fx: AuthFixture;
  before(async () => {
    fx = await authFixture({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: String(BOUND_S) });
  });
  after(() => fx.close());

  it("attack: another process holds the write lock while a transaction and a single write wait for it — the event loop keeps running (timers fire) for the whole wait (ASVS 16.5.3) (was: the server froze for the whole busy timeout)", async () => {
    const lock = holdWriteLock(dbPath(fx));
    const loop = watchLoop();
    const started = performance.now();
    let results: PromiseSettledResult<unknown>[];
    try {
      const waiting = Promise.allSettled([
        fx.app.db.transaction((trx) => trx.insertInto("bulwark_meta").values({ name: "wait.trx", value: "1" }).execute()),
        fx.app.db.db.insertInto("bulwark_meta").values({ name: "wait.single", value: "1" }).execute(),
      ]);
      results = await waiting;
    } finally {
      lock.release();
    }
    const gap = loop.stop();
    const took = performance.now() - started;
    assert.ok(gap < FROZEN_MS, `the event loop stood still for ${Math.round(gap)} ms while the writes waited for the lock`);
    assert.ok(took >= BOUND_MS - 100, `the writes gave up after ${Math.round(took)} ms, before the ${BOUND_MS} ms bound`);
    // The single write queues behind the transaction on the one connection (as before), then waits its own bound.
    assert.ok(took < 2 * BOUND_MS + 1_500, `the writes waited ${Math.round(took)} ms, past twice the ${BOUND_MS} ms bound`);
    for (const r of results) {
      assert.equal(r.status, "rejected", "a write past the bound failed");
      assert.equal((r.reason as { errcode?: number }).errcode! & 0xff, 5, `failed SQLITE_BUSY, as before: ${String(r.reason)}`);
    }
    assert.equal(metaValue(fx, "wait.trx"), undefined);
    assert.equal(metaValue(fx, "wait.single"), undefined);
  });

  it("a write waiting for the lock succeeds once the lock is released before the bound, in a transaction or alone", async () => {
    const lock = holdWriteLock(dbPath(fx));
    const loop = watchLoop();
    const waiting = Promise.allSettled([
      fx.app.db.transaction((trx) => trx.insertInto("bulwark_meta").values({ name: "released.trx", value: "1" }).execute()),
      fx.app.db.db.insertInto("bulwark_meta").values({ name: "released.single", value: "1" }).execute(),
    ]);
    try {
      await sleep(500);
    } finally {
      lock.release();
    }
    for (const r of await waiting) assert.equal(r.status, "fulfilled", String((r as PromiseRejectedResult).reason));
    assert.ok(loop.stop() < FROZEN_MS, "the event loop kept running");
    assert.equal(metaValue(fx, "released.trx"), "1");
    assert.equal(metaValue(fx, "released.single"), "1");
  });

  it("an audit event appended outside a transaction waits for the lock, without blocking the loop, and is recorded once it is released", async () => {
    const lock = holdWriteLock(dbPath(fx));
    const loop = watchLoop();
    const appended = fx.app.audit.append({ type: "test.waited", actor: "test", data: {} });
    appended.catch(() => {});
    try {
      await sleep(400);
    } finally {
      lock.release();
    }
    const event = await appended;
    assert.ok(loop.stop() < FROZEN_MS, "the event loop kept running");
    const reader = new DatabaseSync(dbPath(fx), { readOnly: true });
    try {
      assert.ok(reader.prepare("SELECT 1 FROM audit_events WHERE id = ?").get(event.id), "the event was recorded");
    } finally {
      reader.close();
    }
  });

  it("attack: a request's write behind a lock held past the bound — answers 503 BULWARK_ERR_DB_BUSY, as before, without freezing the loop meanwhile (ASVS 16.5.3) (was: frozen for the whole wait)", async () => {
    const user = await fx.user("busy-past-bound@example.org");
    const lock = holdWriteLock(dbPath(fx));
    const loop = watchLoop();
    const started = performance.now();
    let res;
    try {
      res = await fx.browser().login(user.email, user.password);
    } finally {
      lock.release();
    }
    const gap = loop.stop();
    assert.equal(res.statusCode, 503, res.body);
    assert.match(res.body, /BULWARK_ERR_DB_BUSY/);
    assert.ok(performance.now() - started >= BOUND_MS - 100, "the request waited the bound");
    assert.ok(gap < FROZEN_MS, `the event loop stood still for ${Math.round(gap)} ms while the login waited for the lock`);
    const again = await fx.browser().login(user.email, user.password);
    assert.equal(again.statusCode, 200, again.body);
  });

  it("attack: a wrong password's login (flood control's hot path) behind another process's held lock — the loop keeps running while it waits, and the attempt is counted once the lock is released (ASVS 16.5.3, 6.3.1) (was: the synchronous BEGIN IMMEDIATE froze the server for the whole wait)", async () => {
    const user = await fx.user("hot-path-wait@example.org");
    const lock = holdWriteLock(dbPath(fx));
    const loop = watchLoop();
    const pending = fx.browser().login(user.email, "not the password at all");
    try {
      await sleep(700);
    } finally {
      lock.release();
    }
    const res = await pending;
    const gap = loop.stop();
    assert.equal(res.statusCode, 401, res.body);
    assert.ok(gap < FROZEN_MS, `the event loop stood still for ${Math.round(gap)} ms while the login waited for the lock`);
    const reader = new DatabaseSync(dbPath(fx), { readOnly: true });
    try {
      const streak = reader.prepare("SELECT count(*) AS n FROM flood_streaks").get() as { n: number };
      assert.ok(Number(streak.n) >= 1, "the failure was recorded");
    } finally {
      reader.close();
    }
  });
});
