// A job created by an API caller runs on that caller's authority, batch after batch: its batches run later (in the
// background, after a restart, as `system`), so each reads its creator again in its own transaction, as a single API
// change reads its caller where it commits (callerWithin). A creator fired meanwhile — demoted, locked, disabled,
// deleted — stops the job until an administrator takes it over or cancels it (ASVS 8.3.2, 8.2.2).
import type { Kysely } from "kysely";
import { ADMINISTRATIVE, allows, permissionsHeldWithin, type Permission } from "../accounts/roles/index.ts";
import { storedObject } from "../jobs/job-store.ts";
import type { Database } from "../store/database.ts";
import type { Schema } from "../store/schema.ts";
import { containErrors } from "./errors.ts";

/**
 * The actor of the server's own resumes (resumeUnfinishedJobs; run-server.ts's resumeContainment runs the jobs without
 * resumeJob): no person decided anything, so it never takes a job over from its creator.
 */
export const SYSTEM_ACTOR = "system";

// A user id as this code writes it (newId: a prefix and base32 text), bounded as the API's ID parameter.
const USER_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The user on whose authority a job's batches run, from its stored spec (`creatorUser`): null for a job created by the
 * CLI or the system, for one recorded before the field existed, and for one an operator took over (resumeJob). Anything
 * other than a user id is refused with the job's coded error (fails closed, ASVS 16.5.3): a row altered to
 * `"creatorUser": 0` must not read as "nobody to check".
 *
 * @example
 * storedCreatorUser(job.id, { creatorUser: "usr_…" }) // "usr_…"
 */
export function storedCreatorUser(jobId: string, spec: { creatorUser?: unknown }): string | null {
  const creator = spec.creatorUser;
  if (creator === undefined) return null;
  if (typeof creator !== "string" || !USER_ID.test(creator)) throw containErrors.corruptJob(jobId, "its stored spec's creatorUser is not a user id");
  return creator;
}

/**
 * The creator of a job recorded before `creatorUser` existed (17019cd): the API wrote its caller's user id as the job's
 * actor (`jobs.actor`), so an actor that names an account is taken as the creator, read in `trx`, and such a job stops
 * when its creator is fired as a newer one does (it used to run on; the docs said to cancel it by hand). The CLI's
 * actor ("cli:NAME"), the system's and any other text name no account: null, as before. Only when the spec names no
 * creator and no one who took the job over (resumeJob's `takenOverBy`): a job moved to an operator is theirs, and
 * reading its old actor again would stop it at once.
 *
 * @example
 * await legacyCreatorWithin(trx, {}, "usr_…") // "usr_…" while that account exists; null for "cli:alice"
 */
export async function legacyCreatorWithin(trx: Kysely<Schema>, spec: { creatorUser?: unknown; takenOverBy?: unknown }, actor: string): Promise<string | null> {
  if (spec.creatorUser !== undefined || spec.takenOverBy !== undefined) return null;
  if (!USER_ID.test(actor)) return null;
  // Accounts are disabled, never deleted (their rows hold the audit's subjects): a user id here stays found.
  const user = await trx.selectFrom("users").select("id").where("id", "=", actor).executeTakeFirst();
  return user?.id ?? null;
}

/**
 * What the creator must still hold for the job to go on: contain.run (the API's access rule for every job) and every
 * administrative permission it held when it created the job (those it did not lack): an administrator's job acts on
 * administrators, and must stop once its creator is no longer one — the rule cancel applies to whoever stops it.
 */
export function creatorMustHold(creatorLacks: readonly string[]): Permission[] {
  return [...new Set<Permission>(["contain.run", ...[...ADMINISTRATIVE].filter((p) => !creatorLacks.includes(p))])];
}

/**
 * Why `userId` no longer stands behind the job, read in `trx` (permissionsHeldWithin: on PostgreSQL the creator's
 * acting lock is held shared and their role rows FOR SHARE until `trx` ends, so a lock or demotion in flight is waited
 * for and seen, and one that starts later waits for the batch), or null when they still hold every one of `needed`.
 * A transaction that takes the last-admin lock (holdRoleRemovals) takes it before this, as every removal does.
 *
 * `lockedByOwnJob`: a lock this very job set on its creator does not stop it. An administrator's lock-accounts over
 * `{all: true}` locks the caller's own account with the rest (docs/api.md: deliberate, in a breach); stopping there
 * would leave the other batches undone. Only while the lock is exactly the one the job recorded (as its undo checks): an administrator
 * locking the creator again sets a lock of their own (user-queries.ts lockUser, "relocked"), and that one counts.
 *
 * @example
 * await creatorShortfall(database, trx, "usr_…", ["contain.run"]) // "is locked" — or null
 */
