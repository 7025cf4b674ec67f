// Opens the database: node:sqlite in the data dir (the embedded default) or PostgreSQL when a
// postgres:// URL is configured. Every failure becomes one clear message naming the problem and the fix.
import { createHash } from "node:crypto";
import { accessSync, chmodSync, constants, lstatSync, openSync, readSync, closeSync, statSync, type Stats } from "node:fs";
import { basename, dirname } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { Kysely, PostgresIntrospector, sql, type Transaction } from "kysely";
import { foreignOwner, thisUser, writableBy } from "../lib/os-user.ts";
import type { Schema } from "./schema.ts";
import { NodeSqliteDialect, setLockBound, SQLITE_BUSY_SLICE_MS } from "./sqlite-dialect.ts";
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
  /**
   * PostgreSQL: `listener` hears of every pooled connection lost (its backend killed, a restart, a failover), for the
   * log; the connection is dropped either way. Absent on SQLite.
   */
  onConnectionLost?(listener: (error: Error) => void): void;
  close(): Promise<void>;
}

const SQLITE_MAGIC = "SQLite format 3\0";
// SQLite primary result codes (https://sqlite.org/rescode.html): the two that mean the file itself is bad.
const SQLITE_CORRUPT = 11;
const SQLITE_NOTADB = 26;

const OWNER_FIX = "run Bulwark as the account that owns the data dir, or give this user access";

/** Why `error` (from the file system) stops us using `path`, in words; never says the database is damaged. */
function fsReason(error: unknown): string {
  const e = error as NodeJS.ErrnoException;
  switch (e.code) {
    case "EACCES":
    case "EPERM":
      return `permission denied for ${thisUser()}; ${OWNER_FIX}`;
    case "EROFS":
      return "it is on a read-only file system";
    default:
      return e.message ?? String(error);
  }
}

/**
 * Why the database file or one of its side files at `path` cannot be trusted, or null. It holds password hashes,
 * roles and wrapped keys: a file another account owns or can write lets that account read or change them, and a
 * symbolic link lets whoever can write the link's directory choose the file SQLite reads and writes. The owner may
 * be this process's user or root (root can replace any file anyway); root itself accepts only its own files.
 */
function untrustedFileReason(path: string, stats: Stats): string | null {
  if (stats.isSymbolicLink()) {
    return `${path} is a symbolic link, and SQLite would read and write through it; put the file itself there, or set BULWARK_DATA_DIR to the directory that holds it`;
  }
  const foreign = foreignOwner(stats);
  if (foreign) {
    return `${path} is owned by uid ${foreign.uid}, not by ${foreign.expected}: that account could read and change password hashes and wrapped keys; ` +
      `run Bulwark as that account, or, if the file is known to be yours, run: chown ${foreign.chownTo} ${path}`;
  }
  const who = writableBy(stats.mode);
  if (who !== null) {
    return `${path} is writable by ${who} (mode ${(stats.mode & 0o777).toString(8)}): they could change password hashes, roles and wrapped keys; run: chmod 600 ${path}`;
  }
  return null;
}

/**
 * Why the database file or a side file at `path` is too open to read from, or null: one that every account on the
 * machine may read hands them the password hashes, the wrapped keys and (in the WAL) the newest of both. A group
 * may read it, for a backup account (PostgreSQL allows a group-readable data directory for the same reason).
 */
function readableByOthersReason(path: string, mode: number): string | null {
  if ((mode & 0o007) === 0) return null;
  return `${path} is open to every account on this machine (mode ${(mode & 0o777).toString(8)}): anyone could copy the password hashes and wrapped keys; ` +
    `run: chmod 600 ${path} (or chmod 640 to let a backup group read it)`;
}

/**
 * True when `path` exists as a regular file this process may trust (untrustedFileReason), false when it does not
 * exist; anything else throws, named. Never follows a link.
 */
