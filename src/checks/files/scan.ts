// Walks PATHs depth-first in comparePaths order without following symlinks, and records every
// entry; regular files are hashed by a small pool of concurrent streams while output stays in order.
import type { BigIntStats } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { compareNames, comparePaths, formatMode, isWithin, type EntryType, type FileEntry } from "./entry.ts";
import { filesErrors } from "./errors.ts";
import { createNodeScanFS, errorCode, hashFile, nodeScanFS, type ScanFS } from "./hash-file.ts";

export { createNodeScanFS, nodeScanFS };

export interface ScanOptions {
  /** Files hashed at the same time (default 4: enough to overlap reads with hashing on 2 cores). */
  concurrency?: number;
  fs?: ScanFS;
  /** Compare mode: a root that no longer exists scans as empty (its entries are "removed") instead of an error. */
  allowMissingRoots?: boolean;
  /** Paths left out of the scan (with everything beneath), e.g. the baseline being written. */
  exclude?: (path: string) => boolean;
  /** Stay on each root's file system, like find -xdev: a mount point is recorded but not entered (keeps /proc and /sys out of a scan of /). */
  oneFileSystem?: boolean;
  /** Called after each entry with running totals (for a progress bar). */
  onProgress?: (stats: ScanStats) => void;
  /** Largest file hashed, in bytes (default DEFAULT_MAX_FILE_BYTES); a larger one is "too-large-to-hash". */
  maxFileBytes?: number;
  /** Bytes the whole scan may read to hash (default DEFAULT_MAX_SCAN_BYTES); files past it are "too-large-to-hash". */
  maxScanBytes?: number;
  /**
   * The bytes left to read, shared with other scans (every read and retry is taken from it, whatever its outcome);
   * when given, maxScanBytes is not used. Lookups by name (lookUpEntry) share one so.
   */
  budget?: ScanBudget;
}

/** A byte budget several scans draw from. */
export interface ScanBudget {
  remaining: number;
}

/**
 * Byte limits of a scan. Hashing runs at about 1 GB/s (one core's SHA-256), and a file's size costs its writer
 * nothing: `truncate -s 4T` makes a sparse file of 4 TiB of zeros that takes no disk and five hours to read, and a
 * thousand hard links or reflinked copies of one real file are read a thousand times. A local user who can write
 * anywhere in a watched tree could so keep every baseline and compare from ending, and hide what they planted
 * beside it. So one file is read only up to DEFAULT_MAX_FILE_BYTES (about 4 s), a whole scan only up to
 * DEFAULT_MAX_SCAN_BYTES (about 5 minutes: a system tree holds a few tens of GiB). A file not hashed for either is
 * recorded as "too-large-to-hash" and reported high, never skipped in silence: a cap alone would let an intruder
 * pad a trojan past it.
 */
export const DEFAULT_MAX_FILE_BYTES = 4 * 1024 ** 3;
export const DEFAULT_MAX_SCAN_BYTES = 256 * 1024 ** 3;

export interface ScanStats {
  entries: number;
  bytesHashed: number;
}

/** Entries examined ahead of the one being emitted: bounds memory while keeping the pool busy. */
const WINDOW = 256;
/** Children whose lstat runs at the same time. */
const LSTAT_AHEAD = 32;
const READ_BUFFER = 1 << 20;

function typeOf(s: BigIntStats): EntryType {
  if (s.isFile()) return "file";
  if (s.isDirectory()) return "dir";
  if (s.isSymbolicLink()) return "symlink";
  if (s.isFIFO()) return "fifo";
  if (s.isSocket()) return "socket";
  if (s.isBlockDevice()) return "block";
  if (s.isCharacterDevice()) return "char";
  return "unknown";
}

function fromStat(path: string, s: BigIntStats): FileEntry {
  return {
    path,
    type: typeOf(s),
    status: "ok",
    mode: formatMode(Number(s.mode)),
    uid: Number(s.uid),
    gid: Number(s.gid),
    size: Number(s.size),
    mtime: s.mtimeNs.toString(),
    ctime: s.ctimeNs.toString(),
    ino: s.ino.toString(),
    target: null,
    sha256: null,
    error: null,
    dev: s.dev.toString(),
  };
}

