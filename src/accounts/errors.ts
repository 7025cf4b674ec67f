// Errors of the accounts domain, each with a stable code.
import { BulwarkError, type BulwarkErrorOptions } from "../lib/errors.ts";

export class AccountError extends BulwarkError {}

export const accountErrors = {
  emailTaken: (): AccountError => new AccountError("BULWARK_ERR_EMAIL_TAKEN", "conflict", "an account with this email already exists"),
  usernameTaken: (): AccountError => new AccountError("BULWARK_ERR_USERNAME_TAKEN", "conflict", "an account with this username already exists"),
  /** The identifier reads like another account's (the same letters in another script, confusables.ts): 409. */
  emailConfusable: (): AccountError => new AccountError("BULWARK_ERR_EMAIL_CONFUSABLE", "conflict", "the email reads like the address of an existing account (the same letters in another script); it cannot be told apart from it in a list"),
  usernameConfusable: (): AccountError => new AccountError("BULWARK_ERR_USERNAME_CONFUSABLE", "conflict", "the username reads like that of an existing account (the same letters in another script); it cannot be told apart from it in a list"),
  invalidEmail: (why: string): AccountError => new AccountError("BULWARK_ERR_EMAIL_INVALID", "input", `email ${why}`),
  invalidUsername: (why: string): AccountError => new AccountError("BULWARK_ERR_USERNAME_INVALID", "input", `username ${why}`),
  invalidDisplayName: (why: string): AccountError => new AccountError("BULWARK_ERR_DISPLAY_NAME_INVALID", "input", `displayName ${why}`),
  notFound: (what: string, options?: BulwarkErrorOptions): AccountError => new AccountError("BULWARK_ERR_NOT_FOUND", "not-found", `${what} not found`, options),
};
