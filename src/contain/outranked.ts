// The outranking rule carried by a job: an API caller without `admin` may not contain accounts holding an
// administrative permission it lacks (src/http/api/contain.ts checks the scope when the job is created). A job's
// batches run later — in the background, after a restart, as `system` — against whoever its users have become, so
// the job records what its creator lacked and every batch leaves alone the users who hold it by then (ASVS 8.2.2).
import type { Kysely } from "kysely";
import { parseStoredData } from "../audit/read-events.ts";
import type { DialectName } from "../store/database.ts";
import type { Schema } from "../store/schema.ts";
import { containErrors } from "./errors.ts";
import { inIds } from "./levers/common.ts";

/**
 * The audit event of the users a batch left alone rather than act on, and why (subject: the job). `reason` is
 * "outranks-creator" (they hold `holds`, which the job's creator lacked) or "unreadable-job" (an undo: another
 * job whose row cannot be read may hold them contained).
 */
export const LEFT_ALONE_EVENT = "contain.job.left-alone";

// Bounds a stored list read back from the job row: there are a handful of administrative permissions.
const MAX_LACKS = 32;

/**
 * The administrative permissions the job's creator lacked, from its stored spec: [] for a job created by an
 * administrator or the CLI, and for one recorded before the field existed (those behave as before). Anything other
 * than a short list of permission names is refused with the job's coded error (fails closed, ASVS 16.5.3): a row
 * altered to `"creatorLacks": "admin"` must not read as "lacked nothing".
 *
 * @example
 * storedCreatorLacks(job.id, { creatorLacks: ["admin", "accounts.write"] }) // ["admin", "accounts.write"]
 */
export function storedCreatorLacks(jobId: string, spec: { creatorLacks?: unknown }): string[] {
  const lacks = spec.creatorLacks;
  if (lacks === undefined) return [];
  if (!Array.isArray(lacks) || lacks.length > MAX_LACKS || !lacks.every((p) => typeof p === "string" && /^[a-z.]{1,40}$/.test(p))) {
    throw containErrors.corruptJob(jobId, "its stored spec's creatorLacks is not a list of permission names");
  }
  return lacks as string[];
}

/**
 * Of `userIds`, those that now hold (through a role) one of `permissions`, each with the ones they hold, in the
 * caller's transaction: what a batch reads just before it acts, so a grant made after the job was created counts.
 */
export async function holdersAmong(trx: Kysely<Schema>, dialect: DialectName, userIds: readonly string[], permissions: readonly string[]): Promise<Map<string, string[]>> {
  const held = new Map<string, string[]>();
  if (userIds.length === 0 || permissions.length === 0) return held;
  const rows = await trx.selectFrom("user_roles")
    .innerJoin("role_permissions", "role_permissions.role", "user_roles.role")
    .where("role_permissions.permission", "in", [...permissions])
    .where(inIds(dialect, "user_roles.user_id", userIds))
    .select(["user_roles.user_id", "role_permissions.permission"]).distinct()
    .orderBy("user_roles.user_id").orderBy("role_permissions.permission")
    .execute();
  for (const r of rows) {
    const list = held.get(r.user_id) ?? [];
    list.push(r.permission);
    held.set(r.user_id, list);
  }
  return held;
}

/** Of `roles`, those that now carry one of `permissions`: a re-grant of one would hand the user what the creator lacked. */
export async function rolesCarrying(trx: Kysely<Schema>, roles: readonly string[], permissions: readonly string[]): Promise<Set<string>> {
  if (roles.length === 0 || permissions.length === 0) return new Set();
  const rows = await trx.selectFrom("role_permissions").select("role").distinct()
    .where("role", "in", [...new Set(roles)]).where("permission", "in", [...permissions]).execute();
  return new Set(rows.map((r) => r.role));
}

/** A user a containment job's batch left alone under the outranking rule, and what they held then. */
export interface LeftAloneUser {
  userId: string;
  holds: string[];
}

/**
 * The users containment job `jobId` left alone under the outranking rule, from its LEFT_ALONE_EVENT audit events
 * (at most `limit`, in batch order), for the job's view. An event whose data was altered is passed over.
 */
export async function leftAloneByJob(db: Kysely<Schema>, jobId: string, limit: number): Promise<LeftAloneUser[]> {
  const rows = await db.selectFrom("audit_events").select("data").where("type", "=", LEFT_ALONE_EVENT).where("subject", "=", jobId)
    .orderBy("seq").limit(limit).execute();
  const out: LeftAloneUser[] = [];
  for (const row of rows) {
    const users = parseStoredData(row.data).data?.["users"];
    if (!Array.isArray(users)) continue;
    for (const u of users as unknown[]) {
      const { userId, holds } = (u ?? {}) as { userId?: unknown; holds?: unknown };
      if (typeof userId !== "string") continue;
      out.push({ userId, holds: Array.isArray(holds) ? holds.filter((h): h is string => typeof h === "string") : [] });
      if (out.length >= limit) return out;
    }
  }
  return out;
}
