// Bulk import of accounts: a validation pass over the whole file (every bad row with its line and
// reason, duplicates in the file, conflicts with existing accounts), then, for a real run, a second
// pass that writes in batches, one transaction per batch, with the batch's audit event inside it.
// An update never undoes containment and never replaces a stored password unless told to, and then
// never with a weaker hash (password-update.ts). An update that disables an account or replaces its
// password ends the account's sessions, in the batch's transaction (`endUserSessions` in sessions/revocation.ts).
// A real run is a job keyed by the file's SHA-256: each batch advances the job's cursor (the last line it
// wrote) in its own transaction, so running the same import again after a crash resumes after that line
// instead of meeting its own rows as conflicts (it still reads them, so a later duplicate of one is refused).
import { createHash } from "node:crypto";
import type { Kysely } from "kysely";
import { RESUMABLE_STATUSES, type Job, type JobStore } from "../../jobs/job-store.ts";
import type { AuditLog } from "../../audit/audit-log.ts";
import type { Clock } from "../../lib/clock.ts";
import { lockKeyOf, serialiseTransactions, type Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { formatSaltedTemplate, type PasswordContext } from "../passwords/index.ts";
import { collidedKey, passwordChangedAtAfterChange, type UserStore } from "../users/user-store.ts";
import { spendEmailChangeLinks } from "../email-change/email-change-service.ts";
import { lockManyAccountsLinks } from "../password-reset/link-lock.ts";
import { spendResetLinks } from "../password-reset/reset-service.ts";
import { endUserSessions } from "../sessions/revocation.ts";
import { addressProblem, notifySecurityEvent, type Outbox } from "../../notify/index.ts";
import { ImportRefusedError, isUniqueViolation } from "./errors.ts";
import { validateRow, type FieldMap, type ImportRow, type Preset, type RowRules } from "./mapping.ts";
import { planPassword, type PasswordNote } from "./password-update.ts";
import { clash, lookup, renamesUsername, type OnConflict } from "./existing.ts";
import { readRows, type ImportFormat } from "./source.ts";

export type { OnConflict };

export interface ImportDeps {
  database: Database;
  users: UserStore;
  passwords: PasswordContext;
  audit: AuditLog;
  clock: Clock;
  jobs: JobStore;
  /**
   * Where a replaced password's "your password was changed" notice is queued (ASVS 6.3.7). The CLI passes the app's
   * outbox. Required, so no caller leaves owners untold by omission: null only for one that tells them another way.
   */
  notices: ImportNotices | null;
}

/** The outbox and the service's name as users know it, for the security notices of an import. */
export interface ImportNotices {
  outbox: Outbox;
  appName: string;
}

/** Appended (in the batch) for each account whose password an import replaced but whose address the outbox refuses. */
export const IMPORT_NOTICE_REFUSED = "users.import.notice.refused";

/** The kind of the job a real import runs as. */
export const IMPORT_JOB_KIND = "users-import";

/** What an import job records: which file (by content) it is writing, from which source, under which settings. */
export interface ImportSpec {
  sha256: string;
  file: string;
  source: string;
  /** Absent from jobs written before settings were recorded: their resumes are not checked against them. */
  settings?: ImportSettings;
}

/**
 * What decides what a row becomes, besides its source: a resumed run must use the same, or one file ends up imported
 * under two sets of rules (its first half skipping existing accounts, say, and the rest overwriting them).
 */
export interface ImportSettings {
  format: ImportFormat;
  /** The resolved field → column map (the preset's, then --map, then --salt-column). */
  map: FieldMap;
  preset: Preset | null;
  /** The salted-digest template, as --salted spells it. */
  salted: string | null;
  onConflict: OnConflict;
  replacePasswords: boolean;
}

export interface ImportOptions {
  format: ImportFormat;
  /** Opens the file afresh (a real run reads it twice: validate, then write). Bytes are read as UTF-8. */
  open: () => AsyncIterable<string | Uint8Array>;
  rules: RowRules;
  onHeader?: (header: string[]) => void;
  onConflict: OnConflict;
  /**
   * With onConflict "update": replace a stored password hash that differs from the file's, unless the
   * file's is weaker (then the row is bad). Without it an update leaves every stored password alone.
   */
  replacePasswords?: boolean;
  batchSize: number;
  dryRun: boolean;
  /** Write the good rows even though some rows are bad (they are counted as failed). */
  skipBad: boolean;
  actor: string;
  /** The file name, for audit events. */
  file: string;
  onProgress?: (rows: number, phase: "validate" | "write") => void;
}

export interface RowNote {
  line: number;
  reason: string;
}

export interface ImportReport {
  dryRun: boolean;
  source: string;
  /** Data rows read (header and blank lines excluded). */
  rows: number;
  /** On a dry run, what a real run would do; on a real run, what it did. */
  created: number;
  updated: number;
  skipped: number;
  failed: number;
  bad: RowNote[];
  skippedRows: RowNote[];
  /** Updated accounts whose stored password hash is (or, on a dry run, would be) replaced, by line. */
  passwordsReplaced: PasswordNote[];
  /** Updated accounts whose stored hash differs from the file's and was left alone (no replacePasswords). */
  passwordsKept: number;
  batches: number;
  /** The import job (real runs); set on a dry run too when it would resume one. */
  jobId: string | null;
  /** Resuming an interrupted import of the same file: its job wrote every row up to this line. */
  resumedAfterLine: number | null;
  /** Rows up to that line: dealt with by the interrupted run; read again only to find later duplicates of them. */
  alreadyImported: number;
}

/** Bounds a batch: large enough to amortise a transaction, small enough to hold one lock briefly. */
export const MAX_BATCH = 5000;

/**
 * Imports accounts from a CSV or JSONL file. A dry run writes nothing but one audit event. A real
 * run refuses to start when the validation pass finds bad rows, unless `skipBad`.
 *
 * @example
 * const report = await importUsers(deps, { format: "csv", open: () => createReadStream(path, "utf8"), rules, onConflict: "skip", batchSize: 500, dryRun: false, skipBad: false, actor: "cli:ops", file: "users.csv" });
 */
export async function importUsers(deps: ImportDeps, options: ImportOptions): Promise<ImportReport> {
  const sha256 = await fileDigest(options.open());
  const interrupted = await interruptedJob(deps.jobs, sha256);
  const rules = rulesOfResume(options.rules, interrupted);
  const settings = settingsOf(options);
  assertSameSettings(settings, interrupted);
  const report: ImportReport = {
    dryRun: options.dryRun, source: rules.source, rows: 0, created: 0, updated: 0, skipped: 0, failed: 0, bad: [], skippedRows: [], passwordsReplaced: [], passwordsKept: 0, batches: 0,
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
      else if (!existing) report.created++;
      else if (options.onConflict === "update") {
        const plan = planPassword(row, existing.passwordHash, { replacePasswords }, deps.passwords);
        if (plan.kind === "refuse") {
          markBad(row.line, plan.reason);
          continue;
        }
        if (plan.kind === "replace") report.passwordsReplaced.push(plan.note);
        if (plan.kind === "keep") report.passwordsKept++;
        report.updated++;
      } else report.skipped++;
    }
    pending = [];
  };
  for await (const src of readRows(options.open(), { format: options.format, ...(options.onHeader ? { onHeader: options.onHeader } : {}) })) {
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
    const verdict = validateRow(src.line, src.get, rules, deps.passwords);
    if (verdict.kind === "bad") {
      if (!written) markBad(verdict.line, verdict.reason);
    } else if (verdict.kind === "skip") {
      if (!written) report.skippedRows.push({ line: verdict.line, reason: verdict.reason });
    } else {
      const { row } = verdict;
      const dup = seenEmail.get(row.emailKey) ?? (row.usernameKey ? seenUsername.get(row.usernameKey) : undefined) ?? (row.user.externalId ? seenExternal.get(row.user.externalId) : undefined);
      if (dup !== undefined) {
        if (!written) markBad(row.line, `duplicate of line ${dup} (same email, username or external id)`);
        continue;
      }
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
  if (pending.length) await check();
  report.skipped += report.skippedRows.length;
  report.failed = report.bad.length;
  report.bad.sort((a, b) => a.line - b.line);
  const summary = (): Record<string, unknown> => ({
    source: rules.source, file: options.file, sha256, rows: report.rows, created: report.created, updated: report.updated, skipped: report.skipped, failed: report.failed, onConflict: options.onConflict,
    replacePasswords, passwordsReplaced: report.passwordsReplaced.length, passwordsKept: report.passwordsKept,
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
  Object.assign(report, { created: 0, updated: 0, skipped: report.skippedRows.length, passwordsReplaced: [], passwordsKept: 0 });
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
    report.skipped += done.skipped;
    report.passwordsReplaced.push(...done.passwordsReplaced);
    report.passwordsKept += done.passwordsKept;
    report.batches++;
  };
  try {
    for await (const src of readRows(options.open(), { format: options.format })) {
      options.onProgress?.(++read, "write");
      if (src.line <= doneThrough || "error" in src || badLines.has(src.line)) continue;
      const verdict = validateRow(src.line, src.get, rules, deps.passwords);
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
  await deps.jobs.finishIfUnfinished(job.id, "done");
  await deps.audit.append({ type: "users.import.completed", actor: options.actor, subject: job.id, data: { ...summary(), batches: report.batches } });
  return report;
}

/** SHA-256 of the file's bytes, read once more (text chunks as UTF-8): what makes a re-run "the same import". */
async function fileDigest(chunks: AsyncIterable<string | Uint8Array>): Promise<string> {
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
function rulesOfResume(rules: RowRules, job: Job<ImportSpec> | null): RowRules {
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

function settingsOf(options: ImportOptions): ImportSettings {
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
function assertSameSettings(settings: ImportSettings, job: Job<ImportSpec> | null): void {
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
async function interruptedJob(jobs: JobStore, sha256: string): Promise<Job<ImportSpec> | null> {
  const open = await jobs.list({ kind: IMPORT_JOB_KIND, status: [...RESUMABLE_STATUSES], limit: 500 });
  return (open.find((j) => (j.spec as Partial<ImportSpec>).sha256 === sha256) as Job<ImportSpec> | undefined) ?? null;
}

interface BatchResult {
  created: number;
  updated: number;
  skipped: number;
  passwordsReplaced: PasswordNote[];
  passwordsKept: number;
}

async function applyBatch(deps: ImportDeps, trx: Kysely<Schema>, rows: ImportRow[], options: ImportOptions, batch: { index: number; jobId: string }): Promise<BatchResult> {
  const { index } = batch;
  const found = await lookup(trx, rows);
  // The accounts this batch may update write their links last (a replaced password spends them): their link locks
  // come first, so a reset or email confirmation of one of them (link lock → token → account) cannot deadlock it.
  if (options.onConflict === "update") await lockManyAccountsLinks(deps.database.dialect, trx, [...found.byEmail.values()].map((e) => e.id));
  let created = 0;
  let updated = 0;
  let skipped = 0;
  const passwordsReplaced: PasswordNote[] = [];
  let passwordsKept = 0;
  const refuse = (line: number, why: string, cause?: unknown): never => {
    throw new ImportRefusedError(`line ${line}: ${why}; batch ${index} was rolled back, earlier batches stay imported`, cause === undefined ? {} : { cause });
  };
  /** Runs one row's write; the store's unique index refusing it is the row's refusal, not an internal error. */
  const write = async <T>(line: number, statement: () => Promise<T>): Promise<T> => {
    try {
      return await statement();
    } catch (error) {
      // Validation and clash() found no account holding the row's keys, yet the database's unique index does: it
      // compares differently than the importer (as SQLite did lone surrogates, stored as U+FFFD) or another writer
      // committed after this batch's lookup. Either way the row cannot be written as validated.
      if (isUniqueViolation(error)) {
        const collided = collidedKey(error);
        if (collided === "email-skeleton" || collided === "username-skeleton") refuse(line, `its ${collided === "email-skeleton" ? "email" : "username"} reads like that of a stored account (the same letters in another script)`, error);
        refuse(line, `the database refused it as a duplicate of a stored account (${(error as Error).message.slice(0, 120)})`, error);
      }
      throw error;
    }
  };
  let accountsSignedOut = 0;
  let noticesQueued = 0;
  let noticesRefused = 0;
  const now = deps.clock.now();
  for (const row of rows) {
    // Accounts may have changed since validation (another import, a sign-up): re-check inside the transaction.
    const why = clash(row, found, options.onConflict);
    if (why) refuse(row.line, why);
    const existing = found.byEmail.get(row.emailKey);
    if (!existing) {
      await write(row.line, () => trx.insertInto("users").values(deps.users.prepare(row.user)).execute());
      created++;
      continue;
    }
    if (options.onConflict === "skip") {
      skipped++;
      continue;
    }
    // An update touches only what the file supplied and is not empty. It never touches containment
    // state (password_invalidated_at, locked_at, password_must_change: a re-import must not undo an
    // incident response) and replaces a password only as planned (password-update.ts).
    const plan = planPassword(row, existing.passwordHash, { replacePasswords: options.replacePasswords === true }, deps.passwords);
    // The stored hash changed since validation (migrate-hashes wrapped it, a login rehashed it).
    if (plan.kind === "refuse") refuse(row.line, plan.reason);
    const u = row.user;
    const has = (f: Parameters<typeof row.supplied.has>[0]): boolean => row.supplied.has(f);
    let q = trx
      .updateTable("users")
      .set({
        updated_at: now,
        ...(has("username") && u.username ? { username: u.username, username_key: row.usernameKey } : {}),
        // Under a new skeleton only (checked by clash): an account marked as a look-alike keeps its mark while its
        // username reads the same, and the unique index judges a rename like any new username.
        ...(has("username") && u.username && renamesUsername(row, existing, options.onConflict) ? { username_skeleton: row.usernameSkeleton, username_lookalike: 0 } : {}),
        ...(has("display_name") && u.displayName ? { display_name: u.displayName } : {}),
        ...(has("status") && u.status ? { status: u.status } : {}),
        // The replaced password is no longer an administrator's initial one: its expiry goes with it (ASVS 6.4.1).
        ...(plan.kind === "replace" ? { password_hash: u.passwordHash, password_scheme: u.passwordScheme, password_changed_at: passwordChangedAtAfterChange(now), password_initial_expires_at: null } : {}),
        ...(u.lastLoginAt ? { last_login_at: u.lastLoginAt } : {}),
        ...(u.externalId ? { external_source: u.externalSource ?? null, external_id: u.externalId } : {}),
      })
      .where("id", "=", existing.id);
    // Compare-and-set: the replacement was judged against this stored hash (PostgreSQL reads take no row lock).
    if (plan.kind === "replace") {
      const was = existing.passwordHash;
      q = was === null ? q.where("password_hash", "is", null) : q.where("password_hash", "=", was);
    }
    const result = await write(row.line, () => q.executeTakeFirst());
    if (Number(result.numUpdatedRows) !== 1) refuse(row.line, "the stored password hash changed while the batch was written");
    // Disabling an account ends its sessions (ASVS 7.4.2), and so does replacing its password (ASVS 7.4.3): a session
    // stolen before either must neither outlive the password nor come back when a later import enables the account.
    // Also when the account was disabled already: one an import disabled before this rule still has its sessions.
    if ((has("status") && u.status === "disabled") || plan.kind === "replace") {
      await endUserSessions(trx, existing.id, deps.clock.now());
      accountsSignedOut++;
    }
    // A new password spends the pending reset and email-change links, as a change through the service does: a link
    // asked for before it (perhaps by whoever held the old password) must not undo it or move the account away.
    if (plan.kind === "replace") {
      await spendResetLinks(trx, existing.id, deps.clock.now());
      await spendEmailChangeLinks(trx, existing.id, deps.clock.now());
    }
    // The owner is told, as a change through the password route tells them (ASVS 6.3.7): an import that sets a
    // password someone else knows must not go unnoticed. Queued in the batch's transaction, so the notice exists if
    // and only if the password was replaced; keyed by the job, the line and the account, so a resumed import that
    // meets this row again (it cannot: the batch committed with its notice) would still queue it only once.
    if (plan.kind === "replace" && deps.notices) {
      const owner = await trx.selectFrom("users").select("email").where("id", "=", existing.id).executeTakeFirstOrThrow();
      // The outbox's own rule, checked first: its refusal thrown here would roll the batch back at every resume.
      const problem = addressProblem(owner.email);
      if (problem !== null) {
        noticesRefused++;
        await deps.audit.appendIn(trx, { type: IMPORT_NOTICE_REFUSED, actor: options.actor, subject: existing.id, data: { notice: "password-changed", line: row.line, job: batch.jobId, reason: problem } });
      } else {
        const notice = { eventId: `${batch.jobId}.${row.line}.${existing.id}`, to: owner.email, at: now, event: { type: "password-changed" as const } };
        await notifySecurityEvent(deps.notices.outbox, notice, { appName: deps.notices.appName, executor: trx });
        noticesQueued++;
      }
    }
    if (plan.kind === "replace") passwordsReplaced.push(plan.note);
    if (plan.kind === "keep") passwordsKept++;
    updated++;
  }
  const first = rows[0]?.line ?? 0;
  const last = rows[rows.length - 1]?.line ?? 0;
  await deps.audit.appendIn(trx, {
    type: "users.import.batch", actor: options.actor,
    data: { source: options.rules.source, file: options.file, batch: index, lines: `${first}-${last}`, created, updated, skipped, passwordsReplaced: passwordsReplaced.length, accountsSignedOut,
      ...(deps.notices ? { noticesQueued, noticesRefused } : {}) },
  });
  return { created, updated, skipped, passwordsReplaced, passwordsKept };
}
