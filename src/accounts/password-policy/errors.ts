// Errors of the new-password policy: bad configuration, a breach file we cannot use, a bundled
// list that fails to load. Expected outcomes (a weak password) are PolicyResult values, not these.
import { InputError, RuntimeFailure, Unavailable, type BulwarkErrorOptions } from "../../lib/errors.ts";

/**
 * Policy or checker options that would weaken the policy or make no sense (a minimum length below
 * 8, a maximum above what the hash layer accepts, a plain-http breach service on a public host).
 *
 * @example
 * throw new PasswordPolicyConfigError("minLength must be at least 8 (NIST SP 800-63B), got 6");
 */
export class PasswordPolicyConfigError extends InputError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_PASSWORD_POLICY_CONFIG", message, options);
  }
}

/**
 * The value given as a password is not a string (a JSON body with a number, `undefined` from a
 * missing field). Programming or request error, never a weak password.
 *
 * @example
 * throw new PasswordPolicyInputError("password must be a string, got number");
 */
export class PasswordPolicyInputError extends InputError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_PASSWORD_POLICY_INPUT", message, options);
  }
}

/**
 * An offline breach file (`SHA1HEX:COUNT` lines sorted by hash) that cannot be used: missing,
 * unreadable, malformed or not sorted. The message names the file and the byte offset; it never
 * contains a password.
 *
 * @example
 * throw new BreachFileError("/data/pwned.txt: malformed line at byte 4096: expected 40 hex digits");
 */
export class BreachFileError extends InputError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_BREACH_FILE", message, options);
  }
}

/**
 * The bundled common-password list could not be loaded (package missing from node_modules,
 * corrupt archive). A broken installation, so a runtime failure.
 *
 * @example
 * throw new CommonPasswordListError("cannot load the bundled common-password list", { cause });
 */
export class CommonPasswordListError extends RuntimeFailure {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_COMMON_PASSWORD_LIST", message, options);
  }
}

/**
 * A new password refused only because a fail-closed breached-password lookup could not answer: the server's failure,
 * not the password's (HTTP 503 with Retry-After, CLI exit 3), never "the password is refused", which had people (and
 * an operator with a generated password) try again and again. `verdictUnavailable` tells such a verdict.
 *
 * @example
 * if (verdictUnavailable(verdict)) throw breachCheckUnavailable();
 */
export function breachCheckUnavailable(): Unavailable {
  return new Unavailable("BULWARK_ERR_BREACH_CHECK_UNAVAILABLE", "the new password could not be checked against known breaches right now; nothing was changed, try again in a moment", 5);
}

/** Whether a refusal is only the lookup's outage (every reason `breach-check-unavailable`). */
export function verdictUnavailable(verdict: { ok: boolean; reasons?: ReadonlyArray<{ code: string }> }): boolean {
  return !verdict.ok && (verdict.reasons ?? []).length > 0 && (verdict.reasons ?? []).every((r) => r.code === "breach-check-unavailable");
}
