// Which users a containment job acts on: every criterion narrows the set (AND). Resolved once, when the job
// is created, into contain_job_users, so a resumed job acts on exactly the same users.
import { sql, type Expression, type Kysely, type SelectQueryBuilder, type SqlBool } from "kysely";
import { identifierKey } from "../accounts/users/normalise.ts";
import { SCHEME_IDS } from "../accounts/passwords/scheme.ts";
import { WRAP_PREFIX } from "../accounts/passwords/wrap.ts";
import type { DialectName } from "../store/database.ts";
import { containErrors } from "./errors.ts";
import type { Schema } from "../store/schema.ts";

export interface ScopeSpec {
  /** Every user. Never implied: a scope with no criterion is refused. */
  all?: boolean;
  /** Users holding at least one of these roles. */
  roles?: string[];
  /** User ids or email addresses (case-insensitive). */
  ids?: string[];
  createdBefore?: number;
  createdAfter?: number;
  lastLoginBefore?: number;
  lastLoginAfter?: number;
  /**
   * The window of exposure: users active between these times — a session in use during the window (created
   * before its end, last seen after its start), or a login inside it (sessions are deleted when they expire or
   * are revoked; the login time outlives them). Either bound may be open.
   */
  activeFrom?: number;
  activeTo?: number;
  /** Stored password hash scheme id (e.g. "md5", "phpass"). */
  scheme?: string;
}

// An --ids file bigger than this is almost certainly the wrong file; the bound keeps job specs and memory sane.
export const MAX_SCOPE_IDS = 5_000_000;

/**
 * Why `entry` cannot be an --ids entry, or null. A user id or email never holds a NUL or an unpaired surrogate, and
 * PostgreSQL cannot hold them as text: the list travels as one JSON parameter, and json_array_elements_text refuses
 * the escape (22P05, 22P02), failing the statement with a raw database error (CLI exit 3, API 500) where SQLite
 * matched nobody. Refused as input first, on both dialects alike.
 */
export function idsEntryProblem(entry: string): string | null {
  if (entry.includes("\u0000")) return "contains a NUL character";
  if (!entry.isWellFormed()) return "contains an unpaired surrogate (not valid Unicode text)";
  return null;
}

/** Throws a clear input error when the scope is empty or inconsistent, or an --ids entry is not text (NUL, unpaired surrogate). */
export function validateScope(spec: ScopeSpec): void {
  // Before the "no scope" check, which does not count an empty list: an empty --ids file is its own mistake.
  if (spec.ids !== undefined && spec.ids.length === 0) throw containErrors.badScope("--ids file lists no user ids or emails (only blank lines or # comments)");
  const criteria = Object.entries(spec).filter(([k, v]) => k !== "all" && v !== undefined && !(Array.isArray(v) && v.length === 0));
  if (!spec.all && criteria.length === 0) throw containErrors.noScope();
  if (spec.all && criteria.length > 0) throw containErrors.badScope(`--all cannot be combined with other scope options (${criteria.map(([k]) => k).join(", ")})`);
  if (spec.ids && spec.ids.length > MAX_SCOPE_IDS) throw containErrors.badScope(`--ids lists ${spec.ids.length} entries; at most ${MAX_SCOPE_IDS}`);
  spec.ids?.forEach((entry, i) => {
    const why = idsEntryProblem(entry);
    if (why !== null) throw containErrors.badScope(`--ids entry ${i + 1} ${why}: ${JSON.stringify(entry.slice(0, 40))} is not a user id or email`);
  });
  // --created and --last-login are half-open (>= after, < before): equal bounds name nobody either. --active is closed.
  for (const [a, b, name, closed] of [[spec.createdAfter, spec.createdBefore, "--created", false], [spec.lastLoginAfter, spec.lastLoginBefore, "--last-login", false], [spec.activeFrom, spec.activeTo, "--active", true]] as const) {
    if (a === undefined || b === undefined) continue;
    if (a > b) throw containErrors.badScope(`${name}-after/from is later than ${name}-before/to: the scope is empty by construction`);
    if (a === b && !closed) throw containErrors.badScope(`${name}-after equals ${name}-before: the window includes its start and excludes its end, so it is empty; to name one day, end it at the next day`);
  }
}

/**
 * Refuses roles that do not exist: a typo (`--role admni`) would otherwise make a job over nobody that reports
 * success while the administrators it was meant for stay untouched.
 */
export async function checkRolesExist(db: Kysely<Schema>, spec: ScopeSpec): Promise<void> {
  if (!spec.roles?.length) return;
  const found = new Set((await db.selectFrom("roles").select("name").where("name", "in", spec.roles).execute()).map((r) => r.name));
  const unknown = spec.roles.filter((r) => !found.has(r));
  if (unknown.length === 0) return;
  const known = (await db.selectFrom("roles").select("name").orderBy("name").execute()).map((r) => r.name);
  throw containErrors.unknownRole(unknown, known);
}

