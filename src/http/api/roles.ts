// /api/v1/roles and role grants. Reading roles needs accounts.read; creating, deleting, granting and revoking
// need admin: a grant is a privilege change, and anyone who could grant roles could grant themselves admin,
// so accounts.write (which an operator may hand to a help desk) is deliberately not enough. Every change also
// needs a fresh browser session (ASVS 7.5.3): a stolen cookie must not be able to grant its holder admin.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { administrativeOf } from "../../accounts/roles/grant-notice.ts";
import type { Permission } from "../../accounts/roles/permissions.ts";
import { MAX_DESCRIPTION } from "../../accounts/roles/role-store.ts";
import type { App } from "../../app/types.ts";
import { notifyOwner } from "../auth/helpers.ts";
import { auditAPI, ID, SMALL_BODY, text } from "./common.ts";
import { apiErrors } from "./errors.ts";
import { callerOf, callerWithin, can, type Caller } from "./guard.ts";
import type { Kysely } from "kysely";
import type { Schema } from "../../store/schema.ts";
import { targetUser } from "./users.ts";

/**
 * Records a grant made through the API (`api.role.granted`, in `trx`) and, for a role carrying an administrative
 * permission (`administrative` not empty), queues its notices with the event's id as the reference to quote
 * (ASVS 8.2.2, 6.3.7's spirit): to the acting account's owner, and to the account given the role. Whoever sits at an
 * administrator's unlocked computer (or holds its token) makes a confederate an administrator in one request, and the
 * owner's own cleanup (re-authenticate, sign out everywhere, change the password, revoke tokens) never touches that
 * role: only a notice sends the owner to it. Not every grant: a read-only role gives nothing to act with, and mailing
 * each one (a help desk given accounts.read by the dozen) would teach administrators to skip the ones that matter.
 * A notice the outbox refuses (NotifyInputError) is audited by notifyOwner and the grant stands.
 */
async function recordGrant(app: App, request: FastifyRequest, caller: Caller, trx: Kysely<Schema>, grant: { userId: string; role: string; administrative: Permission[] }): Promise<void> {
  const { userId, role, administrative } = grant;
  const event = await auditAPI(app, request, caller, { type: "api.role.granted", subject: userId, data: { role } }, trx);
  if (administrative.length === 0) return;
  // One's own account: the caller holds admin already (stillAdmin), and is told by the grantee's notice below.
  if (userId !== caller.userId) {
    await notifyOwner(app, request, caller.userId, event.id, { type: "administrative-role-given", role, permissions: administrative, grantee: userId }, trx);
  }
  // Without the administrator's address: their network is none of the grantee's mailbox's business.
  await notifyOwner(app, request, userId, event.id, { type: "administrative-role-received", role, permissions: administrative }, trx, { withoutAddress: true });
}

const ROLE_NAME = { type: "string", minLength: 1, maxLength: 40, pattern: "^[a-z][a-z0-9_-]*$" } as const;

/** Registers the role routes on the API plugin. */
export function registerRoleRoutes(api: FastifyInstance, app: App): void {
  const roles = app.accounts.roles;
  /**
   * The check a role change runs where it commits (RoleStore's `within`): its caller still holds admin, read again with
   * the role rows held (callerWithin). A suspect administrator demoted or locked while their grant, revocation or
   * deletion waited on a lock is refused, never served after the demotion answered.
   */
  const stillAdmin = (caller: Caller) => async (trx: Kysely<Schema>): Promise<void> => {
    if (!can(await callerWithin(app, trx, caller), "admin")) throw apiErrors.missingPermission("admin");
  };

  api.get("/roles", { config: { access: "accounts.read" } }, async () => ({ roles: await roles.list() }));

  api.post("/roles", {
    config: { access: "admin", reauth: "required" },
    bodyLimit: SMALL_BODY,
    schema: {
      body: {
        type: "object", required: ["name", "permissions"], additionalProperties: false,
        properties: {
          name: ROLE_NAME,
          description: text(0, MAX_DESCRIPTION),
          permissions: { type: "array", maxItems: 16, items: text(1, 40) },
        },
      },
    },
  }, async (request, reply) => {
    const caller = callerOf(request);
    const body = request.body as { name: string; description?: string; permissions: string[] };
    // The API's record commits with the role (RoleStore's record): a failure leaves neither, and the retry creates it.
    const role = await roles.create({ name: body.name, permissions: body.permissions, ...(body.description !== undefined ? { description: body.description } : {}) }, caller.userId, {
      record: (trx, made) => auditAPI(app, request, caller, { type: "api.role.created", subject: made.name, data: { permissions: made.permissions } }, trx),
    });
    return reply.status(201).send({ role });
  });

  api.delete("/roles/:name", {
    config: { access: "admin", reauth: "required" },
    schema: { params: { type: "object", required: ["name"], additionalProperties: false, properties: { name: ROLE_NAME } } },
  }, async (request, reply) => {
    const caller = callerOf(request);
    const { name } = request.params as { name: string };
    // Refused, atomically, when it would leave nobody able to grant roles again (lock-out), and when the caller lost
    // admin while the deletion waited (stillAdmin).
    await roles.delete(name, caller.userId, { keepAnAdmin: true, within: stillAdmin(caller), record: (trx) => auditAPI(app, request, caller, { type: "api.role.deleted", subject: name }, trx) });
    return reply.status(204).send();
  });

  const GRANT_PARAMS = { type: "object", required: ["id", "role"], additionalProperties: false, properties: { id: ID, role: ROLE_NAME } } as const;

  api.post("/users/:id/roles/:role", { config: { access: "admin", reauth: "required" }, schema: { params: GRANT_PARAMS } }, async (request) => {
    const caller = callerOf(request);
    const { id, role } = request.params as { id: string; role: string };
    const user = await targetUser(app, id);
    // Not to an account still on an initial password someone else chose, for a role with an administrative permission.
    // And checked again where it commits: a grant waiting on a lock must not outlive its administrator's demotion.
    // A grant, its event and (administrative) its notices commit together, after the row is inserted and only if this
    // grant inserted it (recordGrant in `granted`): a grant nobody was told of never stands, and one that changed
    // nothing (another grant, or an undo handing the role back, won the row) is neither recorded nor mailed as made.
    const changed = await roles.grant(user.id, role, caller.userId, {
      refuseInitialPassword: true,
      within: stillAdmin(caller),
      granted: async (trx) => recordGrant(app, request, caller, trx, { userId: user.id, role, administrative: await administrativeOf(trx, role) }),
    });
    return { changed, roles: await roles.rolesOf(user.id) };
  });

  api.delete("/users/:id/roles/:role", { config: { access: "admin", reauth: "required" }, schema: { params: GRANT_PARAMS } }, async (request) => {
    const caller = callerOf(request);
    const { id, role } = request.params as { id: string; role: string };
    const user = await targetUser(app, id);
    // Removing the last usable administrator would leave nobody able to grant roles again (lock-out).
    const changed = await roles.revoke(user.id, role, caller.userId, {
      keepAnAdmin: true, within: stillAdmin(caller), record: (trx) => auditAPI(app, request, caller, { type: "api.role.revoked", subject: user.id, data: { role } }, trx),
    });
    return { changed, roles: await roles.rolesOf(user.id) };
  });
}
