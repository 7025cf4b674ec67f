// Verifies release artifacts against a published checksum file (Drupal.org had to prove its
// project downloads were untouched, seed 000). A name that points outside the directory is refused
// as a finding and never opened: a hostile sums file must not make us read /etc/shadow.
import type { ReadStream, Stats } from "node:fs";
import { stat, type FileHandle } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { InputError } from "../../lib/errors.ts";
import { inertJSON } from "../../lib/terminal.ts";
import type { Finding, Severity } from "../finding.ts";
import { openInputHandle } from "../input-file.ts";
import { isWithin } from "../files/entry.ts";
import { hashFile } from "../files/hash-file.ts";
import { nodeScanFS } from "../files/scan.ts";
import { lookalikeFinder } from "./lookalike.ts";
import { bytesUnder, danglingLink, realDirOf, realpathExact, stillInside, type RealDir } from "./real-path.ts";
import { parseSums, unsafeNameReason } from "./sums-parse.ts";

/** Items listed per finding; the rest are counted. */
const EVIDENCE_LIMIT = 100;

/**
 * Largest checksum file read, in bytes (64 MiB). A release's SHA256SUMS is a few KiB, a whole distribution's a few
 * MiB; a list swapped for a `truncate -s 15T` sparse file (no disk used) would otherwise be read for hours, in
 * bounded memory but without end. Refused before reading when the open file says it is larger; a pipe, or a file
 * growing while read, is cut off at the same count.
 */
export const MAX_SUMS_BYTES = 64 * 1024 ** 2;

/**
 * Largest listed file hashed by default, in bytes (64 GiB): a DVD or Blu-ray image or a virtual machine disk fits,
 * a planted `truncate -s 15T` sparse artifact (about two hours of reading at 2 GB/s, no disk used) does not. A larger
 * file is not read at all, and reported (high) as not verified.
 */
export const DEFAULT_MAX_ARTIFACT_BYTES = 64 * 1024 ** 3;

export interface VerifyDownloadsOptions {
  /** Path of the checksum file (SHA256SUMS). */
  sums: string;
  /** Directory the names are relative to; default: the checksum file's own directory. */
  dir?: string;
  /**
   * Listed files that do not exist are counted, not reported (sha256sum -c --ignore-missing): for
   * a SHA256SUMS that covers every image of a release when only one was downloaded. When none of
   * the listed files exists, they are reported anyway, as sha256sum fails with "no file was verified".
   */
  ignoreMissing?: boolean;
  /** Largest listed file hashed, in bytes (default DEFAULT_MAX_ARTIFACT_BYTES); a larger one is downloads.too-large-to-hash. */
  maxFileBytes?: number;
}

export interface VerifyDownloadsResult {
  dir: string;
  /** Well-formed checksum lines. */
  entries: number;
  /** Files whose SHA-256 matched. */
  ok: number;
  okNames: string[];
  /** Listed files absent and not reported because of ignoreMissing. */
  missingIgnored: number;
  findings: Finding[];
}

interface Group {
  count: number;
  items: Array<Record<string, unknown>>;
}

