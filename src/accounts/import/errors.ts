// Errors of bulk import, each with a stable code: a file Bulwark cannot read as declared, a bad
// option, or a run refused because validation found bad rows.
import { InputError, type BulwarkErrorOptions } from "../../lib/errors.ts";

/** The file is not well-formed CSV/JSONL at `line` (structure, not one row's content). */
export class ImportFormatError extends InputError {
  readonly line: number;
  constructor(line: number, message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_IMPORT_FORMAT", `line ${line}: ${message}`, options);
    this.line = line;
  }
}

/** An option or mapping that makes no sense (unknown field, missing email column, …). */
export class ImportOptionError extends InputError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_IMPORT_OPTION", message, options);
  }
}

/** A real run refused to start (bad rows without --skip-bad), or stopped on a conflict with --on-conflict fail. */
export class ImportRefusedError extends InputError {
  constructor(message: string, options: BulwarkErrorOptions = {}) {
    super("BULWARK_ERR_IMPORT_REFUSED", message, options);
  }
}

/**
 * Whether `error` is a unique-index violation from the store: PostgreSQL's SQLSTATE 23505, or node:sqlite's
 * extended codes SQLITE_CONSTRAINT_UNIQUE (2067) and SQLITE_CONSTRAINT_PRIMARYKEY (1555). By code, not by message:
 * "constraint" in a message also matches NOT NULL and CHECK failures, which are bugs, not duplicates.
 */
export function isUniqueViolation(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, errcode } = error as { code?: unknown; errcode?: unknown };
  return code === "23505" || errcode === 2067 || errcode === 1555;
}
