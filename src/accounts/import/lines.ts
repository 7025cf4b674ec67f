// Splits streamed text into numbered lines for JSONL, bounding line length: an over-long line is
// reported (and skipped to its end) instead of being buffered whole.
import { decodeUTF8 } from "./utf8.ts";

export type NumberedLine = { line: number; text: string; tooLong: false } | { line: number; tooLong: true };

// One account as JSON is well under a kilobyte; 1 MiB leaves room and bounds memory.
export const DEFAULT_MAX_LINE_CHARS = 1024 * 1024;

/**
 * Yields each line (LF or CRLF terminated; the last may lack a terminator) with its 1-based number.
 * Bytes are decoded as UTF-8 (utf8.ts): a line holding bytes that are not UTF-8 is not well-formed text.
 *
 * @example
 * for await (const l of readLines(createReadStream(file))) if (!l.tooLong) JSON.parse(l.text);
 */
export async function* readLines(chunks: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>, maxLineChars: number = DEFAULT_MAX_LINE_CHARS): AsyncGenerator<NumberedLine> {
  let line = 1;
  let buffer = "";
  let overflow = false;
  let first = true;
  const finish = (text: string): NumberedLine => {
    const out: NumberedLine = overflow ? { line, tooLong: true } : { line, text: text.endsWith("\r") ? text.slice(0, -1) : text, tooLong: false };
    overflow = false;
    line++;
    return out;
  };
  for await (let chunk of decodeUTF8(chunks)) {
    if (first) {
      first = false;
      if (chunk.charCodeAt(0) === 0xfeff) chunk = chunk.slice(1);
    }
    let start = 0;
    for (let nl = chunk.indexOf("\n"); nl !== -1; nl = chunk.indexOf("\n", start)) {
      const piece = buffer + chunk.slice(start, nl);
      buffer = "";
      // The +1 allows the CR of a CRLF ending.
      if (piece.length > maxLineChars + 1) overflow = true;
      yield finish(piece);
      start = nl + 1;
    }
    if (!overflow) buffer += chunk.slice(start);
    if (buffer.length > maxLineChars + 1) {
      overflow = true;
      buffer = "";
    }
  }
  if (buffer !== "" || overflow) yield finish(buffer);
}
