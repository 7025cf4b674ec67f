// Turns one source row (CSV columns by header name, or JSONL keys) into a validated account, or a
// reason why it is a bad row. Column mappings, the Drupal 7 preset, and the field value rules live here.
import { escapeControls, excerpt } from "../../lib/terminal.ts";
import { impossibleDate } from "../../lib/calendar.ts";
import { InputError, isBulwarkError } from "../../lib/errors.ts";
import type { PasswordContext, SaltedTemplate } from "../passwords/index.ts";
import { saltedFromTemplate } from "../passwords/index.ts";
import { displayNameProblem, identifierKey, validateEmail, validateUsername } from "../users/normalise.ts";
import { confusableSkeleton } from "../users/confusables.ts";
import type { NewUser, UserStatus } from "../users/user-store.ts";
import { ImportOptionError } from "./errors.ts";

export const IMPORT_FIELDS = ["email", "username", "display_name", "password_hash", "status", "created_at", "last_login_at", "external_id"] as const;
export type ImportField = (typeof IMPORT_FIELDS)[number];

/** Which source column feeds which field; `salt` is the column of a declared salted layout. */
export type FieldMap = Partial<Record<ImportField | "salt", string>>;

export type Preset = "drupal7";

export interface RowRules {
  map: FieldMap;
  preset: Preset | null;
  /** Stored as the external source of every imported account that has an external id. */
  source: string;
  salted: SaltedTemplate | null;
  /**
   * Columns (JSONL keys) the file may carry that no field reads (--ignore-columns); the preset's known extras are
   * added to them wherever they are checked (resolveIgnored). Any other column no field reads refuses the import.
   */
  ignored?: readonly string[];
}

/** A valid row, ready for the user store. */
export interface ImportRow {
  line: number;
  emailKey: string;
  usernameKey: string | null;
  /** Confusable skeletons of the email and username (confusables.ts): a row that reads like another account is refused. */
  emailSkeleton: string;
  usernameSkeleton: string | null;
  user: NewUser & { passwordHash: string | null; passwordScheme: string | null };
  /** Fields the file supplied with a value that is not empty or blank (an update touches only these). */
  supplied: Set<ImportField>;
  /** A created_at or last_login_at dated ahead of the import's clock (within a day) was stored as the import's time. */
  clamped: boolean;
}

export type RowVerdict = { kind: "ok"; row: ImportRow } | { kind: "bad"; line: number; reason: string } | { kind: "skip"; line: number; reason: string };

// Drupal 7's users table, as `SELECT * FROM users` exports it.
const DRUPAL7_MAP: FieldMap = {
  external_id: "uid", username: "name", password_hash: "pass", email: "mail", status: "status", created_at: "created", last_login_at: "login",
};

// The other columns of that table: not account fields Bulwark keeps (theme, signature, profile picture, the address
// the account registered with, serialised PHP settings), so the preset reads past them by name. `access` is the last
// page view, not a sign-in: last_login_at comes from `login`.
const DRUPAL7_IGNORED = ["theme", "signature", "signature_format", "access", "timezone", "language", "picture", "init", "data"];

// Unread columns named in a refusal: enough to see the pattern of a foreign export, few enough to read.
const UNREAD_SHOWN = 20;

const MAX_DISPLAY_NAME = 256;
const MAX_EXTERNAL_ID = 128;
// Timestamps outside 1970..9999 are typos or hostile values, never real sign-ups.
const MAX_TIME_MS = Date.UTC(9999, 11, 31);
// How far ahead of the import's clock a sign-up or sign-in may be dated and still be a genuine row: the legacy host's
// clock wrote these times, not ours, and a host without NTP runs minutes fast; a local-time export read as UTC (the
// documented reading) is up to 14 hours ahead east of Greenwich. A day covers both. Such a time is stored as the import's
// own (clamped: no stored time lies ahead of the clock that stored it, so demote-inactive-admins counts from no later than
// the import) and counted in the report; refusing it refused a genuine export whole for the host's five minutes of
// drift. Anything later is a time no sign-in has had yet: a last login in 2100 kept an administrator out of
// demote-inactive-admins forever, and is refused.
const FOREIGN_CLOCK_AHEAD_MS = 24 * 3_600_000;

