// demote-inactive-admins: users holding a role with an administrative permission and no login for N days
// (never logged in: counted from account creation) lose those roles — Drupal.org's lesson (seed 000). Who is inactive
// is judged as of the job's time and recorded with its scope (targets); each grant's end is audited (role.revoked). Reversible,
// except for grants an administrator decided about after the job (decidedSince); a role handed back is recorded and
// told as a grant is (tellHandedBack).
import type { Kysely } from "kysely";
import { ADMINISTRATIVE } from "../../accounts/roles/permissions.ts";
import type { SecurityEvent } from "../../notify/index.ts";
import { queueNotices, type ChangeRecord, type LeverContext, type LeverEvent, type NoticeDue, type UndoContext, type UserLever } from "../lever.ts";
import type { DialectName } from "../../store/database.ts";
import { DAY_MS, inIds, recordedTargets, SAMPLE_SIZE } from "./common.ts";
import type { Schema } from "../../store/schema.ts";

function adminRoles(db: Kysely<Schema>) {
  return db.selectFrom("role_permissions").select("role_permissions.role").where("role_permissions.permission", "in", [...ADMINISTRATIVE]);
}

const NAME = "demote-inactive-admins";

function cutoff(ctx: LeverContext): number {
  return ctx.at - ctx.options.inactiveDays * DAY_MS;
}

function inactiveGrants(db: Kysely<Schema>, ctx: LeverContext) {
  return db
    .selectFrom("user_roles")
    .innerJoin("users", "users.id", "user_roles.user_id")
    .where("user_roles.role", "in", adminRoles(db))
    .where((eb) => eb(eb.fn.coalesce("users.last_login_at", "users.created_at"), "<", cutoff(ctx)));
}

/**
 * Among `userIds`, the users the job demotes. Its targets recorded at creation (ctx.targetsRecorded): the holders of an
 * administrative role inactive as of the job's time, as the dry run counted them. Judged again at the batch's time, a
 * sign-in after the job was created (an intruder holding a dormant administrator's password, while the job waited
 * for its batch) overwrote last_login_at and made the account "active": the job left it its power. No test of
 * last_login_at at the batch can tell that sign-in from one inside the window: it keeps only the newest. A job
 * recorded before targets existed judges at the batch, as it did.
 */
function demotedAmong(db: Kysely<Schema>, userIds: readonly string[], ctx: LeverContext) {
  if (ctx.targetsRecorded === true) return recordedTargets(db, NAME, userIds, ctx);
  return db.selectFrom("users").select("users.id as user_id")
    .where(inIds(ctx.dialect, "users.id", userIds))
    .where((w) => w(w.fn.coalesce("users.last_login_at", "users.created_at"), "<", cutoff(ctx)));
}

function grantKey(userId: string, role: string): string {
  return `${userId}\u0000${role}`;
}

// The audited changes of who holds which role, and of the roles themselves (RoleStore appends each in the
// transaction that makes the change, so the log cannot miss one that committed).
const GRANT_EVENTS = ["role.granted", "role.revoked"];
const ROLE_EVENTS = ["role.created", "role.deleted"];

/**
 * The grants among `changes` that someone decided about at or after the job's action time (`job.at`): the role
 * granted to or revoked from that user, or the role itself deleted or created again (its permissions may differ).
 * The job deleted the grant, so there is no current value to compare with: absent now says nothing about whether
 * an administrator re-granted and then revoked it on purpose, and re-granting would overrule that decision. The
 * audit log says. An event in the job's own millisecond counts as later: when in doubt, the role stays removed.
 */
async function decidedSince(trx: Kysely<Schema>, dialect: DialectName, changes: readonly ChangeRecord[], job: { jobId: string; at: number }): Promise<Set<string>> {
  const since = job.at;
  const decided = new Set<string>();
  if (changes.length === 0) return decided;
  const users = [...new Set(changes.map((c) => c.userId))];
  const roles = [...new Set(changes.map((c) => c.entity))];
  // Found through the (type, at) index: the role events since the job are few, whatever the size of the log.
  const events = await trx.selectFrom("audit_events").select(["type", "subject", "data"])
    .where("type", "in", [...GRANT_EVENTS, ...ROLE_EVENTS])
    .where("at", ">=", since)
    .where((eb) => eb.or([
      eb.and([eb("type", "in", GRANT_EVENTS), inIds(dialect, "subject", users)]),
      eb.and([eb("type", "in", ROLE_EVENTS), eb("subject", "in", roles)]),
    ]))
    .execute();
  const redefined = new Set<string>();
  for (const e of events) {
    if (ROLE_EVENTS.includes(e.type)) {
      redefined.add(e.subject);
      continue;
    }
    // The job's own revocations (apply's role.revoked, naming it) are what the undo reverses, not a decision since.
    if (e.type === "role.revoked" && isOwnRevocation(e.data, job.jobId)) continue;
    const role = roleOf(e.data);
    if (role !== null) decided.add(grantKey(e.subject, role));
    // An event whose data cannot be read (an altered row: `audit verify` reports it) may be about any of the
    // user's roles: every one of them stays removed.
    else for (const c of changes) if (c.userId === e.subject) decided.add(grantKey(c.userId, c.entity));
  }
  for (const c of changes) if (redefined.has(c.entity)) decided.add(grantKey(c.userId, c.entity));
  return decided;
}

