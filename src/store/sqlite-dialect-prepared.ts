// Hot-path statements written once as SQL text that both dialects accept, run without building or compiling
// a Kysely query per call. On SQLite, with no transaction open on the connection, they run straight on a
// prepared node:sqlite statement; otherwise (PostgreSQL, or a transaction in progress) through the
// connection's own executeQuery, so they queue behind the transaction like every other query.
import type { StatementSync } from "node:sqlite";
import { CompiledQuery } from "kysely";
import type { Database } from "./database.ts";
import { isSQLiteBusy } from "./errors.ts";

/** Parameter values the hot statements bind: no Dates, booleans or objects (those need conversion). */
export type HotValue = string | number | null;

/** A statement compiled once; see prepareHot. */
export interface HotStatement<R> {
  /** Runs a reading statement and returns its rows. */
  all(parameters: readonly HotValue[]): Promise<R[]>;
  /** Runs a writing statement and returns how many rows it changed. */
  run(parameters: readonly HotValue[]): Promise<number>;
}

/**
 * Compiles `text` (parameters written `$1`, `$2`… — PostgreSQL's form; a number may repeat) once for the
 * database's dialect. Only for statements on the login path and similar: everything else goes through
 * Kysely's builder, which is what keeps queries type-checked.
 *
 * Why the direct path is safe: node:sqlite runs a statement synchronously on the one connection. When no
 * transaction is open on it, nothing else can be half-way through a unit of work, so the statement neither
 * sees uncommitted rows of another caller's transaction nor lands inside one. When one is open, the
 * statement waits its turn behind the driver's mutex like any Kysely query.
 *
 * @example
 * const byKey = prepareHot<{ failures: number }>(database, "SELECT failures FROM flood_streaks WHERE key = $1");
 * const [row] = await byKey.all([key]);
 */
export function prepareHot<R>(database: Database, text: string): HotStatement<R> {
  const handle = database.sqlite;
  const sql = numberedFor(database, text);
  let statement: StatementSync | null = null;
  /**
   * `work` on the compiled statement, or undefined for the driver's path: no direct path (PostgreSQL, a transaction in
   * progress), or another process's lock met on it (the connection's short busy slice ran out; the statement, alone,
   * changed nothing), which the driver waits for asynchronously.
   */
  const directly = <T>(work: (stmt: StatementSync) => T): T | undefined => {
    if (!handle || handle.isTransaction || !handle.isOpen) return undefined;
    statement ??= handle.prepare(sql);
    try {
      return work(statement);
    } catch (error) {
      if (!isSQLiteBusy(error)) throw error;
      return undefined;
    }
  };
  return {
    async all(parameters) {
      return directly((stmt) => stmt.all(...parameters) as R[]) ?? (await database.db.executeQuery<R>(CompiledQuery.raw(sql, [...parameters]))).rows;
    },
    async run(parameters) {
      return directly((stmt) => Number(stmt.run(...parameters).changes)) ?? Number((await database.db.executeQuery(CompiledQuery.raw(sql, [...parameters]))).numAffectedRows ?? 0n);
    },
  };
}

/**
 * `text` (parameters written `$1`, `$2`…) as the database's driver numbers them: node:sqlite takes ?NNN, and binding
 * positionally fills ?1, ?2… in order, so a repeated number binds the same value; PostgreSQL takes $N as written.
 */
export function numberedFor(database: Pick<Database, "dialect">, text: string): string {
  return database.dialect === "sqlite" ? text.replace(/\$(\d+)/g, "?$1") : text;
}

/** Compiles a statement (`$N` parameters) on the SQLite connection. Statements are compiled once per connection. */
export type HotPrepare = (text: string) => StatementSync;

const compiled = new WeakMap<object, Map<string, StatementSync>>();

/** What a hot transaction returns when another process holds the write lock: nothing was run; use `database.transaction`. */
export const HOT_BUSY: unique symbol = Symbol("hot transaction: the write lock is busy");

/**
 * On SQLite with no transaction open on the connection: runs `work` synchronously inside BEGIN IMMEDIATE … COMMIT
 * (ROLLBACK when it throws), with statements compiled once. Nothing of this process can run in between (node:sqlite
 * is synchronous) and BEGIN IMMEDIATE takes the write lock against other processes: the guarantees of a Kysely
 * transaction, without its per-statement building and awaits. Returns null otherwise (PostgreSQL, or a transaction
 * in progress): the caller then uses `database.transaction`. When another process holds the write lock past the
 * connection's short busy slice, BEGIN IMMEDIATE fails and the transaction returns HOT_BUSY without running `work`:
 * the caller then uses `database.transaction` too, which waits for the lock without blocking the event loop.
 *
 * @example
 * const hot = hotTransaction(database);
 * if (hot && hot((prepare) => prepare("DELETE FROM flood_streaks WHERE key = $1").run(key)) !== HOT_BUSY) return;
 * await database.transaction(…);
 */
export function hotTransaction(database: Database): (<T>(work: (prepare: HotPrepare) => T) => T | typeof HOT_BUSY) | null {
  const handle = database.sqlite;
  if (!handle || handle.isTransaction || !handle.isOpen) return null;
  let cache = compiled.get(handle);
  if (!cache) compiled.set(handle, (cache = new Map()));
  const statements = cache;
  const prepare: HotPrepare = (text) => {
    let statement = statements.get(text);
    if (!statement) statements.set(text, (statement = handle.prepare(numberedFor(database, text))));
    return statement;
  };
  return (work) => {
    try {
      prepare("BEGIN IMMEDIATE").run();
    } catch (error) {
      if (isSQLiteBusy(error) && !handle.isTransaction) return HOT_BUSY;
      throw error;
    }
    try {
      const result = work(prepare);
      prepare("COMMIT").run();
      return result;
    } catch (error) {
      if (handle.isTransaction) prepare("ROLLBACK").run();
      throw error;
    }
  };
}
