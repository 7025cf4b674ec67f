// What a grant of an administrative role owes the account given it: a notice (ASVS 8.2.2, 6.3.7's spirit). The API
// (src/http/api/roles.ts) also tells the acting account; a grant from the command line has no acting account, so only
// the grantee is told — as the undo of demote-inactive-admins made from the CLI does. Whoever holds a shell on a
// server (SourceLair 2014: root on the application host) could otherwise make an account of theirs, or a dormant one
// whose password they hold, an administrator with nobody told.
import type { Kysely } from "kysely";
import type { AuditLog } from "../../audit/index.ts";
import type { Clock } from "../../lib/clock.ts";
import { queueSecurityNotice, type Outbox } from "../../notify/index.ts";
import type { Schema } from "../../store/schema.ts";
import { ADMINISTRATIVE, type Permission } from "./permissions.ts";

/** Audited, in the grant's transaction, when the grantee's address cannot be mailed: the grant stands, untold. */
export const GRANT_NOTICE_REFUSED = "role.grant.notice.refused";

/** The administrative permissions (the MFA policy's: permissions.ts) that `role` carries, read in `trx`; sorted. */
export async function administrativeOf(trx: Kysely<Schema>, role: string): Promise<Permission[]> {
  const rows = await trx.selectFrom("role_permissions").select("permission").where("role", "=", role).execute();
  return rows.map((r) => r.permission as Permission).filter((p) => ADMINISTRATIVE.has(p)).sort();
}

export interface GrantNoticeDeps {
  audit: AuditLog;
  outbox: Outbox;
  clock: Clock;
  /** The service's name as users know it (config.serviceName). */
  appName: string;
}

/**
 * Queues, in `trx` (the grant's transaction, after its row and its `role.granted` event `eventId`), the
 * "administrative-role-received" notice to `userId` when `role` carries an administrative permission. Without the
 * request's address: there is none, and an administrator's network is none of the mailbox's business. An address the
 * outbox refuses is audited (GRANT_NOTICE_REFUSED, actor `actor`) instead, and the grant stands.
 *
 * @example
 * await roles.grant(user.id, "admin", actor, { granted: (trx, event) => tellGrantee(trx, deps, { userId: user.id, role: "admin", eventId: event.id, actor }) });
 */
export async function tellGrantee(
  trx: Kysely<Schema>, deps: GrantNoticeDeps, grant: { userId: string; role: string; eventId: string; actor: string },
): Promise<"queued" | "refused" | "not administrative"> {
  const permissions = await administrativeOf(trx, grant.role);
  if (permissions.length === 0) return "not administrative";
  const user = await trx.selectFrom("users").select("email").where("id", "=", grant.userId).executeTakeFirstOrThrow();
  const told = await queueSecurityNotice(
    deps.outbox,
    { eventId: grant.eventId, to: user.email, accountId: grant.userId, at: deps.clock.now(), ip: null, event: { type: "administrative-role-received", role: grant.role, permissions } },
    { appName: deps.appName, executor: trx },
    async (reason) => {
      await deps.audit.appendIn(trx, { type: GRANT_NOTICE_REFUSED, actor: grant.actor, subject: grant.userId, data: { role: grant.role, event: grant.eventId, reason } });
    },
  );
  return told === "refused" ? "refused" : "queued";
}
