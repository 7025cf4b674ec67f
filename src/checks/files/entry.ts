// One recorded file-system entry of a files baseline, and the path order that the scanner, the
// baseline file and the compare merge all share (a merge of two sorted streams needs one order).

export type EntryType = "file" | "dir" | "symlink" | "fifo" | "socket" | "block" | "char" | "unknown";
export const ENTRY_TYPES: readonly EntryType[] = ["file", "dir", "symlink", "fifo", "socket", "block", "char", "unknown"];

/**
 * ok: fully recorded. unreadable: metadata only, the content could not be read (error holds the code).
 * changed-during-scan: size or mtime moved while hashing, even after retries, so no hash is trusted.
 * vanished: listed by its directory but gone before it could be examined (never written to a baseline).
 * dir-loop: a directory that is its own ancestor (bind mount), not descended.
 * symlink-loop: a symbolic link whose resolution loops (ELOOP).
 * too-large-to-hash: a regular file not hashed because reading it would pass a byte limit (error FILE_SIZE_LIMIT:
 * larger than the per-file limit; SCAN_BYTE_LIMIT: the scan's byte budget is spent), so its content is not verified.
 */
export type EntryStatus = "ok" | "unreadable" | "changed-during-scan" | "vanished" | "dir-loop" | "symlink-loop" | "too-large-to-hash";
export const ENTRY_STATUSES: readonly EntryStatus[] = ["ok", "unreadable", "changed-during-scan", "vanished", "dir-loop", "symlink-loop", "too-large-to-hash"];

export interface FileEntry {
  /** Absolute, normalised path. */
  path: string;
  type: EntryType;
  status: EntryStatus;
  /** Permission bits including setuid, setgid and sticky (st_mode & 07777), as 4 octal digits. */
  mode: string;
  uid: number;
  gid: number;
  size: number;
  /** Nanoseconds since the epoch, as a decimal string (exact; a double would round). */
  mtime: string;
  ctime: string;
  /** Inode number, decimal string. A replaced file (write-to-temp then rename) gets a new inode. */
  ino: string;
  /** Symbolic link target as stored in the link (never resolved). */
  target: string | null;
  /** Lower-case hex SHA-256 of a regular file's content, when it could be read consistently. */
  sha256: string | null;
  /** errno code (EACCES, EIO, ENOENT…) when status is not ok. */
  error: string | null;
  /**
   * Directories only: true when it is on another device than the directory it is in (a mount point; for a root of
   * the scan, its parent). Absent: not recorded — any other type, a root whose parent could not be examined, or a
   * version 1 baseline, which predates the field.
   */
  mount?: boolean;
  /**
   * The device it was found on, decimal, in memory only: never written to a baseline (device numbers change across
   * boots). With `ino` it says which directory a compare's lookups must go through (check.ts).
   */
  dev?: string;
}

/**
 * Orders paths depth-first with siblings sorted by UTF-16 code unit: "/" sorts before every other
 * character, which is the same as comparing component by component. So a directory comes right
 * before its contents, and a scan that sorts each directory's names emits paths in this order.
 *
 * @example
 * ["/a/b-x", "/a/b/c", "/a/b"].sort(comparePaths); // ["/a/b", "/a/b/c", "/a/b-x"]
 */
export function comparePaths(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    if (ca === 0x2f) return -1;
    if (cb === 0x2f) return 1;
    return ca - cb;
  }
  return a.length - b.length;
}

/** Plain code-unit order of two names (no locale: the order must be the same on every machine). */
export function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** True when `path` is `root` or lies beneath it. */
export function isWithin(path: string, root: string): boolean {
  if (root === "/") return path.startsWith("/");
  return path === root || path.startsWith(`${root}/`);
}

/** Permission bits as 4 octal digits ("0755", "4755"). */
export function formatMode(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, "0");
}

export function modeBits(mode: string): number {
  return Number.parseInt(mode, 8);
}

/** True when any execute bit is set. */
export function isExecutableMode(mode: string): boolean {
  return (modeBits(mode) & 0o111) !== 0;
}

/** True when setuid or setgid is set: such a file runs with its owner's or group's rights. */
export function isSetID(mode: string): boolean {
  return (modeBits(mode) & 0o6000) !== 0;
}