/**
 * Refuses a password scheme that is neither one the scheme table knows nor one some account is stored with: a typo
 * (`--scheme phppas`) would otherwise make a job over nobody that reports success while the phpass accounts it was
 * meant for stay untouched, as an unknown role would. A stored value the table does not list (an older release's id,
 * a scheme written by another tool) is still accepted: it names real accounts.
 */
export async function checkSchemeKnown(db: Kysely<Schema>, spec: ScopeSpec): Promise<void> {
  const scheme = spec.scheme;
  if (scheme === undefined || (SCHEME_IDS as readonly string[]).includes(scheme)) return;
  const stored = await db.selectFrom("users").select("password_scheme").where("password_scheme", "=", scheme).limit(1).executeTakeFirst();
  if (stored !== undefined) return;
  // Listed through the users_password_scheme index; bounded so that a store full of odd values keeps the message short.
  const others = (await db.selectFrom("users").select("password_scheme").distinct().where("password_scheme", "is not", null).orderBy("password_scheme").limit(50).execute())
    .map((r) => r.password_scheme as string).filter((s) => !(SCHEME_IDS as readonly string[]).includes(s));
  throw containErrors.unknownScheme(scheme, [...SCHEME_IDS, ...others]);
}

/** The --ids entries that name no user: how many, and the first few as written. */
export interface UnmatchedIds {
  count: number;
  sample: string[];
}

// Unmatched entries named in a report: enough to spot a typo or a wrong file, few enough to read.
const UNMATCHED_SHOWN = 10;

/**
 * The --ids entries matching no user (neither an id nor an email), so that a typo or a deleted account is
 * reported rather than silently dropped. Null when the scope has no id list.
 */
export async function unmatchedIds(db: Kysely<Schema>, dialect: DialectName, spec: ScopeSpec): Promise<UnmatchedIds | null> {
  if (!spec.ids) return null;
  const emails = spec.ids.filter((v) => v.includes("@"));
  const emailKeys = emails.map(identifierKey);
  const ids = spec.ids.filter((v) => !v.includes("@"));
  let count = 0;
  const sample: string[] = [];
  for (const [column, values, shown] of [["id", ids, ids], ["email_key", emailKeys, emails]] as const) {
    if (values.length === 0) continue;
    const missing = notInUsers(dialect, column, values);
    const row = await sql<{ n: number | string }>`select count(*) as n ${missing}`.execute(db);
    count += Number(row.rows[0]?.n ?? 0);
    const first = await sql<{ value: string }>`select l.value as value ${missing} limit ${UNMATCHED_SHOWN}`.execute(db);
    // Shown as written in the file, not as the lower-cased lookup key.
    for (const r of first.rows) if (sample.length < UNMATCHED_SHOWN) sample.push(shown[values.indexOf(r.value)] ?? r.value);
  }
  return { count, sample };
}

/** One line for reports (dry run, job view): how many entries matched nobody, and which. */
export function describeUnmatched(unmatched: UnmatchedIds): string {
  const more = unmatched.count > unmatched.sample.length ? ` and ${unmatched.count - unmatched.sample.length} more` : "";
  return `${unmatched.count} --ids entries name no user and are left out: ${unmatched.sample.join(", ")}${more}`;
}

/** `from <list> where <no user has column = value>`: one bound parameter carries the list, as in inJSONList. */
function notInUsers(dialect: DialectName, column: "id" | "email_key", values: readonly string[]) {
  const json = JSON.stringify(values);
  const list = dialect === "sqlite" ? sql`json_each(${json}) as l` : sql`json_array_elements_text(${json}::json) as l(value)`;
  return sql`from ${list} where not exists (select 1 from users u where ${sql.ref(`u.${column}`)} = l.value)`;
}

/**
 * Whether an --ids line (trimmed) is a comment: it starts with `#` and cannot be an address. `#` is legal in an
 * address's local part, and sign-up takes `#mallory@attacker.example`: read as a comment, that account was silently
 * left out of the containment the operator listed it for, the dry run and the job reporting nothing unmatched
 * (test/poison-data-red-team.test.ts). A line with an `@` and no space could be an address, so it is an entry (matched,
 * or named as unmatched); a comment says something (`# breached`, `#from the abuse desk: …`) or holds no `@`.
 */
function isIdsComment(line: string): boolean {
  return line.startsWith("#") && (!line.includes("@") || /\s/.test(line));
}

/**
 * Parses an --ids file: one user id or email per line; blank lines and # comments ignored (isIdsComment: a `#` line
 * that could be an address is an entry).
 *
 * @example
 * parseIdsFile("usr_abc\n# breached\nana@example.org\n#mallory@x.example\n") // ["usr_abc", "ana@example.org", "#mallory@x.example"]
 */
export function parseIdsFile(text: string): string[] {
  const out: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || isIdsComment(line)) return;
    if (line.length > 320) throw containErrors.badScope(`--ids file has a line longer than 320 characters (not a user id or email): "${line.slice(0, 40)}…"`);
    // Named by its line in the file (comments and blank lines counted), where the operator will look for it.
    const why = idsEntryProblem(line);
    if (why !== null) throw containErrors.badScope(`--ids file line ${i + 1} ${why}: ${JSON.stringify(line.slice(0, 40))} is not a user id or email`);
    out.push(line);
  });
  return out;
}

