// The baseline file format: JSON lines — a header, one line per entry in comparePaths order, and a
// signed trailer. Decoding validates every field, so a hand-edited line is caught, never trusted.
import { inertJSON } from "../../lib/terminal.ts";
import { ENTRY_STATUSES, ENTRY_TYPES, type EntryStatus, type EntryType, type FileEntry } from "./entry.ts";

export const BASELINE_FORMAT = "bulwark-files-baseline";
/**
 * Version 2 added `mount` to directory entries. Version 1 baselines are still read: their directories have no
 * `mount`, so a file system mounted over one of them since cannot be told from an ordinary directory.
 * Version 3 added the status "too-large-to-hash" (a file past a byte limit, not hashed): a reader of versions 1 and 2
 * refuses the file by its version, instead of calling every such line malformed and the baseline tampered.
 */
export const BASELINE_VERSION = 3;
const READABLE_VERSIONS: readonly number[] = [1, 2, 3];
/** Domain separation: a signature over a baseline digest can never be replayed as another signed object. */
export const SIGNATURE_CONTEXT = "bulwark files baseline v1\n";
/**
 * Longest path a baseline holds, in characters. The scanner goes below PATH_MAX (it walks by descriptors), so a tree
 * can nest deeper than 4096 characters: the bound is the reader's, against a baseline file built to exhaust it, and
 * the writer refuses a path past it by name rather than write a line its own reader would call tampered (was: 16,384
 * here and 64 KiB a line, while the writer wrote any length — directories nested 68 deep before the baseline made every
 * compare of the unchanged tree files.baseline-tampered, critical).
 */
export const MAX_PATH = 1 << 20;
/** Longest line accepted: a path of MAX_PATH characters escaped at up to 6 bytes each (\u00ff), plus the other fields. */
export const MAX_LINE = 8 * 1024 * 1024;

export interface BaselineHeader {
  format: typeof BASELINE_FORMAT;
  version: number;
  createdAt: string;
  roots: string[];
  /** Paths left out (with everything beneath them). */
  exclude: string[];
  /** True when the scan stayed on each root's file system (mount points recorded, not entered). */
  oneFileSystem: boolean;
  algorithm: "sha256";
}

export interface BaselineTrailer {
  trailer: typeof BASELINE_FORMAT;
  entries: number;
  /** Hex SHA-256 of every byte before the trailer line. */
  sha256: string;
  keyId: string;
  /** base64url signature over SIGNATURE_CONTEXT ‖ digest. */
  signature: string;
}

