// The keyring: a master key wraps data keys (AES-256-GCM envelope) and Ed25519 signing keys.
// Column values are sealed under the current data key and bound to their table, column and row, so a
// ciphertext copied to another row or column does not decrypt. Old keys keep decrypting after rotation.
// Several processes (the server, the CLI, other nodes) share one key table: each keyring reloads it when it
// meets a key id it does not know, and checks before sealing, at most once per KEY_FRESHNESS_MS, that its
// current key is still the current one.
import { createHmac, createPrivateKey, createSecretKey, createPublicKey, generateKeyPairSync, hkdfSync, sign, verify, type KeyObject } from "node:crypto";
import { fromBase64URL, toBase64URL, utf8 } from "../lib/encoding.ts";
import type { Clock } from "../lib/clock.ts";
import type { RandomSource } from "../lib/random.ts";
import { open, seal } from "./aead.ts";
import { constantTimeEqualString } from "./constant-time.ts";
import { cryptoErrors, KeyringError } from "./errors.ts";
import type { Signer, SigningKeyTimes } from "./signer.ts";
import { base32, keyedDigest, keyedFingerprint } from "./tokens.ts";

/**
 * What a stored key is for. "identifier-tag": the key of identifierTag, stored by the first master key rotation (it was
 * derived from the master key until then, and the tags already in the audit log, the known-device cookies and the
 * flood-control rows, made under it or under its subkeys, must not change).
 */
export type KeyPurpose = "data" | "signing" | "identifier-tag";

/** The purposes of keys the keyring holds and rotates; the tag key is read once, at open. */
type HeldPurpose = "data" | "signing";

/** The purpose of the stored identifier tag key (see KeyPurpose). */
export const TAG_KEY_PURPOSE = "identifier-tag";

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
  /**
   * New keys only, never stored: the check (masterKeyCheck) of the master key that wrapped it. The store compares it
   * with the recorded check in the transaction that adds the key, so a process still holding a master key rotated
   * away meanwhile cannot add a key only it can unwrap.
   */
  wrappedBy?: string;
}

/** Where the keyring keeps its keys. Implemented by the store layer for SQLite and PostgreSQL. */
export interface KeyStore {
  listKeys(): Promise<StoredKey[]>;
  /** Inserts `key` as current and marks every other key of the same purpose retired, atomically. */
  addCurrentKey(key: StoredKey): Promise<void>;
  /**
   * Inserts `key` as current only if no key of its purpose is stored yet, atomically; false when one is (another
   * process made the store's first key meanwhile). Absent: ensureKeys adds with addCurrentKey.
   */
  addFirstKey?(key: StoredKey): Promise<boolean>;
  getMeta(name: string): Promise<string | null>;
  /** Stores `value` under `name` unless a value is already there, and returns the stored one: first writer wins. */
  claimMeta(name: string, value: string): Promise<string>;
}

/** Associated data: where a ciphertext lives. Decryption fails anywhere else. */
export interface CipherContext {
  table: string;
  column: string;
  row: string;
}

const CIPHERTEXT_VERSION = "bwk1";
const MASTER_CHECK_LABEL = "bulwark master key check v1";
/** The bulwark_meta row holding the check of the master key every stored key is wrapped under. */
export const MASTER_CHECK_META = "keyring.master_check";
/** The HKDF label the identifier tag key was derived with from the master key (before any master key rotation). */
const TAG_KEY_LABEL = "bulwark identifier tag v1";
/**
 * The HKDF labels of the subkeys derived from the identifier tag key, one per use. identifierTag writes into the audit
 * log the tag of any text anyone types (a login name, an address asked a reset for): under the same key as the
 * known-device cookie, a reader of the log typed `known-device:<device id>:<user id>:<time>` and read back a cookie tag
 * (ASVS 6.3.5). Under a key of its own no text typed anywhere yields one. Flood-control rows are keyed apart too:
 * they hold the full HMAC (the row key), not 64 bits of it.
 */
const DEVICE_TAG_LABEL = "bulwark known-device tag v2";
const FLOOD_KEY_LABEL = "bulwark flood keys v1";

/**
 * How long a keyring seals under its current data key without asking the store whether another process has
 * made a newer one current. It bounds the time a value sealed elsewhere lands under a just-retired key (it
 * still decrypts, see rotate-keys), at a cost of one small read of the key table per second per process.
 */
export const KEY_FRESHNESS_MS = 1000;

/**
 * How far past this process's clock a new key's creation time may be pushed by `notBefore` (prepareSigningKey): enough
 * for nodes whose clocks differ, not enough for a time planted in the database to date a retirement years ahead.
 */
export const NOT_BEFORE_AHEAD_MS = 60 * 60_000;

// The shape of a data key id: anything else is not looked up in the store (a forged cursor costs no read).
const DATA_KEY_ID = /^dk_[a-z2-7]{16}$/;

/** The master key's public fingerprint: an HMAC of a constant, which reveals nothing about the key. */
export function masterKeyCheck(masterKey: Uint8Array): string {
  return createHmac("sha256", masterKey).update(MASTER_CHECK_LABEL).digest("hex");
}

/** A short id for messages ("master key 3f2a9c1d…"). */
export function masterKeyId(masterKey: Uint8Array): string {
  return masterKeyCheck(masterKey).slice(0, 16);
}

/**
 * What a wrapped key is bound to. Since v2 its creation time too: the newest key of a purpose is the current one,
 * and a row's `status` or `created_at` edited in the database cannot make a retired key current again (someone
 * who can write the database, holding the old key, would have every new secret sealed under it). Rows wrapped
 * before (v1) bind id and purpose only.
 */