const TEXT: Record<string, { severity: Severity; title: (n: number) => string; detail: string; remediation: string }> = {
  "downloads.mismatch": {
    severity: "critical",
    title: (n) => `${n} file(s) do not match their published SHA-256`,
    detail: "The content differs from what the publisher listed: a corrupted download, or a tampered artifact.",
    remediation: "Do not install or publish these files; download them again from the origin and compare; if they still differ, treat the mirror or the build as compromised.",
  },
  "downloads.lookalike-name": {
    severity: "high",
    title: (n) => `${n} listed file(s) are absent, but a file whose name looks the same is present (not verified)`,
    detail: "The directory holds a name that differs from the listed one only in Unicode normalisation (NFC \"caf\\u00e9\" against NFD \"cafe\\u0301\", the same on screen) or letter case. That is the file a user downloaded and will install, and it was not verified (sha256sum --ignore-missing skips it as absent too).",
    remediation: "Do not install the look-alike: download the artifact again under its listed name and verify it, or hash the present file and compare it with the listed digest. A mirror that renamed it may have tampered with it.",
  },
  "downloads.missing": {
    severity: "high",
    title: (n) => `${n} listed file(s) are missing or not regular files`,
    detail: "The checksum file lists them, but they are not in the directory, so they were not verified.",
    remediation: "Download the missing artifacts, or check that --dir points at the right directory.",
  },
  "downloads.unreadable": {
    severity: "high",
    title: (n) => `${n} listed file(s) could not be read`,
    detail: "They exist but could not be hashed, so they were not verified.",
    remediation: "Fix the permissions or the I/O error listed, then verify again. A file that changed while being read, or whose path changed, is being written to: find out by what before trusting it.",
  },
  "downloads.too-large-to-hash": {
    severity: "high",
    title: (n) => `${n} listed file(s) are larger than the per-file limit (not verified)`,
    detail: "A file's size costs its writer nothing (truncate -s 15T makes a sparse file that takes no disk and hours to read), so a listed file past --max-file-bytes (default 64 GiB) is not read at all: it was not verified.",
    remediation: "Compare each file's size with its disk use (ls -ls, du): a sparse artifact nobody made on purpose is planted, treat the mirror as compromised. A genuine larger artifact is verified by raising --max-file-bytes.",
  },
  "downloads.path-traversal": {
    severity: "high",
    title: (n) => `${n} checksum line(s) name a path outside the directory (refused, not read)`,
    detail: "Absolute paths, \"..\" components and symlinks leading out of the directory are refused: a checksum file must not steer the verifier to other files.",
    remediation: "Treat the checksum file as hostile; obtain it again from the publisher over a verified channel.",
  },
  "downloads.unverifiable-name": {
    severity: "high",
    title: (n) => `${n} checksum line(s) name a file whose name is not UTF-8 (not verified)`,
    detail: "The names hold bytes that are not UTF-8 (legal in a Linux file name, written as they are by sha256sum); this check reads names as UTF-8 and could not open those files, so a tampered one would go unnoticed.",
    remediation: "Verify those files with sha256sum -c, or rename them to UTF-8 names and publish the checksum file again.",
  },
  "downloads.malformed-line": {
    severity: "medium",
    title: (n) => `${n} line(s) of the checksum file are not SHA-256 checksum lines`,
    detail: "These lines were skipped, so anything they were meant to cover was not verified.",
    remediation: "Check the checksum file's format (sha256sum or BSD \"SHA256 (name) = hash\"); it may be damaged or of another algorithm.",
  },
};

/**
 * Why the checksum file at `sums` has no directory beside it that the listed names could mean, or null when its own
 * directory will do; judged once the directory's real path (`realDir`) and the file's stat() (links followed; null
 * when it failed: the read then says why) are known. `/dev/stdin`, `/dev/fd/N` (a shell's <(…)) and
 * `/proc/self/fd/N` are descriptors: their directory is /dev or /proc, where a hostile list could point the hash at
 * what lives there (other users' shared memory files under /dev/shm, say), never at the download directory. A name
 * directly in /dev (/dev/stdout, /dev/core: links to descriptors or /proc, a regular file when stdout is redirected to
 * one) is refused whatever it is, and so is any path whose directory turns out to be /dev or under /proc once its links
 * are followed (/dev/shm/x/devlink/stdin with devlink -> /dev, …/fdlink/0 with fdlink -> /proc/self/fd). Other paths
 * under /dev are judged by what they are: a regular file (a SHA256SUMS kept in a directory on the /dev/shm tmpfs) has
 * a real directory beside it, while a device, FIFO or socket is a stream with none.
 */
