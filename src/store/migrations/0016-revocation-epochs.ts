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
  async up(db, dialect) {
    if (dialect === "postgres") {
      // A sequence, not a row: nextval is not transactional, so a raise holds no lock until it commits. A row
      // updated in the raise's transaction would serialise every raise (password changes, resets, locks and
      // containment jobs of unrelated users), and one that also waits on a per-user lock could deadlock with
      // another. The view and its INSTEAD OF trigger give both dialects the same statements: read
      // `SELECT value FROM revocation_counter`, take the next with `UPDATE revocation_counter SET value = value + 1
      // RETURNING value`.
      await sql`CREATE SEQUENCE revocation_epochs MINVALUE 0 START WITH 0`.execute(db);
      await sql`SELECT nextval('revocation_epochs')`.execute(db); // last_value 0, taken: the first raise gets 1
      // Through a function, not FROM the sequence: an UPDATE of a view locks the rows of the relations it reads, and
      // a sequence's row cannot be locked.
      await sql`CREATE FUNCTION revocation_epoch_last() RETURNS bigint LANGUAGE sql VOLATILE AS 'SELECT last_value FROM revocation_epochs'`.execute(db);
      await sql`CREATE VIEW revocation_counter AS SELECT CAST(1 AS INTEGER) AS id, revocation_epoch_last() AS value`.execute(db);
      await sql.raw(`CREATE FUNCTION revocation_counter_next() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.value := nextval('revocation_epochs'); RETURN NEW; END $$`).execute(db);
      await sql`CREATE TRIGGER revocation_counter_next INSTEAD OF UPDATE ON revocation_counter FOR EACH ROW EXECUTE FUNCTION revocation_counter_next()`.execute(db);
    } else {
      // One row (id 1). SQLite runs one write transaction at a time, so a raise's UPDATE orders it among all writes.
      await db.schema
        .createTable("revocation_counter")
        .addColumn("id", "integer", (c) => c.primaryKey())
        .addColumn("value", "bigint", (c) => c.notNull())
        .execute();
      await sql`INSERT INTO revocation_counter (id, value) VALUES (1, 0)`.execute(db);
    }
    await db.schema.alterTable("revocation_stamps").addColumn("not_before_epoch", "bigint", (c) => c.notNull().defaultTo(0)).execute();
    // NOT NULL with 0 as the default: a row written without its epoch is refused by the next raise, never kept.
    for (const table of ["sessions", "api_tokens", "email_change_tokens"]) {
      await db.schema.alterTable(table).addColumn("issued_epoch", "bigint", (c) => c.notNull().defaultTo(0)).execute();
    }
  },
};
