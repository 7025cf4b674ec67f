// A private copy of an input file, taken once, so that every pass of a command reads the same bytes: an import
// digests, validates, then writes, and reading the path again for each pass let whoever can write the file (its
// author, anyone with write access to a shared export directory) change it after it was validated.
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { openInputHandle } from "../checks/input-file.ts";

export interface Snapshot {
  /** The copy: mode 0600, in a fresh 0700 directory. */
  path: string;
  /** Deletes the copy and its directory. */
  remove(): Promise<void>;
}

/**
 * Copies `source` (a regular file, checked on the descriptor that is read, so a name swapped for a FIFO cannot
 * hang the copy) into a new private directory under `dir` (the data directory: the copy may hold password hashes,
 * and it stays beside the other secrets if the process is killed before `remove`).
 *
 * @example
 * const snap = await snapshotInput(file, app.config.dataDir);
 * try { await importUsers(deps, { ..., open: () => createReadStream(snap.path) }); } finally { await snap.remove(); }
 */
export async function snapshotInput(source: string, dir: string): Promise<Snapshot> {
  const handle = await openInputHandle(source);
  const where = await mkdtemp(join(dir, ".input-snapshot-"));
  const path = join(where, "input");
  const remove = (): Promise<void> => rm(where, { recursive: true, force: true });
  try {
    await pipeline(handle.createReadStream(), createWriteStream(path, { flags: "wx", mode: 0o600 }));
  } catch (error) {
    await remove();
    throw error;
  } finally {
    await handle.close().catch(() => {});
  }
  return { path, remove };
}
