// One maintenance pass now, as the running server's timer makes it (src/http/maintenance.ts), for tests that need the
// purges and reminders to have run at the fixture's fake time: the timer itself set never to fire.
import assert from "node:assert/strict";
import type { App } from "../../src/app/types.ts";
import { startMaintenance } from "../../src/http/maintenance.ts";
import { holdWriteLock } from "./sqlite-lock.ts";

// Long enough that the timer never fires during a test, short enough for setTimeout: the first pass's timer waits up
// to twice this, which must stay below 2^31 ms (~24.8 days), or Node fires it after 1 ms, a second pass beside the test's.
const NEVER_MS = 10 * 24 * 60 * 60_000;

/**
 * Runs every maintenance step once on `app` and returns what each removed; no step may fail (-1).
 *
 * @example
 * const removed = await maintenancePass(fx.app); // { sessions: 0, abandonedSignUps: 2, … }
 */
export async function maintenancePass(app: App): Promise<Record<string, number>> {
  const maintenance = startMaintenance(app, { intervalMs: NEVER_MS, firstPassDelayMs: NEVER_MS });
  try {
    const removed = await maintenance.runOnce();
    assert.ok(Object.values(removed).every((r) => r >= 0), `no step failed: ${JSON.stringify(removed)}`);
    return removed;
  } finally {
    await maintenance.stop();
  }
}

/**
 * Runs every maintenance step once on `app` (SQLite) while another connection holds the write lock of the database at
 * `path` (test/helpers/sqlite-lock.ts), and returns what each step did: a write step behind the lock fails (-1). The
 * lock is let go once the pass has ended. `around`: runs the pass, for a caller that watches its statements.
 *
 * @example
 * const removed = await maintenancePassBehindLock(fx.app, dbPath(fx)); // { auditCheckpoint: -1, … }
 */
export async function maintenancePassBehindLock(app: App, path: string, around: <T>(pass: () => Promise<T>) => Promise<T> = (pass) => pass()): Promise<Record<string, number>> {
  const maintenance = startMaintenance(app, { intervalMs: NEVER_MS, firstPassDelayMs: NEVER_MS });
  const lock = holdWriteLock(path);
  try {
    return await around(() => maintenance.runOnce());
  } finally {
    await maintenance.stop();
    lock.release();
  }
}
