// The byte encodings legacy hash formats use: crypt's "./0-9A-Za-z" alphabet in its two bit
// orders (phpass, and md5/sha-crypt's permuted groups), passlib's adapted base64, unpadded base64,
// and a one-shot digest over several parts. The digests themselves are node:crypto's.
import { hash as oneShotHash } from "node:crypto";

/** The alphabet of crypt(3), phpass and Drupal: index = 6-bit value. */
export const ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

export type DigestName = "md5" | "sha1" | "sha256" | "sha512";

export const DIGEST_BYTES: Readonly<Record<DigestName, number>> = { md5: 16, sha1: 20, sha256: 32, sha512: 64 };

/** node:crypto one-shot digest of the concatenation of `parts` (strings are UTF-8). */
export function digest(name: DigestName, ...parts: (Uint8Array | string)[]): Buffer {
  const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : p)));
  return oneShotHash(name, data, "buffer");
}

/** phpass' encode64: 3-byte groups read little-endian, 6 bits at a time from the low end. */
export function phpassEncode64(input: Uint8Array, count: number): string {
  let output = "";
  let i = 0;
  do {
    let value = input[i++]!;
    output += ITOA64[value & 0x3f];
    if (i < count) value |= input[i]! << 8;
    output += ITOA64[(value >> 6) & 0x3f];
    if (i++ >= count) break;
    if (i < count) value |= input[i]! << 16;
    output += ITOA64[(value >> 12) & 0x3f];
    if (i++ >= count) break;
    output += ITOA64[(value >> 18) & 0x3f];
  } while (i < count);
  return output;
}

/**
 * crypt's b64_from_24bit: encodes the bytes at `groups` (each [b2, b1, b0] with -1 meaning 0)
 * into n characters per group, the layout md5-crypt and sha-crypt use for their final digest.
 */
export function cryptEncode(bytes: Uint8Array, groups: readonly (readonly [number, number, number, number])[]): string {
  let output = "";
  for (const [i2, i1, i0, n] of groups) {
    let w = ((i2 < 0 ? 0 : bytes[i2]!) << 16) | ((i1 < 0 ? 0 : bytes[i1]!) << 8) | (i0 < 0 ? 0 : bytes[i0]!);
    for (let k = 0; k < n; k++) {
      output += ITOA64[w & 0x3f];
      w >>= 6;
    }
  }
  return output;
}

const B64_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/**
 * Decodes unpadded standard base64 (PHC strings), or null when it is not exactly that: only the alphabet,
 * no length that leaves a lone character, and the bits past the last whole byte zero (RFC 4648 §3.5), so
 * each byte string has one accepted spelling. Checked without re-encoding: every login parses a hash.
 */
export function decodeB64NoPad(text: string): Buffer | null {
  return b64NoPadLength(text) === null ? null : Buffer.from(text, "base64");
}

/**
 * The number of bytes unpadded standard base64 `text` decodes to, or null when it is not exactly that (the rules of
 * decodeB64NoPad), without decoding it: for a parser that only bounds the lengths (every login parses a hash).
 *
 * @example
 * b64NoPadLength("c2FsdA") // 4
 */
export function b64NoPadLength(text: string): number | null {
  if (!/^[A-Za-z0-9+/]*$/.test(text)) return null;
  const tail = text.length % 4;
  if (tail === 1) return null;
  // Two trailing characters carry one byte (4 spare bits), three carry two (2 spare bits).
  if (tail !== 0 && (B64_ALPHABET.indexOf(text[text.length - 1]!) & (tail === 2 ? 0x0f : 0x03)) !== 0) return null;
  return (text.length - tail) / 4 * 3 + (tail === 0 ? 0 : tail - 1);
}

export function encodeB64NoPad(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64").replace(/=+$/, "");
}

/** Decodes padded standard base64 (LDAP, Django), or null when it is not exactly that. */
export function decodeB64Padded(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) return null;
  const bytes = Buffer.from(text, "base64");
  return bytes.toString("base64") === text ? bytes : null;
}

/** passlib's "adapted base64": standard base64 with "." for "+", no padding. */
export function decodeAB64(text: string): Buffer | null {
  if (!/^[A-Za-z0-9./]*$/.test(text)) return null;
  return decodeB64NoPad(text.replaceAll(".", "+"));
}

/** Decodes lower- or upper-case hex of even length, or null. */
export function decodeHex(text: string): Buffer | null {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(text)) return null;
  return Buffer.from(text, "hex");
}
