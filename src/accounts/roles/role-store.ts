// Roles, their permissions and who holds them, on SQLite and PostgreSQL. Every change is audited.
import { sql, type Kysely } from "kysely";
import type { AuditLog } from "../../audit/audit-log.ts";
import type { Clock } from "../../lib/clock.ts";
import { BulwarkError } from "../../lib/errors.ts";
import { hasControl } from "../../lib/visible-text.ts";
import { lockKeyOf, serialiseTransactions, serialiseTransactionsMany, type Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { ADMINISTRATIVE, isPermission, type Permission } from "./permissions.ts";

export interface Role {
  name: string;
  description: string;
  builtin: boolean;
  permissions: Permission[];
}

const ROLE_NAME = /^[a-z][a-z0-9_-]{0,39}$/;

/** The longest role description (the API's limit for the same field). */
export const MAX_DESCRIPTION = 500;

export const roleErrors = {
  unknownRole: (name: string): BulwarkError => new BulwarkError("BULWARK_ERR_ROLE_UNKNOWN", "not-found", `no role named "${name}"`),
  badName: (name: string): BulwarkError =>
    new BulwarkError("BULWARK_ERR_ROLE_NAME", "input", `role name "${name.slice(0, 50)}" must be 1-40 characters: a lower-case letter, then letters, digits, _ or -`),
  exists: (name: string): BulwarkError => new BulwarkError("BULWARK_ERR_ROLE_EXISTS", "conflict", `a role named "${name}" already exists`),
  unknownPermission: (p: string): BulwarkError =>
    new BulwarkError("BULWARK_ERR_PERMISSION_UNKNOWN", "input", `unknown permission "${p.slice(0, 50)}"`),
  builtin: (name: string): BulwarkError => new BulwarkError("BULWARK_ERR_ROLE_BUILTIN", "conflict", `role "${name}" is built in and cannot be deleted`),
  badDescription: (why: string): BulwarkError => new BulwarkError("BULWARK_ERR_ROLE_DESCRIPTION", "input", `the role description ${why}`),
  initialPassword: (userId: string, role: string): BulwarkError =>
    new BulwarkError("BULWARK_ERR_ROLE_INITIAL_PASSWORD", "conflict",
      `user ${userId} signs in with a password whoever created the account knew (its initial password, or one it was changed to at the first sign-in), ` +
        `or an administrator set its address since; role "${role}" carries an administrative permission, so the owner must first set a password ` +
        "through a reset link mailed to the account's address (POST /auth/password/reset/request)"),
  holdersChanged: (name: string, counted: number, now: number): BulwarkError =>
    new BulwarkError("BULWARK_ERR_ROLE_HOLDERS_CHANGED", "conflict",
      `role "${name}" was held by ${counted} user(s) when the deletion was confirmed and by ${now} when it ran (granted or revoked meanwhile): nothing was deleted; run it again to see who holds it now`),
  userGone: (userId: string): BulwarkError =>
    new BulwarkError("BULWARK_ERR_USER_UNKNOWN", "not-found", `no user ${userId}: the account was removed after it was looked up; nothing was granted`),
  accountInactive: (userId: string, role: string): BulwarkError =>
    new BulwarkError("BULWARK_ERR_ROLE_ACCOUNT_INACTIVE", "conflict",
      `user ${userId} is disabled; role "${role}" carries an administrative permission and is not granted to a disabled account ` +
        "(it would act as an administrator the moment anyone re-enabled it): enable the account first, then grant the role"),
  lastAdmin: (): BulwarkError =>
    new BulwarkError("BULWARK_ERR_LAST_ADMIN", "conflict", "this would leave no active, unlocked user holding the admin permission (nobody could grant roles again)"),
};

/** Options of the changes that can take the admin permission away from someone. */
export interface RemovalOptions {
  /**
   * Refuse (and roll back) a change that leaves no active, unlocked user holding `admin`. Checked after the
   * change, in its transaction, with concurrent removals serialised: two administrators removing each other
   * at the same moment cannot both succeed. The CLI, run by whoever holds the server, may skip it.
   */
  keepAnAdmin?: boolean;
  /** Runs in the change's transaction after its locks and before its first write: a throw refuses the change. */
  within?: (trx: Kysely<Schema>) => Promise<void>;
  /**
   * The caller's own record of the change (the API's `api.role.*` event), written last in its transaction and only when
   * it changed something: a change and its record commit together, so a failure never answers "try again" about a
   * change that was made.
   */
  record?: (trx: Kysely<Schema>) => Promise<unknown>;
}

// Any constant: removals that could take away the last admin are serialised on it (serialiseTransactions).
const ADMIN_REMOVAL_LOCK = 0x62776b61;

/**
 * Serialises, in transaction `trx`, with every grant to `userId` (PostgreSQL: an advisory lock that grant takes
 * too; SQLite's write lock already does it). A change to an account that checks what the account holds, takes
 * it, then reads the permissions within `trx`: a grant either committed before (and is seen) or waits for the
 * change to commit. A user gains permissions only through a grant: roles are created with theirs and never edited.
 */
export async function holdGrantsTo(database: Database, trx: Kysely<Schema>, userId: string): Promise<void> {
  await serialiseTransactions(database, trx, lockKeyOf(`user-roles:${userId}`));
}

/**
 * The permissions `userId` holds, read in transaction `trx` where a change they authorise commits; none when the
 * account is no longer active and unlocked. On PostgreSQL the role rows read stay locked (FOR SHARE) until `trx`
 * ends: a revocation or role deletion in flight is waited for and then seen, and one that starts later waits for
 * `trx`. The account is held the same way (holdActing, shared): a lock of it in flight is waited for, and one that
 * starts later waits (the row itself is read, not locked: two help desks locking each other would each wait for the
 * other's row). So a change checked here cannot commit after its actor was demoted or locked and that answered. A
 * transaction that also takes the last-admin lock (adminRemovalGuard) takes it first, as removals and locks do: the
 * other order waits in a cycle with a revocation, which holds that lock while it deletes the row read here.
 *
 * @example
 * if (!(await permissionsHeldWithin(database, trx, actorId)).has("admin")) throw forbidden();
 */
export async function permissionsHeldWithin(database: Pick<Database, "dialect">, trx: Kysely<Schema>, userId: string): Promise<Set<string>> {
  await holdActing(database, trx, userId, "shared");
  const account = await trx.selectFrom("users").select(["status", "locked_at"]).where("id", "=", userId).executeTakeFirst();
  if (!account || account.status !== "active" || account.locked_at !== null) return new Set();
  const heldQuery = trx.selectFrom("user_roles").innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
    .select("role_permissions.permission").where("user_roles.user_id", "=", userId);
  const rows = await (database.dialect === "postgres" ? heldQuery.forShare() : heldQuery).execute();
  return new Set(rows.map((r) => r.permission));
}

/**
 * Holds, until `trx` ends, the right of `userId` to act (PostgreSQL advisory lock; nothing on SQLite, whose write
 * transaction already runs alone): "shared" by every change that checked its actor (permissionsHeldWithin), "exclusive"
 * by a lock of the account, taken before its UPDATE. So a lock waits for the changes its account has in flight, and a
 * change that starts after it sees the account locked.
 */
export async function holdActing(database: Pick<Database, "dialect">, trx: Kysely<Schema>, userId: string, mode: "shared" | "exclusive"): Promise<void> {
  if (database.dialect !== "postgres") return;
  const key = actingKey(userId);
  await (mode === "shared" ? sql`SELECT pg_advisory_xact_lock_shared(${key}::int8)` : sql`SELECT pg_advisory_xact_lock(${key}::int8)`).execute(trx);
}

function actingKey(userId: string): number {
  return lockKeyOf(`acting:${userId}`);
}

/**
 * holdActing "exclusive" for many accounts at once, in key order (one statement; PostgreSQL only), for a containment
 * batch that demotes them: taken in the same order by every batch, so two never wait for each other in a cycle.
 */
export async function holdActingOfMany(database: Pick<Database, "dialect">, trx: Kysely<Schema>, userIds: readonly string[]): Promise<void> {
  await serialiseTransactionsMany(database, trx, userIds.map(actingKey));
}

/** Takes turns, until `trx` ends, with every role removal and API lock (the last-admin lock, without its check). */
export async function holdRoleRemovals(database: Pick<Database, "dialect">, trx: Kysely<Schema>): Promise<void> {
  await serialiseTransactions(database, trx, ADMIN_REMOVAL_LOCK);
}

/**
 * For a change (in transaction `trx`) that may leave no usable admin: takes the removal lock now and returns
 * the check to run after the change, which throws roleErrors.lastAdmin (rolling the transaction back) when
 * no active, unlocked user holds `admin` any more. Role removals and account locks both use it.
 *
 * @example
 * const check = await adminRemovalGuard(database, trx);
 * await lockUser(trx, id, reason, now);
 * await check();
 */
export async function adminRemovalGuard(database: Database, trx: Kysely<Schema>): Promise<() => Promise<void>> {
  await serialiseTransactions(database, trx, ADMIN_REMOVAL_LOCK);
  return async () => {
    if ((await usableAdmins(trx)) === 0) throw roleErrors.lastAdmin();
  };
}

/** How many active, unlocked users hold the admin permission through some role. */
export async function usableAdmins(db: Kysely<Schema>): Promise<number> {
  const row = await db
    .selectFrom("user_roles")
    .innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
    .innerJoin("users", "users.id", "user_roles.user_id")
    .where("role_permissions.permission", "=", "admin")
    .where("users.status", "=", "active")
    .where("users.locked_at", "is", null)
    .select((eb) => eb.fn.count<number>("user_roles.user_id").distinct().as("n"))
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

export class RoleStore {
  readonly #database: Database;
  readonly #clock: Clock;
  readonly #audit: AuditLog;

  constructor(deps: { database: Database; clock: Clock; audit: AuditLog }) {
    this.#database = deps.database;
    this.#clock = deps.clock;
    this.#audit = deps.audit;
  }

  async list(): Promise<Role[]> {
    const db = this.#database.db;
    const roles = await db.selectFrom("roles").selectAll().orderBy("name").execute();
    const perms = await db.selectFrom("role_permissions").selectAll().execute();
    return roles.map((r) => ({
      name: r.name, description: r.description, builtin: Number(r.builtin) === 1,
      permissions: perms.filter((p) => p.role === r.name).map((p) => p.permission as Permission).sort(),
    }));
  }

  async get(name: string): Promise<Role> {
    const role = (await this.list()).find((r) => r.name === name);
    if (!role) throw roleErrors.unknownRole(name);
    return role;
  }

  /** Creates a role; `record` as RemovalOptions.record, given the role as stored. */
  async create(input: { name: string; description?: string; permissions: string[] }, actor: string, options: { record?: (trx: Kysely<Schema>, role: Role) => Promise<unknown> } = {}): Promise<Role> {
    if (!ROLE_NAME.test(input.name)) throw roleErrors.badName(input.name);
    // The API's rule for the same field (NO_CONTROL, 500 characters), for every caller: the CLI stored escape codes.
    const description = input.description ?? "";
    if (description.length > MAX_DESCRIPTION) throw roleErrors.badDescription(`is longer than ${MAX_DESCRIPTION} characters`);
    if (hasControl(description)) throw roleErrors.badDescription("contains control characters or direction overrides");
    for (const p of input.permissions) if (!isPermission(p)) throw roleErrors.unknownPermission(p);
    const permissions = [...new Set(input.permissions)] as Permission[];
    const role: Role = { name: input.name, description, builtin: false, permissions };
    await this.#database.transaction(async (trx) => {
      // Insert-if-absent in one statement: of two concurrent creations one inserts, the other is told the role exists
      // (a select first let both pass on PostgreSQL, and the loser failed on the primary key with a raw error).
      const inserted = await trx.insertInto("roles").values({ name: input.name, description, builtin: 0, created_at: this.#clock.now() })
        .onConflict((oc) => oc.column("name").doNothing()).executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) throw roleErrors.exists(input.name);
      if (permissions.length) await trx.insertInto("role_permissions").values(permissions.map((permission) => ({ role: input.name, permission }))).execute();
      await this.#audit.appendIn(trx, { type: "role.created", actor, subject: input.name, data: { permissions } });
      if (options.record) await options.record(trx, role);
    });
    return role;
  }

  /**
   * Deletes a role that is not built in, taking it from its holders: one `role.revoked` event per holder (subject: the
   * user) and a `role.deleted` event naming how many there were, all in the deletion's transaction. Returns how many
   * held it. `holdersCounted`: the number of holders the caller showed and had confirmed (the CLI asks before taking
   * the role from anybody) — a deletion that would take it from another number (a grant or revocation committed in
   * between) is refused and rolled back.
   */
  async delete(name: string, actor: string, options: RemovalOptions & { holdersCounted?: number } = {}): Promise<number> {
    const role = await this.get(name);
    if (role.builtin) throw roleErrors.builtin(name);
    return this.#database.transaction(async (trx) => {
      const guard = await this.#adminGuard(trx, options, role.permissions.includes("admin"));
      await this.#holdRole(trx, name);
      // The caller's check where the deletion commits, after the role's lock (a grant of the role holds it before it
      // reads its own actor's roles): the API asks whether its actor still holds admin (permissionsHeldWithin).
      if (options.within) await options.within(trx);
      // One DELETE … RETURNING, after the locks a revocation and a grant of the role take (the last-admin lock, the
      // role's): exactly the grants this deletion ended, none a revocation in flight already took, none missed.
      const holders = (await trx.deleteFrom("user_roles").where("role", "=", name).returning("user_id").execute()).map((r) => r.user_id).sort();
      if (options.holdersCounted !== undefined && holders.length !== options.holdersCounted) throw roleErrors.holdersChanged(name, options.holdersCounted, holders.length);
      await trx.deleteFrom("role_permissions").where("role", "=", name).execute();
      await trx.deleteFrom("roles").where("name", "=", name).execute();
      await guard();
      // Each holder's trail ends its grant as a revocation would (subject: the user), in the deletion's transaction:
      // only "role.deleted" left every holder's record showing the grant and never its end (ASVS 16.2.1, 16.3.3).
      for (const userId of holders) await this.#audit.appendIn(trx, { type: "role.revoked", actor, subject: userId, data: { role: name, roleDeleted: true } });
      await this.#audit.appendIn(trx, { type: "role.deleted", actor, subject: name, data: { holders: holders.length } });
      if (options.record) await options.record(trx);
      return holders.length;
    });
  }

  /**
   * Serialises, until `trx` ends, the grants of `role` with its deletion (PostgreSQL; SQLite's write lock already
   * does). Without it a grant that found the role before a deletion committed inserted its row after: the deletion's
   * DELETE of the holders could not see it, and the grant's foreign key then failed on the deleted role (a 500).
   */
  async #holdRole(trx: Kysely<Schema>, role: string): Promise<void> {
    await serialiseTransactions(this.#database, trx, lockKeyOf(`role:${role}`));
  }

  /**
   * The last-admin lock, taken by every removal (revocations and deletions take turns, whatever the role: two of them
   * re-reading their callers' roles, each holding its own and deleting the other's, would wait in a cycle), and the
   * check after the change when it may take admin from someone and `keepAnAdmin` asks for it.
   */
  async #adminGuard(trx: Kysely<Schema>, options: RemovalOptions, removesAdmin: boolean): Promise<() => Promise<void>> {
    const check = await adminRemovalGuard(this.#database, trx);
    return options.keepAnAdmin && removesAdmin ? check : async () => {};
  }

  /**
   * Grants `role`; false when the user held it already. `refuseInitialPassword` (the API's grant route): a role
   * carrying an administrative permission is refused while the account signs in with an initial password, which
   * whoever created the account chose, or one changed from it at the gate, until a reset link mailed to the account's
   * address sets one (passwordUnproven) — an accounts.write holder who made the account would otherwise sign in as
   * the administrator it became (ASVS 8.2.2). Asked in the grant's transaction, in turn with changes of the account.
   * `within` runs in that transaction too, after the locks and before the insert: a throw refuses the grant.
   */
  async grant(
    userId: string, role: string, actor: string,
    options: { refuseInitialPassword?: boolean; within?: (trx: Kysely<Schema>) => Promise<void>; granted?: (trx: Kysely<Schema>, event: { id: string }) => Promise<void> } = {},
  ): Promise<boolean> {
    const carriesAdministrative = (await this.get(role)).permissions.some((p) => ADMINISTRATIVE.has(p));
    return this.#database.transaction(async (trx) => {
      // A change to this account that checked its permissions waits for this grant, or this grant for it.
      await holdGrantsTo(this.#database, trx, userId);
      // Looked up again in turn with the role's deletion: one that committed since the look above (another
      // administrator) is an unknown role, as it would have been a moment earlier, not a foreign-key failure.
      await this.#holdRole(trx, role);
      const exists = await trx.selectFrom("roles").select("name").where("name", "=", role).executeTakeFirst();
      if (!exists) throw roleErrors.unknownRole(role);
      // The caller's own check where the grant commits (the API: does its actor still hold admin, permissionsHeldWithin).
      if (options.within) await options.within(trx);
      // The account as it stands where the grant commits (holdGrantsTo orders this after the account's own changes): one
      // removed since the caller looked it up is an unknown user, not a foreign-key failure; a disabled one is not given an
      // administrative role it would hold unseen until someone re-enabled it (test/cross-process-writes-e-red-team).
      // After the caller's check, which holds its actor (holdActing): a containment batch locking actor and grantee holds
      // the actor first and then the grantee's row, so taking the row (FOR SHARE) before the actor deadlocked with it
      // (test/new-code-thirty-red-team).
      // A locked account is granted as before: a lock is a response that lifts (a containment job's, a responder's), and
      // an administrator locked by one keeps the roles that decide who may lift it (test/contain-cancel.test.ts).
      const accountQuery = trx.selectFrom("users").select(["status", "password_initial_expires_at", "password_unproven"]).where("id", "=", userId);
      const account = await (this.#database.dialect === "postgres" ? accountQuery.forShare() : accountQuery).executeTakeFirst();
      if (!account) throw roleErrors.userGone(userId);
      if (carriesAdministrative && account.status !== "active") throw roleErrors.accountInactive(userId, role);
      // Changed at the first-login gate, the password is still one whoever knew the initial one chose (migration 24).
      if (options.refuseInitialPassword === true && carriesAdministrative && (account.password_initial_expires_at !== null || Number(account.password_unproven) === 1)) {
        throw roleErrors.initialPassword(userId, role);
      }
      // Insert-if-absent: of two concurrent grants one inserts (and audits), the other answers "already held".
      const inserted = await trx.insertInto("user_roles").values({ user_id: userId, role, granted_at: this.#clock.now(), granted_by: actor })
        .onConflict((oc) => oc.columns(["user_id", "role"]).doNothing()).executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) return false;
      const event = await this.#audit.appendIn(trx, { type: "role.granted", actor, subject: userId, data: { role } });
      // What the caller records of a grant that happened (the API's event and notices, the CLI's notice citing this
      // event), in the same commit, after the row and its event: only a grant that inserted, and the locks in the order
      // every writer of this row takes them.
      if (options.granted) await options.granted(trx, event);
      return true;
    });
  }

  /** How many users hold `role` (what deleting it takes away). */
  async holders(role: string): Promise<number> {
    const row = await this.#database.db.selectFrom("user_roles").select((eb) => eb.fn.countAll<number | string>().as("n")).where("role", "=", role).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  /** Takes `role` from `userId`; false when the user did not hold it; throws for a role that does not exist (a typo). */
  async revoke(userId: string, role: string, actor: string, options: RemovalOptions = {}): Promise<boolean> {
    const carriesAdmin = (await this.get(role)).permissions.includes("admin") && options.keepAnAdmin === true;
    return this.#database.transaction(async (trx) => {
      const guard = await this.#adminGuard(trx, options, carriesAdmin);
      // The caller's check where the revocation commits (the API: does its actor still hold admin), after the lock.
      if (options.within) await options.within(trx);
      const result = await trx.deleteFrom("user_roles").where("user_id", "=", userId).where("role", "=", role).executeTakeFirst();
      const removed = Number(result.numDeletedRows) > 0;
      if (removed) await guard();
      if (removed) await this.#audit.appendIn(trx, { type: "role.revoked", actor, subject: userId, data: { role } });
      if (removed && options.record) await options.record(trx);
      return removed;
    });
  }

  async rolesOf(userId: string): Promise<string[]> {
    const rows = await this.#database.db.selectFrom("user_roles").select("role").where("user_id", "=", userId).orderBy("role").execute();
    return rows.map((r) => r.role);
  }

  /** Every permission the user holds through any role (read with `executor`, a caller's transaction, when given). */
  async permissionsOf(userId: string, executor?: Kysely<Schema>): Promise<Set<string>> {
    const rows = await (executor ?? this.#database.db)
      .selectFrom("user_roles")
      .innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
      .select("role_permissions.permission")
      .where("user_roles.user_id", "=", userId)
      .execute();
    return new Set(rows.map((r) => r.permission));
  }
}
