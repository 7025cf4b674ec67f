// Migration 4: browser sessions (only a hash of each secret is stored) and revocation stamps, which let a
// containment job invalidate every session in a scope at once before it deletes rows.
import type { Migration } from "./types.ts";

export const sessions: Migration = {
  version: 4,
  name: "sessions",
  async up(db) {
    await db.schema
      .createTable("sessions")
      // "ses_" + 128 random bits: the public half of the cookie, used to find the row.
      .addColumn("id", "text", (c) => c.primaryKey())
      // Null for a pre-login (anonymous) session; deleting a user deletes the user's sessions.
      .addColumn("user_id", "text", (c) => c.references("users.id").onDelete("cascade"))
      // SHA-256 (hex) of the secret half: a copy of this table cannot be replayed as a cookie.
      .addColumn("secret_hash", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("last_seen_at", "bigint", (c) => c.notNull())
      // Absolute end of life (NIST SP 800-63B AAL2: 12 hours by default), fixed at creation.
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .addColumn("ip", "text")
      .addColumn("user_agent", "text")
      // Authenticator assurance: 0 none (pre-login), 1 password, 2 multi-factor.
      .addColumn("aal", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex("sessions_user").on("sessions").column("user_id").execute();
    await db.schema.createIndex("sessions_expires").on("sessions").column("expires_at").execute();

    // scope is 'global' or 'user:<id>'; a session created before its scope's not_before is refused.
    await db.schema
      .createTable("revocation_stamps")
      .addColumn("scope", "text", (c) => c.primaryKey())
      .addColumn("not_before", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();
  },
};
