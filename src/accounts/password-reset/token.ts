// Reset tokens `prt_<id>.<secret>`: a random id that finds the row and a 256-bit secret of which only the
// SHA-256 is stored (the same design as session tokens), so a leaked table resets nobody's password.
import { constantTimeEqual } from "../../crypto/constant-time.ts";
import { hashSecret, newId, newSecret } from "../../crypto/tokens.ts";
import type { RandomSource } from "../../lib/random.ts";

const ID_PATTERN = /^prt_[a-z2-7]{26}$/;
const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** Longest well-formed token; anything longer is refused before any lookup. */
export const MAX_RESET_TOKEN_LENGTH = 30 + 1 + 43;

export interface ResetToken {
  id: string;
  secret: string;
}

/** Draws a fresh token from the CSPRNG; returns the text for the link and the hash to store. */
export function generateResetToken(random: RandomSource): ResetToken & { token: string; secretHash: string } {
  const id = newId("prt", random);
  const secret = newSecret(32, random);
  return { id, secret, token: `${id}.${secret}`, secretHash: hashSecret(secret) };
}

/** Splits a presented token; null when it is not exactly the shape we issue (no lookups for junk). */
export function parseResetToken(token: unknown): ResetToken | null {
  if (typeof token !== "string" || token.length > MAX_RESET_TOKEN_LENGTH) return null;
  const dot = token.indexOf(".");
  if (dot < 0) return null;
  const id = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  return ID_PATTERN.test(id) && SECRET_PATTERN.test(secret) ? { id, secret } : null;
}

/** Constant-time check of a presented secret against the stored hash. */
export function resetSecretMatches(secret: string, storedHash: string): boolean {
  return constantTimeEqual(Buffer.from(hashSecret(secret), "utf8"), Buffer.from(storedHash, "utf8"));
}
