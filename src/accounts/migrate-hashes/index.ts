// Public API of the wrap-migration job (bulk lift of fast legacy hashes into argon2id).
export { JOB_KIND, MAX_BATCH, openMigrationJob, resumeMigrationJob, runMigration, wrappableCensus } from "./migrate-hashes.ts";
export type { MigrateDeps, MigrateRunOptions, MigrateSpec, WrappableCensus } from "./migrate-hashes.ts";
