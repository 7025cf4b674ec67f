// The registry of encrypted columns that key rotation re-encrypts. A module that stores a keyring ciphertext
// registers its column here, so `rotate-keys` never leaves data under a retired key.

export interface EncryptedColumn {
  table: string;
  column: string;
  /** The primary key column; its value is the `row` the ciphertext is bound to. */
  idColumn: string;
}

const columns: EncryptedColumn[] = [
  { table: "identities", column: "access_token_ct", idColumn: "id" },
  { table: "identities", column: "refresh_token_ct", idColumn: "id" },
  // TOTP secrets (src/accounts/mfa/totp.ts), bound to (mfa_totp, secret_ct, user_id).
  { table: "mfa_totp", column: "secret_ct", idColumn: "user_id" },
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
