// Streams log files into the analyzer: plain, gzip or zstd (detected by their magic bytes, not the
// file name; xz, bzip2 and lz4 are recognised and refused), split into lines by line-splitter.ts (latin1, a line that
// outgrows the limit across chunks skipped, never buffered whole), in this thread or the analyzer's worker.
import type { FileHandle } from "node:fs/promises";
import type { Transform } from "node:stream";
import { createGunzip, createZstdDecompress } from "node:zlib";
import { openInputHandle } from "../input-file.ts";
import type { AuthLogAnalyzer } from "./analyzer.ts";
import { AuthLogUnreadableError } from "./errors.ts";
import { ZstdFrameSplitter, type FramePiece } from "./zstd-frames.ts";

const CHUNK = 1 << 20;

function toBuffer(chunk: unknown): Buffer {
  return typeof chunk === "string" ? Buffer.from(chunk, "latin1") : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
}

/** Bytes needed to tell the formats apart (xz's magic is the longest). */
const MAGIC_BYTES = 6;

function startsWith(head: Buffer, magic: readonly number[]): boolean {
  return head.length >= magic.length && magic.every((b, i) => head[i] === b);
}

/**
 * Formats logrotate's compresscmd can produce that Node cannot decompress. Read as text they are binary junk: every
 * line malformed, no finding, a brute force and the login after it reported clean. Refused instead (exit 2).
 */
const REFUSED: ReadonlyArray<{ name: string; magic: readonly number[]; tool: string }> = [
  { name: "xz", magic: [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00], tool: "xz -dc" },
  { name: "bzip2", magic: [0x42, 0x5a, 0x68], tool: "bzip2 -dc" },
  { name: "lz4", magic: [0x04, 0x22, 0x4d, 0x18], tool: "lz4 -dc" },
];

/** zstd frame magic 0xFD2FB528, or a skippable frame's 0x184D2A5?, little-endian (RFC 8878 §3.1.1, §3.1.2). */
function isZstd(head: Buffer): boolean {
  return startsWith(head, [0x28, 0xb5, 0x2f, 0xfd]) || (head.length >= 4 && (head[0] as number) >> 4 === 5 && head[1] === 0x2a && head[2] === 0x4d && head[3] === 0x18);
}

/**
 * zstd, each frame through a decoder of its own (zstd-frames.ts: Node's stops after the first). Node has zstd from
 * 22.15, and package.json asks for 22.18; the decoder's default window limit (128 MiB) bounds what a frame can claim.
 */
async function* unzstd(raw: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  const splitter = new ZstdFrameSplitter();
  const source = raw[Symbol.asyncIterator]();
  let queue: FramePiece[] = [];
  let ended = false;
  /** Splits the next chunk into the queue; false at the end of the input. */
  const more = async (): Promise<boolean> => {
    const next = await source.next();
    if (next.done) {
      ended = true;
      splitter.finish();
      return false;
    }
    queue = splitter.split(next.value);
    return true;
  };
  /** The bytes of the next frame, up to its end; the pieces after it stay queued. */
  async function* frame(): AsyncGenerator<Buffer> {
    for (;;) {
      const piece = queue.shift();
      if (piece === undefined) {
        if (!(await more())) return;
        continue;
      }
      if (piece.bytes.length > 0) yield piece.bytes;
      if (piece.frameEnd) return;
    }
  }
  for (;;) {
    while (queue.length === 0 && !ended) await more();
    if (queue.length === 0) return;
    // A frame cut short: frame() raises the splitter's error at the end of the input, and decoded() yields all the
    // decoder makes of the bytes before it first.
    yield* decoded(createZstdDecompress({ chunkSize: CHUNK }), frame());
  }
}

/**
 * Runs `input` through `decoder` and yields all it decodes, in order; then ends, or throws the decoder's error or the
 * input's. What is read of a damaged file does not hang on timing: the decoder works on the libuv thread pool, and a
 * pipeline torn down by an error drops what the decoder holds (still to decode, or decoded and not yet taken), so a
 * truncated zstd frame was read to a different line on each run (the worker red team saw 24,004 failures against
 * 12,025). Here one chunk is written at a time and the next taken from the input only when the decoder is done with it;
 * an error of the input (a zstd frame cut short, EIO) is raised once the decoder is done with every byte before it
 * and all it made of them is yielded; the decoder's own error (corrupt data; gzip's "unexpected end of file", from
 * end(), called only after the last chunk was decoded) after all it pushed before it. What zlib decoded in the one
 * call that met corrupt data it drops (node:zlib gives no output with an error): that cut follows the chunks
 * written, which for a file are its 1 MiB reads, the same on every run and in both threads. Memory: one input chunk
 * and the decoder's output buffer (backpressure: it decodes on only when its output is taken).
 */
