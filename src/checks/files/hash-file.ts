// Streamed SHA-256 of one regular file, with the checks that make the hash trustworthy: the file
// opened is the one examined (same device and inode, still regular), and it did not move while read.
import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, lstatSync, openSync, read, readdirSync, readlinkSync, readSync, statSync, type BigIntStats } from "node:fs";

/** An open regular file, as the hasher needs it. */
export interface OpenFile {
  stat(): Promise<BigIntStats>;
  /** Reads up to buffer.length bytes at the current position on the thread pool; 0 at the end. */
  read(buffer: Buffer): Promise<number>;
  /** The same, on the calling thread: cheaper for small files than a thread-pool round trip. */
  readSync(buffer: Buffer): number;
  close(): Promise<void>;
}

/** The file-system calls the scanner makes; tests replace them to simulate I/O errors. */
export interface ScanFS {
  lstat(path: string): Promise<BigIntStats>;
  stat(path: string): Promise<BigIntStats>;
  readdir(path: string): Promise<string[]>;
  readlink(path: string): Promise<string>;
  open(path: string, flags: number): Promise<OpenFile>;
}

function fdFile(fd: number): OpenFile {
  let closed = false;
  return {
    stat: async () => fstatSync(fd, { bigint: true }),
    read: (buffer) =>
      new Promise<number>((resolve, reject) => read(fd, buffer, 0, buffer.length, null, (error, n) => (error ? reject(error) : resolve(n)))),
    readSync: (buffer) => readSync(fd, buffer, 0, buffer.length, null),
    close: async () => {
      if (closed) return;
      closed = true;
      closeSync(fd);
    },
  };
}

/**
 * A directory entry name as text. Linux names are bytes; a name that is not valid UTF-8 cannot be
 * named by a JS string, so it comes back as NUL (never part of a real name) followed by the name
 * with each bad byte written as \xNN: the scanner records it as an unexaminable entry instead of
 * silently losing it (a trick to hide a planted file).
 */
export function nameFromBytes(bytes: Buffer): string {
  const text = bytes.toString("utf8");
  if (Buffer.from(text, "utf8").equals(bytes)) return text;
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    // Take the longest valid UTF-8 run, escape one byte, repeat.
    let j = i;
    let run = "";
    for (let k = bytes.length; k > i; k--) {
      const piece = bytes.subarray(i, k);
      const decoded = piece.toString("utf8");
      if (Buffer.from(decoded, "utf8").equals(piece)) {
        run = decoded;
        j = k;
        break;
      }
    }
    if (j > i) {
      out += run;
      i = j;
    } else {
      out += `\\x${(bytes[i] as number).toString(16).padStart(2, "0")}`;
      i++;
    }
  }
  return `\0${out}`;
}

/**
 * The real file system. Metadata calls run synchronously behind the async interface: an lstat takes
 * microseconds, while a thread-pool round trip costs tens (measured: 3,000 small files went from
 * ~2.5 s to a fraction of that). Large reads stay on the thread pool so several files overlap.
 */
export const nodeScanFS: ScanFS = {
  lstat: async (p) => lstatSync(p, { bigint: true }),
  stat: async (p) => statSync(p, { bigint: true }),
  readdir: async (p) => readdirSync(p, { encoding: "buffer" }).map(nameFromBytes),
  readlink: async (p) => readlinkSync(p),
  open: async (p, flags) => fdFile(openSync(p, flags)),
};

/** Files up to this size are read on the calling thread. */
const SYNC_READ_LIMIT = 256 * 1024;

export type HashOutcome =
  | { status: "ok"; sha256: string; stat: BigIntStats; bytes: number }
  | { status: "unreadable"; error: string }
  | { status: "changed-during-scan"; error: string | null };

/** How many times a file that moved while being read is hashed again before giving up. */
const RETRIES = 2;

// O_NOFOLLOW: a symlink swapped in after lstat is refused (ELOOP), never followed to another file.
// O_NONBLOCK: a FIFO swapped in after lstat would otherwise block open() forever.
const BASE_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
// O_NOATIME keeps access times intact for forensics; the kernel refuses it (EPERM) on files we do
// not own unless we are root, and then we open without it.
const NOATIME = (constants as Record<string, number>)["O_NOATIME"] ?? 0;

function errorCode(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === "string" ? code : "EUNKNOWN";
}

async function openForHash(fs: ScanFS, path: string): Promise<OpenFile> {
  if (NOATIME !== 0) {
    try {
      return await fs.open(path, BASE_FLAGS | NOATIME);
    } catch (error) {
      if (errorCode(error) !== "EPERM") throw error;
    }
  }
  return fs.open(path, BASE_FLAGS);
}

function same(a: BigIntStats, b: BigIntStats): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.ino === b.ino && a.dev === b.dev;
}

async function hashOnce(fs: ScanFS, path: string, before: BigIntStats, buffer: Buffer): Promise<HashOutcome | "moved"> {
  let handle: OpenFile;
  try {
    handle = await openForHash(fs, path);
  } catch (error) {
    return { status: "unreadable", error: errorCode(error) };
  }
  try {
    const opened = await handle.stat();
    // Replaced between lstat and open (another inode, or no longer a regular file).
    if (!opened.isFile() || opened.ino !== before.ino || opened.dev !== before.dev) return "moved";
    const hash = createHash("sha256");
    let total = 0;
    const small = opened.size <= BigInt(SYNC_READ_LIMIT);
    for (;;) {
      const bytesRead = small ? handle.readSync(buffer) : await handle.read(buffer);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      total += bytesRead;
    }
    const after = await handle.stat();
    if (!same(opened, after) || BigInt(total) !== after.size) return "moved";
    return { status: "ok", sha256: hash.digest("hex"), stat: after, bytes: total };
  } catch (error) {
    return { status: "unreadable", error: errorCode(error) };
  } finally {
    await handle.close().catch(() => {});
  }
}

/**
 * Hashes `path` (expected to be the regular file `before` describes), reading through `buffer`.
 * Never throws: I/O errors become "unreadable", a file that keeps moving "changed-during-scan".
 *
 * @example
 * const outcome = await hashFile(nodeScanFS, "/usr/bin/ls", await lstat("/usr/bin/ls", { bigint: true }), Buffer.alloc(1 << 20));
 */
export async function hashFile(fs: ScanFS, path: string, before: BigIntStats, buffer: Buffer): Promise<HashOutcome> {
  let expected = before;
  for (let attempt = 0; attempt <= RETRIES; attempt++) {
    const outcome = await hashOnce(fs, path, expected, buffer);
    if (outcome !== "moved") return outcome;
    try {
      expected = await fs.lstat(path);
    } catch (error) {
      return { status: "changed-during-scan", error: errorCode(error) };
    }
    if (!expected.isFile()) return { status: "changed-during-scan", error: null };
  }
  return { status: "changed-during-scan", error: null };
}

export { errorCode };
