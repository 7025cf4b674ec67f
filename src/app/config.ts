// Configuration from environment variables and CLI flags, validated once at start-up. Every error
// names the variable, what was wrong and what is expected; secrets are never echoed.
import { closeSync, constants, fstatSync, openSync } from "node:fs";
import { resolve } from "node:path";
import { parseRangeBaseUrl } from "../accounts/password-policy/range-checker.ts";
import { InputError } from "../lib/errors.ts";
import { codePointOf } from "../lib/visible-text.ts";
import { DEFAULT_MAX_CLOCK_SKEW_MS } from "../store/clock-skew.ts";
import { passwordPastHost, redactURL } from "../store/database.ts";
import { loadHTTPAuthConfig, parseWholeNumber, type HTTPAuthConfig, type MFAPolicy } from "./http-config.ts";

export type LogLevel = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
const LOG_LEVELS: readonly LogLevel[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export interface Config {
  /** Absolute path of the data dir (SQLite file, master key file). */
  dataDir: string;
  /** postgres:// URL, or null for the embedded SQLite database. */
  databaseURL: string | null;
  /** How the PostgreSQL connection is protected (databaseTLS; the refused verdicts never reach here); null for SQLite. */
  databaseTransport: "local" | "tls" | "plain" | null;
  /** Master key text from BULWARK_MASTER_KEY (base64), or null to use the key file. */
  masterKeyText: string | null;
  host: string;
  port: number;
  logLevel: LogLevel;
  /** argon2id parameters of new password hashes (OWASP defaults: 19456 KiB, t=2, p=1). */
  argon2: { memoryCost: number; timeCost: number; parallelism: number };
  /** Minimum length of new passwords (NIST SP 800-63B-4: 15 for single-factor; never below 8). */
  passwordMinLength: number;
  /**
   * How long a generated or administrator-set initial password signs in, in ms (BULWARK_INITIAL_PASSWORD_HOURS,
   * default 72 hours; ASVS 6.4.1: initial secrets expire after a short period).
   */
  initialPasswordMs: number;
  /**
   * How long delivered mail stays in the outbox before the maintenance pass deletes it, in ms
   * (BULWARK_OUTBOX_RETENTION_DAYS, default 30; ASVS 14.2.7). Queued, failed and dead mail is kept.
   */
  outboxRetentionMs: number;
  /**
   * How far this node's clock may be from the database server's before the node stops serving, in ms
   * (BULWARK_MAX_CLOCK_SKEW_SECONDS, default 30; PostgreSQL only). Lifetimes, windows and limits are decided on each
   * node's clock: beyond this a node refuses to start and its /healthz answers 503 (src/store/clock-skew.ts). 0: never
   * refused, only warned about.
   */
  maxClockSkewMs: number;
  /**
   * How long a statement waits for a lock another session holds before it fails as busy (503 BULWARK_ERR_DB_BUSY, exit
   * 3), in ms (BULWARK_DB_LOCK_TIMEOUT_SECONDS, 1–600; PostgreSQL's lock_timeout on every pooled connection, SQLite's
   * busy_timeout on its connection: docs/decisions/0021-postgresql-wait-bounds.md). null when unset: each dialect's
   * default (PostgreSQL 5 s, LOCK_TIMEOUT_MS; SQLite 10 s, SQLITE_BUSY_TIMEOUT_MS).
   */
  dbLockTimeoutMs: number | null;
  /**
   * How old an unfinished sign-up (POST /auth/register, its link never followed) must be before the maintenance pass
   * deletes it, in ms (BULWARK_SIGNUP_ABANDONED_HOURS, default 168: a week); 0: never deleted ("off").
   */
  signUpAbandonedMs: number;
  /** Breached-password lookups for new passwords (ASVS 6.2.12); none unless configured. */
  breach: BreachConfig;
  /** Name of the service, for password context-word checks and emails. */
  serviceName: string;
  /** The HTTP account surface: public URL, mail, registration, sessions (see http-config.ts). */
  http: HTTPAuthConfig;
  /** Who must enrol MFA after a password login: all, administrative (default) or none (BULWARK_REQUIRE_MFA). */
  requireMFA: MFAPolicy;
}

export interface BreachConfig {
  /** Base URL of a k-anonymity range API (BULWARK_BREACH_RANGE_URL), e.g. https://api.pwnedpasswords.com; null: none. */
  rangeURL: string | null;
  /** Time for one range lookup in ms (BULWARK_BREACH_TIMEOUT_MS, default 3000). */
  timeoutMs: number;
  /** What an unanswered range lookup means (BULWARK_BREACH_ON_FAILURE): "closed" refuses the password (default), "open" accepts it. */
  onFailure: "open" | "closed";
  /** A local SHA1HEX:COUNT file sorted by hash (BULWARK_BREACH_FILE), searched by binary search; null: none. */
  file: string | null;
}

/** Values given on the command line; they win over the environment. */
export interface ConfigOverrides {
  dataDir?: string;
  databaseURL?: string;
  host?: string;
  port?: string | number;
  logLevel?: string;
}

// Controls (C0, DEL, C1) and the Unicode line and paragraph separators some mail clients treat as breaks.
// eslint-disable-next-line no-control-regex
const SERVICE_NAME_CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// The service name's bound, in characters: it goes into mail subjects (with room for what they say) and authenticator apps.
const MAX_SERVICE_NAME = 100;

function configError(message: string): InputError {
  return new InputError("BULWARK_ERR_CONFIG", message);
}

/** Reads a whole-number variable: its default when unset or blank, else a configuration error naming it and the range. */
function intReader(env: NodeJS.ProcessEnv): (name: string, fallback: number, min: number, max: number, why: string) => number {
  return (name, fallback, min, max, why) => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const n = parseWholeNumber(raw);
    if (n === null || n < min || n > max) throw configError(`${name} must be an integer from ${min} to ${max} (${why}), got "${raw.trim().slice(0, 20)}"`);
    return n;
  };
}