function wrapAAD(id: string, purpose: KeyPurpose, createdAt?: number | null): Uint8Array {
  return utf8(createdAt === undefined || createdAt === null ? `bulwark-keyring-v1|${id}|${purpose}` : `bulwark-keyring-v2|${id}|${purpose}|${createdAt}`);
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
  /**
   * Hears of a key row edited in the database after this process unwrapped the key: its `created_at` or `purpose`
   * no longer what the wrap binds. The bound values are used and the row's claim ignored; the caller logs it (once
   * per claim), since only someone who can write the database, not Bulwark, changes a key row.
   */
  onTamperedKey?: (event: TamperedKey) => void;
  /**
   * Where to look for the master key the store records when it is not `masterKey`: after `bulwark keys rotate-master`
   * the key file holds the new key (or, after a crash between the commit and the rename, the pending file does). Given
   * the recorded check, returns a key or null; the keyring uses it only if its check is the recorded one. Asked at open
   * on a mismatch, and by a running process that meets a key it cannot unwrap while the recorded check has changed.
   * Absent (a key from the environment): such a process fails with BULWARK_ERR_MASTER_KEY_ROTATED.
   */
  findMasterKey?: (recordedCheck: string) => Uint8Array | null;
  /**
   * Hears when a running process's master key in force changes under it (#checkMaster): it followed a rotation the
   * store records ("followed"), it cannot follow one and knows no browser until restarted ("orphaned"), or the store
   * records its own key again and its device key is back ("restored"). The caller logs it: an operator should learn
   * that every sign-in is now a new browser's, and a database writer's edited check is seen.
   */
  onMasterKeyChange?: (event: MasterKeyChange) => void;
}

/** A change of the master key in force in a running process (KeyringOptions.onMasterKeyChange). */
export interface MasterKeyChange {
  state: "followed" | "orphaned" | "restored";
  /** The fingerprint (masterKeyId) of the key held now. */
  masterKeyId: string;
  message: string;
}

/** A key row whose `created_at` or `purpose` differs from what its wrap binds (KeyringOptions.onTamperedKey). */
export interface TamperedKey {
  keyId: string;
  field: "created_at" | "purpose" | "row";
  /** What the row says now. */
  stored: string;
  /** What the wrap binds, and what the keyring goes by. */
  bound: string;
  message: string;
}

export interface ReloadOptions {
  /**
   * Where to read the keys instead of the keyring's own store: a view of the caller's transaction. On SQLite
   * a process has one connection, so a read through the keyring's store inside a transaction waits for that
   * transaction to end — for ever.
   */
  store?: KeyStore;
}

/** The material of a stored key unwrapped, and the creation time its wrap binds (null: a v1 wrap, which binds none). */
interface Unwrapped {
  material: Uint8Array;
  createdAt: number | null;
}

/** What Keyring.prepareMasterRotation makes: every stored key wrapped again under the new master key, nothing stored. */
export interface MasterRotation {
  /** Each stored key's row as read (`from`) and its new wrap (`to`), for a compare-and-set update. */
  rewrapped: Array<{ id: string; purpose: KeyPurpose; from: string; to: string }>;
  /** The identifier tag key to store (wrapped under the new master), when the store holds none yet; else null. */
  tagKey: StoredKey | null;
  /** The checks of the master key in force and of the new one (masterKeyCheck). */
  fromCheck: string;
  toCheck: string;
  readonly [NEW_MASTER]: Uint8Array;
}

const NEW_MASTER = Symbol("new master key");

export class Keyring {
  /** Replaced only by a master key rotation (adoptMaster, or one found through findMasterKey). */
  #master: Uint8Array;
  /**
   * This process's own master key rotation while its transaction is open (beginMasterRotation, until adoptMaster or
   * abandonMasterRotation): the new key's check and the key. A read through that transaction sees the new check and
   * the keys wrapped under it before anything is committed; it takes the new key from here, never from the key files.
   */
  #rotating: { toCheck: string; master: Uint8Array } | null = null;
  /**
   * The key of identifierTag: the stored one (purpose "identifier-tag") when a master key rotation stored it, else
   * derived from the master key (HKDF-SHA256 with its own label): the same on every node, and across rotations.
   * A KeyObject: the login path tags twice per attempt, and raw bytes would be converted on every call (keyedFingerprint).
   */
  readonly #tagKey: KeyObject;
  /**
   * The known-device cookie's key (deviceKeyOf): derived from the master key in force, so the same on every node and
   * replaced by a master key rotation — a copied master key must not keep forging cookies the live service trusts.
   */
  #deviceKey: KeyObject;
  /** True while the store records a master key this process cannot have (#checkMaster): the device key is a random one. */
  #deviceKeyOrphaned = false;
  readonly #onMasterKeyChange: ((event: MasterKeyChange) => void) | null;
  /**
   * A subkey of the tag key (HKDF-SHA256, FLOOD_KEY_LABEL), derived once here: like the tag key it is the same on every
   * node and across master key rotations (which re-wrap the tag key, never change it), so a flood window or a
   * 100-failure stop outlives a rotation.
   */
  readonly #floodKey: KeyObject;
  readonly #findMasterKey: ((recordedCheck: string) => Uint8Array | null) | null;
  readonly #store: KeyStore;
  readonly #clock: Clock;
  readonly #random: RandomSource;
  readonly #onTamperedKey: ((event: TamperedKey) => void) | null;
  // Data keys as KeyObjects, made once per key (aead.ts seal: raw bytes cost a conversion on every value sealed).
  #dataKeys = new Map<string, KeyObject>();
  /** Each held key's creation time where its wrap binds it (v2), else null (v1). The row's value is never used after the unwrap. */
  #createdAt = new Map<string, number | null>();
  /** The read (or local rotation) number at which each held key was added: a read that began before it cannot list it. */
  #addedAt = new Map<string, number>();
  /** The last edited claim reported per key id (onTamperedKey), so a tampered row is reported once, not on every reload. */
  #reported = new Map<string, string>();
  #currentData: string | null = null;
  #signingPrivate = new Map<string, KeyObject>();
  #signingPublic = new Map<string, KeyObject>();
  #currentSigning: string | null = null;
  /** Clock time of the last read of the store, for KEY_FRESHNESS_MS. */
  #checkedAt: number;
  /** The shared reload of the keyring's own store in flight, if any. */
  #reloading: Promise<void> | null = null;
  // Each read of the store and each local rotation takes the next number; a read's current keys are applied
  // only if nothing newer was, so a read that started before a rotation here cannot undo it.
  #sequence = 0;
  #appliedSequence = 0;

