// API tokens over Kysely (SQLite and PostgreSQL alike): create with scopes and an optional expiry, verify on
// every request (hash, revocation, stamps, expiry, account state, and the same for every token above it), list,
// revoke one or all.
import { sql, type ExpressionBuilder, type Kysely, type Selectable, type SelectQueryBuilder } from "kysely";
import type { Clock } from "../../lib/clock.ts";
import type { RandomSource } from "../../lib/random.ts";
import { hidesSomething } from "../../lib/visible-text.ts";
import { lockKeyOf, serialiseTransactions, type Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { changeUnheld, unheld } from "../../store/unheld.ts";
import { CLOCK_SKEW_WARN_MS } from "../../store/clock-skew.ts";
import { isPermission, PERMISSIONS } from "../roles/permissions.ts";
import { tokenErrors } from "./errors.ts";
import { chainIsComplete, MAX_TOKEN_ANCESTORS, withChain } from "./token-chain.ts";
import { currentEpoch, readStamps, refusedBy, stampOf, type StampInForce } from "../sessions/revocation.ts";
import { apiSecretMatches, generateAPIToken, parseAPIToken } from "./token-format.ts";

export { MAX_TOKEN_ANCESTORS } from "./token-chain.ts";

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

/** Where a page of list ends: the last token's creation time and id (list's order is created_at desc, id). */
export interface TokenPosition {
  createdAt: number;
  id: string;
}

type TokenQuery = SelectQueryBuilder<Schema, "api_tokens", Selectable<Schema["api_tokens"]>>;

export type TokenRefusal = "malformed" | "unknown" | "mismatch" | "expired" | "revoked" | "account-disabled";

export type TokenVerification =
  | {
    valid: true; tokenId: string; userId: string; scopes: string[]; expiresAt: number | null;
    /**
     * Whether the owner holds a second factor now (a confirmed authenticator app or a passkey: MfaService.hasMfa's
     * rule), read in verify's one query. The token is not refused for it here: whether the MFA policy in force
     * requires one of this owner is the HTTP layer's decision (docs/http-auth.md, "API tokens and the MFA policy").
     */
    ownerHasMFA: boolean;
  }
  | { valid: false; reason: TokenRefusal };

export interface NewToken {
  name: string;
  scopes: string[];
  expiresAt?: number | null;
  /**
   * The token minting this one, if a token (not a session) asked. The new token expires no later than its
   * parent, dies with it when it is revoked, and is refused whenever its parent or any token above it is.
   * Refused (BULWARK_ERR_TOKEN_CHAIN_DEPTH) when the parent already has MAX_TOKEN_ANCESTORS tokens above it.
   */
  parent?: { id: string; expiresAt: number | null };
}

export interface CreateOptions {
  /**
   * Refuse (BULWARK_ERR_TOKEN_LIMIT) when the user already has this many live tokens (not revoked, not expired).
   * The count and the insert are one transaction serialised per user, so concurrent calls cannot overshoot.
   */
  maxLive?: number;
  /**
   * Runs in the transaction that inserts the token, given what was made (the caller's audit event and the owner's
   * notice), so the token exists only if they are written too. It may use only that transaction.
   */
  within?: (trx: Kysely<Schema>, info: TokenInfo) => Promise<void>;
}

export interface RevokeOptions {
  /**
   * The caller's transaction to revoke in, so the revocation commits with whatever else it writes there (the API's
   * audit event: a revocation never stands without its record). Every query runs on it; without it, the
   * revocation is a transaction of its own. A plain (non-transaction) executor gets a transaction opened on it.
   */
  executor?: Kysely<Schema>;
}

export interface TokenService {
  /** Token text `bwk_<id>_<secret>` (256-bit base32 secret), returned once; only SHA-256 stored. */
  create(userId: string, input: NewToken, options?: CreateOptions): Promise<{ token: string; info: TokenInfo }>;
  verify(presented: string, ip?: string | null): Promise<TokenVerification>;
  /**
   * Whose token `presented` is, when its secret matches a stored token whatever its state (revoked, expired, its
   * account disabled), else null: for recording a refused genuine token as evidence. Never a reason to accept it.
   */
  ownerOf(presented: string): Promise<{ tokenId: string; userId: string } | null>;
  /**
   * Whether the token `tokenId` would be accepted now if its secret were presented (not revoked, by itself, a stamp or
   * an ancestor; not expired; its account active and unlocked). For the server's own use (renewal reminders), never
   * an answer to a caller: it takes no secret.
   */
  usable(tokenId: string): Promise<boolean>;
  /** The user's tokens, newest first; never the secret. */
  list(userId: string): Promise<TokenInfo[]>;
  /**
   * At most `limit` of the user's tokens in list's order (newest first), those after position `after` (a token's
   * creation time and id, from an earlier page): a listing that pages instead of reading every token ever made.
   */
  listPage(userId: string, options: { after: TokenPosition | null; limit: number }): Promise<TokenInfo[]>;
  /** One of the user's tokens, as list shows it; null for an unknown id or another user's. */
  find(userId: string, tokenId: string): Promise<TokenInfo | null>;
  /** The user's live tokens (not revoked, not expired, not refused by a stamp): at most the live cap, read as such. */
  listLive(userId: string): Promise<TokenInfo[]>;
  /** Revokes one of the user's tokens and every token minted from it, directly or not. False when it was not live. */
  revoke(userId: string, tokenId: string, options?: RevokeOptions): Promise<boolean>;
  /** Revokes every live token of the user, a mint in flight included (it waits for it); returns how many. */
  revokeAllForUser(userId: string, options?: RevokeOptions): Promise<number>;
}

/** last_used_at/ip are written at most this often: a busy script must not turn every read into a write. */
export const TOUCH_INTERVAL_MS = 60_000;
export const MAX_TOKEN_NAME = 100;
/** The largest time in ms since the epoch a Date can hold (ECMA-262 §21.4.1.1). */
export const MAX_DATE_MS = 8_640_000_000_000_000;

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
  // Characters as the API's schema counts them (code points): by UTF-16 units, 60 emoji passed the schema's 100 and
  // were refused here as "longer than 100 characters".
  if ([...name].length > MAX_TOKEN_NAME) throw tokenErrors.invalidInput(`token name is longer than ${MAX_TOKEN_NAME} characters`);
  // \p{Cs}: a lone UTF-16 surrogate ("\ud800" in JSON) is no character; the database would store U+FFFD while the
  // answer echoed the surrogate, so the name shown later would differ from the one confirmed (as for usernames).
  if (hidesSomething(name)) throw tokenErrors.invalidInput("token name contains control or invisible characters (such as a Hangul filler or a line separator), or an unpaired surrogate");
  if (!Array.isArray(input.scopes) || input.scopes.length === 0) throw tokenErrors.invalidInput("a token needs at least one scope (a permission such as accounts.read)");
  const scopes: string[] = [];
  for (const scope of input.scopes) {
    if (typeof scope !== "string" || !isPermission(scope)) throw tokenErrors.unknownScope(String(scope), PERMISSIONS);
    if (!scopes.includes(scope)) scopes.push(scope);
  }
  const expiresAt = input.expiresAt ?? null;
  if (expiresAt !== null) {
    if (!Number.isSafeInteger(expiresAt)) throw tokenErrors.invalidInput("expiresAt must be a time in integer milliseconds since the epoch, or null");
    // Past the last instant a Date can hold, the expiry could be stored but never shown: every list, notice and
    // answer that formats it would throw (ECMA-262 §21.4.1.1: ±8.64e15 ms).
    if (expiresAt > MAX_DATE_MS) throw tokenErrors.invalidInput(`expiresAt is after the latest time a date can hold (${MAX_DATE_MS} ms, ${new Date(MAX_DATE_MS).toISOString()}); pick a nearer expiry, or null for none`);
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
 * await tokens.verify(token, "192.0.2.1"); // { valid: true, tokenId, userId, scopes, expiresAt, ownerHasMFA }
 */
export function createTokenService(deps: { database: Database; clock: Clock; random: RandomSource }): TokenService {
  const { database, clock, random } = deps;
  const db: Kysely<Schema> = database.db;

  /** The stamp in force for a user's tokens: the later of the global and the user's, 0 when none. */
  function stampFor(userId: string, executor: Kysely<Schema> = db): Promise<StampInForce> {
    return readStamps(executor, [TOKENS_GLOBAL_SCOPE, tokenUserScope(userId)]);
  }

  /** Runs `work` in the caller's transaction when it gave one, else in a transaction of its own (RevokeOptions.executor). */
  function inTransaction<T>(executor: Kysely<Schema> | undefined, work: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
    if (executor === undefined) return database.transaction(work);
    return executor.isTransaction ? work(executor) : executor.transaction().execute(work);
  }

  /** Waits, until `trx` ends, for any other mint or revoke-all of `userId`'s tokens (PostgreSQL; SQLite's write transaction already does). */
  function userTokensTurn(trx: Kysely<Schema>, userId: string): Promise<void> {
    return serialiseTransactions(database, trx, lockKeyOf(`api-tokens:${userId}`));
  }

  /**
   * The token's row with its account's state (the owner's second factor included), both stamps and a summary of its
   * chain (verify's one query).
   */
  function tokenRow(id: string) {
    return withChain(db, id)
      .selectFrom("api_tokens as t")
      .innerJoin("users as u", "u.id", "t.user_id")
      .leftJoin("revocation_stamps as us", (join) => join.on(sql<boolean>`us.scope = 'tokens:user:' || t.user_id`))
      .leftJoin("revocation_stamps as g", (join) => join.on("g.scope", "=", TOKENS_GLOBAL_SCOPE))
      .innerJoin(
        (eb) => eb.selectFrom("chain").select((c) => [
          c.fn.countAll<number>().as("links"),
          c.fn.count<number>("parent_id").as("with_parent"),
          c.fn.count<number>("revoked_at").as("revoked"),
          c.fn.min("created_at").as("oldest"),
          c.fn.min("issued_epoch").as("oldest_epoch"),
          c.fn.min("expires_at").as("soonest_expiry"),
        ]).as("ch"),
        (join) => join.onTrue(),
      )
      .select([
        "t.id", "t.user_id", "t.secret_hash", "t.scopes", "t.created_at", "t.expires_at", "t.last_used_at", "t.revoked_at",
        "u.status as user_status", "u.locked_at as user_locked_at", "us.not_before as user_stamp", "g.not_before as global_stamp",
        "us.not_before_epoch as user_epoch", "g.not_before_epoch as global_epoch", "t.issued_epoch",
        "ch.links", "ch.with_parent", "ch.revoked", "ch.oldest", "ch.oldest_epoch", "ch.soonest_expiry",
      ])
      // The owner's second factor, as MfaService.hasMfa counts one (a confirmed app or any passkey; recovery codes are
      // no factor): two indexed lookups in this query, so the MFA policy's check of a token (src/http/auth/authenticate.ts,
      // tokenHeldForMFA) costs the token path no extra query.
      .select((eb) => eb.or([
        eb.exists(eb.selectFrom("mfa_totp as f").select("f.user_id").whereRef("f.user_id", "=", "t.user_id").where("f.confirmed_at", "is not", null)),
        eb.exists(eb.selectFrom("webauthn_credentials as k").select("k.id").whereRef("k.user_id", "=", "t.user_id")),
      ]).as("owner_has_mfa"))
      .where("t.id", "=", id)
      .executeTakeFirst();
  }

  /**
   * Why a token whose secret matched is refused at `now`, or null: revoked (itself, by a stamp, or anything above
   * it), expired (itself or an ancestor), or its account disabled or locked.
   */
  function refusalOf(row: NonNullable<Awaited<ReturnType<typeof tokenRow>>>, now: number): "revoked" | "expired" | "account-disabled" | null {
    const stamp = stampOf([{ time: row.global_stamp, epoch: row.global_epoch }, { time: row.user_stamp, epoch: row.user_epoch }]);
    if (row.revoked_at !== null || refusedBy(stamp, Number(row.created_at), Number(row.issued_epoch))) return "revoked";
    // Revoking a token revokes its tree, but a token minted while that revocation ran (the cascade, revokeAll or
    // the stamp not yet committed) is written after it, and so may be whatever it minted in turn. So the whole
    // chain answers: any token above this one revoked, older than the stamp, or gone (a missing or foreign
    // parent, a chain past the bound) refuses it. Ancestors are the user's own tokens, so the user's stamp applies.
    if (Number(row.revoked) > 0 || refusedBy(stamp, Number(row.oldest), Number(row.oldest_epoch)) || !chainIsComplete(Number(row.links), Number(row.with_parent))) {
      return "revoked";
    }
    // The token's own expiry, or an earlier one above it (create keeps a child within its parent's expiry, but
    // only when its caller passes that expiry in).
    if (row.soonest_expiry !== null && now >= Number(row.soonest_expiry)) return "expired";
    // A disabled or locked account (containment) cannot act through its tokens either (ASVS 7.4.2 spirit).
    if (row.user_status !== "active" || row.user_locked_at !== null) return "account-disabled";
    return null;
  }

  /** The user's tokens in list order (newest first), narrowed by `narrow`, as list shows them (stamps applied). */
  const listed = async (userId: string, narrow: (q: TokenQuery) => TokenQuery): Promise<TokenInfo[]> => {
    const [rows, stamp] = await Promise.all([
      narrow(db.selectFrom("api_tokens").selectAll().where("user_id", "=", userId).orderBy("created_at", "desc").orderBy("id")).execute(),
      stampFor(userId),
    ]);
    return rows.map((r) => {
      const createdAt = Number(r.created_at);
      return {
        id: r.id, name: r.name, scopes: parseScopes(r.scopes), createdAt, expiresAt: num(r.expires_at),
        lastUsedAt: num(r.last_used_at), lastUsedIp: r.last_used_ip,
        // Refused by a stamp: shown as revoked at the stamp's time (a raise by epoch alone dates it no later).
        revokedAt: num(r.revoked_at) ?? (refusedBy(stamp, createdAt, Number(r.issued_epoch)) ? Math.max(stamp.time, createdAt) : null),
      };
    });
  };

  return {
    async create(userId, input, options = {}) {
      const now = clock.now();
      const clean = validateInput(input, now);
      const fresh = generateAPIToken(random);
      const info: TokenInfo = { id: fresh.id, name: clean.name, scopes: clean.scopes, createdAt: now, expiresAt: clean.expiresAt, lastUsedAt: null, lastUsedIp: null, revokedAt: null };
      await database.transaction(async (trx) => {
        // Per user, the live count and the insert are serialised (PostgreSQL: concurrent mints each counted below
        // the bound and all inserted; SQLite's write transaction already serialises them). Every query below goes
        // through trx: another pool connection (or SQLite's one connection) would wait on this transaction.
        await userTokensTurn(trx, userId);
        const user = await trx.selectFrom("users").select("id").where("id", "=", userId).executeTakeFirst();
        if (!user) throw tokenErrors.userNotFound();
        if (options.maxLive !== undefined) {
          // Live as list() shows it: not revoked, created after the user's and the global stamps, not expired.
          const stamp = await stampFor(userId, trx);
          const live = await trx
            .selectFrom("api_tokens").select((eb) => eb.fn.countAll<number>().as("n"))
            .where("user_id", "=", userId).where("revoked_at", "is", null).where("created_at", ">=", stamp.time).where("issued_epoch", ">=", stamp.epoch)
            .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)]))
            .executeTakeFirstOrThrow();
          if (Number(live.n) >= options.maxLive) throw tokenErrors.tooManyLive(options.maxLive);
        }
        if (input.parent) {
          // verify walks at most MAX_TOKEN_ANCESTORS tokens up and refuses a deeper one: say so now rather than
          // hand out a token that is refused on first use.
          const top = await withChain(trx, input.parent.id).selectFrom("chain").select((eb) => eb.fn.max("depth").as("depth")).executeTakeFirst();
          if (Number(top?.depth ?? 0) >= MAX_TOKEN_ANCESTORS) throw tokenErrors.chainTooDeep(MAX_TOKEN_ANCESTORS);
        }
        await trx
          .insertInto("api_tokens")
          .values({
            id: fresh.id, user_id: userId, name: clean.name, secret_hash: fresh.secretHash, scopes: JSON.stringify(clean.scopes),
            created_at: now, expires_at: clean.expiresAt, last_used_at: null, last_used_ip: null, revoked_at: null,
            parent_id: input.parent?.id ?? null, issued_epoch: currentEpoch(),
          })
          .execute();
        await options.within?.(trx, info);
      });
      return { token: fresh.token, info };
    },

    async ownerOf(presented) {
      const parsed = parseAPIToken(presented);
      if (!parsed) return null;
      const row = await db.selectFrom("api_tokens").select(["id", "user_id", "secret_hash"]).where("id", "=", parsed.id).executeTakeFirst();
      return row && apiSecretMatches(parsed.secret, row.secret_hash) ? { tokenId: row.id, userId: row.user_id } : null;
    },

    async verify(presented, ip) {
      const parsed = parseAPIToken(presented);
      if (!parsed) return { valid: false, reason: "malformed" };
      // One query, every step by primary key: the token, its account's state, both stamps and a summary of its
      // chain (the token and every token above it), so revocation by a containment job or of any ancestor takes
      // effect on the very next request, with no cache.
      const row = await tokenRow(parsed.id);
      if (!row) return { valid: false, reason: "unknown" };
      // The secret first: knowing an id (it appears in lists and logs) reveals nothing about the token's state.
      if (!apiSecretMatches(parsed.secret, row.secret_hash)) return { valid: false, reason: "mismatch" };
      const now = clock.now();
      const refused = refusalOf(row, now);
      if (refused !== null) return { valid: false, reason: refused };
      const lastUsed = num(row.last_used_at);
      // A last use dated ahead of this node's clock (written by a node whose clock runs fast) is rewritten too: read as
      // "just used", it held off every write from nodes with the right time, and the list kept the fast node's address
      // and never showed a thief's use (past the warning's margin, CLOCK_SKEW_WARN_MS: a rewrite of a time refuses
      // nothing, so it need not wait for the dated-ahead tolerance).
      const ahead = now + CLOCK_SKEW_WARN_MS;
      if (lastUsed === null || now - lastUsed >= TOUCH_INTERVAL_MS || lastUsed > ahead) {
        // Conditional, so concurrent requests write once per interval. Best effort on PostgreSQL: a token row another
        // transaction holds (a frozen node, a DBA's session) is skipped at once, not waited for: the call answered 503
        // past the store's wait bound for a bookkeeping write that only the token list shows
        // (test/bounded-waits-b-red-team.test.ts). The next call past the interval writes it; nothing is decided by it.
        // On SQLite likewise when another process holds the file's write lock (changeUnheld: test/sqlite-busy-red-team.test.ts).
        const due = (eb: ExpressionBuilder<Schema, "api_tokens">) => eb.and([
          eb("id", "=", row.id),
          eb.or([eb("last_used_at", "is", null), eb("last_used_at", "<=", now - TOUCH_INTERVAL_MS), eb("last_used_at", ">", ahead)]),
        ]);
        await changeUnheld(database, db.updateTable("api_tokens").set({ last_used_at: now, last_used_ip: cleanIP(ip) }).where(unheld(database, "api_tokens", due)));
      }
      // SQLite answers 0/1, PostgreSQL a boolean.
      const ownerHasMFA = row.owner_has_mfa === true || Number(row.owner_has_mfa) === 1;
      return { valid: true, tokenId: row.id, userId: row.user_id, scopes: parseScopes(row.scopes), expiresAt: num(row.expires_at), ownerHasMFA };
    },

    async usable(tokenId) {
      const row = await tokenRow(tokenId);
      return row !== undefined && refusalOf(row, clock.now()) === null;
    },

    async list(userId) {
      return listed(userId, (q) => q);
    },

    async listPage(userId, { after, limit }) {
      return listed(userId, (q) => (after === null ? q : q.where((eb) => eb.or([
        eb("created_at", "<", after.createdAt),
        eb.and([eb("created_at", "=", after.createdAt), eb("id", ">", after.id)]),
      ]))).limit(limit));
    },

    async find(userId, tokenId) {
      return (await listed(userId, (q) => q.where("id", "=", tokenId)))[0] ?? null;
    },

    async listLive(userId) {
      const now = clock.now();
      const live = await listed(userId, (q) => q.where("revoked_at", "is", null).where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)])));
      return live.filter((t) => t.revokedAt === null);
    },

    async revoke(userId, tokenId, options = {}) {
      const now = clock.now();
      return inTransaction(options.executor, async (trx) => {
        const result = await trx
          .updateTable("api_tokens")
          .set({ revoked_at: now })
          .where("id", "=", tokenId)
          .where("user_id", "=", userId)
          .where("revoked_at", "is", null)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return false;
        // Everything minted from it, at any depth (children are the user's own tokens, by construction). UNION,
        // not UNION ALL: a cycle written into the database ends instead of recursing forever.
        await trx
          .withRecursive("minted(id)", (qc) =>
            qc.selectFrom("api_tokens").select("id").where("parent_id", "=", tokenId)
              .union((qb) => qb.selectFrom("api_tokens as c").innerJoin("minted as m", "m.id", "c.parent_id").select("c.id")))
          .updateTable("api_tokens")
          .set({ revoked_at: now })
          .where("id", "in", (qb) => qb.selectFrom("minted").select("id"))
          .where("revoked_at", "is", null)
          .execute();
        return true;
      });
    },

    async revokeAllForUser(userId, options = {}) {
      return inTransaction(options.executor, async (trx) => {
        // In turn with create (the same per-user lock): on PostgreSQL (READ COMMITTED) the UPDATE cannot see a token
        // whose mint has inserted it and not yet committed, and that token stayed usable after "revoke all" answered
        // (ASVS 7.4.1). In turn, a mint in flight commits first and is revoked here, or starts after this commits.
        await userTokensTurn(trx, userId);
        const result = await trx.updateTable("api_tokens").set({ revoked_at: clock.now() }).where("user_id", "=", userId).where("revoked_at", "is", null).executeTakeFirst();
        return Number(result.numUpdatedRows);
      });
    },
  };
}
