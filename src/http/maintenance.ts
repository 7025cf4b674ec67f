// Housekeeping while the server runs: expired sessions, spent or expired reset and email-change links, old
// flood-control events and stale WebAuthn challenges are deleted on a timer, so the tables a request reads
// stay the size of what is live; API tokens that expire within a week get their owner's renewal reminder, and sign-ups
// abandoned past BULWARK_SIGNUP_ABANDONED_HOURS are deleted. Each step is one indexed DELETE (or a reading, the audit
// log's checkpoint, or bounded batches); a failing step is logged and the others run. A pass runs shortly after start and
// then every interval, and no step waits for a lock without bound (a row held by a frozen node must not stall the
// others, the later passes or a shutdown). The steps that judge rows by this node's clock are skipped in a pass that finds
// the clock beyond the skew limit from the database server's, or stepped since the last pass (a jump).
import { sql, type Kysely, type Transaction } from "kysely";
import type { App } from "../app/types.ts";
import { clockStep, readClock, type Clock, type ClockReading } from "../lib/clock.ts";
import { recordUnrecordedRefusals, recordUnrecordedTokenUses } from "../accounts/login/refusal-sampler.ts";
import { reportPasswordWorkRefusals } from "./auth/password-work.ts";
import { remindExpiringTokens } from "../accounts/tokens/expiry-reminders.ts";
import { removeAbandonedSignUps } from "../accounts/email-change/sign-up-shell.ts";
import { checkClockSkew, datedAheadToleranceFor, DEFAULT_MAX_CLOCK_SKEW_MS, skewBeyond } from "../store/clock-skew.ts";
import type { Schema } from "../store/schema.ts";

export interface Maintenance {
  /** Runs every step once now; returns how many rows each step removed (-1 for a step that failed). */
  runOnce(): Promise<Record<string, number>>;
  /** Stops the timers and waits for a run in progress (its steps' waits are bounded, see STEP_LOCK_TIMEOUT_MS). */
  stop(): Promise<void>;
}

/** Every 15 minutes by default: often enough that nothing piles up, rare enough to cost nothing. */
export const MAINTENANCE_INTERVAL_MS = 15 * 60_000;

/**
 * The steps that judge stored rows by this node's clock (expiry, windows, "past its time"). A node whose clock is beyond
 * BULWARK_MAX_CLOCK_SKEW_SECONDS from the database server's is drained (/healthz 503) but keeps running, and its pass
 * ran them all the same: every session and link the healthy nodes had just made looked dated ahead to a node minutes
 * behind, and was deleted or spent for good (test/docs-claims-fifth-red-team.test.ts); a node ahead would cut flood
 * windows short and expire rows early. While its reading is beyond the limit these are skipped, said at error level.
 * Likewise in a pass that finds this node's own clock stepped since the last one (clockJump): on SQLite there is no
 * database clock to compare with, and a forward jump of days lasting one pass deleted live sign-ups, sessions and links
 * for good (test/clock-jumps-red-team.test.ts).
 */
export const CLOCK_JUDGED_STEPS: ReadonlySet<string> = new Set([
  "sessions", "passwordResetLinks", "emailChangeLinks", "floodEvents", "sentMail", "tokenExpiryReminders", "unrecordedRefusals",
  "unrecordedTokenUses", "totpReplacements", "totpEnrolments", "webauthnChallenges", "abandonedSignUps",
]);

/** The steps that run their own transactions, one a batch (each with the waits of `bounded`), not one for the step. */
const OWN_TRANSACTION_STEPS: ReadonlySet<string> = new Set(["abandonedSignUps"]);

/**
 * The first pass, this long after start (at most one interval), plus up to as much again at random so that nodes
 * started together do not all purge at once: a server that restarts more often than every interval (a crash loop,
 * frequent deploys) still runs its passes, and the reminders they queue still go out.
 */
export const FIRST_PASS_DELAY_MS = 500;

/**
 * PostgreSQL: the longest a step waits for a lock, and the longest one statement runs. Another node frozen inside a
 * transaction (a paused VM) holds its rows until PostgreSQL notices the dead connection, hours later with default TCP
 * keepalives; a purge waiting on one of them stalled every later step and pass, and the shutdown that waited for the
 * pass. Past the bound the step fails, is logged, and the next pass tries again. SQLite bounds its waits with the
 * connection's busy timeout.
 */
export const STEP_LOCK_TIMEOUT_MS = 2_000;
export const STEP_STATEMENT_TIMEOUT_MS = 5 * 60_000;

/**
 * How far `clock`'s wall time moved beyond the time that elapsed since `since` (positive: stepped forward), when that is
 * more than `marginMs`; else (or with no reading to compare) null. Between passes a synchronised clock and the monotonic
 * one part by NTP's slewing only (at most 0.5 ms a second: under half a second an interval), far inside the margin.
 * A host suspended and resumed counts as a jump forward (a monotonic clock does not count the suspend): one pass is
 * skipped, and the next judges from the time the clock then shows.
 *
 * @example
 * clockJump({ wall: t, elapsed: e }, clock, 30_000) // 691_200_000 once the clock was stepped 8 days ahead
 */