function missing(path: string, status: "vanished" | "unreadable", error: string): FileEntry {
  return { path, type: "unknown", status, mode: "0000", uid: 0, gid: 0, size: 0, mtime: "0", ctime: "0", ino: "0", target: null, sha256: null, error };
}

/**
 * The record of a path that could not be examined, with the reason.
 *
 * @example
 * unexaminable("/srv/locked/helper", "DIR_REPLACED").type; // "unknown"
 */
export function unexaminable(path: string, error: string): FileEntry {
  return missing(path, "unreadable", error);
}

/** What the walker found at one path, before hashing. */
interface Found {
  path: string;
  stat: BigIntStats | null;
  entry: FileEntry;
}

/**
 * `path` made absolute, with the symlinks in the directories above it resolved and its last name kept as it is (a
 * PATH that is itself a symlink is recorded as one, never followed). A scan reaches every name through descriptors
 * opened without following symlinks, the roots' ancestors included, so a PATH spelled through a symlinked directory
 * (on a merged /usr, /lib → usr/lib: /lib/x86_64-linux-gnu/security) must be given as the directory it is, or its
 * first lstat fails and nothing under it is recorded. One spelling per directory also gives a tree one key
 * (records.ts treeKey). A parent that cannot be resolved (missing, not searchable) is left as given: the scan
 * reports it. Resolved once, before the scan; a symlink swapped in above a root afterwards is not followed.
 *
 * @example
 * await canonicalPath("/lib/x86_64-linux-gnu/security", fs); // "/usr/lib/x86_64-linux-gnu/security" (merged /usr)
 */
export async function canonicalPath(path: string, fs: ScanFS = nodeScanFS): Promise<string> {
  const absolute = resolve(path);
  if (absolute === "/" || fs.realpath === undefined) return absolute;
  const at = absolute.lastIndexOf("/");
  let parent: string;
  try {
    parent = await fs.realpath(absolute.slice(0, at) || "/");
  } catch {
    return absolute;
  }
  return `${parent === "/" ? "" : parent}/${absolute.slice(at + 1)}`;
}

/** Roots as canonicalPath spells them, normalised (normaliseRoots). */
export async function canonicalRoots(paths: readonly string[], fs: ScanFS = nodeScanFS): Promise<string[]> {
  return normaliseRoots(await Promise.all(paths.map((p) => canonicalPath(p, fs))));
}

/**
 * Normalises roots: absolute, sorted, and without roots nested inside another (scanned once).
 *
 * @example
 * normaliseRoots(["/usr/bin/", "/usr"]); // ["/usr"]
 */
export function normaliseRoots(paths: readonly string[]): string[] {
  const sorted = [...new Set(paths.map((p) => resolve(p)))].sort(comparePaths);
  const out: string[] = [];
  for (const p of sorted) if (!out.some((r) => isWithin(p, r))) out.push(p);
  return out;
}

async function examine(fs: ScanFS, path: string): Promise<Found> {
  try {
    const s = await fs.lstat(path);
    return { path, stat: s, entry: fromStat(path, s) };
  } catch (error) {
    const code = errorCode(error);
    return { path, stat: null, entry: missing(path, code === "ENOENT" ? "vanished" : "unreadable", code) };
  }
}

interface Frame {
  dir: string;
  names: string[];
  next: number;
  ahead: Array<Promise<Found>>;
  key: string;
  /** Device of `dir`: a child directory on another one is a mount point. */
  dev: bigint;
}

interface WalkOptions {
  allowMissing: boolean;
  exclude: (path: string) => boolean;
  oneFileSystem: boolean;
}

