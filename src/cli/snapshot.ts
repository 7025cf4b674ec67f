// A private copy of an input file, taken once, so that every pass of a command reads the same bytes: an import
// digests, validates, then writes, and reading the path again for each pass let whoever can write the file (its
// author, anyone with write access to a shared export directory) change it after it was validated.
//
// The copy has no name: it is created in a fresh private directory under the temporary directory (TMPDIR), and the
// name and the directory are removed at once, before a byte is copied. Nobody can reach it by a path (to swap it, or
// to read the password hashes it may hold), and it is gone whenever the process ends, by Ctrl-C or kill -9 alike.
import { constants } from "node:fs";
import { mkdtemp, open, rmdir, statfs, unlink, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { openInputHandle } from "../checks/input-file.ts";
import { InputError } from "../lib/errors.ts";

export interface Snapshot {
  /** A new stream over the whole copy, from its first byte. */
  open(): Readable;
  /** Releases the copy (its space goes back to the file system). */
  close(): Promise<void>;
}

export interface SnapshotOptions {
  /** Where the nameless copy is made (default: os.tmpdir(), which TMPDIR sets). */
  dir?: string;
  /**
   * Bytes that may pass without a line break (LF or CR) before the copy stops: past them the file cannot be read
   * line by line anyway, so a huge file of one line (a sparse file that costs its author nothing) is refused after
   * this many bytes rather than copied whole.
   */
  maxLineBytes: number;
  /** What to call the file in messages. */
  name?: string;
}

/** Free space kept on the temporary directory's file system besides the copy. */
const RESERVE_BYTES = 64 * 1024 * 1024;
const LF = 10;
const CR = 13;

/**
 * Copies `source` (a regular file, checked on the descriptor that is read, so a name swapped for a FIFO cannot hang
 * the copy) into a nameless private file. Refused, with an input error naming the way out: a file larger than the
 * temporary directory's free space (less a reserve), and a file with a stretch of over `maxLineBytes` bytes without
 * a line break (stopped there).
 *
 * @example
 * const snap = await snapshotInput(file, { maxLineBytes: 4 * 1024 * 1024 });
 * try { await importUsers(deps, { ..., open: () => snap.open() }); } finally { await snap.close(); }
 */
export async function snapshotInput(source: string, options: SnapshotOptions): Promise<Snapshot> {
  const name = options.name ?? source;
  const dir = options.dir ?? tmpdir();
  const input = await openInputHandle(source);
  let copy: FileHandle | null = null;
  try {
    const { size } = await input.stat();
    const fs = await statfs(dir);
    const free = Number(fs.bavail) * Number(fs.bsize);
    if (size + RESERVE_BYTES > free) {
      throw new InputError("BULWARK_ERR_USAGE", `${name} is ${size} bytes, and the temporary directory ${dir} has ${free} bytes free: every pass reads a private copy of the file; set TMPDIR to a private directory with room for it`);
    }
    copy = await nameless(dir);
    await copyBounded(input, copy, options.maxLineBytes, name);
  } catch (error) {
    await copy?.close().catch(() => {});
    throw error;
  } finally {
    await input.close().catch(() => {});
  }
  const held = copy;
  return {
    open: () => held.createReadStream({ start: 0, autoClose: false }),
    close: () => held.close(),
  };
}

/** A new file open for reading and writing whose name and private directory are already removed. */
async function nameless(dir: string): Promise<FileHandle> {
  const where = await mkdtemp(join(dir, "bulwark-input-"));
  const path = join(where, "copy");
  try {
    const handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    await unlink(path);
    return handle;
  } finally {
    await unlink(path).catch(() => {});
    await rmdir(where).catch(() => {});
  }
}

async function copyBounded(input: FileHandle, copy: FileHandle, maxLineBytes: number, name: string): Promise<void> {
  const buffer = Buffer.allocUnsafe(1024 * 1024);
  let position = 0;
  let sinceBreak = 0;
  let lines = 1;
  for (;;) {
    const { bytesRead } = await input.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) return;
    // Gaps between line breaks, found with indexOf (a file with no CR at all looks for one once per read).
    const view = buffer.subarray(0, bytesRead);
    let lf = view.indexOf(LF);
    let cr = view.indexOf(CR);
    for (let i = 0; i < view.length;) {
      const next = lf < 0 ? cr : cr < 0 ? lf : Math.min(lf, cr);
      sinceBreak += (next < 0 ? view.length : next) - i;
      if (sinceBreak > maxLineBytes) {
        throw new InputError("BULWARK_ERR_IMPORT_FORMAT", `${name}: line ${lines} runs past ${maxLineBytes} bytes without a line break: not a file of lines or records this command reads (nothing was read from it)`);
      }
      if (next < 0) break;
      if (view[next] === LF) lines++;
      sinceBreak = 0;
      i = next + 1;
      if (lf >= 0 && lf < i) lf = view.indexOf(LF, i);
      if (cr >= 0 && cr < i) cr = view.indexOf(CR, i);
    }
    let written = 0;
    while (written < bytesRead) written += (await copy.write(buffer, written, bytesRead - written, position + written)).bytesWritten;
    position += bytesRead;
  }
}
