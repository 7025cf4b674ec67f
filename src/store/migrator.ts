// Runs migrations in order, one transaction each, recording every one applied, and once each however many
// processes start at the same time. Refuses a database whose schema is newer than the code, and reports a result
// per migration instead of stopping half-way.
import { sql, type Kysely, type Transaction } from "kysely";
import type { Clock } from "../lib/clock.ts";
import { lockKeyOf, type Database } from "./database.ts";
import type { Schema } from "./schema.ts";
import { storeErrors, type StoreError } from "./errors.ts";
import { MIGRATIONS, type Migration } from "./migrations/index.ts";

export interface MigrationStatus {
  current: number;
  latest: number;
  pending: Migration[];
}

export interface MigrationResult {
  version: number;
  name: string;
  status: "applied" | "failed" | "not-run";
}

export interface MigrateOutcome {
  results: MigrationResult[];
  error?: StoreError;
}

/** Whether `error` says the table queried does not exist (SQLite's message; PostgreSQL's undefined_table, 42P01). */
function isMissingTable(error: unknown): boolean {
  const e = error as { code?: unknown; message?: unknown };
  return e.code === "42P01" || (typeof e.message === "string" && /^no such table: /.test(e.message));
}

/**
 * The versions recorded, or null when there is no migrations table yet. Only a missing table is null: a lock
 * timeout or a dropped connection was read as "no table" too, and a store that holds Bulwark tables then looked
 * damaged ("restore it from a backup", advice that throws away every change since the backup).
 */
async function appliedVersions(db: Kysely<any>, where: string): Promise<number[] | null> {
  try {
    const rows = await db.selectFrom("bulwark_migrations").select("version").orderBy("version").execute();
    return rows.map((r) => Number(r.version));
  } catch (error) {
    if (isMissingTable(error)) return null;
    throw storeErrors.migrationsUnreadable(where, { cause: error });
  }
}

/** Where the database stands against the migrations this code knows. Reads only. */
export async function migrationStatus(database: Database, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationStatus> {
  return statusOn(database.db, database.where, migrations);
}

async function statusOn(db: Kysely<any>, where: string, migrations: readonly Migration[]): Promise<MigrationStatus> {
  const applied = (await appliedVersions(db, where)) ?? [];
  const latest = migrations.at(-1)?.version ?? 0;
  const current = applied.length ? Math.max(...applied) : 0;
  if (current > latest) throw storeErrors.newerSchema(where, current, latest);
  const done = new Set(applied);
  return { current, latest, pending: migrations.filter((m) => !done.has(m.version)) };
}

// Held (PostgreSQL, session level) for a whole migration run: a node that starts while another migrates waits,
// then finds nothing left to do. A constant, so every Bulwark process on the database takes the same lock.
const MIGRATION_LOCK = lockKeyOf("bulwark:migrations");

type RunInTransaction = <T>(fn: (trx: Transaction<Schema>) => Promise<T>) => Promise<T>;

/**
 * Applies every pending migration in order; stops at the first failure, which is rolled back. Safe to run from
 * several processes at once: each migration is applied by one of them and reported only by that one.
 * - PostgreSQL: a session-level advisory lock around the whole run, taken on the connection that then runs the
 *   migrations (so a pool of one connection is enough), and the pending list re-read once it is held.
 * - SQLite: every migration's transaction holds the database's write lock from BEGIN IMMEDIATE, and re-reads
 *   inside it whether the migration was recorded meanwhile; if so it is skipped. (SQLite has no lock that
 *   outlives a transaction, and a migration runs only after the one before it is recorded, so this is sound.)
 */
export async function migrate(database: Database, clock: Clock, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrateOutcome> {
  // The usual start-up finds nothing pending: no lock needed to know that.
  if ((await migrationStatus(database, migrations)).pending.length === 0) return { results: [] };
  if (database.dialect !== "postgres") return migrateWith(database, database.db, clock, migrations, (fn) => database.transaction(fn));
  return database.db.connection().execute(async (connection) => {
    // Unbounded on this connection for the run: the pool's lock_timeout (LOCK_TIMEOUT_MS) would make a process that
    // starts while another migrates give up after seconds, and its statement_timeout would cut a migration's index
    // build on a big table. Put back before the connection returns to the pool.
    await sql`SET lock_timeout = 0`.execute(connection);
    await sql`SET statement_timeout = 0`.execute(connection);
    try {
      await sql`SELECT pg_advisory_lock(${MIGRATION_LOCK})`.execute(connection);
      try {
        return await migrateWith(database, connection, clock, migrations, (fn) => connection.transaction().execute(fn));
      } finally {
        await sql`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`.execute(connection);
      }
    } finally {
      await sql`RESET lock_timeout`.execute(connection);
      await sql`RESET statement_timeout`.execute(connection);
    }
  });
}

/** The run itself; `db` is where it reads and creates the migrations table (on PostgreSQL, the locked connection). */
async function migrateWith(database: Database, db: Kysely<Schema>, clock: Clock, migrations: readonly Migration[], inTransaction: RunInTransaction): Promise<MigrateOutcome> {
  const status = await statusOn(db, database.where, migrations); // again: another process may have migrated meanwhile
  const results: MigrationResult[] = [];
  if (status.pending.length === 0) return { results };
  await sql`CREATE TABLE IF NOT EXISTS bulwark_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`.execute(db);
  let error: StoreError | undefined;
  for (const migration of status.pending) {
    if (error) {
      results.push({ version: migration.version, name: migration.name, status: "not-run" });
      continue;
    }
    try {
      const applied = await inTransaction(async (trx) => {
        const recorded = await trx.selectFrom("bulwark_migrations").select("version").where("version", "=", migration.version).executeTakeFirst();
        if (recorded) return false; // applied by another process since the list was read
        await migration.up(trx, database.dialect);
        await trx.insertInto("bulwark_migrations").values({ version: migration.version, name: migration.name, applied_at: clock.now() }).execute();
        return true;
      });
      if (applied) results.push({ version: migration.version, name: migration.name, status: "applied" });
    } catch (cause) {
      error = storeErrors.migrationFailed(migration.version, migration.name, { cause });
      results.push({ version: migration.version, name: migration.name, status: "failed" });
    }
  }
  return error ? { results, error } : { results };
}
