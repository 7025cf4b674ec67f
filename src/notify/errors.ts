// Errors of the email outbox, each with a stable code. Delivery failures are values (a retry, a dead
// message), not exceptions; these are for bad input and bad configuration.
import { BulwarkError, InputError, type BulwarkErrorOptions } from "../lib/errors.ts";

export class NotifyInputError extends InputError {}

export const notifyErrors = {
  badAddress: (field: string, why: string, options?: BulwarkErrorOptions): NotifyInputError =>
    new NotifyInputError("BULWARK_ERR_MAIL_ADDRESS", `${field} is not an acceptable email address: ${why}`, options),
  badSubject: (why: string, options?: BulwarkErrorOptions): NotifyInputError =>
    new NotifyInputError("BULWARK_ERR_MAIL_SUBJECT", `the subject is not acceptable: ${why}`, options),
  badMessage: (why: string, options?: BulwarkErrorOptions): NotifyInputError =>
    new NotifyInputError("BULWARK_ERR_MAIL_MESSAGE", `the message is not acceptable: ${why}`, options),
  badConfig: (why: string, options?: BulwarkErrorOptions): NotifyInputError =>
    new NotifyInputError("BULWARK_ERR_MAIL_CONFIG", `mail configuration: ${why}`, options),
  /** A link mail whose link is not on BULWARK_PUBLIC_URL as configured now (outbox.ts, withLinkOrigin): never sent. */
  staleLink: (why: string, options?: BulwarkErrorOptions): NotifyInputError =>
    new NotifyInputError("BULWARK_ERR_MAIL_LINK_ORIGIN", `the message's link is not sent: ${why}`, options),
  notFound: (id: string): BulwarkError => new BulwarkError("BULWARK_ERR_MAIL_NOT_FOUND", "not-found", `no outbox message with id "${id}"`),
};
