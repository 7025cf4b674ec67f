// Opaque pagination cursors: the position is sealed with the keyring (AES-256-GCM) and bound to the listing
// and its filter, so a cursor cannot be forged, edited, or replayed against another query (ASVS 2.2.1:
// validate input against an expected structure). Works across nodes and restarts: every node has the keyring.
import type { Keyring } from "../../crypto/keyring.ts";
import { apiErrors } from "./errors.ts";

// A cursor is short; anything longer is not one of ours and is refused before decryption.
const MAX_CURSOR = 512;

/**
 * Seals a position for `listing` (e.g. "users") under a filter key (e.g. the search text).
 *
 * @example
 * const next = sealCursor(keyring, "users", q, { after: lastId });
 */
export function sealCursor(keyring: Keyring, listing: string, filter: string, position: Record<string, string | number>): string {
  return keyring.encrypt(JSON.stringify(position), { table: "api_cursor", column: listing, row: filter });
}

/** Opens a cursor issued by `sealCursor` for the same listing and filter; 400 for anything else. */
export function openCursor(keyring: Keyring, listing: string, filter: string, cursor: string): Record<string, unknown> {
  if (cursor.length > MAX_CURSOR) throw apiErrors.badCursor();
  let position: unknown;
  try {
    position = JSON.parse(keyring.decryptString(cursor, { table: "api_cursor", column: listing, row: filter }));
  } catch (cause) {
    throw Object.assign(apiErrors.badCursor(), { cause });
  }
  if (!position || typeof position !== "object" || Array.isArray(position)) throw apiErrors.badCursor();
  return position as Record<string, unknown>;
}
