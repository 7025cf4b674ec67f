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

/** 8 attempts over about 9 hours: 1, 2, 4, 8, 16, 32, 60 minutes (each between half and all of that). */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 8, baseDelayMs: 60_000, maxDelayMs: 3_600_000 };

/**
 * Delay before the next attempt after `attempts` failed ones: base·2^(attempts−1), capped, then
 * "equal jitter" — a uniform draw from the upper half — so retries spread out but never come early.
 *
 * @example
 * retryDelay(3, DEFAULT_RETRY, systemRandom) // between 120,000 and 240,000 ms
 */
export function retryDelay(attempts: number, policy: RetryPolicy, random: RandomSource): number {
  const exponent = Math.min(Math.max(attempts - 1, 0), 30); // 2^30 already exceeds any sane cap
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** exponent);
  const bytes = random.bytes(4);
  const fraction = (((bytes[0] ?? 0) << 24) | ((bytes[1] ?? 0) << 16) | ((bytes[2] ?? 0) << 8) | (bytes[3] ?? 0)) >>> 0;
  const half = ceiling / 2;
  return Math.round(half + (half * fraction) / 0x1_0000_0000);
}
