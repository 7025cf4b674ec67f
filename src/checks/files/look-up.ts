// Lookups by name of what a baseline recorded under a directory the compare's scan could not list (compare.ts
// diffEntries asks; this answers). Every directory they go through is pinned: the one the scan found unlistable, and
// each subdirectory found below it, so names resolve through descriptors of the inodes examined, never through a
// directory swapped in since (for a symlink, an empty directory or a mount): then each entry is DIR_REPLACED, high.
import { DIR_REPLACED } from "./compare.ts";
import { isWithin, type FileEntry } from "./entry.ts";
import type { ScanFS } from "./hash-file.ts";
import { DEFAULT_MAX_SCAN_BYTES, lookUpEntry, unexaminable, type ScanBudget } from "./scan.ts";

/**
 * Directories pinned at once below and with an unlistable directory (each holds a descriptor). Deeper, the shallowest
 * pinned subdirectory is let go, and pinned and checked again when the lookups come back up to it.
 */
const MAX_PINNED = 64;

/** One directory of the chain the lookups are in: the unlistable one, then each subdirectory looked up below it. */
interface Level {
  path: string;
  /** What was examined there (the unlistable directory: the scan's entry). */
  entry: FileEntry;
  /** The descriptor refers to the inode (and device) examined. */
  same: boolean;
  pinned: boolean;
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
  /** The byte budget its lookups draw from, for an entry examined by name outside them (check.ts: an exclusion). */
  budget: ScanBudget;
} {
  const { fs } = options;
  const budget: ScanBudget = { remaining: options.maxScanBytes ?? DEFAULT_MAX_SCAN_BYTES };
  const limits = options.maxFileBytes === undefined ? {} : { maxFileBytes: options.maxFileBytes };
  // Names under a directory resolve through its pinned descriptor, so the innermost level is always pinned and
  // checked; ancestors past the window are let go (their descriptors bounded) and checked again on the way back up.
  const chain: Level[] = [];
  let pinnedCount = 0;
  const pin = async (level: Level): Promise<void> => {
    if (!level.pinned) pinnedCount++;
    level.pinned = true;
    level.same = level.same && (await pinAs(fs, level.path, level.entry));
  };
  const unpin = (level: Level): void => {
    if (!level.pinned) return;
    level.pinned = false;
    pinnedCount--;
    fs.unpin?.(level.path);
  };
  const popTo = async (depth: number): Promise<void> => {
    while (chain.length > depth) unpin(chain.pop() as Level);
    const top = chain[chain.length - 1];
    if (top !== undefined && !top.pinned) await pin(top);
  };
  const lookUp = async (path: string, under: FileEntry): Promise<FileEntry> => {
    // Leave the subdirectories this path is not under; a new unlistable directory starts afresh.
    if (chain[0]?.path !== under.path) {
      await popTo(0);
      const root: Level = { path: under.path, entry: under, same: true, pinned: false };
      chain.push(root);
      await pin(root);
    }
    let depth = chain.length;
    while (depth > 1 && !isWithin(path, (chain[depth - 1] as Level).path)) depth--;
    await popTo(depth);
    let entry = (chain[depth - 1] as Level).same
      ? await lookUpEntry(path, { fs, budget, ...limits })
      : unexaminable(path, DIR_REPLACED);
    if (entry.type === "dir") {
      // The pinned subdirectories are the innermost ones, one run up to the top (a pop re-pins the new top only once
      // the run is gone): the shallowest of them is let go.
      if (pinnedCount >= MAX_PINNED) {
        const shallowest = chain[chain.length - (pinnedCount - 1)];
        if (shallowest !== undefined && shallowest !== chain[0]) unpin(shallowest);
      }
      const level: Level = { path, entry, same: true, pinned: false };
      chain.push(level);
      await pin(level);
      // Swapped between its lstat and its pinning: what it holds now is not what was examined.
      if (!level.same) entry = unexaminable(path, DIR_REPLACED);
    }
    options.examined(entry);
    return entry;
  };
  const close = (): void => {
    while (chain.length > 0) unpin(chain.pop() as Level);
  };
  return { lookUp, close, budget };
}
