// Migration 10: containment change records keyed by the user's place in the job's scope (seq) instead of the
// user id. Batches walk the scope in seq order, so each batch now appends its records at the end of the primary
// key; keyed by a random user id, every batch wrote into pages all over the key (on SQLite each touched page is
// rewritten at every batch commit — docs/decisions/0005-bulk-containment-on-sqlite.md). Existing records keep
// every column; their seq is looked up in the job's recorded scope, and the migration refuses to drop a record
// whose user is missing from it.
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const containChangesBySeq: Migration = {
  version: 10,
  name: "contain-changes-by-seq",
  async up(db) {
    await db.schema
      .createTable("contain_changes_v10")
      .addColumn("job_id", "text", (c) => c.notNull())
      .addColumn("lever", "text", (c) => c.notNull())
      // The user's seq in contain_job_users for this job: batch k holds seq k*size+1 … (k+1)*size.
      .addColumn("seq", "bigint", (c) => c.notNull())
      .addColumn("user_id", "text", (c) => c.notNull())
      .addColumn("entity", "text", (c) => c.notNull())
      .addColumn("before", "text", (c) => c.notNull())
      .addColumn("after", "text")
      .addColumn("undo_status", "text")
      .addPrimaryKeyConstraint("contain_changes_seq_pk", ["job_id", "lever", "seq", "entity"])
      .execute();
    await sql`
      insert into contain_changes_v10 (job_id, lever, seq, user_id, entity, before, after, undo_status)
      select c.job_id, c.lever, j.seq, c.user_id, c.entity, c.before, c.after, c.undo_status
      from contain_changes c join contain_job_users j on j.job_id = c.job_id and j.user_id = c.user_id`.execute(db);
    const count = async (table: string): Promise<number> => Number((await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}`.execute(db)).rows[0]?.n ?? 0);
    const had = await count("contain_changes");
    const moved = await count("contain_changes_v10");
    if (moved !== had) {
      throw new Error(`migration 10: ${had - moved} of ${had} containment change records name a user missing from their job's recorded scope; nothing was changed (the migration rolls back)`);
    }
    await db.schema.dropTable("contain_changes").execute();
    await db.schema.alterTable("contain_changes_v10").renameTo("contain_changes").execute();
  },
};
