// Reset tokens `prt_<id>.<secret>` (src/crypto/link-token.ts): only the secret's SHA-256 is stored, so a
// leaked table resets nobody's password.
import { linkTokenKind, type LinkToken } from "../../crypto/link-token.ts";
import type { RandomSource } from "../../lib/random.ts";

const kind = linkTokenKind("prt");

export type ResetToken = LinkToken;

/** Longest well-formed token; anything longer is refused before any lookup. */
export const MAX_RESET_TOKEN_LENGTH = kind.maxLength;

/** Draws a fresh token from the CSPRNG; returns the text for the link and the hash to store. */
export function generateResetToken(random: RandomSource): ResetToken & { token: string; secretHash: string } {
  return kind.generate(random);
}

/** Splits a presented token; null when it is not exactly the shape we issue (no lookups for junk). */
export function parseResetToken(token: unknown): ResetToken | null {
  return kind.parse(token);
}

/** Constant-time check of a presented secret against the stored hash. */
export function resetSecretMatches(secret: string, storedHash: string): boolean {
  return kind.matches(secret, storedHash);
}
