// Which keys an exported checkpoint may be signed with. An export carries its signer's public key, but that
// key is only as trustworthy as the file: whoever can rewrite the file can sign with a key of their own. So
// the operator can pin keys (or their fingerprints), and every verification names the keys it relied on.
import { createPublicKey, hash } from "node:crypto";
import { verifyWithPublicKey } from "../crypto/keyring.ts";
import { fromBase64URL } from "../lib/encoding.ts";
import { InputError } from "../lib/errors.ts";
import { checkpointMessage } from "./chain.ts";
import type { Checkpoint } from "./verify.ts";

/**
 * `sha256:` and the hex SHA-256 of the key's SPKI DER bytes (given base64url, as in exports).
 *
 * @example
 * keyFingerprint(checkpoint.publicKey) // "sha256:3f2a…" (64 hex digits)
 */
export function keyFingerprint(publicKey: string): string {
  return `sha256:${hash("sha256", Buffer.from(publicKey, "base64url"), "hex")}`;
}

/** A key the operator trusts: an Ed25519 public key (SPKI DER, base64url), or the fingerprint of one. */
export type TrustedKey = { publicKey: string; fingerprint: string } | { publicKey: null; fingerprint: string };

/**
 * Parses a `--public-key` value: `sha256:` and 64 hex digits (a pin on the key a checkpoint carries), or the
 * base64url SPKI DER of an Ed25519 key (as in an export's `publicKey` field).
 */
export function parseTrustedKey(text: string): TrustedKey {
  const value = text.trim();
  if (/^sha256:/i.test(value)) {
    if (!/^sha256:[0-9a-f]{64}$/i.test(value)) throw new InputError("BULWARK_ERR_USAGE", `--public-key ${value.slice(0, 80)}: a fingerprint is "sha256:" and 64 hex digits`);
    return { publicKey: null, fingerprint: value.toLowerCase() };
  }
  try {
    const key = createPublicKey({ key: Buffer.from(value, "base64url"), format: "der", type: "spki" });
    if (key.asymmetricKeyType !== "ed25519") throw new Error(`an ${key.asymmetricKeyType} key`);
  } catch (cause) {
    throw new InputError("BULWARK_ERR_USAGE", `--public-key ${value.slice(0, 80)}: not an Ed25519 public key (base64url SPKI, as in an export's publicKey) nor a sha256: fingerprint`, { cause });
  }
  return { publicKey: value, fingerprint: keyFingerprint(value) };
}

export interface CheckpointKeyCheck {
  /** Verifies an exported checkpoint's signature with a trusted key (false when none verifies it). */
  verify(checkpoint: Checkpoint): boolean;
  /** Fingerprints of the keys that verified at least one checkpoint, and whether they were pinned. */
  used(): Array<{ fingerprint: string; pinned: boolean }>;
}

/**
 * Verifies exported checkpoints. With no trusted keys, a checkpoint's own `publicKey` is used (and reported
 * as unpinned, so the operator can compare its fingerprint); with trusted keys, only they are: a pinned key
 * directly, a pinned fingerprint through the checkpoint's `publicKey` when it matches.
 */
export function checkpointKeyCheck(trusted: TrustedKey[]): CheckpointKeyCheck {
  const used = new Map<string, boolean>();
  const pinnedKeys = trusted.filter((t) => t.publicKey !== null).map((t) => t.publicKey as string);
  const pinnedFingerprints = new Set(trusted.map((t) => t.fingerprint));
  return {
    verify(cp) {
      const message = checkpointMessage(cp.seq, cp.hash, cp.at);
      const signature = fromBase64URL(cp.signature);
      const candidates = trusted.length === 0
        ? (cp.publicKey ? [cp.publicKey] : [])
        : [...pinnedKeys, ...(cp.publicKey && pinnedFingerprints.has(keyFingerprint(cp.publicKey)) ? [cp.publicKey] : [])];
      for (const key of candidates) {
        if (verifyWithPublicKey(key, message, signature)) {
          used.set(keyFingerprint(key), trusted.length > 0);
          return true;
        }
      }
      return false;
    },
    used: () => [...used].map(([fingerprint, pinned]) => ({ fingerprint, pinned })),
  };
}
