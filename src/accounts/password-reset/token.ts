// Reset tokens `prt_<id>.<secret>` (src/crypto/link-token.ts): only the secret's SHA-256 is stored, so a
// leaked table resets nobody's password.
import { linkTokenKind, type LinkRefusal, type LinkRow, type LinkToken } from "../../crypto/link-token.ts";
import type { RandomSource } from "../../lib/random.ts";

const kind = linkTokenKind("prt");

export type ResetToken = LinkToken;

/** Longest well-formed token; anything longer is refused before any lookup. */
export const MAX_RESET_TOKEN_LENGTH = kind.maxLength;

/**
 * Draws a fresh token from the CSPRNG; returns the text for the link and the hash to store. `orderedAt`: a time-ordered
 * id (a containment batch's thousands of links: LinkTokenKind.generate).
 */
export function generateResetToken(random: RandomSource, options?: { orderedAt?: number }): ResetToken & { token: string; secretHash: string } {
  return kind.generate(random, options);
}

/** Splits a presented token; null when it is not exactly the shape we issue (no lookups for junk). */
export function parseResetToken(token: unknown): ResetToken | null {
  return kind.parse(token);
}

/**
 * Judges the row a parsed token found (missing, secret, then used, dated more than `aheadToleranceMs` ahead of `now`,
 * and expiry): the row, or why not. `aheadToleranceMs`: the service's policy, the skew a node may have and still serve.
 */
export function checkResetRow<R extends LinkRow>(secret: string, row: R | undefined, now: number, aheadToleranceMs: number): { row: R } | { reason: LinkRefusal } {
  return kind.check(secret, row, now, aheadToleranceMs);
}