/**
 * Parses `--map email=mail,username=name`. Throws ImportOptionError naming an unknown field.
 *
 * @example
 * parseFieldMap("email=mail,password_hash=pass") // { email: "mail", password_hash: "pass" }
 */
export function parseFieldMap(text: string | undefined): FieldMap {
  const map: FieldMap = {};
  if (!text) return map;
  for (const part of text.split(",")) {
    const eq = part.indexOf("=");
    const field = part.slice(0, eq).trim();
    const column = part.slice(eq + 1).trim();
    if (eq < 1 || column === "") throw new ImportOptionError(`--map entry "${part.slice(0, 80)}" is not FIELD=COLUMN`);
    if (!(IMPORT_FIELDS as readonly string[]).includes(field)) {
      throw new ImportOptionError(`--map names an unknown field "${field.slice(0, 40)}"; fields are ${IMPORT_FIELDS.join(", ")}`);
    }
    // Which of two columns feeds the field would be a guess (the last one, silently): refused, as a header naming a column twice is.
    if (Object.hasOwn(map, field)) throw new ImportOptionError(`--map names the field "${field}" twice (${map[field as ImportField]} and ${column.slice(0, 40)}); give it once`);
    map[field as ImportField] = column;
  }
  return map;
}

/** The effective mapping: identity (column named like the field), then the preset, then --map. */
export function resolveMap(options: { preset: Preset | null; map: FieldMap; saltColumn?: string | undefined }): FieldMap {
  const base: FieldMap = Object.fromEntries(IMPORT_FIELDS.map((f) => [f, f]));
  const map: FieldMap = { ...base, ...(options.preset === "drupal7" ? DRUPAL7_MAP : {}), ...options.map };
  if (options.saltColumn) map.salt = options.saltColumn;
  return map;
}

/**
 * Parses `--ignore-columns theme,notes`: columns the file carries that no field is meant to read.
 *
 * @example
 * parseColumnList("theme, notes") // ["theme", "notes"]
 */
export function parseColumnList(text: string | undefined): string[] {
  if (text === undefined) return [];
  const columns = text.split(",").map((c) => c.trim());
  if (columns.some((c) => c === "")) throw new ImportOptionError(`--ignore-columns "${text.slice(0, 80)}" has an empty name; give COLUMN,COLUMN`);
  return columns;
}

/** The columns a run may leave unread: the preset's known extras, then --ignore-columns. */
export function resolveIgnored(options: { preset?: Preset | null | undefined; ignore?: readonly string[] | undefined }): string[] {
  return [...new Set([...(options.preset === "drupal7" ? DRUPAL7_IGNORED : []), ...(options.ignore ?? [])])];
}

/**
 * The columns (or JSONL keys) of `columns` that no field reads and that are not ignored. Unnamed CSV columns (a
 * trailing comma, as spreadsheets write) are not listed: they have no name a field could have been meant by.
 */
export function unreadColumns(columns: Iterable<string>, map: FieldMap, ignored: readonly string[] = []): string[] {
  const read = new Set<string>([...Object.values(map), ...ignored]);
  return [...new Set(columns)].filter((c) => c !== "" && !read.has(c));
}

/**
 * The refusal of a file with columns no field reads, naming them and how to read or leave each one. A column no field
 * takes was dropped silently before: an export's "Status" (blocked at the source) imported the account active, its
 * "password" imported it without a hash, and a dry run reported the file as clean (ASVS 2.2.1: input is checked
 * against what is expected, and refused, not guessed at).
 */
