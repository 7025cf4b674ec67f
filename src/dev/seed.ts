// Synthetic accounts for benchmarks, drills and demos (`bulwark dev seed`): realistic emails, a share of
// legacy hashes, some administrators, a spread of creation and last-login times. Fast: multi-row inserts
// in large transactions (the raw prepared statement on SQLite). Every row is marked seeded = 1.
import { createHash } from "node:crypto";
import { InputError } from "../lib/errors.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import type { PasswordContext } from "../accounts/passwords/index.ts";
import { base32 } from "../crypto/tokens.ts";
import type { Database } from "../store/database.ts";

export interface SeedOptions {
  users: number;
  /** Not seeded yet: sessions land with the sessions issue (reported in `notSeeded`). */
  sessionsPerUser?: number;
  /** Not seeded yet: API tokens land with the tokens issue (reported in `notSeeded`). */
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
  byScheme: Record<string, number>;
  seconds: number;
  /** What was asked for but cannot be seeded yet, and why. */
  notSeeded: string[];
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
const DOMAINS = ["example.org", "example.com", "mail.example.net", "corp.example", "uni.example.edu"];
const COLUMNS = ["id", "email", "email_key", "display_name", "status", "password_hash", "password_scheme", "password_changed_at", "password_must_change", "created_at", "updated_at", "last_login_at", "seeded"] as const;
// Rows per INSERT statement: 13 columns × 500 = 6500 parameters, under SQLite's 32766 and PostgreSQL's 65535.
const ROWS_PER_STATEMENT = 500;
// Rows per transaction: large transactions amortise the commit (fsync) cost.
const ROWS_PER_TRANSACTION = 50_000;

/** A small deterministic generator for the shape of the data (not for secrets): mulberry32. */
function prng(seed: number): () => number {
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

/** A handful of real hashes of each kind, computed once and reused (hashing a million passwords is not the point). */
async function hashPool(passwords: PasswordContext): Promise<{ legacy: PooledHash[]; modern: PooledHash[] }> {
  const { hashSync } = await import("@node-rs/bcrypt");
  const words = ["summer2013", "letmein!", "drupal rocks", "correct horse", "p4ssw0rd", "sentry-backup"];
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
  const pool = await hashPool(deps.passwords);
  const rand = prng(new DataView(random.bytes(4).buffer).getUint32(0));
  const now = clock.now();
  const share = options.legacyShare ?? 0.3;
  const byScheme: Record<string, number> = {};
  const admins: Array<{ id: string; role: string }> = [];
  const total = options.users;

  const row = (i: number): unknown[] => {
    const n = offset + i;
    const id = `usr_${base32(random.bytes(16))}`;
    const first = FIRST[Math.floor(rand() * FIRST.length)] as string;
    const last = LAST[Math.floor(rand() * LAST.length)] as string;
    const email = `${first}.${last}.${n}@${DOMAINS[n % DOMAINS.length]}`;
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
    return [id, email, email.normalize("NFC").toLowerCase(), `${first} ${last}`, "active", h.hash, h.scheme, created, 0, created, created, lastLogin, 1];
  };

  if (database.sqlite) {
    const raw = database.sqlite;
    const placeholders = (rows: number): string => Array.from({ length: rows }, () => `(${COLUMNS.map(() => "?").join(",")})`).join(",");
    const full = raw.prepare(`INSERT INTO users (${COLUMNS.join(",")}) VALUES ${placeholders(ROWS_PER_STATEMENT)}`);
    let done = 0;
    while (done < total) {
      const inTx = Math.min(ROWS_PER_TRANSACTION, total - done);
      raw.exec("BEGIN IMMEDIATE");
      try {
        for (let k = 0; k < inTx; k += ROWS_PER_STATEMENT) {
          const n = Math.min(ROWS_PER_STATEMENT, inTx - k);
          const values: unknown[] = [];
          for (let j = 0; j < n; j++) values.push(...row(done + k + j));
          const stmt = n === ROWS_PER_STATEMENT ? full : raw.prepare(`INSERT INTO users (${COLUMNS.join(",")}) VALUES ${placeholders(n)}`);
          stmt.run(...(values as Array<string | number | null>));
        }
        raw.exec("COMMIT");
      } catch (error) {
        raw.exec("ROLLBACK");
        throw error;
      }
      done += inTx;
      options.onProgress?.(done, total);
    }
  } else {
    let done = 0;
    while (done < total) {
      const inTx = Math.min(ROWS_PER_TRANSACTION, total - done);
      await database.transaction(async (trx) => {
        for (let k = 0; k < inTx; k += ROWS_PER_STATEMENT) {
          const n = Math.min(ROWS_PER_STATEMENT, inTx - k);
          const rows = [];
          for (let j = 0; j < n; j++) {
            const v = row(done + k + j);
            rows.push(Object.fromEntries(COLUMNS.map((c, x) => [c, v[x]])));
          }
          await trx.insertInto("users").values(rows as never).execute();
        }
      });
      done += inTx;
      options.onProgress?.(done, total);
    }
  }
  for (let i = 0; i < admins.length; i += ROWS_PER_STATEMENT) {
    await database.db.insertInto("user_roles").values(admins.slice(i, i + ROWS_PER_STATEMENT).map((a) => ({ user_id: a.id, role: a.role, granted_at: now, granted_by: "seed" }))).execute();
  }
  const notSeeded: string[] = [];
  if (options.sessionsPerUser) notSeeded.push(`sessions (--sessions-per-user ${options.sessionsPerUser}): the sessions table does not exist yet; not seeded`);
  if (options.tokensPerUser) notSeeded.push(`API tokens (--tokens-per-user ${options.tokensPerUser}): the tokens table does not exist yet; not seeded`);
  return { users: total, admins: admins.length, byScheme, seconds: (performance.now() - started) / 1000, notSeeded };
}
