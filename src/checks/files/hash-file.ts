// Streamed SHA-256 of one regular file, with the checks that make the hash trustworthy: the file
// opened is the one examined (same device and inode, still regular), and it did not move while read.
import { createHash } from "node:crypto";
import { closeSync, constants, existsSync, fstatSync, lstatSync, openSync, read, readdirSync, readlinkSync, readSync, realpathSync, statSync, type BigIntStats } from "node:fs";

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
  /**
   * The directory through which names under `dir` are looked up from now on, until `unpin`: the node file system
   * opens it once (while directories are held: `hold`) and resolves every later name under it through that
   * descriptor, so a directory swapped after this call is not followed; returns what the descriptor refers to.
   * Without it, callers lstat the directory (a swap between that and a lookup is not seen).
   */
  pin?(dir: string): Promise<BigIntStats>;
  unpin?(dir: string): void;
  /** Keeps the directories this file system opens open until the returned function is called (a scan or compare). */
  hold?(): () => void;
  /**
   * `path` with every symlink in it resolved, as the kernel resolves it. Used before a scan on the directories above
   * each PATH (canonicalPath), the way the admin names it: without it, paths are taken as given.
   */
  realpath?(path: string): Promise<string>;
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
 * A directory entry name as text. Linux names are bytes; a byte that is not part of valid UTF-8 (always 0x80 or
 * above) is written as the lone surrogate U+DC00 + byte, which no valid name can hold, so every name gets its
 * own text and turns back into its bytes for the system calls (`systemPath`). Such an entry is examined like any
 * other: a setuid file named "x\xff" is a setuid file. (A printable escape such as `\xff` would collide with the
 * real name made of those four characters, and hide one of the two.)
 *
 * @example
 * nameFromBytes(Buffer.from([0x61, 0xff])) // "a\udcff"
 */
export function nameFromBytes(bytes: Buffer): string {
  const text = bytes.toString("utf8");
  if (!text.includes("\ufffd") || Buffer.from(text, "utf8").equals(bytes)) return text;
  let out = "";
  let i = 0;
  while (i < bytes.length) {
    // Take the longest valid UTF-8 run, escape one byte, repeat.
    let j = i;
    let run = "";
    for (let k = Math.min(bytes.length, i + 4096); k > i; k--) {
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
      out += String.fromCharCode(0xdc00 + (bytes[i] as number));
      i++;
    }
  }
  return out;
}

/** An escaped byte of nameFromBytes: a low surrogate of U+DC80–U+DCFF with no high surrogate before it. */
const ESCAPED_BYTE = /(?<![\ud800-\udbff])([\udc80-\udcff])/;

/** The bytes of a path whose names came from nameFromBytes. */
function pathBytes(path: string): Buffer {
  if (!ESCAPED_BYTE.test(path)) return Buffer.from(path, "utf8");
  return Buffer.concat(path.split(ESCAPED_BYTE).map((part, i) => (i % 2 === 1 ? Buffer.of(part.charCodeAt(0) - 0xdc00) : Buffer.from(part, "utf8"))));
}

/**
 * Paths longer than this (in bytes) are reached through an open descriptor of their directory: the kernel refuses
 * a path of PATH_MAX (4,096) bytes or more, so an intruder could nest a tree deeper than that and hide everything
 * below it from a scan that names files by their full path.
 */
const LONG_PATH = 3072;
/** Descriptors of directories kept open while a scan runs (least recently used closed first). */
const MAX_OPEN_DIRS = 256;
/**
 * Linux's O_PATH (its generic value; Node does not export it): a descriptor that only names the directory, which
 * needs search permission on it and not read, so the entries of a directory that may be searched but not listed
 * (mode 0711, or an LSM denying the listing) are still reached by name (compare.ts looks them up so).
 */
const O_PATH = process.platform === "linux" && ["x64", "arm64", "arm", "ia32", "riscv64", "ppc64", "s390x", "loong64"].includes(process.arch) ? 0o10000000 : 0;
const DIR_FLAGS = (O_PATH !== 0 ? O_PATH : constants.O_RDONLY) | constants.O_DIRECTORY | constants.O_NOFOLLOW;
/** Whether directories can be reached through their descriptors (`/proc` is mounted: Linux). */
const DESCRIPTOR_PATHS = existsSync("/proc/self/fd");

function lastSlash(path: string): number {
  const at = path.lastIndexOf("/");
  return at <= 0 ? 0 : at;
}

/**
 * The directories one file-system instance (createNodeScanFS) reaches names through. Each instance has its own: a
 * scan started while another runs in the same process must not resolve names through the other's descriptors, opened
 * on directories that may have been replaced since.
 */
