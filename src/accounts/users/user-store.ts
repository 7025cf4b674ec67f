// The account store over Kysely (SQLite and PostgreSQL alike): create, find, list a page, change a password hash with
// compare-and-set (so a concurrent change is never overwritten), record logins.
import { sql, type Kysely, type RawBuilder, type Selectable } from "kysely";
import { newId } from "../../crypto/tokens.ts";
import type { Clock } from "../../lib/clock.ts";
import type { RandomSource } from "../../lib/random.ts";
import type { Database } from "../../store/database.ts";
import type { Schema, UsersTable } from "../../store/schema.ts";
import { prepareHot } from "../../store/sqlite-dialect-prepared.ts";
import { accountErrors } from "../errors.ts";
import { identifierKey, validateDisplayName, validateEmail, validateUsername } from "./normalise.ts";
import { confusableSkeleton } from "./confusables.ts";

export type UserStatus = "active" | "disabled";

export interface User {
  id: string;
  email: string;
  username: string | null;
  displayName: string | null;
  status: UserStatus;
  lockedAt: number | null;
  lockedReason: string | null;
  passwordHash: string | null;
  passwordScheme: string | null;
  passwordChangedAt: number | null;
  passwordMustChange: boolean;
  passwordInvalidatedAt: number | null;
  /**
   * When the password, an initial one an administrator set or had generated, stops signing in (ASVS 6.4.1); null
   * for a password of the user's own. Cleared by every change the user makes (swapPasswordHash with `changed`). As the
   * store reads it: the earlier of the time written at creation and the lifetime in force after the password was set
   * (createUserStore's initialPasswordExpiresAt).
   */
  passwordInitialExpiresAt: number | null;
  /**
   * The password is one whoever created the account chose, or was changed from one at the first-login gate, or an
   * administrator set the address since; no reset link mailed to the account's address has set one since (migration
   * 24). Administrative roles are not granted over the API meanwhile (RoleStore.grant).
   */
  passwordUnproven: boolean;
  createdAt: number;
  updatedAt: number;
  lastLoginAt: number | null;
  lastLoginIP: string | null;
  externalSource: string | null;
  externalId: string | null;
}

export interface NewUser {
  email: string;
  username?: string | null;
  displayName?: string | null;
  status?: UserStatus;
  passwordHash?: string | null;
  passwordScheme?: string | null;
  /** The first login must set a new password (a generated or administrator-chosen one, ASVS 6.4.1). */
  passwordMustChange?: boolean;
  /**
   * For a generated or administrator-chosen password: when it stops signing in (epoch ms), so that one left unused
   * in a ticket or a mail does not stay a way in (ASVS 6.4.1). Absent or null: it does not expire.
   */
  passwordInitialExpiresAt?: number | null;
  createdAt?: number;
  lastLoginAt?: number | null;
  externalSource?: string | null;
  externalId?: string | null;
  seeded?: boolean;
}

export function toUser(r: Selectable<UsersTable>): User {
  return {
    id: r.id, email: r.email, username: r.username, displayName: r.display_name, status: r.status === "disabled" ? "disabled" : "active",
    lockedAt: r.locked_at === null ? null : Number(r.locked_at), lockedReason: r.locked_reason,
    passwordHash: r.password_hash, passwordScheme: r.password_scheme,
    passwordChangedAt: r.password_changed_at === null ? null : Number(r.password_changed_at),
    passwordMustChange: Number(r.password_must_change) === 1,
    passwordInvalidatedAt: r.password_invalidated_at === null ? null : Number(r.password_invalidated_at),
    passwordInitialExpiresAt: r.password_initial_expires_at === null ? null : Number(r.password_initial_expires_at),
    passwordUnproven: Number(r.password_unproven) === 1,
    createdAt: Number(r.created_at), updatedAt: Number(r.updated_at),
    lastLoginAt: r.last_login_at === null ? null : Number(r.last_login_at), lastLoginIP: r.last_login_ip,
    externalSource: r.external_source, externalId: r.external_id,
  };
}

/**
 * Where a page of UserStore.page ends: the last account's id, and whether it was an exact match of the search (those
 * are listed first, so the next page goes on among them before the rest).
 */
export interface UserPagePosition {
  id: string;
  exact: boolean;
}

/** Which page of accounts UserStore.page reads. */
export interface UserPageQuery {
  /** Only accounts whose email or username starts with this (compared on the lookup keys); null: every account. */
  q: string | null;
  /** Where the page before ended (ids are random, so the order reveals nothing); null: the first page. */
  after: UserPagePosition | null;
  limit: number;
}

