// Migration 7: containment jobs (the resolved scope, the before/after record for undo) and linked SSO
// identities (filled by SSO later; the unlink-sso lever empties it).
import type { Migration } from "./types.ts";

export const version = 7;

export const contain: Migration = {
  version,
  name: "contain",
  async up(db) {
    await db.schema
      .createTable("contain_job_users")
      .addColumn("job_id", "text", (c) => c.notNull())
      .addColumn("seq", "bigint", (c) => c.notNull())
      .addColumn("user_id", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("contain_job_users_pk", ["job_id", "seq"])
      .execute();
    await db.schema
      .createTable("contain_changes")
      .addColumn("job_id", "text", (c) => c.notNull())
      .addColumn("lever", "text", (c) => c.notNull())
      .addColumn("user_id", "text", (c) => c.notNull())
      .addColumn("entity", "text", (c) => c.notNull())
      .addColumn("before", "text", (c) => c.notNull())
      .addColumn("after", "text")
      .addColumn("undo_status", "text")
      .addPrimaryKeyConstraint("contain_changes_pk", ["job_id", "lever", "user_id", "entity"])
      .execute();
    await db.schema
      .createTable("identities")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
      .addColumn("provider", "text", (c) => c.notNull())
      .addColumn("subject", "text", (c) => c.notNull())
      .addColumn("access_token_ct", "text")
      .addColumn("refresh_token_ct", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("last_used_at", "bigint")
      .execute();
    await db.schema.createIndex("identities_user").on("identities").column("user_id").execute();
    await db.schema.createIndex("identities_provider_subject").on("identities").columns(["provider", "subject"]).unique().execute();
  },
};
