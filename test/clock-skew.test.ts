// A node whose clock is far from the database server's says so (src/store/clock-skew.ts): session lifetimes,
// idle limits and re-authentication windows are decided by the clock of the node that handles the request, and
// a node an hour fast or slow gets them wrong by an hour. Revocation no longer depends on it (ADR 0009); the rest
// does, so the operator is told at start and at every maintenance run. On PostgreSQL; SQLite shares its host's clock.
import assert from "node:assert/strict";
import { it } from "node:test";
import pino from "pino";
import { ManualClock, systemClock, type Clock } from "../src/lib/clock.ts";
import { checkClockSkew, CLOCK_SKEW_WARN_MS, clockSkewFromDatabase } from "../src/store/clock-skew.ts";
import { forEachDialect } from "./helpers/dialects.ts";

const HOUR = 3_600_000;

function capture(): { logger: pino.Logger; lines: () => Array<{ level: number; msg: string; clockSkewMs?: number }> } {
  const out: string[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void out.push(line) });
  return { logger, lines: () => out.map((l) => JSON.parse(l) as { level: number; msg: string; clockSkewMs?: number }) };
}

forEachDialect("clock skew against the database server", (dfx) => {
  it("names a clock an hour ahead, or half a minute behind, and says what it affects; a synchronised one is quiet", async () => {
    const database = await dfx.fresh();
    if (database.dialect !== "postgres") {
      assert.equal(await clockSkewFromDatabase(database, new ManualClock(Date.now() + HOUR)), null, "SQLite: one host, one clock");
      const { logger, lines } = capture();
      assert.equal(await checkClockSkew(database, new ManualClock(Date.now() + HOUR), logger), null);
      assert.deepEqual(lines(), []);
      return;
    }
    const ahead = capture();
    const skew = await checkClockSkew(database, new ManualClock(Date.now() + HOUR), ahead.logger);
    assert.ok(skew !== null && Math.abs(skew - HOUR) < 60_000, `measured ${String(skew)} ms`);
    const [warning] = ahead.lines();
    assert.equal(ahead.lines().length, 1);
    assert.equal(warning?.level, 40, "a warning");
    assert.match(warning?.msg ?? "", /3[56]\d\d\.\d s ahead of the database server's/);
    assert.match(warning?.msg ?? "", /session lifetimes, idle limits and re-authentication windows/);
    assert.match(warning?.msg ?? "", /NTP/);
    assert.ok(Math.abs((warning?.clockSkewMs ?? 0) - HOUR) < 60_000, "the difference is a field too, for alerting");

    const behind = capture();
    await checkClockSkew(database, new ManualClock(Date.now() - 30_000), behind.logger);
    assert.match(behind.lines()[0]?.msg ?? "", /s behind the database server's: .* logins here just after a revocation elsewhere are refused/);

    // The test's database runs on this host: the same clock, well inside the bound.
    const quiet = capture();
    const same = await checkClockSkew(database, systemClock, quiet.logger);
    assert.ok(same !== null && Math.abs(same) <= CLOCK_SKEW_WARN_MS, `measured ${String(same)} ms`);
    assert.deepEqual(quiet.lines(), []);
  });

  it("a failed reading is logged and never stops the caller", async () => {
    const database = await dfx.fresh();
    const broken: Clock = { now: () => { throw new Error("clock unavailable"); } };
    const { logger, lines } = capture();
    if (database.dialect !== "postgres") {
      assert.equal(await checkClockSkew(database, broken, logger), null);
      return;
    }
    assert.equal(await checkClockSkew(database, broken, logger), null);
    assert.match(lines()[0]?.msg ?? "", /could not compare this node's clock/);
  });
});
