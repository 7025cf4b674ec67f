// Migration 17: a short-lived record of each session a rotation (login, step-up, re-authentication) replaced.
// A request that raced the rotation with the old cookie used to find no row, answer "unknown" and clear the
// cookie; when that answer reached the browser after the rotation's, it deleted the new cookie and signed the
// user out. The record lets validation tell "replaced a moment ago" from "never existed" (the old cookie is still
// refused, but not cleared). Kept for a minute, then purged with expired sessions.
import type { Migration } from "./types.ts";

export const replacedSessions: Migration = {
  version: 17,
  name: "replaced-sessions",
  async up(db) {
    await db.schema
      .createTable("replaced_sessions")
      // The replaced session's id and secret hash: only its holder can learn that it was replaced.
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("secret_hash", "text", (c) => c.notNull())
      .addColumn("replaced_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("replaced_sessions_at").on("replaced_sessions").column("replaced_at").execute();
  },
};
