// Random identifiers and secrets. User ids and other ids are random, never sequential (DESIGN.md:
// sequential ids reveal the user count, a Drupal 7 weakness noted in seed 003).
import { createHmac, hash, type KeyObject } from "node:crypto";
import { toBase64URL } from "../lib/encoding.ts";
import { systemRandom, type RandomSource } from "../lib/random.ts";

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";
/**
 * The same 32 characters in byte order, for ids that must sort as their bytes do: in RFC 4648's order the digits
 * 2–7 (values 26–31) sort before the letters (0–25), so an id whose time digit stepped from "z" to "2" sorted before
 * the ids of the ~200 ms before it (every 256 ms at the ninth character, for weeks at the higher ones).
 */
const SORTED32 = "234567abcdefghijklmnopqrstuvwxyz";

function encode32(bytes: Uint8Array, alphabet: string): string {
  let out = "";
  let bits = 0;
  let value = 0;
  for (const byte of bytes) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += alphabet[(value << (5 - bits)) & 31];
  return out;
}

/** Lower-case base32 without padding: safe in URLs, file names and case-insensitive contexts. */
export function base32(bytes: Uint8Array): string {
  return encode32(bytes, BASE32);
}

/**
 * A random identifier with a type prefix: 128 random bits, e.g. `usr_3k2...`.
 *
 * @example
 * newId("evt") // "evt_q5d7...": 26 base32 characters after the prefix
 */
export function newId(prefix: string, random: RandomSource = systemRandom): string {
  return `${prefix}_${base32(random.bytes(16))}`;
}

/**
 * A time-ordered identifier: 48 bits of milliseconds then 80 random bits, in base32's characters put in byte order
 * (SORTED32; the same character set and length as newId's, so the same shape). Ids made later sort later, byte for
 * byte (as SQLite and PostgreSQL's C collation compare them), so an index on them grows at its end instead of
 * splitting random pages — the audit log's and the outbox's append rates depend on it. Not for secrets: the time part
 * is public.
 */
export function newOrderedId(prefix: string, now: number, random: RandomSource = systemRandom): string {
  const bytes = new Uint8Array(16);
  let t = Math.max(0, Math.floor(now));
  for (let i = 5; i >= 0; i--) {
    bytes[i] = t % 256;
    t = Math.floor(t / 256);
  }
  bytes.set(random.bytes(10), 6);
  return `${prefix}_${encode32(bytes, SORTED32)}`;
}

/** A random secret of `bytes` bytes (default 32 = 256 bits), base64url-encoded. */
export function newSecret(bytes: number = 32, random: RandomSource = systemRandom): string {
  return toBase64URL(random.bytes(bytes));
}

/** SHA-256 of a secret, hex. For high-entropy secrets (tokens), a fast hash is the right tool. */
export function hashSecret(secret: string): string {
  return hash("sha256", secret, "hex");
}

/**
 * A short fingerprint of a high-entropy secret for logs (a token, a session id): correlates without revealing it.
 * Not for text a person typed, which a word list reverses: use keyedFingerprint (Keyring.identifierTag) for that.
 */
export function fingerprint(secret: string): string {
  return hashSecret(secret).slice(0, 12);
}

/**
 * A short keyed fingerprint (HMAC-SHA256 under `key`, 64 bits shown) of text a person typed: attempts naming the
 * same text correlate, but without the key no word list tells what the text was (a password typed into the login
 * name field, ASVS 16.2.5). Give a key used often as a KeyObject (createSecretKey): node:crypto turns raw bytes into
 * one on every call, which cost more than the HMAC itself (~15 µs against ~2 µs for a short text on Node 24).
 */
export function keyedFingerprint(key: Uint8Array | KeyObject, text: string): string {
  return keyedDigest(key, text).slice(0, 16);
}

/**
 * HMAC-SHA256 of `text` under `key`, all 64 hex characters: for keys stored and looked up (flood-control rows,
 * Keyring.floodKey), where a truncated tag would let unrelated texts share a row. Give a key used often as a KeyObject.
 */
export function keyedDigest(key: Uint8Array | KeyObject, text: string): string {
  return createHmac("sha256", key).update(text, "utf8").digest("hex");
}