export interface UserStore {
  /** Creates an account with a random id. Throws a conflict error when the email or username is taken. */
  create(input: NewUser, db?: Kysely<Schema>): Promise<User>;
  /** Builds the row for `create` without writing it (bulk import validates rows this way). */
  prepare(input: NewUser): Selectable<UsersTable>;
  getById(id: string): Promise<User | null>;
  /**
   * One page of accounts in id order, each with the initial-password expiry in force as every read of the store
   * carries it; `next`, where the page ended, when another page follows. A search lists the exact matches of its
   * lookup key (the account findByIdentifier finds) first, then the other prefix matches in id order.
   */
  page(query: UserPageQuery): Promise<{ users: User[]; next: UserPagePosition | null }>;
  /** Finds an account by email or username (case-insensitive). */
  findByIdentifier(identifier: string): Promise<User | null>;
  /**
   * Replaces the password hash only if it is still `expected`; returns false when it changed meanwhile
   * (another login rehashed it, the user changed it, a containment job invalidated it). `changed`: a new password
   * (not a rehash); `byLink`: set through a reset link mailed to the account's address, which clears passwordUnproven.
   */
  swapPasswordHash(id: string, expected: string | null, next: { hash: string; scheme: string; changed: boolean; byLink?: boolean }, db?: Kysely<Schema>): Promise<boolean>;
  /**
   * True when the user's password is an initial one whose time (User.passwordInitialExpiresAt, as the store reads it:
   * under the lifetime in force) has come, by the store's clock: login then refuses it as it refuses a wrong password.
   */
  initialPasswordExpired(user: Pick<User, "passwordInitialExpiresAt" | "passwordChangedAt">): boolean;
  recordLogin(id: string, ip: string | null): Promise<void>;
  count(): Promise<number>;
}

/**
 * The password change time a change at `now` stores: `now`, or one past the stored time when that is not earlier
 * (a change in the same millisecond, or a clock behind another node's), so every change moves it forward. It is the
 * password's version: a login stores its session only if it is still the one it verified (SessionContext
 * verifiedPassword), and undo of expire-passwords restores a flag only if the password did not change since.
 */
export function passwordChangedAtAfterChange(now: number): RawBuilder<number> {
  return sql<number>`case when password_changed_at >= ${now} then password_changed_at + 1 else ${now} end`;
}

