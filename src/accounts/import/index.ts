// Public API of bulk account import (CSV/JSONL, Drupal 7 preset, salted legacy layouts).
export { importUsers, MAX_BATCH } from "./importer.ts";
export type { ImportDeps, ImportOptions, ImportReport, OnConflict, RowNote } from "./importer.ts";
export { checkColumns, checkHeader, IMPORT_FIELDS, parseColumnList, parseFieldMap, resolveIgnored, resolveMap, unreadColumns, validateRow } from "./mapping.ts";
export type { FieldMap, ImportField, ImportRow, Preset, RowRules, RowVerdict } from "./mapping.ts";
export { parseCSV, DEFAULT_CSV_LIMITS } from "./csv.ts";
export type { CsvLimits, CsvRecord } from "./csv.ts";
export { readLines } from "./lines.ts";
export { readRows } from "./source.ts";
export type { ImportFormat, SourceRow } from "./source.ts";
export { ImportFormatError, ImportOptionError, ImportRefusedError } from "./errors.ts";
export { planPassword } from "./password-update.ts";
export type { PasswordNote, PasswordPlan } from "./password-update.ts";
export { parseJSONLine } from "./json-line.ts";
export { decodeUTF8, encodingProblem } from "./utf8.ts";