async function* decoded(decoder: Transform, input: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
  // In an object: set by callbacks, which TypeScript's narrowing of a local does not see.
  const failed: { decoder: { error: unknown } | null; input: { error: unknown } | null } = { decoder: null, input: null };
  /** The input is all written and decoded, or failed after the decoder was done with what came before. */
  let fed = false;
  let ended = false;
  let stopped = false;
  let writing = false;
  let waiting: Array<() => void> = [];
  const changed = (): void => {
    const w = waiting;
    waiting = [];
    for (const wake of w) wake();
  };
  const until = async (done: () => boolean): Promise<void> => {
    while (!done()) await new Promise<void>((resolve) => waiting.push(resolve));
  };
  const broken = (): boolean => failed.decoder !== null || stopped;
  decoder.on("readable", changed);
  decoder.on("end", () => {
    ended = true;
    changed();
  });
  decoder.on("error", (error: unknown) => {
    failed.decoder ??= { error };
    changed();
  });
  const feed = async (): Promise<void> => {
    try {
      for await (const chunk of input) {
        if (broken()) return;
        if (chunk.length === 0) continue;
        writing = true;
        // Called when zlib has decoded all of the chunk and pushed its output (not when it failed on it: 'error').
        decoder.write(chunk, () => {
          writing = false;
          changed();
        });
        await until(() => !writing || broken());
        if (broken()) return;
      }
    } catch (error) {
      failed.input = { error };
    }
    fed = true;
    changed();
    if (failed.input === null && !broken()) decoder.end();
  };
  feed().catch((error: unknown) => {
    failed.input ??= { error };
    fed = true;
    changed();
  });
  try {
    for (;;) {
      // Also after an error destroyed the decoder: what it pushed before is still in its buffer, and is read.
      const chunk: Buffer | null = decoder.read();
      if (chunk !== null) {
        yield chunk;
        continue;
      }
      if (failed.decoder !== null) throw failed.decoder.error;
      if (fed && failed.input !== null) throw failed.input.error;
      if (ended) return;
      // Until something happens: 'readable' (data, or the end to be read), 'end', 'error', the input fed or failed.
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
  } finally {
    stopped = true;
    changed();
    decoder.destroy();
  }
}

/** The decompressed bytes of `input` (which starts with `head`), null for text; throws for a compressed format that is not read. */
function decompress(head: Buffer, input: AsyncGenerator<Buffer>): { format: string; output: AsyncIterable<unknown> } | null {
  if (startsWith(head, [0x1f, 0x8b])) {
    // Concatenated gzip members (logrotate with delaycompress + cat) are read in full by zlib.
    return { format: "gzip", output: decoded(createGunzip({ chunkSize: CHUNK }), input) };
  }
  if (isZstd(head)) return { format: "zstd", output: unzstd(input) };
  // bzip2's "BZh" is followed by the block size digit 1–9: plain text starting "BZh" is still text.
  const refused = REFUSED.find((f) => startsWith(head, f.magic) && (f.name !== "bzip2" || (head[3] !== undefined && head[3] >= 0x31 && head[3] <= 0x39)));
  if (refused) {
    throw new Error(
      `it is ${refused.name}-compressed, which this check does not read: decompress it first, e.g. pass <(${refused.tool} FILE) instead of the file, ` +
        `or pipe ${refused.tool} FILE into "bulwark check authlog -"`,
    );
  }
  return null;
}

/**
 * Yields the bytes of `input`, decompressed when they start with the gzip (1f 8b) or a zstd frame's
 * magic. Throws, naming the format and how to decompress it, for xz, bzip2 and lz4.
 *
 * @example
 * await feedChunks(analyzer, decompressed(process.stdin));
 */
export async function* decompressed(input: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]();
  // A pipe can deliver fewer bytes than a magic number in its first chunk: gather enough to tell.
  const start: Buffer[] = [];
  let length = 0;
  let ended = false;
  while (length < MAGIC_BYTES) {
    const next = await it.next();
    if (next.done) {
      ended = true;
      break;
    }
    const chunk = toBuffer(next.value);
    start.push(chunk);
    length += chunk.length;
  }
  if (length === 0) return;
  const head = start.length === 1 ? (start[0] as Buffer) : Buffer.concat(start);
  async function* all(): AsyncGenerator<Buffer> {
    yield head;
    if (ended) return;
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      yield toBuffer(next.value);
    }
  }
  const bytes = all();
  const unpacked = decompress(head, bytes);
  if (unpacked === null) {
    yield* bytes;
    return;
  }
  const { format, output } = unpacked;
  try {
    for await (const chunk of output) yield chunk as Buffer;
  } catch (error) {
    // zlib's codes (Z_DATA_ERROR, Z_BUF_ERROR for a truncated stream, ZSTD_error_…) mean the data; others (EIO) the file.
    const code = (error as NodeJS.ErrnoException).code ?? "";
    if (code.startsWith("Z_") || code.startsWith("ZSTD_")) throw new Error(`corrupt ${format} data`, { cause: error });
    throw error;
  }
}