export function unreadColumnsError(unread: readonly string[], map: FieldMap, where: { has: string; noun: "column" | "key" }): ImportOptionError {
  const shown = unread.slice(0, UNREAD_SHOWN).map((c) => JSON.stringify(escapeControls(c.slice(0, 60))));
  const more = unread.length > UNREAD_SHOWN ? ` and ${unread.length - UNREAD_SHOWN} more` : "";
  const fields = IMPORT_FIELDS.map((f) => `${f}${map[f] !== undefined && map[f] !== f ? ` (column "${escapeControls(map[f].slice(0, 60))}")` : ""}`).join(", ");
  // A column spelled like a field but for its case ("Status") is most likely that field: the one suggestion made.
  const likely = unread.flatMap((c) => IMPORT_FIELDS.filter((f) => f === c.trim().toLowerCase()).map((f) => `${f}=${escapeControls(c.slice(0, 60))}`));
  const mapHint = likely.length > 0 ? `--map ${likely.slice(0, 3).join(",")}` : "--map FIELD=COLUMN";
  return new ImportOptionError(
    `${where.has} ${unread.length > 1 ? `${where.noun}s` : `the ${where.noun}`} ${shown.join(", ")}${more} that no field reads: nothing was imported. ` +
      `Columns are read by their exact name (case matters): ${fields}${map.salt !== undefined ? `, and the salt column "${escapeControls(map.salt.slice(0, 60))}"` : ""}. ` +
      `Read a column into a field with ${mapHint}, or leave it out knowingly with --ignore-columns ${unread.slice(0, 3).map((c) => escapeControls(c.slice(0, 60))).join(",")}`,
  );
}

/** Refuses a CSV header with a column no field reads and not ignored (the preset's extras, then `ignore`). */
export function checkColumns(columns: readonly string[], map: FieldMap, options: { preset?: Preset | null; ignore?: readonly string[] } = {}): void {
  const unread = unreadColumns(columns, map, resolveIgnored(options));
  if (unread.length > 0) throw unreadColumnsError(unread, map, { has: "the header has", noun: "column" });
}

/**
 * Checks a CSV header against the mapping: the email column must exist, and so must --map'ed or salt columns; and every
 * named column must be read by a field, or be ignored (the preset's extras, --ignore-columns).
 *
 * @example
 * checkHeader(["mail", "pass", "theme"], resolveMap({ preset: "drupal7", map: {} }), {}, { preset: "drupal7" }) // passes
 */
export function checkHeader(header: readonly string[], map: FieldMap, explicit: FieldMap, options: { preset?: Preset | null; ignore?: readonly string[] } = {}): void {
  const have = new Set(header);
  if (!have.has(map.email!)) throw new ImportOptionError(`the header has no "${map.email}" column for email (use --map email=COLUMN)`);
  for (const [field, column] of Object.entries(explicit)) {
    if (!have.has(column)) throw new ImportOptionError(`--map ${field}=${column}: the header has no "${column}" column`);
  }
  if (map.salt && !have.has(map.salt)) throw new ImportOptionError(`--salt-column ${map.salt}: the header has no such column`);
  checkColumns(header, map, options);
}

const ISO_DATE = /^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?$/;

/**
 * An ISO-8601 date (and time) naming a real day and clock time; Date.parse alone would move 2023-02-30 to 2 March.
 * A date and time without an offset is UTC, as a bare date is: Date.parse reads it in the importing machine's time
 * zone, so one file gave a different stored time on every machine (hours apart, and off by one around DST changes).
 */
function parseISODate(text: string, match: RegExpExecArray, field: string): number {
  const why = impossibleDate(text);
  const [, time, , , offset] = match;
  const iso = text.replace(" ", "T") + (time !== undefined && offset === undefined ? "Z" : "");
  const ms = why === null ? Date.parse(iso) : NaN;
  if (Number.isNaN(ms)) throw new InputError("BULWARK_ERR_IMPORT_ROW", `${field} "${text.slice(0, 40)}" is not a real date${why === null ? " and time" : `: ${why}`}`);
  return ms;
}