export function encodeEntry(e: FileEntry): string {
  // Fixed member order, so the same entry always gives the same bytes.
  return JSON.stringify({
    path: e.path,
    type: e.type,
    status: e.status,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    size: e.size,
    mtime: e.mtime,
    ctime: e.ctime,
    ino: e.ino,
    target: e.target,
    sha256: e.sha256,
    error: e.error,
    // Only when recorded (directories), so a line without it reads back as the same entry.
    ...(e.mount === undefined ? {} : { mount: e.mount }),
  });
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const DECIMAL = /^-?\d{1,30}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** "//", "/./" or "/../" anywhere, or a trailing "/": a path the scan never records (it joins names to resolved roots). */
const NOT_CANONICAL = /\/\/|\/\.\.?(?:\/|$)|.\/$/;

/**
 * An absolute path in the form the scan records it: no empty, "." or ".." name and no trailing "/". Anything else is
 * a line the scan did not write; read as given, "<unlistable dir>/../../secret" would be looked up (compare.ts) by
 * its resolved name, outside the tree, and its hash compared.
 */
function isPathText(v: unknown): v is string {
  return typeof v === "string" && v.startsWith("/") && v.length <= MAX_PATH && !v.includes("\0") && !NOT_CANONICAL.test(v);
}

function isCount(v: unknown): v is number {
  return typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
}

/** Parses one line's JSON; returns the reason it is refused as a string. */
export function parseJSONLine(text: string): unknown | Error {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** Validates a decoded entry line; returns the entry or a message naming the first bad field. */
export function decodeEntry(v: unknown): FileEntry | string {
  if (!isRecord(v)) return "not a JSON object";
  if (!isPathText(v["path"])) return "path must be an absolute path with no empty, \".\" or \"..\" name";
  if (typeof v["type"] !== "string" || !ENTRY_TYPES.includes(v["type"] as EntryType)) return "type is not a known entry type";
  if (typeof v["status"] !== "string" || !ENTRY_STATUSES.includes(v["status"] as EntryStatus)) return "status is not a known status";
  if (typeof v["mode"] !== "string" || !/^[0-7]{4}$/.test(v["mode"])) return "mode must be 4 octal digits";
  if (!isCount(v["uid"]) || !isCount(v["gid"])) return "uid and gid must be non-negative integers";
  if (!isCount(v["size"])) return "size must be a non-negative integer";
  for (const k of ["mtime", "ctime", "ino"]) {
    const x = v[k];
    if (typeof x !== "string" || !DECIMAL.test(x)) return `${k} must be a decimal string`;
  }
  const target = v["target"];
  if (target !== null && (typeof target !== "string" || target.length > MAX_PATH)) return "target must be null or a string";
  const sha = v["sha256"];
  if (sha !== null && (typeof sha !== "string" || !HEX64.test(sha))) return "sha256 must be null or 64 lower-case hex digits";
  const error = v["error"];
  if (error !== null && (typeof error !== "string" || !/^[A-Z0-9_]{1,32}$/.test(error))) return "error must be null or an errno code";
  const mount = v["mount"];
  if (mount !== undefined && (typeof mount !== "boolean" || v["type"] !== "dir")) return "mount must be true or false, and only on a directory";
  return {
    path: v["path"],
    type: v["type"] as EntryType,
    status: v["status"] as EntryStatus,
    mode: v["mode"],
    uid: v["uid"],
    gid: v["gid"],
    size: v["size"],
    mtime: v["mtime"] as string,
    ctime: v["ctime"] as string,
    ino: v["ino"] as string,
    target: target as string | null,
    sha256: sha as string | null,
    error: error as string | null,
    ...(mount === undefined ? {} : { mount }),
  };
}

export function decodeHeader(v: unknown): BaselineHeader | string {
  if (!isRecord(v) || v["format"] !== BASELINE_FORMAT) return `the first line does not say "format":"${BASELINE_FORMAT}"`;
  const version = v["version"];
  if (typeof version !== "number" || !READABLE_VERSIONS.includes(version)) {
    return `unsupported baseline version ${inertJSON(version)}; this Bulwark reads versions ${READABLE_VERSIONS.slice(0, -1).join(", ")} and ${READABLE_VERSIONS.at(-1)}`;
  }
  if (typeof v["createdAt"] !== "string" || !/^[0-9T:.Z+-]{1,40}$/.test(v["createdAt"])) return "createdAt must be an ISO timestamp";
  const roots = v["roots"];
  if (!Array.isArray(roots) || roots.length === 0 || roots.length > 4096 || !roots.every(isPathText)) return "roots must be a non-empty list of absolute paths";
  const exclude = v["exclude"] ?? [];
  if (!Array.isArray(exclude) || exclude.length > 4096 || !exclude.every(isPathText)) return "exclude must be a list of absolute paths";
  const oneFileSystem = v["oneFileSystem"] ?? false;
  if (typeof oneFileSystem !== "boolean") return "oneFileSystem must be true or false";
  if (v["algorithm"] !== "sha256") return 'algorithm must be "sha256"';
  return { format: BASELINE_FORMAT, version, createdAt: v["createdAt"], roots: roots as string[], exclude: exclude as string[], oneFileSystem, algorithm: "sha256" };
}

export function isTrailerLine(v: unknown): boolean {
  return isRecord(v) && "trailer" in v;
}

export function decodeTrailer(v: unknown): BaselineTrailer | string {
  if (!isRecord(v) || v["trailer"] !== BASELINE_FORMAT) return "not a baseline trailer";
  if (!isCount(v["entries"])) return "trailer entries must be a count";
  if (typeof v["sha256"] !== "string" || !HEX64.test(v["sha256"])) return "trailer sha256 must be 64 hex digits";
  // Key ids are printed in messages: only plain characters, so a forged trailer cannot carry terminal escapes.
  if (typeof v["keyId"] !== "string" || !/^[A-Za-z0-9_.:-]{1,128}$/.test(v["keyId"])) return "trailer keyId must be a key id";
  if (typeof v["signature"] !== "string" || !/^[A-Za-z0-9_-]{1,1024}$/.test(v["signature"])) return "trailer signature must be base64url";
  return { trailer: BASELINE_FORMAT, entries: v["entries"], sha256: v["sha256"], keyId: v["keyId"], signature: v["signature"] };
}

/** The bytes a baseline signature covers. */
export function signedMessage(digest: Uint8Array): Uint8Array {
  const prefix = Buffer.from(SIGNATURE_CONTEXT, "utf8");
  return Buffer.concat([prefix, Buffer.from(digest)]);
}
