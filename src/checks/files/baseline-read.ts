// Reads a baseline as a stream and judges its integrity on the way: every byte before the trailer
// is hashed, the trailer's signature checked, and any malformed, reordered or extra line noted.
// The entries are still yielded (the compare runs), but the verdict says they cannot be trusted.
import { createHash } from "node:crypto";
import type { Signer } from "../../crypto/signer.ts";
import { fromBase64URL, toBase64URL } from "../../lib/encoding.ts";
import { isoOrNull } from "../../lib/calendar.ts";
import { inertJSON } from "../../lib/terminal.ts";
import {
  decodeEntry,
  decodeHeader,
  decodeTrailer,
  isTrailerLine,
  MAX_LINE,
  parseJSONLine,
  signedMessage,
  type BaselineHeader,
} from "./baseline-format.ts";
import { comparePaths, type FileEntry } from "./entry.ts";
import { filesErrors } from "./errors.ts";
import { boundedLines, type Line } from "./line-reader.ts";

export interface BaselineIntegrity {
  /** True only when the signature verifies over exactly the content read, and nothing was off. */
  trusted: boolean;
  /** Why it is not trusted (first few reasons; `problemCount` has the total). */
  problems: string[];
  problemCount: number;
  keyId: string | null;
  /** Entry lines skipped (malformed, out of order, duplicate). */
  skippedLines: number;
  /** When the key that signed it was retired (a rotation), or null: then the signature verifies but is not trusted. */
  retiredKeyAt: number | null;
  /** Hex SHA-256 of the content before the trailer, as read (the signed digest when it verifies); null before the trailer. */
  digest: string | null;
}

/** Most reasons kept for the finding; the rest are counted. */
const MAX_PROBLEMS = 20;
const decoder = new TextDecoder("utf-8", { fatal: true });

function lineText(line: Line): string | null {
  if (line.overlong) return null;
  try {
    return decoder.decode(line.bytes);
  } catch {
    return null;
  }
}

/**
 * A baseline being read. Call `readHeader()` first, then iterate `entries()`; `integrity` is final
 * once the entries are exhausted.
 *
 * @example
 * const reader = new BaselineReader(createReadStream(file), signer);
 * const header = await reader.readHeader();
 * for await (const e of reader.entries()) use(e);
 * if (!reader.integrity.trusted) warn(reader.integrity.problems);
 */
export class BaselineReader {
  readonly #lines: AsyncGenerator<Line>;
  readonly #signer: Signer;
  readonly #digest = createHash("sha256");
  #header: BaselineHeader | null = null;
  #done = false;
  readonly integrity: BaselineIntegrity = { trusted: false, problems: [], problemCount: 0, keyId: null, skippedLines: 0, retiredKeyAt: null, digest: null };

  constructor(source: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>, signer: Signer) {
    this.#lines = boundedLines(source, MAX_LINE);
    this.#signer = signer;
  }

