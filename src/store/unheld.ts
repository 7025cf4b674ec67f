// The rows an UPDATE or DELETE may change without waiting on another transaction's lock: bookkeeping whose answer
// nothing waits for (a session's last-seen touch, a closed session's delete, a token's last use, the expired-session
// purge) skips a row a frozen node or a DBA's open session holds, rather than waiting past the store's bound and
// turning a routine request into 503 "try again" (test/bounded-waits-b-red-team.test.ts, -d-). A skipped row is left
// as it is, for a later request or pass.
import { sql, type Expression, type ExpressionBuilder, type SqlBool } from "kysely";
import type { Database } from "./database.ts";
import type { Schema } from "./schema.ts";

/** Tables keyed by a text `id` that bookkeeping writes skip when held. */
type Keyed = "sessions" | "replaced_sessions" | "api_tokens";

/**
 * A WHERE for `table`'s UPDATE or DELETE: the rows matching `where` that no other transaction holds. On PostgreSQL
 * `id IN (SELECT id … WHERE … FOR UPDATE SKIP LOCKED)`; on SQLite, which has no row locks (one writer at a time, behind
 * its busy timeout), `where` itself.
 *
 * @example
 * await db.deleteFrom("sessions").where(unheld(database, "sessions", (eb) => eb("id", "=", id))).execute();
 */
export function unheld<T extends Keyed>(
  database: Pick<Database, "dialect">,
  table: T,
  where: (eb: ExpressionBuilder<Schema, T>) => Expression<SqlBool>,
): (eb: ExpressionBuilder<Schema, T>) => Expression<SqlBool> {
  if (database.dialect !== "postgres") return where;
  return (eb) => sql<SqlBool>`id IN (SELECT id FROM ${sql.table(table)} WHERE ${where(eb)} FOR UPDATE SKIP LOCKED)`;
}
