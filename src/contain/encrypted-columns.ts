// The registry of encrypted columns that key rotation re-encrypts. A module that stores a keyring ciphertext
// registers its column here, so `rotate-keys` never leaves data under a retired key.
import { SEALED_BODY_MARKER, SINGLE_USE_LINK_KINDS } from "../notify/link-kinds.ts";

export interface EncryptedColumn {
  table: string;
  column: string;
  /** The primary key column; its value is the `row` the ciphertext is bound to. */
  idColumn: string;
  /**
   * When set, only values that begin with this marker hold a ciphertext (the rest of the value), and the marker is
   * kept on the re-encrypted value. Other values are left alone.
   */
  marker?: string;
  /** When set, only rows whose `column` is one of `values` hold ciphertexts; other rows are left alone. */
  onlyRows?: { column: string; values: readonly string[] };
}

const columns: EncryptedColumn[] = [
  { table: "identities", column: "access_token_ct", idColumn: "id" },
  { table: "identities", column: "refresh_token_ct", idColumn: "id" },
  // TOTP secrets (src/accounts/mfa/totp.ts), bound to (mfa_totp, secret_ct, user_id).
  { table: "mfa_totp", column: "secret_ct", idColumn: "user_id" },
  // A replacement app waiting for its first code (migration 30), bound to (mfa_totp, pending_secret_ct, user_id).
  { table: "mfa_totp", column: "pending_secret_ct", idColumn: "user_id" },
  // Bodies of single-use link mails waiting in the outbox (src/notify/outbox.ts, LinkCipher): the marker then the
  // ciphertext, bound to (outbox_messages, column, id). Delivered ones hold a fixed text instead. What the body was
  // sealed for (recipient, kind, subject: ADR 0020) heads the sealed plaintext, not the context, so a re-encryption
  // under this same (table, column, id) keeps it as long as it re-seals the bytes it opened unchanged.
  ...(["body_text", "body_html"] as const).map((column) => ({
    table: "outbox_messages", column, idColumn: "id", marker: SEALED_BODY_MARKER, onlyRows: { column: "kind", values: SINGLE_USE_LINK_KINDS },
  })),
];

/**
 * Adds an encrypted column (ignored when already registered).
 *
 * @example
 * registerEncryptedColumn({ table: "mfa_totp", column: "secret_ct", idColumn: "user_id" });
 */
export function registerEncryptedColumn(column: EncryptedColumn): void {
  if (!columns.some((c) => c.table === column.table && c.column === column.column)) columns.push(column);
}

export function encryptedColumns(): readonly EncryptedColumn[] {
  return columns;
}
