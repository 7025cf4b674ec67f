// Decodes an import file's bytes as UTF-8 without guessing. A byte that is not valid UTF-8 is never
// turned into U+FFFD (that merges "jos\xe9@" and "jos\xe8@" into one address, and an update then
// lands on the wrong account): it is carried as a lone surrogate U+DC80–U+DCFF (Python's
// "surrogateescape"), which decoding valid UTF-8 can never produce, and the row holding it is refused.

/** Where a byte that is not UTF-8 goes: U+DC00 + the byte (always U+DC80–U+DCFF, as such bytes are >= 0x80). */
const ESCAPE_BASE = 0xdc00;

/**
 * Length of the well-formed UTF-8 sequence starting at `i` (Unicode 15, table 3-7: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0 when the bytes there are not one.
 */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const b0 = bytes[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf): boolean => i + k < bytes.length && bytes[i + k]! >= lo && bytes[i + k]! <= hi;
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // U+D800–U+DFFF are not characters
  if (b0 >= 0xe1 && b0 <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

/** Where a possibly incomplete sequence at the end of `bytes` starts (bytes.length when there is none). */
function completePrefix(bytes: Uint8Array): number {
  for (let back = 1; back <= 3 && back <= bytes.length; back++) {
    const b = bytes[bytes.length - back]!;
    if (b < 0x80) return bytes.length;
    if (b >= 0xc0) {
      const need = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      return need > back ? bytes.length - back : bytes.length;
    }
  }
  return bytes.length;
}

/**
 * Decodes UTF-8 arriving in chunks; a sequence cut by a chunk boundary is completed by the next chunk.
 * Strings pass through unchanged. Empty results are not yielded, so the first string yielded starts
 * with the byte-order mark if the file has one (the readers drop it).
 *
 * @example
 * for await (const text of decodeUTF8(createReadStream(file))) if (!text.isWellFormed()) console.log(encodingProblem(text));
 */
export async function* decodeUTF8(chunks: AsyncIterable<string | Uint8Array> | Iterable<string | Uint8Array>): AsyncGenerator<string> {
  // fatal: a decoder that throws instead of inserting U+FFFD; the slow path below then says where.
  const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
  const decode = (bytes: Uint8Array): string => {
    try {
      return strict.decode(bytes);
    } catch {
      let out = "";
      let run = 0;
      for (let i = 0; i < bytes.length; ) {
        const n = sequenceLength(bytes, i);
        if (n > 0) {
          i += n;
          continue;
        }
        out += strict.decode(bytes.subarray(run, i)) + String.fromCharCode(ESCAPE_BASE + bytes[i]!);
        run = ++i;
      }
      return out + strict.decode(bytes.subarray(run));
    }
  };
  let carry: Uint8Array = new Uint8Array(0);
  for await (const raw of chunks) {
    if (typeof raw === "string") {
      if (carry.length > 0) yield decode(carry);
      carry = new Uint8Array(0);
      if (raw !== "") yield raw;
      continue;
    }
    const bytes = carry.length > 0 ? Buffer.concat([carry, raw]) : raw;
    const end = completePrefix(bytes);
    carry = Uint8Array.from(bytes.subarray(end)); // at most 3 bytes, copied: the stream may reuse its buffer
    const text = decode(bytes.subarray(0, end));
    if (text !== "") yield text;
  }
  // A sequence cut by the end of the file is not a character.
  if (carry.length > 0) yield decode(carry);
}

/**
 * Why `text` is not what valid UTF-8 decodes to (null when it is): names the first byte that is not
 * UTF-8, or an unpaired surrogate handed in as a string.
 *
 * @example
 * encodingProblem("jos\udce9@example.org") // "is not valid UTF-8 (byte 0xE9; …)"
 */
export function encodingProblem(...texts: string[]): string | null {
  for (const text of texts) {
    if (text.isWellFormed()) continue;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
        i++; // a surrogate pair: one character outside the BMP
        continue;
      }
      if (c >= ESCAPE_BASE + 0x80 && c <= ESCAPE_BASE + 0xff) {
        const byte = (c - ESCAPE_BASE).toString(16).toUpperCase();
        return `is not valid UTF-8 (byte 0x${byte}); save the file as UTF-8, e.g. iconv -f latin1 -t utf-8`;
      }
      if (c >= 0xd800 && c <= 0xdfff) return "holds an unpaired UTF-16 surrogate, which is not text";
    }
  }
  return null;
}
