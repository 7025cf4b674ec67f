// Migration 28: two partial indexes on the outbox, each in the order a bounded read walks it. `outbox_messages_aged`
// serves the claim's aged share (Outbox.claim: mail other than the notices, oldest due first, whatever its priority):
// with only (priority, next_attempt_at) indexed, every claim during a 100,000-message campaign sorted the whole aged
// queue to keep a quarter of its batch (a sequential scan on PostgreSQL, a temporary B-tree inside the claim's write on
// SQLite), O(queue) per claim and O(queue²) to drain it. `outbox_messages_dead` serves `requeue-dead` and `status`,
// which page dead mail by (created_at, id): a relay that refused a flood of sign-up links leaves as many dead rows.
// Both conditions are literal SQL, repeated word for word by the queries (src/notify/outbox.ts): SQLite uses a
// partial index only when the query states its condition, which a bound parameter does not.
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const outboxAgedAndDead: Migration = {
  version: 28,
  name: "outbox-aged-and-dead",
  async up(db) {
    // Notices (priority 0) are left out: the aged share never takes them, and a notice flood would otherwise sit in
    // the index between the aged mail a claim walks to.
    await db.schema.createIndex("outbox_messages_aged").on("outbox_messages").column("next_attempt_at")
      .where(sql<boolean>`"status" in ('queued', 'failed', 'sending') and "priority" > 0`).execute();
    await db.schema.createIndex("outbox_messages_dead").on("outbox_messages").columns(["created_at", "id"])
      .where(sql<boolean>`"status" = 'dead'`).execute();
  },
};
