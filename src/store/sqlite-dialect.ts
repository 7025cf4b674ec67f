// A Kysely dialect over node:sqlite (DatabaseSync). One connection per process, guarded by a mutex so
// transactions never interleave; write transactions take the lock up front (BEGIN IMMEDIATE) so two
// processes never deadlock upgrading a read lock. Prepared statements are cached by SQL text.
import type { DatabaseSync, StatementSync } from "node:sqlite";
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
  readonly #statements: StatementCache;
  constructor(db: DatabaseSync) {
    this.#statements = new StatementCache(db);
  }
  async executeQuery<R>(compiled: CompiledQuery): Promise<QueryResult<R>> {
    return this.executeSync<R>(compiled.sql, compiled.parameters);
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