/** Whether a `role.revoked` event's data names job `jobId` and this lever (apply's events, the engine adding both). */
function isOwnRevocation(data: string, jobId: string): boolean {
  try {
    const d = JSON.parse(data) as { jobId?: unknown; lever?: unknown } | null;
    return d?.jobId === jobId && d.lever === NAME;
  } catch {
    return false;
  }
}

/** The role a `role.granted`/`role.revoked` event names, or null when its stored data does not say. */
function roleOf(data: string): string | null {
  try {
    const role = (JSON.parse(data) as { role?: unknown } | null)?.role;
    return typeof role === "string" ? role : null;
  } catch {
    return null;
  }
}

/**
 * Records and tells, in the undo step's transaction, the grants an undo handed back (ASVS 8.2.2, 6.3.7's spirit). An
 * undo makes an account an administrator again as surely as POST /api/v1/users/:id/roles/:role does, and an intruder
 * holding an administrator's token (or session) would otherwise undo the hygiene job that demoted a dormant
 * administrator whose password it holds, instead of granting, with nobody told.
 *
 * Each grant gets the store's `role.granted` event (subject: the user, `data.role`), not the API's `api.role.granted`:
 * `role.granted` is what every path that grants writes (RoleStore for the API and the CLI, this) and what a responder
 * filtering on grants reads — and what `decidedSince` above reads, so a later job's undo sees this grant as a decision.
 * A role carrying an administrative permission is told as an API grant is (src/http/api/roles.ts `recordGrant`, same
 * templates): "given" to the account whose request made the undo (not for its own role: its "received" tells it),
 * "received" to the account that holds the role again. Through the job's notifier, keyed by undo job, user and role:
 * the step commits its restores, events and notices together, and a resumed step queues nothing twice. A CLI-made undo
 * has no acting account: only "received" is queued (the events name the job's actor).
 */
async function tellHandedBack(trx: Kysely<Schema>, restored: readonly ChangeRecord[], ctx: UndoContext): Promise<{ events: LeverEvent[]; queued: number; refused: number }> {
  if (restored.length === 0) return { events: [], queued: 0, refused: 0 };
  const events: LeverEvent[] = restored.map((c) => ({ type: "role.granted", subject: c.userId, data: { role: c.entity, undoOf: ctx.undoOf.jobId } }));
  const roles = [...new Set(restored.map((c) => c.entity))];
  const rows = await trx.selectFrom("role_permissions").select(["role", "permission"]).where("role", "in", roles).where("permission", "in", [...ADMINISTRATIVE]).execute();
  const administrative = new Map<string, string[]>();
  for (const r of rows) administrative.set(r.role, [...(administrative.get(r.role) ?? []), r.permission]);
  for (const list of administrative.values()) list.sort();
  const handed = restored.filter((c) => administrative.has(c.entity));
  if (handed.length === 0) return { events, queued: 0, refused: 0 };
  const ids = [...new Set([...handed.map((c) => c.userId), ...(ctx.undoneBy !== null ? [ctx.undoneBy] : [])])];
  const emailOf = new Map((await trx.selectFrom("users").select(["id", "email"]).where(inIds(ctx.dialect, "id", ids)).execute()).map((u) => [u.id, u.email]));
  const due = new Map<string, NoticeDue>();
  const owe = (userId: string, event: SecurityEvent): void => {
    const email = emailOf.get(userId);
    if (email === undefined) return; // the undo restored only existing users; the acting account may be gone: nobody to tell
    const entry = due.get(userId) ?? { id: userId, email, events: [] };
    entry.events.push(event);
    due.set(userId, entry);
  };
  for (const c of handed) {
    const permissions = administrative.get(c.entity) as string[];
    if (ctx.undoneBy !== null && ctx.undoneBy !== c.userId) owe(ctx.undoneBy, { type: "administrative-role-given", role: c.entity, permissions, grantee: c.userId });
    owe(c.userId, { type: "administrative-role-received", role: c.entity, permissions });
  }
  const told = await queueNotices(trx, ctx, [...due.values()]);
  return { events: [...events, ...told.events], queued: told.queued, refused: told.refused };
}