/**
 * A created_at or last_login_at cell as epoch milliseconds, or null for "never" (empty, 0), and whether it was dated
 * ahead of `now` (the import's clock) and so stored as `now`. Refuses (a bad row) a time before 1970, past year 9999, or
 * later than `now` plus FOREIGN_CLOCK_AHEAD_MS.
 */
function parseTime(text: string, field: string, preset: Preset | null, now: number): { ms: number | null; clamped: boolean } {
  if (text === "" || text === "0") return { ms: null, clamped: false }; // Drupal writes 0 for "never logged in"
  let ms: number;
  const iso = preset === null ? ISO_DATE.exec(text) : null;
  if (/^[0-9]{1,12}$/.test(text)) ms = Number(text) * 1000; // unix seconds (Drupal, most SQL exports)
  else if (iso !== null) ms = parseISODate(text, iso, field);
  else throw new InputError("BULWARK_ERR_IMPORT_ROW", `${field} "${text.slice(0, 40)}" is neither unix seconds nor an ISO-8601 date`);
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_TIME_MS) throw new InputError("BULWARK_ERR_IMPORT_ROW", `${field} "${text.slice(0, 40)}" is out of range`);
  // A tampered or broken row: no sign-in has had that time yet, and no clock or time zone explains it (ASVS 2.2.3).
  if (ms > now + FOREIGN_CLOCK_AHEAD_MS) {
    throw new InputError("BULWARK_ERR_IMPORT_ROW", `${field} "${text.slice(0, 40)}" (${new Date(ms).toISOString()}) is in the future, more than a day after this import's clock (${new Date(now).toISOString()})`);
  }
  return ms > now ? { ms: now, clamped: true } : { ms, clamped: false };
}

function parseStatus(text: string): UserStatus {
  switch (text.trim().toLowerCase()) {
    case "1": case "active": case "true": case "enabled":
      return "active";
    case "0": case "disabled": case "false": case "blocked": case "inactive":
      return "disabled";
    default:
      throw new InputError("BULWARK_ERR_IMPORT_ROW", `status "${text.slice(0, 40)}" is not one of active, disabled, 1, 0`);
  }
}

/**
 * Validates one row. The password hash is identified and bounds-checked by the password context, so
 * an unsupported or hostile hash (cost 31 bcrypt, 64 GiB argon2) is a bad row, never a stored one. `now` is the
 * import's clock (read once per run, so both passes judge a row alike): a created_at or last_login_at after it is stored as it (within a day) or bad.
 *
 * @example
 * validateRow(7, (name) => record[name], rules, passwords, clock.now()) // { kind: "ok", row } | { kind: "bad", line: 7, reason }
 */
