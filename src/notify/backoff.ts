// Retry timing: exponential backoff with jitter, so a recovering mail server is not hit by every
// deferred message of a 100,000-recipient campaign at the same instant.
import type { RandomSource } from "../lib/random.ts";

export interface RetryPolicy {
  /** Attempts before a message is dead (transient failures only; a 5xx is dead at once). */
  maxAttempts: number;
  /** Delay after the first failure, in ms. */
  baseDelayMs: number;
  /** Upper bound of any delay, in ms. */
  maxDelayMs: number;
}

/**
 * Security mail must survive a mail server that is down for a day (a weekend incident, a provider outage):
 * 31 attempts, the waits between them 1, 2, 4, 8, 16, 32 and 64 minutes, then 2 hours 23 times, each wait
 * between half and all of its step. A message that keeps getting 4xx replies is therefore dead no sooner
 * than 24 hours after its first attempt (all waits at their lowest: 24 h 4 min) and no later than 48 hours
 * (all at their highest; about 36 h on average). After an outage ends, queued mail leaves within 2 hours.
 * `retryBudget` computes these bounds; backoff.test.ts holds them to it.
 */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 31, baseDelayMs: 60_000, maxDelayMs: 2 * 3_600_000 };

/** The top of the jitter range after `attempts` failed attempts: base·2^(attempts−1), capped. */
function delayCeiling(attempts: number, policy: RetryPolicy): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30); // 2^30 already exceeds any sane cap
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** exponent);
}

/**
 * Delay before the next attempt after `attempts` failed ones: base·2^(attempts−1), capped, then
 * "equal jitter" — a uniform draw from the upper half — so retries spread out but never come early.
 *
 * @example
 * retryDelay(3, DEFAULT_RETRY, systemRandom) // between 120,000 and 240,000 ms
 */
export function retryDelay(attempts: number, policy: RetryPolicy, random: RandomSource): number {
  const ceiling = delayCeiling(attempts, policy);
  const bytes = random.bytes(4);
  const fraction = (((bytes[0] ?? 0) << 24) | ((bytes[1] ?? 0) << 16) | ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0)) >>> 0;
  const half = ceiling / 2;
  return Math.round(half + (half * fraction) / 0x1_0000_0000);
}

/**
 * The shortest and longest time from a message's first attempt to its last under `policy` (every wait at
 * the bottom, or the top, of its jitter range): how long an outage the queue rides out.
 *
 * @example
 * retryBudget(DEFAULT_RETRY) // { minMs: 86_610_000, maxMs: 173_220_000 }: 24 h 4 min to 48 h 7 min
 */
export function retryBudget(policy: RetryPolicy): { minMs: number; maxMs: number } {
  let maxMs = 0;
  for (let attempts = 1; attempts < policy.maxAttempts; attempts++) {
    maxMs += delayCeiling(attempts, policy);
  }
  return { minMs: maxMs / 2, maxMs };
}