async function* walk(fs: ScanFS, roots: readonly string[], options: WalkOptions): AsyncGenerator<Found> {
  const { allowMissing, exclude } = options;
  for (const root of roots) {
    const top = await examine(fs, root);
    if (top.stat === null && top.entry.status === "vanished") {
      if (allowMissing) continue;
      throw filesErrors.badRoot(`cannot scan ${root}: it does not exist`);
    }
    // Directories on the current descent path: a directory that is its own ancestor (a bind
    // mount of a parent) would make the walk endless, so it is recorded and not entered.
    const onPath = new Set<string>();
    const stack: Frame[] = [];
    const rootDev = top.stat?.dev;
    // Whether a directory is a mount point is recorded, so one mounted over a recorded directory later (which a
    // --one-file-system compare does not enter, hiding what the baseline saw there) is a change.
    if (top.stat?.isDirectory()) {
      const parent = await fs.lstat(dirname(root)).catch(() => null);
      if (parent !== null) top.entry.mount = parent.dev !== top.stat.dev;
    }
    const enter = async (found: Found): Promise<void> => {
      if (found.stat === null || !found.stat.isDirectory()) return;
      if (options.oneFileSystem && found.stat.dev !== rootDev) return;
      const key = `${found.stat.dev}:${found.stat.ino}`;
      if (onPath.has(key)) {
        found.entry.status = "dir-loop";
        return;
      }
      let names: string[];
      try {
        names = (await fs.readdir(found.path)).sort(compareNames);
      } catch (error) {
        found.entry.status = "unreadable";
        found.entry.error = errorCode(error);
        return;
      }
      onPath.add(key);
      stack.push({ dir: found.path, names, next: 0, ahead: [], key, dev: found.stat.dev });
    };
    await enter(top);
    yield top;
    while (stack.length > 0) {
      const frame = stack[stack.length - 1] as Frame;
      while (frame.ahead.length < LSTAT_AHEAD && frame.next < frame.names.length) {
        const name = frame.names[frame.next++] as string;
        if (exclude(join(frame.dir, name))) continue;
        frame.ahead.push(examine(fs, join(frame.dir, name)));
      }
      const pending = frame.ahead.shift();
      if (pending === undefined) {
        stack.pop();
        onPath.delete(frame.key);
        continue;
      }
      const found = await pending;
      if (found.stat?.isDirectory()) found.entry.mount = found.stat.dev !== frame.dev;
      await enter(found);
      yield found;
    }
  }
}

/** A counting semaphore: at most `limit` hashes read at once, served in arrival (path) order. */
function semaphore(limit: number): { acquire(): Promise<void>; release(): void } {
  let active = 0;
  const waiting: Array<() => void> = [];
  return {
    acquire: () => {
      if (active < limit) {
        active++;
        return Promise.resolve();
      }
      return new Promise<void>((r) => waiting.push(r));
    },
    release: () => {
      const nextWaiter = waiting.shift();
      if (nextWaiter) nextWaiter();
      else active--;
    },
  };
}

/**
 * Scans `roots` and yields one entry per path in comparePaths order. Never throws for a problem
 * with one entry (it becomes the entry's status); throws only when a root does not exist.
 *
 * @example
 * for await (const e of scanTree(["/usr/bin"])) console.log(e.path, e.sha256);
 */
