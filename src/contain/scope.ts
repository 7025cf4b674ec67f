// Which users a containment job acts on: every criterion narrows the set (AND). Resolved once, when the job
// is created, into contain_job_users, so a resumed job acts on exactly the same users.
import { sql, type Expression, type Kysely, type SelectQueryBuilder, type SqlBool } from "kysely";
import { identifierKey } from "../accounts/users/normalise.ts";
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

/** Throws a clear input error when the scope is empty or inconsistent. */
export function validateScope(spec: ScopeSpec): void {
  const criteria = Object.entries(spec).filter(([k, v]) => k !== "all" && v !== undefined && !(Array.isArray(v) && v.length === 0));
  if (!spec.all && criteria.length === 0) throw containErrors.noScope();
  if (spec.all && criteria.length > 0) throw containErrors.badScope(`--all cannot be combined with other scope options (${criteria.map(([k]) => k).join(", ")})`);
  if (spec.ids && spec.ids.length > MAX_SCOPE_IDS) throw containErrors.badScope(`--ids lists ${spec.ids.length} entries; at most ${MAX_SCOPE_IDS}`);
  if (spec.ids !== undefined && spec.ids.length === 0) throw containErrors.badScope("--ids file lists no user ids or emails");
  for (const [a, b, name] of [[spec.createdAfter, spec.createdBefore, "--created"], [spec.lastLoginAfter, spec.lastLoginBefore, "--last-login"], [spec.activeFrom, spec.activeTo, "--active"]] as const) {
    if (a !== undefined && b !== undefined && a > b) throw containErrors.badScope(`${name}-after/from is later than ${name}-before/to: the scope is empty by construction`);
  }
}

/**
 * Parses an --ids file: one user id or email per line; blank lines and # comments ignored.
 *
 * @example
 * parseIdsFile("usr_abc\n# breached\nana@example.org\n") // ["usr_abc", "ana@example.org"]
 */
export function parseIdsFile(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    if (line.length > 320) throw containErrors.badScope(`--ids file has a line longer than 320 characters (not a user id or email): "${line.slice(0, 40)}…"`);
    out.push(line);
  }
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
    ]));
  }
  if (spec.scheme !== undefined) q = q.where("users.password_scheme", "=", spec.scheme);
  return q;
}

/** The scope as recorded in the job spec and the audit log: criteria, and the size (not the content) of an id list. */
export function describeScope(spec: ScopeSpec): Record<string, unknown> {
  const { ids, ...rest } = spec;
  return ids ? { ...rest, idsListed: ids.length } : { ...rest };
}
