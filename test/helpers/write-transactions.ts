// What each SQLite write transaction of a process does — counted, not timed. Wraps node:sqlite's statement methods
// (run, all, get, iterate) and DatabaseSync.prototype.exec to record, per write transaction on a connection (BEGIN … to
// COMMIT or ROLLBACK) and per autocommit write statement outside one, the rows it changed and the statements it ran.
// How long SQLite's one write lock is held grows with that work, so a bound on the rows of the largest write
// transaction is a bound on the hold that a slow host cannot break and a missing batch cannot pass
// (test/lock-holds-red-team.test.ts; the hold itself, in ms, is measured by bench/lock-holds.ts).
//
// Two ways in:
//  - preloaded into a spawned `bulwark` (`node --import THIS_FILE`, e.g. through NODE_OPTIONS): records from the start
//    and writes the record as JSON, at exit, to the file named by BULWARK_TEST_WRITE_TRANSACTIONS_OUT;
//  - in this process: `const rec = recordWriteTransactions(); … rec.stop()` around the work.
//
// Rows: what a call changed is read from the connection's total_changes() before and after it, so a write is seen
// whatever its text and path (several statements in one exec, a comment first, get or iterate of a write with
// RETURNING). A statement's own rows are its `changes` (run) or the rows an all/iterate of it returned; rows changed
// besides (triggers, foreign-key actions) are counted apart, in indirectRows. A statement whose text starts with
// INSERT, UPDATE, DELETE or REPLACE (after a WITH clause too) counts as a write statement even when it changed nothing.
// Transactions are told by the connection's isTransaction before and after each call (BEGIN, SAVEPOINT, COMMIT,
// RELEASE, ROLLBACK and an error's rollback alike). A statement prepared before the recorder was installed has no
// known connection: it is counted as a transaction of its own and in `unattributed` (install the recorder first).
import { writeFileSync } from "node:fs";
import { DatabaseSync, StatementSync } from "node:sqlite";
import { isMainThread } from "node:worker_threads";

/** One write transaction (or one autocommit write statement, `autocommit: true`). */
export interface WriteTransaction {
  autocommit: boolean;
  /** How it ended: "commit", "rollback", or "open" when the record was taken before it ended. */
  end: "commit" | "rollback" | "open" | "autocommit";
  /** Rows changed by all its statements. */
  rows: number;
  /** Write statements it ran (reads inside it are not counted). */
  statements: number;
  /** Rows changed by its largest single statement. */
  largestStatementRows: number;
  /** Rows changed per table (the statement's target table). */
  byTable: Record<string, number>;
  /** Rows its statements changed besides their own: by triggers and foreign-key actions (ON DELETE CASCADE …). */
  indirectRows: number;
}

export interface WriteRecord {
  transactions: WriteTransaction[];
  /** Write statements prepared before the recorder (their connection, so their transaction, unknown): each counted alone. */
  unattributed: number;
}

