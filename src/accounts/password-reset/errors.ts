// Errors of the password-reset module, each with a stable code. A bad or expired link is an expected
// outcome (a value from check/redeem); `refused` is the error the HTTP layer throws for it.
import type { GenuineLinkRefusal } from "../../crypto/link-token.ts";
import { BulwarkError, InputError } from "../../lib/errors.ts";

export class PasswordResetError extends BulwarkError {
  /** Set on a refusal of a genuine link (its secret matched); absent for junk, guessed or malformed ones. */
  genuine?: GenuineLinkRefusal;
}

export const resetErrors = {
  /** One message for every refusal: a client cannot tell a guessed id from an expired or used link. */
  refused: (genuine?: GenuineLinkRefusal): PasswordResetError =>
    Object.assign(
      new PasswordResetError("BULWARK_ERR_RESET_TOKEN", "input", "this password reset link is invalid, expired or already used; request a new one"),
      genuine ? { genuine } : {},
    ),
  /**
   * A completion of this link is running in this process (the caller proved the link's secret). Not the refusal of a
   * spent link: the running one may yet fail (a missing factor, a refused password) and leave the link unspent.
   */
  busy: (): PasswordResetError =>
    new PasswordResetError("BULWARK_ERR_RESET_BUSY", "conflict", "this password reset link is being used by another request right now; try again in a moment"),
  badPolicy: (what: string): InputError => new InputError("BULWARK_ERR_RESET_POLICY", `password reset policy: ${what}`),
};