export function validateRow(line: number, get: (column: string) => string | undefined, rules: RowRules, passwords: PasswordContext, now: number): RowVerdict {
  const { map } = rules;
  const supplied = new Set<ImportField>();
  // The hash and its salt are read without their refusal quoting them: a hash column that lost its quotes in a JSONL
  // export holds a number (an MD5 such as 0e462097431906509019562988736854), and "holds the number …" printed it
  // whole in the dry run, its --json and the refusal on stderr (ASVS 16.2.5). Other columns keep the quote: it helps.
  const secret = (column: string): string | undefined => {
    try {
      return get(column);
    } catch (error) {
      if (isBulwarkError(error) && error.code === "BULWARK_ERR_IMPORT_ROW") {
        throw new InputError("BULWARK_ERR_IMPORT_ROW", `"${column.slice(0, 40)}" holds a number, an object or an array, not text (not shown: it is a password column; quote the value)`);
      }
      throw error;
    }
  };
  const value = (field: ImportField): string | undefined => {
    const column = map[field];
    const v = column === undefined ? undefined : field === "password_hash" ? secret(column) : get(column);
    // An empty cell supplies nothing: a file with a status column left blank must not re-activate a disabled
    // account on --on-conflict update (it did: "" read as "active"), nor clear any other field.
    if (v !== undefined && v.trim() !== "") supplied.add(field);
    return v;
  };
  try {
    const externalId = value("external_id")?.trim() || null;
    // Drupal's uid 0 is the anonymous user: a placeholder row, never an account.
    if (rules.preset === "drupal7" && externalId === "0") return { kind: "skip", line, reason: "uid 0 is Drupal's anonymous user" };
    if (externalId !== null && externalId.length > MAX_EXTERNAL_ID) throw new InputError("BULWARK_ERR_IMPORT_ROW", `external id is longer than ${MAX_EXTERNAL_ID} characters`);
    // A NUL is text SQLite stores and PostgreSQL refuses (the whole import failed there, dry run included, with a
    // raw database error); no legacy id needs a control, bidirectional or invisible character, and the id is shown to operators.
    if (externalId !== null && escapeControls(externalId) !== externalId) throw new InputError("BULWARK_ERR_IMPORT_ROW", `external id "${escapeControls(externalId.slice(0, 40))}" has control, bidirectional or invisible characters`);
    const email = validateEmail(value("email") ?? "");
    const usernameText = value("username")?.trim();
    const username = usernameText ? validateUsername(usernameText) : null;
    const displayName = value("display_name")?.trim() || null;
    if (displayName !== null && displayName.length > MAX_DISPLAY_NAME) {
      throw new InputError("BULWARK_ERR_IMPORT_ROW", `display_name is longer than ${MAX_DISPLAY_NAME} characters`);
    }
    // The store's rule for the field (displayNameProblem), as at POST /api/v1/users: controls, unpaired surrogates and
    // the bidirectional overrides and isolates ("Ana \u202eexe.gpj" shows as "Ana jpg.exe" on an administrator's
    // screen; \p{Cc} alone let the overrides through), and a leading combining mark, which would draw on whatever is
    // shown before the name.
    const nameProblem = displayName === null ? null : displayNameProblem(displayName);
    if (displayName !== null && nameProblem !== null) throw new InputError("BULWARK_ERR_IMPORT_ROW", `display_name "${excerpt(displayName)}" ${nameProblem}`);
    const statusText = value("status")?.trim() ?? "";
    // "active" is the default of a new account only; supplied (non-empty) is what an update may change.
    const status = statusText === "" ? "active" : parseStatus(statusText);
    const created = parseTime(value("created_at")?.trim() ?? "", "created_at", rules.preset, now);
    const lastLogin = parseTime(value("last_login_at")?.trim() ?? "", "last_login_at", rules.preset, now);
    const createdAt = created.ms;
    const lastLoginAt = lastLogin.ms;
    let hash = value("password_hash")?.trim() || null;
    let scheme: string | null = null;
    if (hash !== null) {
      if (rules.salted) {
        const salt = map.salt === undefined ? undefined : secret(map.salt);
        if (salt === undefined || salt === "") throw new InputError("BULWARK_ERR_IMPORT_ROW", `no salt in column "${map.salt}" for the salted layout`);
        hash = saltedFromTemplate(rules.salted, salt, hash, passwords.limits);
      }
      scheme = passwords.identify(hash);
    }
    return {
      kind: "ok",
      row: {
        line,
        emailKey: identifierKey(email),
        usernameKey: username ? identifierKey(username) : null,
        emailSkeleton: confusableSkeleton(email),
        usernameSkeleton: username ? confusableSkeleton(username) : null,
        supplied,
        clamped: created.clamped || lastLogin.clamped,
        user: {
          email, username, displayName, status, passwordHash: hash, passwordScheme: scheme,
          ...(createdAt !== null ? { createdAt } : {}), lastLoginAt,
          externalSource: externalId !== null ? rules.source : null, externalId,
        },
      },
    };
  } catch (error) {
    // Account and hash validation errors are input errors: the row is bad, the import goes on.
    if (isBulwarkError(error) && error.kind === "input") return { kind: "bad", line, reason: error.message };
    throw error;
  }
}
