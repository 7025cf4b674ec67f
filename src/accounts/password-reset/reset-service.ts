// Password reset tokens over Kysely (SQLite and PostgreSQL alike): issue a single-use, 30-minute token,
// check it, redeem it exactly once (atomically, inside the caller's transaction), supersede the rest.
// The HTTP layer owns the flow around it (same answer for unknown accounts, policy, MFA, sessions, mail).
import type { Kysely } from "kysely";
import type { Clock } from "../../lib/clock.ts";
import type { RandomSource } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { resetErrors } from "./errors.ts";
import { genuineOf, type LinkRefusal } from "../../crypto/link-token.ts";
import { DEFAULT_DATED_AHEAD_TOLERANCE_MS } from "../../store/clock-skew.ts";
import { lockAccountLinks, withAccountLinks } from "./link-lock.ts";
import { checkResetRow, generateResetToken, parseResetToken } from "./token.ts";

/**
 * Marks every unused reset link of `userId` used at `now`, with `executor` (a caller's transaction when the spend
 * must commit with another change). Returns how many. The service's `revokeAll` is this with its own clock; an
 * import that replaces a password calls it in its batch transaction.
 *
 * @example
 * await spendResetLinks(trx, userId, clock.now()); // in the transaction that replaces the password
 */
export async function spendResetLinks(executor: Kysely<Schema>, userId: string, now: number): Promise<number> {
  const result = await executor.updateTable("password_reset_tokens").set({ used_at: now }).where("user_id", "=", userId).where("used_at", "is", null).executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export interface PasswordResetPolicy {
  /** How long a link works. 30 minutes: long enough to read a mail, short enough to limit a leaked link. */
  lifetimeMs: number;
  /**
   * At most this many working links per account, of those made in the window: a reset form must not become a mail
   * cannon, nor a way to keep the owner's mailbox full of dead links (recentCount counts only live, unused ones).
   */
  maxPerWindow: number;
  windowMs: number;
  /**
   * A link created more than this ahead of the judging node's clock is refused as "future-dated", and spent by
   * purgeExpired: the skew a node may have and still serve (datedAheadToleranceFor(config.maxClockSkewMs), wired in
   * src/app/accounts.ts), so a genuine link from a node the product lets serve works on every other.
   */
  datedAheadToleranceMs: number;
}

export const DEFAULT_RESET_POLICY: Readonly<PasswordResetPolicy> = Object.freeze({
  lifetimeMs: 30 * 60_000,
  maxPerWindow: 3,
  windowMs: 60 * 60_000,
  datedAheadToleranceMs: DEFAULT_DATED_AHEAD_TOLERANCE_MS,
});

export type ResetRefusal = LinkRefusal;

export type ResetCheck =
  | { valid: true; tokenId: string; userId: string; expiresAt: number }
  /** `genuine`: the secret matched (a used, future-dated or expired link of this account), with whose it is. */
  | { valid: false; reason: ResetRefusal; genuine?: { userId: string; tokenId: string } };

export type IssueResult = { issued: true; token: string; expiresAt: number } | { issued: false; reason: "rate-limited" };

/** The longest a link may be made to live (containment mail to a whole user base may be read a day later). */
export const MAX_RESET_LIFETIME_MS = 7 * 24 * 60 * 60_000;

/** Rows per insert of `storeMany`: six values each, well inside either database's limit on a statement's parameters. */
const STORE_ROWS = 500;

export interface IssueOptions {
  /** Write through this executor (a caller's transaction) instead of the database. */
  executor?: Kysely<Schema>;
  /** Overrides policy.lifetimeMs for this link (1 ms to MAX_RESET_LIFETIME_MS). */
  lifetimeMs?: number;
}

export interface PasswordResetService {
  readonly policy: Readonly<PasswordResetPolicy>;
  /**
   * Issues a token for a user. The text is returned once (for the mail); only its secret's hash is stored.
   * Refused (a value, not an error) past `maxPerWindow` links in `windowMs` for the account.
   */
  issue(userId: string, options?: IssueOptions): Promise<IssueResult>;
  /** How many links issued to the user in the current rate window still work (what `issue` compares to maxPerWindow). */
  recentCount(userId: string, executor?: Kysely<Schema>): Promise<number>;
  /**
   * Stores the row of a token drawn with `generateResetToken`, with no rate check: for callers that apply
   * their own bound (a containment job, idempotent per job and user) or have just checked `recentCount`.
   */
  store(token: { id: string; secretHash: string }, userId: string, options?: IssueOptions): Promise<{ expiresAt: number }>;
  /**
   * `store` for many links at once, in multi-row inserts of STORE_ROWS (a containment batch's thousands of links: one
   * statement per link was a third of its writes). Every link gets the same times. No rate check either.
   */
  storeMany(links: ReadonlyArray<{ token: { id: string; secretHash: string }; userId: string }>, options?: IssueOptions): Promise<{ expiresAt: number }>;
  /** Checks a presented token without using it up (to show the form, or before asking for MFA). */
  check(token: unknown): Promise<ResetCheck>;
  /**
   * Uses a token up: exactly one caller ever gets `valid: true` for it, even concurrently, and every other open
   * token of the same user is superseded. Pass the transaction that changes the password, so both commit together,
   * and call it before that transaction's first write: it takes the account's link lock (`lockAccountLinks`).
   * Without an executor it runs in a transaction of its own.
   */
  redeem(token: unknown, executor?: Kysely<Schema>): Promise<ResetCheck>;
  /**
   * Supersedes every open token of a user (after a password change, an email change). Returns how many. Without an
   * executor it runs in its own transaction under the account's link lock; a caller's transaction that writes other
   * link rows of the user takes that lock itself, before its first write.
   */
  revokeAll(userId: string, executor?: Kysely<Schema>): Promise<number>;
  /**
   * Deletes the tokens past their own expiry that are also older than the rate window (used or not), and spends the
   * unused ones dated more than policy.datedAheadToleranceMs ahead of this clock (the check's "future-dated"), on `executor` when given (maintenance bounds its
   * waits). Returns how many. A 24-hour containment link lives its 24 hours; a row of the window stays, as the hourly
   * limit counts it.
   */
  purgeExpired(executor?: Kysely<Schema>): Promise<number>;
}

function checkPolicy(overrides: Partial<PasswordResetPolicy>): PasswordResetPolicy {
  const policy = { ...DEFAULT_RESET_POLICY, ...overrides };
  for (const [name, value] of Object.entries(policy)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw resetErrors.badPolicy(`${name} must be a positive whole number, got ${String(value)}`);
  }
  return policy;
}

/**
 * Builds the reset-token service.
 *
 * @example
 * const resets = createPasswordResetService({ database, clock: systemClock, random: systemRandom });
 * const issued = await resets.issue(user.id);           // { issued: true, token, expiresAt }
 * await database.transaction(async (trx) => {
 *   const used = await resets.redeem(token, trx);      // { valid: true, userId } exactly once
 *   // … change the password in the same transaction
 * });
 */
export function createPasswordResetService(deps: { database: Database; clock: Clock; random: RandomSource; policy?: Partial<PasswordResetPolicy> }): PasswordResetService {
  const { database, clock, random } = deps;
  const policy = checkPolicy(deps.policy ?? {});
  const db = database.db;

  async function look(token: unknown, target: Kysely<Schema>): Promise<ResetCheck> {
    const parsed = parseResetToken(token);
    if (!parsed) return { valid: false, reason: "malformed" };
    const found = await target.selectFrom("password_reset_tokens").selectAll().where("id", "=", parsed.id).executeTakeFirst();
    // The secret before the state: knowing an id (it is in no mail but the owner's) must reveal nothing else.
    const verdict = checkResetRow(parsed.secret, found, clock.now(), policy.datedAheadToleranceMs);
    // Past the secret check (used, dated ahead, expired): a genuine link, whose refusal the caller may record against its account.
    if ("reason" in verdict) return { valid: false, reason: verdict.reason, ...genuineOf(found, verdict.reason) };
    const { row } = verdict;
    return { valid: true, tokenId: row.id, userId: row.user_id, expiresAt: Number(row.expires_at) };
  }

  function revokeAll(userId: string, executor?: Kysely<Schema>): Promise<number> {
    // On its own, under the account's link lock: one UPDATE over several of the user's rows, run while a redeem or
    // confirmation held one of them and wanted the others, was a PostgreSQL lock cycle too.
    return withAccountLinks(database, userId, executor, (trx) => spendResetLinks(trx, userId, clock.now()));
  }

  async function recentCount(userId: string, executor: Kysely<Schema> = db): Promise<number> {
    const now = clock.now();
    // Only links that still work: a link lives 30 minutes and the window is an hour, so counting every link of the
    // window let an outsider who asked for three on the hour leave the owner, for the second half of every hour, a
    // mailbox of dead links and a form that sent nothing. Now a refusal always leaves a working link in the mailbox
    // whoever spent the budget; the mailbox still gets at most maxPerWindow links per link lifetime.
    const recent = await executor
      .selectFrom("password_reset_tokens")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("user_id", "=", userId)
      .where("created_at", ">", now - policy.windowMs)
      .where("expires_at", ">", now)
      .where("used_at", "is", null)
      .executeTakeFirstOrThrow();
    return Number(recent.n);
  }

  async function storeMany(links: ReadonlyArray<{ token: { id: string; secretHash: string }; userId: string }>, options: IssueOptions = {}): Promise<{ expiresAt: number }> {
    const lifetime = options.lifetimeMs ?? policy.lifetimeMs;
    if (!Number.isSafeInteger(lifetime) || lifetime <= 0 || lifetime > MAX_RESET_LIFETIME_MS) {
      throw resetErrors.badPolicy(`a link's lifetime must be 1 to ${MAX_RESET_LIFETIME_MS} ms, got ${String(lifetime)}`);
    }
    const now = clock.now();
    const expiresAt = now + lifetime;
    const rows = links.map(({ token, userId }) => ({ id: token.id, user_id: userId, secret_hash: token.secretHash, created_at: now, expires_at: expiresAt, used_at: null }));
    for (let i = 0; i < rows.length; i += STORE_ROWS) await (options.executor ?? db).insertInto("password_reset_tokens").values(rows.slice(i, i + STORE_ROWS)).execute();
    return { expiresAt };
  }

  function store(token: { id: string; secretHash: string }, userId: string, options: IssueOptions = {}): Promise<{ expiresAt: number }> {
    return storeMany([{ token, userId }], options);
  }

  return {
    policy,
    async issue(userId, options = {}) {
      const issueIn = async (executor: Kysely<Schema>): Promise<IssueResult> => {
        // Count and insert serialised per account, under the lock the HTTP path takes too (reset-mail.ts): concurrent
        // callers on PostgreSQL each counted below the hourly limit.
        await lockAccountLinks(database, executor, userId);
        if ((await recentCount(userId, executor)) >= policy.maxPerWindow) return { issued: false, reason: "rate-limited" };
        const fresh = generateResetToken(random);
        const { expiresAt } = await store(fresh, userId, { ...options, executor });
        return { issued: true, token: fresh.token, expiresAt };
      };
      return options.executor ? issueIn(options.executor) : database.transaction(issueIn);
    },
    recentCount,
    store,
    storeMany,
    check: (token) => look(token, db),
    async redeem(token, executor) {
      const redeemIn = async (trx: Kysely<Schema>): Promise<ResetCheck> => {
        // A plain read first, only to learn whose link it is; its verdict is settled by the UPDATE below.
        const found = await look(token, trx);
        if (!found.valid) return found;
        // Before any write: this update and revokeAll lock two of the user's rows, and a second redeem (or an email
        // confirmation) locked them in the other order — a PostgreSQL deadlock, a 500 for one of the two.
        await lockAccountLinks(database, trx, found.userId);
        const now = clock.now();
        // The conditional UPDATE is the single point of truth: of two concurrent redeems only one changes the row.
        // Run after the lock, it sees what a redeem that held the lock before committed (READ COMMITTED).
        const result = await trx
          .updateTable("password_reset_tokens")
          .set({ used_at: now })
          .where("id", "=", found.tokenId)
          .where("used_at", "is", null)
          .where("expires_at", ">", now)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) return { valid: false, reason: "used", genuine: { userId: found.userId, tokenId: found.tokenId } };
        await revokeAll(found.userId, trx);
        return found;
      };
      return executor ? redeemIn(executor) : database.transaction(redeemIn);
    },
    revokeAll,
    async purgeExpired(executor = db) {
      const now = clock.now();
      // A link dated ahead of this clock (issued by a node whose clock runs fast, or before this host's clock was
      // stepped back) is refused here as "future-dated", but once real time passes its date every node would judge it
      // by an expiry that much too late: the 30-minute link lived 50 on a node 20 minutes fast. Spent now, as sessions
      // dated ahead are deleted, so a pass every maintenance interval bounds the stretch to the interval. Spent, not
      // deleted: the row still counts towards the hourly limit, and its replay is still told apart from a guess. By the
      // check's own tolerance: a narrower one spent for good the genuine links of a node the product lets serve.
      const spent = await executor
        .updateTable("password_reset_tokens")
        .set({ used_at: now })
        .where("used_at", "is", null)
        .where("created_at", ">", now + policy.datedAheadToleranceMs)
        .executeTakeFirst();
      // Each row by its own expiry, never by the policy's lifetime: a containment link lives 24 hours, not 30
      // minutes. And rows of the rate window stay even when expired or used: a replay of one is still told apart from
      // a guess (a genuine link refused as used or expired).
      const result = await executor
        .deleteFrom("password_reset_tokens")
        .where("expires_at", "<=", now)
        .where("created_at", "<=", now - policy.windowMs)
        .executeTakeFirst();
      return Number(spent.numUpdatedRows) + Number(result.numDeletedRows);
    },
  } satisfies PasswordResetService;
}
