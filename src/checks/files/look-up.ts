// Lookups by name of what a baseline recorded under a directory the compare's scan could not list (compare.ts
// diffEntries asks; this answers). Every directory they go through is pinned: the one the scan found unlistable, and
// each subdirectory found below it, so names resolve through descriptors of the inodes examined, never through a
// directory swapped in since (for a symlink, an empty directory or a mount): then each entry is DIR_REPLACED, high.
import { DIR_REPLACED } from "./compare.ts";
import { isWithin, type FileEntry } from "./entry.ts";
import type { ScanFS } from "./hash-file.ts";
import { DEFAULT_MAX_SCAN_BYTES, lookUpEntry, unexaminable, type ScanBudget } from "./scan.ts";

/** Subdirectories pinned at once below an unlistable directory; deeper ones resolve through the nearest pinned one. */
const MAX_PINNED = 64;

interface Pinned {
  path: string;
  /** The descriptor refers to the inode (and device) examined. */
  same: boolean;
}

/** The pinned directory is the one `expected` records: a directory of the same inode and device. */
async function pinAs(fs: ScanFS, path: string, expected: FileEntry): Promise<boolean> {
  const now = await (fs.pin ? fs.pin(path) : fs.lstat(path)).catch(() => null);
  return now !== null && now.isDirectory() && now.ino.toString() === expected.ino && (expected.dev === undefined || now.dev.toString() === expected.dev);
}

/**
 * A lookup for compare.ts diffEntries, over `fs` (the scan's own, whose directories the caller holds): every read and
 * retry of all its lookups drawn from one budget of `maxScanBytes` (default as a scan's), files past `maxFileBytes`
 * not hashed; `examined` sees each entry looked up. `close()` unpins what is still pinned.
 *
 * @example
 * const lookups = createLookUp({ fs, maxScanBytes: 1 << 30, examined: (e) => collector.addScanned(e) });
 * for await (const d of diffEntries(baseline, scan, roots, lookups.lookUp)) use(d);
 * lookups.close();
 */
export function createLookUp(options: { fs: ScanFS; maxFileBytes?: number; maxScanBytes?: number; examined: (entry: FileEntry) => void }): {
  lookUp: (path: string, under: FileEntry) => Promise<FileEntry>;
  close: () => void;
} {
  const { fs } = options;
  const budget: ScanBudget = { remaining: options.maxScanBytes ?? DEFAULT_MAX_SCAN_BYTES };
  const limits = options.maxFileBytes === undefined ? {} : { maxFileBytes: options.maxFileBytes };
  const pins: Pinned[] = [];
  const unpinTo = (depth: number): void => {
    while (pins.length > depth) {
      // Popped first: `fs.unpin?.(…)` evaluates no argument when the file system has no unpin.
      const left = pins.pop() as Pinned;
      fs.unpin?.(left.path);
    }
  };
  const lookUp = async (path: string, under: FileEntry): Promise<FileEntry> => {
    // Leave the subdirectories this path is not under; a new unlistable directory starts afresh.
    if (pins[0]?.path !== under.path) {
      unpinTo(0);
      pins.push({ path: under.path, same: await pinAs(fs, under.path, under) });
    }
    let depth = pins.length;
    while (depth > 1 && !isWithin(path, (pins[depth - 1] as Pinned).path)) depth--;
    unpinTo(depth);
    let entry = (pins[depth - 1] as Pinned).same
      ? await lookUpEntry(path, { fs, budget, ...limits })
      : unexaminable(path, DIR_REPLACED);
    if (entry.type === "dir" && pins.length < MAX_PINNED) {
      const same = await pinAs(fs, path, entry);
      pins.push({ path, same });
      // Swapped between its lstat and its pinning: what it holds now is not what was examined.
      if (!same) entry = unexaminable(path, DIR_REPLACED);
    }
    options.examined(entry);
    return entry;
  };
  return { lookUp, close: () => unpinTo(0) };
}
