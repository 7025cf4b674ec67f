// Flood control with Drupal 7's semantics and defaults (seed 003): failed logins per IP (50 per hour) and
// per account (5 per 6 hours, counted per account+IP unless configured per account only), plus a hard cap
// of 100 consecutive failures per account (NIST SP 800-63B §5.2.2, ASVS 6.3.1) that only a success or a
// reset clears. Identifiers are counted whether or not an account exists, so a lockout reveals nothing.
// Keys are SHA-256 of the identifier/IP: the table holds no raw emails or addresses.
import { hashSecret } from "../../crypto/tokens.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Database } from "../../store/database.ts";
import { prepareHot, type HotStatement } from "../../store/sqlite-dialect-prepared.ts";
import { identifierKey } from "../users/normalise.ts";

export interface FloodPolicy {
  ipLimit: number;
  ipWindowMs: number;
  accountLimit: number;
  accountWindowMs: number;
  /** Drupal's user_failed_login_identifier_uid_only: count per account only instead of per account+IP. */
  perAccountOnly: boolean;
  /** Consecutive failures after which the account is throttled until a success or a reset. */
  maxConsecutive: number;
}

export const DRUPAL_FLOOD_POLICY: Readonly<FloodPolicy> = Object.freeze({
  ipLimit: 50,
  ipWindowMs: 60 * 60 * 1000,
  accountLimit: 5,
  accountWindowMs: 6 * 60 * 60 * 1000,
  perAccountOnly: false,
  maxConsecutive: 100,
});

/**
 * `accountClean`: nothing for a success to clear (no failure in the account's window, no streak), so the
 * caller may skip `clearAccount` — one transaction and two deletes less on the common login path.
 */
export type FloodVerdict = { allowed: true; accountClean: boolean } | { allowed: false; reason: "ip" | "account" | "consecutive"; retryAfterMs: number };

export interface Attempt {
  identifier: string;
  ip: string | null;
}

// The whole verdict in one read. $1 streak key; $2–$4 IP key, window start, limit − 1; $5–$7 the same for the
// account. A window's subquery yields the limit-th newest event still inside it (null when fewer), which is
// the one whose expiry lifts the limit. A null IP uses key "" and no IP event ever has it (keys are hashes).
const CHECK_SQL =
  "SELECT (SELECT failures FROM flood_streaks WHERE key = $1) AS streak, " +
  "(SELECT at FROM flood_events WHERE scope = 'ip' AND key = $2 AND at > $3 ORDER BY at DESC LIMIT 1 OFFSET $4) AS ip_at, " +
  "(SELECT at FROM flood_events WHERE scope = 'account' AND key = $5 AND at > $6 ORDER BY at DESC LIMIT 1 OFFSET $7) AS account_at, " +
  "(SELECT count(*) FROM (SELECT 1 FROM flood_events WHERE scope = 'account' AND key = $5 AND at > $6 LIMIT 1) AS a) AS account_any";

interface CheckRow {
  streak: number | string | null;
  ip_at: number | string | null;
  account_at: number | string | null;
  account_any: number | string;
}

function key(...parts: string[]): string {
  return hashSecret(parts.join("\u0000"));
}

export class FloodControl {
  readonly #database: Database;
  readonly #clock: Clock;
  readonly policy: Readonly<FloodPolicy>;
  readonly #checkStatement: HotStatement<CheckRow>;

  constructor(deps: { database: Database; clock: Clock; policy?: Partial<FloodPolicy> }) {
    this.#database = deps.database;
    this.#clock = deps.clock;
    this.policy = { ...DRUPAL_FLOOD_POLICY, ...deps.policy };
    this.#checkStatement = prepareHot(deps.database, CHECK_SQL);
  }

  #keys(attempt: Attempt): { ip: string | null; account: string; streak: string } {
    const id = identifierKey(attempt.identifier);
    const ip = attempt.ip ?? "";
    return {
      ip: attempt.ip ? key("ip", attempt.ip) : null,
      account: this.policy.perAccountOnly ? key("account", id) : key("account", id, ip),
      streak: key("streak", id),
    };
  }

  /**
   * Whether an attempt may proceed. Reads only: one statement for the streak and both windows (the login
   * path runs it on every attempt, so it is compiled once rather than built as three Kysely queries).
   */
  async check(attempt: Attempt): Promise<FloodVerdict> {
    const k = this.#keys(attempt);
    const now = this.#clock.now();
    const p = this.policy;
    const [row] = await this.#checkStatement.all([
      k.streak, k.ip ?? "", now - p.ipWindowMs, Math.max(0, p.ipLimit - 1), k.account, now - p.accountWindowMs, Math.max(0, p.accountLimit - 1),
    ]);
    const streak = row?.streak ?? null;
    if (streak !== null && Number(streak) >= p.maxConsecutive) {
      // No time heals this: a success elsewhere (another IP within limits is impossible too) or a reset does.
      return { allowed: false, reason: "consecutive", retryAfterMs: p.accountWindowMs };
    }
    // The limit-th newest event inside the window, if there is one, is the one whose expiry lifts the limit.
    if (k.ip && row?.ip_at != null) return { allowed: false, reason: "ip", retryAfterMs: Math.max(1, Number(row.ip_at) + p.ipWindowMs - now) };
    if (row?.account_at != null) return { allowed: false, reason: "account", retryAfterMs: Math.max(1, Number(row.account_at) + p.accountWindowMs - now) };
    // Events older than the window never count again (prune deletes them), so they need no clearing.
    return { allowed: true, accountClean: streak === null && !Number(row?.account_any ?? 0) };
  }

  /** Records a failed attempt against the IP, the account (or account+IP) and the consecutive streak. */
  async registerFailure(attempt: Attempt): Promise<void> {
    const k = this.#keys(attempt);
    const at = this.#clock.now();
    await this.#database.transaction(async (trx) => {
      const rows = [{ scope: "account", key: k.account, at }];
      if (k.ip) rows.push({ scope: "ip", key: k.ip, at });
      await trx.insertInto("flood_events").values(rows).execute();
      await trx
        .insertInto("flood_streaks")
        .values({ key: k.streak, failures: 1, updated_at: at })
        .onConflict((oc) => oc.column("key").doUpdateSet((eb) => ({ failures: eb("flood_streaks.failures", "+", 1), updated_at: at })))
        .execute();
    });
  }

  /** After a success: clears the account's window (Drupal's flood_clear_event) and its streak. IP counts stay. */
  async clearAccount(attempt: Attempt): Promise<void> {
    const k = this.#keys(attempt);
    await this.#database.transaction(async (trx) => {
      await trx.deleteFrom("flood_events").where("scope", "=", "account").where("key", "=", k.account).execute();
      await trx.deleteFrom("flood_streaks").where("key", "=", k.streak).execute();
    });
  }

  /** After a password reset or an administrator's unlock: clears the consecutive cap for the identifier. */
  async clearStreak(identifier: string): Promise<void> {
    await this.#database.db.deleteFrom("flood_streaks").where("key", "=", key("streak", identifierKey(identifier))).execute();
  }

  /** Deletes window events too old to count under any limit. Returns how many were removed. */
  async prune(): Promise<number> {
    const horizon = this.#clock.now() - Math.max(this.policy.ipWindowMs, this.policy.accountWindowMs);
    const result = await this.#database.db.deleteFrom("flood_events").where("at", "<=", horizon).executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
