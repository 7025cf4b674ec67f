// Whether the store accepts a write now: one small committed write (a row of bulwark_meta), for /healthz. A SELECT
// answers while the disk is full, the file system turned read-only or PostgreSQL is a standby: every login, reset and
// audit event then fails, and a load balancer kept sending users to the node.
import type { Database } from "./database.ts";
import { withoutWaiting } from "./unheld.ts";

/** The bulwark_meta row the probe writes: the time of the last probe that committed, nothing anyone reads. */
export const WRITE_PROBE_META = "health.write-probe";

/**
 * "ok": a write committed. "busy" (SQLite only): another process holds the write lock (a CLI batch, a backup); that
 * is not a failure, and the probe does not wait for it — a wait on node:sqlite blocks the whole event loop, so a
 * health check would stall every request for up to the busy timeout. Anything else the store refuses is thrown.
 */
export type WriteProbe = "ok" | "busy";

/**
 * Commits one write of `now` to the probe's row, through the connection every query queues for.
 *
 * @example
 * try { await probeWrites(app.db, app.clock.now()); } catch { // the store refuses writes }
 */
export async function probeWrites(database: Database, now: number): Promise<WriteProbe> {
  const value = String(now);
  if (database.dialect === "postgres") {
    await database.db.insertInto("bulwark_meta").values({ name: WRITE_PROBE_META, value })
      .onConflict((oc) => oc.column("name").doUpdateSet({ value })).execute();
    return "ok";
  }
  const handle = database.sqlite;
  if (!handle) throw new Error("a SQLite store without its handle");
  return withoutWaiting<WriteProbe>(database, handle, () => {
    handle.prepare("INSERT INTO bulwark_meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value").run(WRITE_PROBE_META, value);
    return "ok";
  }, "busy");
}