  private constructor(options: KeyringOptions, master: Uint8Array, tagKey: Uint8Array) {
    this.#master = master;
    this.#tagKey = createSecretKey(tagKey);
    this.#deviceKey = deviceKeyOf(master);
    this.#floodKey = createSecretKey(subkeyOf(tagKey, FLOOD_KEY_LABEL));
    this.#findMasterKey = options.findMasterKey ?? null;
    this.#store = options.store;
    this.#clock = options.clock;
    this.#random = options.random;
    this.#onTamperedKey = options.onTamperedKey ?? null;
    this.#onMasterKeyChange = options.onMasterKeyChange ?? null;
    this.#checkedAt = options.clock.now();
  }

  /**
   * Opens the keyring: checks that the master key is the one the stored keys were wrapped with
   * (a clear error otherwise, never a silent new key), then unwraps every key.
   */
  static async open(options: KeyringOptions): Promise<Keyring> {
    if (options.masterKey.byteLength !== 32) {
      throw cryptoErrors.masterKeyInvalid(`the master key must be 32 bytes, got ${options.masterKey.byteLength}`);
    }
    const stored = await options.store.listKeys();
    const check = await options.store.getMeta(MASTER_CHECK_META);
    let master = options.masterKey;
    const mine = masterKeyCheck(master);
    if (check === null) {
      if (stored.length > 0) {
        throw cryptoErrors.masterKeyMismatch("the database holds keys but no master key check; refusing to guess which master key wrapped them");
      }
    }
    // Claimed, never overwritten: two first opens with different master keys (two nodes initialising one database)
    // both saw no check; the one that stored second used to replace the first's check while the first went on to
    // wrap keys under its own key, leaving a database neither key opened. Now the later one is refused here.
    const recorded = check ?? (await options.store.claimMeta(MASTER_CHECK_META, mine));
    if (!constantTimeEqualString(recorded, mine)) {
      // A rotation may have committed while the key file still held the old key (a crash before the rename): the
      // pending key counts, but only if it is the one the store records.
      const found = options.findMasterKey?.(recorded) ?? null;
      if (found === null || found.byteLength !== 32 || !constantTimeEqualString(masterKeyCheck(found), recorded)) {
        throw cryptoErrors.masterKeyMismatch(
          `the database's keys were wrapped by master key ${recorded.slice(0, 16)}, but the master key given is ${mine.slice(0, 16)}; ` +
            "set BULWARK_MASTER_KEY to the key in force (the new one, if `bulwark keys rotate-master` ran) or restore that master.key file",
        );
      }
      master = found;
    }
    const keyring = new Keyring(options, master, tagKeyOf(stored, master));
    keyring.#apply(stored, ++keyring.#sequence);
    return keyring;
  }

