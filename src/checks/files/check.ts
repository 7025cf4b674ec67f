// The files check as two library calls: record a signed baseline of PATHs, and compare PATHs with
// one. Both return Findings; the CLI is a thin shell over them.
import { lstatSync, type BigIntStats, type ReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import type { Signer } from "../../crypto/signer.ts";
import type { Clock } from "../../lib/clock.ts";
import { isBulwarkError } from "../../lib/errors.ts";
import type { Finding } from "../finding.ts";
import { openInputHandle } from "../input-file.ts";
import type { BaselineHeader } from "./baseline-format.ts";
import { BaselineReader, type BaselineIntegrity } from "./baseline-read.ts";
import { baselineTempPath, writeBaselineFile } from "./baseline-write.ts";
import { diffEntries } from "./compare.ts";
import type { RecordedBaseline } from "./records.ts";
import { filesErrors } from "./errors.ts";
import { FindingCollector, tapScan } from "./findings.ts";
import type { ScanFS } from "./hash-file.ts";
import { canonicalPath, canonicalRoots, createNodeScanFS, lookUpEntry, nodeScanFS, normaliseRoots, NOT_LISTED, scanTree, type ScanStats } from "./scan.ts";
import { createLookUp } from "./look-up.ts";
import { isWithin, type FileEntry } from "./entry.ts";

export interface ScanTuning {
  /** Paths to leave out, with everything beneath them. */
  exclude?: readonly string[];
  /** Stay on each root's file system (find -xdev): mount points are recorded, not entered. */
  oneFileSystem?: boolean;
  /** Files hashed at once (default 4). */
  concurrency?: number;
  fs?: ScanFS;
  onProgress?: (stats: ScanStats) => void;
  /** Largest file hashed, in bytes (default 4 GiB); see scan.ts DEFAULT_MAX_FILE_BYTES. */
  maxFileBytes?: number;
  /** Bytes one scan may read to hash (default 256 GiB); see scan.ts DEFAULT_MAX_SCAN_BYTES. */
  maxScanBytes?: number;
}

/** The byte limits given, and only those (the scan has its defaults for the rest). */
function limitsOf(tuning: ScanTuning): { maxFileBytes?: number; maxScanBytes?: number } {
  return {
    ...(tuning.maxFileBytes === undefined ? {} : { maxFileBytes: tuning.maxFileBytes }),
    ...(tuning.maxScanBytes === undefined ? {} : { maxScanBytes: tuning.maxScanBytes }),
  };
}

export interface CreateBaselineOptions extends ScanTuning {
  paths: readonly string[];
  /** File to write (atomically replaced). */
  out: string;
  /**
   * Where the caller moves `out` once it is written (the CLI writes beside the name it was given, then links
   * it into place); left out of the scan like `out` itself.
   */
  publishAs?: string;
  signer: Signer;
  clock: Clock;
}

export interface CreateBaselineResult {
  roots: string[];
  entries: number;
  keyId: string;
  /** Hex SHA-256 the signature covers: what records.ts keeps of the baseline. */
  digest: string;
  header: BaselineHeader;
  /** Findings of the scan itself: unreadable entries, loops, special files. */
  findings: Finding[];
}

/**
 * Scans `paths` and writes a signed baseline to `out`.
 *
 * @example
 * const r = await createBaseline({ paths: ["/usr/bin"], out: "usr-bin.baseline", signer, clock: systemClock });
 */
export async function createBaseline(options: CreateBaselineOptions): Promise<CreateBaselineResult> {
  if (options.paths.length === 0) throw filesErrors.badRoot("give at least one PATH to record");
  // Each PATH (and exclusion) as the directory it names: its parents' symlinks resolved (canonicalPath).
  const fs = options.fs ?? nodeScanFS;
  const roots = await canonicalRoots(options.paths, fs);
  const excluded = await canonicalRoots(options.exclude ?? [], fs);
  refuseExcludedRoots(roots, excluded);
  const oneFileSystem = options.oneFileSystem ?? false;
  const collector = new FindingCollector();
  // A baseline stored inside a scanned tree must not record itself (it changes as it is written). Only the exact
  // files this run writes are left out: any other name, however much it looks like ours, is scanned.
  const temp = baselineTempPath(options.out, options.clock.now());
  const own = new Set(await Promise.all([options.out, temp, ...(options.publishAs === undefined ? [] : [options.publishAs])].map((p) => canonicalPath(p, fs))));
  const exclude = (p: string): boolean => own.has(p) || excluded.some((x) => isWithin(p, x));
  const scan = scanTree(roots, { ...limitsOf(options), concurrency: options.concurrency, fs: options.fs, onProgress: options.onProgress, exclude, oneFileSystem });
  const written = await writeBaselineFile(options.out, tapScan(scan, collector), {
    temp,
    roots,
    exclude: excluded,
    oneFileSystem,
    signer: options.signer,
    clock: options.clock,
  });
  return { roots, entries: written.entries, keyId: written.keyId, digest: written.sha256, header: written.header, findings: collector.findings() };
}

export interface CompareBaselineOptions extends ScanTuning {
  /** Path of the baseline file. */
  baseline: string;
  /** Paths to compare; default: the roots recorded in the baseline. */
  paths?: readonly string[];
  signer: Signer;
  /**
   * The record of a later baseline that supersedes this one (records.ts supersedingRecord), asked once the baseline
   * has been read: it is reported as superseded (critical), since a replayed genuine baseline hides every change made
   * since the newer one.
   */
  supersededBy?: (given: { header: BaselineHeader; digest: string }) => Promise<RecordedBaseline | null>;
}

export interface CompareBaselineResult {
  header: BaselineHeader;
  roots: string[];
  integrity: BaselineIntegrity;
  totals: { added: number; removed: number; changed: number; scanned: number };
  findings: Finding[];
  /**
   * The exclusions the compare applied, as resolved; `recorded` false for one the baseline did not record (what is new
   * under it was left out; what the baseline recorded there was compared).
   */
  exclusions: Array<{ path: string; recorded: boolean }>;
}

/** Recorded roots named in a refusal; the rest are counted (a header may list 4,096). */
const ROOTS_NAMED = 5;

/**
 * Refuses PATHs the baseline did not record: outside every root, or under a recorded exclusion. Compared with nothing,
 * each file there would be "added" (low for a plain file): a genuine, signed baseline of another tree swapped in would
 * pass a trojaned script as new and the run would exit 0. The header is read before the trailer verifies it, so an
 * edited one may be refused here rather than reported tampered: either way the run fails.
 */
function refuseUnrecorded(roots: readonly string[], header: BaselineHeader, baseline: string): void {
  const recorded = (p: string): boolean => header.roots.some((r) => isWithin(p, r)) && !header.exclude.some((x) => isWithin(p, x));
  const unrecorded = roots.filter((p) => !recorded(p));
  if (unrecorded.length === 0) return;
  const named = header.roots.slice(0, ROOTS_NAMED).join(", ") + (header.roots.length > ROOTS_NAMED ? ` and ${header.roots.length - ROOTS_NAMED} more` : "");
  const excluding = header.exclude.length > 0 ? ` (excluding ${header.exclude.slice(0, ROOTS_NAMED).join(", ")}${header.exclude.length > ROOTS_NAMED ? ` and ${header.exclude.length - ROOTS_NAMED} more` : ""})` : "";
  throw filesErrors.badRoot(
    `cannot compare ${unrecorded.join(", ")} with the baseline ${baseline}: it did not record ${unrecorded.length === 1 ? "that path" : "those paths"}, only ${named}${excluding}; give PATHs it covers, or the baseline of that tree`,
  );
}

/**
 * The record that supersedes a baseline: asked with its header as recorded, then, if that finds none and its roots or
 * exclusions are spelled otherwise now (their parents' symlinks resolved, canonicalPath), as the same tree spelled so:
 * a baseline recorded before PATHs were resolved, its root spelled through a symlink, is the tree recorded since by
 * the real path.
 */
async function supersededAsRecordedOrNow(ask: CompareBaselineOptions["supersededBy"], header: BaselineHeader, digest: string, fs: ScanFS): Promise<RecordedBaseline | null> {
  if (ask === undefined) return null;
  const asRecorded = await ask({ header, digest });
  if (asRecorded !== null) return asRecorded;
  const roots = await canonicalRoots(header.roots, fs);
  const exclude = await canonicalRoots(header.exclude, fs);
  if (JSON.stringify([roots, exclude]) === JSON.stringify([header.roots, header.exclude])) return null;
  return ask({ header: { ...header, roots, exclude }, digest });
}

/** Whether `path` (not followed) is the file `opened` describes. */
function sameFile(path: string, opened: BigIntStats): boolean {
  try {
    const now = lstatSync(path, { bigint: true });
    return now.dev === opened.dev && now.ino === opened.ino;
  } catch {
    return false;
  }
}

/**
 * Refuses exclusions that cover a root whole: nothing under it would be scanned or compared, and the run would say
 * little or nothing (an --exclude spelled through a symlink re-pointed onto the root, or a typo), not that it judged
 * nothing.
 */
function refuseExcludedRoots(roots: readonly string[], excluded: readonly string[]): void {
  for (const root of roots) {
    const x = excluded.find((e) => isWithin(root, e));
    if (x !== undefined) throw filesErrors.badRoot(`--exclude ${x} covers the PATH ${root} whole: nothing under it would be examined; exclude paths under it, or give another PATH`);
  }
}

/**
 * Compares the current state of the paths with a baseline. A tampered baseline does not stop the
 * compare: it adds the critical `files.baseline-tampered` finding. PATHs the baseline did not record are refused
 * (BULWARK_ERR_FILES_PATH), before any scan.
 *
 * @example
 * const r = await compareBaseline({ baseline: "usr-bin.baseline", signer });
 * for (const f of r.findings) console.log(f.severity, f.id, f.title);
 */
export async function compareBaseline(options: CompareBaselineOptions): Promise<CompareBaselineResult> {
  // A directory opens fine on Linux and only fails at the first read (EISDIR): refuse it by name.
  let isDirectory = false;
  try {
    isDirectory = (await stat(options.baseline)).isDirectory();
  } catch {
    // Reported with the open error below.
  }
  if (isDirectory) throw filesErrors.notABaseline(`cannot read the baseline ${options.baseline}: it is a directory, not a baseline file`);
  // Only a regular file, or a pipe passed on purpose (<(…)): a FIFO or a device swapped in must not hang the compare.
  let stream: ReadStream;
  // The file opened, by device and inode: what the compare leaves out as the baseline itself (below), whatever its
  // name leads to by then.
  let opened: BigIntStats;
  try {
    const handle = await openInputHandle(options.baseline);
    opened = await handle.stat({ bigint: true }).catch(async (error: unknown) => {
      await handle.close();
      throw error;
    });
    stream = handle.createReadStream();
  } catch (error) {
    throw filesErrors.notABaseline(`cannot read the baseline ${options.baseline}: ${(error as Error).message}`, { cause: error });
  }
  try {
    const reader = new BaselineReader(stream, options.signer);
    let header: BaselineHeader;
    try {
      header = await reader.readHeader();
    } catch (error) {
      // A read error before the header (EISDIR, EIO) means we were not given a readable baseline.
      if (typeof (error as NodeJS.ErrnoException).code === "string" && !isBulwarkError(error)) {
        throw filesErrors.notABaseline(`cannot read the baseline ${options.baseline}: ${(error as Error).message}`, { cause: error });
      }
      throw error;
    }
    // One file system (and directory cache) for the scan and the lookups, so the directory pinned for them is the one
    // the scan reached; another scan in this process has its own.
    const fs = options.fs ?? createNodeScanFS();
    // PATHs given now are spelled as a baseline spells them (canonicalPath); the recorded roots were, when recorded.
    const roots = options.paths && options.paths.length > 0 ? await canonicalRoots(options.paths, fs) : normaliseRoots(header.roots);
    refuseUnrecorded(roots, header, options.baseline);
    // Exclusions and -xdev default to the recorded ones, so the same tree is compared.
    const excluded = options.exclude ? await canonicalRoots(options.exclude, fs) : normaliseRoots(header.exclude);
    refuseExcludedRoots(roots, excluded);
    const oneFileSystem = options.oneFileSystem ?? header.oneFileSystem;
    const collector = new FindingCollector();
    // The baseline itself is left out (it was written after the scan it records), and nothing else: a
    // leftover or planted ".NAME.*.tmp" beside it is compared like any file.
    // Left out only while that name is still the file opened: a directory on its path re-pointed between the open and
    // here would otherwise leave out whatever the intruder put under the baseline's name in the tree.
    const baselinePath = await canonicalPath(options.baseline, fs);
    const isBaseline = (p: string): boolean => p === baselinePath && sameFile(p, opened);
    const exclude = (p: string): boolean => isBaseline(p) || excluded.some((x) => isWithin(p, x));
    const scan = scanTree(roots, {
      ...limitsOf(options),
      concurrency: options.concurrency,
      fs,
      onProgress: options.onProgress,
      allowMissingRoots: true,
      exclude,
      oneFileSystem,
    });
    // What the baseline recorded under a directory that cannot be listed now is looked up by name (compare.ts), every
    // read and retry of all lookups taken from one byte budget of their own, as large as the scan's.
    const lookups = createLookUp({
      fs,
      ...limitsOf(options),
      examined: (entry) => {
        if (entry.status !== "vanished" && entry.error !== NOT_LISTED) collector.addScanned(entry);
      },
    });
    // What the baseline recorded under an exclusion of this compare only (one it did not record) is still compared,
    // looked up by name; only what is new there is left out. An --exclude re-pointed through a symlink, or added to a
    // cron line, cannot take a signed entry out of the compare (ADR 0025). The exclusion is examined by name too, from
    // the lookups' byte budget.
    const recordedExclusions = normaliseRoots(header.exclude);
    const addedExclusions = excluded.filter((x) => !recordedExclusions.some((r) => isWithin(x, r)));
    const exclusionEntries = new Map<string, Promise<FileEntry>>();
    const excludedNow = async (path: string): Promise<FileEntry | null> => {
      const x = addedExclusions.find((a) => isWithin(path, a));
      if (x === undefined) return null;
      let entry = exclusionEntries.get(x);
      if (entry === undefined) {
        entry = lookUpEntry(x, { fs, budget: lookups.budget, ...(options.maxFileBytes === undefined ? {} : { maxFileBytes: options.maxFileBytes }) });
        exclusionEntries.set(x, entry);
      }
      return entry;
    };
    const release = fs.hold?.() ?? ((): void => {});
    try {
      for await (const event of diffEntries(reader.entries(), tapScan(scan, collector), roots, lookups.lookUp, excludedNow)) collector.addDiff(event);
    } finally {
      lookups.close();
      release();
    }
    collector.setIntegrity(reader.integrity, options.baseline);
    const digest = reader.integrity.digest;
    const newer = digest === null ? null : await supersededAsRecordedOrNow(options.supersededBy, header, digest, fs);
    if (newer !== null) collector.setSuperseded(newer, options.baseline, header.createdAt);
    return {
      header, roots, integrity: reader.integrity, totals: { ...collector.totals }, findings: collector.findings(),
      exclusions: excluded.map((path) => ({ path, recorded: !addedExclusions.includes(path) })),
    };
  } finally {
    // Closed before the compare returns or throws: a caller that runs compares on a schedule keeps no descriptor.
    if (!stream.closed) await new Promise<void>((resolve) => stream.once("close", () => resolve()).destroy());
  }
}