  #problem(reason: string): void {
    this.integrity.problemCount++;
    if (this.integrity.problems.length < MAX_PROBLEMS) this.integrity.problems.push(reason);
  }

  #hashLine(line: Line): void {
    this.#digest.update(line.bytes);
    if (line.terminated) this.#digest.update("\n");
  }

  /** Reads and checks the first line. Throws when the file is not a baseline at all (exit 2). */
  async readHeader(): Promise<BaselineHeader> {
    if (this.#header) return this.#header;
    const first = await this.#lines.next();
    if (first.done) throw filesErrors.notABaseline("the baseline file is empty");
    const text = lineText(first.value);
    const decoded = text === null ? "the first line is not UTF-8 text of a sane length" : parseJSONLine(text);
    const header = typeof decoded === "string" || decoded instanceof Error ? decoded : decodeHeader(decoded);
    if (typeof header === "string" || header instanceof Error) {
      const why = typeof header === "string" ? header : `the first line is not JSON (${header.message})`;
      throw filesErrors.notABaseline(`not a Bulwark files baseline: ${why}`);
    }
    this.#hashLine(first.value);
    this.#header = header;
    return header;
  }

  /** Yields valid entries in order; lines that cannot be used are counted and make the baseline untrusted. */
  async *entries(): AsyncGenerator<FileEntry> {
    if (this.#done) return;
    await this.readHeader();
    let previous: string | null = null;
    let count = 0;
    let trailerSeen = false;
    for await (const line of this.#lines) {
      if (trailerSeen) {
        // Anything after the trailer was appended after signing.
        if (line.bytes.length > 0 || line.overlong) this.#problem(`line ${line.number}: content after the signed trailer`);
        continue;
      }
      const text = lineText(line);
      if (text === null) {
        this.#hashLine(line);
        this.integrity.skippedLines++;
        this.#problem(`line ${line.number}: ${line.overlong ? `longer than ${MAX_LINE} bytes` : "not valid UTF-8"}`);
        continue;
      }
      const value = parseJSONLine(text);
      if (!(value instanceof Error) && isTrailerLine(value)) {
        trailerSeen = true;
        this.#checkTrailer(value, count, line.number);
        continue;
      }
      this.#hashLine(line);
      const entry = value instanceof Error ? `not JSON (${value.message.slice(0, 80)})` : decodeEntry(value);
      if (typeof entry === "string") {
        this.integrity.skippedLines++;
        this.#problem(`line ${line.number}: ${entry}`);
        continue;
      }
      if (previous !== null && comparePaths(previous, entry.path) >= 0) {
        // The merge needs strict order; a reordered or repeated line was not written by us.
        this.integrity.skippedLines++;
        this.#problem(`line ${line.number}: ${inertJSON(entry.path)} is out of order or repeated`);
        continue;
      }
      previous = entry.path;
      count++;
      yield entry;
    }
    if (!trailerSeen) this.#problem("no signed trailer: the baseline is truncated or was not written by Bulwark");
    this.#done = true;
    this.integrity.trusted = this.integrity.problemCount === 0;
  }

  #checkTrailer(value: unknown, count: number, lineNumber: number): void {
    const trailer = decodeTrailer(value);
    if (typeof trailer === "string") {
      this.#problem(`line ${lineNumber}: ${trailer}`);
      return;
    }
    this.integrity.keyId = trailer.keyId;
    const digest = this.#digest.digest();
    this.integrity.digest = digest.toString("hex");
    if (this.integrity.digest !== trailer.sha256) this.#problem("the content does not match the digest in the trailer (lines edited, added or removed)");
    if (trailer.entries !== count + this.integrity.skippedLines) {
      this.#problem(`the trailer counts ${trailer.entries} entries, the file holds ${count + this.integrity.skippedLines}`);
    }
    // The signature is checked over the digest we computed, never over the one the file claims.
    let signature: Uint8Array;
    try {
      signature = fromBase64URL(trailer.signature);
    } catch {
      this.#problem("the trailer signature is not base64url");
      return;
    }
    // Only the canonical encoding is accepted, so no byte of the file can change unnoticed.
    if (toBase64URL(signature) !== trailer.signature) this.#problem("the trailer signature is not in canonical base64url");
    if (!this.#signer.verify(trailer.keyId, signedMessage(digest), signature)) {
      this.#problem(`the signature does not verify with key ${trailer.keyId} (edited content, a forged signature, or a key this keyring never held)`);
      return;
    }
    // A key is rotated after it may have leaked (`audit rotate-signing-key`): whoever holds it can sign a baseline of a
    // tampered tree, dated whenever they like. A baseline has no place in a log to hold it to, so none signed by a retired
    // key is trusted: after a rotation, baselines are created again.
    const retiredAt = this.#signer.keyTimes(trailer.keyId)?.retiredAt ?? null;
    if (retiredAt !== null) {
      this.integrity.retiredKeyAt = retiredAt;
      this.#problem(`signed with key ${trailer.keyId}, retired at ${isoOrNull(retiredAt) ?? String(retiredAt)} (the signing key was rotated): create the baseline again with the current key`);
    }
  }
}