class DirectoryCache {
  readonly #open = new Map<string, number>();
  /** Directories pinned (ScanFS.pin): never closed to make room, so what their names resolve through stays put. */
  readonly #pinned = new Set<string>();
  #holds = 0;

  /** An open descriptor of the directory `dir` (a path longer than LONG_PATH, or its ancestors). */
  #descriptor(dir: string): number {
    const held = this.#open.get(dir);
    if (held !== undefined) {
      this.#open.delete(dir);
      this.#open.set(dir, held);
      return held;
    }
    const at = lastSlash(dir);
    const fd = openSync(dir === "/" ? "/" : this.#under(dir.slice(0, at) || "/", dir.slice(at + 1)), DIR_FLAGS);
    this.#open.set(dir, fd);
    if (this.#open.size > MAX_OPEN_DIRS) {
      for (const [oldest, oldFd] of this.#open) {
        if (this.#pinned.has(oldest)) continue;
        this.#open.delete(oldest);
        closeSync(oldFd);
        break;
      }
    }
    return fd;
  }

  /** `name` under `dir`: the plain path when short (and no scan holds directories), else through dir's descriptor. */
  #under(dir: string, name: string): string | Buffer {
    const bytes = pathBytes(dir);
    const through = DESCRIPTOR_PATHS && (this.#holds > 0 || bytes.length > LONG_PATH);
    if (!through) return Buffer.concat([bytes, Buffer.from(dir === "/" ? "" : "/"), pathBytes(name)]);
    return Buffer.concat([Buffer.from(`/proc/self/fd/${this.#descriptor(dir)}/`), pathBytes(name)]);
  }

  /**
   * What to hand a system call for `path`. While directories are held (a scan runs) and `/proc` is there: the name
   * under `/proc/self/fd/N` of its directory's descriptor, opened once with O_NOFOLLOW, so the entries of a directory
   * are looked up in the directory that was listed, even if it is swapped for a link to elsewhere meanwhile (that
   * lookup then fails with ELOOP), and however long the path. Otherwise the path itself, its bytes when a name in it
   * is not UTF-8, or for a path longer than LONG_PATH the same descriptor route when `/proc` is there; without it,
   * the path's bytes as they are (the kernel refuses one of PATH_MAX bytes or more: ENAMETOOLONG, unreadable).
   */
  path(path: string): string | Buffer {
    if (this.#holds > 0 && DESCRIPTOR_PATHS && path !== "/" && path.startsWith("/")) {
      const at = lastSlash(path);
      return Buffer.concat([Buffer.from(`/proc/self/fd/${this.#descriptor(path.slice(0, at) || "/")}/`), pathBytes(path.slice(at + 1))]);
    }
    if (path.length * 3 <= LONG_PATH && !ESCAPED_BYTE.test(path)) return path;
    const bytes = pathBytes(path);
    if (bytes.length <= LONG_PATH || !DESCRIPTOR_PATHS) return ESCAPED_BYTE.test(path) || bytes.length > LONG_PATH ? bytes : path;
    const at = lastSlash(path);
    return this.#under(path.slice(0, at) || "/", path.slice(at + 1));
  }

  /** Runs one system call on `path`; when no scan holds directories, those it opened are closed again at once. */
  on<T>(path: string, call: (p: string | Buffer) => T): T {
    try {
      return call(this.path(path));
    } finally {
      if (this.#holds === 0 && this.#open.size > 0) this.#close();
    }
  }

  #close(): void {
    for (const fd of this.#open.values()) closeSync(fd);
    this.#open.clear();
    this.#pinned.clear();
  }

  /**
   * Marks a scan as running, so directories opened stay open until it ends; the returned function ends it. Within
   * one scan a directory is opened once and its descriptor kept, as a walk with openat would.
   */
  hold(): () => void {
    this.#holds++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.#holds === 0) this.#close();
    };
  }

  /**
   * ScanFS.pin: while directories are held and /proc is there, opens `dir` once (O_NOFOLLOW: a symlink in its place
   * fails) and keeps it open until unpinned, every name under it then resolved through that descriptor; returns its
   * fstat. Otherwise an lstat of the path.
   */
  pin(dir: string): BigIntStats {
    if (!(this.#holds > 0 && DESCRIPTOR_PATHS) || dir === "/" || !dir.startsWith("/")) return lstatSync(this.path(dir), { bigint: true });
    const fd = this.#descriptor(dir);
    this.#pinned.add(dir);
    return fstatSync(fd, { bigint: true });
  }

  unpin(dir: string): void {
    this.#pinned.delete(dir);
  }
}

/**
 * A real file system with a directory cache of its own. Metadata calls run synchronously behind the async interface:
 * an lstat takes microseconds, while a thread-pool round trip costs tens (measured: 3,000 small files went from ~2.5 s
 * to a fraction of that). Large reads stay on the thread pool so several files overlap. A scan or compare that is
 * given no file system makes one of these for itself.
 *
 * @example
 * const fs = createNodeScanFS();
 * const release = fs.hold?.();
 */
export function createNodeScanFS(): ScanFS {
  const cache = new DirectoryCache();
  return {
    lstat: async (p) => cache.on(p, (sp) => lstatSync(sp, { bigint: true })),
    stat: async (p) => cache.on(p, (sp) => statSync(sp, { bigint: true })),
    readdir: async (p) => cache.on(p, (sp) => readdirSync(sp, { encoding: "buffer" }).map(nameFromBytes)),
    readlink: async (p) => nameFromBytes(cache.on(p, (sp) => readlinkSync(sp, { encoding: "buffer" }))),
    open: async (p, flags) => fdFile(cache.on(p, (sp) => openSync(sp, flags))),
    pin: async (dir) => cache.pin(dir),
    unpin: (dir) => cache.unpin(dir),
    hold: () => cache.hold(),
    realpath: async (p) => nameFromBytes(cache.on(p, (sp) => realpathSync.native(sp, { encoding: "buffer" }))),
  };
}

/** A shared instance, for single calls outside a scan (the downloads check); scans make their own (createNodeScanFS). */
export const nodeScanFS: ScanFS = createNodeScanFS();

/** Files up to this size are read on the calling thread. */
const SYNC_READ_LIMIT = 256 * 1024;

/** Why a file was not hashed though it could be read: the errno-like code recorded with "too-large-to-hash". */
export type ByteLimit = "FILE_SIZE_LIMIT" | "SCAN_BYTE_LIMIT";

export type HashOutcome =
  | { status: "ok"; sha256: string; stat: BigIntStats; bytes: number }
  | { status: "unreadable"; error: string }
  | { status: "changed-during-scan"; error: string | null }
  | { status: "too-large-to-hash"; error: ByteLimit };

export interface HashLimits {
  /** Largest file hashed, in bytes (default: no limit). A larger one is not read at all. */
  maxBytes?: number;
  /**
   * Asked before each retry (the file moved while read) for that many more bytes of the scan's budget; false stops
   * there with SCAN_BYTE_LIMIT. The first read is the caller's to budget (default: every retry allowed).
   */
  allowRetry?: (bytes: number) => boolean;
}

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

async function hashOnce(fs: ScanFS, path: string, before: BigIntStats, buffer: Buffer, maxBytes: number): Promise<HashOutcome | "moved"> {
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
    // Grown past the limit since it was examined (`truncate -s 4T` between lstat and open): not read either.
    if (opened.size > BigInt(maxBytes)) return { status: "too-large-to-hash", error: "FILE_SIZE_LIMIT" };
    const hash = createHash("sha256");
    let total = 0;
    const size = Number(opened.size);
    const small = size <= SYNC_READ_LIMIT;
    for (;;) {
      const bytesRead = small ? handle.readSync(buffer) : await handle.read(buffer);
      if (bytesRead === 0) break;
      hash.update(buffer.subarray(0, bytesRead));
      total += bytesRead;
      // More bytes than its size: it is growing while read (or a FUSE file serves bytes without end). Stop at one
      // buffer past the size, so what is read stays bounded by the size that was budgeted.
      if (total > size) return "moved";
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
 * Never throws: I/O errors become "unreadable", a file that keeps moving "changed-during-scan", and a file past
 * `limits.maxBytes` (or a retry the scan's budget no longer covers) "too-large-to-hash". Each attempt reads at most
 * the file's size plus one buffer, so a file is read at most RETRIES + 1 times its limit.
 *
 * @example
 * const outcome = await hashFile(nodeScanFS, "/usr/bin/ls", await lstat("/usr/bin/ls", { bigint: true }), Buffer.alloc(1 << 20));
 */
export async function hashFile(fs: ScanFS, path: string, before: BigIntStats, buffer: Buffer, limits: HashLimits = {}): Promise<HashOutcome> {
  const maxBytes = limits.maxBytes ?? Number.MAX_SAFE_INTEGER;
  let expected = before;
  for (let attempt = 0; attempt <= RETRIES; attempt++) {
    if (expected.size > BigInt(maxBytes)) return { status: "too-large-to-hash", error: "FILE_SIZE_LIMIT" };
    if (attempt > 0 && limits.allowRetry && !limits.allowRetry(Number(expected.size))) return { status: "too-large-to-hash", error: "SCAN_BYTE_LIMIT" };
    const outcome = await hashOnce(fs, path, expected, buffer, maxBytes);
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
