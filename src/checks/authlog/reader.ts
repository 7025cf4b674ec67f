// Streams log files into the analyzer: plain or gzip (detected by its magic bytes, not the file
// name), decoded as latin1 (one char per byte: any binary junk decodes, nothing throws) and split
// into lines; a line that outgrows the limit across chunks is skipped, never buffered whole.
import { open } from "node:fs/promises";
import { pipeline, Readable } from "node:stream";
import { createGunzip } from "node:zlib";
import type { AuthLogAnalyzer } from "./analyzer.ts";
import { AuthLogUnreadableError } from "./errors.ts";

const CHUNK = 1 << 20;

function toBuffer(chunk: unknown): Buffer {
  return typeof chunk === "string" ? Buffer.from(chunk, "latin1") : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk as Uint8Array);
}

/**
 * Yields the bytes of `input`, gunzipped when they start with the gzip magic 1f 8b.
 *
 * @example
 * await feedChunks(analyzer, decompressed(process.stdin));
 */
export async function* decompressed(input: AsyncIterable<unknown>): AsyncGenerator<Buffer> {
  const it = input[Symbol.asyncIterator]();
  const first = await it.next();
  if (first.done) return;
  const head = toBuffer(first.value);
  async function* all(): AsyncGenerator<Buffer> {
    yield head;
    for (;;) {
      const next = await it.next();
      if (next.done) return;
      yield toBuffer(next.value);
    }
  }
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    // Concatenated gzip members (logrotate with delaycompress + cat) are read in full by zlib.
    const gunzip = createGunzip({ chunkSize: CHUNK });
    pipeline(Readable.from(all()), gunzip, () => {});
    for await (const chunk of gunzip) yield chunk as Buffer;
  } else {
    yield* all();
  }
}

/**
 * Feeds every line of `chunks` to `analyzer` (after `beginFile`). Lines are split on LF; a CR
 * before it is dropped. Returns the number of lines.
 *
 * @example
 * analyzer.beginFile("-");
 * await feedChunks(analyzer, decompressed(process.stdin));
 */
export async function feedChunks(analyzer: AuthLogAnalyzer, chunks: AsyncIterable<Buffer>): Promise<number> {
  const max = analyzer.maxLineLength;
  let lineNo = 0;
  let carry: Buffer | null = null;
  // The current line already passed `max` bytes: skip to its end, then count it once.
  let skipping = false;
  const emitText = (text: string): void => {
    let pos = 0;
    for (;;) {
      const nl = text.indexOf("\n", pos);
      if (nl < 0) break;
      let end = nl;
      if (end > pos && text.charCodeAt(end - 1) === 13) end--;
      lineNo++;
      if (end - pos > max) analyzer.overlong();
      else analyzer.line(text.slice(pos, end), lineNo);
      pos = nl + 1;
    }
  };
  for await (const chunk of chunks) {
    let start = 0;
    if (skipping) {
      const nl = chunk.indexOf(10);
      if (nl < 0) continue;
      lineNo++;
      analyzer.overlong();
      skipping = false;
      start = nl + 1;
    }
    const lastNl = chunk.lastIndexOf(10);
    if (lastNl < start) {
      const rest = chunk.subarray(start);
      carry = carry ? Buffer.concat([carry, rest]) : Buffer.from(rest);
      if (carry.length > max) {
        skipping = true;
        carry = null;
      }
      continue;
    }
    const body = chunk.toString("latin1", start, lastNl + 1);
    if (carry) {
      emitText(carry.toString("latin1") + body);
      carry = null;
    } else emitText(body);
    if (lastNl + 1 < chunk.length) {
      carry = Buffer.from(chunk.subarray(lastNl + 1));
      if (carry.length > max) {
        skipping = true;
        carry = null;
      }
    }
  }
  if (skipping) {
    lineNo++;
    analyzer.overlong();
  } else if (carry && carry.length > 0) {
    emitText(`${carry.toString("latin1")}\n`);
  }
  return lineNo;
}

function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  if (code === "Z_DATA_ERROR" || code === "Z_BUF_ERROR") return "corrupt gzip data";
  return (error as Error).message ?? String(error);
}

/**
 * Reads one file (plain or gzip) into `analyzer`. Throws AuthLogUnreadableError naming the file
 * when it cannot be opened or its gzip stream is corrupt.
 *
 * @example
 * const a = new AuthLogAnalyzer({ referenceMs: clock.now() });
 * await analyzeFile(a, "/var/log/auth.log.2.gz");
 */
export async function analyzeFile(analyzer: AuthLogAnalyzer, path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, "r");
    const info = await handle.stat();
    if (info.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
  } catch (error) {
    await handle?.close();
    throw new AuthLogUnreadableError(path, describe(error), { cause: error });
  }
  analyzer.beginFile(path);
  try {
    const stream = handle.createReadStream({ highWaterMark: CHUNK });
    await feedChunks(analyzer, decompressed(stream));
  } catch (error) {
    throw new AuthLogUnreadableError(path, describe(error), { cause: error });
  } finally {
    await handle.close().catch(() => {});
  }
}
