// A SQLite write waiting for another process's write lock (a CLI batch, a backup, an operator's `sqlite3` shell) waits
// without blocking the event loop: node:sqlite is synchronous, so a wait inside SQLite's busy handler froze the whole
// server (no /healthz, no reads, no other user's request) for up to the busy timeout. The connection's own busy timeout
// is a short slice; the rest of the wait is retried asynchronously, up to the same bound (BULWARK_DB_LOCK_TIMEOUT_SECONDS,
// or 10 s), and past it the write fails a named busy store as before (docs/decisions/0021-postgresql-wait-bounds.md).
// Loopback and temp dirs only; another process's lock is a second node:sqlite connection (test/helpers/sqlite-lock.ts).
// Measured without a clock: every statement of this process that fails SQLITE_BUSY is watched (watchTries); a write
// that waits asynchronously is tried again and again against the lock, and before each of its retries a callback
// scheduled at its previous busy failure (setImmediate) has run, so the loop turned between tries. A synchronous wait
// (the connection's busy timeout as long as the bound) tries once and runs nothing meanwhile. A lock released "before
// the bound" is released by the watch once the write has met it a few times. That the wait gives up once the bound has
// passed, not before, is asserted on a hand-moved clock in test/sqlite-wait-bound.test.ts; here only that it fails
// SQLITE_BUSY, as before. Found: nothing; these replace wall-clock assertions (the loop's largest gap, the wait's length).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { DatabaseSync, StatementSync } from "node:sqlite";
import { authFixture, type AuthFixture } from "../src/http/auth/test-client.ts";
import { dbPath, holdWriteLock } from "./helpers/sqlite-lock.ts";

/** The store's lock bound here (BULWARK_DB_LOCK_TIMEOUT_SECONDS). */
const BOUND_S = 2;
/** How many times a write meets the lock before the watch lets the lock go, in the tests where it is released in time. */
const RELEASE_AT_TRY = 3;

type Method = "run" | "all" | "get";
const METHODS: Method[] = ["run", "all", "get"];

interface Tries {
  /** How many times each statement (by its text; each prepared statement counted apart, the most kept) failed SQLITE_BUSY. */
  busy: Map<string, number>;
  /** Statements (their text) run again before the loop had turned since their previous busy failure: a frozen wait. */
  frozen: string[];
}

/**
 * Watches every node:sqlite statement of this process until `stop`: counts each prepared statement's busy failures, and
 * notes one run again before a setImmediate scheduled at its previous busy failure had run. By the statement, not its
 * text: the hot path's own BEGIN IMMEDIATE (src/store/sqlite-dialect-prepared.ts) hands over to the driver's at once,
 * and that is a different statement's first try. `onTry(n, sql)` runs right after a statement's n-th busy failure
 * (synchronously, before the error reaches the caller).
 */
function watchTries(onTry: (n: number, sql: string) => void = () => {}): { stop(): Tries } {
  const originals = new Map(METHODS.map((m) => [m, StatementSync.prototype[m]] as const));
  const busy = new Map<string, number>();
  const frozen: string[] = [];
  const counts = new WeakMap<StatementSync, number>();
  const turned = new WeakMap<StatementSync, { ran: boolean }>();
  for (const m of METHODS) {
    const original = originals.get(m) as (...args: unknown[]) => unknown;
    (StatementSync.prototype as unknown as Record<Method, unknown>)[m] = function (this: StatementSync, ...args: unknown[]) {
      const sql = this.sourceSQL.trim().toLowerCase();
      const previous = turned.get(this);
      if (previous && !previous.ran) frozen.push(sql);
      turned.delete(this);
      try {
        return original.apply(this, args);
      } catch (error) {
        if ((((error as { errcode?: number }).errcode ?? 0) & 0xff) === 5) {
          const n = (counts.get(this) ?? 0) + 1;
          counts.set(this, n);
          busy.set(sql, Math.max(n, busy.get(sql) ?? 0));
          const mark = { ran: false };
          turned.set(this, mark);
          setImmediate(() => (mark.ran = true));
          onTry(n, sql);
        }
        throw error;
      }
    };
  }
  return {
    stop() {
      for (const m of METHODS) (StatementSync.prototype as unknown as Record<Method, unknown>)[m] = originals.get(m);
      return { busy, frozen };
    },
  };
}

/** The loop kept running while the writes waited: some statement met the lock more than once, and the loop turned between every two tries. */
function assertNotFrozen(tries: Tries, what: string): void {
  const most = Math.max(0, ...tries.busy.values());
  assert.ok(most >= 2, `${what}: tried against the lock ${most} time(s), a synchronous wait (${JSON.stringify([...tries.busy])})`);
  assert.deepEqual(tries.frozen, [], `${what}: tried again without the event loop turning in between`);
}

/** A watch that lets `lock` go once a statement has met it RELEASE_AT_TRY times (well before the bound). */
function releaseAfterTries(lock: { release(): void }): { stop(): Tries; released(): boolean } {
  let released = false;
  const watch = watchTries((n) => {
    if (n >= RELEASE_AT_TRY && !released) {
      released = true;
      lock.release();
    }
  });
  return { stop: () => watch.stop(), released: () => released };
}

function metaValue(fx: AuthFixture, name: string): string | undefined {
  const reader = new DatabaseSync(dbPath(fx), { readOnly: true });
  try {
    return (reader.prepare("SELECT value FROM bulwark_meta WHERE name = ?").get(name) as { value: string } | undefined)?.value;
  } finally {
    reader.close();
  }
}

