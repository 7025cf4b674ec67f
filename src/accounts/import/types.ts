// The shapes of a bulk import: what it needs (ImportDeps), what it is told (ImportOptions), what its job records
// (ImportSpec, ImportSettings) and what it reports (ImportReport).
import type { AuditLog } from "../../audit/audit-log.ts";
import type { JobStore } from "../../jobs/job-store.ts";
import type { Clock } from "../../lib/clock.ts";
import type { Outbox } from "../../notify/index.ts";
import type { Database } from "../../store/database.ts";
import type { PasswordContext } from "../passwords/index.ts";
import type { UserStore } from "../users/user-store.ts";
import type { OnConflict } from "./existing.ts";
import type { FieldMap, Preset, RowRules } from "./mapping.ts";
import type { PasswordNote } from "./password-update.ts";
import type { ImportFormat } from "./source.ts";

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

/** An unfinished sign-up an import removed for a row's account (its `user.sign-up-removed` event names the account). */
export interface SignUpRemoved {
  line: number;
  /** The sign-up's account id. */
  id: string;
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
  /** Updated accounts holding no password whose row supplies one, not set (no replacePasswords): none was "kept". */
  passwordsNotSet: number;
  /**
   * Unfinished sign-ups (POST /auth/register, never finished) that held a row's address, removed (on a dry run: to be
   * removed) for the row's new account, by line: the sign-up's id.
   */
  signUpsRemoved: SignUpRemoved[];
  /**
   * Rows whose created_at or last_login_at was dated ahead of the import's clock (by less than a day: a legacy host's
   * clock running fast, a local-time export read as UTC) and is stored as the import's time.
   */
  timesClamped: number;
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
