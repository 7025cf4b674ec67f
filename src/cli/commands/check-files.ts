// `bulwark check files`: record a signed baseline of PATHs (--baseline OUT) or compare PATHs with one
// (--compare BASELINE). The heavy modules load only when the command runs.
import { accessSync, constants, existsSync, linkSync, lstatSync, realpathSync, renameSync, statSync, unlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { InputError } from "../../lib/errors.ts";
import { inertJSON } from "../../lib/terminal.ts";
import { addCheckOptions, finishCheck, parseBytes, type CheckOptions } from "../check-common.ts";
import type { CliContext, CommandModule } from "../context.ts";
import type { ExitCode } from "../exit-codes.ts";
import { action, cliActor, collect, group, progress } from "../run.ts";

interface FilesOptions extends CheckOptions {
  baseline?: string;
  compare?: string;
  concurrency?: string;
  exclude?: string[];
  oneFileSystem?: boolean;
  force?: boolean;
  maxFileBytes?: string;
  maxScanBytes?: string;
}

function parseConcurrency(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d{1,2}$/.test(value) || Number(value) < 1 || Number(value) > 64) {
    throw new InputError("BULWARK_ERR_USAGE", `--concurrency must be an integer from 1 to 64, got "${value.slice(0, 20)}"`);
  }
  return Number(value);
}

/** Paths and times from a baseline are attacker-controlled when it is tampered: quote any with control characters (C1 too). */
function shown(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\u0000-\u001f\u007f-\u009f]/.test(text) ? inertJSON(text) : text;
}

function formatBytes(n: number): string {
  return n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(1)} GiB` : n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MiB` : `${n} B`;
}

function refuseExisting(path: string): InputError {
  return new InputError("BULWARK_ERR_USAGE", `--baseline ${path} already exists; refusing to overwrite it (pass --force to replace it)`);
}

/**
 * Refuses, before a scan that may take minutes, a --baseline that cannot be written (its directory is missing or
 * not writable) or that names an existing file: a signed baseline is evidence, and a second run must not
 * silently replace it (`--force` does).
 */