export async function* scanTree(roots: readonly string[], options: ScanOptions = {}): AsyncGenerator<FileEntry> {
  const fs = options.fs ?? createNodeScanFS();
  const limit = Math.max(1, Math.min(64, options.concurrency ?? 4));
  const gate = semaphore(limit);
  const buffers: Buffer[] = [];
  const stats: ScanStats = { entries: 0, bytesHashed: 0 };
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES;
  // Bytes the scan may still read. Taken, by the size lstat gave, when a file is handed to the hasher: that runs in
  // path order before any await, so in a tree that does not change the same files are hashed on every run.
  const budget: ScanBudget = options.budget ?? { remaining: options.maxScanBytes ?? DEFAULT_MAX_SCAN_BYTES };
  const take = (bytes: number): boolean => {
    if (bytes > budget.remaining) return false;
    budget.remaining -= bytes;
    return true;
  };

  const finish = async (found: Found): Promise<FileEntry> => {
    const entry = found.entry;
    if (found.stat === null || entry.status !== "ok") return entry;
    if (entry.type === "symlink") {
      try {
        entry.target = await fs.readlink(entry.path);
      } catch (error) {
        entry.status = "unreadable";
        entry.error = errorCode(error);
        return entry;
      }
      try {
        await fs.stat(entry.path);
      } catch (error) {
        if (errorCode(error) === "ELOOP") entry.status = "symlink-loop";
        // A dangling link (ENOENT) is a normal entry: its target string is what is recorded.
      }
      return entry;
    }
    if (entry.type !== "file") return entry;
    const limit = entry.size > maxFileBytes ? "FILE_SIZE_LIMIT" : take(entry.size) ? null : "SCAN_BYTE_LIMIT";
    if (limit !== null) {
      entry.status = "too-large-to-hash";
      entry.error = limit;
      return entry;
    }
    await gate.acquire();
    const buffer = buffers.pop() ?? Buffer.allocUnsafe(READ_BUFFER);
    try {
      // A retry (the file moved while read) reads it again: that is taken from the budget too.
      const outcome = await hashFile(fs, entry.path, found.stat, buffer, { maxBytes: maxFileBytes, allowRetry: take });
      if (outcome.status === "ok") {
        const fresh = fromStat(entry.path, outcome.stat);
        fresh.sha256 = outcome.sha256;
        stats.bytesHashed += outcome.bytes;
        return fresh;
      }
      entry.status = outcome.status;
      entry.error = outcome.error;
      return entry;
    } finally {
      buffers.push(buffer);
      gate.release();
    }
  };

  const window: Array<Promise<FileEntry>> = [];
  // Directories names are reached through stay open until the scan ends (hash-file.ts DirectoryCache).
  const release = fs.hold?.() ?? ((): void => {});
  try {
    for await (const found of walk(fs, normaliseRoots(roots), {
      allowMissing: options.allowMissingRoots ?? false,
      exclude: options.exclude ?? ((): boolean => false),
      oneFileSystem: options.oneFileSystem ?? false,
    })) {
      window.push(finish(found));
      if (window.length >= WINDOW) {
        stats.entries++;
        yield await (window.shift() as Promise<FileEntry>);
        options.onProgress?.(stats);
      }
    }
    while (window.length > 0) {
      stats.entries++;
      yield await (window.shift() as Promise<FileEntry>);
      options.onProgress?.(stats);
    }
  } finally {
    // Let hashes already started settle before their directories close.
    await Promise.allSettled(window);
    release();
  }
}

/**
 * The `error` of a directory examined by name (lookUpEntry), whose entries were not listed: it is compared as a
 * directory not listable is (its times and inode stand for what it holds), and is not itself reported as unreadable.
 */
export const NOT_LISTED = "NOT_LISTED";

/**
 * Examines one path as a scan would (lstat, then hash or readlink) without listing it when it is a directory: for the
 * entries a baseline recorded under a directory that cannot be listed now, looked up by the names it recorded (lstat
 * and open need only search permission on the directory). A path that is gone has status "vanished".
 *
 * @example
 * const e = await lookUpEntry("/usr/libexec/private/helper", { budget: { remaining: 1 << 30 } });
 */
export async function lookUpEntry(path: string, options: Pick<ScanOptions, "fs" | "maxFileBytes" | "maxScanBytes" | "budget"> = {}): Promise<FileEntry> {
  const fs = options.fs ?? createNodeScanFS();
  const unlisted: ScanFS = {
    ...fs,
    readdir: async () => {
      throw Object.assign(new Error("not listed: examined by name"), { code: NOT_LISTED });
    },
  };
  for await (const entry of scanTree([path], { ...options, fs: unlisted, allowMissingRoots: true, concurrency: 1 })) return entry;
  return missing(path, "vanished", "ENOENT");
}
