// Counts the /healthz write probe's commits on a SQLite connection (a temporary trigger on the probe's row), for the
// tests that attack how often an anonymous caller can make it write.
import type { DatabaseSync } from "node:sqlite";
import { WRITE_PROBE_META } from "../../src/store/write-probe.ts";

/**
 * Starts counting the probe's writes on `handle` (the server's own connection: a temporary trigger sees only its
 * writes); `count()` says how many so far, `stop()` removes the trigger and its table.
 *
 * @example
 * const writes = countProbeWrites(fx.app.db.sqlite!); try { …; assert.equal(writes.count(), 1); } finally { writes.stop(); }
 */
export function countProbeWrites(handle: DatabaseSync): { count: () => number; stop: () => void } {
  handle.exec("CREATE TEMP TABLE probe_writes (at TEXT)");
  handle.exec(`CREATE TEMP TRIGGER count_probe AFTER UPDATE ON main.bulwark_meta WHEN NEW.name = '${WRITE_PROBE_META}' BEGIN INSERT INTO probe_writes VALUES (NEW.value); END`);
  return {
    count: () => (handle.prepare("SELECT count(*) AS n FROM temp.probe_writes").get() as { n: number }).n,
    stop: () => {
      handle.exec("DROP TRIGGER temp.count_probe");
      handle.exec("DROP TABLE temp.probe_writes");
    },
  };
}
