// API token text `bwk_<id>_<secret>`: the `bwk_` prefix lets secret scanners spot a leaked token, the id finds
// the row, and of the 256-bit secret only SHA-256 is stored, so a database copy cannot be replayed.
import { constantTimeEqual } from "../../crypto/constant-time.ts";
import { base32, hashSecret, newId } from "../../crypto/tokens.ts";
import type { RandomSource } from "../../lib/random.ts";

export const TOKEN_PREFIX = "bwk_";
/** `tok_` and 26 base32 characters: 128 random bits, unguessable like every Bulwark id. */
const ID_PATTERN = /^tok_[a-z2-7]{26}$/;
/**
 * 32 random bytes in lower-case base32: 52 characters, 256 bits. Base32 rather than base64url because its
 * alphabet has no `_`, so the token splits unambiguously and double-click selects it whole.
 */
const SECRET_BYTES = 32;
const SECRET_PATTERN = /^[a-z2-7]{52}$/;
/** Longest well-formed token; anything longer is refused before any work. */
export const MAX_TOKEN_LENGTH = TOKEN_PREFIX.length + 30 + 1 + 52;

export interface NewAPIToken {
  id: string;
  /** The text handed to the user, once. */
  token: string;
  /** What the database keeps: SHA-256 of the secret, hex. */
  secretHash: string;
}

/** Draws a fresh id and secret from the CSPRNG. */
export function generateAPIToken(random: RandomSource): NewAPIToken {
  const id = newId("tok", random);
  const secret = base32(random.bytes(SECRET_BYTES));
  return { id, token: `${TOKEN_PREFIX}${id}_${secret}`, secretHash: hashSecret(secret) };
}

/**
 * Splits presented text into id and secret; null when it is not exactly the shape we issue.
 *
 * @example
 * parseAPIToken("bwk_tok_abc…_xyz…") // { id: "tok_abc…", secret: "xyz…" } or null
 */
export function parseAPIToken(text: unknown): { id: string; secret: string } | null {
  if (typeof text !== "string" || text.length > MAX_TOKEN_LENGTH || !text.startsWith(TOKEN_PREFIX)) return null;
  const rest = text.slice(TOKEN_PREFIX.length);
  const cut = rest.lastIndexOf("_");
  if (cut < 0) return null;
  const id = rest.slice(0, cut);
  const secret = rest.slice(cut + 1);
  return ID_PATTERN.test(id) && SECRET_PATTERN.test(secret) ? { id, secret } : null;
}

/** True when `secret` hashes to `storedHash`, compared in constant time (ASVS 11.2.4). */
export function apiSecretMatches(secret: string, storedHash: string): boolean {
  return constantTimeEqual(Buffer.from(hashSecret(secret), "utf8"), Buffer.from(storedHash, "utf8"));
}