/**
 * The argon2id parameters of new password hashes (BULWARK_ARGON2_*), alone: `bulwark hash new` needs them and nothing
 * else of the configuration (no data dir, no breach list).
 *
 * @example
 * loadArgon2Config(process.env) // { memoryCost: 19456, timeCost: 2, parallelism: 1 }
 */
export function loadArgon2Config(env: NodeJS.ProcessEnv): Config["argon2"] {
  const int = intReader(env);
  return {
    memoryCost: int("BULWARK_ARGON2_MEMORY_KIB", 19_456, 1024, 1_048_576, "KiB of memory per argon2id hash"),
    timeCost: int("BULWARK_ARGON2_TIME", 2, 1, 10, "argon2id passes"),
    parallelism: int("BULWARK_ARGON2_PARALLELISM", 1, 1, 16, "argon2id lanes"),
  };
}

/**
 * Why argon2id parameters are weaker than the weakest profile the OWASP Password Storage Cheat Sheet recommends (its
 * five profiles trade memory for passes: 47104 KiB × 1 … 7168 KiB × 5, each at least ~35,840 KiB·passes, with 7 MiB
 * at least), or null. Allowed (tests and small machines use less), but said at start: every new hash and every rehash
 * at sign-in is that much cheaper to crack (ASVS 11.4.2).
 *
 * @example
 * weakArgon2Warning({ memoryCost: 1024, timeCost: 1, parallelism: 1 }) // "BULWARK_ARGON2_MEMORY_KIB=1024 and …"
 */
export function weakArgon2Warning(p: Config["argon2"]): string | null {
  if (p.memoryCost >= 7168 && p.memoryCost * p.timeCost >= 35_840) return null;
  const times = Math.max(1, Math.round(35_840 / (p.memoryCost * p.timeCost)));
  return `BULWARK_ARGON2_MEMORY_KIB=${p.memoryCost} and BULWARK_ARGON2_TIME=${p.timeCost} are below OWASP's weakest argon2id profile (7168 KiB × 5 passes … 47104 KiB × 1; the default is 19456 KiB × 2): new password hashes are about ${times}× cheaper to crack than that; unset both for the default`;
}

