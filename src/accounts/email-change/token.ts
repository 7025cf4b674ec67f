// Email-change tokens `ect_<id>.<secret>` (src/crypto/link-token.ts): only the secret's SHA-256 is stored, so
// a leaked table confirms nobody's change.
import { linkTokenKind, type LinkRefusal, type LinkRow } from "../../crypto/link-token.ts";
import type { RandomSource } from "../../lib/random.ts";

const kind = linkTokenKind("ect");

/** Longest well-formed token; anything longer is refused before any lookup. */
export const MAX_EMAIL_CHANGE_TOKEN_LENGTH = kind.maxLength;

/** Draws a fresh token from the CSPRNG; returns the text for the link and the hash to store. */
export function generateEmailChangeToken(random: RandomSource): { id: string; token: string; secretHash: string } {
  const { id, token, secretHash } = kind.generate(random);
  return { id, token, secretHash };
}

/** Splits a presented token; null when it is not exactly the shape we issue (no lookups for junk). */
export function parseEmailChangeToken(token: unknown): { id: string; secret: string } | null {
  return kind.parse(token);
}

/**
 * Judges the row a parsed token found (missing, secret, then used, dated more than `aheadToleranceMs` ahead of `now`,
 * and expiry): the row, or why not. `aheadToleranceMs`: the service's policy, the skew a node may have and still serve.
 */
export function checkEmailChangeRow<R extends LinkRow>(secret: string, row: R | undefined, now: number, aheadToleranceMs: number): { row: R } | { reason: LinkRefusal } {
  return kind.check(secret, row, now, aheadToleranceMs);
}
