// Email-change tokens `ect_<id>.<secret>`: a random id that finds the row and a 256-bit secret of which only
// the SHA-256 is stored (as for reset and session tokens), so a leaked table confirms nobody's change.
import { constantTimeEqual } from "../../crypto/constant-time.ts";
import { hashSecret, newId, newSecret } from "../../crypto/tokens.ts";
import type { RandomSource } from "../../lib/random.ts";

const ID_PATTERN = /^ect_[a-z2-7]{26}$/;
const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** Longest well-formed token; anything longer is refused before any lookup. */
export const MAX_EMAIL_CHANGE_TOKEN_LENGTH = 30 + 1 + 43;

/** Draws a fresh token from the CSPRNG; returns the text for the link and the hash to store. */
export function generateEmailChangeToken(random: RandomSource): { id: string; token: string; secretHash: string } {
  const id = newId("ect", random);
  const secret = newSecret(32, random);
  return { id, token: `${id}.${secret}`, secretHash: hashSecret(secret) };
}

/** Splits a presented token; null when it is not exactly the shape we issue (no lookups for junk). */
export function parseEmailChangeToken(token: unknown): { id: string; secret: string } | null {
  if (typeof token !== "string" || token.length > MAX_EMAIL_CHANGE_TOKEN_LENGTH) return null;
  const dot = token.indexOf(".");
  if (dot < 0) return null;
  const id = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  return ID_PATTERN.test(id) && SECRET_PATTERN.test(secret) ? { id, secret } : null;
}

/** Constant-time check of a presented secret against the stored hash. */
export function emailChangeSecretMatches(secret: string, storedHash: string): boolean {
  return constantTimeEqual(Buffer.from(hashSecret(secret), "utf8"), Buffer.from(storedHash, "utf8"));
}
