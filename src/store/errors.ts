// Errors of the storage layer, each with a stable code and an operator-facing fix.
import { BulwarkError, Unavailable, type BulwarkErrorOptions } from "../lib/errors.ts";

export class StoreError extends BulwarkError {}

export const storeErrors = {
  notADatabase: (path: string, options?: BulwarkErrorOptions): StoreError =>
    new StoreError("BULWARK_ERR_DB_CORRUPT", "input",
      `${path} is not a SQLite database or is corrupt; move it aside, or point BULWARK_DATA_DIR elsewhere`, options),
  notAFile: (path: string, what: string): StoreError =>
    new StoreError("BULWARK_ERR_DB_NOT_A_FILE", "input",
      `${path} is ${what}, not a SQLite database file; remove or rename it, or point BULWARK_DATA_DIR elsewhere`),
  /**
   * The file may be a healthy database, but this process cannot open it here (permissions, a read-only file
   * system, a WAL side file in the way): an environment failure, exit 3. `reason` names the cause and the fix;
   * it never advises moving the database aside.
   */
  cannotOpen: (path: string, reason: string, options?: BulwarkErrorOptions): StoreError =>
    new StoreError("BULWARK_ERR_DB_OPEN", "runtime", `cannot open the database ${path}: ${reason}`, options),
  /**
   * The database or a side file is not private to this process: a link, another account's, writable by group or
   * others, or readable by every account. Bad input, exit 2, as a data dir or key file refused for the same reasons:
   * the operator fixes it with the chown/chmod `reason` names, trying again changes nothing.
   */
  untrusted: (path: string, reason: string): StoreError =>
    new StoreError("BULWARK_ERR_DB_UNTRUSTED", "input", `refusing the database ${path}: ${reason}`),
  foreignDatabase: (where: string, tables: string[]): StoreError =>
    new StoreError("BULWARK_ERR_DB_FOREIGN", "input",
      `${where} holds tables Bulwark did not create (${tables.slice(0, 5).join(", ")}${tables.length > 5 ? ", …" : ""}); refusing to touch it — use an empty database`),
  schemaDamaged: (where: string, problem: string): StoreError =>
    new StoreError("BULWARK_ERR_DB_DAMAGED", "input",
      `the Bulwark database at ${where} is damaged: ${problem}; restore it from a backup (Bulwark changes nothing in it)`),
  notInitialised: (where: string): StoreError =>
    new StoreError("BULWARK_ERR_DB_NOT_INITIALISED", "input", `no Bulwark database at ${where}; run \`bulwark init\` first`),
  newerSchema: (where: string, found: number, known: number): StoreError =>
    new StoreError("BULWARK_ERR_DB_NEWER", "input",
      `the database at ${where} is at schema version ${found}, newer than this Bulwark knows (${known}); upgrade Bulwark, it refuses to run against a newer schema`),
  pendingMigrations: (where: string, pending: number): StoreError =>
    new StoreError("BULWARK_ERR_DB_PENDING", "input",
      `the database at ${where} needs ${pending} migration(s); run \`bulwark init\` (or \`bulwark serve\`) to apply them`),
  unreachable: (where: string, options: BulwarkErrorOptions & { reason: string }): StoreError =>
    new StoreError("BULWARK_ERR_DB_UNREACHABLE", "runtime", `cannot connect to PostgreSQL at ${where}: ${options.reason}; check BULWARK_DATABASE_URL`, options),
  /** The migrations table exists but could not be read (a lock timeout, a dropped connection): never "damaged". */
  migrationsUnreadable: (where: string, options: BulwarkErrorOptions): StoreError =>
    new StoreError("BULWARK_ERR_DB_UNREADABLE", "runtime",
      `cannot read the list of applied migrations at ${where}: ${(options.cause as Error)?.message ?? "unknown error"}; nothing was changed, try again (another session may hold a lock on bulwark_migrations)`, options),
  migrationFailed: (version: number, name: string, options: BulwarkErrorOptions): StoreError =>
    new StoreError("BULWARK_ERR_MIGRATION", "runtime",
      `migration ${version} (${name}) failed and was rolled back: ${(options.cause as Error)?.message ?? "unknown error"}`, options),
};

/** PostgreSQL's lock_timeout (55P03, lock_not_available) and statement_timeout or cancel (57014, query_canceled). */
const BUSY_SQLSTATES: ReadonlySet<string> = new Set(["55P03", "57014"]);

/**
 * SQLite's primary result codes (https://sqlite.org/rescode.html) for a lock held past the busy timeout: SQLITE_BUSY
 * (5, "database is locked": another connection, a CLI batch or a `sqlite3` shell, holds the write lock) and
 * SQLITE_LOCKED (6, a conflict within one shared-cache connection). Extended codes (SQLITE_BUSY_SNAPSHOT…) keep the
 * primary code in their low byte.
 */
const SQLITE_BUSY = 5;
const SQLITE_LOCKED = 6;

/** True when `error` is node:sqlite's for a lock another connection held past the busy timeout (SQLITE_BUSY, SQLITE_LOCKED). */
export function isSQLiteBusy(error: unknown): boolean {
  const code = (error as { errcode?: unknown } | null)?.errcode;
  if (typeof code !== "number") return false;
  const primary = code & 0xff;
  return primary === SQLITE_BUSY || primary === SQLITE_LOCKED;
}

/** Seconds a caller refused because the store is busy is told to wait: about one lock wait's bound. */
export const STORE_BUSY_RETRY_SECONDS = 5;

/**
 * `error` as the named error for a statement that ran past its bound (a lock another session holds, or a statement
 * past statement_timeout on PostgreSQL; the write lock another process holds past the busy timeout on SQLite), or
 * null for anything else. Its transaction has rolled back whole; a request of several
 * transactions may have committed earlier ones, so the message promises no more than that the request did not finish
 * (a login takes back what it had made: session-routes' abandonLogin).
 * The message names nothing of the engine (it is sent to HTTP callers as it is).
 */
export function storeBusyError(error: unknown): Unavailable | null {
  const code = (error as { code?: unknown } | null)?.code;
  if (!(typeof code === "string" && BUSY_SQLSTATES.has(code)) && !isSQLiteBusy(error)) return null;
  return new Unavailable("BULWARK_ERR_DB_BUSY",
    "the store is busy: a wait ran past its bound and the request could not finish; try again shortly", STORE_BUSY_RETRY_SECONDS, { cause: error });
}
