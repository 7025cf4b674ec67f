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
// Rows: a statement's `changes` (run) or, for a write through all/get/iterate (one with RETURNING), the rows it
// returned. Trigger rows are not counted (SQLite's changes() leaves them out). A statement is a write when its text
// starts with INSERT, UPDATE, DELETE or REPLACE (after a WITH clause too).
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
}

export interface WriteRecord {
  transactions: WriteTransaction[];
}

const WRITE = /^\s*(?:WITH\b[\s\S]*?\)\s*)?(INSERT|UPDATE|DELETE|REPLACE)\b/i;
const TARGET = /^\s*(?:WITH\b[\s\S]*?\)\s*)?(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)\s+("?)([\w.]+)\1/i;

function target(sql: string): string {
  return TARGET.exec(sql)?.[2]?.toLowerCase() ?? "?";
}

function fresh(autocommit: boolean): WriteTransaction {
  return { autocommit, end: autocommit ? "autocommit" : "open", rows: 0, statements: 0, largestStatementRows: 0, byTable: {} };
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
  const open = new Map<DatabaseSync, WriteTransaction>();
  const done: WriteTransaction[] = [];
  const proto = StatementSync.prototype;
  const dbProto = DatabaseSync.prototype;
  const saved = { run: proto.run, all: proto.all, get: proto.get, iterate: proto.iterate, exec: dbProto.exec, prepare: dbProto.prepare };

  const control = (db: DatabaseSync | undefined, sql: string): void => {
    if (!db) return;
    const word = /^\s*(BEGIN|COMMIT|END|ROLLBACK)\b(\s+TO\b)?/i.exec(sql);
    if (!word || word[2]) return;
    const verb = (word[1] as string).toUpperCase();
    if (verb === "BEGIN") {
      if (db.isTransaction && !open.has(db)) open.set(db, fresh(false));
      return;
    }
    const tx = open.get(db);
    if (tx && !db.isTransaction) {
      tx.end = verb === "ROLLBACK" ? "rollback" : "commit";
      open.delete(db);
      if (tx.statements > 0) done.push(tx);
    }
  };
  const count = (db: DatabaseSync | undefined, sql: string, rows: number): void => {
    if (!WRITE.test(sql)) return;
    let tx = db ? open.get(db) : undefined;
    // A transaction begun some other way than a BEGIN we saw (none in Bulwark, but be safe): one of its own.
    if (!tx && db?.isTransaction) open.set(db, (tx = fresh(false)));
    const autocommit = !tx;
    if (!tx) tx = fresh(true);
    tx.statements++;
    tx.rows += rows;
    tx.largestStatementRows = Math.max(tx.largestStatementRows, rows);
    const table = target(sql);
    tx.byTable[table] = (tx.byTable[table] ?? 0) + rows;
    if (autocommit) done.push(tx);
  };

  dbProto.prepare = function (this: DatabaseSync, ...args: Parameters<DatabaseSync["prepare"]>) {
    const stmt = saved.prepare.apply(this, args);
    owner.set(stmt, this);
    return stmt;
  } as DatabaseSync["prepare"];
  dbProto.exec = function (this: DatabaseSync, sql: string) {
    const result = saved.exec.call(this, sql);
    control(this, sql);
    return result;
  } as DatabaseSync["exec"];
  proto.run = function (this: StatementSync, ...params: unknown[]) {
    const result = (saved.run as (...p: unknown[]) => ReturnType<StatementSync["run"]>).apply(this, params);
    const db = owner.get(this);
    control(db, this.sourceSQL);
    count(db, this.sourceSQL, Number(result.changes));
    return result;
  } as StatementSync["run"];
  proto.all = function (this: StatementSync, ...params: unknown[]) {
    const rows = (saved.all as (...p: unknown[]) => unknown[]).apply(this, params);
    count(owner.get(this), this.sourceSQL, rows.length);
    return rows;
  } as StatementSync["all"];
  proto.get = function (this: StatementSync, ...params: unknown[]) {
    const row = (saved.get as (...p: unknown[]) => unknown).apply(this, params);
    count(owner.get(this), this.sourceSQL, row === undefined ? 0 : 1);
    return row;
  } as StatementSync["get"];
  proto.iterate = function* (this: StatementSync, ...params: unknown[]) {
    let n = 0;
    try {
      for (const row of (saved.iterate as (...p: unknown[]) => Iterable<unknown>).apply(this, params)) {
        n++;
        yield row;
      }
    } finally {
      count(owner.get(this), this.sourceSQL, n);
    }
  } as unknown as StatementSync["iterate"];

  const snapshot = (): WriteRecord => ({
    transactions: [...done, ...[...open.values()].filter((t) => t.statements > 0)].map((t) => ({ ...t, byTable: { ...t.byTable } })),
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
