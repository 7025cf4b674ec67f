// Migration 1: bookkeeping, the keyring, the audit chain and check history.
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const core: Migration = {
  version: 1,
  name: "core",
  async up(db, dialect) {
    await db.schema
      .createTable("bulwark_meta")
      .addColumn("name", "text", (c) => c.primaryKey())
      .addColumn("value", "text", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("keyring_keys")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("purpose", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("wrapped", "text", (c) => c.notNull())
      .addColumn("public_key", "text")
      .execute();

    // seq is the chain position. On SQLite an INTEGER PRIMARY KEY is the rowid: the fastest append.
    await db.schema
      .createTable("audit_events")
      .addColumn("seq", dialect === "sqlite" ? "integer" : "bigint", (c) => c.primaryKey())
      .addColumn("id", "text", (c) => c.notNull().unique())
      .addColumn("type", "text", (c) => c.notNull())
      .addColumn("actor", "text", (c) => c.notNull())
      .addColumn("subject", "text", (c) => c.notNull())
      .addColumn("data", "text", (c) => c.notNull())
      .addColumn("at", "bigint", (c) => c.notNull())
      .addColumn("request_id", "text", (c) => c.notNull())
      .addColumn("prev_hash", "text", (c) => c.notNull())
      .addColumn("hash", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("audit_events_at").on("audit_events").column("at").execute();
    await db.schema.createIndex("audit_events_type").on("audit_events").columns(["type", "at"]).execute();

    // The head records the last event's position and hash, so deleting the newest event is detected too.
    await db.schema
      .createTable("audit_head")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .addColumn("seq", "bigint", (c) => c.notNull())
      .addColumn("hash", "text", (c) => c.notNull())
      .execute();
    await db.insertInto("audit_head").values({ id: 1, seq: 0, hash: "0".repeat(64) }).execute();
    if (dialect === "sqlite") {
      await sql`CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
        BEGIN UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1; END`.execute(db);
    } else {
      await sql`CREATE FUNCTION bulwark_audit_advance_head() RETURNS trigger AS $$
        BEGIN UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1; RETURN NEW; END
        $$ LANGUAGE plpgsql`.execute(db);
      await sql`CREATE TRIGGER audit_events_advance_head AFTER INSERT ON audit_events
        FOR EACH ROW EXECUTE FUNCTION bulwark_audit_advance_head()`.execute(db);
    }

    await db.schema
      .createTable("audit_checkpoints")
      .addColumn("seq", "bigint", (c) => c.primaryKey())
      .addColumn("hash", "text", (c) => c.notNull())
      .addColumn("at", "bigint", (c) => c.notNull())
      .addColumn("key_id", "text", (c) => c.notNull())
      .addColumn("signature", "text", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("check_runs")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("check_name", "text", (c) => c.notNull())
      .addColumn("at", "bigint", (c) => c.notNull())
      .addColumn("findings", "integer", (c) => c.notNull())
      .addColumn("max_severity", "text")
      .addColumn("extra", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("check_runs_name_at").on("check_runs").columns(["check_name", "at"]).execute();
    await db.schema
      .createTable("check_findings")
      .addColumn("run_id", "text", (c) => c.notNull().references("check_runs.id").onDelete("cascade"))
      .addColumn("ord", "integer", (c) => c.notNull())
      .addColumn("finding_id", "text", (c) => c.notNull())
      .addColumn("severity", "text", (c) => c.notNull())
      .addColumn("title", "text", (c) => c.notNull())
      .addColumn("detail", "text", (c) => c.notNull())
      .addColumn("evidence", "text", (c) => c.notNull())
      .addColumn("remediation", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("check_findings_pk", ["run_id", "ord"])
      .execute();
  },
};
