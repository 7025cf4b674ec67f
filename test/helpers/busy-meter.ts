// A meter of the statements that meet another connection's SQLite write lock, for the rounds that check a request or a
// pass did not wait behind it (test/sqlite-busy*-red-team.test.ts) without timing anything. While installed it wraps
// node:sqlite's StatementSync run/get/all/iterate and DatabaseSync exec (and prepare, to know each statement's
// connection) and records every statement that fails SQLITE_BUSY or SQLITE_LOCKED, with what bounded its wait at that
// moment: the busy_timeout in force on its connection (read from inside the failure, before the product's own `finally`
// restores a pragma it lowered) and the store's lock bound for that connection (lockBoundOf: the asynchronous retries'
// limit). A statement waits at most its busy_timeout inside SQLite per attempt, so a failure seen with busy_timeout 0
// did not wait at all, and the number of attempts in a row (busy failures of one statement with nothing succeeding on
// its connection in between; busy_timeout pragmas do not count as statements) says whether a retry loop stretched the
// wait. An iteration is watched step by step, as its steps are where it meets the lock.
import { DatabaseSync, StatementSync } from "node:sqlite";
import { isSQLiteBusy } from "../../src/store/errors.ts";
import { lockBoundOf } from "../../src/store/sqlite-dialect.ts";

/** One statement that failed busy: its text (trimmed, lower-cased), the wait bounds in force, and its attempt number. */
export type BusyFailure = {
  sql: string;
  /** PRAGMA busy_timeout on its connection when it failed (ms); null when its connection is not known to the meter. */
  busyTimeout: number | null;
  /** The connection's lock bound (lockBoundOf) when it failed (ms); null when its connection is not known. */
  lockBound: number | null;
  /** Whether a transaction was open on its connection (a failure inside one is never retried). */
  inTransaction: boolean | null;
  /** 1 for a first attempt; n for the nth busy failure of the same statement on the same connection with no statement succeeding there in between (a retry). */
  attempt: number;
};

/**
 * Statements the meter itself and the store's bookkeeping run around an attempt (reading, lowering and restoring the
 * busy timeout, as withoutWaiting does): not counted as a statement, so a retry loop around them is still a retry.
 */
const QUIET = /^pragma busy_timeout\b/;

