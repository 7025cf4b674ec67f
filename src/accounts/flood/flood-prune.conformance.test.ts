// The maintenance pass's prune of flood-control window events, on SQLite and PostgreSQL: oldest first, about
// PRUNE_BATCH events a statement (one DELETE of a whole credential-stuffing hour held SQLite's one write lock for
// seconds: test/lock-holds-red-team.test.ts), and still exactly the events too old to count under any window — none
// newer, none left behind, events sharing a batch's last millisecond included (ASVS 6.3.1, 13.1.3).
import assert from "node:assert/strict";
import { it } from "node:test";
import { forEachDialect } from "../../../test/helpers/dialects.ts";
import { ManualClock } from "../../lib/clock.ts";
import type { Database } from "../../store/database.ts";
import { DRUPAL_FLOOD_POLICY, FloodControl, PRUNE_BATCH } from "./flood.ts";
import { keyedDigest } from "../../crypto/tokens.ts";

const floodKeyOf = (text: string): string => keyedDigest(new Uint8Array(32).fill(0x3c), text);
const HOUR_MS = 3_600_000;
const HORIZON_MS = Math.max(DRUPAL_FLOOD_POLICY.ipWindowMs, DRUPAL_FLOOD_POLICY.accountWindowMs);

async function insertEvents(db: Database, times: number[]): Promise<void> {
  for (let i = 0; i < times.length; i += 1000) {
    await db.db.insertInto("flood_events")
      .values(times.slice(i, i + 1000).map((at, j) => ({ scope: j % 2 ? "ip" : "account", key: `k${i + j}`, at, via: "" })))
      .execute();
  }
}

async function remaining(db: Database): Promise<number[]> {
  return (await db.db.selectFrom("flood_events").select("at").orderBy("at").execute()).map((r) => Number(r.at));
}

forEachDialect("flood control's prune", (fx) => {
  it("removes every event past the longest window in several batches — the ones sharing a batch's edge millisecond with it — and keeps every newer one", async () => {
    const db = await fx.fresh();
    const clock = new ManualClock(Date.UTC(2026, 10, 1));
    const flood = new FloodControl({ database: db, clock, keyOf: floodKeyOf });
    const horizon = clock.now() - HORIZON_MS;
    const old = Array.from({ length: 2 * PRUNE_BATCH + 123 }, (_, i) => horizon - 10 * HOUR_MS + i);
    // Three more at the first batch's edge (the PRUNE_BATCH-th oldest event's millisecond) and three at the horizon itself.
    const edge = old[PRUNE_BATCH - 1]!;
    const atEdgeAndHorizon = [edge, edge, edge, horizon, horizon, horizon];
    const recent = [horizon + 1, horizon + 2, clock.now() - 1, clock.now()];
    await insertEvents(db, [...old, ...atEdgeAndHorizon, ...recent]);
    assert.equal(await flood.prune(), old.length + atEdgeAndHorizon.length, "every event at or before the horizon, and only those");
    assert.deepEqual(await remaining(db), recent, "the events still inside a window are kept");
    assert.equal(await flood.prune(), 0, "a second pass finds nothing");
  });

  it("with nothing old, deletes nothing and keeps the events in their windows", async () => {
    const db = await fx.fresh();
    const clock = new ManualClock(Date.UTC(2026, 10, 1));
    const flood = new FloodControl({ database: db, clock, keyOf: floodKeyOf });
    await insertEvents(db, [clock.now() - 1_000, clock.now()]);
    assert.equal(await flood.prune(), 0);
    assert.equal((await remaining(db)).length, 2);
  });
});

