// Writing to a data dir's SQLite database directly, as someone who can write the file but holds no master key.
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

/**
 * Runs `statements` (SQL text and its parameters) on the data dir's database directly.
 *
 * @example
 * tamper(dataDir, ["UPDATE keyring_keys SET status = 'current' WHERE id = ?", oldKey]);
 */
export function tamper(dir: string, ...statements: Array<[string, ...Array<string | number>]>): void {
  const db = new DatabaseSync(join(dir, "bulwark.db"));
  try {
    for (const [text, ...params] of statements) db.prepare(text).run(...params);
  } finally {
    db.close();
  }
}
