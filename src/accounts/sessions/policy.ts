// Session lifetime policy. Defaults follow NIST SP 800-63B §4.2.3 (AAL2): re-authentication at least every
// 12 hours and after 30 minutes of inactivity (ASVS 7.3.1, 7.3.2); both are configurable.
import { DEFAULT_DATED_AHEAD_TOLERANCE_MS } from "../../store/clock-skew.ts";
import { sessionErrors } from "./errors.ts";

export interface SessionPolicy {
  /** A session unused for this long is refused. */
  idleTimeoutMs: number;
  /**
   * A session older than this is refused however active it is. Judged from its creation time by the value in force,
   * and never later than the expiry written when it was issued: a lifetime shortened since reaches every session out.
   */
  absoluteTimeoutMs: number;
  /**
   * last_seen_at is written at most once per this interval, not on every request. Idle time is measured
   * from the last write, so the effective idle timeout is between idle − interval and idle: it errs short.
   */
  touchIntervalMs: number;
  /** Longer User-Agent headers are cut: the value is untrusted and only shown in the session list. */
  maxUserAgentLength: number;
  /**
   * A session whose creation or last-seen date is more than this ahead of the judging node's clock is ended as
   * "future-dated" (and deleted by purgeExpired), and a creation time that far ahead is not fresh (isFresh): the skew a
   * node may have and still serve (datedAheadToleranceFor(config.maxClockSkewMs), src/store/clock-skew.ts), so two
   * nodes the product lets serve keep each other's sessions.
   */
  datedAheadToleranceMs: number;
}

const MINUTE = 60_000;

export const DEFAULT_SESSION_POLICY: Readonly<SessionPolicy> = Object.freeze({
  idleTimeoutMs: 30 * MINUTE,
  absoluteTimeoutMs: 12 * 60 * MINUTE,
  touchIntervalMs: MINUTE,
  maxUserAgentLength: 512,
  datedAheadToleranceMs: DEFAULT_DATED_AHEAD_TOLERANCE_MS,
});

/**
 * Merges overrides into the defaults and refuses impossible combinations.
 *
 * @example
 * resolveSessionPolicy({ idleTimeoutMs: 15 * 60_000 })
 */
export function resolveSessionPolicy(overrides: Partial<SessionPolicy> = {}): SessionPolicy {
  const policy = { ...DEFAULT_SESSION_POLICY, ...overrides };
  for (const [name, value] of Object.entries(policy)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw sessionErrors.badPolicy(`${name} must be a positive whole number, got ${String(value)}`);
  }
  if (policy.idleTimeoutMs > policy.absoluteTimeoutMs) throw sessionErrors.badPolicy("the idle timeout cannot exceed the absolute lifetime");
  if (policy.touchIntervalMs >= policy.idleTimeoutMs) throw sessionErrors.badPolicy("the touch interval must be shorter than the idle timeout");
  return policy;
}
