// The composition root: configuration → data dir → database → migrations → master key → keyring →
// audit log → services. Every check that can fail runs before anything is created or migrated.
import { join } from "node:path";
import pino, { type DestinationStream, type Logger } from "pino";
import { AuditLog } from "../audit/audit-log.ts";
import { createCheckRunStore } from "../checks/record.ts";
import { Keyring } from "../crypto/keyring.ts";
import { createMasterKeyFile, findRotatedMasterKey, parseMasterKey, readMasterKeyFile } from "../crypto/master-key.ts";
import { cryptoErrors } from "../crypto/errors.ts";
import { systemClock, type Clock } from "../lib/clock.ts";
import { inertJSONText } from "../lib/terminal.ts";
import { shellActor } from "../lib/os-user.ts";
import { systemRandom, type RandomSource } from "../lib/random.ts";
import { datedAheadToleranceFor } from "../store/clock-skew.ts";
import { listTables, lockKeyOf, openPostgres, openSQLite, serialiseTransactions, type Database } from "../store/database.ts";
import { SCHEMA_TABLES } from "../store/schema.ts";
import { storeErrors } from "../store/errors.ts";
import { createKeyStore, keyStoreIn } from "../store/key-store.ts";
import { migrate, migrationStatus } from "../store/migrator.ts";
import { loadConfig, type Config, type ConfigOverrides } from "./config.ts";
import { assertPrivateDataDir, assertWritable, createDataDir, dataDirExists } from "./data-dir.ts";
import type { App } from "./types.ts";
import { buildAccounts } from "./accounts.ts";

export const SQLITE_FILE = "bulwark.db";
export const MASTER_KEY_FILE = "master.key";

export interface OpenAppOptions {
  env: NodeJS.ProcessEnv;
  overrides?: ConfigOverrides;
  /**
   * "open": everything must exist and be migrated (most commands).
   * "migrate": the database must exist; pending migrations are applied (serve).
   * "init": create whatever is missing (init, npm start).
   */
  mode?: "open" | "migrate" | "init";
  clock?: Clock;
  random?: RandomSource;
  /** Where logs go (default: stderr for the CLI; serve passes stdout). */
  logDestination?: DestinationStream;
  /** Who is acting, for audit events (default `cli:<os user>`). */
  actor?: string;
}

export interface InitReport {
  createdDataDir: boolean;
  createdDatabase: boolean;
  createdMasterKeyFile: boolean;
  migrationsApplied: number[];
  keysCreated: string[];
}

export interface OpenedApp extends App {
  init: InitReport;
}

/** Throws BULWARK_ERR_DB_DAMAGED naming the tables of the latest schema that `tables` lacks. */
function assertEveryTable(database: Database, tables: readonly string[]): void {
  const listed = new Set(tables);
  const missing = SCHEMA_TABLES.filter((t) => !listed.has(t));
  if (missing.length > 0) throw storeErrors.schemaDamaged(database.where, `table${missing.length === 1 ? "" : "s"} ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} missing`);
}

/** The longest URL or host kept in a log line; longer ones are cut, with their length noted. */
const LOGGED_TEXT = 512;

function cutForLog(text: unknown): unknown {
  if (typeof text !== "string" || text.length <= LOGGED_TEXT) return text;
  return `${text.slice(0, LOGGED_TEXT)}… (${text.length} characters)`;
}

// A query parameter's name kept in the log: a plain word. Anything else (a token sent as a bare `?bwk_…`) is "…".
const PLAIN_QUERY_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/;

