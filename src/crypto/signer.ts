// Signing keys held by the keyring: audit checkpoints and file baselines are signed so that an
// attacker who can write the database or the baseline file, but lacks the master key, cannot forge them.

export interface Signer {
  /** Id of the current signing key; store it beside every signature. */
  readonly keyId: string;
  /** Signs `data` with the current signing key (Ed25519). */
  sign(data: Uint8Array): Uint8Array;
  /** Verifies a signature made by any signing key this keyring has held; false on any mismatch. */
  verify(keyId: string, data: Uint8Array, signature: Uint8Array): boolean;
  /** When a signing key this keyring holds was created and retired (null: not held). Audit verify holds checkpoints to it. */
  keyTimes(keyId: string): SigningKeyTimes | null;
  /**
   * The oldest creation time bound by any key the keyring holds, data and signing keys alike: how long the store has
   * had keys, which a rotation (a new signing key) does not make younger. Null when a held key binds no time (a v1 wrap,
   * made before times were bound, so older than any that does). Absent: the signer does not say (audit verify then
   * does not judge a log without checkpoints by the store's age).
   */
  readonly keysSince?: number | null;
}

/**
 * A signing key's life as its wrap binds it (ms): created, and retired when the next newer signing key was created
 * (null while it is the current one). Both null for a key from before creation times were bound (its order unknown).
 */
export interface SigningKeyTimes {
  createdAt: number | null;
  retiredAt: number | null;
}
