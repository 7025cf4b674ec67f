// Bulk import of accounts: a validation pass over the whole file (every bad row with its line and
// reason, duplicates in the file, conflicts with existing accounts), then, for a real run, a second
// pass that writes in batches, one transaction per batch, with the batch's audit event inside it.
// An update never undoes containment, never moves a last login backwards, and never replaces a stored
// password unless told to, and then never with a weaker hash (password-update.ts). An update that disables an
// account or replaces its password ends the account's sessions, in the batch's transaction (`endUserSessions`
// in sessions/revocation.ts).
// A real run is a job keyed by the file's SHA-256: each batch advances the job's cursor (the last line it
// wrote) in its own transaction, so running the same import again after a crash resumes after that line
// instead of meeting its own rows as conflicts (it still reads them, so a later duplicate of one is refused).
// An address held only by an unfinished sign-up of it (anyone may start one) is free: the row's account replaces the
// sign-up, in the batch's transaction, under every --on-conflict (apply-batch.ts), and the report names each.
import type { Kysely } from "kysely";
import { escapeControls } from "../../lib/terminal.ts";
import { lockKeyOf, serialiseTransactions } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { applyBatch } from "./apply-batch.ts";
import { ImportOptionError, ImportRefusedError } from "./errors.ts";
import { checkColumns, resolveIgnored, unreadColumns, unreadColumnsError, validateRow, type ImportRow } from "./mapping.ts";
import { clash, EXISTS, lookup, renamesUsername, type OnConflict } from "./existing.ts";
import { planPassword } from "./password-update.ts";
import { assertSameSettings, fileDigest, interruptedJob, rulesOfResume, settingsOf } from "./resume.ts";
import { readRows } from "./source.ts";
import { IMPORT_JOB_KIND, type ImportDeps, type ImportOptions, type ImportReport, type ImportSpec, type RowNote } from "./types.ts";

export type { OnConflict };
export { IMPORT_JOB_KIND, IMPORT_NOTICE_REFUSED, MAX_BATCH } from "./types.ts";
export type { ImportDeps, ImportNotices, ImportOptions, ImportReport, ImportSettings, ImportSpec, RowNote, SignUpRemoved } from "./types.ts";

/** The longest external source name (it is stored on every linked account and named in audit events). */
export const MAX_SOURCE_LENGTH = 200;

/**
 * Refuses a source name that is empty, over MAX_SOURCE_LENGTH, or holds a control, bidirectional or invisible (default-ignorable) character: it is
 * stored on every linked account and printed to operators, and the CLI takes it from the file's name by default, so
 * a name planted in a shared directory would otherwise carry terminal escape codes into the database and onto screens.
 */
function assertSourceName(source: string): void {
  const problem = source.trim() === "" ? "is empty" : source.length > MAX_SOURCE_LENGTH ? `is over ${MAX_SOURCE_LENGTH} characters`
    : escapeControls(source) !== source ? "holds control, bidirectional or invisible characters" : null;
  if (problem !== null) {
    throw new ImportOptionError(`the external source name ${JSON.stringify(escapeControls(source.slice(0, 80)))} ${problem} (it comes from --source, the preset or the file's name): give --source NAME`);
  }
}

/**
 * Imports accounts from a CSV or JSONL file. A dry run writes nothing but one audit event. A real
 * run refuses to start when the validation pass finds bad rows, unless `skipBad`.
 *
 * @example
 * const report = await importUsers(deps, { format: "csv", open: () => createReadStream(path, "utf8"), rules, onConflict: "skip", batchSize: 500, dryRun: false, skipBad: false, actor: "cli:ops", file: "users.csv" });
 */
