// Errors of the password-hash layer: one stable code each (never reused), kind "input" because the
// caller (an import, a stored row, a CLI argument) gave us something we refuse to process.
import { InputError, type BulwarkErrorOptions } from "../../lib/errors.ts";

/**
 * A hash we do not verify: unknown format, malformed, or carrying cost parameters outside the
 * bounds in limits.ts. The message names the reason; it never contains the hash itself (a hash is
 * crackable material and must not end up in logs).
 *
 * @example
 * throw new UnsupportedHashError("bcrypt cost 31 is above the limit of 15");
 */
export class UnsupportedHashError extends InputError {
  readonly reason: string;
  constructor(reason: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_HASH_UNSUPPORTED", `unsupported password hash: ${reason}`, options);
    this.reason = reason;
  }
}

/** A salted-digest template (`sha256(salt+password):hex`) that cannot be understood. */
export class InvalidHashTemplateError extends InputError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_HASH_TEMPLATE", message, options);
  }
}

/** Password-context options that make no sense (default parameters outside the limits, …). */
export class InvalidPasswordPolicyError extends InputError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_PASSWORD_POLICY", message, options);
  }
}

/**
 * A password that cannot be stored exactly as typed was given to be hashed: it holds an unpaired
 * UTF-16 surrogate (UTF-8 would turn it into U+FFFD) or a NUL character (which HMAC-based and
 * C-string hashes cannot tell from the end of the password).
 */
export class PasswordNotTextError extends InputError {
  constructor(options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_PASSWORD_MALFORMED", "the password is not well-formed text (it holds an unpaired surrogate or a NUL character)", options);
  }
}

/** A password longer than the limit (limits.ts maxPasswordBytes) was given to be hashed. */
export class PasswordTooLongError extends InputError {
  constructor(limit: number, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_PASSWORD_TOO_LONG", `the password is longer than ${limit} bytes`, options);
  }
}
