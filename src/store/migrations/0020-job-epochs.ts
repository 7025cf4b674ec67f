// Migration 20: jobs ordered by the database's counter, not by the clocks of the nodes that wrote them. A job records
// the counter's next value when it is created (`created_epoch`) and its value when it ends (`finished_epoch`, null
// while under way); the counter is the one revocation epochs use (migration 16). The undo of a containment job asks
// which other jobs may have run after it was created, and compared `created_at`/`finished_at` from different nodes'
// clocks: a later job on a node 1.5 s behind read as earlier, and the undo released users it still held
// (docs/decisions/0010-job-order-by-epoch.md). Rows written before this migration get created_epoch 0 and, when they
// had ended, finished_epoch 0: they come before every job created after it, and are ordered among themselves by
// time, as before.
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const jobEpochs: Migration = {
  version: 20,
  name: "job-epochs",
  async up(db) {
    await db.schema.alterTable("jobs").addColumn("created_epoch", "bigint", (c) => c.notNull().defaultTo(0)).execute();
    await db.schema.alterTable("jobs").addColumn("finished_epoch", "bigint").execute();
    await sql`UPDATE jobs SET finished_epoch = 0 WHERE finished_at IS NOT NULL`.execute(db);
  },
};
