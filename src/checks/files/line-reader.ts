// Splits a byte stream into lines with a hard bound on line length, so a hostile file (one 10 GB
// line) costs bounded memory. Shared by the baseline reader, the SHA256SUMS parser and the audit CLI's file readers.

export interface Line {
  /** 1-based line number. */
  number: number;
  /** The line's bytes without the newline; empty when `overlong`. */
  bytes: Buffer;
  /** True when the line was longer than the bound: its bytes were dropped, not kept. */
  overlong: boolean;
  /** False only for a last line that has no newline at the end. */
  terminated: boolean;
}

/**
 * Yields the lines of `source` ("\n"-separated; a "\r" before it is left in the bytes).
 *
 * @example
 * for await (const line of boundedLines(createReadStream(file), 65536)) console.log(line.number, line.bytes.length);
 */
export async function* boundedLines(source: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>, maxLength: number): AsyncGenerator<Line> {
  let parts: Buffer[] = [];
  let length = 0;
  let overlong = false;
  let number = 0;
  for await (const raw of source) {
    const chunk = typeof raw === "string" ? Buffer.from(raw, "utf8") : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!overlong) {
        if (length + (end - start) > maxLength) {
          // Drop what we hold: the line is refused anyway, keeping it would defeat the bound.
          overlong = true;
          parts = [];
          length = 0;
        } else if (end > start) {
          parts.push(chunk.subarray(start, end));
          length += end - start;
        }
      }
      if (nl === -1) break;
      number++;
      yield { number, bytes: overlong ? Buffer.alloc(0) : Buffer.concat(parts, length), overlong, terminated: true };
      parts = [];
      length = 0;
      overlong = false;
      start = nl + 1;
    }
  }
  if (length > 0 || overlong) {
    number++;
    yield { number, bytes: overlong ? Buffer.alloc(0) : Buffer.concat(parts, length), overlong, terminated: false };
  }
}