export const demoteInactiveAdmins = {
  kind: "user",
  name: NAME,
  description: "Remove administrative roles from users with no login for --inactive-days (default 90)",
  async dryRun(db, scope, ctx) {
    const q = inactiveGrants(db, ctx).where("users.id", "in", scope);
    const row = await q.select((eb) => [eb.fn.count<number>("users.id").distinct().as("users"), eb.fn.countAll<number>().as("grants")]).executeTakeFirst();
    const sample = await q.select("users.id").distinct().orderBy("users.id").limit(SAMPLE_SIZE).execute();
    return { counts: { users: Number(row?.users ?? 0), roleGrants: Number(row?.grants ?? 0) }, sample: sample.map((r) => r.id) };
  },
  targets(db, ctx) {
    return db.selectFrom("users").select("users.id").where("users.id", "in", inactiveGrants(db, ctx).select("user_roles.user_id"));
  },
  async demotes(trx, userIds, ctx) {
    if (userIds.length === 0) return [];
    const rows = await trx.selectFrom("user_roles").select("user_roles.user_id").distinct()
      .where("user_roles.role", "in", adminRoles(trx))
      .where("user_roles.user_id", "in", demotedAmong(trx, userIds, ctx)).execute();
    return rows.map((r) => r.user_id);
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0, roleGrants: 0 }, changes: [] };
    // One DELETE … RETURNING: only grants this statement removed are counted and recorded. A select followed by
    // deletes recorded a grant an administrator revoked in between (PostgreSQL, READ COMMITTED: the delete then
    // removed nothing), and the undo handed the revoked role back.
    const grants = await trx
      .deleteFrom("user_roles")
      .where(inIds(ctx.dialect, "user_roles.user_id", userIds))
      .where("user_roles.role", "in", adminRoles(trx))
      .where("user_roles.user_id", "in", demotedAmong(trx, userIds, ctx))
      .returning(["user_roles.user_id", "user_roles.role", "user_roles.granted_at", "user_roles.granted_by"])
      .execute();
    grants.sort((a, b) => (a.user_id === b.user_id ? (a.role < b.role ? -1 : 1) : a.user_id < b.user_id ? -1 : 1));
    return {
      counts: { users: new Set(grants.map((g) => g.user_id)).size, roleGrants: grants.length },
      changes: grants.map((g) => ({ userId: g.user_id, entity: g.role, before: { granted_at: Number(g.granted_at), granted_by: g.granted_by }, after: null })),
      // Each grant's end on the account's own trail, as every other end of a grant writes it (RoleStore's revoke and
      // role deletion) and as the undo writes role.granted for each one it hands back (ASVS 16.2.1, 16.3.3). The engine
      // adds jobId and lever and names the job's acting actor; decidedSince does not take these for a later decision.
      events: grants.map((g) => ({ type: "role.revoked", subject: g.user_id, data: { role: g.role } })),
    };
  },
  async undo(trx, changes, ctx) {
    const restored: ChangeRecord[] = [];
    const skipped: ChangeRecord[] = [];
    const decided = await decidedSince(trx, ctx.dialect, changes, ctx.undoOf);
    for (const c of changes) {
      // Re-granted since, the role or user no longer exists, the account was disabled, or an administrator decided about
      // this grant after the job (granted and revoked it again, say): leave alone and report.
      const present = await trx.selectFrom("user_roles").select("user_id").where("user_id", "=", c.userId).where("role", "=", c.entity).executeTakeFirst();
      const role = await trx.selectFrom("roles").select("name").where("name", "=", c.entity).executeTakeFirst();
      // An account disabled since (its owner left) is not handed an administrative role back: RoleStore.grant refuses
      // one to a disabled account, and the undo must not be the way around it (test/new-code-thirty-red-team). A locked
      // one is: the job that demoted it may have locked it too (lock-accounts beside this lever), and the same undo
      // lifts that lock.
      const user = await trx.selectFrom("users").select(["id", "status"]).where("id", "=", c.userId).executeTakeFirst();
      if (present || !role || !user || user.status !== "active" || decided.has(grantKey(c.userId, c.entity))) {
        skipped.push(c);
        continue;
      }
      // Insert-if-absent: a grant of the same role that committed after the look above (an administrator on another
      // node) holds it now; the undo then hands nothing back (and tells nothing), rather than fail the batch on the key.
      const inserted = await trx.insertInto("user_roles").values({ user_id: c.userId, role: c.entity, granted_at: c.before["granted_at"] as number, granted_by: c.before["granted_by"] as string })
        .onConflict((oc) => oc.columns(["user_id", "role"]).doNothing()).executeTakeFirst();
      if (Number(inserted.numInsertedOrUpdatedRows ?? 0n) !== 1) {
        skipped.push(c);
        continue;
      }
      restored.push(c);
    }
    const told = await tellHandedBack(trx, restored, ctx);
    // Counted when there is something to count: an undo that told nobody (no administrative role, no notifier) reads as before.
    const counts = Object.fromEntries(Object.entries({ noticesQueued: told.queued, noticesRefused: told.refused }).filter(([, n]) => n > 0));
    return { restored, skipped, events: told.events, counts };
  },
} satisfies UserLever;
