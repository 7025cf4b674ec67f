// Runs migrations in order, one transaction each, recording every one applied. Refuses a database
// whose schema is newer than the code, and reports a result per migration instead of stopping half-way.
import { sql, type Kysely } from "kysely";
import type { Clock } from "../lib/clock.ts";
import type { Database } from "./database.ts";
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

async function appliedVersions(db: Kysely<any>): Promise<number[] | null> {
  try {
    const rows = await db.selectFrom("bulwark_migrations").select("version").orderBy("version").execute();
    return rows.map((r) => Number(r.version));
  } catch {
    return null; // no migrations table yet
  }
}

/** Where the database stands against the migrations this code knows. Reads only. */
export async function migrationStatus(database: Database, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrationStatus> {
  const applied = (await appliedVersions(database.db)) ?? [];
  const latest = migrations.at(-1)?.version ?? 0;
  const current = applied.length ? Math.max(...applied) : 0;
  if (current > latest) throw storeErrors.newerSchema(database.where, current, latest);
  const done = new Set(applied);
  return { current, latest, pending: migrations.filter((m) => !done.has(m.version)) };
}

/** Applies every pending migration in order; stops at the first failure, which is rolled back. */
export async function migrate(database: Database, clock: Clock, migrations: readonly Migration[] = MIGRATIONS): Promise<MigrateOutcome> {
  const status = await migrationStatus(database, migrations);
  const results: MigrationResult[] = [];
  if (status.pending.length === 0) return { results };
  await sql`CREATE TABLE IF NOT EXISTS bulwark_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at bigint NOT NULL)`.execute(database.db);
  let error: StoreError | undefined;
  for (const migration of status.pending) {
    if (error) {
      results.push({ version: migration.version, name: migration.name, status: "not-run" });
      continue;
    }
    try {
      await database.transaction(async (trx) => {
        await migration.up(trx, database.dialect);
        await trx.insertInto("bulwark_migrations").values({ version: migration.version, name: migration.name, applied_at: clock.now() }).execute();
      });
      results.push({ version: migration.version, name: migration.name, status: "applied" });
    } catch (cause) {
      error = storeErrors.migrationFailed(migration.version, migration.name, { cause });
      results.push({ version: migration.version, name: migration.name, status: "failed" });
    }
  }
  return error ? { results, error } : { results };
}