export async function importUsers(deps: ImportDeps, options: ImportOptions): Promise<ImportReport> {
  assertSourceName(options.rules.source);
  const sha256 = await fileDigest(options.open());
  const interrupted = await interruptedJob(deps.jobs, sha256);
  const rules = rulesOfResume(options.rules, interrupted);
  const settings = settingsOf(options);
  assertSameSettings(settings, interrupted);
  // One clock reading judges the times of every row of this run (a time after it is a bad row, mapping.ts), in both
  // passes: the write pass must meet the rows the validation pass let through, even if the clock is stepped between them.
  const now = deps.clock.now();
  const report: ImportReport = {
    dryRun: options.dryRun, source: rules.source, rows: 0, created: 0, updated: 0, skipped: 0, failed: 0, bad: [], skippedRows: [], passwordsReplaced: [], passwordsKept: 0, passwordsNotSet: 0, signUpsRemoved: [], timesClamped: 0, batches: 0,
    jobId: null, resumedAfterLine: null, alreadyImported: 0,
  };
  // Every row up to this line was written by the interrupted run (its batches committed in line order).
  const doneThrough = interrupted ? Number(interrupted.cursor ?? 0) : 0;
  if (interrupted) Object.assign(report, { jobId: interrupted.id, resumedAfterLine: doneThrough });
  const { replacePasswords } = settings;
  const badLines = new Set<number>();
  const seenEmail = new Map<string, number>();
  const seenUsername = new Map<string, number>();
  const seenExternal = new Map<string, number>();
  const seenEmailSkeleton = new Map<string, number>();
  const seenUsernameSkeleton = new Map<string, number>();
  // Rows that read like an earlier row, by line: refused in check() if they write an identifier.
  const alikeOf = new Map<number, number>();
  // Rows the reading itself skips (the preset's anonymous uid 0): skipped by the write pass too, which names the rest.
  const skippedAtRead: RowNote[] = [];
  const markBad = (line: number, reason: string): void => {
    badLines.add(line);
    report.bad.push({ line, reason });
  };

  // Pass 1: validate everything, as a dry run reports it and as a real run needs it before writing.
  let pending: ImportRow[] = [];
  const check = async (): Promise<void> => {
    const found = await lookup(deps.database.db, pending);
    for (const row of pending) {
      const existing = found.byEmail.get(row.emailKey);
      const alike = alikeOf.get(row.line);
      const writesIdentifier = !existing || renamesUsername(row, existing, options.onConflict);
      const why = clash(row, found, options.onConflict) ?? (alike !== undefined && writesIdentifier ? `reads like line ${alike} (its email or username in the same letters of another script)` : null);
      if (why) markBad(row.line, why);
      else if (!existing) {
        report.created++;
        // Held by an unfinished sign-up of this address: the write pass removes it for the row's account.
        const squat = found.signUps.get(row.emailKey);
        if (squat) report.signUpsRemoved.push({ line: row.line, id: squat.id });
      } else if (options.onConflict === "update") {
        const plan = planPassword(row, existing.passwordHash, { replacePasswords }, deps.passwords);
        if (plan.kind === "refuse") {
          markBad(row.line, plan.reason);
          continue;
        }
        if (plan.kind === "replace") report.passwordsReplaced.push(plan.note);
        if (plan.kind === "keep") report.passwordsKept++;
        if (plan.kind === "not-set") report.passwordsNotSet++;
        report.updated++;
      } else report.skippedRows.push({ line: row.line, reason: `${EXISTS} (--on-conflict skip)` });
    }
    pending = [];
  };
  // A column (JSONL key) no field reads refuses the whole file, dry run and real run alike, whatever hook the caller
  // gave: checked here as well as by the CLI's checkHeader, so that no caller can import a file with its "Status"
  // dropped by leaving the hook out. The caller's hook runs first: its messages (no email column, a --map column
  // missing) name the likelier mistake.
  const ignored = resolveIgnored({ preset: rules.preset, ignore: rules.ignored });
  const onHeader = (header: string[]): void => {
    options.onHeader?.(header);
    checkColumns(header, rules.map, { preset: rules.preset, ignore: rules.ignored ?? [] });
  };
  // JSONL: each line names its own keys. Collected over the whole pass (first line of each, in line order) so that one
  // refusal names every key to map or ignore, not one per attempt; bounded, since a hostile file may hold a new key on
  // every line, and the refusal names only the first few anyway.
  const unreadKeys = new Map<string, number>();
  const MAX_UNREAD_KEYS = 1000;
  for await (const src of readRows(options.open(), { format: options.format, onHeader })) {
    report.rows++;
    options.onProgress?.(report.rows, "validate");
    // A row up to the cursor was dealt with by the interrupted run: it is neither reported nor checked against the
    // accounts again (it would meet itself), but it is still read into the duplicate maps exactly as that run read
    // it. Skipping it outright let a later row repeating a written one pass as new, and with --on-conflict update
    // overwrite it: a resumed run must end where the uninterrupted one does.
    const written = src.line <= doneThrough;
    if (written) report.alreadyImported++;
    if ("error" in src) {
      if (!written) markBad(src.line, src.error);
      continue;
    }
    if (src.columns !== undefined && unreadKeys.size < MAX_UNREAD_KEYS) {
      for (const key of unreadColumns(src.columns, rules.map, ignored)) if (!unreadKeys.has(key)) unreadKeys.set(key, src.line);
    }
    const verdict = validateRow(src.line, src.get, rules, deps.passwords, now);
    if (verdict.kind === "bad") {
      if (!written) markBad(verdict.line, verdict.reason);
    } else if (verdict.kind === "skip") {
      if (!written) skippedAtRead.push({ line: verdict.line, reason: verdict.reason });
    } else {
      const { row } = verdict;
      const dup = seenEmail.get(row.emailKey) ?? (row.usernameKey ? seenUsername.get(row.usernameKey) : undefined) ?? (row.user.externalId ? seenExternal.get(row.user.externalId) : undefined);
      if (dup !== undefined) {
        if (!written) markBad(row.line, `duplicate of line ${dup} (same email, username or external id)`);
        continue;
      }
      // Dated ahead of this import's clock by a legacy host's clock or time zone, and stored as this import's time: said in
      // the report (the dry run's too), so an operator who expected none looks at the export's clock.
      if (!written && row.clamped) report.timesClamped++;
      // Two rows that read alike (confusables.ts) would be two accounts no one can tell apart: the later one is refused
      // if it writes an identifier (a new account, a renamed username), judged in check() once the stored accounts are
      // known. Two rows that only update the accounts of a pair stored before the rule (disable both) are fine.
      const alike = seenEmailSkeleton.get(row.emailSkeleton) ?? (row.usernameSkeleton ? seenUsernameSkeleton.get(row.usernameSkeleton) : undefined);
      if (alike !== undefined) alikeOf.set(row.line, alike);
      seenEmail.set(row.emailKey, row.line);
      seenEmailSkeleton.set(row.emailSkeleton, row.line);
      if (row.usernameKey) seenUsername.set(row.usernameKey, row.line);
      if (row.usernameSkeleton) seenUsernameSkeleton.set(row.usernameSkeleton, row.line);
      if (row.user.externalId) seenExternal.set(row.user.externalId, row.line);
      if (written) continue;
      pending.push(row);
      if (pending.length >= options.batchSize) await check();
    }
  }
  if (unreadKeys.size > 0) {
    const first = unreadKeys.values().next().value;
    throw unreadColumnsError([...unreadKeys.keys()], rules.map, { has: `the file's lines have (first at line ${first})`, noun: "key" });
  }
  if (pending.length) await check();
  const byLine = (a: { line: number }, b: { line: number }): number => a.line - b.line;
  report.skippedRows = [...skippedAtRead, ...report.skippedRows].sort(byLine);
  report.skipped = report.skippedRows.length;
  report.failed = report.bad.length;
  report.bad.sort(byLine);
  const summary = (): Record<string, unknown> => ({
    source: rules.source, file: options.file, sha256, rows: report.rows, created: report.created, updated: report.updated, skipped: report.skipped, failed: report.failed, onConflict: options.onConflict,
    replacePasswords, passwordsReplaced: report.passwordsReplaced.length, passwordsKept: report.passwordsKept, passwordsNotSet: report.passwordsNotSet,
    signUpsRemoved: report.signUpsRemoved.length, timesClamped: report.timesClamped,
    ...(report.resumedAfterLine !== null ? { jobId: report.jobId, resumedAfterLine: report.resumedAfterLine, alreadyImported: report.alreadyImported } : {}),
  });

  if (options.dryRun) {
    await deps.audit.append({ type: "users.import.dry-run", actor: options.actor, data: summary() });
    return report;
  }
  if (report.bad.length > 0 && !options.skipBad) {
    const first = report.bad.slice(0, 5).map((b) => `line ${b.line}: ${b.reason}`).join("; ");
    throw new ImportRefusedError(`${report.bad.length} bad row(s), nothing imported (fix them, or pass --skip-bad to import the rest): ${first}`);
  }

  // Pass 2: write. Counts are recomputed from what each committed batch actually did.
  Object.assign(report, { created: 0, updated: 0, skipped: skippedAtRead.length, skippedRows: [...skippedAtRead], passwordsReplaced: [], passwordsKept: 0, passwordsNotSet: 0, signUpsRemoved: [] });
  const job = interrupted ?? (await deps.jobs.create<ImportSpec>({ kind: IMPORT_JOB_KIND, spec: { sha256, file: options.file, source: rules.source, settings }, total: report.rows, actor: options.actor }));
  report.jobId = job.id;
  if (interrupted) {
    await deps.audit.append({ type: "users.import.resumed", actor: options.actor, subject: job.id, data: { file: options.file, sha256, afterLine: doneThrough, alreadyImported: report.alreadyImported } });
  }
  let cursor = interrupted?.cursor ?? null;
  let batch: ImportRow[] = [];
  let read = 0;
  let rival = false;
  /** Another run of the same import owns the job now: this one stops, and leaves the job's status to it. */
  const overtaken = (): ImportRefusedError => {
    rival = true;
    return new ImportRefusedError(`another run of this import (job ${job.id}) wrote past line ${cursor ?? 0} meanwhile; it is left to finish`);
  };
  const flush = async (): Promise<void> => {
    const rows = batch;
    batch = [];
    const next = String(rows[rows.length - 1]!.line);
    const done = await deps.database.transaction(async (trx) => {
      // Batches of one job take turns (PostgreSQL: an advisory lock; SQLite: the write lock), and a run whose cursor
      // another run moved stops before writing anything (it would meet the other's rows as duplicates).
      await serialiseTransactions(deps.database, trx, lockKeyOf(`users-import:${job.id}`));
      if ((await deps.jobs.get(job.id, trx)).cursor !== cursor) throw overtaken();
      const result = await applyBatch(deps, trx, rows, { ...options, rules, replacePasswords }, { index: report.batches + 1, jobId: job.id });
      // Compare-and-set on the job's cursor, in the batch's transaction: a batch is written once, even by two
      // runs of the same file at the same time (the slower one stops here, its batch rolled back).
      const moved = await deps.jobs.commitBatch(trx, job.id, cursor, { cursor: next, processed: rows.length, counts: { created: result.created, updated: result.updated, skipped: result.skipped } });
      if (!moved) throw overtaken();
      return result;
    });
    cursor = next;
    report.created += done.created;
    report.updated += done.updated;
    report.skipped += done.skippedRows.length;
    report.skippedRows.push(...done.skippedRows);
    report.passwordsReplaced.push(...done.passwordsReplaced);
    report.passwordsKept += done.passwordsKept;
    report.passwordsNotSet += done.passwordsNotSet;
    report.signUpsRemoved.push(...done.signUpsRemoved);
    report.batches++;
  };
  try {
    for await (const src of readRows(options.open(), { format: options.format })) {
      options.onProgress?.(++read, "write");
      if (src.line <= doneThrough || "error" in src || badLines.has(src.line)) continue;
      const verdict = validateRow(src.line, src.get, rules, deps.passwords, now);
      if (verdict.kind !== "ok") continue;
      batch.push(verdict.row);
      if (batch.length >= options.batchSize) await flush();
    }
    if (batch.length) await flush();
  } catch (error) {
    // A refused batch ends this run; the job keeps its cursor, so the same file, fixed elsewhere or not, picks
    // up after the last batch written. A rival run owns the job: its status is the rival's to set.
    if (!rival) await deps.jobs.markFailed(job.id, String((error as Error).message).slice(0, 500));
    throw error;
  }
  report.skippedRows.sort(byLine);
  // The job's move to done and its users.import.completed commit together (as migrate-hashes' complete()): written
  // apart, a completion refused past the store's bound left the job done without its event, and the rerun its "try
  // again" asked for started a new job that met every row as an existing account. Refused now, the job stays
  // unfinished and the rerun resumes it to done. Of two runs reaching the end, only the one whose compare-and-set
  // ends the job records it.
  await deps.database.transaction(async (trx) => {
    // A resumed job a refused batch marked failed, with no row left to write, is made running again first (a batch
    // that writes nothing: the compare-and-set on its cursor and status refuses a job another run moved or ended).
    if (job.status === "failed") await deps.jobs.commitBatch(trx, job.id, cursor, { cursor, processed: 0, counts: {} });
    if (!(await deps.jobs.finishIfUnfinished(job.id, "done", trx))) return;
    await deps.audit.appendIn(trx, { type: "users.import.completed", actor: options.actor, subject: job.id, data: { ...summary(), batches: report.batches } });
  });
  return report;
}
