// The rows an UPDATE or DELETE may change without waiting on another transaction's lock: bookkeeping whose answer
// nothing waits for (a session's last-seen touch, a closed session's delete, a token's last use, the expired-session
// purge) skips a row a frozen node or a DBA's open session holds, rather than waiting past the store's bound and
// turning a routine request into 503 "try again" (test/bounded-waits-b-red-team.test.ts, -d-). A skipped row is left
// as it is, for a later request or pass.
import type { DatabaseSync, SQLInputValue } from "node:sqlite";
import { sql, type Compilable, type Expression, type ExpressionBuilder, type SqlBool } from "kysely";
import type { Database } from "./database.ts";
import { isSQLiteBusy } from "./errors.ts";
import type { Schema } from "./schema.ts";

/** Tables keyed by a text `id` that bookkeeping writes skip when held. */
type Keyed = "sessions" | "replaced_sessions" | "api_tokens";

/**
 * A WHERE for `table`'s UPDATE or DELETE: the rows matching `where` that no other transaction holds. On PostgreSQL
 * `id IN (SELECT id … WHERE … FOR UPDATE SKIP LOCKED)`; on SQLite, which has no row locks (one writer at a time, behind
 * its busy timeout), `where` itself. With `limit`, at most that many of them (a batch of a purge).
 *
 * @example
 * await db.deleteFrom("sessions").where(unheld(database, "sessions", (eb) => eb("id", "=", id))).execute();
 */
export function unheld<T extends Keyed>(
  database: Pick<Database, "dialect">,
  table: T,
  where: (eb: ExpressionBuilder<Schema, T>) => Expression<SqlBool>,
  options: { limit?: number } = {},
): (eb: ExpressionBuilder<Schema, T>) => Expression<SqlBool> {
  const limit = options.limit === undefined ? sql`` : sql` LIMIT ${sql.lit(Math.trunc(options.limit))}`;
  if (database.dialect !== "postgres") {
    return options.limit === undefined ? where : (eb) => sql<SqlBool>`id IN (SELECT id FROM ${sql.table(table)} WHERE ${where(eb)}${limit})`;
  }
  return (eb) => sql<SqlBool>`id IN (SELECT id FROM ${sql.table(table)} WHERE ${where(eb)}${limit} FOR UPDATE SKIP LOCKED)`;
}

/**
 * Runs `query`, a bookkeeping UPDATE or DELETE (its WHERE made with unheld), without waiting for a lock, and returns
 * how many rows it changed. On PostgreSQL as it is: SKIP LOCKED leaves a held row, at once. On SQLite, which locks the
 * whole file for one writer, with the connection's busy timeout at 0 for that one statement: when another process
 * holds the write lock (a CLI batch, a backup, a `sqlite3` shell) nothing is written and the answer is 0, at once.
 * Waiting instead would hold the request for up to the busy timeout, and past it fail a read for a write nothing
 * waits for (test/sqlite-busy-red-team.test.ts). Through withoutWaiting.
 *
 * @example
 * await changeUnheld(database, db.updateTable("sessions").set({ last_seen_at: now }).where(unheld(database, "sessions", due)));
 */
export async function changeUnheld(database: Database, query: Compilable & { executeTakeFirst(): Promise<{ numUpdatedRows?: bigint; numDeletedRows?: bigint }> }): Promise<number> {
  const handle = database.sqlite;
  if (database.dialect === "postgres" || !handle) {
    const result = await query.executeTakeFirst();
    return Number(result.numUpdatedRows ?? result.numDeletedRows ?? 0n);
  }
  const compiled = query.compile();
  return withoutWaiting(database, handle, () => Number(handle.prepare(compiled.sql).run(...(compiled.parameters as SQLInputValue[])).changes), 0);
}

/**
 * Runs `attempt` on SQLite's connection `handle` with its busy timeout at 0: another process's write lock fails it at
 * once, and `busy` is the answer, instead of a wait. Safe because the connection is held (the driver's mutex: no other
 * caller's transaction is open on it) and the pragma, `attempt` and the restore run synchronously, so nothing else of
 * this process runs a statement while the timeout is 0. Any other error is thrown.
 *
 * @example
 * await withoutWaiting(database, handle, () => handle.exec("…"), "busy");
 */
export async function withoutWaiting<T>(database: Database, handle: DatabaseSync, attempt: () => T, busy: T): Promise<T> {
  return database.db.connection().execute(async () => {
    const before = (handle.prepare("PRAGMA busy_timeout").get() as { timeout: number }).timeout;
    handle.exec("PRAGMA busy_timeout = 0");
    try {
      return attempt();
    } catch (error) {
      if (isSQLiteBusy(error)) return busy;
      throw error;
    } finally {
      handle.exec(`PRAGMA busy_timeout = ${Math.trunc(before)}`);
    }
  });
}

/**
 * Whether a write could take SQLite's write lock now, asked without waiting (BEGIN IMMEDIATE and ROLLBACK with the busy
 * timeout at 0, as changeUnheld): false while another process holds it. For bookkeeping made of several statements (an
 * audit append) that would rather be skipped than wait; it may still meet a lock taken the moment after, and then waits
 * as any write does. Always true on PostgreSQL, whose row-level waits are bounded by the caller.
 */
export async function sqliteWriteLockFree(database: Database): Promise<boolean> {
  const handle = database.sqlite;
  if (database.dialect === "postgres" || !handle) return true;
  return withoutWaiting(database, handle, () => {
    if (handle.isTransaction) return true;
    handle.exec("BEGIN IMMEDIATE");
    handle.exec("ROLLBACK");
    return true;
  }, false);
}
