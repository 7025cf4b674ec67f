// Errors of the email-change module, each with a stable code. A bad, expired or used link is an expected
// outcome of check/redeem (a value); `refused` is what the HTTP layer throws for it.
import type { GenuineLinkRefusal } from "../../crypto/link-token.ts";
import { BulwarkError } from "../../lib/errors.ts";

export class EmailChangeError extends BulwarkError {
  /** Set on a refusal of a genuine link (its secret matched); absent for junk, guessed or malformed ones. */
  genuine?: GenuineLinkRefusal;
}

export const emailChangeErrors = {
  /** One message for every refusal: a client cannot tell a guessed id from an expired or used link. */
  refused: (genuine?: GenuineLinkRefusal): EmailChangeError =>
    Object.assign(
      new EmailChangeError("BULWARK_ERR_EMAIL_CHANGE_TOKEN", "input", "this email confirmation link is invalid, expired or already used; ask for the change again"),
      genuine ? { genuine } : {},
    ),
  /** The address is the account's own already: nothing to change. */
  unchanged: (): EmailChangeError => new EmailChangeError("BULWARK_ERR_EMAIL_UNCHANGED", "input", "newEmail is already this account's address"),
  /** An address the outbox cannot send to (the account store accepts more): set by an administrator, it would reach nobody. */
  undeliverable: (why: string): EmailChangeError =>
    new EmailChangeError("BULWARK_ERR_EMAIL_UNDELIVERABLE", "input", `email cannot receive mail from this server (${why}); give an address the account's owner reads`),
  /** At confirmation, another account holds the address now (it was free when the link was sent). */
  taken: (genuine?: GenuineLinkRefusal): EmailChangeError =>
    Object.assign(new EmailChangeError("BULWARK_ERR_EMAIL_TAKEN", "conflict", "another account uses this email address now; the address was not changed"), genuine ? { genuine } : {}),
};
