// Splits the bytes of a log into lines as they come, chunk by chunk: decoded as latin1 (one char per byte: any binary
// junk decodes, nothing throws), split on LF with a CR before it dropped; a line that outgrows the limit across chunks
// is skipped, never buffered whole. The same in the main thread (reader.ts) and in a worker (line-worker.ts).

/** Where the lines go: the analyzer, or its line stage in a worker. */
export interface LineTarget {
  readonly maxLineLength: number;
  /** One line without its newline; `lineNo` is 1-based within the input. */
  line(text: string, lineNo: number): void;
  /** A line longer than `maxLineLength`: counted, never parsed. */
  overlong(): void;
}

/**
 * @example
 * const split = new LineSplitter(analyzer);
 * for await (const chunk of chunks) split.push(chunk);
 * split.end();
 * split.lines; // lines fed
 */
export class LineSplitter {
  readonly #target: LineTarget;
  readonly #max: number;
  /** Lines fed so far (the last line number). */
  lines = 0;
  #carry: Buffer | null = null;
  // The current line already passed `max` bytes: skip to its end, then count it once.
  #skipping = false;

  constructor(target: LineTarget) {
    this.#target = target;
    this.#max = target.maxLineLength;
  }

  #emitText(text: string): void {
    const target = this.#target;
    const max = this.#max;
    let pos = 0;
    for (;;) {
      const nl = text.indexOf("\n", pos);
      if (nl < 0) break;
      let end = nl;
      if (end > pos && text.charCodeAt(end - 1) === 13) end--;
      this.lines++;
      if (end - pos > max) target.overlong();
      else target.line(text.slice(pos, end), this.lines);
      pos = nl + 1;
    }
  }

  /** The next bytes of the input. */
  push(chunk: Buffer): void {
    let start = 0;
    if (this.#skipping) {
      const nl = chunk.indexOf(10);
      if (nl < 0) return;
      this.lines++;
      this.#target.overlong();
      this.#skipping = false;
      start = nl + 1;
    }
    const lastNl = chunk.lastIndexOf(10);
    if (lastNl < start) {
      const rest = chunk.subarray(start);
      this.#keep(this.#carry ? Buffer.concat([this.#carry, rest]) : Buffer.from(rest));
      return;
    }
    const body = chunk.toString("latin1", start, lastNl + 1);
    if (this.#carry) {
      this.#emitText(this.#carry.toString("latin1") + body);
      this.#carry = null;
    } else this.#emitText(body);
    if (lastNl + 1 < chunk.length) this.#keep(Buffer.from(chunk.subarray(lastNl + 1)));
  }

  /**
   * The bytes after the last LF, copied: kept for the next chunk unless they are already too long for a line. A CR at
   * their end may be the one before the next chunk's LF, which is no part of the line (was: counted, so a line of
   * exactly the limit was overlong when a chunk ended between its CR and LF, and read when both came in one chunk).
   */
  #keep(carry: Buffer): void {
    if (carry.length > this.#max + (carry[carry.length - 1] === 13 ? 1 : 0)) {
      this.#skipping = true;
      this.#carry = null;
    } else this.#carry = carry;
  }

  /** The input ended: a last line without its LF is a line too. */
  end(): void {
    if (this.#skipping) {
      this.lines++;
      this.#target.overlong();
      this.#skipping = false;
    } else if (this.#carry && this.#carry.length > 0) {
      this.#emitText(`${this.#carry.toString("latin1")}\n`);
    }
    this.#carry = null;
  }
}
