// Errors of the MFA module, each with a stable code. A wrong code is an expected outcome (a value);
// these errors are for misuse: enrolling twice, confirming without enrolment, a bad name.
import { BulwarkError, InputError, type BulwarkErrorOptions } from "../../lib/errors.ts";

export class MfaError extends BulwarkError {}

export const mfaErrors = {
  notEnrolled: (what: string): MfaError => new MfaError("BULWARK_ERR_MFA_NOT_ENROLLED", "conflict", `no ${what} is enrolled for this account`),
  alreadyConfirmed: (): MfaError =>
    new MfaError("BULWARK_ERR_MFA_ALREADY_ENROLLED", "conflict", "an authenticator app is already confirmed; to move to a new one, replace it with POST /auth/mfa/totp/replace (the current app keeps working until the new one is confirmed)"),
  invalidInput: (what: string, options?: BulwarkErrorOptions): InputError => new InputError("BULWARK_ERR_MFA_INPUT", what, options),
  /** A registration whose credential public key could never verify an assertion; `why` names what is wrong with it. */
  unusablePublicKey: (why: string, options?: BulwarkErrorOptions): InputError =>
    new InputError("BULWARK_ERR_MFA_INPUT", `the registration response was refused: its credential public key ${why}`, options),
  /** Too many wrong codes for this user in the throttle's window: the code was not even looked at. */
  throttled: (): MfaError => new MfaError("BULWARK_ERR_MFA_THROTTLED", "conflict", "too many wrong codes; try again later"),
  /** No replacement of the authenticator app waits for this session (none begun in it, expired, or dropped). */
  noReplacement: (): MfaError =>
    new MfaError(
      "BULWARK_ERR_MFA_NOT_ENROLLED", "conflict",
      "no replacement of the authenticator app waits for this session (none was begun in it, it is older than 30 minutes, or a password change or the app's removal dropped it): begin again",
    ),
  /** No enrolment of an authenticator app waits for this session (none begun in it, expired, restarted or dropped). */
  noEnrolment: (): MfaError =>
    new MfaError(
      "BULWARK_ERR_MFA_NOT_ENROLLED", "conflict",
      "no enrolment of an authenticator app waits for this session (none was begun in it, it is older than 30 minutes, it was begun again elsewhere, or a password change, a reset or signing out everywhere dropped it): begin again",
    ),
  /** Every passkey of the account is suspended (a copy caught in use): none is offered for an assertion. */
  passkeysSuspended: (): MfaError =>
    new MfaError(
      "BULWARK_ERR_MFA_PASSKEY_SUSPENDED", "conflict",
      "every passkey of this account is suspended (a copy of it was caught in use): confirm with another factor or a recovery code, then remove the suspended passkey and register a new one",
    ),
  credentialNotFound: (): MfaError => new MfaError("BULWARK_ERR_MFA_CREDENTIAL_NOT_FOUND", "not-found", "passkey not found"),
};
