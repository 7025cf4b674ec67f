// Synchronizer tokens, Drupal's drupal_get_token idea with a modern key: HMAC-SHA256 over the action id
// under a key derived (HKDF-SHA256) from the session secret. A token is useless in another session and for
// another action. Each token carries a fresh random nonce, so tokens differ on every page and a compressed
// response cannot be used to recover a fixed token byte by byte (BREACH).
import { createHmac, hkdfSync } from "node:crypto";
import { constantTimeEqual } from "../../crypto/constant-time.ts";
import { fromBase64URL, toBase64URL } from "../../lib/encoding.ts";
import { systemRandom, type RandomSource } from "../../lib/random.ts";
import { csrfErrors } from "./errors.ts";

/** The action id for header-based use by the single-page console: one token for every API call. */
export const API_ACTION = "api";

const NONCE_BYTES = 16;
const MAC_BYTES = 32;
/** nonce ‖ mac as unpadded base64url: exactly 64 characters. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{64}$/;
const MAX_ACTION_LENGTH = 200;
// Domain separation: the derived key serves CSRF only, never anything else derived from the same secret.
const HKDF_SALT = Buffer.from("bulwark/csrf", "utf8");
const HKDF_INFO = Buffer.from("csrf-token-v1", "utf8");

function checkAction(action: string): void {
  if (typeof action !== "string" || action.length === 0) throw csrfErrors.badAction("must be a non-empty string");
  if (action.length > MAX_ACTION_LENGTH) throw csrfErrors.badAction(`must be at most ${MAX_ACTION_LENGTH} characters`);
}

function deriveKey(sessionSecret: string): Buffer {
  if (typeof sessionSecret !== "string" || sessionSecret.length === 0) throw csrfErrors.noSecret();
  return Buffer.from(hkdfSync("sha256", Buffer.from(sessionSecret, "utf8"), HKDF_SALT, HKDF_INFO, 32));
}

function mac(key: Buffer, nonce: Uint8Array, action: string): Buffer {
  // Length-prefixing the nonce keeps (nonce, action) pairs unambiguous.
  return createHmac("sha256", key).update(Buffer.from([NONCE_BYTES])).update(nonce).update(action, "utf8").digest();
}

/**
 * A token for one action of one session, to put in a form's `_csrf` field or the `x-csrf-token` header.
 *
 * @example
 * const token = csrfToken(session.secret, "password.change"); // 64 base64url characters
 */
export function csrfToken(sessionSecret: string, action: string, random: RandomSource = systemRandom): string {
  checkAction(action);
  const key = deriveKey(sessionSecret);
  const nonce = random.bytes(NONCE_BYTES);
  const out = new Uint8Array(NONCE_BYTES + MAC_BYTES);
  out.set(nonce, 0);
  out.set(mac(key, nonce, action), NONCE_BYTES);
  return toBase64URL(out);
}

/**
 * True when `token` was issued by csrfToken for this session secret and this action. Junk of any kind is
 * false, never an exception; the MAC comparison is constant-time.
 *
 * @example
 * if (!verifyCSRF(session.secret, "password.change", request.body._csrf)) throw csrfErrors.refused("bad CSRF token");
 */
export function verifyCSRF(sessionSecret: string, action: string, token: unknown): boolean {
  checkAction(action);
  const key = deriveKey(sessionSecret);
  if (typeof token !== "string" || !TOKEN_PATTERN.test(token)) return false;
  const bytes = fromBase64URL(token);
  if (bytes.length !== NONCE_BYTES + MAC_BYTES) return false;
  const expected = mac(key, bytes.subarray(0, NONCE_BYTES), action);
  return constantTimeEqual(bytes.subarray(NONCE_BYTES), expected);
}
