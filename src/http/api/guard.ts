// The /api/v1 access guard: every route declares `config.access` (../auth-context.ts) and this hook enforces
// it before the body is even parsed. Deny by default: no declaration, no caller, no permission → refused.
import type { FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import { allows, permissionsHeldWithin, type Permission } from "../../accounts/roles/index.ts";
import type { Schema } from "../../store/schema.ts";
import type { App } from "../../app/types.ts";
import { gateOf, isFresh, refusedNotFresh, tokenHeldForMFA } from "../auth/authenticate.ts";
import { tokenErrors } from "../../accounts/tokens/index.ts";
import { sessionErrors } from "../../accounts/sessions/index.ts";
import { apiErrors } from "./errors.ts";

/** The caller of an /api/v1 request once the guard has admitted it. */
export interface Caller {
  userId: string;
  via: "session" | "token";
  sessionId: string | null;
  tokenId: string | null;
  /** When the calling token expires (null: never, or a session). */
  tokenExpiresAt: number | null;
  /** Permissions the user holds through roles. */
  held: ReadonlySet<string>;
  /** The token's scopes (null for a session: a session acts with everything the user holds). */
  scopes: ReadonlySet<string> | null;
}

const callers = new WeakMap<FastifyRequest, Caller>();

/**
 * Whether the caller may use `permission` now: the user's roles must allow it and, for a token, its scopes
 * too (ASVS 8.2.1, 8.3.1: authorization at the trusted service layer, least privilege for tokens).
 *
 * @example
 * can(caller, "accounts.write") // false for a token scoped to accounts.read, whatever the user's roles
 */
export function can(caller: Caller, permission: Permission): boolean {
  return allows(caller.held, permission) && (caller.scopes === null || allows(caller.scopes, permission));
}

/**
 * The caller as it stands inside transaction `trx`, where its change commits: the permissions its account holds now
 * (permissionsHeldWithin: on PostgreSQL a demotion or lock in flight is waited for, and a later one waits for `trx`),
 * its token's scopes as before. The guard read them when the request began; an administrator demoted since then
 * (a suspect, in a breach) must not finish a privileged change that was waiting on a lock.
 *
 * @example
 * if (!can(await callerWithin(app, trx, caller), "admin")) throw apiErrors.missingPermission("admin");
 */
export async function callerWithin(app: App, trx: Kysely<Schema>, caller: Caller): Promise<Caller> {
  return { ...caller, held: await permissionsHeldWithin(app.db, trx, caller.userId) };
}

/** The admitted caller of a request; throws 401 when the guard did not admit one (fail closed). */
export function callerOf(request: FastifyRequest): Caller {
  const caller = callers.get(request);
  if (!caller) throw apiErrors.unauthenticated();
  return caller;
}

/**
 * Refuses (403 BULWARK_ERR_REAUTH_REQUIRED) a browser session that is not fresh (docs/http-auth.md, freshness
 * rule); token callers pass, since a token is its own credential and has no authentication to repeat. For
 * routes whose sensitivity depends on the body (a real containment job, not a dry run), the handler calls it.
 *
 * The refusal is recorded against the account (refusedNotFresh).
 *
 * @example
 * if (!body.dryRun) await assertFresh(app, request); // before anything is created
 */
export async function assertFresh(app: App, request: FastifyRequest): Promise<void> {
  const auth = request.auth ?? null;
  if (auth === null || auth.via === "token") return;
  // A session caller without its cookie state cannot be judged fresh: refused (fail closed).
  if (!request.cookieSession || !isFresh(app, request.cookieSession.session)) throw await refusedNotFresh(app, request);
}

/**
 * Builds the onRequest hook that enforces `config.access` on every route of the API plugin.
 * Runs after the global hooks have set `request.auth` (a token, or a session whose request passed the cross-site half
 * of the CSRF wall: a ride from another site is refused and recorded as one before this guard can refuse it as the
 * victim's own attempt); the CSRF token is checked later, once the body is parsed.
 */
export function accessGuard(app: App): (request: FastifyRequest) => Promise<void> {
  return async function guard(request) {
    const access = request.routeOptions.config.access;
    // A route without a declaration is refused to everyone; test/api-routes.test.ts fails on it too.
    if (access === undefined) throw apiErrors.noAccessDeclared(`${request.method} ${request.routeOptions.url ?? request.url}`);
    if (access === "public") return;
    // `auth` is undefined when no authentication hook ran at all: treated like an anonymous caller.
    const auth = request.auth ?? null;
    if (auth === null) throw request.sessionReplaced ? sessionErrors.refused("replaced") : apiErrors.unauthenticated();
    const held = await app.accounts.roles.permissionsOf(auth.userId);
    if (auth.via === "session") {
      // Only a fully signed-in session reaches the API: not one whose second factor is still due (ASVS 6.3.3),
      // nor an administrator's who has not enrolled MFA yet, nor one that must first change its password. The
      // gate is the authentication layer's (src/http/auth); a session without its cookie state is refused.
      if (!request.cookieSession) throw apiErrors.unauthenticated();
      const gate = await gateOf(app, request);
      if (gate !== "open") throw apiErrors.gated(gate);
      // ASVS 7.5.3: a highly sensitive operation needs a recent authentication, so a stolen cookie (and the CSRF
      // token it yields) is not enough once the re-authentication window has passed. Checked after the cross-site
      // check and before the CSRF token and the body are read, like the /auth routes.
      if (request.routeOptions.config.reauth === "required") await assertFresh(app, request);
    } else if (await tokenHeldForMFA(app, request, { held })) {
      // A token is held like its owner's session: while the MFA policy in force requires a factor of the owner and
      // they hold none, it acts for nobody (ASVS 6.3.3). Judged from the permissions read above and the owner's factors
      // verify read: no extra query.
      throw tokenErrors.ownerMFARequired();
    }
    const caller: Caller = {
      userId: auth.userId, via: auth.via, sessionId: auth.sessionId, tokenId: auth.tokenId, tokenExpiresAt: auth.tokenExpiresAt, held,
      // A token with no scope list grants nothing (fail closed), never "everything the user holds".
      scopes: auth.via === "token" ? new Set(auth.scopes ?? []) : null,
    };
    if (access !== "authenticated") {
      if (!allows(held, access)) throw apiErrors.missingPermission(access);
      if (caller.scopes !== null && !allows(caller.scopes, access)) throw apiErrors.missingScope(access);
    }
    callers.set(request, caller);
  };
}