export class BusyMeter {
  readonly failures: BusyFailure[] = [];
  readonly #originals = {
    run: StatementSync.prototype.run,
    get: StatementSync.prototype.get,
    all: StatementSync.prototype.all,
    iterate: StatementSync.prototype.iterate,
    exec: DatabaseSync.prototype.exec,
    prepare: DatabaseSync.prototype.prepare,
  };
  readonly #owner = new WeakMap<StatementSync, DatabaseSync>();
  /**
   * Per connection (null: unknown), how many times each statement text has failed busy since a statement last
   * succeeded there: a retry is the same text failing again with nothing done in between, even when other statements
   * (the retried unit's others, or another step's) failed busy in between too.
   */
  #streaks = new Map<DatabaseSync | null, Map<string, number>>();
  #reading = false;
  #installed = false;
  readonly #fallback: DatabaseSync | null;

  /** `fallback`: the connection a statement prepared before install is taken to run on (the app's, fx.app.db.sqlite). */
  constructor(fallback: DatabaseSync | null = null) {
    this.#fallback = fallback;
  }

  install(): this {
    if (this.#installed) return this;
    this.#installed = true;
    const meter = this;
    const o = this.#originals;
    DatabaseSync.prototype.prepare = function (this: DatabaseSync, ...args: Parameters<DatabaseSync["prepare"]>) {
      const statement = o.prepare.apply(this, args);
      meter.#owner.set(statement, this);
      return statement;
    } as DatabaseSync["prepare"];
    DatabaseSync.prototype.exec = function (this: DatabaseSync, sql: string) {
      return meter.#observe(sql, this, () => o.exec.call(this, sql));
    } as DatabaseSync["exec"];
    for (const name of ["run", "get", "all"] as const) {
      const original = o[name] as (...args: unknown[]) => unknown;
      (StatementSync.prototype as unknown as Record<string, unknown>)[name] = function (this: StatementSync, ...params: unknown[]) {
        return meter.#observe(this.sourceSQL, meter.#owner.get(this) ?? meter.#fallback, () => original.apply(this, params));
      };
    }
    // iterate() returns before its first step: the steps, where a statement meets the lock, are observed one by one.
    StatementSync.prototype.iterate = function (this: StatementSync, ...params: unknown[]) {
      const sql = this.sourceSQL;
      const db = meter.#owner.get(this) ?? meter.#fallback;
      const inner = meter.#observe(sql, db, () => (o.iterate as (...args: unknown[]) => Iterator<unknown>).apply(this, params));
      return (function* () {
        try {
          for (;;) {
            const step = meter.#observe(sql, db, () => inner.next());
            if (step.done) return;
            yield step.value;
          }
        } finally {
          inner.return?.();
        }
      })();
    } as unknown as StatementSync["iterate"];
    return this;
  }

  restore(): void {
    if (!this.#installed) return;
    this.#installed = false;
    const o = this.#originals;
    StatementSync.prototype.run = o.run;
    StatementSync.prototype.get = o.get;
    StatementSync.prototype.all = o.all;
    StatementSync.prototype.iterate = o.iterate;
    DatabaseSync.prototype.exec = o.exec;
    DatabaseSync.prototype.prepare = o.prepare;
  }

  /** Forgets what was recorded so far (the failures and the statement in progress). */
  reset(): void {
    this.failures.length = 0;
    this.#streaks.clear();
  }

  /** The most attempts in a row any one statement failed busy (0: none met the lock). */
  mostAttempts(): number {
    return this.failures.reduce((n, f) => Math.max(n, f.attempt), 0);
  }

  /** The failures grouped by statement text: how many busy failures each text had, and with which busy timeouts. */
  summary(): string {
    const by = new Map<string, { n: number; timeouts: Set<number | null>; most: number }>();
    for (const f of this.failures) {
      const entry = by.get(f.sql) ?? { n: 0, timeouts: new Set(), most: 0 };
      entry.n++;
      entry.timeouts.add(f.busyTimeout);
      entry.most = Math.max(entry.most, f.attempt);
      by.set(f.sql, entry);
    }
    return [...by].map(([sql, e]) => `${e.n}× (at most ${e.most} in a row, busy_timeout ${[...e.timeouts].join("/")} ms) ${sql.slice(0, 100)}`).join("; ") || "no statement met the lock";
  }

  #observe<T>(source: string, db: DatabaseSync | null, run: () => T): T {
    if (this.#reading) return run();
    const sql = source.trim().toLowerCase();
    const quiet = QUIET.test(sql);
    const streaks = this.#streaks.get(db) ?? new Map<string, number>();
    this.#streaks.set(db, streaks);
    try {
      const result = run();
      if (!quiet) streaks.clear();
      return result;
    } catch (error) {
      if (quiet || !isSQLiteBusy(error)) throw error;
      const attempt = (streaks.get(sql) ?? 0) + 1;
      streaks.set(sql, attempt);
      this.failures.push({ sql, ...this.#bounds(db), attempt });
      throw error;
    }
  }

  /** The wait bounds in force on `db` now, read without recording the read itself. */
  #bounds(db: DatabaseSync | null): Pick<BusyFailure, "busyTimeout" | "lockBound" | "inTransaction"> {
    if (!db || !db.isOpen) return { busyTimeout: null, lockBound: null, inTransaction: null };
    this.#reading = true;
    try {
      const busyTimeout = Number((db.prepare("PRAGMA busy_timeout").get() as { timeout: number }).timeout);
      return { busyTimeout, lockBound: lockBoundOf(db), inTransaction: db.isTransaction };
    } finally {
      this.#reading = false;
    }
  }
}