function parsePort(value: string | number, source: string): number {
  const text = String(value).trim();
  // 0 asks the OS for any free port (tests, ephemeral runs); the URL printed at start names it.
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw configError(`${source} must be an integer between 0 and 65535, got "${text.slice(0, 40)}"`);
  }
  return Number(text);
}

function parseDatabaseURL(value: string, env: NodeJS.ProcessEnv, fromCommandLine = false): { url: string; transport: "local" | "tls" | "plain" } | null {
  const text = value.trim();
  if (text === "") return null;
  const name = fromCommandLine ? "--database-url" : "BULWARK_DATABASE_URL";
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw configError(`${name} is not a valid URL; expected postgres://user:password@host:port/database (or ?host=/socket/dir)`);
  }
  if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
    throw configError(`${name} must start with postgres:// or postgresql://, got "${url.protocol}//…"; unset it to use the embedded SQLite database`);
  }
  // An "@" after the host is a password cut short by a "/", "#" or "?" it holds, not percent-encoded: the rest of it sits in
  // the path, query or fragment, where no message would mask it. Refused without showing the URL.
  if (passwordPastHost(url)) {
    throw configError(`${name} has an "@" after its host: a password holding "/", "#" or "?" must be percent-encoded (%2F, %23, %3F); the URL is not shown, as it holds part of the password`);
  }
  // The process list shows a command line to every local account, for as long as the server runs (CWE-214).
  if (fromCommandLine && (url.password !== "" || [...url.searchParams.keys()].some((k) => /password/i.test(k)))) {
    throw configError("--database-url holds a password, which every account on this host can read in the process list; put the URL in BULWARK_DATABASE_URL (or the password in ~/.pgpass) instead");
  }
  if (url.pathname.replace(/^\//, "") === "") {
    throw configError(`${name} names no database (${redactURL(text)}); add /databasename`);
  }
  const tls = databaseTLS(url, env);
  if (tls === "missing") {
    throw configError(`${name} reaches ${databaseHost(url, env)} over the network with no sslmode: node-postgres would send the password (on request) and every row in clear. Add ?sslmode=verify-full (TLS, the server's certificate checked against the system CAs, or sslrootcert=…), ?sslmode=require (TLS, certificate not checked), or ?sslmode=disable to accept a plain connection knowingly`);
  }
  if (tls === "unclear") {
    throw configError(`${name} (or PGSSLMODE) leaves unclear how node-postgres would connect: a host, sslmode or ssl parameter given twice, ssl= beside an sslmode, or an sslmode that is none of ${[...SSL_MODES].join(", ")}; give each once`);
  }
  if (tls === "downgradable") {
    throw configError(`${name} has sslmode=${url.searchParams.get("sslmode")}, which falls back to a plain connection when TLS is refused (by whoever is on the path); use sslmode=verify-full or require, or disable knowingly`);
  }
  return { url: text, transport: tls };
}

/** Where node-postgres connects for `url`: a non-empty ?host=, else the URL's host, else PGHOST, else localhost. */
function databaseHost(url: URL, env: NodeJS.ProcessEnv): string {
  return (url.searchParams.get("host") || url.hostname || env["PGHOST"] || "localhost").replace(/^\[|\]$/g, "");
}

/** The sslmode values node-postgres knows (exactly: "verify-full " with a blank is none of them, and means no TLS). */
const SSL_MODES = new Set(["disable", "allow", "prefer", "require", "verify-ca", "verify-full", "no-verify"]);

/**
 * How a PostgreSQL URL protects the connection, judged as node-postgres will connect: "local" (a Unix socket, or a
 * loopback address: nothing crosses a network), "tls", "plain" (sslmode=disable or ssl=0, chosen), "downgradable"
 * (allow, prefer), "missing" (a network host and no sslmode here or in PGSSLMODE) or "unclear" (a parameter given
 * twice, ssl= beside an sslmode, an sslmode node-postgres does not know: what it would do is not what a reader sees). node-postgres takes
 * ?host= over the URL's host (a socket directory when it starts with "/"), PGHOST when the URL names no host, and
 * PGSSLMODE only when the URL has neither sslmode nor ssl. ASVS 12.3.1.
 */
