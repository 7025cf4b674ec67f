// Signing keys held by the keyring: audit checkpoints and file baselines are signed so that an
// attacker who can write the database or the baseline file, but lacks the master key, cannot forge them.

export interface Signer {
  /** Id of the current signing key; store it beside every signature. */
  readonly keyId: string;
  /** Signs `data` with the current signing key (Ed25519). */
  sign(data: Uint8Array): Uint8Array;
  /** Verifies a signature made by any signing key this keyring has held; false on any mismatch. */
  verify(keyId: string, data: Uint8Array, signature: Uint8Array): boolean;
}
