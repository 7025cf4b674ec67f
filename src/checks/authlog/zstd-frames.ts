// Splits a zstd stream into its frames (RFC 8878 §3.1). Node's zstd decoder stops at the end of the first frame and
// drops the rest without a word, so rotated logs joined with cat, or pzstd's output (a skippable frame, then one
// frame per block of input), were read up to the first frame only: a brute force after it reported clean. Each
// frame goes through a decoder of its own instead; skippable frames are skipped, as zstd does.

/** A run of bytes of one ordinary frame; `frameEnd` when that frame ends with it. */
export interface FramePiece {
  bytes: Buffer;
  frameEnd: boolean;
}

const ZSTD_MAGIC = 0xfd2fb528;
/** Skippable frames have magics 0x184D2A50 to 0x184D2A5F. */
const SKIPPABLE_MAGIC = 0x184d2a50;
/** Dictionary_ID field size by Dictionary_ID_Flag; Frame_Content_Size field size by its flag (0: 1 byte when single-segment). */
const DICTIONARY_ID_BYTES = [0, 1, 2, 4];
const CONTENT_SIZE_BYTES = [0, 2, 4, 8];

type State = "magic" | "skippableSize" | "skippable" | "descriptor" | "headerRest" | "blockHeader" | "blockBody" | "checksum";

function corrupt(what: string): Error {
  return new Error(`corrupt zstd data (${what})`);
}

/**
 * Follows the frame structure byte by byte: header sizes from the Frame_Header_Descriptor, block sizes from each
 * Block_Header; no content is decoded. Memory is a few bytes whatever the input.
 *
 * @example
 * const splitter = new ZstdFrameSplitter();
 * for (const piece of splitter.split(chunk)) decoder.write(piece.bytes);
 * splitter.finish(); // throws when the stream ends inside a frame
 */
export class ZstdFrameSplitter {
  #state: State = "magic";
  /** Bytes still to come of the current field, header or body. */
  #need = 4;
  /** The bytes of a field that is read (magic, sizes, descriptor, block header); at most 4. */
  #field: number[] = [];
  #checksum = false;
  #lastBlock = false;

  /** The pieces of ordinary frames in `chunk`, in order. Throws on bytes that are no zstd frame. */
  split(chunk: Buffer): FramePiece[] {
    const pieces: FramePiece[] = [];
    // Start of the run of frame bytes being collected from this chunk; -1 outside an ordinary frame.
    let run = this.#inFrame() ? 0 : -1;
    let i = 0;
    while (i < chunk.length) {
      const take = Math.min(this.#need, chunk.length - i);
      if (this.#reads()) for (let k = 0; k < take; k++) this.#field.push(chunk[i + k] as number);
      i += take;
      this.#need -= take;
      if (this.#need > 0) break;
      const field = this.#field;
      this.#field = [];
      switch (this.#state) {
        case "magic": {
          const magic = le(field);
          if (magic === ZSTD_MAGIC) {
            // The magic may have begun in an earlier chunk: it is given as a piece of its own.
            pieces.push({ bytes: Buffer.from(field), frameEnd: false });
            run = i;
            this.#next("descriptor", 1);
          } else if ((magic & 0xfffffff0) === SKIPPABLE_MAGIC) this.#next("skippableSize", 4);
          else throw corrupt("no frame magic where a frame should start");
          break;
        }
        case "skippableSize": {
          const size = le(field);
          if (size === 0) this.#next("magic", 4);
          else this.#next("skippable", size);
          break;
        }
        case "skippable":
          this.#next("magic", 4);
          break;
        case "descriptor": {
          const d = field[0] as number;
          const singleSegment = (d & 0x20) !== 0;
          this.#checksum = (d & 0x04) !== 0;
          const fcsFlag = d >> 6;
          const rest = (singleSegment ? 0 : 1) + (DICTIONARY_ID_BYTES[d & 3] as number) + (fcsFlag === 0 ? (singleSegment ? 1 : 0) : (CONTENT_SIZE_BYTES[fcsFlag] as number));
          if (rest > 0) this.#next("headerRest", rest);
          else this.#next("blockHeader", 3);
          break;
        }
        case "headerRest":
          this.#next("blockHeader", 3);
          break;
        case "blockHeader": {
          const h = le(field);
          this.#lastBlock = (h & 1) === 1;
          const type = (h >> 1) & 3;
          if (type === 3) throw corrupt("reserved block type");
          // An RLE block holds one byte, repeated Block_Size times when decoded.
          const body = type === 1 ? 1 : h >>> 3;
          if (body > 0) this.#next("blockBody", body);
          else this.#afterBlock();
          break;
        }
        case "blockBody":
          this.#afterBlock();
          break;
        case "checksum":
          this.#next("magic", 4);
          break;
      }
      if (this.#state === "magic" && run >= 0) {
        // The frame ended at i.
        pieces.push({ bytes: chunk.subarray(run, i), frameEnd: true });
        run = -1;
      }
    }
    if (run >= 0 && run < chunk.length) pieces.push({ bytes: chunk.subarray(run), frameEnd: false });
    return pieces;
  }

  /** The stream ended: throws unless that was between frames. */
  finish(): void {
    if (this.#state !== "magic" || this.#field.length > 0) throw corrupt("the stream ends inside a frame");
  }

  #afterBlock(): void {
    if (!this.#lastBlock) this.#next("blockHeader", 3);
    else if (this.#checksum) this.#next("checksum", 4);
    else this.#next("magic", 4);
  }

  #next(state: State, need: number): void {
    this.#state = state;
    this.#need = need;
  }

  /** Inside an ordinary frame, past its magic. */
  #inFrame(): boolean {
    return this.#state !== "magic" && this.#state !== "skippableSize" && this.#state !== "skippable";
  }

  /** The current field's bytes are kept to be parsed (the rest is only counted). */
  #reads(): boolean {
    return this.#state === "magic" || this.#state === "skippableSize" || this.#state === "descriptor" || this.#state === "blockHeader";
  }
}

/** A little-endian number of up to 4 bytes, unsigned. */
function le(bytes: readonly number[]): number {
  let n = 0;
  for (let i = bytes.length - 1; i >= 0; i--) n = n * 256 + (bytes[i] as number);
  return n;
}
