// Runs one suite against SQLite and against a private PostgreSQL cluster: the shared conformance suites.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe } from "node:test";
import { openPostgres, openSQLite, type Database } from "../../src/store/database.ts";
import { postgresUnavailable, startPostgres, type PgCluster } from "./postgres.ts";

export interface DialectFixture {
  /** A new, empty database for one test. */
  fresh(): Promise<Database>;
  /** Its connection target (a file path or URL), for child processes. */
  lastTarget(): { sqlitePath?: string; databaseURL?: string };
}

let counter = 0;
let shared: Promise<PgCluster | null> | null = null;

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
    suite({
      async fresh() {
        const path = join(dir, `db-${++counter}.sqlite`);
        target = { sqlitePath: path };
        const db = openSQLite(path, { create: true });
        opened.push(db);
        return db;
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
    suite({
      async fresh() {
        if (!cluster) throw new Error("PostgreSQL cluster did not start");
        const url = await cluster.createSchema(`t${process.pid}_${++counter}`);
        target = { databaseURL: url };
        const db = await openPostgres(url);
        opened.push(db);
        return db;
      },
      lastTarget: () => target,
    });
  });
}
