// How a genuine notice names an email address someone else chose (the address an account is moved to, or was moved
// from): in full only when it cannot read as anything but an address, otherwise by its domain.
import { addressProblem } from "./validate.ts";

// Letters, digits, dots, +, _ and -: a local part a mail client shows as part of an address and nothing else. The rest
// of RFC 5322 atext (/ ? = & # % …) spells a link without a scheme ("www.bulwark-help.example/keep-account?case=7731"),
// which clients make clickable: typed by a requester, it would speak in a signed security notice as the service's own.
const PLAIN_LOCAL = /^[A-Za-z0-9._+-]+$/;

/**
 * `address` as a notice names it (ASVS 6.3.7, 1.3.11): itself when its local part is plain; "an address at <domain>"
 * when the local part holds other characters (the owner still learns where the account went; the exact spelling is for
 * administrators, where it is stored); a fixed phrase when the outbox would not mail it at all (addressProblem).
 *
 * @example
 * noticeAddress("ana.b+tag@example.org") // "ana.b+tag@example.org"
 * noticeAddress("www.bulwark-help.example/keep?case=1@evil.test") // "an address at evil.test"
 * noticeAddress("x+https://evil.example/a@evil.test") // "an address this server cannot send mail to"
 */
export function noticeAddress(address: string): string {
  if (addressProblem(address) !== null) return "an address this server cannot send mail to";
  const at = address.lastIndexOf("@");
  return PLAIN_LOCAL.test(address.slice(0, at)) ? address : `an address at ${address.slice(at + 1)}`;
}
