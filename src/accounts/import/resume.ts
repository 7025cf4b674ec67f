// Resuming an interrupted import: the file's digest finds its job, and the run must repeat the job's source and
// settings (a file imported half under one set of rules and half under another is refused, naming what to run).
import { createHash } from "node:crypto";
import { RESUMABLE_STATUSES, type Job, type JobStore } from "../../jobs/job-store.ts";
import { formatSaltedTemplate } from "../passwords/index.ts";
import { ImportRefusedError } from "./errors.ts";
import type { FieldMap, RowRules } from "./mapping.ts";
import { IMPORT_JOB_KIND, type ImportOptions, type ImportSettings, type ImportSpec } from "./types.ts";

/** SHA-256 of the file's bytes, read once more (text chunks as UTF-8): what makes a re-run "the same import". */
export async function fileDigest(chunks: AsyncIterable<string | Uint8Array>): Promise<string> {
  const digest = createHash("sha256");
  for await (const chunk of chunks) digest.update(chunk);
  return digest.digest("hex");
}

/**
 * The rules of a run that resumes `job`: its remaining rows are linked to the external source the job recorded.
 * The caller's source differing from it is refused, not overridden: the CLI derives the source from --source, the
 * preset or the file's name, and cannot say which, so an explicit --source is indistinguishable from a renamed file
 * ("users (1).csv"). Resuming under the new name split one legacy system's accounts over two sources, and the next
 * update of the file then found half of them "linked to another external id".
 */
export function rulesOfResume(rules: RowRules, job: Job<ImportSpec> | null): RowRules {
  const recorded = job?.spec.source;
  // Every job this importer creates records its source; a spec without one (written by hand) keeps the caller's.
  if (job === null || typeof recorded !== "string") return rules;
  if (recorded !== rules.source) {
    throw new ImportRefusedError(
      `this file's import was interrupted (job ${job.id}, written through line ${job.cursor ?? 0}) under the source ${JSON.stringify(recorded)}, ` +
        `but this run's source is ${JSON.stringify(rules.source)} (from --source, the preset or the file name); its remaining accounts must link to the same source: ` +
        `resume with --source ${JSON.stringify(recorded)}`,
    );
  }
  return { ...rules, source: recorded };
}

export function settingsOf(options: ImportOptions): ImportSettings {
  const { rules } = options;
  return {
    format: options.format,
    map: rules.map,
    preset: rules.preset,
    salted: rules.salted === null ? null : formatSaltedTemplate(rules.salted),
    onConflict: options.onConflict,
    replacePasswords: options.onConflict === "update" && options.replacePasswords === true,
  };
}

/** The settings as command-line options, one per setting, for the messages below. */
function describeSetting(key: keyof ImportSettings, value: unknown): string {
  switch (key) {
    case "replacePasswords":
      return value ? "--replace-passwords" : "no --replace-passwords";
    case "map": {
      const map = value as FieldMap;
      return `columns ${Object.keys(map).sort().map((field) => `${field}=${map[field as keyof FieldMap]}`).join(",")}`;
    }
    case "onConflict":
      return `--on-conflict ${value}`;
    default:
      return value === null ? `no --${key}` : `--${key} ${JSON.stringify(value)}`;
  }
}

/**
 * Refuses to resume `job` under other settings than its own, naming each difference and what to run instead, dry
 * run or real (a dry run must report what the real run would do, and the real run would refuse).
 */
export function assertSameSettings(settings: ImportSettings, job: Job<ImportSpec> | null): void {
  const recorded = job?.spec.settings;
  if (job === null || recorded === undefined) return;
  const differences: string[] = [];
  const then: string[] = [];
  for (const key of Object.keys(settings) as Array<keyof ImportSettings>) {
    const same = key === "map" ? sameMap(recorded.map, settings.map) : recorded[key] === settings[key];
    if (same) continue;
    differences.push(`${describeSetting(key, recorded[key])} then, ${describeSetting(key, settings[key])} now`);
    then.push(describeSetting(key, recorded[key]));
  }
  if (differences.length === 0) return;
  throw new ImportRefusedError(
    `this file's import was interrupted (job ${job.id}, written through line ${job.cursor ?? 0}) under other settings: ${differences.join("; ")}. ` +
      `Its remaining rows must be imported as the first ones were: resume with ${then.join(", ")}; once it is done, ` +
      "a new run of the file applies other settings to every row",
  );
}

function sameMap(a: FieldMap, b: FieldMap): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]) as Set<keyof FieldMap>;
  for (const key of keys) if (a[key] !== b[key]) return false;
  return true;
}

/** The newest unfinished import job of the file with this digest: what a crash (or a refused batch) left. */
export async function interruptedJob(jobs: JobStore, sha256: string): Promise<Job<ImportSpec> | null> {
  const open = await jobs.list({ kind: IMPORT_JOB_KIND, status: [...RESUMABLE_STATUSES], limit: 500 });
  return (open.find((j) => (j.spec as Partial<ImportSpec>).sha256 === sha256) as Job<ImportSpec> | undefined) ?? null;
}