export function clockJump(since: ClockReading | null, clock: Clock, marginMs: number): number | null {
  const jump = clockStep(since, readClock(clock));
  return Math.abs(jump) > marginMs ? Math.round(jump) : null;
}

/** The longest delay Node's timers keep (2^31 − 1 ms, ~24.8 days): a longer one fires after 1 ms instead, with a warning. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export function startMaintenance(app: App, options: { intervalMs?: number; firstPassDelayMs?: number } = {}): Maintenance {
  // The first pass comes between one and two first delays after the start: both bounds must fit a timer, or the pass
  // would run every millisecond (setInterval) or at once (setTimeout).
  const intervalMs = options.intervalMs ?? MAINTENANCE_INTERVAL_MS;
  const firstDelay = Math.min(intervalMs, options.firstPassDelayMs ?? FIRST_PASS_DELAY_MS);
  if (!(intervalMs > 0 && intervalMs <= MAX_TIMER_MS) || !(firstDelay > 0 && 2 * firstDelay <= MAX_TIMER_MS)) {
    throw new RangeError(`maintenance: the interval (${intervalMs} ms) must be over 0 and at most ${MAX_TIMER_MS} ms, and the first pass's delay (${firstDelay} ms) at most half of that`);
  }
  // Whether this pass's clock reading found this node beyond BULWARK_MAX_CLOCK_SKEW_SECONDS (clockSkew, the first step).
  let skewed = false;
  // This node's own clock, read at the start and after every pass: a pass whose wall time moved away from the time that
  // elapsed by more than the skew a node may have (the default limit's when the limit is off: a step is no skew to
  // tolerate, and skipping one pass loses nothing) finds the clock stepped, and judges no row by it (CLOCK_JUDGED_STEPS).
  const jumpMarginMs = app.config.maxClockSkewMs > 0 ? app.config.maxClockSkewMs : DEFAULT_MAX_CLOCK_SKEW_MS;
  let lastReading = readClock(app.clock);
  const steps: Record<string, (executor: Kysely<Schema>) => Promise<number>> = {
    // Not a purge: a reading, repeated so that a clock that drifts while the server runs is noticed (returns 0). First:
    // beyond the limit the steps that judge rows by this node's clock are skipped (CLOCK_JUDGED_STEPS).
    clockSkew: async () => {
      skewed = skewBeyond(await checkClockSkew(app.db, app.clock, app.logger, app.config.maxClockSkewMs), app.config.maxClockSkewMs);
      return 0;
    },
    sessions: (executor) => app.accounts.sessions.purgeExpired(executor),
    passwordResetLinks: (executor) => app.accounts.passwordReset.purgeExpired(executor),
    emailChangeLinks: (executor) => app.accounts.emailChanges.purgeExpired(executor),
    floodEvents: (executor) => app.accounts.flood.prune(executor),
    sentMail: (executor) => app.accounts.outbox.purgeSent(app.clock.now() - app.config.outboxRetentionMs, { executor }),
    // Not a purge either: renewal reminders for API tokens that expire within a week (ASVS 6.4.5), each queued once.
    tokenExpiryReminders: (executor) =>
      remindExpiringTokens({
        db: executor, outbox: app.accounts.outbox, appName: app.config.serviceName, now: app.clock.now(), logger: app.logger,
        usable: (id) => app.accounts.tokens.usable(id),
      }),
    // Not a purge: the refused attempts the sampler counted but no audit event carried yet, written as counts.
    unrecordedRefusals: async () => (await recordUnrecordedRefusals(app.accounts.refusals, app.audit, app.clock.now())) + (await recordUnrecordedRefusals(app.accounts.callerRefusals, app.audit, app.clock.now())),
    // Likewise the uses of API tokens their hourly sample left out, once their hour has ended.
    unrecordedTokenUses: async () => recordUnrecordedTokenUses(app.accounts.tokenUses, app.audit, app.clock.now()),
    // Not a purge: the password checks the gate refused since its last log line (a burst nobody followed is counted).
    passwordWorkRefusals: async () => reportPasswordWorkRefusals(app, app.logger, { force: true }),
    // Not a purge: the audit log's head signed (when it moved), so a rewrite of the events since the newest
    // checkpoint has at most one interval to go unnoticed, not up to a whole schedule of events. It refuses, and the step
    // fails loudly, over a chain the stored rows do not hold (AuditLog.checkpoint). Its own transaction, not the step's.
    auditCheckpoint: async () => {
      await app.audit.checkpoint();
      return 0;
    },
    // Replacements of an authenticator app left unconfirmed past their 30 minutes: their sealed seeds go.
    totpReplacements: (executor) => app.accounts.mfa.totp.purgeExpiredReplacements(executor),
    // And first enrolments of one left unconfirmed past theirs (the rows, which are no factor).
    totpEnrolments: (executor) => app.accounts.mfa.totp.purgeExpiredEnrolments(executor),
    webauthnChallenges: async (executor) => {
      const result = await executor.deleteFrom("webauthn_challenges").where("expires_at", "<=", app.clock.now()).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
    // Unfinished sign-ups older than BULWARK_SIGNUP_ABANDONED_HOURS whose links are all dead (0: off), a bounded number
    // a pass, each batch its own transaction: each sign-up's link lock is held only while its batch runs.
    abandonedSignUps: async () => app.config.signUpAbandonedMs === 0 ? 0
      : removeAbandonedSignUps(app.db, app.audit, {
        now: app.clock.now(), olderThanMs: app.config.signUpAbandonedMs, transaction: boundedTransaction,
        // A reset link another node dated, up to the skew two serving nodes may have, still counts as asked before the age.
        aheadToleranceMs: datedAheadToleranceFor(app.config.maxClockSkewMs),
      }),
  };
  /** A transaction whose waits are bounded: on PostgreSQL its lock and statement timeouts are set. */
  function boundedTransaction<T>(work: (trx: Transaction<Schema>) => Promise<T>): Promise<T> {
    return app.db.transaction(async (trx) => {
      if (app.db.dialect === "postgres") {
        await sql.raw(`SET LOCAL lock_timeout = ${STEP_LOCK_TIMEOUT_MS}`).execute(trx);
        await sql.raw(`SET LOCAL statement_timeout = ${STEP_STATEMENT_TIMEOUT_MS}`).execute(trx);
      }
      return work(trx);
    });
  }
  /** Runs a step with its waits bounded: on PostgreSQL in a transaction whose lock and statement timeouts are set. */
  const bounded = (name: string, step: (executor: Kysely<Schema>) => Promise<number>): Promise<number> => {
    if (app.db.dialect !== "postgres" || OWN_TRANSACTION_STEPS.has(name)) return step(app.db.db);
    return boundedTransaction(step);
  };
  let running: Promise<Record<string, number>> | null = null;
  let stopped = false;
  const runOnce = (): Promise<Record<string, number>> => {
    // The jump this pass found (read before each step that judges rows by the clock, so a step during the pass is caught too).
    let jumped: number | null = null;
    running ??= (async () => {
      const removed: Record<string, number> = {};
      const skipped: string[] = [];
      for (const [name, step] of Object.entries(steps)) {
        if (stopped) break;
        if (CLOCK_JUDGED_STEPS.has(name)) {
          jumped ??= clockJump(lastReading, app.clock, jumpMarginMs);
          if (skewed || jumped !== null) {
            skipped.push(name);
            continue;
          }
        }
        try {
          removed[name] = await bounded(name, step);
        } catch (error) {
          removed[name] = -1;
          app.logger.error({ err: error, step: name }, "maintenance step failed; the next run tries again");
        }
      }
      if (skipped.length > 0 && jumped !== null) {
        const seconds = (Math.abs(jumped) / 1000).toFixed(1);
        app.logger.error({ skipped, clockJumpMs: jumped },
          `maintenance: this node's clock jumped ${seconds} s ${jumped > 0 ? "forward" : "back"} since the last pass (or the start: its wall time moved that much more ` +
          "or less than the time that elapsed: stepped by NTP or by hand, or the host was suspended); the steps that judge rows by it were skipped this pass, " +
          "so that a clock wrong for a moment deletes nothing live; the next pass judges by the time the clock then shows (check the host's time synchronisation)");
      }
      if (skipped.length > 0 && skewed) {
        app.logger.error({ skipped }, "maintenance: this node's clock is beyond BULWARK_MAX_CLOCK_SKEW_SECONDS from the database server's; the steps that judge rows by it were skipped, so that it expires nothing the other nodes made");
      }
      if (Object.values(removed).some((n) => n !== 0)) app.logger.info({ removed }, "maintenance: expired rows and abandoned sign-ups removed, reminders queued");
      return removed;
    })().finally(() => {
      // The next pass judges from here: a jump is skipped once, then the clock is believed. Not a jump this pass did not
      // see: one that landed after its last check (during its last clock-judged step, or a later step) was taken into
      // this reading, and the next pass judged rows by the stepped clock and never said so (a minute-old sign-up deleted
      // as abandoned, test/new-code-twentysix-b-red-team.test.ts). The old reading is kept: the next pass finds the jump.
      if (jumped !== null || clockJump(lastReading, app.clock, jumpMarginMs) === null) lastReading = readClock(app.clock);
      running = null;
    });
    return running;
  };
  const first = setTimeout(() => void runOnce(), firstDelay + Math.floor(Math.random() * firstDelay));
  first.unref();
  const timer = setInterval(() => void runOnce(), intervalMs);
  timer.unref();
  return {
    runOnce,
    async stop() {
      stopped = true;
      clearTimeout(first);
      clearInterval(timer);
      if (running) await running;
    },
  };
}
