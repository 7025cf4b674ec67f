// Migration 3: the durable email outbox (security notices now, incident campaigns of 100,000+ later).
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const notify: Migration = {
  version: 3,
  name: "notify",
  async up(db) {
    await db.schema
      .createTable("outbox_messages")
      .addColumn("id", "text", (c) => c.primaryKey())
      // Unique: the same logical message enqueued twice (a retried request, a resumed job) is one row.
      .addColumn("idempotency_key", "text", (c) => c.notNull().unique())
      .addColumn("to_address", "text", (c) => c.notNull())
      .addColumn("subject", "text", (c) => c.notNull())
      .addColumn("body_text", "text", (c) => c.notNull())
      .addColumn("body_html", "text")
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("priority", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
      .addColumn("last_error", "text")
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("sent_at", "bigint")
      .addColumn("claimed_by", "text")
      .addColumn("claimed_until", "bigint")
      .addColumn("provider_message_id", "text")
      .addColumn("campaign_id", "text")
      .execute();
    // The claim query's index. Partial: sent and dead rows (nearly all of them, after a campaign) are
    // not in it, so finding due work stays cheap however large the table grows. `sending` rows are in
    // it because their next_attempt_at is the lease expiry: an abandoned claim becomes due by itself.
    await db.schema
      .createIndex("outbox_messages_due")
      .on("outbox_messages")
      .columns(["priority", "next_attempt_at"])
      .where(sql.ref("status"), "in", ["queued", "failed", "sending"])
      .execute();
    await db.schema.createIndex("outbox_messages_campaign").on("outbox_messages").columns(["campaign_id", "status"]).execute();
  },
};
