// The one rule for "this session is still open" by its dates, under the session policy in force: in memory for a row
// in hand (validate, the Session a caller sees) and as SQL for a WHERE clause (the session list, containment's counts).
import { sql, type RawBuilder } from "kysely";
import type { SessionPolicy } from "./policy.ts";

/** The parts of the session policy that decide when a session is over (ASVS 7.3.1, 7.3.2). */
export type SessionLimits = Pick<SessionPolicy, "idleTimeoutMs" | "absoluteTimeoutMs" | "datedAheadToleranceMs">;

/** A session's dates, as stored (epoch milliseconds). */
export interface SessionDates {
  createdAt: number;
  lastSeenAt: number;
  /** The expiry written when it was issued. */
  expiresAt: number;
}

/**
 * The absolute end of a session under the lifetime in force: the earlier of the expiry written when it was issued and
 * its creation time plus `absoluteTimeoutMs`. A lifetime shortened since (a restart with a lower
 * BULWARK_SESSION_ABSOLUTE_MINUTES, after a breach) reaches the sessions already out; a lengthened one gives none more.
 */
export function absoluteEnd(dates: Pick<SessionDates, "createdAt" | "expiresAt">, limits: Pick<SessionLimits, "absoluteTimeoutMs">): number {
  return Math.min(dates.expiresAt, dates.createdAt + limits.absoluteTimeoutMs);
}

/**
 * Why a session is over at `now` by its dates, or null while it is open. `expiresAt` is the stored expiry (absoluteEnd
 * bounds it by the lifetime in force). "future-dated": a creation or last-seen date more than the tolerance ahead of
 * `now` (a node whose clock ran fast, a clock stepped back): judged by such dates it would outlive both limits by the
 * difference. Revocation stamps and the account's state are judged apart (refusedBy, validate).
 *
 * @example
 * sessionClosedBy({ createdAt, lastSeenAt, expiresAt }, clock.now(), sessions.policy) // null, "idle-expired", …
 */
export function sessionClosedBy(dates: SessionDates, now: number, limits: SessionLimits): "future-dated" | "absolute-expired" | "idle-expired" | null {
  const ahead = now + limits.datedAheadToleranceMs;
  if (dates.createdAt > ahead || dates.lastSeenAt > ahead) return "future-dated";
  if (now >= absoluteEnd(dates, limits)) return "absolute-expired";
  if (now - dates.lastSeenAt >= limits.idleTimeoutMs) return "idle-expired";
  return null;
}

/**
 * The same rule as SQL for a WHERE clause over the sessions table: the rows sessionClosedBy finds open at `now`.
 * `table` qualifies the columns (an alias such as "s"); without it they are unqualified (a DELETE's RETURNING, a
 * statement on sessions alone). Its negation is every row past a limit or dated ahead (purgeExpired).
 *
 * @example
 * db.selectFrom("sessions as s").where(openSessionSQL(now, policy, { table: "s" }))
 */
export function openSessionSQL(now: number, limits: SessionLimits, options: { table?: string } = {}): RawBuilder<boolean> {
  const col = (name: string): RawBuilder<unknown> => sql.ref(options.table === undefined ? name : `${options.table}.${name}`);
  const ahead = now + limits.datedAheadToleranceMs;
  return sql<boolean>`(${col("expires_at")} > ${now} and ${col("created_at")} > ${now - limits.absoluteTimeoutMs}
    and ${col("last_seen_at")} > ${now - limits.idleTimeoutMs} and ${col("created_at")} <= ${ahead} and ${col("last_seen_at")} <= ${ahead})`;
}
