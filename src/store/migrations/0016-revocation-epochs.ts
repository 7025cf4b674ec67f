// Migration 16: revocation by a counter kept in the database, not only by the clocks of the nodes.
// A stamp raised "now" on one node used to refuse sessions by their `created_at`, written by whichever node
// created them: a session created by a node whose clock ran ahead (or before a clock stepped back) had a
// `created_at` later than the stamp and survived "end every session". Each raise now also takes the next value
// of one counter, and each session, API token and email-change link records the counter's value when it was
// issued; a row issued before the raise holds a smaller value, whatever any clock said
// (docs/decisions/0009-revocation-epochs.md). Rows written before this migration hold 0: the next raise refuses them.
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const revocationEpochs: Migration = {
  version: 16,
  name: "revocation-epochs",
  async up(db) {
    // One row (id 1). A raise increments it in its transaction; an insert reads the committed value.
    await db.schema
      .createTable("revocation_counter")
      .addColumn("id", "integer", (c) => c.primaryKey())
      .addColumn("value", "bigint", (c) => c.notNull())
      .execute();
    await sql`INSERT INTO revocation_counter (id, value) VALUES (1, 0)`.execute(db);
    await db.schema.alterTable("revocation_stamps").addColumn("not_before_epoch", "bigint", (c) => c.notNull().defaultTo(0)).execute();
    // NOT NULL with 0 as the default: a row written without its epoch is refused by the next raise, never kept.
    for (const table of ["sessions", "api_tokens", "email_change_tokens"]) {
      await db.schema.alterTable(table).addColumn("issued_epoch", "bigint", (c) => c.notNull().defaultTo(0)).execute();
    }
  },
};
