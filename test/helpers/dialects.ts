// Runs one suite against SQLite and against a private PostgreSQL cluster: the shared conformance suites.
//
// fresh() hands out a database already at the latest migration, copied from a template migrated once per test
// file (SQLite: a file copy, ~1 ms; PostgreSQL: CREATE DATABASE … TEMPLATE, ~20 ms) instead of migrating every
// test's database again (~24 ms and ~90–156 ms, 291 statements on PostgreSQL). A test's own migrate() then finds
// nothing pending. Tests of the migrations themselves (a partial list, an older schema, the run's results) take
// empty(): a database with no table at all.
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe } from "node:test";
import { systemClock } from "../../src/lib/clock.ts";
import { openPostgres, openSQLite, type Database } from "../../src/store/database.ts";
import { migrate } from "../../src/store/migrator.ts";
import { postgresUnavailable, startPostgres, type PgCluster } from "./postgres.ts";

export interface DialectFixture {
  /** A new database for one test, at the latest migration and holding no row but the migrations'. */
  fresh(): Promise<Database>;
  /** A new database with no table at all: for tests of the migrations themselves. */
  empty(): Promise<Database>;
  /** Its connection target (a file path or URL), for child processes. */
  lastTarget(): { sqlitePath?: string; databaseURL?: string };
}

let counter = 0;
let shared: Promise<PgCluster | null> | null = null;
/** The PostgreSQL template database of this process's cluster, made on first use. */
let template: Promise<string> | null = null;

let stopRegistered = false;

/** One cluster per test file (process), started on first use and stopped after the file's tests. */
export function sharedCluster(): Promise<PgCluster | null> {
  shared ??= startPostgres();
  return shared;
}

/** Registers, at the top level of a test file, the hook that stops the shared cluster. */
function registerStop(): void {
  if (stopRegistered) return;
  stopRegistered = true;
  after(async () => {
    if (shared) await (await shared)?.stop();
  });
}

/** Migrates `database` to the latest version, failing loudly (the template every fresh() database is copied from). */
async function migrated(database: Database): Promise<void> {
  const outcome = await migrate(database, systemClock);
  if (outcome.error) throw outcome.error;
}

/** Declares `suite` once per dialect. PostgreSQL is skipped loudly when not installed. */
export function forEachDialect(name: string, suite: (fx: DialectFixture) => void): void {
  describe(`${name} [sqlite]`, () => {
    let dir: string;
    const opened: Database[] = [];
    let target: { sqlitePath?: string } = {};
    before(() => {
      dir = mkdtempSync(join(tmpdir(), "bulwark-sqlite-"));
    });
    after(async () => {
      for (const db of opened) await db.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    });
    let template: Promise<string> | null = null;
    const open = (path: string): Database => {
      target = { sqlitePath: path };
      const db = openSQLite(path, { create: true });
      opened.push(db);
      return db;
    };
    suite({
      async fresh() {
        template ??= (async () => {
          const path = join(dir, "template.sqlite");
          const db = openSQLite(path, { create: true });
          try {
            await migrated(db);
          } finally {
            await db.close(); // the last connection: its WAL is checkpointed into the file and removed
          }
          if (existsSync(`${path}-wal`)) throw new Error("the SQLite template kept a WAL after closing");
          return path;
        })();
        const from = await template;
        const path = join(dir, `db-${++counter}.sqlite`);
        copyFileSync(from, path);
        return open(path);
      },
      async empty() {
        return open(join(dir, `db-${++counter}.sqlite`));
      },
      lastTarget: () => target,
    });
  });

  registerStop();
  const unavailable = postgresUnavailable();
  describe(`${name} [postgres]`, unavailable ? { skip: `PostgreSQL unavailable: ${unavailable}` } : {}, () => {
    const opened: Database[] = [];
    let target: { databaseURL?: string } = {};
    let cluster: PgCluster | null = null;
    before(async () => {
      cluster = await sharedCluster();
    });
    after(async () => {
      for (const db of opened) await db.close().catch(() => {});
    });
    const open = async (url: string): Promise<Database> => {
      target = { databaseURL: url };
      const db = await openPostgres(url);
      opened.push(db);
      return db;
    };
    suite({
      async fresh() {
        const pg = cluster;
        if (!pg) throw new Error("PostgreSQL cluster did not start");
        template ??= (async () => {
          const name = `template_${process.pid}`;
          const db = await openPostgres(await pg.createDatabase(name));
          try {
            await migrated(db);
          } finally {
            await db.close(); // no connection may stay open to a template
          }
          return name;
        })();
        const from = await template;
        return open(await pg.createDatabase(`t${process.pid}_${++counter}`, from));
      },
      async empty() {
        if (!cluster) throw new Error("PostgreSQL cluster did not start");
        return open(await cluster.createSchema(`t${process.pid}_${++counter}`));
      },
      lastTarget: () => target,
    });
  });
}