export function databaseTLS(url: URL, env: NodeJS.ProcessEnv): "local" | "tls" | "plain" | "downgradable" | "missing" | "unclear" {
  for (const name of ["host", "sslmode", "ssl"]) if (url.searchParams.getAll(name).length > 1) return "unclear";
  const host = databaseHost(url, env);
  if (host.startsWith("/") || host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host)) return "local";
  const ssl = url.searchParams.get("ssl");
  // ssl= beside an sslmode (the URL's or PGSSLMODE) says two things; node-postgres then ignores PGSSLMODE.
  if (ssl !== null && (url.searchParams.has("sslmode") || (env["PGSSLMODE"] ?? "") !== "")) return "unclear";
  const mode = url.searchParams.get("sslmode") ?? (ssl === null ? (env["PGSSLMODE"] ?? null) : ssl === "0" || ssl === "false" ? "disable" : "require");
  if (mode === null || mode === "") return "missing";
  if (!SSL_MODES.has(mode)) return "unclear";
  if (mode === "disable") return "plain";
  if (mode === "allow" || mode === "prefer") return "downgradable";
  return "tls";
}

/**
 * Reads and validates the configuration.
 *
 * @example
 * const config = loadConfig(process.env, { port: "9090" });
 */
export function loadConfig(env: NodeJS.ProcessEnv, overrides: ConfigOverrides = {}, cwd: string = process.cwd()): Config {
  const dataDirRaw = overrides.dataDir ?? env["BULWARK_DATA_DIR"] ?? "./bulwark-data";
  if (dataDirRaw.trim() === "") throw configError("BULWARK_DATA_DIR is empty; give a directory path or unset it for ./bulwark-data");
  if (dataDirRaw.includes("\0")) throw configError("BULWARK_DATA_DIR contains a NUL byte");
  // Normalised, absolute or not: "link/" or "link/." would let lstat follow the link, and the data dir's
  // symbolic-link check would never see it (ADR 0008); "a/../b" is used as "b" everywhere alike.
  const dataDir = resolve(cwd, dataDirRaw);

  const database = parseDatabaseURL(overrides.databaseURL ?? env["BULWARK_DATABASE_URL"] ?? "", env, overrides.databaseURL !== undefined);
  const databaseURL = database?.url ?? null;
  const databaseTransport = database?.transport ?? null;
  const keyText = env["BULWARK_MASTER_KEY"];
  const masterKeyText = keyText === undefined || keyText.trim() === "" ? null : keyText.trim();

  const host = (overrides.host ?? env["HOST"] ?? "127.0.0.1").trim();
  if (host === "" || /[\s/]/.test(host)) throw configError(`HOST must be a host name or IP address, got "${host.slice(0, 60)}"`);
  const port = parsePort(overrides.port ?? env["PORT"] ?? 8080, overrides.port !== undefined ? "--port" : "PORT");

  // LOG_LEVEL is read when BULWARK_LOG_LEVEL is unset; a bad value is named by where it came from, since a generic
  // LOG_LEVEL (a base image's "warning") is not something the operator thinks of as Bulwark's setting.
  const levelSource = overrides.logLevel !== undefined ? "--log-level" : env["BULWARK_LOG_LEVEL"] !== undefined ? "BULWARK_LOG_LEVEL" : env["LOG_LEVEL"] !== undefined ? "LOG_LEVEL" : null;
  const levelRaw = (overrides.logLevel ?? env["BULWARK_LOG_LEVEL"] ?? env["LOG_LEVEL"] ?? "info").trim().toLowerCase();
  if (!(LOG_LEVELS as readonly string[]).includes(levelRaw)) {
    const fallback = levelSource === "LOG_LEVEL" ? " (LOG_LEVEL is read because BULWARK_LOG_LEVEL is unset; set BULWARK_LOG_LEVEL to override it)" : "";
    throw configError(`${levelSource ?? "BULWARK_LOG_LEVEL"} must be one of ${LOG_LEVELS.join(", ")}, got "${levelRaw.slice(0, 20)}"${fallback}`);
  }
  const int = intReader(env);
  const argon2 = loadArgon2Config(env);
  const passwordMinLength = int("BULWARK_PASSWORD_MIN_LENGTH", 15, 8, 64, "NIST SP 800-63B never allows fewer than 8");
  // At most two weeks: long enough for a new hire's first week and a weekend, short enough that an initial
  // password forgotten in a ticket or a mail stops working soon (ASVS 6.4.1 asks for "a short period").
  const initialPasswordMs = int("BULWARK_INITIAL_PASSWORD_HOURS", 72, 1, 336, "hours a generated or administrator-set initial password signs in") * 3_600_000;
  // Long enough to answer "did the notice go out?" about a recent incident; delivered mail holds addresses and texts
  // (an IP, a time) that are not kept for ever. The audit log keeps the record that it was queued. At least two weeks:
  // a delivered row is what stops a key being queued again, and the API-token expiry reminder looks for its own over
  // the week before the expiry (a shorter retention mailed it again after each purge).
  const outboxRetentionMs = int("BULWARK_OUTBOX_RETENTION_DAYS", 30, 14, 3650, "days delivered mail is kept in the outbox; at least 14") * 86_400_000;
  // Nodes on one PostgreSQL decide session and link lifetimes, flood windows and hourly budgets on their own clocks: a
  // node minutes off gave a 30-minute link 50 and an attacker alternating nodes twice the guesses (test/clock-skew-red-
  // team.test.ts). NTP keeps hosts within milliseconds; 30 s is far beyond a healthy host and well inside every window.
  // 0: never refuse, only warn (a deployment that decides otherwise, or tests whose clock is simulated).
  const maxClockSkewMs = int("BULWARK_MAX_CLOCK_SKEW_SECONDS", DEFAULT_MAX_CLOCK_SKEW_MS / 1000, 0, 3600, "seconds this node's clock may be from the database server's; 0 only warns") * 1000;
  // Unset: each dialect's default (PostgreSQL 5 s: far past any lock a healthy request holds, short enough that a row
  // held by a frozen node or a DBA's open session turns into a named "try again" rather than a stalled request; SQLite
  // 10 s, as it always was). At least 1 s (a shorter bound would fail requests on ordinary contention), at most 10
  // minutes (a longer one is no bound a client waits out).
  const dbLockTimeoutMs = (env["BULWARK_DB_LOCK_TIMEOUT_SECONDS"]?.trim() ?? "") === "" ? null
    : int("BULWARK_DB_LOCK_TIMEOUT_SECONDS", 0, 1, 600, "seconds a statement waits for a lock another session or process holds before it fails as busy") * 1000;
  // At least a day: a sign-up's owner has its 30-minute link, and a new one from "forgot password" asked for before that
  // age works until it expires; a week is far past any of them. At most a year. 0 or "off": never deleted.
  const abandonedRaw = env["BULWARK_SIGNUP_ABANDONED_HOURS"]?.trim() ?? "";
  const abandonedOff = abandonedRaw.toLowerCase() === "off" || (abandonedRaw !== "" && parseWholeNumber(abandonedRaw) === 0);
  const signUpAbandonedMs = abandonedOff ? 0 : int("BULWARK_SIGNUP_ABANDONED_HOURS", 168, 24, 8760, `hours after which an unfinished sign-up is deleted; 0 or "off" never deletes`) * 3_600_000;
  const serviceName = (env["BULWARK_SERVICE_NAME"] ?? "Bulwark").trim() || "Bulwark";
  // Refused, not cut: cut at 100 UTF-16 units, a name split an emoji in two, and the lone half that was left made the
  // authenticator URI throw (every TOTP enrolment a 500) and mail subjects carry U+FFFD.
  if (!serviceName.isWellFormed()) throw configError("BULWARK_SERVICE_NAME holds half of a UTF-16 surrogate pair, which is not a character; give the name as plain UTF-8 text");
  if ([...serviceName].length > MAX_SERVICE_NAME) throw configError(`BULWARK_SERVICE_NAME is ${[...serviceName].length} characters long; give at most ${MAX_SERVICE_NAME}`);
  // The name goes into mail subjects and bodies, authenticator apps and pages: a control character or a line
  // separator there would break a header (notify/validate.ts refuses it at enqueue) or rewrite what is shown.
  const control = SERVICE_NAME_CONTROL.exec(serviceName);
  if (control !== null) {
    throw configError(`BULWARK_SERVICE_NAME contains the control character ${codePointOf(control[0])}; give the name as plain text on one line (any script, no control characters)`);
  }
  // A link mail goes out only when every http(s):// address in it is on BULWARK_PUBLIC_URL (notify/outbox.ts
  // withLinkOrigin): a name holding one, which the mails quote, made every reset and sign-up link mail dead at send.
  if (serviceName.includes("://")) {
    throw configError(`BULWARK_SERVICE_NAME holds a web address ("://"), got ${JSON.stringify(serviceName.slice(0, 80))}: link mails quote the name, and one naming an address other than BULWARK_PUBLIC_URL is not sent; give the name alone, e.g. "Example"`);
  }
  const breach = loadBreachConfig(env, int);
  const http = loadHTTPAuthConfig(env, port);
  return { dataDir, databaseURL, databaseTransport, masterKeyText, host, port, logLevel: levelRaw as LogLevel, argon2, passwordMinLength, initialPasswordMs, outboxRetentionMs, maxClockSkewMs, dbLockTimeoutMs, signUpAbandonedMs, breach, serviceName, http, requireMFA: http.requireMFA };
}

