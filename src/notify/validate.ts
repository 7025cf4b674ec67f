// Checks on everything that ends up in a mail header. Header injection (CR/LF smuggling a Bcc: or a second
// message) is refused at enqueue time, before a row exists, and again by the sender.
import { notifyErrors } from "./errors.ts";

// RFC 5321 §4.5.3.1: 64 octets of local part, 254 for the whole path in practice (RFC 3696 erratum 1690).
const MAX_ADDRESS = 254;
const MAX_LOCAL = 64;
// RFC 5322 §2.1.1: lines of at most 998 characters; a subject this long is a mistake or an attack.
const MAX_SUBJECT = 250;
// A campaign body is text written by an operator; 1 MiB bounds a row and a DATA transfer.
const MAX_BODY = 1_048_576;

// Control characters (C0, DEL, C1) and the Unicode line/paragraph separators some clients treat as breaks.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// A bare addr-spec only: no display name, no comments, no quoting, no lists. Anything that needs
// those characters is refused rather than escaped, because a security notice never needs them.
/** The characters a local part may hold (RFC 5322 atext and the dot), as a character-class body. */
export const LOCAL_CHARS = "A-Za-z0-9.!#$%&'*+/=?^_`{|}~-";
const LOCAL = new RegExp(`^[${LOCAL_CHARS}]+$`);
const DOMAIN = /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** Why `value` is not a plain address, or null when it is. */
export function addressProblem(value: string): string | null {
  if (typeof value !== "string") return "not a string";
  if (CONTROL.test(value)) return "it contains a line break or control character";
  if (value.length > MAX_ADDRESS) return `longer than ${MAX_ADDRESS} characters`;
  const at = value.lastIndexOf("@");
  if (at <= 0 || at === value.length - 1) return "expected local@domain";
  const local = value.slice(0, at);
  const domain = value.slice(at + 1);
  if (local.length > MAX_LOCAL) return `the part before @ is longer than ${MAX_LOCAL} characters`;
  if (!LOCAL.test(local) || local.startsWith(".") || local.endsWith(".") || local.includes("..")) return "the part before @ has characters outside the plain address set";
  if (!DOMAIN.test(domain)) return "the domain is not a valid host name";
  return null;
}

/**
 * Throws unless `value` is a single plain address (`local@domain`, no CR/LF, no display name).
 *
 * @example
 * checkAddress("to", "ana@example.org"); // ok
 * checkAddress("to", "ana@example.org\r\nBcc: eve@evil.test"); // throws BULWARK_ERR_MAIL_ADDRESS
 */
export function checkAddress(field: string, value: string): string {
  const problem = addressProblem(value);
  if (problem) throw notifyErrors.badAddress(field, problem);
  return value;
}

/**
 * Throws unless `value` is a one-line subject of printable characters.
 *
 * @example
 * checkSubject("Your password was changed"); // ok
 */
export function checkSubject(value: string): string {
  if (typeof value !== "string" || value.trim() === "") throw notifyErrors.badSubject("it is empty");
  if (CONTROL.test(value)) throw notifyErrors.badSubject("it contains a line break or control character");
  if (value.length > MAX_SUBJECT) throw notifyErrors.badSubject(`longer than ${MAX_SUBJECT} characters`);
  return value;
}

/**
 * Throws unless a body is a string within the size bound (bodies may contain line breaks: they are
 * MIME-encoded by the transport, never written into headers).
 *
 * @example
 * checkBody("text", "Hello\n"); // ok
 */
export function checkBody(field: string, value: string): string {
  if (typeof value !== "string") throw notifyErrors.badMessage(`${field} is not a string`);
  if (value.length > MAX_BODY) throw notifyErrors.badMessage(`${field} is longer than ${MAX_BODY} characters`);
  if (value.includes("\u0000")) throw notifyErrors.badMessage(`${field} contains a NUL character`);
  return value;
}

/** A short, one-line, printable token (kind, idempotency key, campaign id). */
export function checkToken(field: string, value: string, max: number = 200): string {
  if (typeof value !== "string" || value === "") throw notifyErrors.badMessage(`${field} is empty`);
  if (value.length > max) throw notifyErrors.badMessage(`${field} is longer than ${max} characters`);
  if (CONTROL.test(value)) throw notifyErrors.badMessage(`${field} contains a control character`);
  return value;
}
