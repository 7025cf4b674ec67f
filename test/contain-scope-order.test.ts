// The order a containment job numbers its scope in (contain_job_users.seq), which its batches walk: on SQLite the
// users' storage order (rowid), so that a batch rewrites neighbouring pages of the users table (ids are random: id
// order would spread every batch over the whole table); on PostgreSQL the ids' order. For --all and for a filtered
// scope alike. docs/decisions/0005-bulk-containment-on-sqlite.md.
import assert from "node:assert/strict";
import { it } from "node:test";
import { sql } from "kysely";
import { createContainJob } from "../src/contain/index.ts";
import { openContainFixture, seedContainUsers } from "./helpers/contain-fixture.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const NOW = Date.UTC(2026, 11, 7);
const USERS = 40;

forEachDialect("a containment job numbers its scope", (dfx) => {
  it("in storage order on SQLite, in id order on PostgreSQL, for --all and for a filtered scope", async () => {
    const fx = await openContainFixture(await dfx.fresh(), { now: NOW });
    // Stored in an order unlike the ids' (usr_0000… inserted from the last to the first, then every other one
    // renamed to sort first), as random ids are.
    const ids = await seedContainUsers(fx, NOW, USERS);
    for (const [i, id] of ids.entries()) if (i % 2 === 0) await fx.database.db.updateTable("users").set({ id: `aaa_${String(USERS - i).padStart(4, "0")}` }).where("id", "=", id).execute();
    const stored = fx.database.dialect === "sqlite"
      ? (await sql<{ id: string }>`select id from users order by rowid`.execute(fx.database.db)).rows.map((r) => r.id)
      : (await fx.database.db.selectFrom("users").select("id").orderBy("id").execute()).map((r) => r.id);
    if (fx.database.dialect === "sqlite") assert.notDeepEqual(stored, [...stored].sort(), "the fixture's storage order differs from the ids' order");
    const expected = fx.database.dialect === "sqlite" ? stored : [...stored].sort();

    const numbered = async (jobId: string): Promise<string[]> =>
      (await fx.database.db.selectFrom("contain_job_users").select(["seq", "user_id"]).where("job_id", "=", jobId).orderBy("seq").execute()).map((r) => r.user_id);
    const all = await createContainJob(fx, { levers: ["expire-passwords"], scope: { all: true }, actor: "t" });
    assert.deepEqual(await numbered(all.id), expected);

    // A filtered scope: the users created in the second half, numbered in the same order among themselves.
    const half = NOW - 400 * 86_400_000 + USERS / 2;
    const late = await fx.database.db.selectFrom("users").select("id").where("created_at", ">=", half).execute();
    const filtered = await createContainJob(fx, { levers: ["expire-passwords"], scope: { createdAfter: half }, actor: "t" });
    const lateIds = new Set(late.map((r) => r.id));
    assert.equal(lateIds.size, USERS / 2);
    assert.deepEqual(await numbered(filtered.id), expected.filter((id) => lateIds.has(id)));
  });
});
