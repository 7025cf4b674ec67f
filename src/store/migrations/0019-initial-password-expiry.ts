// Migration 19: an initial password an administrator set or had generated (`users create --generate-password`,
// POST /api/v1/users with a password) expires. `password_initial_expires_at` (epoch ms) is set when such an account
// is created and cleared whenever the owner sets a password of their own; past it, the initial password signs
// nobody in (ASVS 6.4.1). Kept apart from password_must_change, which the expire-passwords lever also sets on
// users' own passwords: those must keep working until changed. Existing rows get null (no expiry): which of them
// still hold an initial password cannot be told.
import type { Migration } from "./types.ts";

export const initialPasswordExpiry: Migration = {
  version: 19,
  name: "initial-password-expiry",
  async up(db) {
    // bigint like every other epoch-ms column: PostgreSQL's integer stops at 2^31 (January 1970 in ms).
    await db.schema.alterTable("users").addColumn("password_initial_expires_at", "bigint").execute();
  },
};