export async function creatorShortfall(database: Pick<Database, "dialect">, trx: Kysely<Schema>, userId: string, needed: readonly Permission[], options: { lockedByOwnJob?: OwnLockTest } = {}): Promise<string | null> {
  const held = await permissionsHeldWithin(database, trx, userId);
  const lost = needed.filter((p) => !allows(held, p));
  if (lost.length === 0) return null;
  // permissionsHeldWithin answers nothing for an account that may not act at all: say which state, not the list.
  const account = await trx.selectFrom("users").select(["status", "locked_at", "locked_reason"]).where("id", "=", userId).executeTakeFirst();
  if (!account) return "no longer exists (deleted)";
  if (account.status !== "active") return `is ${account.status.slice(0, 20)}, not active`;
  if (account.locked_at === null) return `no longer holds ${lost.join(", ")}`;
  if (options.lockedByOwnJob === undefined || !(await options.lockedByOwnJob(trx, userId, account))) return "is locked";
  const roles = await rolePermissions(database, trx, userId);
  const lostByRole = needed.filter((p) => !allows(roles, p));
  return lostByRole.length === 0 ? null : `no longer holds ${lostByRole.join(", ")}`;
}

/** Whether the account's lock (as read now) is the one a job set on it and recorded. */
export type OwnLockTest = (trx: Kysely<Schema>, userId: string, account: { locked_at: number | null; locked_reason: string | null }) => Promise<boolean>;

/**
 * The OwnLockTest of containment job `jobId`: its lock-accounts record for the user, not undone, whose `after` is the
 * account's lock now (as its undo compares). The record has no index by user (a scan of the lever's records): found
 * once, it is kept for the job's later batches — a record never changes while its job runs (an undo waits for the end).
 */
export function ownLockOf(jobId: string): OwnLockTest {
  let found: { at: number; reason: unknown } | null = null;
  return async (trx, userId, account) => {
    if (found === null) {
      const rows = await trx.selectFrom("contain_changes").select("after")
        .where("job_id", "=", jobId).where("lever", "=", "lock-accounts").where("user_id", "=", userId).where("undo_status", "is", null).execute();
      for (const r of rows) {
        let after: unknown;
        try {
          after = r.after === null ? null : JSON.parse(r.after);
        } catch {
          continue; // an altered record proves nothing
        }
        const { locked_at: at, locked_reason: reason } = (after ?? {}) as { locked_at?: unknown; locked_reason?: unknown };
        if (typeof at === "number") found = { at, reason };
      }
    }
    return found !== null && found.at === Number(account.locked_at) && found.reason === account.locked_reason;
  };
}

/** The permissions the account's roles carry, whatever its state; on PostgreSQL the rows stay FOR SHARE, as in permissionsHeldWithin. */
async function rolePermissions(database: Pick<Database, "dialect">, trx: Kysely<Schema>, userId: string): Promise<Set<string>> {
  const query = trx.selectFrom("user_roles").innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
    .select("role_permissions.permission").where("user_roles.user_id", "=", userId);
  return new Set((await (database.dialect === "postgres" ? query.forShare() : query).execute()).map((r) => r.permission));
}

/**
 * The check each batch (and each step) of a job runs first, in its transaction: throws containErrors.creatorLost when
 * the job's creator no longer stands behind it, which fails the job (nothing of the batch is applied); returns the
 * creator it checked, null for a job without a user creator. `creator`: the spec's (storedCreatorUser); when it names
 * none, the job row's actor is read once, in the first batch's transaction (legacyCreatorWithin: a job recorded before
 * `creatorUser` existed). `lockedByOwnJob`: a containment job's own lock of its creator does not count (above).
 */
export function creatorCheck(database: Pick<Database, "dialect">, jobId: string, creator: string | null, needed: readonly Permission[], options: { lockedByOwnJob?: OwnLockTest } = {}): (trx: Kysely<Schema>) => Promise<string | null> {
  // Found once per run: a job's actor and spec do not change while it runs (a takeover builds the stages again), and
  // an account id, once found, stays an account's.
  let found: { creator: string | null } | undefined = creator === null ? undefined : { creator };
  return async (trx) => {
    if (found === undefined) {
      const row = await trx.selectFrom("jobs").select(["spec", "actor"]).where("id", "=", jobId).executeTakeFirst();
      found = { creator: row ? await legacyCreatorWithin(trx, storedObject(jobId, "spec", row.spec), row.actor) : null };
    }
    const who = found.creator;
    if (who === null) return null;
    const why = await creatorShortfall(database, trx, who, needed, options);
    if (why !== null) throw containErrors.creatorLost(jobId, who, why);
    return who;
  };
}
