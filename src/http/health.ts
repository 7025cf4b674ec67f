// GET /healthz: whether this node can serve — the store answers a read, and accepts a write. The write is probed at
// most once per PROBE_OK_MS (once per PROBE_FAILED_MS while it fails): the route is public, and a crowd asking at once
// shares one probe, so no caller can turn health checks into a stream of writes.
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import type { App } from "../app/types.ts";
import { clockSkewFromDatabase, clockSkewMessage, skewBeyond } from "../store/clock-skew.ts";
import { probeWrites, type WriteProbe } from "../store/write-probe.ts";

/** How long a committed probe stands for the next callers. */
export const PROBE_OK_MS = 5_000;
/** How long a failed probe stands: shorter, so a recovered disk is seen soon. */
export const PROBE_FAILED_MS = 1_000;

/**
 * A probe not done by then is a failure: a held lock or a commit waiting for a lost synchronous standby made every
 * health check wait for ever, where a load balancer needs an answer. The probe itself runs on, and later callers wait
 * on it (each for this long again) rather than start another.
 */
export const PROBE_TIMEOUT_MS = 5_000;
/**
 * SQLite's write lock held by another process this long, probe after probe, is a failure too: the server's own writes
 * wait the busy timeout (10 s) and then fail, while "busy" kept the node healthy. A CLI job commits batch by batch and
 * lets go between them; a lock held this long is a backup, a VACUUM or a stuck process.
 */
export const BUSY_FAILS_AFTER_MS = 30_000;

type Writes = WriteProbe | "failing" | "blocked";

/** `work`, or a rejection once PROBE_TIMEOUT_MS have passed without it (the work itself runs on). */
async function withinProbeTimeout<T>(work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

export function registerHealth(server: FastifyInstance, app: App): void {
  let last: { at: number; writes: Writes } | null = null;
  let inFlight: Promise<Writes> | null = null;
  let busySince: number | null = null;
  // The probe still running, timed out or not: later callers wait on it rather than start another, so a stuck store
  // holds one connection for health checks, never one more per poll (each waited on PostgreSQL's pool).
  let running: Promise<WriteProbe> | null = null;

  const attempt = (): Promise<WriteProbe> => {
    running ??= probeWrites(app.db, app.clock.now()).finally(() => {
      running = null;
    });
    return withinProbeTimeout(running, "the write probe");
  };

  // The read, held to the same bound: with every pooled connection taken (requests waiting on a lock another session
  // holds) its SELECT 1 waited for a connection for up to the pool's 10 s, and the load balancer for it. Shared like
  // the write probe: a crowd of polls while the pool is full queues one more wait for a connection, not one each.
  let reading: Promise<unknown> | null = null;
  const read = (): Promise<unknown> => {
    reading ??= sql`SELECT 1`.execute(app.db.db).finally(() => {
      reading = null;
    });
    return withinProbeTimeout(reading, "the read");
  };

  const probe = async (): Promise<Writes> => {
    const failed = last?.writes === "failing" || last?.writes === "blocked";
    try {
      const writes = await attempt();
      const now = app.clock.now();
      // A clock stepped back (an NTP correction) restarts the count rather than leave it negative for as long.
      if (writes === "ok") busySince = null;
      else if (busySince === null || now < busySince) busySince = now;
      if (busySince !== null && now - busySince >= BUSY_FAILS_AFTER_MS) {
        if (!failed) server.log.error({ heldForMs: now - busySince }, "another process has held the database's write lock for too long: logins, resets and audit events wait and then fail");
        return "blocked";
      }
      if (failed) server.log.info("the store accepts writes again");
      return writes;
    } catch (error) {
      // Said once, when it starts failing: the operator needs the engine's reason, the public answer does not.
      if (!failed) server.log.error({ err: error }, "the store refuses writes: logins, resets and audit events will fail");
      return "failing";
    }
  };

  const writes = async (): Promise<Writes> => {
    const now = app.clock.now();
    if (last && now - last.at >= 0 && now - last.at < (last.writes === "ok" ? PROBE_OK_MS : PROBE_FAILED_MS)) return last.writes;
    inFlight ??= probe().then((result) => {
      last = { at: app.clock.now(), writes: result };
      inFlight = null;
      return result;
    });
    return inFlight;
  };

  // PostgreSQL: this node's clock against the database server's, read at most once per PROBE_OK_MS like the write
  // probe. Beyond BULWARK_MAX_CLOCK_SKEW_SECONDS the node answers 503 so that a load balancer stops sending it clients:
  // its lifetimes, flood windows and hourly limits would be off by as much (a client alternating nodes got twice the
  // guesses and 50-minute links). A failed reading is not a verdict: the store's own checks above answer for it.
  // A crowd of callers after the reading went stale shares one reading in flight, as the write probe does.
  let clockRead: { at: number; skewed: boolean } | null = null;
  let clockReading: Promise<boolean> | null = null;
  const clockSkewed = (): Promise<boolean> => {
    if (app.db.dialect !== "postgres" || app.config.maxClockSkewMs === 0) return Promise.resolve(false);
    const now = app.clock.now();
    if (clockRead && now - clockRead.at >= 0 && now - clockRead.at < PROBE_OK_MS) return Promise.resolve(clockRead.skewed);
    clockReading ??= readClock().finally(() => {
      clockReading = null;
    });
    return clockReading;
  };
  const readClock = async (): Promise<boolean> => {
    let skew: number | null = null;
    try {
      skew = await clockSkewFromDatabase(app.db, app.clock);
    } catch {
      skew = null;
    }
    const skewed = skewBeyond(skew, app.config.maxClockSkewMs);
    // Said once, when it starts (maintenance's reading says it again every pass).
    if (skewed && skew !== null && clockRead?.skewed !== true) server.log.error({ clockSkewMs: skew }, clockSkewMessage(skew, app.config.maxClockSkewMs));
    if (!skewed && clockRead?.skewed === true) server.log.info("this node's clock is back within BULWARK_MAX_CLOCK_SKEW_SECONDS of the database server's");
    clockRead = { at: app.clock.now(), skewed };
    return skewed;
  };

  server.get("/healthz", async (_request, reply) => {
    const database = app.db.dialect;
    try {
      await read();
    } catch {
      return reply.status(503).send({ status: "unavailable", database });
    }
    const state = await writes();
    if (state === "failing" || state === "blocked") return reply.status(503).send({ status: "unavailable", database, writes: state });
    if (await clockSkewed()) return reply.status(503).send({ status: "unavailable", database, writes: state, clock: "skewed" });
    return { status: "ok", database, writes: state };
  });
}
