// How far this process's clock is from the database server's. Session lifetimes, freshness for sensitive changes,
// idle limits and the times written beside revocations all come from the clock of the process that wrote them;
// revocation itself is ordered by the database (docs/decisions/0009-revocation-epochs.md), the rest is not. Nodes
// sharing one PostgreSQL compare their clock with its clock at start and at every maintenance run, and say so
// when they drift apart. SQLite is on the same host as its processes: one clock, nothing to compare.
import { sql } from "kysely";
import type { Logger } from "pino";
import type { Clock } from "../lib/clock.ts";
import { RuntimeFailure } from "../lib/errors.ts";
import type { Database } from "./database.ts";

/**
 * Beyond this difference a node warns (NTP keeps hosts within milliseconds; a round trip is well under this). A
 * warning only: what a node refuses as dated ahead is datedAheadToleranceFor's, the skew it may have and still serve.
 */
export const CLOCK_SKEW_WARN_MS = 2_000;

/** BULWARK_MAX_CLOCK_SKEW_SECONDS's default (src/app/config.ts), in milliseconds. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 30_000;

/** The tolerance for dates ahead under the default limit (datedAheadToleranceFor): the services' policies' default. */
export const DEFAULT_DATED_AHEAD_TOLERANCE_MS = 2 * DEFAULT_MAX_CLOCK_SKEW_MS;

/**
 * How far ahead of the judging node's clock a session's or a link's dates may be before it is refused as
 * "future-dated" (and purged by maintenance): twice the skew a node may have from the database server and still serve
 * (config.maxClockSkewMs), since two nodes each within it, on either side, are up to twice it apart. Narrower, two
 * nodes both healthy by that limit refused each other's genuine sessions and links, and each one's maintenance spent
 * the other's for good (test/session-twenty-red-team.test.ts). With the limit off (0: only warn) no node is refused
 * for its skew, yet a row dated an hour ahead must still not stretch its lifetime by an hour: the default limit's
 * tolerance then (60 s), far beyond healthy hosts and well inside every window.
 *
 * @example
 * datedAheadToleranceFor(config.maxClockSkewMs) // 60_000 with the default, and with 0
 */
export function datedAheadToleranceFor(maxClockSkewMs: number): number {
  if (!Number.isSafeInteger(maxClockSkewMs) || maxClockSkewMs < 0) {
    throw new RangeError(`the maximum clock skew must be a whole number of milliseconds, 0 or more, got ${String(maxClockSkewMs)}`);
  }
  return 2 * (maxClockSkewMs > 0 ? maxClockSkewMs : DEFAULT_MAX_CLOCK_SKEW_MS);
}

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

/** True when `skew` (clockSkewFromDatabase) is beyond `limitMs` (config.maxClockSkewMs; 0: no limit): the node must not serve. */
export function skewBeyond(skew: number | null, limitMs: number): skew is number {
  return skew !== null && limitMs > 0 && Math.abs(skew) > limitMs;
}

/** What a node whose clock is beyond the limit says, at start (the error) and in its log while it runs. */
export function clockSkewMessage(skew: number, limitMs: number): string {
  const seconds = (Math.abs(skew) / 1000).toFixed(1);
  return `this node's clock is ${seconds} s ${skew > 0 ? "ahead of" : "behind"} the database server's, beyond BULWARK_MAX_CLOCK_SKEW_SECONDS ` +
    `(${limitMs / 1000} s): session and link lifetimes, flood windows and hourly limits decided here would be off by as much, and a ` +
    "client alternating nodes would get more guesses and longer-lived links; synchronise the clocks (NTP) and start it again";
}

/** The start's refusal (exit 3): a runtime failure naming the difference and the setting. */
export function clockSkewError(skew: number, limitMs: number): RuntimeFailure {
  return new RuntimeFailure("BULWARK_ERR_CLOCK_SKEW", clockSkewMessage(skew, limitMs));
}

/**
 * Logs a warning when this process's clock and the database server's differ by more than CLOCK_SKEW_WARN_MS, naming
 * the difference and what it affects (an error when beyond `limitMs`, the node's limit). Returns the difference (null
 * on SQLite). Never throws: a failed reading is logged and the caller goes on.
 */
export async function checkClockSkew(database: Database, clock: Clock, logger: Logger, limitMs?: number): Promise<number | null> {
  let skew: number | null;
  try {
    skew = await clockSkewFromDatabase(database, clock);
  } catch (error) {
    logger.warn({ err: error }, "could not compare this node's clock with the database server's");
    return null;
  }
  if (limitMs !== undefined && skewBeyond(skew, limitMs)) {
    logger.error({ clockSkewMs: skew }, `${clockSkewMessage(skew, limitMs)} (GET /healthz answers 503 until it is)`);
  } else if (skew !== null && Math.abs(skew) > CLOCK_SKEW_WARN_MS) {
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
