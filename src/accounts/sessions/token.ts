// Session tokens `id.secret`: a random id that finds the row and a 256-bit secret of which only the SHA-256
// is stored, so a copy of the database cannot be replayed as a cookie (the Lucia-successor design).
import { constantTimeEqual } from "../../crypto/constant-time.ts";
import { hashSecret, newId, newSecret } from "../../crypto/tokens.ts";
import type { RandomSource } from "../../lib/random.ts";

/** `ses_` and 26 base32 characters: 128 random bits (ASVS 7.2.3 asks for at least 128 in the token). */
const ID_PATTERN = /^ses_[a-z2-7]{26}$/;
/** 32 random bytes as unpadded base64url: exactly 43 characters. */
const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;
/** Longest well-formed token; anything longer is refused before any work is done. */
export const MAX_TOKEN_LENGTH = 30 + 1 + 43;

export interface ParsedToken {
  id: string;
  secret: string;
}

export interface NewToken extends ParsedToken {
  /** What the cookie carries: `id.secret`. */
  token: string;
  /** What the database stores: SHA-256 of the secret, hex. */
  secretHash: string;
}

/** SHA-256 of a session secret, hex. A fast hash suffices: the secret has 256 bits of entropy. */
export function hashSessionSecret(secret: string): string {
  return hashSecret(secret);
}

/**
 * Draws a fresh id and secret from the CSPRNG.
 *
 * @example
 * const { token, id, secretHash } = generateSessionToken(systemRandom);
 */
export function generateSessionToken(random: RandomSource): NewToken {
  const id = newId("ses", random);
  const secret = newSecret(32, random);
  return { id, secret, token: `${id}.${secret}`, secretHash: hashSessionSecret(secret) };
}

/**
 * Splits a presented token; null when it is not exactly the shape we issue (no lookups for junk).
 *
 * @example
 * parseSessionToken("ses_abc….Xy9…") // { id, secret } or null
 */
export function parseSessionToken(token: string): ParsedToken | null {
  if (typeof token !== "string" || token.length > MAX_TOKEN_LENGTH) return null;
  const dot = token.indexOf(".");
  if (dot < 0) return null;
  const id = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  if (!ID_PATTERN.test(id) || !SECRET_PATTERN.test(secret)) return null;
  return { id, secret };
}

/** True when `secret` hashes to `storedHash`; the comparison takes the same time wherever they differ. */
export function secretMatches(secret: string, storedHash: string): boolean {
  return constantTimeEqual(Buffer.from(hashSessionSecret(secret), "utf8"), Buffer.from(storedHash, "utf8"));
}
