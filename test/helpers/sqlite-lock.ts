// Another process's hold on a Bulwark SQLite database: a second node:sqlite connection on the same file inside
// `BEGIN IMMEDIATE`, holding the write lock (as a CLI batch, a backup or a `sqlite3` shell would) until released.
// The fixture of the rounds that attack a busy SQLite store (test/sqlite-busy*-red-team.test.ts).
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import type { AuthFixture } from "../../src/http/auth/test-client.ts";

/** The database file of a fixture's data dir. */
export function dbPath(fx: AuthFixture): string {
  return join(fx.app.config.dataDir, "bulwark.db");
}

/** Takes the write lock of the database file at `path` (at once, or throws) and holds it until `release`. */
export function holdWriteLock(path: string): { release(): void } {
  const other = new DatabaseSync(path);
  other.exec("PRAGMA busy_timeout = 0");
  other.exec("BEGIN IMMEDIATE");
  return {
    release() {
      other.exec("ROLLBACK");
      other.close();
    },
  };
}
