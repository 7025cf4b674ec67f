// Migration 2: user accounts, flood control, and resumable jobs (hash migration, containment levers).
import type { Migration } from "./types.ts";

export const accounts: Migration = {
  version: 2,
  name: "accounts",
  async up(db) {
    await db.schema
      .createTable("users")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("email", "text", (c) => c.notNull())
      // Lower-cased, trimmed: the key logins and imports look accounts up by.
      .addColumn("email_key", "text", (c) => c.notNull().unique())
      .addColumn("username", "text")
      .addColumn("username_key", "text", (c) => c.unique())
      .addColumn("display_name", "text")
      .addColumn("status", "text", (c) => c.notNull().defaultTo("active"))
      .addColumn("locked_at", "bigint")
      .addColumn("locked_reason", "text")
      .addColumn("password_hash", "text")
      .addColumn("password_scheme", "text")
      .addColumn("password_changed_at", "bigint")
      .addColumn("password_must_change", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("password_invalidated_at", "bigint")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addColumn("last_login_at", "bigint")
      .addColumn("last_login_ip", "text")
      .addColumn("external_source", "text")
      .addColumn("external_id", "text")
      .addColumn("seeded", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.createIndex("users_password_scheme").on("users").column("password_scheme").execute();
    await db.schema.createIndex("users_last_login").on("users").column("last_login_at").execute();
    await db.schema.createIndex("users_created").on("users").column("created_at").execute();
    await db.schema.createIndex("users_external").on("users").columns(["external_source", "external_id"]).unique().execute();

    // Failed attempts in a sliding window, keyed by a hash of the identifier or IP (no raw PII here).
    await db.schema
      .createTable("flood_events")
      .addColumn("scope", "text", (c) => c.notNull())
      .addColumn("key", "text", (c) => c.notNull())
      .addColumn("at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("flood_events_lookup").on("flood_events").columns(["scope", "key", "at"]).execute();
    await db.schema.createIndex("flood_events_at").on("flood_events").column("at").execute();
    // Consecutive failures per identifier since the last success (the hard cap of ASVS 6.3.1).
    await db.schema
      .createTable("flood_streaks")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("failures", "integer", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .execute();

    // Resumable jobs: a checkpoint per batch, so a killed job resumes where it stopped.
    await db.schema
      .createTable("jobs")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("spec", "text", (c) => c.notNull())
      .addColumn("cursor", "text")
      .addColumn("total", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("done", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("counts", "text", (c) => c.notNull().defaultTo("{}"))
      .addColumn("actor", "text", (c) => c.notNull())
      .addColumn("incident_id", "text")
      .addColumn("error", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("updated_at", "bigint", (c) => c.notNull())
      .addColumn("finished_at", "bigint")
      .execute();
    await db.schema.createIndex("jobs_kind_status").on("jobs").columns(["kind", "status"]).execute();
  },
};