function checkBaselineOut(path: string, force: boolean): void {
  const dir = dirname(resolve(path));
  try {
    if (!statSync(dir).isDirectory()) throw new InputError("BULWARK_ERR_USAGE", `--baseline ${path}: ${dir} is not a directory`);
    accessSync(dir, constants.W_OK);
  } catch (error) {
    if (error instanceof InputError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" || code === "EPERM" ? "is not writable" : code === "ENOTDIR" ? "is not a directory" : `cannot be used (${code})`;
    throw new InputError("BULWARK_ERR_USAGE", `--baseline ${path}: the directory ${dir} ${why}`, { cause: error });
  }
  let existing;
  try {
    existing = lstatSync(path);
  } catch {
    return;
  }
  if (!force) throw refuseExisting(path);
  if (existing.isDirectory()) throw new InputError("BULWARK_ERR_USAGE", `--baseline ${path} is a directory`);
}

/** Moves the finished baseline `temp` to `path`; link() fails when `path` exists, where rename() would replace it. */
function publish(temp: string, path: string): void {
  try {
    try {
      linkSync(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") throw refuseExisting(path);
      if (existsSync(path)) throw error;
      renameSync(temp, path); // a file system without hard links
    }
  } finally {
    if (existsSync(temp)) unlinkSync(temp);
  }
}

/**
 * Where a baseline file really is (symlinks in its directories resolved), so that its record and a later compare name
 * it alike however it was spelled; a path that cannot be resolved (a pipe) as given, made absolute.
 */
function realPath(path: string): string {
  try {
    return realpathSync(path);
  } catch {
    return resolve(path);
  }
}

async function run(ctx: CliContext, paths: string[], opts: FilesOptions): Promise<ExitCode> {
  if ((opts.baseline === undefined) === (opts.compare === undefined)) {
    throw new InputError("BULWARK_ERR_USAGE", "give exactly one of --baseline OUT (record) or --compare BASELINE (compare)");
  }
  if (opts.force && opts.baseline === undefined) throw new InputError("BULWARK_ERR_USAGE", "--force goes with --baseline OUT: it allows replacing an existing baseline");
  const concurrency = parseConcurrency(opts.concurrency);
  // Both runs are bounded (a planted 4 TiB sparse file must not stall either); a compare uses its own limits, and the
  // same ones as the baseline, or files hashed then and not now are reported as not verified.
  const maxFileBytes = parseBytes("--max-file-bytes", opts.maxFileBytes);
  const maxScanBytes = parseBytes("--max-scan-bytes", opts.maxScanBytes);
  const limits = { ...(maxFileBytes === undefined ? {} : { maxFileBytes }), ...(maxScanBytes === undefined ? {} : { maxScanBytes }) };
  const files = await import("../../checks/files/index.ts");
  const app = await ctx.app();
  const signer = await app.keyring.signer();
  const bar = progress(ctx, "files", 0);
  let bytes = 0;
  const onProgress = (s: { entries: number; bytesHashed: number }): void => {
    bytes = s.bytesHashed;
    bar.update(s.entries, s.entries);
  };
  if (opts.baseline !== undefined) {
    if (paths.length === 0) throw new InputError("BULWARK_ERR_USAGE", "--baseline needs at least one PATH to record");
    const force = opts.force === true;
    checkBaselineOut(opts.baseline, force);
    // Without --force the baseline is written beside its name and linked into place, which fails if a file
    // appeared there during the scan; with --force it is written (renamed) over the old one.
    const out = force ? opts.baseline : join(dirname(opts.baseline), `.${basename(opts.baseline)}.${process.pid}.new.tmp`);
    const r = await files.createBaseline({
      paths,
      out,
      ...(force ? {} : { publishAs: opts.baseline }),
      signer,
      clock: app.clock,
      concurrency,
      ...limits,
      onProgress,
      exclude: opts.exclude,
      oneFileSystem: opts.oneFileSystem,
    });
    if (!force) publish(out, opts.baseline);
    // Published: from now on a compare given an older baseline of this tree is told that this one is newer.
    await files.recordBaseline(app.audit, cliActor(), r.header, { digest: r.digest, path: realPath(opts.baseline), entries: r.entries, keyId: r.keyId });
    bar.done();
    return finishCheck(ctx, opts, {
      check: "files",
      findings: r.findings,
      extra: { baseline: opts.baseline, roots: r.roots, entries: r.entries, keyId: r.keyId, bytesHashed: bytes },
      summary: [`baseline ${opts.baseline}: ${r.entries} entries under ${r.roots.map(shown).join(", ")}, ${formatBytes(bytes)} hashed, signed with key ${r.keyId}`],
    });
  }
  const baseline = opts.compare as string;
  // Every name the file compared is known by: as spelled, with its directories' symlinks resolved, and where it really
  // is. A symlink put at the name the cron compares (or over its directory) leads to a copy kept elsewhere, which no
  // record names; the name itself was recorded.
  const names = [resolve(baseline), await files.canonicalPath(baseline), realPath(baseline)];
  const r = await files.compareBaseline({
    baseline, paths, signer, concurrency, ...limits, onProgress, exclude: opts.exclude, oneFileSystem: opts.oneFileSystem,
    supersededBy: (given) => files.supersedingRecord(app.db.db, { ...given, paths: names }),
  });
  bar.done();
  // Names the finding actually raised: a baseline intact but signed with a retired key has its own.
  const verdict = r.findings.find((f) => f.id.startsWith("files.baseline-"))?.id ?? "files.baseline-tampered";
  const trust = r.integrity.trusted ? `signature valid (key ${r.integrity.keyId})` : `NOT TRUSTED (see ${verdict})`;
  return finishCheck(ctx, opts, {
    check: "files",
    findings: r.findings,
    extra: { baseline, createdAt: r.header.createdAt, roots: r.roots, exclusions: r.exclusions, trusted: r.integrity.trusted, totals: r.totals },
    summary: [
      `baseline ${shown(baseline)} of ${shown(r.header.createdAt)}: ${trust}`,
      `compared ${r.totals.scanned} entries under ${r.roots.map(shown).join(", ")}: ${r.totals.added} added, ${r.totals.removed} removed, ${r.totals.changed} changed`,
      // The exclusions as resolved now: one spelled through a symlink someone re-pointed names another directory. Those
      // the baseline did not record are named first.
      ...(r.exclusions.length === 0 ? [] : [excludedLine(r.exclusions)]),
    ],
  });
}

/** Exclusions named in a compare's summary (those the baseline did not record first); the rest are counted. */
const EXCLUSIONS_NAMED = 10;

/** The summary's line of the exclusions a compare applied (CompareBaselineResult.exclusions). */
function excludedLine(exclusions: ReadonlyArray<{ path: string; recorded: boolean }>): string {
  const ordered = [...exclusions.filter((x) => !x.recorded), ...exclusions.filter((x) => x.recorded)];
  const named = ordered.slice(0, EXCLUSIONS_NAMED).map((x) => `${shown(x.path)}${x.recorded ? "" : " (not recorded in the baseline: only what is new there was left out)"}`);
  const rest = ordered.slice(EXCLUSIONS_NAMED);
  const restAdded = rest.filter((x) => !x.recorded).length;
  const more = rest.length === 0 ? "" : ` and ${rest.length} more${restAdded > 0 ? ` (${restAdded} of them not recorded in the baseline; --json lists them)` : ""}`;
  return `excluded ${named.join(", ")}${more}`;
}

export default {
  register(program: Command, ctx: CliContext): void {
    const check = group(program, "check", "run a security check and print findings");
    addCheckOptions(
      check
        .command("files")
        .description(
          "file integrity: --baseline OUT PATH… records a signed baseline (type, mode, owner, size, times, inode, link target, SHA-256); " +
            "--compare BASELINE [PATH…] reports files added, removed and changed since (PATHs default to those recorded). " +
            "Symlinks, including a PATH that is one, are recorded and never followed.",
        )
        .argument("[paths...]", "files or directories to record or compare")
        .option("--baseline <out>", "scan PATHs and write a signed baseline to this file (refuses to overwrite one)")
        .option("--force", "with --baseline: replace an existing file")
        .option("--compare <baseline>", "compare PATHs (default: the baseline's) with this baseline")
        .option("--exclude <path>", "leave this path and everything beneath it out (repeatable; compare defaults to the recorded ones, and still compares what the baseline recorded beneath it)", collect)
        .option("--one-file-system", "do not enter other mounted file systems (use it when scanning /: keeps /proc and /sys out)")
        .option("--concurrency <n>", "files hashed at once (1-64, default 4)")
        .option("--max-file-bytes <n>", "largest file hashed (K, M, G, T suffixes; default 4G); a larger one is reported high as not hashed")
        .option("--max-scan-bytes <n>", "bytes one run may read to hash (default 256G); files past it are reported high as not hashed"),
    ).action(action(ctx, (paths: string[], opts: FilesOptions) => run(ctx, paths, opts)));
  },
} satisfies CommandModule;