// LIKE treats % and _ as wildcards: a search text is matched literally, as a prefix.
function likePrefix(text: string): string {
  return `${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

/** How node:sqlite's message of a unique violation begins; the table.column names follow, comma-separated. */
const SQLITE_UNIQUE_FAILED = "UNIQUE constraint failed: ";

/**
 * Which unique key of `users` a failed INSERT or UPDATE collided with; null when `cause` is no such collision (or
 * one on another key, such as the external id). PostgreSQL names the constraint (unique_violation, SQLSTATE 23505);
 * node:sqlite names the columns ("UNIQUE constraint failed: users.email_key"). The names are migration 2's: the
 * constraints PostgreSQL gives the columns declared unique there, and the columns themselves; and migration 23's
 * unique indexes on the confusable skeletons ("-skeleton": the identifier reads like another account's).
 */
export function collidedKey(cause: unknown): "email" | "username" | "email-skeleton" | "username-skeleton" | null {
  const e = cause as { code?: unknown; constraint?: unknown; message?: unknown } | null;
  if (e === null || typeof e !== "object") return null;
  let names: string[];
  if (e.code === "23505" && typeof e.constraint === "string") names = [e.constraint];
  else if (typeof e.message === "string" && e.message.startsWith(SQLITE_UNIQUE_FAILED)) names = e.message.slice(SQLITE_UNIQUE_FAILED.length).split(", ");
  else return null;
  if (names.includes("users_email_key_key") || names.includes("users.email_key")) return "email";
  if (names.includes("users_username_key_key") || names.includes("users.username_key")) return "username";
  // Migration 23's indexes: an identifier that reads like another account's (confusables.ts).
  if (names.includes("users_email_skeleton_key") || names.includes("users.email_skeleton")) return "email-skeleton";
  if (names.includes("users_username_skeleton_key") || names.includes("users.username_skeleton")) return "username-skeleton";
  return null;
}

/**
 * Builds the account store. `initialPasswordMs` is the initial-password lifetime in force (config.initialPasswordMs,
 * BULWARK_INITIAL_PASSWORD_HOURS); without it, an initial password expires at the time written when it was set.
 */
export function createUserStore(deps: { database: Database; clock: Clock; random: RandomSource; initialPasswordMs?: number }): UserStore {
  const { database, clock, random } = deps;
  const lifetime = deps.initialPasswordMs;
  // When the initial password stops signing in (null: not an initial one): the earlier of the time written when it was
  // set (users.password_initial_expires_at) and the time it was set (password_changed_at) plus the lifetime in force. A
  // lifetime shortened since (a restart with a lower BULWARK_INITIAL_PASSWORD_HOURS) then reaches the initial passwords
  // already handed out, and what the API shows does not promise the old end (ASVS 6.4.1).
  const initialPasswordExpiresAt = (user: Pick<User, "passwordInitialExpiresAt" | "passwordChangedAt">): number | null => {
    const written = user.passwordInitialExpiresAt;
    // The change time is the initial password's setting time: creation writes both, and every change clears the expiry.
    if (written === null || lifetime === undefined || user.passwordChangedAt === null) return written;
    return Math.min(written, user.passwordChangedAt + lifetime);
  };
  // Every account the store returns carries the expiry in force.
  const read = (r: Selectable<UsersTable>): User => {
    const user = toUser(r);
    return { ...user, passwordInitialExpiresAt: initialPasswordExpiresAt(user) };
  };
  // The login path's statements, compiled once (every login runs a lookup and, on success, the write).
  const byEmail = prepareHot<Selectable<UsersTable>>(database, "SELECT * FROM users WHERE email_key = $1");
  const byEmailOrUsername = prepareHot<Selectable<UsersTable>>(database, "SELECT * FROM users WHERE username_key = $1 OR email_key = $1");
  const touchLogin = prepareHot(database, "UPDATE users SET last_login_at = $1, last_login_ip = $2, updated_at = $1 WHERE id = $3");
  const prepare = (input: NewUser): Selectable<UsersTable> => {
    const email = validateEmail(input.email);
    const username = input.username ? validateUsername(input.username) : null;
    const now = clock.now();
    return {
      id: newId("usr", random), email, email_key: identifierKey(email), username, username_key: username ? identifierKey(username) : null,
      email_skeleton: confusableSkeleton(email), username_skeleton: username ? confusableSkeleton(username) : null, email_lookalike: 0, username_lookalike: 0,
      display_name: input.displayName == null ? null : validateDisplayName(input.displayName), status: input.status ?? "active", locked_at: null, locked_reason: null,
      password_hash: input.passwordHash ?? null, password_scheme: input.passwordScheme ?? null,
      password_changed_at: input.passwordHash ? now : null, password_must_change: input.passwordMustChange ? 1 : 0, password_invalidated_at: null,
      created_at: input.createdAt ?? now, updated_at: now, last_login_at: input.lastLoginAt ?? null, last_login_ip: null,
      external_source: input.externalSource ?? null, external_id: input.externalId ?? null, seeded: input.seeded ? 1 : 0,
      password_initial_expires_at: input.passwordHash ? (input.passwordInitialExpiresAt ?? null) : null,
      // An initial password is known to whoever created the account, and so is any it is changed to at the gate.
      password_unproven: input.passwordHash && input.passwordInitialExpiresAt != null ? 1 : 0,
      reset_held_at: null,
    };
  };
  return {
    prepare,
    async create(input, db = database.db) {
      const row = prepare(input);
      // The same key is "taken"; only another key with the same skeleton is a look-alike (confusables.ts).
      const holders = await db
        .selectFrom("users")
        .select(["email_key", "username_key", "email_skeleton", "username_skeleton"])
        .where((eb) => eb.or([
          eb("email_key", "=", row.email_key), eb("email_skeleton", "=", row.email_skeleton),
          ...(row.username_key ? [eb("username_key", "=", row.username_key), eb("username_skeleton", "=", row.username_skeleton)] : []),
        ]))
        .execute();
      if (holders.some((h) => h.email_key === row.email_key)) throw accountErrors.emailTaken();
      if (row.username_key && holders.some((h) => h.username_key === row.username_key)) throw accountErrors.usernameTaken();
      if (holders.some((h) => h.email_skeleton === row.email_skeleton)) throw accountErrors.emailConfusable();
      if (row.username_skeleton && holders.some((h) => h.username_skeleton === row.username_skeleton)) throw accountErrors.usernameConfusable();
      try {
        await db.insertInto("users").values(row).execute();
      } catch (cause) {
        // A concurrent insert won the race for the same email or username, or a look-alike of one, past the look
        // above (PostgreSQL, READ COMMITTED): the unique index decides, and its name says what the loser is told.
        const collided = collidedKey(cause);
        if (collided === "email") throw accountErrors.emailTaken();
        if (collided === "username") throw accountErrors.usernameTaken();
        if (collided === "email-skeleton") throw accountErrors.emailConfusable();
        if (collided === "username-skeleton") throw accountErrors.usernameConfusable();
        throw cause;
      }
      return read(row);
    },
    async getById(id) {
      const row = await database.db.selectFrom("users").selectAll().where("id", "=", id).executeTakeFirst();
      return row ? read(row) : null;
    },
    async page(query) {
      const { after, limit } = query;
      const key = query.q === null ? null : identifierKey(query.q);
      // The exact match first: in id order alone, an outsider's `<victim's address>.<their domain>` accounts were
      // listed ahead of the victim's, and an administrator searching the full address acted on the first row. Read
      // through the unique keys; the prefix pages then leave them out, so none is listed twice or lost across pages.
      const exact: Array<Selectable<UsersTable>> = [];
      if (key !== null && (after === null || after.exact)) {
        let select = database.db.selectFrom("users").selectAll().orderBy("id").limit(limit + 1)
          .where((eb) => eb.or([eb("email_key", "=", key), eb("username_key", "=", key)]));
        if (after !== null) select = select.where("id", ">", after.id);
        exact.push(...await select.execute());
      }
      const rest: Array<Selectable<UsersTable>> = [];
      if (exact.length <= limit) {
        let select = database.db.selectFrom("users").selectAll().orderBy("id").limit(limit + 1 - exact.length);
        if (after !== null && !after.exact) select = select.where("id", ">", after.id);
        if (key !== null) {
          const pattern = likePrefix(key);
          select = select
            .where((eb) => eb.or([
              sql<boolean>`${eb.ref("email_key")} like ${pattern} escape '\\'`,
              sql<boolean>`${eb.ref("username_key")} like ${pattern} escape '\\'`,
            ]))
            .where("email_key", "<>", key)
            .where((eb) => eb.or([eb("username_key", "is", null), eb("username_key", "<>", key)]));
        }
        rest.push(...await select.execute());
      }
      const rows = [...exact, ...rest];
      const users = rows.slice(0, limit).map(read);
      const last = users[users.length - 1];
      const next = rows.length > limit && last ? { id: last.id, exact: users.length <= exact.length } : null;
      return { users, next };
    },
    async findByIdentifier(identifier) {
      const key = identifierKey(identifier);
      // An address can only be an email; anything else may be either (usernames never contain "@").
      const [row] = await (key.includes("@") ? byEmail : byEmailOrUsername).all([key]);
      return row ? read(row) : null;
    },
    async swapPasswordHash(id, expected, next, db = database.db) {
      const now = clock.now();
      let q = db
        .updateTable("users")
        .set({
          password_hash: next.hash, password_scheme: next.scheme, updated_at: now,
          // A password the user set is theirs: no initial-password expiry applies to it any more (ASVS 6.4.1). A
          // rehash or a wrap (`changed` false) keeps the same password, and so its expiry.
          ...(next.changed ? { password_changed_at: passwordChangedAtAfterChange(now), password_must_change: 0, password_invalidated_at: null, password_initial_expires_at: null } : {}),
          // Set through a link mailed to the account's address: its owner's, whoever knew the password before.
          // A change at the gate (`changed` alone) keeps the mark: whoever knew the old password chose the new one.
          ...(next.changed && next.byLink ? { password_unproven: 0 } : {}),
        })
        .where("id", "=", id);
      q = expected === null ? q.where("password_hash", "is", null) : q.where("password_hash", "=", expected);
      const result = await q.executeTakeFirst();
      return Number(result.numUpdatedRows) === 1;
    },
    initialPasswordExpired(user) {
      const expiresAt = initialPasswordExpiresAt(user);
      return expiresAt !== null && clock.now() >= expiresAt;
    },
    async recordLogin(id, ip) {
      const now = clock.now();
      await touchLogin.run([now, ip, id]);
    },
    async count() {
      const row = await database.db.selectFrom("users").select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}
