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
 * const next = await sealCursor(keyring, "users", q, { after: lastId });
 */
export async function sealCursor(keyring: Keyring, listing: string, filter: string, position: Record<string, string | number>): Promise<string> {
  // seal/unseal, not encrypt/decrypt: after a key rotation by another process, a cursor one node issued opens
  // on every other without a restart.
  return keyring.seal(JSON.stringify(position), { table: "api_cursor", column: listing, row: filter });
}

/** Opens a cursor issued by `sealCursor` for the same listing and filter; 400 for anything else. */
export async function openCursor(keyring: Keyring, listing: string, filter: string, cursor: string): Promise<Record<string, unknown>> {
  if (cursor.length > MAX_CURSOR) throw apiErrors.badCursor();
  let position: unknown;
  try {
    position = JSON.parse(await keyring.unsealString(cursor, { table: "api_cursor", column: listing, row: filter }));
  } catch (cause) {
    throw Object.assign(apiErrors.badCursor(), { cause });
  }
  if (!position || typeof position !== "object" || Array.isArray(position)) throw apiErrors.badCursor();
  return position as Record<string, unknown>;
}

/** A place in a listing ordered newest first, then by id: the last row's creation time and id (tokens, jobs). */
export interface KeysetPosition {
  createdAt: number;
  id: string;
}

/** Seals a keyset position (see sealCursor). */
export function sealPosition(keyring: Keyring, listing: string, filter: string, position: KeysetPosition): Promise<string> {
  return sealCursor(keyring, listing, filter, { c: position.createdAt, i: position.id });
}

/** Opens a cursor sealed by sealPosition for the same listing and filter; 400 for anything else. */
export async function openPosition(keyring: Keyring, listing: string, filter: string, cursor: string): Promise<KeysetPosition> {
  const position = await openCursor(keyring, listing, filter, cursor);
  if (typeof position["c"] !== "number" || typeof position["i"] !== "string") throw apiErrors.badCursor();
  return { createdAt: position["c"], id: position["i"] };
}