// One bound parameter carries the whole list as JSON, whatever its length (both dialects cap the number of
// parameters per statement: 32766 on SQLite, 65535 on PostgreSQL).
function inJSONList(dialect: DialectName, column: string, values: string[]): Expression<SqlBool> {
  const json = JSON.stringify(values);
  return dialect === "sqlite"
    ? sql<SqlBool>`${sql.ref(column)} in (select value from json_each(${json}))`
    : sql<SqlBool>`${sql.ref(column)} in (select json_array_elements_text(${json}::json))`;
}

/**
 * The ids of the users in scope, as a query usable as a subquery (`where("id", "in", scopedUserIds(...))`).
 *
 * @example
 * await scopedUserIds(db, "sqlite", { roles: ["admin"] }).execute()
 */
export function scopedUserIds(db: Kysely<Schema>, dialect: DialectName, spec: ScopeSpec): SelectQueryBuilder<Schema, "users", { id: string }> {
  validateScope(spec);
  let q = db.selectFrom("users").select("users.id");
  if (spec.roles?.length) {
    const roles = spec.roles;
    q = q.where((eb) => eb.exists(eb.selectFrom("user_roles").select("user_roles.user_id").whereRef("user_roles.user_id", "=", "users.id").where("user_roles.role", "in", roles)));
  }
  if (spec.ids?.length) {
    const emails = spec.ids.filter((v) => v.includes("@")).map(identifierKey);
    const ids = spec.ids.filter((v) => !v.includes("@"));
    q = q.where((eb) => eb.or([
      ...(ids.length ? [inJSONList(dialect, "users.id", ids)] : []),
      ...(emails.length ? [inJSONList(dialect, "users.email_key", emails)] : []),
    ]));
  }
  if (spec.createdBefore !== undefined) q = q.where("users.created_at", "<", spec.createdBefore);
  if (spec.createdAfter !== undefined) q = q.where("users.created_at", ">=", spec.createdAfter);
  if (spec.lastLoginBefore !== undefined) q = q.where("users.last_login_at", "<", spec.lastLoginBefore);
  if (spec.lastLoginAfter !== undefined) q = q.where("users.last_login_at", ">=", spec.lastLoginAfter);
  if (spec.activeFrom !== undefined || spec.activeTo !== undefined) {
    const from = spec.activeFrom;
    const to = spec.activeTo;
    // A session's life [created_at, last_seen_at] overlaps [from, to]; found through the sessions_user_created index.
    q = q.where((eb) => eb.or([
      eb.exists(eb.selectFrom("sessions").select("sessions.user_id").whereRef("sessions.user_id", "=", "users.id")
        .where((s) => s.and([...(from !== undefined ? [s("sessions.last_seen_at", ">=", from)] : []), ...(to !== undefined ? [s("sessions.created_at", "<=", to)] : [])]))),
      eb.and([...(from !== undefined ? [eb("users.last_login_at", ">=", from)] : []), ...(to !== undefined ? [eb("users.last_login_at", "<=", to)] : []), eb("users.last_login_at", "is not", null)]),
      // last_login_at holds only the newest login: someone who signed in during the window (on the phished page)
      // and again after it is found by the login's audit event. One uncorrelated read through audit_events_type
      // (type, at), not a lookup per user.
      eb("users.id", "in", eb.selectFrom("audit_events").select("audit_events.subject").where("audit_events.type", "=", LOGIN_SUCCEEDED)
        .where((a) => a.and([...(from !== undefined ? [a("audit_events.at", ">=", from)] : []), ...(to !== undefined ? [a("audit_events.at", "<=", to)] : [])]))),
    ]));
  }
  if (spec.scheme !== undefined) {
    // An account whose legacy hash migrate-hashes wrapped in argon2id still signs in with the password behind that
    // legacy hash: a leak of the old hashes (a backup, the old system's copy) exposes it as much as an unwrapped one.
    // So a scheme names those too, by the inner scheme the wrapped hash records ($bulwark-wrap$v=1$<id>$…).
    const prefix = `${WRAP_PREFIX}${spec.scheme}$`;
    q = q.where((eb) => eb.or([
      eb("users.password_scheme", "=", spec.scheme as string),
      eb.and([eb("users.password_scheme", "=", "bulwark-wrapped"), eb(eb.fn("substr", ["users.password_hash", sql.lit(1), sql.lit(prefix.length)]), "=", prefix)]),
    ]));
  }
  return q;
}

/** The audit event a successful login appends (src/accounts/login), subject the account's id. */
const LOGIN_SUCCEEDED = "auth.login.succeeded";

/** The scope as recorded in the job spec and the audit log: criteria, and the size (not the content) of an id list. */
export function describeScope(spec: ScopeSpec): Record<string, unknown> {
  const { ids, ...rest } = spec;
  return ids ? { ...rest, idsListed: ids.length } : { ...rest };
}