/**
 * Feeds every line of `chunks` to `analyzer` (after `beginFile`). Lines are split on LF; a CR
 * before it is dropped. Returns the number of lines. An analyzer with a worker (`workers: true`) splits and reads
 * them there.
 *
 * @example
 * analyzer.beginFile("-");
 * await feedChunks(analyzer, decompressed(process.stdin));
 */
export function feedChunks(analyzer: AuthLogAnalyzer, chunks: AsyncIterable<Buffer>): Promise<number> {
  return analyzer.feed(chunks);
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  return (error as Error).message ?? String(error);
}

/**
 * Opens `path` for reading. An intruder with root — the case this check is for — can replace a rotated log with a
 * FIFO (open() waits for a writer for ever) or a link to /dev/zero (never ends), and the nightly check would hang
 * in silence: openInputHandle (src/checks/input-file.ts) opens without blocking and takes only a regular file, or a
 * pipe the operator passed on purpose (/dev/fd/N, /dev/stdin), or stdin as "-" (read by the caller, never opened).
 */
function openLog(path: string): Promise<FileHandle> {
  return openInputHandle(path, "a pipe is read only when passed as /dev/fd/N, e.g. with <(…), or as - for stdin");
}

/**
 * Reads `input` (plain, gzip or zstd) into `analyzer` as the file `name` (stdin is "-"), last modified at `modifiedMs`
 * when it is a file (analyzer.beginFile). Throws AuthLogUnreadableError naming it when its data is corrupt or in a
 * compressed format not read.
 *
 * @example
 * await analyzeStream(analyzer, "-", process.stdin);
 */
export async function analyzeStream(analyzer: AuthLogAnalyzer, name: string, input: AsyncIterable<unknown>, modifiedMs?: number): Promise<void> {
  analyzer.beginFile(name, modifiedMs);
  try {
    await feedChunks(analyzer, decompressed(input));
  } catch (error) {
    throw new AuthLogUnreadableError(name, describe(error), { cause: error });
  }
}

/**
 * Reads one file (plain, gzip or zstd) into `analyzer`. Throws AuthLogUnreadableError naming the
 * file when it cannot be opened, is not a regular file (a FIFO, a device), its compressed data is
 * corrupt, or it is compressed with xz, bzip2 or lz4.
 *
 * @example
 * const a = new AuthLogAnalyzer({ referenceMs: clock.now() });
 * await analyzeFile(a, "/var/log/auth.log.2.gz");
 */
export async function analyzeFile(analyzer: AuthLogAnalyzer, path: string): Promise<void> {
  let handle: FileHandle;
  try {
    handle = await openLog(path);
  } catch (error) {
    throw new AuthLogUnreadableError(path, describe(error), { cause: error });
  }
  try {
    // A regular file's mtime bounds the stamps of its lines without --year (a rotated file's year); a pipe's says nothing.
    let modifiedMs: number | undefined;
    try {
      const stat = await handle.stat();
      if (stat.isFile()) modifiedMs = stat.mtimeMs;
    } catch {
      // Unknown: the reference time alone, as for stdin.
    }
    await analyzeStream(analyzer, path, handle.createReadStream({ highWaterMark: CHUNK }), modifiedMs);
  } finally {
    await handle.close().catch(() => {});
  }
}
