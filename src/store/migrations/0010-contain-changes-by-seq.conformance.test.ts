// Migration 10 moves containment change records to a key by seq without losing one, on both dialects, and
// refuses (rolling back) when a record's user is missing from its job's recorded scope.
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import type { Database } from "../database.ts";
import { migrate } from "../migrator.ts";
import { MIGRATIONS } from "./index.ts";

const BEFORE = MIGRATIONS.filter((m) => m.version < 10);

async function atVersion9(db: Database, records: Array<{ job: string; user: string; entity: string; undo: string | null }>, scope: Array<{ job: string; seq: number; user: string }>): Promise<void> {
  assert.equal((await migrate(db, new ManualClock(), BEFORE)).error, undefined);
  const k = db.db as unknown as import("kysely").Kysely<any>;
  for (const s of scope) await k.insertInto("contain_job_users").values({ job_id: s.job, seq: s.seq, user_id: s.user }).execute();
  for (const r of records) {
    await k.insertInto("contain_changes").values({ job_id: r.job, lever: "lock-accounts", user_id: r.user, entity: r.entity, before: `{"u":"${r.user}"}`, after: null, undo_status: r.undo }).execute();
  }
}

forEachDialect("migration 10 (contain changes keyed by seq)", (fx) => {
  it("keeps every record and gives it the user's seq in its job", async () => {
    const db = await fx.empty();
    await atVersion9(db,
      [{ job: "j1", user: "usr_b", entity: "", undo: null }, { job: "j1", user: "usr_a", entity: "admin", undo: "restored" }, { job: "j2", user: "usr_a", entity: "", undo: "skipped" }],
      [{ job: "j1", seq: 1, user: "usr_b" }, { job: "j1", seq: 2, user: "usr_a" }, { job: "j2", seq: 7, user: "usr_a" }]);
    const outcome = await migrate(db, new ManualClock());
    assert.equal(outcome.error, undefined);
    const rows = await db.db.selectFrom("contain_changes").selectAll().orderBy("job_id").orderBy("seq").execute();
    assert.deepEqual(rows.map((r) => ({ job: r.job_id, seq: Number(r.seq), user: r.user_id, entity: r.entity, before: r.before, undo: r.undo_status })), [
      { job: "j1", seq: 1, user: "usr_b", entity: "", before: '{"u":"usr_b"}', undo: null },
      { job: "j1", seq: 2, user: "usr_a", entity: "admin", before: '{"u":"usr_a"}', undo: "restored" },
      { job: "j2", seq: 7, user: "usr_a", entity: "", before: '{"u":"usr_a"}', undo: "skipped" },
    ]);
    // The new key: one record per (job, lever, seq, entity).
    await assert.rejects(db.db.insertInto("contain_changes").values({ job_id: "j1", lever: "lock-accounts", seq: 1, user_id: "usr_b", entity: "", before: "{}", after: null, undo_status: null }).execute());
  });

  it("refuses to drop a record whose user is not in its job's scope, and leaves version 9 as it was", async () => {
    const db = await fx.empty();
    await atVersion9(db, [{ job: "j1", user: "usr_a", entity: "", undo: null }, { job: "j1", user: "usr_lost", entity: "", undo: null }], [{ job: "j1", seq: 1, user: "usr_a" }]);
    const outcome = await migrate(db, new ManualClock());
    assert.equal(outcome.error?.code, "BULWARK_ERR_MIGRATION");
    assert.match(String((outcome.error as Error & { cause?: Error }).cause?.message), /1 of 2 containment change records/);
    const k = db.db as unknown as import("kysely").Kysely<any>;
    const rows = await k.selectFrom("contain_changes").select(["user_id"]).orderBy("user_id").execute();
    assert.deepEqual(rows.map((r: { user_id: string }) => r.user_id), ["usr_a", "usr_lost"], "both records are still there, in the old table");
    const applied = await db.db.selectFrom("bulwark_migrations").select("version").execute();
    assert.equal(Math.max(...applied.map((r) => Number(r.version))), 9);
  });
});
