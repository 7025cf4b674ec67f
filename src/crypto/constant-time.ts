// Constant-time comparison of secrets: the only way Bulwark compares a secret with another.
import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Compares two byte strings in time that depends only on their lengths' digest, not on where they
 * differ. Inputs of different lengths are compared through their SHA-256 digests so the length
 * check itself does not leak through an early return.
 *
 * @example
 * constantTimeEqual(utf8(presented), utf8(expected)) // true or false
 */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength === b.byteLength) return timingSafeEqual(a, b);
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  // Different lengths never match; still do the same work as an equal-length compare.
  return timingSafeEqual(da, db) && false;
}

/** Constant-time comparison of two strings as UTF-8. */
export function constantTimeEqualString(a: string, b: string): boolean {
  return constantTimeEqual(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}
