// API tokens over Kysely (SQLite and PostgreSQL alike): create with scopes and an optional expiry, verify on
// every request (hash, revocation, stamps, expiry, account state), list, revoke one or all.
import { sql, type Kysely } from "kysely";
import type { Clock } from "../../lib/clock.ts";
import type { RandomSource } from "../../lib/random.ts";
import { lockKeyOf, serialiseTransactions, type Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { isPermission, PERMISSIONS } from "../roles/permissions.ts";
import { tokenErrors } from "./errors.ts";
import { apiSecretMatches, generateAPIToken, parseAPIToken } from "./token-format.ts";

/** Stamp scope that refuses every API token created before it (the revoke-all-tokens containment lever). */
export const TOKENS_GLOBAL_SCOPE = "tokens:global";

/** Stamp scope of one user's API tokens. */
export function tokenUserScope(userId: string): string {
  return `tokens:user:${userId}`;
}

export interface TokenInfo {
  id: string;
  name: string;
  scopes: string[];
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  lastUsedIp: string | null;
  /** When it was revoked, by itself or by a stamp raised after it was created; null while live. */
  revokedAt: number | null;
}

export type TokenRefusal = "malformed" | "unknown" | "mismatch" | "expired" | "revoked" | "account-disabled";

export type TokenVerification =
  | { valid: true; tokenId: string; userId: string; scopes: string[]; expiresAt: number | null }
  | { valid: false; reason: TokenRefusal };

export interface NewToken {
  name: string;
  scopes: string[];
  expiresAt?: number | null;
  /**
   * The token minting this one, if a token (not a session) asked. The new token expires no later than its
   * parent, dies with it when it is revoked, and is refused whenever its parent is.
   */
  parent?: { id: string; expiresAt: number | null };
}

export interface CreateOptions {
  /**
   * Refuse (BULWARK_ERR_TOKEN_LIMIT) when the user already has this many live tokens (not revoked, not expired).
   * The count and the insert are one transaction serialised per user, so concurrent calls cannot overshoot.
   */
  maxLive?: number;
}

export interface TokenService {
  /** Token text `bwk_<id>_<secret>` (256-bit base32 secret), returned once; only SHA-256 stored. */
  create(userId: string, input: NewToken, options?: CreateOptions): Promise<{ token: string; info: TokenInfo }>;
  verify(presented: string, ip?: string | null): Promise<TokenVerification>;
  /** The user's tokens, newest first; never the secret. */
  list(userId: string): Promise<TokenInfo[]>;
  /** Revokes one of the user's tokens and every token minted from it, directly or not. False when it was not live. */
  revoke(userId: string, tokenId: string): Promise<boolean>;
  /** Revokes every live token of the user; returns how many. */
  revokeAllForUser(userId: string): Promise<number>;
}

/** last_used_at/ip are written at most this often: a busy script must not turn every read into a write. */
export const TOUCH_INTERVAL_MS = 60_000;
export const MAX_TOKEN_NAME = 100;

// Control characters are removed from client-supplied strings before they are stored and later shown.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/g;

function cleanIP(ip: string | null | undefined): string | null {
  if (typeof ip !== "string") return null;
  const text = ip.replace(CONTROL, "").trim().slice(0, 64);
  return text.length > 0 ? text : null;
}

function validateInput(input: NewToken, now: number): { name: string; scopes: string[]; expiresAt: number | null } {
  if (typeof input !== "object" || input === null) throw tokenErrors.invalidInput("token input must be an object with name and scopes");
  if (typeof input.name !== "string") throw tokenErrors.invalidInput("token name must be text");
  const name = input.name.trim();
  if (name.length === 0) throw tokenErrors.invalidInput("token name is empty");
  if (name.length > MAX_TOKEN_NAME) throw tokenErrors.invalidInput(`token name is longer than ${MAX_TOKEN_NAME} characters`);
  if (/[\p{Cc}\p{Cf}]/u.test(name)) throw tokenErrors.invalidInput("token name contains control or invisible characters");
  if (!Array.isArray(input.scopes) || input.scopes.length === 0) throw tokenErrors.invalidInput("a token needs at least one scope (a permission such as accounts.read)");
  const scopes: string[] = [];
  for (const scope of input.scopes) {
    if (typeof scope !== "string" || !isPermission(scope)) throw tokenErrors.unknownScope(String(scope), PERMISSIONS);
    if (!scopes.includes(scope)) scopes.push(scope);
  }
  const expiresAt = input.expiresAt ?? null;
  if (expiresAt !== null) {
    if (!Number.isSafeInteger(expiresAt)) throw tokenErrors.invalidInput("expiresAt must be a time in integer milliseconds since the epoch, or null");
    if (expiresAt <= now) throw tokenErrors.invalidInput("expiresAt is in the past; a token must expire in the future");
  }
  const parentExpiry = input.parent?.expiresAt ?? null;
  if (input.parent && parentExpiry !== null) {
    // A token cannot outlive the one that minted it: unset means "as long as the parent".
    if (input.expiresAt === undefined) return { name, scopes, expiresAt: parentExpiry };
    if (expiresAt === null || expiresAt > parentExpiry) {
      throw tokenErrors.outlivesParent(new Date(parentExpiry).toISOString());
    }
  }
  return { name, scopes, expiresAt };
}

function parseScopes(json: string): string[] {
  const value: unknown = JSON.parse(json);
  // Fail closed: a row whose scopes are not a list of known permissions grants nothing.
  return Array.isArray(value) ? value.filter((s): s is string => typeof s === "string" && isPermission(s)) : [];
}

const num = (v: number | null): number | null => (v === null ? null : Number(v));

/**
 * Builds the API token service.
 *
 * @example
 * const tokens = createTokenService({ database, clock: systemClock, random: systemRandom });
 * const { token } = await tokens.create(user.id, { name: "backup script", scopes: ["audit.read"] });
 * await tokens.verify(token, "192.0.2.1"); // { valid: true, tokenId, userId, scopes }
 */
export function createTokenService(deps: { database: Database; clock: Clock; random: RandomSource }): TokenService {
  const { database, clock, random } = deps;
  const db: Kysely<Schema> = database.db;

  /** The stamp in force for a user's tokens: the later of the global and the user's, 0 when none. */
  async function stampFor(userId: string, executor: Kysely<Schema> = db): Promise<number> {
    const rows = await executor.selectFrom("revocation_stamps").select("not_before").where("scope", "in", [TOKENS_GLOBAL_SCOPE, tokenUserScope(userId)]).execute();
    return rows.reduce((max, r) => Math.max(max, Number(r.not_before)), 0);
  }

  return {
    async create(userId, input, options = {}) {
      const now = clock.now();
      const clean = validateInput(input, now);
      const fresh = generateAPIToken(random);
      await database.transaction(async (trx) => {
        // Per user, the live count and the insert are serialised (PostgreSQL: concurrent mints each counted below
        // the bound and all inserted; SQLite's write transaction already serialises them). Every query below goes
        // through trx: another pool connection (or SQLite's one connection) would wait on this transaction.
        await serialiseTransactions(database, trx, lockKeyOf(`api-tokens:${userId}`));
        const user = await trx.selectFrom("users").select("id").where("id", "=", userId).executeTakeFirst();
        if (!user) throw tokenErrors.userNotFound();
        if (options.maxLive !== undefined) {
          // Live as list() shows it: not revoked, created after the user's and the global stamps, not expired.
          const stamp = await stampFor(userId, trx);
          const live = await trx
            .selectFrom("api_tokens").select((eb) => eb.fn.countAll<number>().as("n"))
            .where("user_id", "=", userId).where("revoked_at", "is", null).where("created_at", ">=", stamp)
            .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
            .executeTakeFirstOrThrow();
          if (Number(live.n) >= options.maxLive) throw tokenErrors.tooManyLive(options.maxLive);
        }
        await trx
          .insertInto("api_tokens")
          .values({
            id: fresh.id, user_id: userId, name: clean.name, secret_hash: fresh.secretHash, scopes: JSON.stringify(clean.scopes),
            created_at: now, expires_at: clean.expiresAt, last_used_at: null, last_used_ip: null, revoked_at: null,
            parent_id: input.parent?.id ?? null,
          })
          .execute();
      });
      const info: TokenInfo = { id: fresh.id, name: clean.name, scopes: clean.scopes, createdAt: now, expiresAt: clean.expiresAt, lastUsedAt: null, lastUsedIp: null, revokedAt: null };
      return { token: fresh.token, info };
    },

    async verify(presented, ip) {
      const parsed = parseAPIToken(presented);
      if (!parsed) return { valid: false, reason: "malformed" };
      // One indexed query: the token, its account's state and both stamps, so revocation by a containment
      // job takes effect on the very next request, with no cache.
      const row = await db
        .selectFrom("api_tokens as t")
        .innerJoin("users as u", "u.id", "t.user_id")
        .leftJoin("revocation_stamps as us", (join) => join.on(sql<boolean>`us.scope = 'tokens:user:' || t.user_id`))
        .leftJoin("revocation_stamps as g", (join) => join.on("g.scope", "=", TOKENS_GLOBAL_SCOPE))
        .leftJoin("api_tokens as p", "p.id", "t.parent_id")
        .select([
          "t.id", "t.user_id", "t.secret_hash", "t.scopes", "t.created_at", "t.expires_at", "t.last_used_at", "t.revoked_at",
          "u.status as user_status", "u.locked_at as user_locked_at", "us.not_before as user_stamp", "g.not_before as global_stamp",
          "t.parent_id", "p.revoked_at as parent_revoked_at", "p.created_at as parent_created_at",
        ])
        .where("t.id", "=", parsed.id)
        .executeTakeFirst();
      if (!row) return { valid: false, reason: "unknown" };
      // The secret first: knowing an id (it appears in lists and logs) reveals nothing about the token's state.
      if (!apiSecretMatches(parsed.secret, row.secret_hash)) return { valid: false, reason: "mismatch" };
      const stamp = Math.max(Number(row.global_stamp ?? 0), Number(row.user_stamp ?? 0));
      if (row.revoked_at !== null || Number(row.created_at) < stamp) return { valid: false, reason: "revoked" };
      // Revoking a parent revokes its tree; this catches a child minted while that revocation ran. A parent row
      // that is gone (its user deleted) takes the child with it too.
      if (row.parent_id != null && (row.parent_created_at === null || row.parent_revoked_at !== null || Number(row.parent_created_at) < stamp)) {
        return { valid: false, reason: "revoked" };
      }
      const now = clock.now();
      if (row.expires_at !== null && now >= Number(row.expires_at)) return { valid: false, reason: "expired" };
      // A disabled or locked account (containment) cannot act through its tokens either (ASVS 7.4.2 spirit).
      if (row.user_status !== "active" || row.user_locked_at !== null) return { valid: false, reason: "account-disabled" };
      const lastUsed = num(row.last_used_at);
      if (lastUsed === null || now - lastUsed >= TOUCH_INTERVAL_MS) {
        // Conditional, so concurrent requests write once per interval.
        await db
          .updateTable("api_tokens")
          .set({ last_used_at: now, last_used_ip: cleanIP(ip) })
          .where("id", "=", row.id)
          .where((eb) => eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<=", now - TOUCH_INTERVAL_MS)]))
          .execute();
      }
      return { valid: true, tokenId: row.id, userId: row.user_id, scopes: parseScopes(row.scopes), expiresAt: num(row.expires_at) };
    },

    async list(userId) {
      const [rows, stamp] = await Promise.all([
        db.selectFrom("api_tokens").selectAll().where("user_id", "=", userId).orderBy("created_at", "desc").orderBy("id").execute(),
        stampFor(userId),
      ]);
      return rows.map((r) => {
        const createdAt = Number(r.created_at);
        return {
          id: r.id, name: r.name, scopes: parseScopes(r.scopes), createdAt, expiresAt: num(r.expires_at),
          lastUsedAt: num(r.last_used_at), lastUsedIp: r.last_used_ip,
          revokedAt: num(r.revoked_at) ?? (createdAt < stamp ? stamp : null),
        };
      });
    },

    async revoke(userId, tokenId) {
      const now = clock.now();
      return database.transaction(async (trx) => {
        const result = await trx
          .updateTable("api_tokens")
          .set({ revoked_at: now })
          .where("id", "=", tokenId)
          .where("user_id", "=", userId)
          .where("revoked_at", "is", null)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        // Everything minted from it, at any depth (children are the user's own tokens, by construction).
        await trx
          .withRecursive("minted(id)", (qc) =>
            qc.selectFrom("api_tokens").select("id").where("parent_id", "=", tokenId)
              .unionAll((qb) => qb.selectFrom("api_tokens as c").innerJoin("minted as m", "m.id", "c.parent_id").select("c.id")))
          .updateTable("api_tokens")
          .set({ revoked_at: now })
          .where("id", "in", (qb) => qb.selectFrom("minted").select("id"))
          .where("revoked_at", "is", null)
          .execute();
        return true;
      });
    },

    async revokeAllForUser(userId) {
      const result = await db.updateTable("api_tokens").set({ revoked_at: clock.now() }).where("user_id", "=", userId).where("revoked_at", "is", null).executeTakeFirst();
      return Number(result.numUpdatedRows);
    },
  };
}