  /** The purpose a held key was unwrapped (so bound) with, or null for a key not held. */
  #purposeOf(id: string): HeldPurpose | null {
    return this.#dataKeys.has(id) ? "data" : this.#signingPrivate.has(id) ? "signing" : null;
  }

  /**
   * Adds a stored key's material. A key already held is not unwrapped again, so its row is compared with what the
   * wrap bound instead: a `created_at` or `purpose` edited since is reported and ignored (the bound values are the
   * ones #apply goes by), never taken.
   */
  #unwrap(key: StoredKey): void {
    const held = this.#purposeOf(key.id);
    if (held !== null) return this.#checkHeld(key, held);
    const { material, createdAt } = this.#unwrapStored(key);
    this.#createdAt.set(key.id, createdAt);
    if (key.purpose === "data") {
      this.#dataKeys.set(key.id, createSecretKey(material));
    } else {
      const priv = createPrivateKey({ key: Buffer.from(material), format: "der", type: "pkcs8" });
      this.#signingPrivate.set(key.id, priv);
      this.#signingPublic.set(key.id, createPublicKey(priv));
    }
  }

  /**
   * unwrapUnder the master key held; while this process's own rotation is open (#rotating), a row read through its
   * transaction is wrapped under the new key already, so that key (in memory) is tried too. No other process has it.
   */
  #unwrapStored(key: StoredKey): Unwrapped {
    try {
      return unwrapUnder(this.#master, key);
    } catch (error) {
      if (this.#rotating === null) throw error;
      return unwrapUnder(this.#rotating.master, key);
    }
  }

  /** Reports (onTamperedKey, once) a key this process holds whose row is gone from the table; changes nothing. */
  #reportMissing(id: string): void {
    if (this.#reported.get(id) === MISSING_CLAIM) return;
    this.#reported.set(id, MISSING_CLAIM);
    this.#onTamperedKey?.({
      keyId: id, field: "row", stored: "missing", bound: "held",
      message: `key ${id}, which this process holds, is missing from the key table: its row was deleted in the database (to make an older, ` +
        "perhaps leaked, key current again?); this process goes on using the newest key it holds; find out who can write the database",
    });
  }

  /** Reports (onTamperedKey, once per claim) a held key's row whose purpose or bound creation time was edited; changes nothing. */
  #checkHeld(key: StoredKey, purpose: HeldPurpose): void {
    const bound = this.#createdAt.get(key.id) ?? null;
    let field: TamperedKey["field"];
    let stored: string;
    let was: string;
    if (key.purpose !== purpose) [field, stored, was] = ["purpose", String(key.purpose).slice(0, 40), purpose]; // any text a writer chose: bounded
    else if (bound !== null && key.createdAt !== bound) [field, stored, was] = ["created_at", String(key.createdAt), String(bound)];
    else return;
    const claim = `${field}=${stored}`;
    if (this.#reported.get(key.id) === claim) return;
    this.#reported.set(key.id, claim);
    this.#onTamperedKey?.({
      keyId: key.id, field, stored, bound: was,
      message: `key ${key.id}'s row now says ${field} ${JSON.stringify(stored)}, but its wrap binds ${was}: the key table was edited in ` +
        "the database (a retired key made to look current?); the bound value is used and the row ignored; find out who can write the database",
    });
  }

  /**
   * Reads the key table again: adds the keys another process created, and takes the current keys from it.
   * Keys are never dropped, so everything sealed under a retired key keeps decrypting. Concurrent calls
   * share one read of the keyring's own store.
   *
   * @example
   * await keyring.reload({ store: createKeyStore(transactionView) }); // inside a transaction
   */
  async reload(options: ReloadOptions = {}): Promise<void> {
    if (options.store) return this.#read(options.store);
    this.#reloading ??= this.#read(this.#store).finally(() => {
      this.#reloading = null;
    });
    return this.#reloading;
  }

  async #read(store: KeyStore): Promise<void> {
    const sequence = ++this.#sequence;
    const master = this.#master;
    const stored = await store.listKeys();
    await this.#checkMaster(store);
    try {
      this.#apply(stored, sequence);
    } catch (error) {
      // A key that does not unwrap: tampered, or wrapped under a master key rotated in since this process opened.
      if (!(error instanceof KeyringError) || error.code !== "BULWARK_ERR_DECRYPT") throw error;
      if (this.#master === master && !(await this.#followMaster(store))) throw error;
      // A master key followed since the list was read (by this read, or by one beside it): a rotation may have
      // committed in between, so the list can hold keys wrapped under the key before. The list is read again.
      this.#apply(await store.listKeys(), sequence);
    }
  }

  /**
   * After another process rotated the master key: takes the new one from findMasterKey (the key file) and returns true;
   * false when the store still records this process's key (the failure is something else), or the key of this
   * process's own rotation, read through its transaction before the COMMIT (#rotating); throws
   * BULWARK_ERR_MASTER_KEY_ROTATED when it changed and the new key cannot be had (a key from the environment). The
   * keys held stay as they are: a master key rotation wraps the same data and signing keys again, never changes them.
   */
  async #followMaster(store: KeyStore): Promise<boolean> {
    const recorded = await store.getMeta(MASTER_CHECK_META);
    const mine = masterKeyCheck(this.#master);
    if (recorded === null || constantTimeEqualString(recorded, mine)) return false;
    // This process's own rotation, seen through its uncommitted transaction (its audit event fetching the signer):
    // nothing to follow, and the key files are not asked. findMasterKey would move the pending file over master.key
    // before the COMMIT, and a COMMIT that then failed (a full disk) would leave the store's key in no file at all.
    if (this.#rotating !== null && constantTimeEqualString(recorded, this.#rotating.toCheck)) return false;
    const found = this.#findMasterKey?.(recorded) ?? null;
    if (found === null || found.byteLength !== 32 || !constantTimeEqualString(masterKeyCheck(found), recorded)) {
      throw cryptoErrors.masterKeyRotated(
        `the master key was rotated to ${recorded.slice(0, 16)} while this process held ${mine.slice(0, 16)}: it cannot unwrap keys made since; ` +
          "restart it with the new key (the data dir's master.key, or the BULWARK_MASTER_KEY that `bulwark keys rotate-master` printed)",
      );
    }
    this.#master = found;
    this.#deviceKey = deviceKeyOf(found);
    this.#deviceKeyOrphaned = false;
    this.#told("followed", `followed the master key rotation the store records: now ${this.masterKeyId}; every browser counts as new once`);
    return true;
  }

  /**
   * Follows a master key another process rotated as soon as the store records it (#followMaster), not only when a key
   * made since fails to unwrap: a rotation wraps the keys held here again without changing them, so nothing else tells
   * of it, while the device key (deviceKeyOf) does change — a server still deriving it from the old master took cookies
   * the copied key forges, and the attacker's own browser from before the response, as known. A process that cannot
   * have the new key (BULWARK_MASTER_KEY) keeps the keys it holds and still fails on the first key made since, as
   * before; meanwhile it knows no browser: its device key is a random one of its own, so every sign-in is a new
   * browser's and told to its owner. Decided afresh at every read, never a one-way switch: once the store records the
   * key held again (a forged check put back, a rotation rolled back) the device key is that key's again, and a process
   * that followed a rotation (its key file copied over) is judged by the new key from then on.
   */
  async #checkMaster(store: KeyStore): Promise<void> {
    try {
      if (await this.#followMaster(store)) return;
    } catch (error) {
      if (!(error instanceof KeyringError) || error.code !== "BULWARK_ERR_MASTER_KEY_ROTATED") throw error;
      if (this.#deviceKeyOrphaned) return;
      this.#deviceKeyOrphaned = true;
      this.#deviceKey = deviceKeyOf(this.#random.bytes(32));
      return this.#told("orphaned", `${error.message}; until then no browser is known: every sign-in is a new browser's, told to its owner`);
    }
    if (!this.#deviceKeyOrphaned) return;
    this.#deviceKeyOrphaned = false;
    this.#deviceKey = deviceKeyOf(this.#master);
    this.#told("restored", `the store records this process's master key ${this.masterKeyId} again (a rotation rolled back, or its check edited and put back): browsers known under it are known again`);
  }

  #told(state: MasterKeyChange["state"], message: string): void {
    this.#onMasterKeyChange?.({ state, masterKeyId: this.masterKeyId, message });
  }

  /** Takes the key table as read by read number `sequence`: every key's material, and the current keys unless a later read already applied. */
  #apply(stored: StoredKey[], sequence: number): void {
    // The current key of a purpose is the newest by the creation time its wrap binds (v2), the greater id among
    // equals (bound too, and the store's order): never by what the row says (a held key's row may have been edited
    // since its unwrap, #checkHeld) nor by the status column. Only a purpose with v1 rows alone goes by status;
    // two nodes rotating at once on PostgreSQL can each leave one marked current: the last in the store's order
    // (created_at, id) wins, so every process picks the same one.
    let data: string | null = null;
    let signing: string | null = null;
    const newest: Record<HeldPurpose, { id: string; createdAt: number } | null> = { data: null, signing: null };
    for (const key of stored) {
      // The tag key is read once, at open (tagKeyOf), and never changes; a held key's row edited to say so is still checked.
      if (key.purpose === TAG_KEY_PURPOSE && this.#purposeOf(key.id) === null) continue;
      this.#unwrap(key);
      if (!this.#addedAt.has(key.id)) this.#addedAt.set(key.id, sequence);
      // Listed again (restored): a later deletion is a new act, reported anew.
      if (this.#reported.get(key.id) === MISSING_CLAIM) this.#reported.delete(key.id);
      const purpose = this.#purposeOf(key.id) as HeldPurpose; // as unwrapped, so bound
      if (key.status === "current") {
        if (purpose === "data") data = key.id;
        else signing = key.id;
      }
    }
    // Over every key held, not only the rows read: a row deleted from the table (the new signing key's, to roll a node
    // back to a leaked one) does not make an older key current again here; it is reported.
    const listed = new Set(stored.map((k) => k.id));
    for (const [id, createdAt] of this.#createdAt) {
      // Missing only if held when this read began: one that began before a rotation here committed cannot list its key.
      if (!listed.has(id) && (this.#addedAt.get(id) ?? 0) < sequence) this.#reportMissing(id);
      if (createdAt === null) continue;
      const purpose = this.#purposeOf(id) as HeldPurpose;
      const best = newest[purpose];
      if (best === null || createdAt > best.createdAt || (createdAt === best.createdAt && id > best.id)) newest[purpose] = { id, createdAt };
    }
    data = newest.data?.id ?? data;
    signing = newest.signing?.id ?? signing;
    this.#checkedAt = this.#clock.now();
    if (sequence < this.#appliedSequence) return;
    this.#appliedSequence = sequence;
    if (data !== null) this.#currentData = data;
    if (signing !== null) this.#currentSigning = signing;
  }

  /** True when the current keys were last checked against the store KEY_FRESHNESS_MS ago or more. */
  #stale(): boolean {
    const age = this.#clock.now() - this.#checkedAt;
    return age >= KEY_FRESHNESS_MS || age < 0; // a clock set back counts as stale
  }

  /**
   * Reads the key table again when it was last read KEY_FRESHNESS_MS ago or more (as `seal` and `signer` do first), so
   * that the synchronous methods after it use the keys in force: a master key rotated by another process is followed
   * here (#followMaster), and with it the device key (deviceKeyOf). The login awaits it before it reads a known-device
   * cookie: after a rotation an idle server's first sign-in would otherwise check the cookie under the old key.
   */
  async fresh(): Promise<void> {
    if (this.#stale()) await this.reload();
  }

  /** For the synchronous methods, which cannot wait: starts a shared reload; its failure waits for the next. */
  #reloadSoon(): void {
    this.reload().catch(() => {});
  }

  /** The master key's fingerprint, for messages and `bulwark status`. */
  get masterKeyId(): string {
    return masterKeyId(this.#master);
  }

  /** The check (masterKeyCheck) of the master key held: public, like the one the store records, which it must equal. */
  get masterCheck(): string {
    return masterKeyCheck(this.#master);
  }

  get currentDataKeyId(): string | null {
    return this.#currentData;
  }

  /** Creates whatever key is missing (a data key, a signing key); returns the ids created. */
  async ensureKeys(): Promise<Array<{ id: string; purpose: KeyPurpose }>> {
    await this.reload(); // another process may have created them since this keyring was opened
    const created: Array<{ id: string; purpose: KeyPurpose }> = [];
    if (this.#currentData === null) {
      const material = this.#random.bytes(32);
      const key = await this.#wrap(`dk_${base32(this.#random.bytes(10))}`, "data", material, null);
      if (await this.#addFirst(key)) {
        this.#adoptDataKey(key, material);
        created.push({ id: key.id, purpose: "data" });
      }
    }
    if (this.#currentSigning === null) {
      const pending = await this.prepareSigningKey();
      if (await this.#addFirst(pending.key)) {
        this.adoptSigningKey(pending);
        created.push({ id: pending.key.id, purpose: "signing" });
      }
    }
    return created;
  }

  /**
   * Stores `key` as its purpose's first key, unless another process stored one meanwhile (processes starting `init`
   * on one fresh store at once): then that one is read and used, and false returned. One first key per purpose, not
   * one per process: a signing key each would leave checkpoints by keys retired at once, which no later one may follow.
   */
  async #addFirst(key: StoredKey): Promise<boolean> {
    if (!this.#store.addFirstKey) {
      await this.#store.addCurrentKey(key);
      return true;
    }
    if (await this.#store.addFirstKey(key)) return true;
    await this.#read(this.#store);
    return false;
  }

  #adoptDataKey(key: StoredKey, material: Uint8Array): void {
    this.#dataKeys.set(key.id, createSecretKey(material));
    this.#createdAt.set(key.id, key.createdAt);
    this.#currentData = key.id;
    this.#appliedSequence = ++this.#sequence;
    this.#addedAt.set(key.id, this.#sequence);
  }

  /** Adds a new data key and makes it current. Old data keys still decrypt. */
  async rotateDataKey(): Promise<string> {
    const id = `dk_${base32(this.#random.bytes(10))}`;
    const material = this.#random.bytes(32);
    const key = await this.#wrap(id, "data", material, null);
    await this.#store.addCurrentKey(key);
    this.#adoptDataKey(key, material);
    return id;
  }

  /**
   * Adds a new Ed25519 signing key and makes it current. Old keys still verify. The audit log's own rotation
   * (`audit rotate-signing-key`, audit/rotate-signing-key.ts) uses prepareSigningKey instead, so that the key, the
   * event recording it and a checkpoint it signs commit together.
   */
  async rotateSigningKey(): Promise<string> {
    const pending = await this.prepareSigningKey();
    await this.#store.addCurrentKey(pending.key);
    this.adoptSigningKey(pending);
    return pending.key.id;
  }

  /**
   * A new signing key, wrapped and not stored: `key` is for the caller to store (in its own transaction), `signer`
   * signs with it as the newest key (and verifies with every key held as well). Nothing changes in this keyring
   * until adoptSigningKey, after the caller committed; a rolled-back key is simply dropped. Reads the key table
   * (for the creation time), so call it before opening the transaction on SQLite. `notBefore`: the earliest creation
   * time it may have (the newest time already signed, so that a host whose clock is behind cannot date the old key's
   * retirement before what that key signed honestly), honoured up to NOT_BEFORE_AHEAD_MS past this keyring's clock.
   */
  async prepareSigningKey(options: { notBefore?: number } = {}): Promise<PendingSigningKey> {
    const id = `sk_${base32(this.#random.bytes(10))}`;
    const { privateKey, publicKey } = generateKeyPairSync("ed25519");
    const der = new Uint8Array(privateKey.export({ format: "der", type: "pkcs8" }));
    const spki = toBase64URL(new Uint8Array(publicKey.export({ format: "der", type: "spki" })));
    const key = await this.#wrap(id, "signing", der, spki, options.notBefore);
    const pending = { id, privateKey, publicKey, createdAt: key.createdAt };
    return { key, signer: this.#signerOver(id, privateKey, pending), [PENDING]: pending };
  }

  /** Makes a prepared signing key, stored and committed by the caller, this keyring's current one. */
  adoptSigningKey(prepared: PendingSigningKey): void {
    const { id, privateKey, publicKey, createdAt } = prepared[PENDING];
    this.#signingPrivate.set(id, privateKey);
    this.#signingPublic.set(id, publicKey);
    this.#createdAt.set(id, createdAt);
    this.#currentSigning = id;
    this.#appliedSequence = ++this.#sequence;
    this.#addedAt.set(id, this.#sequence);
  }

  /**
   * Wraps a new key, created now or one millisecond after the newest key of its purpose in the table, whichever is
   * later: the current key is the newest by bound creation time, so a new key must be newer than every other (two
   * rotations in one millisecond: init then rotate-keys, two processes one after the other, a node whose clock is
   * behind). The table is read first for the keys other processes made. Two processes rotating at the very same
   * moment may still pick one time; the greater id, bound too, then decides (#apply), never the status column.
   */
  async #wrap(id: string, purpose: HeldPurpose, material: Uint8Array, publicKey: string | null, notBefore = Number.NEGATIVE_INFINITY): Promise<StoredKey> {
    await this.#read(this.#store); // not the shared reload: one that started before another rotation committed would miss it
    // A new key wrapped under a master key rotated away would be one only this process can unwrap (the store refuses
    // it too, wrappedBy): the master key in force is looked for first.
    await this.#followMaster(this.#store);
    let newest = Number.NEGATIVE_INFINITY;
    for (const [held, at] of this.#createdAt) if (at !== null && at > newest && this.#purposeOf(held) === purpose) newest = at;
    const now = this.#clock.now();
    // notBefore only up to NOT_BEFORE_AHEAD_MS past this clock: it comes from rows others may have written.
    const createdAt = Math.max(now, newest + 1, Math.min(notBefore, now + NOT_BEFORE_AHEAD_MS));
    const wrapped = toBase64URL(seal(this.#master, material, wrapAAD(id, purpose, createdAt), this.#random));
    return { id, purpose, status: "current", createdAt, wrapped, publicKey, wrappedBy: masterKeyCheck(this.#master) };
  }

  /**
   * Wraps every key in `stored` (the key table, read by the caller inside the transaction that will store the result)
   * again under `newMaster`, binding what each wrap bound before (a v1 wrap stays v1: binding its row's creation time
   * now would launder an edited one). Stores nothing and changes nothing here: the caller updates the rows and the
   * master key check in one transaction (beginMasterRotation once this is made), then calls adoptMaster, or
   * abandonMasterRotation when it rolled back. Also makes the identifier tag key a stored key when none is stored yet,
   * so that tags stay what they were. Throws, naming it, on a key that does not unwrap: it would be lost for good under
   * the new master key.
   *
   * @example
   * const plan = keyring.prepareMasterRotation(random.bytes(32), await keyStoreIn(trx, dialect, "rotate-master").listKeys());
   */
  prepareMasterRotation(newMaster: Uint8Array, stored: StoredKey[]): MasterRotation {
    if (newMaster.byteLength !== 32) throw cryptoErrors.masterKeyInvalid(`the new master key must be 32 bytes, got ${newMaster.byteLength}`);
    const fromCheck = masterKeyCheck(this.#master);
    const toCheck = masterKeyCheck(newMaster);
    if (constantTimeEqualString(fromCheck, toCheck)) throw cryptoErrors.masterKeyInvalid("the new master key is the one in force");
    const rewrapped = stored.map((key) => {
      const { material, createdAt } = unwrapUnder(this.#master, key);
      const to = toBase64URL(seal(newMaster, material, wrapAAD(key.id, key.purpose, createdAt), this.#random));
      return { id: key.id, purpose: key.purpose, from: key.wrapped, to };
    });
    let tagKey: StoredKey | null = null;
    if (!stored.some((k) => k.purpose === TAG_KEY_PURPOSE)) {
      const id = `tk_${base32(this.#random.bytes(10))}`;
      const createdAt = this.#clock.now();
      const material = new Uint8Array(this.#tagKey.export());
      const wrapped = toBase64URL(seal(newMaster, material, wrapAAD(id, TAG_KEY_PURPOSE, createdAt), this.#random));
      tagKey = { id, purpose: TAG_KEY_PURPOSE, status: "current", createdAt, wrapped, publicKey: null, wrappedBy: toCheck };
    }
    return { rewrapped, tagKey, fromCheck, toCheck, [NEW_MASTER]: newMaster };
  }

  /**
   * Marks this keyring as rotating to `rotation`'s key, from inside the transaction that stores it until adoptMaster
   * (committed) or abandonMasterRotation (rolled back). A read through that transaction (its audit event's signer, a
   * second after the keyring's last read) meets the new check and keys wrapped under the new key: it unwraps them with
   * the key held here and follows nothing (#followMaster). The master key held does not change until adoptMaster.
   */
  beginMasterRotation(rotation: MasterRotation): void {
    this.#rotating = { toCheck: rotation.toCheck, master: rotation[NEW_MASTER] };
  }

  /** Ends the mark of beginMasterRotation for a rotation that did not commit: its key is forgotten, the master held stays. */
  abandonMasterRotation(rotation: MasterRotation): void {
    if (this.#rotating !== null && constantTimeEqualString(this.#rotating.toCheck, rotation.toCheck)) this.#rotating = null;
  }

  /**
   * Makes the new master key of a rotation, committed by the caller, this keyring's own: keys it makes from now on are
   * wrapped under it. The keys held do not change (a master key rotation wraps the same keys again).
   */
  adoptMaster(rotation: MasterRotation): void {
    this.#master = rotation[NEW_MASTER];
    this.#deviceKey = deviceKeyOf(rotation[NEW_MASTER]);
    this.#rotating = null;
  }

  /**
   * Encrypts a column value under the current data key (or `options.keyId`), bound to where it is stored.
   * Synchronous, so it cannot wait for the store: when the current key was last checked KEY_FRESHNESS_MS ago
   * or more it seals under the key it holds (retired, if another process rotated meanwhile) and starts a reload.
   * Anything stored for long uses `seal`, which checks first.
   *
   * @example
   * const ct = keyring.encrypt("JBSWY3DPEHPK3PXP", { table: "mfa_totp", column: "secret", row: userId });
   */
  encrypt(plaintext: Uint8Array | string, ctx: CipherContext, options: { keyId?: string } = {}): string {
    if (options.keyId === undefined && this.#stale()) this.#reloadSoon();
    const keyId = options.keyId ?? this.#currentData;
    if (keyId === null) throw cryptoErrors.unknownKey("(no current data key)");
    const key = this.#dataKeys.get(keyId);
    if (!key) throw cryptoErrors.unknownKey(keyId);
    const bytes = typeof plaintext === "string" ? utf8(plaintext) : plaintext;
    return `${CIPHERTEXT_VERSION}.${keyId}.${toBase64URL(seal(key, bytes, valueAAD(keyId, ctx), this.#random))}`;
  }

  /**
   * Decrypts a value sealed by `encrypt` for exactly this table, column and row. Synchronous: a key id it
   * does not hold (created by another process) throws BULWARK_ERR_UNKNOWN_KEY and starts a reload; `unseal`
   * reloads first.
   */
  decrypt(ciphertext: string, ctx: CipherContext): Uint8Array {
    const [keyId, body] = this.#parse(ciphertext, ctx);
    if (!this.#dataKeys.has(keyId) && DATA_KEY_ID.test(keyId)) this.#reloadSoon();
    return this.#open(keyId, body, ctx);
  }

  #open(keyId: string, body: string, ctx: CipherContext): Uint8Array {
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

  #parse(ciphertext: string, ctx: CipherContext): [keyId: string, body: string] {
    const parts = ciphertext.split(".");
    if (parts.length !== 3 || parts[0] !== CIPHERTEXT_VERSION) {
      throw cryptoErrors.malformedCiphertext(`ciphertext in ${ctx.table}.${ctx.column} is not in the ${CIPHERTEXT_VERSION} format`);
    }
    return [parts[1] as string, parts[2] as string];
  }

  /**
   * `encrypt`, after making sure the key is the current one: when the last check of the store is
   * KEY_FRESHNESS_MS old or more, or `options.keyId` is not held, the keys are read again first. Inside a
   * transaction pass `options.store` (see ReloadOptions).
   *
   * @example
   * const ct = await keyring.seal(secret, { table: "mfa_totp", column: "secret_ct", row: userId });
   */
  async seal(plaintext: Uint8Array | string, ctx: CipherContext, options: { keyId?: string } & ReloadOptions = {}): Promise<string> {
    if (options.keyId === undefined) {
      if (this.#stale()) await this.reload(options);
    } else if (!this.#dataKeys.has(options.keyId)) {
      // Not the shared reload: one that started before the key was committed would not find it.
      await this.#read(options.store ?? this.#store);
    }
    return this.encrypt(plaintext, ctx, options.keyId === undefined ? {} : { keyId: options.keyId });
  }

  /**
   * `decrypt`, reading the keys again first when the value is sealed under a key id this keyring does not
   * hold (another process created it since). Still BULWARK_ERR_UNKNOWN_KEY when the store has no such key.
   * Inside a transaction pass `options.store` (see ReloadOptions).
   */
  async unseal(ciphertext: string, ctx: CipherContext, options: ReloadOptions = {}): Promise<Uint8Array> {
    const [keyId, body] = this.#parse(ciphertext, ctx);
    if (!this.#dataKeys.has(keyId) && DATA_KEY_ID.test(keyId)) await this.#read(options.store ?? this.#store); // not the shared reload, as in seal
    return this.#open(keyId, body, ctx);
  }

  async unsealString(ciphertext: string, ctx: CipherContext, options: ReloadOptions = {}): Promise<string> {
    return Buffer.from(await this.unseal(ciphertext, ctx, options)).toString("utf8");
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

  /**
   * The audit log's tag (`id:<tag>`) for an identifier that names no account, or an address asked about: attempts
   * with the same text correlate across events and nodes, but the text cannot be recovered from the log with a
   * word list, as it could from a plain hash (a password typed into the login name field, ASVS 16.2.5).
   *
   * @example
   * audit.append({ type: "auth.login.failed", subject: `id:${keyring.identifierTag(identifier.toLowerCase())}` });
   */
  identifierTag(text: string): string {
    return keyedFingerprint(this.#tagKey, text);
  }

  /**
   * The known-device cookie's tag of `text` (device-cookie.ts): 64 bits of HMAC-SHA256 under a key of its own, so that
   * no tag the audit log holds for typed text (identifierTag) is ever a cookie's tag.
   *
   * @example
   * keyring.deviceTag(`known-device:${deviceId}:${user.id}:${user.passwordChangedAt ?? 0}`) // "9f3c…", 16 hex characters
   */
  deviceTag(text: string): string {
    return keyedFingerprint(this.#deviceKey, text);
  }

  /**
   * The key a flood-control row is stored under for `text` (FloodControl's `keyOf`): HMAC-SHA256, 64 hex characters
   * like the plain SHA-256 it replaced, under a key of its own. A plain hash let a copy of the tables be read back
   * with a word list: people type their password into the login name field (ASVS 14.2.4, 16.2.5).
   *
   * @example
   * new FloodControl({ database, clock, keyOf: (text) => keyring.floodKey(text) })
   */
  floodKey(text: string): string {
    return keyedDigest(this.#floodKey, text);
  }

  /**
   * The Ed25519 signer over the current signing key (checked against the store as for `seal`; `options.store` reads
   * the key table through a caller's transaction, see ReloadOptions).
   */
  async signer(options: ReloadOptions & { reload?: boolean } = {}): Promise<Signer> {
    // Forced: not the shared reload, which may have started before the key being looked for was committed.
    if (options.reload) await this.#read(options.store ?? this.#store);
    else if (this.#stale()) await this.reload(options);
    const keyId = this.#currentSigning;
    if (keyId === null) throw cryptoErrors.unknownKey("(no current signing key)");
    return this.#signerOver(keyId, this.#signingPrivate.get(keyId) as KeyObject, null);
  }

  /** A signer over `privateKey` (key `keyId`); `pending`: a prepared key not held yet, verified and timed as the newest. */
  #signerOver(keyId: string, privateKey: KeyObject, pending: { id: string; publicKey: KeyObject; createdAt: number } | null): Signer {
    const publics = this.#signingPublic;
    return {
      keyId,
      sign: (data: Uint8Array): Uint8Array => new Uint8Array(sign(null, data, privateKey)),
      verify: (id: string, data: Uint8Array, signature: Uint8Array): boolean => {
        const pub = id === pending?.id ? pending.publicKey : publics.get(id);
        if (!pub) return false;
        try {
          return verify(null, data, pub, signature);
        } catch {
          return false;
        }
      },
      keyTimes: (id: string): SigningKeyTimes | null => this.#signingTimes(id, pending),
      keysSince: this.#keysSince(),
    };
  }

  /** The oldest bound creation time over every key held (Signer.keysSince); null when one binds none. */
  #keysSince(): number | null {
    let oldest: number | null = null;
    for (const at of this.#createdAt.values()) {
      if (at === null) return null;
      if (oldest === null || at < oldest) oldest = at;
    }
    return oldest;
  }

  /**
   * When signing key `id` was created and retired, as its wrap and its successor's bind them: a row edited in the
   * database moves neither. Its successor is the next newer signing key (by bound creation time, then id, the
   * order that picks the current one); the current key is not retired. Null for a key not held.
   */
  #signingTimes(id: string, pending: { id: string; createdAt: number } | null): SigningKeyTimes | null {
    const times = new Map<string, number | null>();
    for (const held of this.#signingPrivate.keys()) times.set(held, this.#createdAt.get(held) ?? null);
    if (pending !== null) times.set(pending.id, pending.createdAt);
    if (!times.has(id)) return null;
    const createdAt = times.get(id) ?? null;
    // A v1 key binds no creation time, but every key that binds one was made after it (v2 wraps replaced v1 for good):
    // it is older than all of them, retired by the first. Among v1 keys alone the order is unknown.
    if (createdAt === null) {
      const bound = [...times.values()].filter((at): at is number => at !== null);
      return { createdAt: null, retiredAt: bound.length > 0 ? Math.min(...bound) : null };
    }
    let retiredAt: number | null = null;
    for (const [other, at] of times) {
      if (at === null || other === id) continue;
      const newer = at > createdAt || (at === createdAt && other > id);
      if (newer && (retiredAt === null || at < retiredAt)) retiredAt = at;
    }
    return { createdAt, retiredAt };
  }
}

/**
 * Unwraps `key` under `master`: as a v2 wrap (binding its creation time) first, else as a v1 one. Throws
 * BULWARK_ERR_DECRYPT when neither opens (a tampered row, or a key wrapped under another master key).
 */
function unwrapUnder(master: Uint8Array, key: StoredKey): Unwrapped {
  const wrapped = fromBase64URL(key.wrapped);
  const v2 = open(master, wrapped, wrapAAD(key.id, key.purpose, key.createdAt));
  if (v2 !== null) return { material: v2, createdAt: key.createdAt };
  const v1 = open(master, wrapped, wrapAAD(key.id, key.purpose));
  if (v1 !== null) return { material: v1, createdAt: null };
  throw cryptoErrors.decryptFailed(`key ${key.id} does not unwrap under the master key (tampered key row?)`);
}

/**
 * The identifier tag key: the stored one when a master key rotation stored it (the oldest, should there be more: the
 * first rotation stored the key every tag in the store was made with), else derived from the master key as before any
 * rotation, so stores made before keep their tags.
 */
function tagKeyOf(stored: StoredKey[], master: Uint8Array): Uint8Array {
  let chosen: Unwrapped | null = null;
  for (const key of stored) {
    if (key.purpose !== TAG_KEY_PURPOSE) continue;
    const unwrapped = unwrapUnder(master, key);
    if (unwrapped.material.byteLength !== 32) throw cryptoErrors.decryptFailed(`identifier tag key ${key.id} is ${unwrapped.material.byteLength} bytes, not 32`);
    if (chosen === null || (unwrapped.createdAt ?? 0) < (chosen.createdAt ?? 0)) chosen = unwrapped;
  }
  return chosen?.material ?? subkeyOf(master, TAG_KEY_LABEL);
}

/**
 * The known-device key of `master`: HKDF-SHA256 (DEVICE_TAG_LABEL) of the tag key `master` derives (TAG_KEY_LABEL) —
 * not of the stored tag key a rotation keeps. Before any rotation the two are the same key, so a store never rotated
 * keeps its browsers' cookies; each rotation gives a new device key, and every browser counts as new once after it
 * (one new-device notice each, ADR 0011): the copied old master key forges no cookie the live service recognises.
 */
function deviceKeyOf(master: Uint8Array): KeyObject {
  return createSecretKey(subkeyOf(subkeyOf(master, TAG_KEY_LABEL), DEVICE_TAG_LABEL));
}

/**
 * A 32-byte subkey of `key` for one use (`label`: its HKDF info), node:crypto's HKDF-SHA256 without a salt: the tag key
 * of the master key (when no stored one is kept), the device key (deviceKeyOf), the flood key of the tag key.
 */
function subkeyOf(key: Uint8Array, label: string): Uint8Array {
  return new Uint8Array(hkdfSync("sha256", key, new Uint8Array(0), label, 32));
}

const PENDING = Symbol("pending signing key");

/** The claim #reported keeps for a held key whose row a read did not list. */
const MISSING_CLAIM = "row=missing";

/** A signing key made by Keyring.prepareSigningKey: stored by the caller, then adopted. */
export interface PendingSigningKey {
  /** The row to store (KeyStore.addCurrentKey, or addCurrentKeyIn inside the caller's transaction). */
  key: StoredKey;
  /** Signs with the new key; verifies with it and every key held. */
  signer: Signer;
  readonly [PENDING]: { id: string; privateKey: KeyObject; publicKey: KeyObject; createdAt: number };
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