function loadBreachConfig(env: NodeJS.ProcessEnv, int: (name: string, fallback: number, min: number, max: number, why: string) => number): BreachConfig {
  const urlText = env["BULWARK_BREACH_RANGE_URL"]?.trim() ?? "";
  let rangeURL: string | null = null;
  if (urlText !== "") {
    // The range checker's own rule (https, or plain http to this machine; no credentials or query), named here.
    try {
      rangeURL = parseRangeBaseUrl(urlText);
    } catch (cause) {
      throw new InputError("BULWARK_ERR_CONFIG", `BULWARK_BREACH_RANGE_URL: ${(cause as Error).message}`, { cause });
    }
  }
  const failure = (env["BULWARK_BREACH_ON_FAILURE"] ?? "").trim().toLowerCase() || "closed";
  if (failure !== "open" && failure !== "closed") throw configError(`BULWARK_BREACH_ON_FAILURE must be "closed" (refuse the password when the lookup fails) or "open" (accept it), got "${failure.slice(0, 20)}"`);
  const fileText = env["BULWARK_BREACH_FILE"]?.trim() ?? "";
  let file: string | null = null;
  if (fileText !== "") {
    let stats;
    try {
      // Opened, not only looked at: stat needs no read permission, and a file the service account may not read was
      // accepted at start-up, then every new password refused as "could not be checked right now". Non-blocking, so
      // a FIFO named by mistake is refused below as not a regular file instead of hanging the start.
      const fd = openSync(fileText, constants.O_RDONLY | constants.O_NONBLOCK);
      try {
        stats = fstatSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (cause) {
      throw new InputError("BULWARK_ERR_CONFIG", `BULWARK_BREACH_FILE ${fileText} cannot be read (${(cause as NodeJS.ErrnoException).code ?? "error"})`, { cause });
    }
    if (!stats.isFile() || stats.size === 0) throw configError(`BULWARK_BREACH_FILE ${fileText} is ${stats.isFile() ? "empty" : "not a regular file"}: give the SHA-1 file ordered by hash (SHA1HEX:COUNT lines)`);
    file = resolve(fileText);
  }
  return { rangeURL, timeoutMs: int("BULWARK_BREACH_TIMEOUT_MS", 3000, 1, 60_000, "ms for one range lookup"), onFailure: failure, file };
}
