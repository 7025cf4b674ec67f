// Renewal reminders for API tokens that expire (ASVS 6.4.5): an owner is told a week ahead that a token stops
// working, so whatever uses it can get a new one in time. One notice per token, ever: its id is the notice's
// idempotency key, so the maintenance pass that finds it again queues nothing more, and a restart or a second
// node changes nothing. Tokens made with less than the lead time to live get none: their creator chose it; nor do
// tokens that would be refused now (revoked by a stamp or an ancestor, a locked or disabled account).
import type { Kysely } from "kysely";
import type { Logger } from "pino";
import { addressProblem, notifySecurityEvent, NotifyInputError, securityNoticeKey, type Outbox } from "../../notify/index.ts";
import type { Schema } from "../../store/schema.ts";

/** How long before its expiry a token's owner is reminded: a week (a weekend and a holiday still leave days to act). */
export const TOKEN_REMINDER_LEAD_MS = 7 * 86_400_000;

/** Tokens read per statement: the pass goes through the whole window in pages, memory bounded. */
const PAGE = 500;

export interface TokenReminderDeps {
  db: Kysely<Schema>;
  outbox: Outbox;
  appName: string;
  now: number;
  logger: Pick<Logger, "warn">;
  /**
   * Whether the token would be accepted now (TokenService.usable): one revoked by a containment stamp whose rows are
   * not marked yet, or under a revoked ancestor, is no longer the owner's to renew, and a reminder would say it works.
   */
  usable: (tokenId: string) => Promise<boolean>;
}

/**
 * Queues a reminder for every live token that expires within the lead time and was made longer before its expiry
 * than that; returns how many were newly queued (0 on a pass that finds only tokens already reminded).
 *
 * @example
 * await remindExpiringTokens({ db, outbox, appName: "Example", now: Date.now(), logger, usable: tokens.usable }); // 3
 */
export async function remindExpiringTokens(deps: TokenReminderDeps, leadMs: number = TOKEN_REMINDER_LEAD_MS): Promise<number> {
  let queued = 0;
  let after: { expiresAt: number; id: string } | null = null;
  for (;;) {
    let query = deps.db.selectFrom("api_tokens").innerJoin("users", "users.id", "api_tokens.user_id")
      .select(["api_tokens.id as id", "api_tokens.expires_at as expiresAt", "users.email as email", "users.id as userId"])
      .where("api_tokens.revoked_at", "is", null)
      .where("api_tokens.expires_at", ">", deps.now)
      .where("api_tokens.expires_at", "<=", deps.now + leadMs)
      // Made with more than the lead time to live: a token for an afternoon needs no reminder.
      .where((eb) => eb("api_tokens.created_at", "<", eb("api_tokens.expires_at", "-", leadMs)))
      // An account that cannot use its tokens (disabled, or locked: containment) is not told to renew them.
      .where("users.status", "=", "active")
      .where("users.locked_at", "is", null);
    if (after !== null) {
      const a = after;
      query = query.where((eb) => eb.or([eb("api_tokens.expires_at", ">", a.expiresAt), eb.and([eb("api_tokens.expires_at", "=", a.expiresAt), eb("api_tokens.id", ">", a.id)])]));
    }
    const rows = await query.orderBy("api_tokens.expires_at").orderBy("api_tokens.id").limit(PAGE).execute();
    // Every pass (each 15 minutes) walks the whole week ahead: the tokens reminded already are found by their notice's
    // idempotency key in one statement per page, so only the new ones cost a check and an insert.
    const pending = rows.map((row) => {
      const eventId = `token-expiry:${row.id}`;
      return { row, eventId, key: securityNoticeKey("api-token-expiring", eventId, row.email) };
    });
    const queuedAlready = new Set(
      pending.length === 0 ? [] : (await deps.db.selectFrom("outbox_messages").select("idempotency_key").where("idempotency_key", "in", pending.map((p) => p.key)).execute()).map((r) => r.idempotency_key),
    );
    for (const { row, eventId, key } of pending) {
      if (queuedAlready.has(key)) continue;
      const expiresAt = Number(row.expiresAt);
      if (!(await deps.usable(row.id))) continue;
      // An address the outbox cannot mail (an import may have stored one) is skipped with a warning, every pass.
      if (addressProblem(row.email) !== null) {
        deps.logger.warn({ tokenId: row.id }, "token expiry reminder not sent: the owner's address cannot be mailed");
        continue;
      }
      try {
        const results = await notifySecurityEvent(deps.outbox, { eventId, to: row.email, accountId: row.userId, at: deps.now, event: { type: "api-token-expiring", expiresAt } }, { appName: deps.appName });
        queued += results.filter((r) => r.created).length;
      } catch (error) {
        if (!(error instanceof NotifyInputError)) throw error;
        deps.logger.warn({ tokenId: row.id, code: error.code }, "token expiry reminder not sent: the outbox refused it");
      }
    }
    if (rows.length < PAGE) return queued;
    const last = rows[rows.length - 1] as (typeof rows)[number];
    after = { expiresAt: Number(last.expiresAt), id: last.id };
  }
}
