// Parses published checksum files: GNU coreutils `sha256sum` lines ("HASH  name", binary-mode
// "HASH *name", the single-space `-r` form, and the "\"-escaped form for names with \\ or newlines)
// and BSD lines ("SHA256 (name) = HASH"). Hostile lines are refused with a reason, never thrown.
import { boundedLines } from "../files/line-reader.ts";

/** Longest line accepted: a 4096-byte name escaped, the digest and the punctuation. */
export const MAX_SUMS_LINE = 16 * 1024;

export type SumsLine =
  | { kind: "entry"; line: number; name: string; sha256: string; binary: boolean; format: "gnu" | "bsd" }
  | { kind: "skip"; line: number }
  | { kind: "malformed"; line: number; reason: string }
  /** A checksum line whose file name is not UTF-8 (a byte such as 0xff, legal in a Linux name): its file is not verified. */
  | { kind: "unverifiable"; line: number; reason: string };

const HEX64 = /^[0-9a-fA-F]{64}$/;
const BSD = /^SHA256 ?\((.*)\) ?= ?([0-9a-fA-F]+)$/s;
const OTHER_BSD = /^(MD5|SHA1|SHA224|SHA384|SHA512|SHA512\/256|BLAKE2b(?:-\d+)?|SM3|CRC) ?\(/;

/** Undoes sha256sum's escaping of "\\", "\n" and "\r" in names; null on an unknown escape. */
function unescapeName(name: string): string | null {
  let out = "";
  for (let i = 0; i < name.length; i++) {
    const ch = name[i];
    if (ch !== "\\") {
      out += ch;
      continue;
    }
    const next = name[++i];
    if (next === "\\") out += "\\";
    else if (next === "n") out += "\n";
    else if (next === "r") out += "\r";
    else return null;
  }
  return out;
}

/**
 * Parses one line (without its newline). Blank lines and "#" comments are skipped, as sha256sum does.
 *
 * @example
 * parseSumsLine("e3b0c442…b855 *empty.bin", 1); // { kind: "entry", name: "empty.bin", binary: true, … }
 */
export function parseSumsLine(raw: string, line: number): SumsLine {
  // Sums files published from Windows end lines in CRLF.
  let text = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
  text = text.replace(/^[ \t]+/, "");
  if (text === "" || text.startsWith("#")) return { kind: "skip", line };
  const escaped = text.startsWith("\\");
  if (escaped) text = text.slice(1);

  if (text.startsWith("SHA256")) {
    const m = BSD.exec(text);
    if (!m) return { kind: "malformed", line, reason: 'not in the BSD form "SHA256 (name) = <64 hex digits>"' };
    const digest = m[2] as string;
    if (!HEX64.test(digest)) return { kind: "malformed", line, reason: `the digest has ${digest.length} hex digits, SHA-256 has 64` };
    const name = escaped ? unescapeName(m[1] as string) : (m[1] as string);
    if (name === null) return { kind: "malformed", line, reason: "the file name has an unknown \\ escape" };
    if (name === "") return { kind: "malformed", line, reason: "the file name is empty" };
    return { kind: "entry", line, name, sha256: digest.toLowerCase(), binary: false, format: "bsd" };
  }
  if (OTHER_BSD.test(text)) return { kind: "malformed", line, reason: "not a SHA-256 line (another algorithm)" };

  const hexEnd = /^[0-9a-fA-F]*/.exec(text)?.[0].length ?? 0;
  const digest = text.slice(0, hexEnd);
  if (hexEnd === 0) return { kind: "malformed", line, reason: "does not start with a hex digest or SHA256 (" };
  if (hexEnd !== 64) return { kind: "malformed", line, reason: `the digest has ${hexEnd} hex digits, SHA-256 has 64` };
  if (text[64] !== " ") return { kind: "malformed", line, reason: "the digest is not followed by a space" };
  // After the space: " " (text mode) or "*" (binary mode) then the name; otherwise the `-r` form.
  const marker = text[65];
  const binary = marker === "*";
  const rest = marker === " " || marker === "*" ? text.slice(66) : text.slice(65);
  const name = escaped ? unescapeName(rest) : rest;
  if (name === null) return { kind: "malformed", line, reason: "the file name has an unknown \\ escape" };
  if (name === "") return { kind: "malformed", line, reason: "the file name is empty" };
  return { kind: "entry", line, name, sha256: digest.toLowerCase(), binary, format: "gnu" };
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses a whole checksum file as a stream; overlong and non-UTF-8 lines come out as malformed.
 *
 * @example
 * for await (const l of parseSums(createReadStream("SHA256SUMS"))) if (l.kind === "entry") console.log(l.name);
 */
export async function* parseSums(source: AsyncIterable<Uint8Array | string> | Iterable<Uint8Array | string>): AsyncGenerator<SumsLine> {
  for await (const line of boundedLines(source, MAX_SUMS_LINE)) {
    if (line.overlong) {
      yield { kind: "malformed", line: line.number, reason: `longer than ${MAX_SUMS_LINE} bytes` };
      continue;
    }
    let text: string;
    try {
      text = decoder.decode(line.bytes);
    } catch {
      // Read byte for byte (latin1): a line of the checksum form whose name holds a byte that is not UTF-8 names a file
      // sha256sum does check. It is not a damaged line but a file this check cannot open by name, so it is said apart.
      const shaped = parseSumsLine(Buffer.from(line.bytes).toString("latin1"), line.number);
      yield shaped.kind === "entry"
        ? { kind: "unverifiable", line: line.number, reason: "the file name is not valid UTF-8, so the file it names was not verified" }
        : { kind: "malformed", line: line.number, reason: "not valid UTF-8" };
      continue;
    }
    yield parseSumsLine(text, line.number);
  }
}

/**
 * Why a name from a sums file must not be opened, or null when it is a plain relative path.
 * Refused: absolute paths, drive letters, any ".." component (with / or \ as separator), NUL.
 */
export function unsafeNameReason(name: string): string | null {
  if (name.includes("\0")) return "contains a NUL byte";
  if (name.startsWith("/") || name.startsWith("\\")) return "is an absolute path";
  if (/^[A-Za-z]:/.test(name)) return "names a drive";
  if (name.split(/[/\\]/).some((part) => part === "..")) return 'contains a ".." component';
  return null;
}
