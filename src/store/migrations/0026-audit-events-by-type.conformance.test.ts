// Migration 26 on both dialects: the audit log is indexed by (type, seq), and on SQLite a page of one event type is
// read from that index, not by walking the log from the cursor (the plan is SQLite's own answer, not a timing).
import assert from "node:assert/strict";
import { it } from "node:test";
import { sql } from "kysely";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import { migrate } from "../migrator.ts";

forEachDialect("migration 26 (audit events by type)", (fx) => {
  it("indexes the audit log by type in log order, and a page of one type is read from that index", async () => {
    const database = await fx.empty();
    assert.equal((await migrate(database, new ManualClock(Date.UTC(2026, 11, 5)))).error, undefined);
    if (database.dialect === "postgres") {
      const { rows } = await sql<{ indexdef: string }>`SELECT indexdef FROM pg_indexes WHERE indexname = 'audit_events_type_seq'`.execute(database.db);
      assert.match(rows[0]?.indexdef ?? "", /\(type, seq\)/);
      return;
    }
    const { rows } = await sql<{ detail: string }>`EXPLAIN QUERY PLAN SELECT seq FROM audit_events WHERE seq > ${0} AND type = ${"auth.mfa.removed"} ORDER BY seq LIMIT 51`.execute(database.db);
    assert.ok(rows.some((r) => /audit_events_type_seq/.test(r.detail)), JSON.stringify(rows));
  });
});
