// The keyring: a master key wraps data keys (AES-256-GCM envelope) and Ed25519 signing keys.
// Column values are sealed under the current data key and bound to their table, column and row, so a
// ciphertext copied to another row or column does not decrypt. Old keys keep decrypting after rotation.
import { createHmac, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { fromBase64URL, toBase64URL, utf8 } from "../lib/encoding.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import { open, seal } from "./aead.ts";
import { constantTimeEqualString } from "./constant-time.ts";
import { cryptoErrors } from "./errors.ts";
import type { Signer } from "./signer.ts";
import { base32 } from "./tokens.ts";

export type KeyPurpose = "data" | "signing";

/** A key as stored: its material is always wrapped under the master key. */
export interface StoredKey {
  id: string;
  purpose: KeyPurpose;
  status: "current" | "retired";
  createdAt: number;
  /** base64url(nonce ‖ sealed key material ‖ tag) under the master key. */
  wrapped: string;
  /** Signing keys only: SPKI DER, base64url. Public, so checkpoints can be verified without the master key. */
  publicKey: string | null;
}

/** Where the keyring keeps its keys. Implemented by the store layer for SQLite and PostgreSQL. */
export interface KeyStore {
  listKeys(): Promise<StoredKey[]>;
  /** Inserts `key` as current and marks every other key of the same purpose retired, atomically. */
  addCurrentKey(key: StoredKey): Promise<void>;
  getMeta(name: string): Promise<string | null>;
  setMeta(name: string, value: string): Promise<void>;
}

/** Associated data: where a ciphertext lives. Decryption fails anywhere else. */
export interface CipherContext {
  table: string;
  column: string;
  row: string;
}

const CIPHERTEXT_VERSION = "bwk1";
const MASTER_CHECK_LABEL = "bulwark master key check v1";
const MASTER_CHECK_META = "keyring.master_check";

/** The master key's public fingerprint: an HMAC of a constant, which reveals nothing about the key. */
export function masterKeyCheck(masterKey: Uint8Array): string {
  return createHmac("sha256", masterKey).update(MASTER_CHECK_LABEL).digest("hex");
}

/** A short id for messages ("master key 3f2a9c1d…"). */
export function masterKeyId(masterKey: Uint8Array): string {
  return masterKeyCheck(masterKey).slice(0, 16);
}

function wrapAAD(id: string, purpose: KeyPurpose): Uint8Array {
  return utf8(`bulwark-keyring-v1|${id}|${purpose}`);
}

function valueAAD(keyId: string, ctx: CipherContext): Uint8Array {
  // Length-prefix each part so "a|b" + "c" can never equal "a" + "b|c".
  const parts = [CIPHERTEXT_VERSION, keyId, ctx.table, ctx.column, ctx.row];
  return utf8(parts.map((p) => `${p.length}:${p}`).join("|"));
}

export interface KeyringOptions {
  masterKey: Uint8Array;
  store: KeyStore;
  clock: Clock;
  random: RandomSource;
}

export class Keyring {
  readonly #master: Uint8Array;
  readonly #store: KeyStore;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  #dataKeys = new Map<string, Uint8Array>();
  #currentData: string | null = null;
  #signingPrivate = new Map<string, KeyObject>();
  #signingPublic = new Map<string, KeyObject>();
  #currentSigning: string | null = null;

  private constructor(options: KeyringOptions) {
    this.#master = options.masterKey;
    this.#store = options.store;
    this.#clock = options.clock;
    this.#random = options.random;
  }

  /**
   * Opens the keyring: checks that the master key is the one the stored keys were wrapped with
   * (a clear error otherwise, never a silent new key), then unwraps every key.
   */
  static async open(options: KeyringOptions): Promise<Keyring> {
    if (options.masterKey.byteLength !== 32) {
      throw cryptoErrors.masterKeyInvalid(`the master key must be 32 bytes, got ${options.masterKey.byteLength}`);
    }
    const keyring = new Keyring(options);
    const stored = await options.store.listKeys();
    const check = await options.store.getMeta(MASTER_CHECK_META);
    const mine = masterKeyCheck(options.masterKey);
    if (check === null) {
      if (stored.length > 0) {
        throw cryptoErrors.masterKeyMismatch("the database holds keys but no master key check; refusing to guess which master key wrapped them");
      }
      await options.store.setMeta(MASTER_CHECK_META, mine);
    } else if (!constantTimeEqualString(check, mine)) {
      throw cryptoErrors.masterKeyMismatch(
        `the database's keys were wrapped by master key ${check.slice(0, 16)}, but the master key given is ${mine.slice(0, 16)}; ` +
          "set BULWARK_MASTER_KEY to the original key or restore the original master.key file",
      );
    }
    for (const key of stored) keyring.#load(key);
    return keyring;
  }

  #load(key: StoredKey): void {
    const material = open(this.#master, fromBase64URL(key.wrapped), wrapAAD(key.id, key.purpose));
    if (material === null) throw cryptoErrors.decryptFailed(`key ${key.id} does not unwrap under the master key (tampered key row?)`);
    if (key.purpose === "data") {
      this.#dataKeys.set(key.id, material);
      if (key.status === "current") this.#currentData = key.id;
    } else {
      const priv = createPrivateKey({ key: Buffer.from(material), format: "der", type: "pkcs8" });
      this.#signingPrivate.set(key.id, priv);
      this.#signingPublic.set(key.id, createPublicKey(priv));
      if (key.status === "current") this.#currentSigning = key.id;
    }
  }

  /** The master key's fingerprint, for messages and `bulwark status`. */
  get masterKeyId(): string {
    return masterKeyId(this.#master);
  }

  get currentDataKeyId(): string | null {
    return this.#currentData;
  }

  /** Creates whatever key is missing (a data key, a signing key); returns the ids created. */
  async ensureKeys(): Promise<Array<{ id: string; purpose: KeyPurpose }>> {
    const created: Array<{ id: string; purpose: KeyPurpose }> = [];
    if (this.#currentData === null) created.push({ id: await this.rotateDataKey(), purpose: "data" });
    if (this.#currentSigning === null) created.push({ id: await this.rotateSigningKey(), purpose: "signing" });
    return created;
  }

  /** Adds a new data key and makes it current. Old data keys still decrypt. */
  async rotateDataKey(): Promise<string> {
    const id = `dk_${base32(this.#random.bytes(10))}`;
    const material = this.#random.bytes(32);
    await this.#store.addCurrentKey(this.#wrap(id, "data", material, null));
    this.#dataKeys.set(id, material);
    this.#currentData = id;
    return id;
  }

  /** Adds a new Ed25519 signing key and makes it current. Old keys still verify. */
  async rotateSigningKey(): Promise<string> {
    const id = `sk_${base32(this.#random.bytes(10))}`;
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const der = new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }));
    const spki = toBase64URL(new Uint8Array(publicKey.export({ format: "der", type: "spki" })));
    await this.#store.addCurrentKey(this.#wrap(id, "signing", der, spki));
    this.#signingPrivate.set(id, privateKey);
    this.#signingPublic.set(id, publicKey);
    this.#currentSigning = id;
    return id;
  }

  #wrap(id: string, purpose: KeyPurpose, material: Uint8Array, publicKey: string | null): StoredKey {
    const wrapped = toBase64URL(seal(this.#master, material, wrapAAD(id, purpose), this.#random));
    return { id, purpose, status: "current", createdAt: this.#clock.now(), wrapped, publicKey };
  }

  /**
   * Encrypts a column value under the current data key, bound to where it is stored.
   *
   * @example
   * const ct = keyring.encrypt("JBSWY3DPEHPK3PXP", { table: "mfa_totp", column: "secret", row: userId });
   */
  encrypt(plaintext: Uint8Array | string, ctx: CipherContext): string {
    const keyId = this.#currentData;
    if (keyId === null) throw cryptoErrors.unknownKey("(no current data key)");
    const key = this.#dataKeys.get(keyId) as Uint8Array;
    const bytes = typeof plaintext === "string" ? utf8(plaintext) : plaintext;
    return `${CIPHERTEXT_VERSION}.${keyId}.${toBase64URL(seal(key, bytes, valueAAD(keyId, ctx), this.#random))}`;
  }

  /** Decrypts a value sealed by `encrypt` for exactly this table, column and row. */
  decrypt(ciphertext: string, ctx: CipherContext): Uint8Array {
    const parts = ciphertext.split(".");
    if (parts.length !== 3 || parts[0] !== CIPHERTEXT_VERSION) {
      throw cryptoErrors.malformedCiphertext(`ciphertext in ${ctx.table}.${ctx.column} is not in the ${CIPHERTEXT_VERSION} format`);
    }
    const [, keyId, body] = parts as [string, string, string];
    const key = this.#dataKeys.get(keyId);
    if (!key) throw cryptoErrors.unknownKey(keyId);
    const plain = open(key, fromBase64URL(body), valueAAD(keyId, ctx));
    if (plain === null) {
      throw cryptoErrors.decryptFailed(`value in ${ctx.table}.${ctx.column} for row ${ctx.row} does not decrypt (tampered, or copied from another row)`);
    }
    return plain;
  }

  decryptString(ciphertext: string, ctx: CipherContext): string {
    return Buffer.from(this.decrypt(ciphertext, ctx)).toString("utf8");
  }

  /** Key id a ciphertext was sealed with (for re-encryption jobs). */
  static keyIdOf(ciphertext: string): string | null {
    const parts = ciphertext.split(".");
    return parts.length === 3 && parts[0] === CIPHERTEXT_VERSION ? (parts[1] as string) : null;
  }

  /** Public keys of every signing key, for exports that must verify without the master key. */
  publicKeys(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [id, key] of this.#signingPublic) out[id] = toBase64URL(new Uint8Array(key.export({ format: "der", type: "spki" })));
    return out;
  }

  /** The Ed25519 signer over the current signing key. */
  async signer(): Promise<Signer> {
    const keyId = this.#currentSigning;
    if (keyId === null) throw cryptoErrors.unknownKey("(no current signing key)");
    const priv = this.#signingPrivate.get(keyId) as KeyObject;
    const publics = this.#signingPublic;
    return {
      keyId,
      sign: (data: Uint8Array): Uint8Array => new Uint8Array(sign(null, data, priv)),
      verify: (id: string, data: Uint8Array, signature: Uint8Array): boolean => {
        const pub = publics.get(id);
        if (!pub) return false;
        try {
          return verify(null, data, pub, signature);
        } catch {
          return false;
        }
      },
    };
  }
}

/** Verifies an Ed25519 signature against an exported public key (SPKI DER, base64url). */
export function verifyWithPublicKey(publicKey: string, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    const key = createPublicKey({ key: Buffer.from(publicKey, "base64url"), format: "der", type: "spki" });
    return verify(null, data, key, signature);
  } catch {
    return false;
  }
}
