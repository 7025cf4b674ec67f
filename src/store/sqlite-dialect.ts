// A Kysely dialect over node:sqlite (DatabaseSync). One connection per process, guarded by a mutex so
// transactions never interleave; write transactions take the lock up front (BEGIN IMMEDIATE) so two
// processes never deadlock upgrading a read lock. Prepared statements are cached by SQL text.
// node:sqlite is synchronous: a statement waiting in SQLite's busy handler for another process's lock blocks the event
// loop. So the connection's busy timeout is a short slice (SQLITE_BUSY_SLICE_MS) and the rest of the wait, up to the
// store's bound, is retried asynchronously (waitForLock), with the connection still held.
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CompiledQuery,
  SqliteAdapter,
  SqliteIntrospector,
  SqliteQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
} from "kysely";

import { isSQLiteBusy } from "./errors.ts";

/**
 * The busy timeout a connection runs with (PRAGMA busy_timeout): the longest another process's lock blocks the event
 * loop at a time. The wait beyond it, up to the connection's bound (setLockBound), is asynchronous.
 */
export const SQLITE_BUSY_SLICE_MS = 20;

const lockBounds = new WeakMap<DatabaseSync, number>();

/** Sets how long, in all, a statement of `handle` waits for another process's lock before failing SQLITE_BUSY. */
export function setLockBound(handle: DatabaseSync, ms: number): void {
  lockBounds.set(handle, ms);
}

/**
 * The bound of `handle`'s wait for a lock: the one set (setLockBound), unless its busy timeout was set to something
 * other than the slice since (a caller's own PRAGMA busy_timeout): that is then the bound, as it was before the slice.
 */
export function lockBoundOf(handle: DatabaseSync): number {
  const timeout = Number((handle.prepare("PRAGMA busy_timeout").get() as { timeout: number }).timeout);
  return timeout === SQLITE_BUSY_SLICE_MS ? (lockBounds.get(handle) ?? timeout) : timeout;
}

/** The clock and the pause of waitForLock: real time, unless a unit test drives it by hand. */
export interface LockWaitTime {
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number): Promise<unknown>;
}

const REAL_TIME: LockWaitTime = { now: () => performance.now(), sleep: (ms) => sleep(ms) };

/**
 * Runs `attempt` (a statement, or BEGIN IMMEDIATE) and, while it fails SQLITE_BUSY with no transaction open on the
 * connection (a failed autocommit statement or BEGIN changed nothing, so running it again is safe), runs it again after
 * a short asynchronous pause, until the connection's lock bound has passed since the first; then the last error is
 * thrown, as SQLite's own wait would have. Never retried inside an open transaction. `time`: real time by default.
 */
export async function waitForLock<T>(handle: DatabaseSync, attempt: () => T, time: LockWaitTime = REAL_TIME): Promise<T> {
  const started = time.now();
  let pause = 5;
  for (;;) {
    const inTransaction = handle.isTransaction;
    try {
      return attempt();
    } catch (error) {
      if (inTransaction || handle.isTransaction || !isSQLiteBusy(error)) throw error;
      const left = lockBoundOf(handle) - (time.now() - started);
      if (left <= 0) throw error;
      await time.sleep(Math.min(pause, left));
      pause = Math.min(pause * 2, 50);
    }
  }
}

type SQLValue = null | number | bigint | string | Uint8Array;

function toSQLite(value: unknown): SQLValue {
  if (value === undefined || value === null) return null;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (value instanceof Date) return value.getTime();
  if (typeof value === "object" && !(value instanceof Uint8Array)) return JSON.stringify(value);
  return value as SQLValue;
}

class StatementCache {
  readonly #db: DatabaseSync;
  readonly #cache = new Map<string, StatementSync>();
  constructor(db: DatabaseSync) {
    this.#db = db;
  }
  get(sql: string): StatementSync {
    let stmt = this.#cache.get(sql);
    if (!stmt) {
      stmt = this.#db.prepare(sql);
      if (this.#cache.size >= 500) this.#cache.delete(this.#cache.keys().next().value as string);
      this.#cache.set(sql, stmt);
    }
    return stmt;
  }
}

class NodeSqliteConnection implements DatabaseConnection {
  readonly #db: DatabaseSync;
  readonly #statements: StatementCache;
  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#statements = new StatementCache(db);
  }
  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    // Outside a transaction (BEGIN IMMEDIATE, a single statement) another process's lock is waited for asynchronously.
    if (this.#db.isTransaction) return this.executeSync<R>(compiled.sql, compiled.parameters);
    return waitForLock(this.#db, () => this.executeSync<R>(compiled.sql, compiled.parameters));
  }
  executeSync<R>(sql: string, parameters: readonly unknown[]): QueryResult<R> {
    const stmt = this.#statements.get(sql);
    const params = parameters.map(toSQLite);
    if (stmt.columns().length > 0) {
      return { rows: stmt.all(...params) as R[] };
    }
    const { changes, lastInsertRowid } = stmt.run(...params);
    return { rows: [], numAffectedRows: BigInt(changes), insertId: BigInt(lastInsertRowid) };
  }
  async *streamQuery<R>(compiled: CompiledQuery): AsyncIterableIterator<QueryResult<R>> {
    const stmt = this.#statements.get(compiled.sql);
    for (const row of stmt.iterate(...compiled.parameters.map(toSQLite))) yield { rows: [row as R] };
  }
}

/** A FIFO mutex: the single connection is handed to one user at a time. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();
  lock(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((resolve) => (release = resolve));
    const acquired = this.#tail.then(() => release);
    this.#tail = this.#tail.then(() => next);
    return acquired;
  }
}

class NodeSqliteDriver implements Driver {
  readonly #db: DatabaseSync;
  readonly #connection: NodeSqliteConnection;
  readonly #mutex = new Mutex();
  #release: (() => void) | null = null;
  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#connection = new NodeSqliteConnection(db);
  }
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    this.#release = await this.#mutex.lock();
    return this.#connection;
  }
  async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("begin immediate"));
  }
  async commitTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw("commit"));
  }
  async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    // SQLite ends the transaction itself on some errors (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM): a ROLLBACK then
    // throws "cannot rollback - no transaction is active", and that error replaced the real one ("database or disk is
    // full") in what the operator read, and in a failed job's stored error.
    if (!this.#db.isTransaction) return;
    await connection.executeQuery(CompiledQuery.raw("rollback"));
  }
  async releaseConnection(): Promise<void> {
    const release = this.#release;
    this.#release = null;
    release?.();
  }
  async destroy(): Promise<void> {
    if (this.#db.isOpen) this.#db.close();
  }
}

/** Kysely dialect for an open node:sqlite database. */
export class NodeSqliteDialect implements Dialect {
  readonly #db: DatabaseSync;
  constructor(db: DatabaseSync) {
    this.#db = db;
  }
  createDriver(): Driver {
    return new NodeSqliteDriver(this.#db);
  }
  createQueryCompiler(): SqliteQueryCompiler {
    return new SqliteQueryCompiler();
  }
  createAdapter(): SqliteAdapter {
    return new SqliteAdapter();
  }
  createIntrospector(db: Kysely<any>): SqliteIntrospector {
    return new SqliteIntrospector(db);
  }
}
