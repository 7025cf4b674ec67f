// Offline breached-password lookup in a sorted `SHA1HEX:COUNT` file (the downloadable Pwned
// Passwords file, ordered by hash): binary search with positioned reads, never loading the file.
import { open, type FileHandle } from "node:fs/promises";
import { BreachFileError } from "./errors.ts";
import { sha1Hex } from "./normalize.ts";
import type { BreachChecker, BreachVerdict } from "./types.ts";

export interface OfflineBreachFile extends BreachChecker {
  /** Count for an upper- or lower-case hex SHA-1 (0 when absent). */
  lookupHash(sha1: string): Promise<number>;
  /** Closes the file; a later lookup opens it again. */
  close(): Promise<void>;
}

// 40 hex digits, ":", a count of up to 15 digits, an optional "\r": 57 bytes. 80 leaves room and
// still lets one small read hold the end of a line and the whole next one.
const MAX_LINE_BYTES = 80;
const WINDOW_BYTES = 2 * (MAX_LINE_BYTES + 1) + 1;
const LINE = /^([0-9A-Fa-f]{40}):(\d{1,15})\r?$/;
const HASH = /^[0-9A-Fa-f]{40}$/;

interface Line {
  start: number;
  /** Offset of the next line's first byte. */
  next: number;
  key: string;
  count: number;
}

/**
 * Opens (lazily, on first lookup) a file of `SHA1HEX:COUNT` lines sorted by hash and searches it by
 * bisection over byte offsets: about log2(size) reads of ~160 bytes each (~35 for the 30 GB file).
 * LF or CRLF endings; the last line may lack its newline. A malformed line met on the way, or lines
 * out of order, end the lookup with a BreachFileError naming the byte offset.
 *
 * @example
 * const file = createOfflineBreachFile("/srv/pwned-passwords-sha1-ordered-by-hash.txt");
 * await file.check("password"); // { status: "breached", count: ... }
 * await file.close();
 */
export function createOfflineBreachFile(path: string): OfflineBreachFile {
  let opened: Promise<{ handle: FileHandle; start: number; size: number }> | undefined;

  const openFile = async (): Promise<{ handle: FileHandle; start: number; size: number }> => {
    let handle: FileHandle;
    try {
      handle = await open(path, "r");
    } catch (cause) {
      throw new BreachFileError(`${path}: cannot open the breached-password file`, { cause });
    }
    const stats = await handle.stat();
    if (!stats.isFile() || stats.size === 0) {
      await handle.close();
      throw new BreachFileError(`${path}: the breached-password file is empty or not a regular file`);
    }
    // Searched between its first and its last line: a UTF-8 byte order mark before the first (an editor's) and
    // blank lines after the last are not lines; read as lines they failed the lookups that reached them.
    const head = Buffer.alloc(3);
    await handle.read(head, 0, 3, 0);
    const start = head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf ? 3 : 0;
    const tail = Buffer.alloc(Math.min(256, stats.size - start));
    await handle.read(tail, 0, tail.length, stats.size - tail.length);
    let end = tail.length;
    while (end > 0 && (tail[end - 1] === 0x0a || tail[end - 1] === 0x0d)) end--;
    const size = stats.size - tail.length + end;
    if (size <= start) {
      await handle.close();
      throw new BreachFileError(`${path}: the breached-password file holds no lines`);
    }
    return { handle, start, size };
  };

  async function readLineFrom(handle: FileHandle, first: number, size: number, offset: number): Promise<Line | undefined> {
    // Read from offset-1 so a line starting exactly at offset is recognised by the "\n" before it.
    const from = offset === first ? first : offset - 1;
    const buffer = Buffer.alloc(Math.min(WINDOW_BYTES, size - from));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, from);
    const bytes = buffer.subarray(0, bytesRead);
    let lineStart = 0;
    if (offset !== first) {
      const newline = bytes.indexOf(0x0a);
      if (newline === -1) {
        if (from + bytesRead >= size) return undefined; // the last line started before offset
        throw malformed(from, "a line longer than 80 bytes (is this the SHA-1 file, ordered by hash?)");
      }
      lineStart = newline + 1;
    }
    const start = from + lineStart;
    if (start >= size) return undefined;
    let end = bytes.indexOf(0x0a, lineStart);
    let next = from + end + 1;
    if (end === -1) {
      if (from + bytesRead < size) throw malformed(start, "a line longer than 80 bytes (is this the SHA-1 file, ordered by hash?)");
      end = bytesRead;
      next = size;
    }
    const text = bytes.toString("latin1", lineStart, end);
    const match = LINE.exec(text);
    if (match === null) throw malformed(start, "expected SHA1HEX:COUNT (40 hex digits, a colon, a decimal count)");
    return { start, next, key: (match[1] ?? "").toUpperCase(), count: Number(match[2]) };
  }

  function malformed(offset: number, what: string): BreachFileError {
    return new BreachFileError(`${path}: malformed breached-password file at byte ${offset}: ${what}`);
  }

  async function lookupHash(sha1: string): Promise<number> {
    if (!HASH.test(sha1)) throw new BreachFileError("lookupHash expects a SHA-1 as 40 hex digits");
    const target = sha1.toUpperCase();
    opened ??= openFile().catch((error: unknown) => {
      opened = undefined;
      throw error;
    });
    const { handle, start, size } = await opened;
    // Invariants: every line starting before lo has a key < target, every line starting at or after
    // hi a key > target; lo is always a line start. loKey/hiKey are the nearest keys seen outside
    // [lo, hi): a line inside that falls outside them proves the file is not sorted.
    let lo = start;
    let hi = size;
    let loKey = "";
    let hiKey = "G";
    while (lo < hi) {
      const mid = lo + Math.floor((hi - lo) / 2);
      const line = await readLineFrom(handle, start, size, mid);
      if (line === undefined || line.start >= hi) {
        hi = mid; // no line starts in [mid, hi)
        continue;
      }
      if (line.key < loKey || line.key > hiKey) {
        throw new BreachFileError(`${path}: the breached-password file is not sorted by hash (line at byte ${line.start})`);
      }
      if (line.key === target) return line.count;
      if (line.key < target) {
        lo = line.next;
        loKey = line.key;
      } else {
        hi = mid; // no line starts in [mid, line.start), and this one and all after are greater
        hiKey = line.key;
      }
    }
    return 0;
  }

  return {
    name: "offline-file",
    lookupHash,
    async check(password: string): Promise<BreachVerdict> {
      let count: number;
      try {
        count = await lookupHash(sha1Hex(password));
      } catch (error) {
        // A missing, unsorted or malformed file is no answer: the policy reports it (and refuses, fail-closed)
        // instead of failing the whole request with an internal error.
        if (error instanceof BreachFileError) return { status: "unavailable", reason: error.message, failClosed: true };
        throw error;
      }
      return count > 0 ? { status: "breached", count } : { status: "clean" };
    },
    async close(): Promise<void> {
      const current = opened;
      opened = undefined;
      if (current !== undefined) await (await current.catch(() => undefined))?.handle.close();
    },
  } satisfies OfflineBreachFile;
}
