// Errors of the accounts domain, each with a stable code.
import { BulwarkError, type BulwarkErrorOptions } from "../lib/errors.ts";

export class AccountError extends BulwarkError {}

export const accountErrors = {
  emailTaken: (): AccountError => new AccountError("BULWARK_ERR_EMAIL_TAKEN", "conflict", "an account with this email already exists"),
  usernameTaken: (): AccountError => new AccountError("BULWARK_ERR_USERNAME_TAKEN", "conflict", "an account with this username already exists"),
  invalidEmail: (why: string): AccountError => new AccountError("BULWARK_ERR_EMAIL_INVALID", "input", `email ${why}`),
  invalidUsername: (why: string): AccountError => new AccountError("BULWARK_ERR_USERNAME_INVALID", "input", `username ${why}`),
  notFound: (what: string, options?: BulwarkErrorOptions): AccountError => new AccountError("BULWARK_ERR_NOT_FOUND", "not-found", `${what} not found`, options),
};