const WRITE = /^\s*(?:WITH\b[\s\S]*?\)\s*)?(INSERT|UPDATE|DELETE|REPLACE)\b/i;
const TARGET = /^\s*(?:WITH\b[\s\S]*?\)\s*)?(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)\s+("?)([\w.]+)\1/i;

function target(sql: string): string {
  return TARGET.exec(sql)?.[2]?.toLowerCase() ?? "?";
}

function fresh(autocommit: boolean): WriteTransaction {
  return { autocommit, end: autocommit ? "autocommit" : "open", rows: 0, statements: 0, largestStatementRows: 0, byTable: {}, indirectRows: 0 };
}

/**
 * Starts recording every write transaction of every node:sqlite connection of this process; `stop()` restores
 * node:sqlite and returns the record (transactions still open are included, ended "open").
 *
 * @example
 * const rec = recordWriteTransactions();
 * await maintenance.runOnce();
 * const { transactions } = rec.stop();
 */
export function recordWriteTransactions(): { stop(): WriteRecord; snapshot(): WriteRecord } {
  const owner = new WeakMap<StatementSync, DatabaseSync>();
  const counter = new WeakMap<DatabaseSync, StatementSync>();
  const open = new Map<DatabaseSync, WriteTransaction>();
  const done: WriteTransaction[] = [];
  let unattributed = 0;
  const proto = StatementSync.prototype;
  const dbProto = DatabaseSync.prototype;
  const saved = { run: proto.run, all: proto.all, get: proto.get, iterate: proto.iterate, exec: dbProto.exec, prepare: dbProto.prepare };

  /** sqlite3_total_changes() of `db`: every row its statements changed so far, triggers' and foreign-key actions' too. */
  const totalChanges = (db: DatabaseSync): number | null => {
    if (!db.isOpen) return null;
    let statement = counter.get(db);
    if (!statement) counter.set(db, (statement = saved.prepare.call(db, "SELECT total_changes() AS n")));
    return Number(((saved.get as (...p: unknown[]) => unknown).call(statement) as { n: number | bigint }).n);
  };
  const close = (db: DatabaseSync, tx: WriteTransaction, sql: string): void => {
    tx.end = /^\s*ROLLBACK\b(?!\s+TO\b)/i.test(sql) ? "rollback" : "commit";
    open.delete(db);
    if (tx.statements > 0) done.push(tx);
  };
  const add = (tx: WriteTransaction, sql: string, rows: number, indirect: number, statement: boolean): void => {
    if (statement) tx.statements++;
    tx.rows += rows;
    tx.indirectRows += indirect;
    tx.largestStatementRows = Math.max(tx.largestStatementRows, rows);
    const table = target(sql);
    tx.byTable[table] = (tx.byTable[table] ?? 0) + rows;
  };
  /**
   * Runs `call` (one statement, one step of an iteration, or one exec of any number of statements) on `db`. What it
   * changed is told by total_changes() before and after, not by its text: a write through exec, behind a comment or
   * through get is seen. Its own rows are `direct(result)` when the API says them exactly (run's changes, the rows an
   * iteration returned), else the whole change; whatever else changed (triggers, foreign-key actions) is indirectRows.
   * Which transaction it belongs to is told by the connection's isTransaction before and after (BEGIN, SAVEPOINT,
   * COMMIT, RELEASE, ROLLBACK, an error's rollback: all alike).
   */
  const observe = <T>(db: DatabaseSync | undefined, sql: string, call: () => T, direct: ((result: T) => number) | null, statement: boolean, since: number | null = null): T => {
    if (!db) {
      // Prepared before the recorder: its connection, and so its transaction, is unknown. Counted alone, and flagged.
      const result = call();
      const rows = direct ? direct(result) : 0;
      if (WRITE.test(sql)) {
        unattributed++;
        const tx = fresh(true);
        add(tx, sql, rows, 0, statement);
        done.push(tx);
      }
      return result;
    }
    const stale = open.get(db);
    if (stale && !db.isTransaction) close(db, stale, ""); // ended unseen (a statement of an unknown connection?)
    const before = since ?? totalChanges(db);
    let result: T | undefined;
    let threw = true;
    try {
      result = call();
      threw = false;
      return result;
    } finally {
      const after = totalChanges(db);
      const changed = before !== null && after !== null ? after - before : 0;
      const write = changed > 0 || (statement && WRITE.test(sql));
      const rows = !threw && direct ? Math.min(direct(result as T), changed || Infinity) : changed;
      let tx = open.get(db);
      if (db.isTransaction && !tx) open.set(db, (tx = fresh(false)));
      if (write) {
        const own = tx ?? fresh(!/^\s*BEGIN\b/i.test(sql));
        if (!tx && !own.autocommit) own.end = "commit";
        add(own, sql, rows, Math.max(0, changed - rows), statement);
        if (!tx) done.push(own);
      }
      if (tx && !db.isTransaction) close(db, tx, sql);
    }
  };

  dbProto.prepare = function (this: DatabaseSync, ...args: Parameters<DatabaseSync["prepare"]>) {
    const stmt = saved.prepare.apply(this, args);
    owner.set(stmt, this);
    return stmt;
  } as DatabaseSync["prepare"];
  dbProto.exec = function (this: DatabaseSync, sql: string) {
    return observe(this, sql, () => saved.exec.call(this, sql), null, true);
  } as DatabaseSync["exec"];
  proto.run = function (this: StatementSync, ...params: unknown[]) {
    const run = saved.run as (...p: unknown[]) => ReturnType<StatementSync["run"]>;
    return observe(owner.get(this), this.sourceSQL, () => run.apply(this, params), (r) => Number(r.changes), true);
  } as StatementSync["run"];
  proto.all = function (this: StatementSync, ...params: unknown[]) {
    const all = saved.all as (...p: unknown[]) => unknown[];
    return observe(owner.get(this), this.sourceSQL, () => all.apply(this, params), (rows) => rows.length, true);
  } as StatementSync["all"];
  // get: a write with RETURNING changes all its rows at the first step and returns one, so its rows are the change.
  proto.get = function (this: StatementSync, ...params: unknown[]) {
    const get = saved.get as (...p: unknown[]) => unknown;
    return observe(owner.get(this), this.sourceSQL, () => get.apply(this, params), owner.has(this) ? null : (row) => (row === undefined ? 0 : 1), true);
  } as StatementSync["get"];
  // iterate: observed as one call from the iterate() to its end, when the statement is reset (a write with RETURNING
  // changes all its rows at the first step; they reach total_changes() at the reset, its last step or an early return).
  proto.iterate = function (this: StatementSync, ...params: unknown[]) {
    const db = owner.get(this);
    const sql = this.sourceSQL;
    const since = db ? totalChanges(db) : null;
    const inner = (saved.iterate as (...p: unknown[]) => Iterator<unknown>).apply(this, params);
    let n = 0;
    return (function* () {
      try {
        for (;;) {
          const step = inner.next();
          if (step.done) return;
          n++;
          yield step.value;
        }
      } finally {
        observe(db, sql, () => inner.return?.(), db ? null : () => n, true, since);
      }
    })();
  } as unknown as StatementSync["iterate"];

  const snapshot = (): WriteRecord => ({
    transactions: [...done, ...[...open.values()].filter((t) => t.statements > 0)].map((t) => ({ ...t, byTable: { ...t.byTable } })),
    unattributed,
  });
  return {
    snapshot,
    stop() {
      Object.assign(proto, { run: saved.run, all: saved.all, get: saved.get, iterate: saved.iterate });
      Object.assign(dbProto, { exec: saved.exec, prepare: saved.prepare });
      return snapshot();
    },
  };
}

/** The largest of `transactions` by rows changed (an empty one when there is none). */
export function largest(transactions: readonly WriteTransaction[]): WriteTransaction {
  return transactions.reduce((a, b) => (b.rows > a.rows ? b : a), fresh(false));
}

/** The environment that preloads this file into a spawned `bulwark` and names the file its record is written to. */
export function recordingEnv(out: string): NodeJS.ProcessEnv {
  return { NODE_OPTIONS: `--import=${HERE}`, BULWARK_TEST_WRITE_TRANSACTIONS_OUT: out };
}

const HERE = new URL(import.meta.url).pathname;

// Preloaded (`--import`): record the whole process and write the record at exit.
const OUT = process.env["BULWARK_TEST_WRITE_TRANSACTIONS_OUT"];
// Main thread only: a worker thread (which a preload reaches too) must not overwrite the record at its own exit.
if (OUT && isMainThread) {
  const recorder = recordWriteTransactions();
  process.on("exit", () => writeFileSync(OUT, JSON.stringify(recorder.snapshot())));
}
