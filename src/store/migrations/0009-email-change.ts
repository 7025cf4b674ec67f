// Migration 9: pending email-address changes. Each row is one request: the address asked for and, when a link
// was mailed, a SHA-256 of its token's secret (a copy of the table confirms nobody's change); 30 minutes, single use.
import type { Migration } from "./types.ts";

export const emailChange: Migration = {
  version: 9,
  name: "email-change",
  async up(db) {
    await db.schema
      .createTable("email_change_tokens")
      // "ect_" + 128 random bits: the public half of the link's token, used to find the row.
      .addColumn("id", "text", (c) => c.primaryKey())
      // Deleting a user deletes their pending changes.
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
      // The address as the user typed it (trimmed); re-checked against other accounts when the link is used.
      .addColumn("new_email", "text", (c) => c.notNull())
      // SHA-256 (hex) of the secret half (256 random bits).
      .addColumn("secret_hash", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      // created_at + 30 minutes (ASVS 6.4.1's short-lived single-use secret, applied to the address change).
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      // Set when redeemed or superseded (a request for an address already taken is born used: no link exists).
      .addColumn("used_at", "bigint")
      .execute();
    // The per-user hourly count and the supersession both read by user, newest first.
    await db.schema.createIndex("email_change_tokens_user").on("email_change_tokens").columns(["user_id", "created_at"]).execute();
  },
};
