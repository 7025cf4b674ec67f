// Migration 8: password reset tokens. Only a SHA-256 of each token's secret is stored, so a copy of the
// table cannot be used to reset anyone's password; each token lives 30 minutes and is used at most once.
import type { Migration } from "./types.ts";

export const passwordReset: Migration = {
  version: 8,
  name: "password-reset",
  async up(db) {
    await db.schema
      .createTable("password_reset_tokens")
      // "prt_" + 128 random bits: the public half of the link's token, used to find the row.
      .addColumn("id", "text", (c) => c.primaryKey())
      // Deleting a user deletes their pending resets.
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
      // SHA-256 (hex) of the secret half (256 random bits).
      .addColumn("secret_hash", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      // created_at + 30 minutes by default (ASVS 6.4.1: a short-lived, single-use recovery secret).
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      // Set once when the token is redeemed (or superseded); a used token never works again.
      .addColumn("used_at", "bigint")
      .execute();
    await db.schema.createIndex("password_reset_tokens_user").on("password_reset_tokens").columns(["user_id", "created_at"]).execute();
  },
};
