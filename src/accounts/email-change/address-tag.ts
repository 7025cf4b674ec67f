// How the audit log names an email address without holding it: a keyed tag (Keyring.identifierTag) of the address as
// stored (trimmed, lower case), so a responder who knows an address can find the events about it, and a copy of the
// log gives no addresses away.
import type { Keyring } from "../../crypto/keyring.ts";

/**
 * The tag of `address` in audit event data.
 *
 * @example
 * data: { from: addressTag(app.keyring, oldEmail), to: addressTag(app.keyring, newEmail) }
 */
export function addressTag(keyring: Pick<Keyring, "identifierTag">, address: string): string {
  return `id:${keyring.identifierTag(address.trim().toLowerCase())}`;
}
