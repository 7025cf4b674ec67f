// Normalisation of the identifiers people log in with. Lookups use the normalised key; the account keeps
// the address as given. Lengths are bounded (RFC 5321 §4.5.3.1: 254 characters is the usable maximum).
import { hidesSomething } from "../../lib/visible-text.ts";
import { accountErrors } from "../errors.ts";

export const MAX_EMAIL = 254;
export const MAX_USERNAME = 64;

/** The lookup key of an identifier (email or username): trimmed, NFC, lower-cased. */
export function identifierKey(identifier: string): string {
  return identifier.trim().normalize("NFC").toLowerCase();
}

/** Validates an email address enough to send to it; returns it trimmed. Throws on a clearly bad one. */
export function validateEmail(email: string): string {
  const trimmed = email.trim();
  if (trimmed.length === 0) throw accountErrors.invalidEmail("is empty");
  if (trimmed.length > MAX_EMAIL) throw accountErrors.invalidEmail(`is longer than ${MAX_EMAIL} characters`);
  // One @, something on both sides, no spaces or control characters, a dot-less domain allowed (intranets).
  // Invisible and formatting characters (zero-width space, soft hyphen, right-to-left override) and unpaired
  // surrogates make a second account that looks like, or is stored as, another's address.
  if (/[\p{Cf}\p{Cs}]/u.test(trimmed)) throw accountErrors.invalidEmail("contains invisible or formatting characters (such as a zero-width space or a right-to-left mark)");
  if (!/^[^\s@\p{Cc}]+@[^\s@\p{Cc}]+$/u.test(trimmed)) throw accountErrors.invalidEmail(`"${trimmed.slice(0, 60)}" is not an address (expected name@domain)`);
  return trimmed;
}

export function validateUsername(username: string): string {
  const trimmed = username.trim().normalize("NFC");
  if (trimmed.length === 0) throw accountErrors.invalidUsername("is empty");
  if (trimmed.length > MAX_USERNAME) throw accountErrors.invalidUsername(`is longer than ${MAX_USERNAME} characters`);
  if (hidesSomething(trimmed)) throw accountErrors.invalidUsername("contains control or invisible characters (such as a Hangul filler or a line separator), or an unpaired surrogate");
  if (trimmed.includes("@")) throw accountErrors.invalidUsername("must not contain @ (it would collide with email logins)");
  return trimmed;
}
