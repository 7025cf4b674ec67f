// Opens the database: node:sqlite in the data dir (the embedded default) or PostgreSQL when a
// postgres:// URL is configured. Every failure becomes one clear message naming the problem and the fix.
import { existsSync, openSync, readSync, closeSync, statSync } from "node:fs";
import { DatabaseSync } from "node:sqlite";
import { Kysely, sql, type Transaction } from "kysely";
import type { Schema } from "./schema.ts";
import { NodeSqliteDialect } from "./sqlite-dialect.ts";
import { storeErrors } from "./errors.ts";

export type DialectName = "sqlite" | "postgres";

export interface Database {
  readonly dialect: DialectName;
  readonly db: Kysely<Schema>;
  /** Where the data lives, safe to print: a file path, or the URL without its password. */
  readonly where: string;
  /** The raw node:sqlite handle, for hot paths that use prepared statements directly (null on PostgreSQL). */
  readonly sqlite: DatabaseSync | null;
  /** Runs `fn` in one transaction (on SQLite it takes the write lock at BEGIN). */
  transaction<T>(fn: (trx: Transaction<Schema>) => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

const SQLITE_MAGIC = "SQLite format 3\0";

function looksLikeSQLite(path: string): boolean {
  if (statSync(path).size === 0) return true; // an empty file is a valid, empty database
  const fd = openSync(path, "r");
  try {
    const header = Buffer.alloc(16);
    readSync(fd, header, 0, 16, 0);
    return header.toString("latin1") === SQLITE_MAGIC;
  } finally {
    closeSync(fd);
  }
}

export interface OpenSQLiteOptions {
  /** When false, a missing file is an error ("run bulwark init") instead of being created. */
  create: boolean;
  /** Busy timeout in ms: how long a writer waits for another process's lock. */
  busyTimeoutMs?: number;
}

/**
 * Serialises the transactions that take the same `key` (any constant naming one critical section), until the
 * end of `trx`: a transaction-scoped advisory lock on PostgreSQL; nothing on SQLite, where a write transaction
 * holds the database's one write lock from BEGIN IMMEDIATE.
 *
 * @example
 * await database.transaction(async (trx) => { await serialiseTransactions(database, trx, OPEN_JOB_LOCK); … });
 */
export async function serialiseTransactions(database: Database, trx: Kysely<Schema>, key: number): Promise<void> {
  if (database.dialect === "postgres") await sql`SELECT pg_advisory_xact_lock(${key})`.execute(trx);
}

/** Opens (or creates) the SQLite database at `path` in WAL mode with foreign keys and a busy timeout. */
export function openSQLite(path: string, options: OpenSQLiteOptions): Database {
  if (existsSync(path)) {
    if (!looksLikeSQLite(path)) throw storeErrors.notADatabase(path);
  } else if (!options.create) {
    throw storeErrors.notInitialised(path);
  } else {
    // The database holds password hashes and wrapped keys: only its owner may read it.
    closeSync(openSync(path, "wx", 0o600));
  }
  let handle: DatabaseSync;
  try {
    handle = new DatabaseSync(path);
    handle.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 10_000)}`);
    handle.exec("PRAGMA journal_mode = WAL");
    handle.exec("PRAGMA synchronous = NORMAL");
    handle.exec("PRAGMA foreign_keys = ON");
    // 64 MiB of page cache (the default is 2 MiB): bulk jobs over random-id indexes revisit the same pages
    // batch after batch. Allocated as pages are used, so a small database costs nothing.
    handle.exec("PRAGMA cache_size = -65536");
    // Reading the schema proves the file is a usable database before anything is written.
    handle.prepare("SELECT count(*) FROM sqlite_master").get();
  } catch (error) {
    throw storeErrors.notADatabase(path, { cause: error });
  }
  const db = new Kysely<Schema>({ dialect: new NodeSqliteDialect(handle) });
  return {
    dialect: "sqlite",
    db,
    where: path,
    sqlite: handle,
    transaction: (fn) => db.transaction().execute(fn),
    close: async () => {
      await db.destroy();
      // Kysely closes the driver only if a query ever went through it; hot paths use the handle directly.
      if (handle.isOpen) handle.close();
    },
  };
}

/** The URL with its password replaced, for messages and logs. */
export function redactURL(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return "(malformed URL)";
  }
}

function reasonOf(error: unknown): string {
  const e = error as { code?: string; message?: string };
  switch (e.code) {
    case "ECONNREFUSED":
      return "connection refused (is the server running, and on that port?)";
    case "ENOENT":
      return "no server socket at that path";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "host name not found";
    case "28P01":
    case "28000":
      return "authentication failed";
    case "3D000":
      return "the database does not exist";
    default:
      return e.message ?? String(error);
  }
}

/** Opens a PostgreSQL pool and proves it answers before returning. */
export async function openPostgres(url: string, options: { maxConnections?: number } = {}): Promise<Database> {
  const [{ default: pg }, { PostgresDialect }] = await Promise.all([import("pg"), import("kysely")]);
  const where = redactURL(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: 10_000,
    // bigint columns hold epoch milliseconds and counters, all within 2^53: read them as numbers.
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
    },
  });
  pool.on("error", () => {
    // An idle client lost its connection; the pool replaces it. Queries in flight report their own error.
  });
  try {
    const client = await pool.connect();
    client.release();
  } catch (error) {
    await pool.end().catch(() => {});
    throw storeErrors.unreachable(where, { cause: error, reason: reasonOf(error) });
  }
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  return {
    dialect: "postgres",
    db,
    where,
    sqlite: null,
    transaction: (fn) => db.transaction().execute(fn),
    close: () => db.destroy(),
  };
}

/** Names of the user tables in the database. */
export async function listTables(database: Database): Promise<string[]> {
  if (database.dialect === "sqlite") {
    const rows = await sql<{ name: string }>`SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`.execute(database.db);
    return rows.rows.map((r) => r.name);
  }
  const rows = await sql<{ name: string }>`SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`.execute(database.db);
  return rows.rows.map((r) => r.name);
}
