// Taking back one counted event: a refunded budget slot (FloodControl.takeFor), a login attempt's own events
// (release, succeeded). The events of one key counted in one millisecond are alike, so "its" event is any one of them,
// and the delete must remove exactly one whatever other deletes of the same key run beside it.
import { setTimeout as sleep } from "node:timers/promises";
import { CompiledQuery, type Kysely } from "kysely";
import type { Schema } from "../../store/schema.ts";
import type { Database } from "../../store/database.ts";
import { numberedFor } from "../../store/sqlite-dialect-prepared.ts";

/** The one event's columns: $1 scope, $2 key, $3 time. */
const WHERE = "scope = $1 AND key = $2 AND at = $3";

/** How many times a PostgreSQL delete that found only events other deletes held is tried again (deleteOneEvent). */
const ATTEMPTS = 40;

/**
 * Deletes one event of several that may share the millisecond, by the row's physical id. On PostgreSQL the row is
 * picked FOR UPDATE SKIP LOCKED: two deletes that share a millisecond otherwise both picked the same row and the second
 * deleted nothing. SQLite runs one writer at a time.
 */
export function deleteOneSQL(dialect: Database["dialect"]): string {
  const row = dialect === "postgres" ? "ctid" : "rowid";
  const lock = dialect === "postgres" ? " FOR UPDATE SKIP LOCKED" : "";
  return `DELETE FROM flood_events WHERE ${row} = (SELECT ${row} FROM flood_events WHERE ${WHERE} LIMIT 1${lock})`;
}

const ANY_LEFT_SQL = `SELECT 1 AS one FROM flood_events WHERE ${WHERE} LIMIT 1`;

/** deleteOneEvent's two statements as each dialect's driver numbers them, written once rather than on every call. */
const STATEMENTS: Readonly<Record<Database["dialect"], { remove: string; anyLeft: string }>> = {
  sqlite: { remove: numberedFor({ dialect: "sqlite" }, deleteOneSQL("sqlite")), anyLeft: numberedFor({ dialect: "sqlite" }, ANY_LEFT_SQL) },
  postgres: { remove: deleteOneSQL("postgres"), anyLeft: ANY_LEFT_SQL },
};

/**
 * Runs deleteOneSQL for (`scope`, `key`, `at`) on `executor` (a transaction's or the pool's) and, on PostgreSQL, makes
 * sure it deleted one. A statement sees the rows committed when it began; skipping the rows other deletes hold, it
 * could find none left while its own slot's twin, taken and committed a moment after it began, stood: it then deleted
 * nothing, a refund other refunds raced gave nothing back, and the hour's budget stayed short by one slot
 * (test/flood-refund-race.test.ts). So a delete that removed nothing is tried again, as a new statement (READ COMMITTED:
 * a new snapshot), after a short wait for the holders to finish, for as long as any event of the key and time is left.
 * None left: another took it back already (an administrator's clearing, a success's), and there is nothing to do.
 */
export async function deleteOneEvent(database: Database, executor: Kysely<Schema>, parameters: ReadonlyArray<string | number>): Promise<void> {
  const statements = STATEMENTS[database.dialect];
  const remove = CompiledQuery.raw(statements.remove, [...parameters]);
  for (let attempt = 1; ; attempt++) {
    const deleted = await executor.executeQuery(remove);
    if (database.dialect !== "postgres" || Number(deleted.numAffectedRows ?? 0n) > 0 || attempt === ATTEMPTS) return;
    const left = await executor.executeQuery(CompiledQuery.raw(statements.anyLeft, [...parameters]));
    if (left.rows.length === 0) return;
    // The rows left are held by deletes still running; theirs commit in a moment.
    await sleep(Math.min(attempt, 10));
  }
}