function databaseFileExists(path: string): boolean {
  let stats;
  try {
    stats = lstatSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw storeErrors.cannotOpen(path, fsReason(error), { cause: error });
  }
  if (stats.isDirectory()) throw storeErrors.notAFile(path, "a directory");
  if (!stats.isFile() && !stats.isSymbolicLink()) throw storeErrors.notAFile(path, "not a regular file");
  const untrusted = untrustedFileReason(path, stats);
  if (untrusted !== null) throw storeErrors.untrusted(path, untrusted);
  return true;
}

/**
 * Refuses a `-wal`, `-shm` or `-journal` side file that is a link, another account's, or writable by others: SQLite
 * replays the write-ahead log into the database on open, and plays a hot rollback journal back on the first read
 * (even in WAL mode, before it looks at the log), so whoever controls either writes the database. One that everyone
 * may read is refused too: the log and the journal hold copies of pages. (SQLite creates them with the database's mode.)
 */
function assertSideFilesTrusted(path: string): void {
  for (const side of [`${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    let stats;
    try {
      stats = lstatSync(side);
    } catch {
      continue; // absent (the usual case), or unreachable: SQLite's own error is explained by whyCannotOpen
    }
    const untrusted = untrustedFileReason(side, stats) ?? (stats.isFile() ? readableByOthersReason(side, stats.mode) : null);
    if (untrusted !== null) throw storeErrors.untrusted(path, untrusted);
  }
}

function looksLikeSQLite(path: string): boolean {
  let fd: number;
  try {
    if (statSync(path).size === 0) return true; // an empty file is a valid, empty database
    fd = openSync(path, "r");
  } catch (error) {
    throw storeErrors.cannotOpen(path, fsReason(error), { cause: error });
  }
  try {
    const header = Buffer.alloc(16);
    readSync(fd, header, 0, 16, 0);
    return header.toString("latin1") === SQLITE_MAGIC;
  } catch (error) {
    throw storeErrors.cannotOpen(path, fsReason(error), { cause: error });
  } finally {
    closeSync(fd);
  }
}

/** Why `path` cannot be written by this process, or null when it can. */
function writeProblem(path: string): "read-only" | "denied" | null {
  try {
    accessSync(path, constants.W_OK);
    return null;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EROFS" ? "read-only" : "denied";
  }
}

/**
 * Why SQLite could not open a file whose header is fine. WAL mode writes the database and creates `-wal` and
 * `-shm` beside it, even to read, so a healthy database on a read-only mount, or in a directory this user cannot
 * write, fails with "unable to open database file" or "attempt to write a readonly database": name that, not
 * corruption, and never advise moving the file aside.
 */
function whyCannotOpen(path: string, error: unknown): string {
  const dir = dirname(path);
  const sideFiles = `${basename(path)}-wal and ${basename(path)}-shm`;
  const walNeeds = `SQLite in WAL mode writes the database and creates ${sideFiles} beside it, even to read`;
  for (const side of [`${path}-wal`, `${path}-shm`]) {
    let stats;
    try {
      stats = statSync(side);
    } catch {
      continue; // absent (the usual case): SQLite creates it
    }
    if (!stats.isFile()) return `${side} is ${stats.isDirectory() ? "a directory" : "not a regular file"}, and SQLite keeps its write-ahead log there; remove or rename it`;
    if (writeProblem(side) === "denied") return `${side} is not writable by ${thisUser()}; ${OWNER_FIX}`;
  }
  const file = writeProblem(path);
  const folder = writeProblem(dir);
  if (file === "read-only" || folder === "read-only") {
    return `${dir} is on a read-only file system, and ${walNeeds}; remount it read-write, or copy the data dir to a writable place and point BULWARK_DATA_DIR there`;
  }
  if (file !== null || folder !== null) {
    const what = file !== null && folder !== null ? `the file and its directory ${dir} are` : file !== null ? "the file is" : `its directory ${dir} is`;
    return `${what} not writable by ${thisUser()}, and ${walNeeds}; ${OWNER_FIX}`;
  }
  const e = error as { errstr?: string; errcode?: number; message?: string };
  return `SQLite says "${e.errstr ?? e.message ?? String(error)}"${e.errcode === undefined ? "" : ` (code ${e.errcode})`}`;
}

/** Maps a failure to open or first read a SQLite file: corrupt only when SQLite says the file itself is bad. */
function openFailure(path: string, error: unknown): Error {
  const code = (error as { errcode?: unknown }).errcode;
  const primary = typeof code === "number" ? code & 0xff : undefined;
  if (primary === SQLITE_NOTADB || primary === SQLITE_CORRUPT) return storeErrors.notADatabase(path, { cause: error });
  return storeErrors.cannotOpen(path, whyCannotOpen(path, error), { cause: error });
}

/**
 * The WAL's bound in pages (~16 MiB at 4 KiB pages): the running server's auto-checkpoint backstop (checkpointer.ts)
 * and, in bytes, every connection's journal_size_limit.
 */
export const WAL_LIMIT_PAGES = 4000;

export interface OpenSQLiteOptions {
  /** When false, a missing file is an error ("run bulwark init") instead of being created. */
  create: boolean;
  /**
   * Busy timeout in ms: how long a writer waits for another process's write lock before it fails as busy (SQLITE_BUSY:
   * storeBusyError). Default SQLITE_BUSY_TIMEOUT_MS; BULWARK_DB_LOCK_TIMEOUT_SECONDS sets another (config.dbLockTimeoutMs).
   * Once open, the connection's own busy_timeout is SQLITE_BUSY_SLICE_MS and the driver waits the rest asynchronously.
   */
  busyTimeoutMs?: number;
}

/** SQLite's busy timeout unless BULWARK_DB_LOCK_TIMEOUT_SECONDS sets one: how long a writer waits for another process's write lock. */
export const SQLITE_BUSY_TIMEOUT_MS = 10_000;

/**
 * A key for serialiseTransactions derived from `text` (the first 32 bits of its SHA-256, signed): one lock per
 * account or counter, e.g. `lockKeyOf("reset:" + userId)`. Unrelated texts may share a key; they then only wait
 * for each other a little.
 */
export function lockKeyOf(text: string): number {
  return createHash("sha256").update(text).digest().readInt32BE(0);
}

/**
 * The dialect `executor` runs on, for code handed a Kysely instance or transaction only (its introspector tells).
 *
 * @example
 * await serialiseTransactions({ dialect: executorDialect(trx) }, trx, lockKeyOf(`recovery-codes:${userId}`));
 */
export function executorDialect(executor: Kysely<Schema>): DialectName {
  return executor.introspection instanceof PostgresIntrospector ? "postgres" : "sqlite";
}

/**
 * Serialises the transactions that take the same `key` (any constant naming one critical section), until the
 * end of `trx`: a transaction-scoped advisory lock on PostgreSQL; nothing on SQLite, where a write transaction
 * holds the database's one write lock from BEGIN IMMEDIATE.
 *
 * @example
 * await database.transaction(async (trx) => { await serialiseTransactions(database, trx, OPEN_JOB_LOCK); … });
 */
export async function serialiseTransactions(database: Pick<Database, "dialect">, trx: Kysely<Schema>, key: number): Promise<void> {
  if (database.dialect === "postgres") await sql`SELECT pg_advisory_xact_lock(${key})`.execute(trx);
}

/**
 * serialiseTransactions for many keys at once, in key order (one statement: the keys sorted, locked as the ordered
 * subquery yields them), for a batch over many accounts: every batch takes its keys in the same order, so two never
 * wait for each other in a cycle. Nothing on SQLite.
 *
 * @example
 * await serialiseTransactionsMany(database, trx, userIds.map((id) => lockKeyOf(`links:${id}`)));
 */
export async function serialiseTransactionsMany(database: Pick<Database, "dialect">, trx: Kysely<Schema>, keys: readonly number[]): Promise<void> {
  if (database.dialect !== "postgres" || keys.length === 0) return;
  const sorted = [...new Set(keys)].sort((a, b) => a - b);
  await sql`SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT unnest(${sorted}::int8[]) AS k ORDER BY 1) AS ordered`.execute(trx);
}

/**
 * Creates an empty database file that only its owner may read; false when another process created it first
 * (several `bulwark start` on one fresh data dir).
 */
function createPrivateFile(path: string, options: OpenSQLiteOptions): boolean {
  if (!options.create) throw storeErrors.notInitialised(path);
  try {
    // The database holds password hashes and wrapped keys: only its owner may read it.
    closeSync(openSync(path, "wx", 0o600));
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw storeErrors.cannotOpen(path, `cannot create it: ${fsReason(error)}`, { cause: error });
  }
}

/** Refuses an existing file that is not SQLite or that others may read; makes our own empty file private first. */
function assertExistingFileUsable(path: string): void {
  if (!looksLikeSQLite(path)) throw storeErrors.notADatabase(path);
  // An empty file is a valid, empty database about to receive password hashes: made private, as if we had
  // created it (a touch(1) under umask 022 leaves it 0644). Only our own: root's is left as it is.
  const stats = statSync(path);
  const tighten = stats.size === 0 && (stats.mode & 0o077) !== 0 && stats.uid === process.geteuid?.();
  if (tighten) chmodSync(path, 0o600);
  const tooOpen = readableByOthersReason(path, tighten ? 0o600 : stats.mode);
  if (tooOpen !== null) throw storeErrors.untrusted(path, tooOpen);
}

/** Opens (or creates) the SQLite database at `path` in WAL mode with foreign keys and a busy timeout. */
export function openSQLite(path: string, options: OpenSQLiteOptions): Database {
  // Checked even for a database about to be created: SQLite recovers a -wal it finds beside an empty database.
  assertSideFilesTrusted(path);
  if (databaseFileExists(path)) assertExistingFileUsable(path);
  else if (!createPrivateFile(path, options)) {
    // Another process created it between our look and our create: its owner and kind are checked again.
    if (!databaseFileExists(path)) throw storeErrors.cannotOpen(path, "it was removed while being opened; try again");
    assertExistingFileUsable(path);
  }
  let handle: DatabaseSync | undefined;
  try {
    handle = new DatabaseSync(path);
    handle.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS)}`);
    handle.exec("PRAGMA journal_mode = WAL");
    handle.exec("PRAGMA synchronous = NORMAL");
    handle.exec("PRAGMA foreign_keys = ON");
    // 64 MiB of page cache (the default is 2 MiB): bulk jobs over random-id indexes revisit the same pages
    // batch after batch. Allocated as pages are used, so a small database costs nothing.
    handle.exec("PRAGMA cache_size = -65536");
    // A WAL a long reader let grow (a backup's snapshot: no checkpoint copies past it, ADR 0006) is cut back to this
    // size when a commit next restarts it; without a limit SQLite reuses the file but keeps its peak size until the
    // last connection closes. Set here because the connection that commits first after a restart is the one that truncates.
    const pageSize = Number((handle.prepare("PRAGMA page_size").get() as { page_size: number }).page_size);
    handle.exec(`PRAGMA journal_size_limit = ${WAL_LIMIT_PAGES * pageSize}`);
    // Reading the schema proves the file is a usable database before anything is written.
    handle.prepare("SELECT count(*) FROM sqlite_master").get();
    // Opened (synchronously, waiting the whole bound as any start does): from now on a wait for another process's lock
    // blocks the event loop a slice at a time, and the driver waits the rest of the bound asynchronously.
    setLockBound(handle, Math.trunc(options.busyTimeoutMs ?? SQLITE_BUSY_TIMEOUT_MS));
    handle.exec(`PRAGMA busy_timeout = ${SQLITE_BUSY_SLICE_MS}`);
  } catch (error) {
    if (handle?.isOpen) handle.close(); // a pragma failed after the open: release the file before reporting
    throw openFailure(path, error);
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

// Query parameters that may hold a secret: node-postgres (pg-connection-string) copies every parameter into the
// client config, so `?password=` is a password like the userinfo one, and `sslpassword`, `sslkey` (a key file's
// path)… are secrets or point at them. Matched on the decoded name, as pg reads it.
const SECRET_PARAMETER = /pass|key|secret|token/i;

/**
 * Whether an "@" follows the host: a password cut short by a "/", "#" or "?" it holds, not percent-encoded, whose rest
 * then sits in the path, query or fragment, where masking the userinfo would not hide it.
 */
export function passwordPastHost(u: URL): boolean {
  return `${u.pathname}${u.search}${u.hash}`.includes("@");
}

/** The URL with its password and every secret-looking query parameter replaced by ***, for messages and logs. */
export function redactURL(url: string): string {
  try {
    const u = new URL(url);
    // A password cut short by an unencoded "/", "#" or "?" left the rest of it after the host: show the host only.
    if (passwordPastHost(u)) return `${u.protocol}//${u.host}/(not shown: an "@" after the host)`;
    if (u.password) u.password = "***";
    const params = [...u.searchParams];
    if (params.some(([name]) => SECRET_PARAMETER.test(name))) {
      u.search = new URLSearchParams(params.map(([name, value]): [string, string] => [name, SECRET_PARAMETER.test(name) ? "***" : value])).toString();
    }
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

/**
 * The longest a statement on a pooled connection waits for a lock another session holds (lock_timeout, advisory locks
 * included): a frozen node's, a paused VM's or a DBA's open transaction holding a row every audited request needs (the
 * audit log's head) otherwise stalled every such request on every node for as long as it was held. Past it the
 * statement fails (55P03), its transaction rolls back, and the caller is told to try again (HTTP 503, exit 3). Set on
 * every connection, CLI and server alike: a command waiting that long behind someone's lock fails and is run again.
 * The default; BULWARK_DB_LOCK_TIMEOUT_SECONDS sets another (config.dbLockTimeoutMs, given as `lockTimeoutMs`; on SQLite
 * the same setting is the busy timeout, SQLITE_BUSY_TIMEOUT_MS by default).
 */
export const LOCK_TIMEOUT_MS = 5_000;
/**
 * The longest one statement may run (statement_timeout, 57014): a backstop against a runaway statement holding its
 * connection, sized for the longest legitimate statement sent through the pool (a migration's index build, a count
 * over every account for a containment preview; batched work — containment, census, imports, purges — is far
 * shorter). Maintenance steps set their own with SET LOCAL (STEP_STATEMENT_TIMEOUT_MS).
 */
export const STATEMENT_TIMEOUT_MS = 5 * 60_000;

/** Opens a PostgreSQL pool and proves it answers before returning. */
export async function openPostgres(url: string, options: { maxConnections?: number; lockTimeoutMs?: number } = {}): Promise<Database> {
  const [{ default: pg }, { PostgresDialect }] = await Promise.all([import("pg"), import("kysely")]);
  const where = redactURL(url);
  const pool = new pg.Pool({
    connectionString: url,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: 10_000,
    // Sent in each connection's start-up packet: every session starts bounded, whoever checks it out.
    lock_timeout: options.lockTimeoutMs ?? LOCK_TIMEOUT_MS,
    statement_timeout: STATEMENT_TIMEOUT_MS,
    // bigint columns hold epoch milliseconds and counters, all within 2^53: read them as numbers.
    types: {
      getTypeParser: ((oid: number, format?: string) =>
        oid === 20 ? (value: string) => Number(value) : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
    },
  });
  const lost = new Set<(error: Error) => void>();
  const connectionLost = (error: Error): void => {
    for (const listener of lost) listener(error);
  };
  pool.on("error", () => {
    // An idle client lost its connection; the pool drops it and opens another when needed (heard below, once).
  });
  // A checked-out client whose backend dies (pg_terminate_backend, a restart, a failover) emits 'error' too, and pg-pool
  // listens only while it is idle: unheard, that 'error' was an uncaught exception that ended the process with every
  // request in flight. Its query in flight fails on its own; at release the pool sees the client is no longer
  // queryable and destroys it rather than hand it out again.
  pool.on("connect", (client) => {
    client.on("error", connectionLost);
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
    onConnectionLost: (listener) => void lost.add(listener),
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