function noDirectoryBeside(sums: string, realDir: string, sumsStats: Stats | null): string | null {
  const path = resolve(sums);
  const descriptor = "is read from a descriptor or device";
  if (/^\/proc(\/|$)/.test(path) || /^\/dev\/(stdin|fd)(\/|$)/.test(path)) return descriptor;
  if (dirname(path) === "/dev") return "is directly in /dev";
  if (realDir === "/dev" || /^\/proc(\/|$)/.test(realDir)) return `is in ${realDir} once its links are followed`;
  if (!/^\/dev\//.test(path) || sumsStats === null) return null;
  return sumsStats.isFile() ? null : descriptor;
}

/**
 * Verifies every file the checksum file lists. Expected outcomes are findings; throws only when
 * the checksum file cannot be read or holds no checksum line at all.
 *
 * @example
 * const r = await verifyDownloads({ sums: "release/SHA256SUMS" });
 * if (r.findings.length === 0) console.log(`${r.ok} files verified`);
 */
export async function verifyDownloads(options: VerifyDownloadsOptions): Promise<VerifyDownloadsResult> {
  const dir = resolve(options.dir ?? dirname(options.sums));
  // Every real path is taken as bytes and kept as text that stands for exactly those bytes (nameFromBytes): realpath()
  // as a string writes U+FFFD for a byte that is not UTF-8, and the verifier then opened another file, a twin named so.
  let base: RealDir;
  try {
    base = await realDirOf(dir);
  } catch (error) {
    throw new InputError("BULWARK_ERR_DOWNLOADS_DIR", `cannot use the directory ${dir}: ${(error as Error).message}`, { cause: error });
  }
  const realDir = base.text;
  const sumsStats = await stat(options.sums).catch(() => null);
  const why = options.dir === undefined ? noDirectoryBeside(options.sums, realDir, sumsStats) : null;
  if (why !== null) {
    throw new InputError("BULWARK_ERR_DOWNLOADS_DIR", `the checksum file ${options.sums} ${why}, so there is no directory beside it to look the listed files up in: name the download directory with --dir`);
  }
  // On Linux a directory opens for reading and fails only at the first read: name it before opening.
  if (sumsStats?.isDirectory()) {
    throw new InputError("BULWARK_ERR_DOWNLOADS_SUMS", `the checksum file ${options.sums} is a directory; give the checksum file itself, e.g. ${join(options.sums, "SHA256SUMS")} (the files it lists are looked up beside it, or in --dir)`);
  }
  // Only a regular file, or a pipe passed on purpose (<(…)): a FIFO or a device swapped in must not hang the check.
  let handle: FileHandle;
  let size: number;
  try {
    handle = await openInputHandle(options.sums);
  } catch (error) {
    throw new InputError("BULWARK_ERR_DOWNLOADS_SUMS", `cannot read the checksum file ${options.sums}: ${(error as Error).message}`, { cause: error });
  }
  try {
    // The size of the file opened (fstat), not of whatever the name leads to by now.
    size = (await handle.stat()).size;
  } catch (error) {
    await handle.close();
    throw new InputError("BULWARK_ERR_DOWNLOADS_SUMS", `cannot read the checksum file ${options.sums}: ${(error as Error).message}`, { cause: error });
  }
  if (size > MAX_SUMS_BYTES) {
    await handle.close();
    throw sumsTooLarge(options.sums, size);
  }
  const stream = handle.createReadStream();
  const maxFileBytes = options.maxFileBytes ?? DEFAULT_MAX_ARTIFACT_BYTES;

  const groups = new Map<string, Group>();
  const add = (id: string, item: Record<string, unknown>): void => {
    const g = groups.get(id) ?? { count: 0, items: [] };
    groups.set(id, g);
    g.count++;
    if (g.items.length < EVIDENCE_LIMIT) g.items.push(item);
  };
  // The same file listed twice is hashed once. Keyed on the real path's text, which stands for its exact bytes.
  const hashes = new Map<string, Hashed>();
  // Every listed path, and the absent names that have a look-alike present (with the path the listed name would have
  // through it), judged once every listed name is known: a look-alike that is listed itself is verified on its own line.
  const listed = new Set<string>();
  const lookalikes: Array<{ item: Record<string, unknown>; path: string; present: string }> = [];
  const finder = lookalikeFinder();
  const buffer = Buffer.allocUnsafe(1 << 20);
  let entries = 0;
  let ok = 0;
  const okNames: string[] = [];
  // Absent files set aside under ignoreMissing, and whether any listed file could be read at all.
  const absent: Array<Record<string, unknown>> = [];
  let absentCount = 0;
  let read = 0;
  const missing = (item: Record<string, unknown>, code: string | undefined): void => {
    // Only a name that does not exist is ignored; a directory or a dangling path component is not.
    if (options.ignoreMissing === true && code === "ENOENT") {
      absentCount++;
      if (absent.length < EVIDENCE_LIMIT) absent.push(item);
    } else add("downloads.missing", code === undefined || code === "ENOENT" ? item : { ...item, reason: code });
  };

  try {
    for await (const parsed of parseSums(bounded(stream, options.sums))) {
      if (parsed.kind === "skip") continue;
      if (parsed.kind === "malformed") {
        add("downloads.malformed-line", { line: parsed.line, reason: parsed.reason });
        continue;
      }
      if (parsed.kind === "unverifiable") {
        add("downloads.unverifiable-name", { line: parsed.line, reason: parsed.reason });
        continue;
      }
      entries++;
      const item = { line: parsed.line, name: parsed.name };
      const unsafe = unsafeNameReason(parsed.name);
      const target = resolve(realDir, parsed.name);
      if (unsafe !== null || !isWithin(target, realDir)) {
        add("downloads.path-traversal", { ...item, reason: unsafe ?? "resolves outside the directory" });
        continue;
      }
      listed.add(target);
      let real: string;
      try {
        real = await realpathExact(base, target);
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        // A name that exists as a link to nothing (yet) is not absent: once its target appears (a copy with cp -a or
        // rsync -l to the host that installs, a writer of the target's directory), it is read from wherever it leads.
        const dangling = code === "ENOENT" ? await danglingLink(target, realDir) : null;
        if (dangling === "outside") add("downloads.path-traversal", { ...item, reason: "a symbolic link leads outside the directory (to a path that does not exist yet)" });
        else if (dangling === "inside") add("downloads.missing", { ...item, reason: "a symbolic link to a file that does not exist" });
        else if (dangling !== null) {
          // Absent: is the same name in another normalisation or case there instead (the user's download)?
          // (For "café/lib.so" with no "café": a directory "cafe\u0301" is the look-alike.)
          const [present] = await finder.find(dangling.dir, bytesUnder(base, dangling.dir), dangling.part);
          if (present === undefined) missing(item, code);
          else {
            const rest = relative(join(dangling.dir, dangling.part), target);
            lookalikes.push({ item, path: join(dangling.dir, present, rest), present: relative(realDir, join(dangling.dir, present)) });
          }
        } else missing(item, code);
        continue;
      }
      // A symlink inside the directory may still lead out of it.
      if (!isWithin(real, realDir)) {
        add("downloads.path-traversal", { ...item, reason: "a symbolic link leads outside the directory" });
        continue;
      }
      let result = hashes.get(real);
      if (!result) {
        result = await hashOne(real, buffer, maxFileBytes);
        // A directory on the way swapped for a link after the check above: O_NOFOLLOW guards the last component
        // only, so the file opened may lie outside. Where the name leads now must be inside, and be the file read.
        if ("sha256" in result && !(await stillInside(base, target, result))) result = { error: "a path component was swapped while being read (it led outside the directory)" };
        hashes.set(real, result);
      }
      if ("error" in result) {
        if (result.error === "ENOENT") missing(item, "ENOENT");
        else if (result.error === "not a regular file") add("downloads.missing", { ...item, reason: result.error });
        else if (result.error === "FILE_SIZE_LIMIT") add("downloads.too-large-to-hash", { ...item, reason: `larger than the limit of ${sizeText(maxFileBytes)} (--max-file-bytes), not read` });
        else add("downloads.unreadable", { ...item, error: result.error });
        continue;
      }
      read++;
      if (result.sha256 !== parsed.sha256) {
        add("downloads.mismatch", { ...item, expected: parsed.sha256, actual: result.sha256 });
      } else {
        ok++;
        if (okNames.length < EVIDENCE_LIMIT) okNames.push(parsed.name);
      }
    }
  } catch (error) {
    // A read error of the checksum file itself (EIO, a file that turned into a directory); the loop's own failures are values.
    if ((error as NodeJS.ErrnoException).syscall === "read") {
      throw new InputError("BULWARK_ERR_DOWNLOADS_SUMS", `cannot read the checksum file ${options.sums}: ${(error as Error).message}`, { cause: error });
    }
    throw error;
  } finally {
    stream.destroy();
  }
  if (entries === 0) {
    throw new InputError("BULWARK_ERR_DOWNLOADS_SUMS", `no SHA-256 checksum lines found in ${options.sums} (expected "HASH  name" or "SHA256 (name) = HASH")`);
  }

  for (const { item, path, present } of lookalikes) {
    if (listed.has(path)) missing(item, "ENOENT");
    else add("downloads.lookalike-name", { ...item, present, reason: "absent; the look-alike present instead is" });
  }

  // sha256sum --ignore-missing: "no file was verified" is still a failure (often the wrong --dir).
  let missingIgnored = absentCount;
  if (absentCount > 0 && read === 0) {
    const g = groups.get("downloads.missing") ?? { count: 0, items: [] };
    groups.set("downloads.missing", g);
    g.count += absentCount;
    for (const item of absent) if (g.items.length < EVIDENCE_LIMIT) g.items.push({ ...item, reason: "no listed file is present, so --ignore-missing verified nothing" });
    missingIgnored = 0;
  }

  const findings: Finding[] = [];
  for (const [id, g] of groups) {
    const text = TEXT[id];
    if (!text) continue;
    findings.push({ id, severity: text.severity, title: text.title(g.count), detail: `${text.detail} ${describe(g)}`, evidence: { count: g.count, items: g.items, omitted: g.count - g.items.length }, remediation: text.remediation });
  }
  return { dir: realDir, entries, ok, okNames, missingIgnored, findings };
}

/**
 * The first few items for the human one-line detail; names are JSON-quoted (C1 and default-ignorable characters
 * included) so control characters stay inert. A look-alike and the listed name it stands for are both written in
 * ASCII, every other character as \uNNNN: on screen the two are otherwise the same.
 */
function describe(g: Group): string {
  const shown = g.items.slice(0, 5).map((i) => {
    const why = i["error"] ?? i["reason"];
    if (typeof i["name"] !== "string") return `line ${String(i["line"])}: ${String(why)}`;
    const present = typeof i["present"] === "string" ? i["present"] : null;
    const name = present === null ? inertJSON(i["name"]) : asciiJSON(i["name"]);
    return `${name} (line ${String(i["line"])})${why === undefined ? "" : `: ${inertJSON(String(why)).slice(1, -1)}`}${present === null ? "" : ` ${asciiJSON(present)}`}`;
  });
  return `${shown.join("; ")}${g.count > shown.length ? `; and ${g.count - shown.length} more` : ""}.`;
}

/** `text` JSON-quoted with every character outside printable ASCII as \uNNNN. */
function asciiJSON(text: string): string {
  return JSON.stringify(text).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A byte count as an operator writes it: "64 GiB", "300 MiB", or bytes when not a whole number of those. */
function sizeText(n: number): string {
  for (const [unit, size] of [["TiB", 1024 ** 4], ["GiB", 1024 ** 3], ["MiB", 1024 ** 2], ["KiB", 1024]] as const) if (n >= size && n % size === 0) return `${n / size} ${unit}`;
  return `${n} bytes`;
}

/** The error for a checksum file past MAX_SUMS_BYTES: `size` from fstat before reading, or null when found while reading. */
function sumsTooLarge(sums: string, size: number | null): InputError {
  const what = size === null ? "holds more than" : `is ${size} bytes, more than`;
  return new InputError("BULWARK_ERR_DOWNLOADS_SUMS", `the checksum file ${sums} ${what} the ${sizeText(MAX_SUMS_BYTES)} a checksum file may be (a release's is a few KiB): refused, ${size === null ? "read no further" : "not read"}`);
}

/** The chunks of the checksum file, ending in an InputError once more than MAX_SUMS_BYTES came (a pipe, a file growing). */
async function* bounded(stream: ReadStream, sums: string): AsyncGenerator<Buffer> {
  let total = 0;
  for await (const chunk of stream) {
    total += (chunk as Buffer).length;
    if (total > MAX_SUMS_BYTES) throw sumsTooLarge(sums, null);
    yield chunk as Buffer;
  }
}

/** A listed file's digest, with the device and inode of the file read; or why it has none. */
type Hashed = { sha256: string; dev: bigint; ino: bigint } | { error: string };

/** The digest of the regular file at `path` (text standing for its bytes), read only if at most `maxBytes` long. */
async function hashOne(path: string, buffer: Buffer, maxBytes: number): Promise<Hashed> {
  let before;
  try {
    before = await nodeScanFS.lstat(path);
  } catch (error) {
    return { error: (error as NodeJS.ErrnoException).code ?? "EUNKNOWN" };
  }
  if (!before.isFile()) return { error: "not a regular file" };
  // hashFile compares the size with the limit before opening, and again on the open descriptor (fstat) before reading.
  const outcome = await hashFile(nodeScanFS, path, before, buffer, { maxBytes });
  if (outcome.status === "ok") return { sha256: outcome.sha256, dev: outcome.stat.dev, ino: outcome.stat.ino };
  if (outcome.status === "too-large-to-hash") return { error: "FILE_SIZE_LIMIT" };
  return { error: outcome.status === "unreadable" ? outcome.error : "changed while being read" };
}
