// How far this process's clock is from the database server's. Session lifetimes, freshness for sensitive changes,
// idle limits and the times written beside revocations all come from the clock of the process that wrote them;
// revocation itself is ordered by the database (docs/decisions/0009-revocation-epochs.md), the rest is not. Nodes
// sharing one PostgreSQL compare their clock with its clock at start and at every maintenance run, and say so
// when they drift apart. SQLite is on the same host as its processes: one clock, nothing to compare.
import { sql } from "kysely";
import type { Logger } from "pino";
import type { Clock } from "../lib/clock.ts";
import type { Database } from "./database.ts";

/** Beyond this difference a node warns (NTP keeps hosts within milliseconds; a round trip is well under this). */
export const CLOCK_SKEW_WARN_MS = 2_000;

/**
 * This process's clock minus the database server's, in milliseconds (positive: ours runs ahead), read at the
 * midpoint of one round trip; null on SQLite.
 *
 * @example
 * const skew = await clockSkewFromDatabase(app.db, app.clock); // 3_600_012 when this host is an hour fast
 */
export async function clockSkewFromDatabase(database: Database, clock: Clock): Promise<number | null> {
  if (database.dialect !== "postgres") return null;
  const sent = clock.now();
  const { rows } = await sql<{ ms: string | number }>`SELECT CAST(FLOOR(EXTRACT(EPOCH FROM clock_timestamp()) * 1000) AS BIGINT) AS ms`.execute(database.db);
  const received = clock.now();
  const theirs = Number(rows[0]?.ms);
  if (!Number.isFinite(theirs)) throw new Error("the database server did not report its time");
  return Math.round((sent + received) / 2 - theirs);
}

/**
 * Logs a warning when this process's clock and the database server's differ by more than CLOCK_SKEW_WARN_MS, naming
 * the difference and what it affects. Returns the difference (null on SQLite). Never throws: a failed reading is
 * logged and the caller goes on.
 */
export async function checkClockSkew(database: Database, clock: Clock, logger: Logger): Promise<number | null> {
  let skew: number | null;
  try {
    skew = await clockSkewFromDatabase(database, clock);
  } catch (error) {
    logger.warn({ err: error }, "could not compare this node's clock with the database server's");
    return null;
  }
  if (skew !== null && Math.abs(skew) > CLOCK_SKEW_WARN_MS) {
    const seconds = (Math.abs(skew) / 1000).toFixed(1);
    logger.warn(
      { clockSkewMs: skew },
      `this node's clock is ${seconds} s ${skew > 0 ? "ahead of" : "behind"} the database server's: session lifetimes, idle limits and ` +
        "re-authentication windows decided here are off by as much" +
        (skew < 0 ? ", and logins here just after a revocation elsewhere are refused until this clock catches up" : "") +
        " (revocation itself does not depend on it); synchronise the clocks (NTP)",
    );
  }
  return skew;
}