describe("a SQLite write waiting for another process's write lock", () => {
  let fx: AuthFixture;
  before(async () => {
    fx = await authFixture({ BULWARK_DB_LOCK_TIMEOUT_SECONDS: String(BOUND_S) });
  });
  after(() => fx.close());

  it("attack: another process holds the write lock while a transaction and a single write wait for it — the event loop keeps running (timers fire) for the whole wait (ASVS 16.5.3) (was: the server froze for the whole busy timeout)", async () => {
    const lock = holdWriteLock(dbPath(fx));
    const watch = watchTries();
    let results: PromiseSettledResult<unknown>[];
    let tries: Tries;
    try {
      // The single write queues behind the transaction on the one connection (as before), then waits its own bound.
      const waiting = Promise.allSettled([
        fx.app.db.transaction((trx) => trx.insertInto("bulwark_meta").values({ name: "wait.trx", value: "1" }).execute()),
        fx.app.db.db.insertInto("bulwark_meta").values({ name: "wait.single", value: "1" }).execute(),
      ]);
      results = await waiting;
    } finally {
      tries = watch.stop();
      lock.release();
    }
    assert.deepEqual(tries.frozen, [], "each write was tried again only after the event loop had turned");
    const begin = tries.busy.get("begin immediate") ?? 0;
    const single = [...tries.busy].find(([sql]) => sql.startsWith("insert into \"bulwark_meta\""))?.[1] ?? 0;
    assert.ok(begin >= 2, `the transaction's BEGIN IMMEDIATE met the lock ${begin} time(s): waited in one synchronous busy timeout`);
    assert.ok(single >= 2, `the single write met the lock ${single} time(s): waited in one synchronous busy timeout`);
    for (const r of results) {
      assert.equal(r.status, "rejected", "a write past the bound failed");
      assert.equal((r.reason as { errcode?: number }).errcode! & 0xff, 5, `failed SQLITE_BUSY, as before: ${String(r.reason)}`);
    }
    assert.equal(metaValue(fx, "wait.trx"), undefined);
    assert.equal(metaValue(fx, "wait.single"), undefined);
  });

  it("a write waiting for the lock succeeds once the lock is released before the bound, in a transaction or alone", async () => {
    const lock = holdWriteLock(dbPath(fx));
    const watch = releaseAfterTries(lock);
    let results: PromiseSettledResult<unknown>[];
    let tries: Tries;
    try {
      results = await Promise.allSettled([
        fx.app.db.transaction((trx) => trx.insertInto("bulwark_meta").values({ name: "released.trx", value: "1" }).execute()),
        fx.app.db.db.insertInto("bulwark_meta").values({ name: "released.single", value: "1" }).execute(),
      ]);
    } finally {
      tries = watch.stop();
      if (!watch.released()) lock.release();
    }
    for (const r of results) assert.equal(r.status, "fulfilled", String((r as PromiseRejectedResult).reason));
    assert.ok(watch.released(), "control: the lock was let go while the transaction waited");
    assertNotFrozen(tries, "the transaction waiting for the lock");
    assert.equal(metaValue(fx, "released.trx"), "1");
    assert.equal(metaValue(fx, "released.single"), "1");
  });

  it("an audit event appended outside a transaction waits for the lock, without blocking the loop, and is recorded once it is released", async () => {
    const lock = holdWriteLock(dbPath(fx));
    const watch = releaseAfterTries(lock);
    let event;
    let tries: Tries;
    try {
      event = await fx.app.audit.append({ type: "test.waited", actor: "test", data: {} });
    } finally {
      tries = watch.stop();
      if (!watch.released()) lock.release();
    }
    assert.ok(watch.released(), "control: the lock was let go while the append waited");
    assertNotFrozen(tries, "the append waiting for the lock");
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
    const watch = watchTries();
    let res;
    let tries: Tries;
    try {
      res = await fx.browser().login(user.email, user.password);
    } finally {
      tries = watch.stop();
      lock.release();
    }
    assert.equal(res.statusCode, 503, res.body);
    assert.match(res.body, /BULWARK_ERR_DB_BUSY/);
    // That it waited the whole bound first is waitForLock's, on a hand-moved clock (test/sqlite-wait-bound.test.ts).
    assertNotFrozen(tries, "the login waiting for the lock");
    const again = await fx.browser().login(user.email, user.password);
    assert.equal(again.statusCode, 200, again.body);
  });

  it("attack: a wrong password's login (flood control's hot path) behind another process's held lock — the loop keeps running while it waits, and the attempt is counted once the lock is released (ASVS 16.5.3, 6.3.1) (was: the synchronous BEGIN IMMEDIATE froze the server for the whole wait)", async () => {
    const user = await fx.user("hot-path-wait@example.org");
    const lock = holdWriteLock(dbPath(fx));
    const watch = releaseAfterTries(lock);
    let res;
    let tries: Tries;
    try {
      res = await fx.browser().login(user.email, "not the password at all");
    } finally {
      tries = watch.stop();
      if (!watch.released()) lock.release();
    }
    assert.equal(res.statusCode, 401, res.body);
    assert.ok(watch.released(), "control: the lock was let go while the login waited");
    assertNotFrozen(tries, "the login waiting for the lock");
    const reader = new DatabaseSync(dbPath(fx), { readOnly: true });
    try {
      const streak = reader.prepare("SELECT count(*) AS n FROM flood_streaks").get() as { n: number };
      assert.ok(Number(streak.n) >= 1, "the failure was recorded");
    } finally {
      reader.close();
    }
  });
});