// Where the path ends for the log: the query, a fragment, or a "#" percent-encoded, as mail gateways and clients do to a
// link's fragment (`/reset-password%23token=prt_…`): the token that follows stayed in the path, and in the log.
const PATH_END = /[?#]|%23/i;
// A token left in the path some other way (a path segment, a "?" sent as %3F): a link token `<prefix>_<id>.<secret>`
// (crypto/link-token.ts: 26 base32 characters of id, the secret base64url) or an API token `bwk_…`
// (accounts/tokens/token-format.ts). Their own patterns are anchored and private; these match the same shapes anywhere.
const TOKEN_SHAPED = /[a-z]{3}_[a-z2-7]{26}(?:\.|%2e)[\w-]*|bwk_[\w-]*/gi;

/**
 * A request URL as the log keeps it: the path, and the query's parameter names with every value replaced by "…".
 * Bulwark puts no secret in a URL, but clients do: an API token as `?access_token=` (RFC 6750 §2.3), a reset link's
 * token moved from the fragment into the query, or kept in the path after a "#" encoded as `%23`. Refused or ignored,
 * the token was still written whole to the log at the default level (ASVS 16.2.5, 14.2.1). Which value is harmless
 * cannot be told, so none is kept: what follows a fragment is "…", and so is anything in the path shaped like a token.
 *
 * @example
 * urlForLog("/api/v1/users?access_token=bwk_…&limit=5"); // "/api/v1/users?access_token=…&limit=…"
 * urlForLog("/reset-password%23token=prt_…"); // "/reset-password%23…"
 */
function urlForLog(url: unknown): unknown {
  if (typeof url !== "string") return url;
  const end = PATH_END.exec(url);
  const path = (end === null ? url : url.slice(0, end.index)).replace(TOKEN_SHAPED, "…");
  if (end === null) return cutForLog(path);
  if (end[0] !== "?") return cutForLog(`${path}${end[0]}…`);
  const names = url.slice(end.index + 1).split("&").filter((pair) => pair !== "").map((pair) => {
    const eq = pair.indexOf("=");
    const name = eq < 0 ? pair : pair.slice(0, eq);
    return `${PLAIN_QUERY_NAME.test(name) ? name : "…"}${eq < 0 ? "" : "=…"}`;
  });
  return cutForLog(`${path}?${names.join("&")}`);
}

/** Fastify's request serializer, with the URL and host bounded and no query value kept (see the logger's `serializers`). */
function logRequest(req: { method?: string; url?: string; host?: string; ip?: string; socket?: { remotePort?: number } }): Record<string, unknown> {
  return { method: req.method, url: urlForLog(req.url), host: cutForLog(req.host), remoteAddress: req.ip, remotePort: req.socket?.remotePort };
}

const MIGRATED_EVENT = "store.migrated";

/** The versions the log records as applied (`store.migrated`), read through `db`. */
async function migrationsRecorded(db: Database["db"]): Promise<Set<number>> {
  const rows = await db.selectFrom("audit_events").select("data").where("type", "=", MIGRATED_EVENT).execute();
  const versions = new Set<number>();
  for (const r of rows) {
    try {
      versions.add(Number((JSON.parse(r.data) as { version?: unknown }).version));
    } catch {
      // An altered row is audit verify's to name (it flags data that is not JSON), not a reason to fail every opening.
    }
  }
  return versions;
}

/**
 * One `store.migrated` event for every migration the store records as applied: those this run applied, and any an
 * earlier run applied and never recorded (`late: true`). The events come after the migrations commit, and a run that
 * a full disk stopped at its fifth migration threw before recording the four it had applied — nor did any later run
 * record them (ASVS 16.3.3), as a crash between a commit and its event would leave it too. In one transaction, in turn
 * with any other process doing the same (two servers starting at once), each version is looked for again there, so
 * none is recorded twice. Reads ~30 small rows and, usually, writes nothing.
 */
async function recordMigrations(database: Database, audit: AuditLog, actor: string, appliedNow: ReadonlySet<number>): Promise<void> {
  const versions = await database.db.selectFrom("bulwark_migrations").select(["version", "name"]).orderBy("version").execute();
  const seen = await migrationsRecorded(database.db);
  if (versions.every((v) => seen.has(Number(v.version)))) return;
  await database.transaction(async (trx) => {
    await serialiseTransactions(database, trx, lockKeyOf("bulwark:migrations-recorded"));
    const recorded = await migrationsRecorded(trx);
    for (const v of versions) {
      const version = Number(v.version);
      if (recorded.has(version)) continue;
      await audit.appendIn(trx, { type: MIGRATED_EVENT, actor, data: { version, name: v.name, dialect: database.dialect, ...(appliedNow.has(version) ? {} : { late: true }) } });
    }
  });
}

/** Opens Bulwark as configured. See `mode` for what it may create. */
export async function openApp(options: OpenAppOptions): Promise<OpenedApp> {
  const mode = options.mode ?? "open";
  const clock = options.clock ?? systemClock;
  const random = options.random ?? systemRandom;
  const config: Config = loadConfig(options.env, options.overrides);
  const actor = options.actor ?? shellActor();
  // `rawPacket`: the bytes Node had read of a request it could not parse (cookies, a bearer token, a body) ride on
  // the error; never logged, whoever logs such an error.
  const logger: Logger = pino(
    {
      level: config.logLevel, base: { service: "bulwark" }, redact: { paths: ["err.rawPacket", "error.rawPacket"], remove: true },
      // JSON escapes C0 only: a C1 control from a request (a Host header, a URL, a user agent) would reach the
      // operator's terminal raw, and U+009B / U+009D are CSI / OSC to an 8-bit one (ASVS 16.4.1); a bidirectional
      // control reorders the line on screen, and U+2028 ends it for a shipper that splits lines the Unicode way. Each
      // is written as \uNNNN the way inertJSON writes it; the line parses to the same value.
      hooks: { streamWrite: (line) => inertJSONText(line) },
      // The request as Fastify logs it ("incoming request"), with what the client chose cut to a bound: a URL may be
      // as long as a request line (16 KiB), and every byte of it reached the log at the default level. Query values
      // are not kept (urlForLog).
      serializers: { req: logRequest },
    },
    options.logDestination ?? pino.destination(2),
  );
  const report: InitReport = { createdDataDir: false, createdDatabase: false, createdMasterKeyFile: false, migrationsApplied: [], keysCreated: [] };

  // 1. The master key given in the environment is validated before anything else.
  const envKey = config.masterKeyText === null ? null : parseMasterKey(config.masterKeyText, "BULWARK_MASTER_KEY");

  // 2. The data dir: it holds the key file, and the database when embedded (unused when both come from the
  //    environment). An existing one is trusted only if no other account could have put anything in it; a missing
  //    one is created (0700) only where it is needed below, so a failed database check leaves nothing behind.
  //    Nothing is ever probed in a parent directory: that is someone else's (e.g. /srv, /tmp).
  const usesDataDir = config.databaseURL === null || envKey === null;
  const dirExists = usesDataDir && dataDirExists(config.dataDir);
  if (dirExists) {
    assertPrivateDataDir(config.dataDir);
    if (mode === "init") assertWritable(config.dataDir);
  } else if (usesDataDir && mode !== "init") {
    throw storeErrors.notInitialised(config.dataDir);
  }
  const keyFile = join(config.dataDir, MASTER_KEY_FILE);
  const fileKey = envKey === null && dirExists ? readMasterKeyFile(keyFile) : null;

  // 3. The database: opened and checked (ours, not newer) before the dir or key are created.
  let database: Database;
  if (config.databaseURL !== null) {
    database = await openPostgres(config.databaseURL, config.dbLockTimeoutMs === null ? {} : { lockTimeoutMs: config.dbLockTimeoutMs });
  } else {
    const path = join(config.dataDir, SQLITE_FILE);
    if (!dirExists) createDataDir(config.dataDir), (report.createdDataDir = true);
    const existed = dirExists && (await import("node:fs")).existsSync(path);
    database = openSQLite(path, { create: mode === "init", ...(config.dbLockTimeoutMs === null ? {} : { busyTimeoutMs: config.dbLockTimeoutMs }) });
    report.createdDatabase = !existed;
  }
  try {
    const tables = await listTables(database);
    const ours = tables.includes("bulwark_migrations");
    if (!ours && tables.length > 0 && database.dialect === "sqlite") throw storeErrors.foreignDatabase(database.where, tables);
    // A PostgreSQL schema may hold other applications' tables beside ours, but not one of the names our migrations
    // create: migration 1 would commit its tables into that schema before a later one failed on the clash.
    const clashing = tables.filter((t) => (SCHEMA_TABLES as readonly string[]).includes(t));
    if (!ours && database.dialect === "postgres" && clashing.length > 0) throw storeErrors.foreignDatabase(database.where, clashing);
    if (!ours && mode !== "init") throw storeErrors.notInitialised(database.where);
    const status = await migrationStatus(database); // throws when the schema is newer than this code
    // Our tables without the versions that made them (the version table emptied by hand, tables restored without
    // it): migrating again would fail half-way, and deciding from the versions would miss the keys they hold.
    if (ours && status.current === 0 && clashing.some((t) => t !== "bulwark_migrations")) {
      throw storeErrors.schemaDamaged(database.where, `it holds Bulwark tables (${clashing.filter((t) => t !== "bulwark_migrations").slice(0, 4).join(", ")}, …) but no record of the migrations that made them`);
    }
    // At the latest version every table must be there: a dropped one otherwise surfaced as a raw driver error later.
    // Listed again, after the versions were read: the list above may predate migrations another process committed
    // since (processes starting on one fresh store at once), and tables only come with their versions.
    if (ours && status.pending.length === 0) assertEveryTable(database, await listTables(database));
    if (status.pending.length > 0 && mode === "open") throw storeErrors.pendingMigrations(database.where, status.pending.length);

    // 4. The master key: never create one when the database already holds wrapped keys (judged by the table itself,
    // not by the recorded versions).
    let masterKey = envKey ?? fileKey;
    if (masterKey === null) {
      const hasKeys = tables.includes("keyring_keys") && (await database.db.selectFrom("keyring_keys").select("id").limit(1).execute()).length > 0;
      if (hasKeys || mode !== "init") {
        throw cryptoErrors.masterKeyMissing(
          `no master key: ${database.where} holds encrypted data, but BULWARK_MASTER_KEY is unset and ${keyFile} does not exist; ` +
            "set BULWARK_MASTER_KEY or restore the key file (a new key could not decrypt anything)",
        );
      }
      if (!dataDirExists(config.dataDir)) createDataDir(config.dataDir), (report.createdDataDir = true);
      const made = createMasterKeyFile(keyFile, random);
      masterKey = made.key;
      report.createdMasterKeyFile = made.created;
    }

    // 5. Migrations, each recorded; a failure leaves the database at the last good version.
    const outcome = await migrate(database, clock);
    report.migrationsApplied = outcome.results.filter((r) => r.status === "applied").map((r) => r.version);
    if (outcome.error) throw outcome.error;
    // Checked here when it could not be above: a database a version behind (a backup restored after an upgrade) that
    // lost a table the pending migrations do not touch was otherwise opened, and the table missed as a raw driver error.
    if (status.pending.length > 0) assertEveryTable(database, await listTables(database));

    // 6. Keyring and audit log.
    const keyring = await Keyring.open({
      masterKey, store: createKeyStore(database), clock, random,
      onTamperedKey: (event) => logger.error({ keyId: event.keyId, field: event.field, stored: event.stored, bound: event.bound }, event.message),
      onMasterKeyChange: (event) => logger.warn({ masterKeyId: event.masterKeyId, state: event.state }, event.message),
      // A key from the file follows a master key rotation (`keys rotate-master`): the file's new key, or the pending one
      // of a rotation that committed and stopped before its rename. A key from the environment cannot be re-read.
      ...(envKey === null ? { findMasterKey: (check: string) => findRotatedMasterKey(keyFile, check, { log: (message) => logger.warn(message) }) } : {}),
    });
    // Inside a caller's transaction the key table is read through it (a rotation made by another node is noticed there too).
    // Keys dated ahead of this clock, and checkpoints dated after their key's retirement, are judged with the tolerance sessions and links get (datedAheadToleranceFor): the
    // skew the nodes may have by BULWARK_MAX_CLOCK_SKEW_SECONDS, so one node's verify and maintenance take another
    // healthy node's young store as young, and a narrow setting is not widened to the library's 60 s.
    const audit = new AuditLog({
      database, clock, random, aheadToleranceMs: datedAheadToleranceFor(config.maxClockSkewMs),
      signer: (executor, options = {}) => keyring.signer({ ...options, ...(executor ? { store: keyStoreIn(executor, database.dialect, "audit checkpoint") } : {}) }),
    });
    // Late events only where the store is set up or served (init, start, serve) or migrations were applied now: a
    // reading command such as `audit verify` on a store under investigation writes nothing to its log.
    if (mode !== "open" || report.migrationsApplied.length > 0) await recordMigrations(database, audit, actor, new Set(report.migrationsApplied));
    if (mode === "init") {
      for (const key of await keyring.ensureKeys()) {
        report.keysCreated.push(key.id);
        await audit.append({ type: "keyring.key-created", actor, subject: key.id, data: { purpose: key.purpose } });
      }
      if (report.createdMasterKeyFile) await audit.append({ type: "keyring.master-key-created", actor, data: { file: keyFile, masterKeyId: keyring.masterKeyId } });
      await audit.append({ type: "bulwark.init", actor, data: { ...report, dialect: database.dialect } });
      // The first checkpoint at once: a log with none is taken as young only for its key's first hour (signing-keys.ts),
      // so a later rewrite of the whole log, its checkpoints deleted, cannot pass for a new store.
      await audit.checkpoint();
    }

    const app: OpenedApp = {
      config, clock, random, logger, db: database, keyring, audit, init: report,
      checkRuns: createCheckRunStore({ database, audit, clock, random }),
      accounts: buildAccounts({ config, database, clock, random, audit, keyring, logger }),
      close: async () => {
        await database.close();
        logger.flush?.();
      },
    };
    return app;
  } catch (error) {
    await database.close().catch(() => {});
    throw error;
  }
}
