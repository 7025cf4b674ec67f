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
  masterKeyMissing: (message: string): KeyringError =>
    new KeyringError("BULWARK_ERR_MASTER_KEY_MISSING", "input", message),
  decryptFailed: (message: string, options?: BulwarkErrorOptions): KeyringError =>
    new KeyringError("BULWARK_ERR_DECRYPT", "runtime", message, options),
  unknownKey: (keyId: string): KeyringError =>
    new KeyringError("BULWARK_ERR_UNKNOWN_KEY", "runtime", `no key with id "${keyId}" in the keyring`),
  malformedCiphertext: (message: string): KeyringError =>
    new KeyringError("BULWARK_ERR_CIPHERTEXT_MALFORMED", "runtime", message),
};
