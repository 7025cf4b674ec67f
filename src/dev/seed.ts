// Synthetic accounts for benchmarks, drills and demos (`bulwark dev seed`): realistic emails, a share of
// legacy hashes, some administrators, a spread of creation and last-login times, live sessions and API
// tokens, and second factors (passkey rows) for every administrator and a few others. Fast: multi-row inserts in large transactions (the raw prepared statement on SQLite). Every user
// row is marked seeded = 1. Seeded passwords, sessions and tokens are hashes of secrets nobody knows: they fill
// the tables realistically but cannot be presented (a benchmark that needs a usable one creates it normally).
// The passwords are random words drawn on every run and dropped once hashed, so no seeded account, an
// administrator above all, can be signed in to with a word from this file, even after a drill lever removed
// its synthetic passkey (ASVS 6.3.2).
import { createHash } from "node:crypto";
import { InputError } from "../lib/errors.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import type { PasswordContext } from "../accounts/passwords/index.ts";
import { identifierKey } from "../accounts/users/normalise.ts";
import { base32 } from "../crypto/tokens.ts";
import type { Database } from "../store/database.ts";

export interface SeedOptions {
  users: number;
  /** Live browser sessions per user (created within the last hours, not expired). Default 0. */
  sessionsPerUser?: number;
  /** API tokens per user (unrevoked, no expiry). Default 0. */
  tokensPerUser?: number;
  /** Share of users with a legacy hash (md5, sha1, bcrypt), 0…1; default 0.3. */
  legacyShare?: number;
  /** Seed even though the database holds real (non-seeded) users. */
  force?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface SeedReport {
  users: number;
  admins: number;
  sessions: number;
  tokens: number;
  /** Users with a second factor (a synthetic passkey): every administrator and responder, and about 5% of the rest. */
  mfa: number;
  byScheme: Record<string, number>;
  seconds: number;
}

export interface SeedDeps {
  database: Database;
  clock: Clock;
  random: RandomSource;
  passwords: PasswordContext;
}

// A bound that keeps a typo (an extra zero or three) from filling the disk.
export const MAX_SEED_USERS = 20_000_000;
const YEAR = 365 * 86_400_000;
const FIRST = ["ana", "ben", "chloe", "dmitri", "eva", "farid", "grace", "hiro", "ines", "jonas", "kemal", "lena", "mateo", "nadia", "oscar", "priya", "quinn", "rosa", "sven", "tariq", "uma", "victor", "wen", "ximena", "yusuf", "zoe"];
const LAST = ["smith", "garcia", "müller", "rossi", "kowalski", "nguyen", "okafor", "silva", "tanaka", "dubois", "ivanova", "khan", "larsen", "novak", "papadopoulos", "murphy"];
// Names keep their letters; addresses spell them in ASCII as their owners usually do ("müller" → "mueller"), so
// every seeded address is one the outbox can mail (it refuses non-ASCII local parts: no SMTPUTF8) and a drill on
// the seed reports no refused reset mail.
function asciiLocalPart(name: string): string {
  return name.replaceAll("ä", "ae").replaceAll("ö", "oe").replaceAll("ü", "ue").replaceAll("ß", "ss").normalize("NFKD").replace(/[^\x20-\x7e]/g, "");
}
// Only names reserved for examples (RFC 2606, RFC 6761): a drill on seeded data (invalidate-passwords) mails every
// account, and a name someone can register would receive those reset links.
const DOMAINS = ["example.org", "example.com", "mail.example.net", "corp.example", "uni.example"];
const HOUR = 3_600_000;
const USER_COLUMNS = ["id", "email", "email_key", "display_name", "status", "password_hash", "password_scheme", "password_changed_at", "password_must_change", "created_at", "updated_at", "last_login_at", "seeded", "email_skeleton"];
const SESSION_COLUMNS = ["id", "user_id", "secret_hash", "created_at", "last_seen_at", "expires_at", "ip", "user_agent", "aal"];
const TOKEN_COLUMNS = ["id", "user_id", "name", "secret_hash", "scopes", "created_at", "expires_at", "last_used_at", "last_used_ip", "revoked_at"];
const PASSKEY_COLUMNS = ["id", "user_id", "public_key", "counter", "transports", "created_at", "last_used_at", "name"];
// Share of ordinary users with a passkey; every administrator and responder has one (the MFA policy's default).
const MFA_SHARE = 0.05;
// Bound parameters per INSERT statement: 6500 stays under SQLite's 32766 and PostgreSQL's 65535, and is past
// the point where bigger statements stop paying off.
const PARAMS_PER_STATEMENT = 6500;
// Users per transaction: large transactions amortise the commit (fsync) cost.
const USERS_PER_TRANSACTION = 50_000;
// Seeded sessions live 12 hours (the default absolute timeout) and were created within the last 11.
const SESSION_LIFE = 12 * HOUR;
const AGENTS = ["Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "Mozilla/5.0 (Macintosh) Safari/18.4", "Mozilla/5.0 (Windows NT 10.0) Chrome/141.0", "curl/8.14"];

type Row = Array<string | number | null>;

/** Inserts rows with multi-row statements inside the caller's transaction. */
type Inserter = (table: string, columns: readonly string[], rows: Row[]) => Promise<void>;

/** A small deterministic generator for the shape of the data (not for secrets): mulberry32. Tests use it for reproducible "random" inputs. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface PooledHash {
  hash: string;
  scheme: string;
}

/**
 * A handful of real hashes of each kind, computed once and reused (hashing a million passwords is not the
 * point), of six random words (120 bits each) that are forgotten on return.
 */
async function hashPool(passwords: PasswordContext, random: RandomSource): Promise<{ legacy: PooledHash[]; modern: PooledHash[] }> {
  const { hashSync } = await import("@node-rs/bcrypt");
  const words = Array.from({ length: 6 }, () => Buffer.from(random.bytes(15)).toString("base64url"));
  const legacy: PooledHash[] = [];
  for (const w of words) {
    legacy.push({ hash: createHash("md5").update(w).digest("hex"), scheme: "" });
    legacy.push({ hash: createHash("sha1").update(w).digest("hex"), scheme: "" });
  }
  for (const w of words.slice(0, 2)) legacy.push({ hash: hashSync(w, { cost: 10 }), scheme: "" });
  const modern: PooledHash[] = [];
  for (const w of words.slice(0, 3)) modern.push({ hash: await passwords.hash(w), scheme: "" });
  for (const h of [...legacy, ...modern]) h.scheme = passwords.identify(h.hash);
  return { legacy, modern };
}

function validate(options: SeedOptions): void {
  if (!Number.isInteger(options.users) || options.users < 1 || options.users > MAX_SEED_USERS) throw new InputError("BULWARK_ERR_SEED", `--users must be a whole number from 1 to ${MAX_SEED_USERS}`);
  const share = options.legacyShare ?? 0.3;
  if (!(share >= 0 && share <= 1)) throw new InputError("BULWARK_ERR_SEED", "--legacy-share must be between 0 and 1");
  for (const [name, v] of [["--sessions-per-user", options.sessionsPerUser], ["--tokens-per-user", options.tokensPerUser]] as const) {
    if (v !== undefined && !(Number.isInteger(v) && v >= 0 && v <= 100)) throw new InputError("BULWARK_ERR_SEED", `${name} must be a whole number from 0 to 100`);
  }
}

/**
 * Fills the database with synthetic users. Refuses a database holding real users unless `force`.
 *
 * @example
 * const report = await seedUsers({ database, clock, random, passwords }, { users: 100_000 });
 */
export async function seedUsers(deps: SeedDeps, options: SeedOptions): Promise<SeedReport> {
  validate(options);
  const { database, clock, random } = deps;
  const started = performance.now();
  const real = await database.db.selectFrom("users").select((eb) => eb.fn.countAll<number>().as("n")).where("seeded", "=", 0).executeTakeFirst();
  if (Number(real?.n ?? 0) > 0 && !options.force) {
    throw new InputError("BULWARK_ERR_SEED_REAL_USERS", `the database holds ${Number(real?.n)} real (non-seeded) users; seeding would mix synthetic accounts into them — pass --force if this is really a scratch database`);
  }
  const existing = await database.db.selectFrom("users").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
  const offset = Number(existing?.n ?? 0);
  const pool = await hashPool(deps.passwords, deps.random);
  const rand = prng(new DataView(random.bytes(4).buffer).getUint32(0));
  const now = clock.now();
  const share = options.legacyShare ?? 0.3;
  const byScheme: Record<string, number> = {};
  const admins: Array<{ id: string; role: string }> = [];
  const withMfa = new Set<string>();
  const total = options.users;

  const row = (i: number): Row => {
    const n = offset + i;
    const id = `usr_${base32(random.bytes(16))}`;
    const first = FIRST[Math.floor(rand() * FIRST.length)] as string;
    const last = LAST[Math.floor(rand() * LAST.length)] as string;
    const email = `${asciiLocalPart(first)}.${asciiLocalPart(last)}.${n}@${DOMAINS[n % DOMAINS.length]}`;
    const legacy = rand() < share;
    const list = legacy ? pool.legacy : pool.modern;
    const h = list[Math.floor(rand() * list.length)] as PooledHash;
    byScheme[h.scheme] = (byScheme[h.scheme] ?? 0) + 1;
    // Accounts created over eight years; logins biased to recent; one in ten never logged in.
    const created = now - Math.floor(rand() * 8 * YEAR);
    const lastLogin = rand() < 0.1 ? null : now - Math.floor((now - created) * rand() ** 3);
    // About one in a thousand is an administrator, two in a thousand responders (at least one admin).
    const r = rand();
    if (r < 0.001 || (i === 0 && total >= 10)) admins.push({ id, role: "admin" });
    else if (r < 0.003) admins.push({ id, role: "responder" });
    if (r < 0.003 || (i === 0 && total >= 10) || rand() < MFA_SHARE) withMfa.add(id);
    // The address is ASCII: its skeleton is its lookup key (confusables.ts).
    const key = identifierKey(email);
    return [id, email, key, `${first} ${last}`, "active", h.hash, h.scheme, created, 0, created, created, lastLogin, 1, key];
  };

  const sessionsPerUser = options.sessionsPerUser ?? 0;
  let sessionCount = 0;
  let tokenCount = 0;
  const tokensPerUser = options.tokensPerUser ?? 0;
  // Ids and secret hashes come from one random draw per chunk: a call per row would dominate the run time.
  const hex = (bytes: Uint8Array, at: number): string => Buffer.from(bytes.buffer, bytes.byteOffset + at, 32).toString("hex");
  let passkeyCount = 0;
  const children = (users: Row[]): { sessions: Row[]; tokens: Row[]; passkeys: Row[] } => {
    const sessions: Row[] = [];
    const tokens: Row[] = [];
    const passkeys: Row[] = [];
    for (const u of users) {
      const userId = u[0] as string;
      if (withMfa.has(userId)) {
        // A synthetic passkey: the shape of a real credential (an id and a COSE key's length), not a usable key.
        const bytes = random.bytes(96);
        const created = Number(u[9]);
        passkeys.push([Buffer.from(bytes.subarray(0, 32)).toString("base64url"), userId, Buffer.from(bytes.subarray(32)).toString("base64url"), 0, '["internal"]', created, null, "seeded passkey"]);
      }
      if (sessionsPerUser) {
        const bytes = random.bytes(48 * sessionsPerUser);
        for (let k = 0; k < sessionsPerUser; k++) {
          const created = now - Math.floor(rand() * 11 * HOUR);
          // Last seen within the default idle timeout (30 minutes), so they are live by the rule validate and
          // containment's counts judge by (src/accounts/sessions/open-rule.ts), not idle-expired rows.
          const seen = Math.max(created, now - Math.floor(rand() * 25 * 60_000));
          sessions.push([`ses_${base32(bytes.subarray(48 * k, 48 * k + 16))}`, userId, hex(bytes, 48 * k + 16), created, seen, created + SESSION_LIFE,
            `203.0.113.${Math.floor(rand() * 254) + 1}`, AGENTS[Math.floor(rand() * AGENTS.length)] as string, 1]);
        }
      }
      if (tokensPerUser) {
        const bytes = random.bytes(48 * tokensPerUser);
        for (let k = 0; k < tokensPerUser; k++) {
          const created = now - Math.floor(rand() * 90 * 24 * HOUR);
          tokens.push([`tok_${base32(bytes.subarray(48 * k, 48 * k + 16))}`, userId, `seeded token ${k + 1}`, hex(bytes, 48 * k + 16), '["profile.read"]', created, null,
            rand() < 0.5 ? null : created + Math.floor((now - created) * rand()), null, null]);
        }
      }
    }
    return { sessions, tokens, passkeys };
  };
  const chunk = async (insert: Inserter, from: number, count: number): Promise<void> => {
    const users: Row[] = [];
    for (let j = 0; j < count; j++) users.push(row(from + j));
    await insert("users", USER_COLUMNS, users);
    const { sessions, tokens, passkeys } = children(users);
    if (sessions.length) await insert("sessions", SESSION_COLUMNS, sessions);
    if (tokens.length) await insert("api_tokens", TOKEN_COLUMNS, tokens);
    if (passkeys.length) await insert("webauthn_credentials", PASSKEY_COLUMNS, passkeys);
    passkeyCount += passkeys.length;
    sessionCount += sessions.length;
    tokenCount += tokens.length;
  };
  const perStatement = (columns: readonly string[]): number => Math.floor(PARAMS_PER_STATEMENT / columns.length);

  let done = 0;
  if (database.sqlite) {
    const raw = database.sqlite;
    // Random ids land anywhere in the primary-key and user_id indexes: with SQLite's default 2 MiB page cache
    // most inserts would re-read pages through the kernel. A larger cache for this connection (memory only,
    // restored afterwards) keeps the hot index pages resident.
    const cache = (raw.prepare("PRAGMA cache_size").get() as { cache_size: number }).cache_size;
    raw.exec("PRAGMA cache_size = -1048576");
    // Synthetic data on a scratch database: no fsync per commit (WAL stays consistent on a process crash; an
    // OS crash mid-seed costs a re-seed). Restored to NORMAL afterwards.
    raw.exec("PRAGMA synchronous = OFF");
    const statements = new Map<string, ReturnType<typeof raw.prepare>>();
    const statement = (table: string, columns: readonly string[], rows: number) => {
      const key = `${table}:${rows}`;
      let stmt = statements.get(key);
      if (!stmt) {
        const one = `(${columns.map(() => "?").join(",")})`;
        stmt = raw.prepare(`INSERT INTO ${table} (${columns.join(",")}) VALUES ${Array.from({ length: rows }, () => one).join(",")}`);
        statements.set(key, stmt);
      }
      return stmt;
    };
    const insert: Inserter = async (table, columns, rows) => {
      const n = perStatement(columns);
      for (let i = 0; i < rows.length; i += n) {
        const part = rows.slice(i, i + n);
        statement(table, columns, part.length).run(...part.flat());
      }
    };
    while (done < total) {
      const inTx = Math.min(USERS_PER_TRANSACTION, total - done);
      raw.exec("BEGIN IMMEDIATE");
      try {
        await chunk(insert, done, inTx);
        raw.exec("COMMIT");
      } catch (error) {
        raw.exec("ROLLBACK");
        throw error;
      }
      done += inTx;
      options.onProgress?.(done, total);
    }
    raw.exec(`PRAGMA cache_size = ${Math.trunc(cache)}`);
    raw.exec("PRAGMA synchronous = NORMAL");
  } else {
    while (done < total) {
      const inTx = Math.min(USERS_PER_TRANSACTION, total - done);
      await database.transaction(async (trx) => {
        const insert: Inserter = async (table, columns, rows) => {
          const n = perStatement(columns);
          for (let i = 0; i < rows.length; i += n) {
            const values = rows.slice(i, i + n).map((r) => Object.fromEntries(columns.map((c, x) => [c, r[x]])));
            await trx.insertInto(table as "users").values(values as never).execute();
          }
        };
        await chunk(insert, done, inTx);
      });
      done += inTx;
      options.onProgress?.(done, total);
    }
  }
  for (let i = 0; i < admins.length; i += 500) {
    await database.db.insertInto("user_roles").values(admins.slice(i, i + 500).map((a) => ({ user_id: a.id, role: a.role, granted_at: now, granted_by: "seed" }))).execute();
  }
  return { users: total, admins: admins.length, sessions: sessionCount, tokens: tokenCount, mfa: passkeyCount, byScheme, seconds: (performance.now() - started) / 1000 };
}
