// Housekeeping while the server runs: expired sessions, spent or expired reset and email-change links, old
// flood-control events and stale WebAuthn challenges are deleted on a timer, so the tables a request reads
// stay the size of what is live; API tokens that expire within a week get their owner's renewal reminder. Each step is one indexed DELETE; a failing step is logged and the others run.
import type { App } from "../app/types.ts";
import { remindExpiringTokens } from "../accounts/tokens/expiry-reminders.ts";
import { checkClockSkew } from "../store/clock-skew.ts";

export interface Maintenance {
  /** Runs every step once now; returns how many rows each step removed (-1 for a step that failed). */
  runOnce(): Promise<Record<string, number>>;
  /** Stops the timer and waits for a run in progress. */
  stop(): Promise<void>;
}

/** Every 15 minutes by default: often enough that nothing piles up, rare enough to cost nothing. */
export const MAINTENANCE_INTERVAL_MS = 15 * 60_000;

export function startMaintenance(app: App, options: { intervalMs?: number } = {}): Maintenance {
  const steps: Record<string, () => Promise<number>> = {
    sessions: () => app.accounts.sessions.purgeExpired(),
    passwordResetLinks: () => app.accounts.passwordReset.purgeExpired(),
    emailChangeLinks: () => app.accounts.emailChanges.purgeExpired(),
    floodEvents: () => app.accounts.flood.prune(),
    // Not a purge: a reading, repeated so that a clock that drifts while the server runs is noticed (returns 0).
    clockSkew: async () => {
      await checkClockSkew(app.db, app.clock, app.logger);
      return 0;
    },
    // Not a purge either: renewal reminders for API tokens that expire within a week (ASVS 6.4.5), each queued once.
    tokenExpiryReminders: () =>
      remindExpiringTokens({
        db: app.db.db, outbox: app.accounts.outbox, appName: app.config.serviceName, now: app.clock.now(), logger: app.logger,
        usable: (id) => app.accounts.tokens.usable(id),
      }),
    webauthnChallenges: async () => {
      const result = await app.db.db.deleteFrom("webauthn_challenges").where("expires_at", "<=", app.clock.now()).executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
  let running: Promise<Record<string, number>> | null = null;
  const runOnce = (): Promise<Record<string, number>> => {
    running ??= (async () => {
      const removed: Record<string, number> = {};
      for (const [name, step] of Object.entries(steps)) {
        try {
          removed[name] = await step();
        } catch (error) {
          removed[name] = -1;
          app.logger.error({ err: error, step: name }, "maintenance step failed; the next run tries again");
        }
      }
      if (Object.values(removed).some((n) => n !== 0)) app.logger.info({ removed }, "maintenance: expired rows removed, reminders queued");
      return removed;
    })().finally(() => {
      running = null;
    });
    return running;
  };
  const timer = setInterval(() => void runOnce(), options.intervalMs ?? MAINTENANCE_INTERVAL_MS);
  timer.unref();
  return {
    runOnce,
    async stop() {
      clearInterval(timer);
      if (running) await running;
    },
  };
}
