// Errors of the crypto layer, each with a stable code.
import { BulwarkError, type BulwarkErrorOptions } from "../lib/errors.ts";

export class KeyringError extends BulwarkError {}

export const cryptoErrors = {
  masterKeyInvalid: (message: string, options?: BulwarkErrorOptions): KeyringError =>
    new KeyringError("BULWARK_ERR_MASTER_KEY_INVALID", "input", message, options),
  /** The key file exists but this process cannot read it (permissions, I/O): the environment, exit 3. */
  masterKeyUnreadable: (path: string, reason: string, options?: BulwarkErrorOptions): KeyringError =>
    new KeyringError("BULWARK_ERR_MASTER_KEY_UNREADABLE", "runtime", `cannot read the master key file ${path}: ${reason}`, options),
  masterKeyMismatch: (message: string): KeyringError =>
    new KeyringError("BULWARK_ERR_MASTER_KEY_MISMATCH", "input", message),
  /**
   * The store's master key was rotated (`bulwark keys rotate-master`) after this process opened it, and the new key is
   * not at hand (a key from the environment): the process must be restarted with it. Exit 3: nothing the command was
   * given is wrong.
   */
  masterKeyRotated: (message: string): KeyringError =>
    new KeyringError("BULWARK_ERR_MASTER_KEY_ROTATED", "runtime", message),
  /** A master key rotation cannot go on (a pending key file left over, the store changed meanwhile); the message says why. */
  masterRotationRefused: (message: string, options?: BulwarkErrorOptions): KeyringError =>
    new KeyringError("BULWARK_ERR_MASTER_ROTATION", "input", message, options),
  masterKeyMissing: (message: string): KeyringError =>
    new KeyringError("BULWARK_ERR_MASTER_KEY_MISSING", "input", message),
  decryptFailed: (message: string, options?: BulwarkErrorOptions): KeyringError =>
    new KeyringError("BULWARK_ERR_DECRYPT", "runtime", message, options),
  unknownKey: (keyId: string): KeyringError =>
    new KeyringError("BULWARK_ERR_UNKNOWN_KEY", "runtime", `no key with id "${keyId}" in the keyring`),
  malformedCiphertext: (message: string): KeyringError =>
    new KeyringError("BULWARK_ERR_CIPHERTEXT_MALFORMED", "runtime", message),
};
