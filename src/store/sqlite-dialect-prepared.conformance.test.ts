// Compiled hot-path statements (prepareHot) on SQLite and PostgreSQL: same rows and change counts as the
// builder, repeated parameters bind one value, and a statement never reads or writes inside another
// caller's open transaction (the one-connection SQLite case is where that could go wrong).
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../test/helpers/dialects.ts";
import { ManualClock } from "../lib/clock.ts";
import { migrate } from "./migrator.ts";
import { prepareHot } from "./sqlite-dialect-prepared.ts";

forEachDialect("compiled hot statements", (fx) => {
  it("reads rows and reports changed rows like the query builder, with a repeated parameter bound once", async () => {
    const db = await fx.fresh();
    await migrate(db, new ManualClock());
    await db.db.insertInto("flood_streaks").values([{ key: "k1", failures: 3, updated_at: 10 }, { key: "k2", failures: 7, updated_at: 10 }]).execute();
    const read = prepareHot<{ key: string; failures: number }>(db, "SELECT key, failures FROM flood_streaks WHERE key = $1 OR key = $2 ORDER BY key");
    assert.deepEqual((await read.all(["k2", "k1"])).map((r) => ({ key: r.key, failures: Number(r.failures) })), [{ key: "k1", failures: 3 }, { key: "k2", failures: 7 }]);
    assert.deepEqual(await read.all(["none", "nothing"]), []);
    const bump = prepareHot(db, "UPDATE flood_streaks SET failures = failures + $1, updated_at = $1 WHERE key = $2");
    assert.equal(await bump.run([5, "k1"]), 1);
    assert.equal(await bump.run([5, "missing"]), 0);
    const row = await db.db.selectFrom("flood_streaks").selectAll().where("key", "=", "k1").executeTakeFirstOrThrow();
    assert.deepEqual([Number(row.failures), Number(row.updated_at)], [8, 5]);
  });

  it("attack: a read issued while another caller's transaction is open never sees its rolled-back row", async () => {
    const db = await fx.fresh();
    await migrate(db, new ManualClock());
    const read = prepareHot<{ failures: number }>(db, "SELECT failures FROM flood_streaks WHERE key = $1");
    let reached!: () => void;
    const inside = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const doomed = db.transaction(async (trx) => {
      await trx.insertInto("flood_streaks").values({ key: "ghost", failures: 100, updated_at: 1 }).execute();
      reached();
      await gate;
      throw new Error("rolled back on purpose");
    });
    await inside;
    const during = read.all(["ghost"]);
    release();
    await assert.rejects(doomed, /rolled back on purpose/);
    assert.deepEqual(await during, [], "the uncommitted row was never visible");
    assert.deepEqual(await read.all(["ghost"]), []);
  });

  it("a write issued while another caller's transaction is open lands after it, not inside it", async () => {
    const db = await fx.fresh();
    await migrate(db, new ManualClock());
    const insert = prepareHot(db, "INSERT INTO flood_streaks (key, failures, updated_at) VALUES ($1, $2, $3)");
    let reached!: () => void;
    const inside = new Promise<void>((resolve) => (reached = resolve));
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const doomed = db.transaction(async (trx) => {
      await trx.insertInto("flood_streaks").values({ key: "theirs", failures: 1, updated_at: 1 }).execute();
      reached();
      await gate;
      throw new Error("rolled back on purpose");
    });
    await inside;
    const mine = insert.run(["mine", 2, 2]);
    release();
    await assert.rejects(doomed, /rolled back on purpose/);
    assert.equal(await mine, 1);
    const keys = (await db.db.selectFrom("flood_streaks").select("key").execute()).map((r) => r.key);
    assert.deepEqual(keys, ["mine"], "the other transaction's rollback did not take this write with it");
  });
});
