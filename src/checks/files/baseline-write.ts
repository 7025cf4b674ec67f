// Writes a signed baseline as it is scanned (bounded memory): the digest of every byte before the
// trailer is signed with the keyring's signing key, so an edited baseline no longer verifies.
import { createHash } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import type { Signer } from "../../crypto/signer.ts";
import type { Clock } from "../../lib/clock.ts";
import { toBase64URL } from "../../lib/encoding.ts";
import { isBulwarkError } from "../../lib/errors.ts";
import { writeAll } from "../../lib/write-all.ts";
import { BASELINE_FORMAT, BASELINE_VERSION, encodeEntry, MAX_LINE, MAX_PATH, signedMessage, type BaselineHeader, type BaselineTrailer } from "./baseline-format.ts";
import type { FileEntry } from "./entry.ts";
import { filesErrors } from "./errors.ts";

/** Where baseline text goes; `write` resolves once the text is accepted. */
export interface BaselineSink {
  write(text: string): Promise<void>;
}

export interface WriteBaselineOptions {
  roots: readonly string[];
  exclude?: readonly string[];
  oneFileSystem?: boolean;
  signer: Signer;
  clock: Clock;
}

export interface BaselineWriteResult {
  entries: number;
  keyId: string;
  /** Hex SHA-256 of the signed content. */
  sha256: string;
  header: BaselineHeader;
}

/**
 * Streams `entries` (already in comparePaths order, as scanTree gives them) into a signed baseline.
 * Entries that vanished during the scan are left out: they were never there to compare.
 *
 * @example
 * await writeBaseline(scanTree(["/usr/bin"]), sink, { roots: ["/usr/bin"], signer, clock: systemClock });
 */
export async function writeBaseline(entries: AsyncIterable<FileEntry>, sink: BaselineSink, options: WriteBaselineOptions): Promise<BaselineWriteResult> {
  const digest = createHash("sha256");
  const emit = async (line: string): Promise<void> => {
    const text = `${line}\n`;
    digest.update(text, "utf8");
    await sink.write(text);
  };
  const header: BaselineHeader = {
    format: BASELINE_FORMAT,
    version: BASELINE_VERSION,
    createdAt: new Date(options.clock.now()).toISOString(),
    roots: [...options.roots],
    exclude: [...(options.exclude ?? [])],
    oneFileSystem: options.oneFileSystem ?? false,
    algorithm: "sha256",
  };
  await emit(JSON.stringify(header));
  let count = 0;
  for await (const entry of entries) {
    if (entry.status === "vanished") continue;
    const line = encodeEntry(entry);
    // What the reader would refuse is never written (it would read as tampered ever after): refused by name instead.
    if (entry.path.length > MAX_PATH || (line.length * 3 >= MAX_LINE && Buffer.byteLength(line, "utf8") >= MAX_LINE)) {
      throw filesErrors.badRoot(
        `cannot record ${JSON.stringify(entry.path.slice(0, 200))}…: its path is ${entry.path.length} characters, past what a baseline holds (${MAX_PATH}); ` +
          "find why the tree nests so deep (an intruder can plant such a chain to hide in it), then remove it or --exclude its top",
      );
    }
    await emit(line);
    count++;
  }
  const sum = digest.digest();
  const trailer: BaselineTrailer = {
    trailer: BASELINE_FORMAT,
    entries: count,
    sha256: sum.toString("hex"),
    keyId: options.signer.keyId,
    signature: toBase64URL(options.signer.sign(signedMessage(sum))),
  };
  await sink.write(`${JSON.stringify(trailer)}\n`);
  return { entries: count, keyId: options.signer.keyId, sha256: trailer.sha256, header };
}

/**
 * The temporary file `writeBaselineFile` writes `path` to first: beside it, named after it, this process and
 * `now`. A scan running while it is written leaves out this exact path, never a pattern of names: a pattern
 * would also hide any file an attacker names to fit it.
 */
export function baselineTempPath(path: string, now: number): string {
  return resolve(dirname(path), `.${basename(path)}.${process.pid}.${now}.tmp`);
}

export interface WriteBaselineFileOptions extends WriteBaselineOptions {
  /** The temporary file to write (default `baselineTempPath(path, clock.now())`); it must not exist yet. */
  temp?: string;
}

/** Batches small writes into large ones (one write per ~256 KiB). */
const FLUSH_AT = 256 * 1024;

/**
 * Writes a baseline to `path` atomically: into a new temporary file beside it, synced, then renamed,
 * so a crash, a failed scan or a full disk never leaves a half-written baseline where a good one was: a write
 * that fails (BULWARK_ERR_FILES_IO, naming `path`) removes the temporary file and leaves `path` as it was.
 *
 * @example
 * await writeBaselineFile("/var/lib/bulwark/usr.baseline", scanTree(["/usr"]), { roots: ["/usr"], signer, clock });
 */
export async function writeBaselineFile(path: string, entries: AsyncIterable<FileEntry>, options: WriteBaselineFileOptions): Promise<BaselineWriteResult> {
  const temp = options.temp ?? baselineTempPath(path, options.clock.now());
  let handle;
  try {
    // wx: never write through a file (or symlink) an attacker placed at the temporary name.
    handle = await open(temp, "wx", 0o600);
  } catch (error) {
    throw filesErrors.io(`cannot create ${temp}: ${(error as Error).message}`, { cause: error });
  }
  let pending: string[] = [];
  let pendingBytes = 0;
  const fh = handle;
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const text = pending.join("");
    pending = [];
    pendingBytes = 0;
    // Every byte, or an error: a short write on a full disk raised none, and the baseline was published cut short.
    await writeAll(fh, Buffer.from(text, "utf8"));
  };
  const sink: BaselineSink = {
    write: async (text) => {
      pending.push(text);
      pendingBytes += text.length;
      if (pendingBytes >= FLUSH_AT) await flush();
    },
  };
  try {
    const result = await writeBaseline(entries, sink, options);
    await flush();
    await fh.sync();
    await fh.close();
    await rename(temp, path);
    return result;
  } catch (error) {
    await fh.close().catch(() => {});
    await unlink(temp).catch(() => {});
    if (isBulwarkError(error)) throw error;
    throw filesErrors.io(`cannot write the baseline ${path}: ${(error as Error).message}`, { cause: error });
  }
}
