// The global hooks of the account surface, in order: authenticate (cookie or bearer token → request.auth), refuse
// cross-site unsafe requests (CSRF, Origin / Sec-Fetch-Site), hold half-finished logins at their gate, enforce each
// route's declared access, refuse token-less unsafe requests (CSRF, once the body is parsed), and mark responses that
// depend on the caller `Cache-Control: no-store`.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { sql } from "kysely";
import { API_ACTION, crossSiteVerdict, csrfErrors, verifyCSRF, type CrossSiteVerdict } from "../../accounts/csrf/index.ts";
import { allows, holdsAdministrative, isPermission } from "../../accounts/roles/index.ts";
import { clearSessionCookie, parseSessionToken, readSessionCookie, SESSION_COOKIE, sessionErrors, type Session } from "../../accounts/sessions/index.ts";
import type { App } from "../../app/types.ts";
import type { RequestAuth } from "../auth-context.ts";
import { tokenErrors } from "../../accounts/tokens/index.ts";
import { httpAuthErrors } from "./errors.ts";
import { clientIP, routeOf } from "./request-info.ts";
import { permissionsOf } from "./permissions.ts";
import { ALL_PENDING, type Gate } from "./state.ts";
import { ipBucket } from "../../accounts/flood/ip-bucket.ts";
import { unrecordedCounts } from "../../accounts/login/refusal-sampler.ts";
import { storeBusyError } from "../../store/errors.ts";
import { sqliteWriteLockFree } from "../../store/unheld.ts";

const BEARER = /^Bearer\s+(\S{1,512})$/i;

/**
 * Whether a user who has no second factor must enrol one before the session opens, under the BULWARK_REQUIRE_MFA
 * policy (ASVS 6.3.3): everyone with `all`, holders of an administrative permission with `administrative`,
 * nobody with `none`. Reads the user's permissions only under `administrative`, and not when the caller passes
 * those it already read (`held`).
 */
export async function mfaEnrolmentDue(app: App, userId: string, options: { held?: ReadonlySet<string> } = {}): Promise<boolean> {
  const policy = app.config.requireMFA;
  if (policy === "all") return true;
  if (policy === "none") return false;
  return holdsAdministrative(options.held ?? (await permissionsOf(app.db, userId)));
}

/**
 * Whether a token caller is held by the MFA policy in force: its owner is due to enrol a factor (mfaEnrolmentDue,
 * judged now, not when the token was minted) and holds none. A token is minted from a fully signed-in session, so
 * under the policy of that day; one an administrator without a factor minted under BULWARK_REQUIRE_MFA=none (or
 * before being given an administrative role, or left after containment removed the factors) kept the whole admin API
 * once the policy was raised, while the same account's session was held at enrolment (ASVS 6.3.3, 8.2.1). Refused
 * until the owner enrols a factor or the token is revoked. Costs no query when the owner has a factor (verify read it)
 * or the policy is `none`, nor under `administrative` when the caller passes the permissions it read (`held`).
 *
 * @example
 * if (await tokenHeldForMFA(app, request, { held })) throw tokenErrors.ownerMFARequired();
 */
export async function tokenHeldForMFA(app: App, request: FastifyRequest, options: { held?: ReadonlySet<string> } = {}): Promise<boolean> {
  const auth = request.auth;
  if (!auth || auth.via !== "token" || auth.ownerHasMFA !== false) return false;
  return mfaEnrolmentDue(app, auth.userId, options);
}

/** Computes (once per request) where a session stands: MFA due, MFA enrolment due, password change due, or open. */
export async function gateOf(app: App, request: FastifyRequest): Promise<Gate> {
  const cs = request.cookieSession;
  if (!cs || !request.auth) return "open";
  if (cs.gate !== null) return cs.gate;
  const userId = request.auth.userId;
  let gate: Gate = "open";
  if (cs.session.aal < 2) {
    const [hasMfa, enrol] = await Promise.all([app.accounts.mfa.hasMfa(userId), mfaEnrolmentDue(app, userId)]);
    if (hasMfa) gate = "mfa-verify";
    else if (enrol) gate = "mfa-enrol";
  }
  if (gate === "open") {
    const user = await app.accounts.users.getById(userId);
    if (user?.passwordMustChange) gate = "password-change";
  }
  cs.gate = gate;
  return gate;
}

/**
 * How long the api.token.used append may wait for a lock on PostgreSQL (the audit head another transaction holds): the
 * bookkeeping of a token's request, whose failure is swallowed, waited the pool's full lock_timeout (5 s) before the
 * request ran, and a change then waited the bound again for its own record; with the failed sample given back, every
 * call of the token waited again (test/bounded-waits-d-red-team.test.ts). Long enough for appends that take the head
 * in turn, far shorter than the bound.
 */
export const TOKEN_USE_LOCK_WAIT_MS = 200;

/** The lock wait the next api.token.used append gets (per server): none while the last one failed as busy. */
interface TokenUseWait {
  busy: boolean;
}

/**
 * Appends an api.token.used event with a bounded wait, as recordSampled (a failure logged, never thrown; false then).
 * On PostgreSQL in its own transaction with lock_timeout TOKEN_USE_LOCK_WAIT_MS; after an append failed as busy (the
 * head held past it), the next ones back off: they do not wait at all (1 ms) until one is written, so while the head
 * stays held each token request costs a failed try, not the wait, and its use goes in the event its key's first request
 * once the head is free writes (the sample is given back, its counts carried). A process that stops while the head is
 * held leaves those uses unrecorded but in its log, and counted by the shutdown's api.token.uses.unrecorded when that
 * can be written. SQLite: as recordSampled, skipped (false, as a failure) while another process holds the file's write
 * lock, rather than waiting its busy timeout before the request runs (test/sqlite-busy-red-team.test.ts).
 */
async function recordTokenUse(app: App, request: FastifyRequest, wait: TokenUseWait, event: Parameters<App["audit"]["append"]>[0]): Promise<boolean> {
  if (app.db.dialect !== "postgres") return (await sqliteWriteLockFree(app.db)) ? recordSampled(request, event, app) : false;
  try {
    await app.db.transaction(async (trx) => {
      await sql.raw(`SET LOCAL lock_timeout = ${wait.busy ? 1 : TOKEN_USE_LOCK_WAIT_MS}`).execute(trx);
      await app.audit.appendIn(trx, event);
    });
    wait.busy = false;
    return true;
  } catch (failure) {
    if (storeBusyError(failure) !== null) wait.busy = true;
    request.log.error({ err: failure, event: event.type, subject: event.subject, data: event.data }, "a sampled audit event could not be written");
    return false;
  }
}

async function authenticate(app: App, request: FastifyRequest, reply: FastifyReply, tokenUseWait: TokenUseWait): Promise<void> {
  request.auth = null;
  request.cookieSession = null;
  request.sessionReplaced = false;
  const authorization = request.headers.authorization;
  if (typeof authorization === "string" && authorization.length > 0) {
    // A bearer token: nothing ambient, so no CSRF. An invalid one is refused, never downgraded to anonymous.
    const m = BEARER.exec(authorization.trim());
    if (!m) throw httpAuthErrors.tokenInvalid();
    const verdict = await app.accounts.tokens.verify(m[1] as string, clientIP(request));
    if (!verdict.valid) {
      // A genuine token refused (revoked, expired, its account disabled or locked) is recorded against the account,
      // sampled per token: a thief still using a leaked token after its revocation left no trace of where it was.
      // Made-up secrets stay unrecorded: they name nothing.
      const genuine = verdict.reason === "revoked" || verdict.reason === "expired" || verdict.reason === "account-disabled" ? await app.accounts.tokens.ownerOf(m[1] as string) : null;
      if (genuine) {
        const sample = app.accounts.callerRefusals.take(`token-refused:${genuine.tokenId}`, app.clock.now());
        if (sample.record) {
          await recordSampled(request, {
            type: "api.token.refused", actor: "anonymous", subject: genuine.userId, requestId: request.id,
            data: { tokenId: genuine.tokenId, reason: verdict.reason, ip: clientIP(request), route: routeOf(request), ...unrecordedCounts(sample) },
          }, app);
        }
      }
      throw httpAuthErrors.tokenInvalid();
    }
    request.auth = { userId: verdict.userId, via: "token", sessionId: null, tokenId: verdict.tokenId, tokenExpiresAt: verdict.expiresAt, scopes: [...verdict.scopes], aal: 1, ownerHasMFA: verdict.ownerHasMFA };
    // Its use is recorded too, reads included: the first request of each hour from each address (an IPv6 client by its
    // /64, one host's share, as flood control counts it: a /48 is often a provider's, shared by its customers), so a
    // thief's use of a leaked token from anywhere new is in the log with the route it asked for, while a script polling
    // all day from one host writes 24 events, not thousands (app.accounts.tokenUses). Only changes through the API were
    // recorded: a token paging through every account's address or the audit log left only its last-use time and
    // address, written over a minute later, and a responder could not scope what it read. An event that could not be
    // written is given back: the address's next request is recorded. The write never holds the request for long
    // (recordTokenUse: a short lock wait on PostgreSQL, none at all after one failed as busy).
    const ip = clientIP(request);
    const key = `${verdict.tokenId}:${ip === null ? "" : ipBucket(ip)}`;
    const sample = app.accounts.tokenUses.take(key, app.clock.now());
    if (sample.record) {
      const written = await recordTokenUse(app, request, tokenUseWait, {
        type: "api.token.used", actor: verdict.userId, subject: verdict.userId, requestId: request.id,
        data: { tokenId: verdict.tokenId, ip, route: routeOf(request), ...unrecordedCounts(sample) },
      });
      if (!written) app.accounts.tokenUses.giveBack(key, sample);
    }
    return;
  }
  const cookieHeader = request.headers.cookie;
  if (typeof cookieHeader !== "string" || !cookieHeader.includes(SESSION_COOKIE)) return;
  const token = readSessionCookie(cookieHeader);
  const result = token === null ? null : await app.accounts.sessions.validate(token);
  if (!result || !result.valid || result.userId === null) {
    // A dead or junk cookie is removed so the browser stops presenting it. Not one a rotation replaced a moment
    // ago: this request raced the rotation, and if its answer arrived last, clearing would delete the new cookie.
    request.sessionReplaced = result?.valid === false && result.reason === "replaced";
    if (!result || (!result.valid && !request.sessionReplaced)) void reply.header("set-cookie", clearSessionCookie());
    return;
  }
  const parsed = parseSessionToken(token as string);
  if (!parsed) return;
  const auth: RequestAuth = { userId: result.userId, via: "session", sessionId: result.session.id, tokenId: null, tokenExpiresAt: null, scopes: null, aal: result.session.aal === 2 ? 2 : 1 };
  request.auth = auth;
  request.cookieSession = { secret: parsed.secret, token: token as string, session: result.session, gate: null };
}

/** Enforces config.access and the pending-login gates. */
async function guard(app: App, request: FastifyRequest): Promise<void> {
  const config = request.routeOptions.config;
  // /api/v1 has its own guard (src/http/api/guard.ts) with its own error codes; it is not checked twice.
  if (request.routeOptions.url?.startsWith("/api/")) return;
  const access = config.access;
  if (access === undefined || access === "public") {
    // Public routes that list pending gates are still reachable then; nothing else to check.
  } else {
    const auth = request.auth;
    if (!auth) throw request.sessionReplaced ? sessionErrors.refused("replaced") : httpAuthErrors.signInRequired();
    let held: ReadonlySet<string> | undefined;
    if (access !== "authenticated") {
      if (!isPermission(access)) throw httpAuthErrors.forbidden(String(access));
      held = await permissionsOf(app.db, auth.userId);
      if (!allows(held, access)) throw httpAuthErrors.forbidden(access);
      // A token never exceeds its scopes (nor its user's roles, checked above).
      if (auth.via === "token" && !allows(new Set(auth.scopes ?? []), access)) throw httpAuthErrors.forbidden(access);
    }
    // A token whose owner the MFA policy now holds at enrolment is held too (tokenHeldForMFA).
    if (await tokenHeldForMFA(app, request, held === undefined ? {} : { held })) throw tokenErrors.ownerMFARequired();
  }
  // A half-finished login reaches only the routes that list its gate (public routes stay reachable).
  if (request.cookieSession && access !== undefined && access !== "public") {
    const allowed = config.allowPending ?? [];
    // Routes reachable in every gate (session, logout, csrf) skip the queries that compute it.
    if (allowed.length < ALL_PENDING.length) {
      const gate = await gateOf(app, request);
      if (gate !== "open" && !allowed.includes(gate)) throw httpAuthErrors.gated(gate);
    }
    // A stolen cookie (and the CSRF token it yields) must not be enough to change how the account signs in.
    if (config.reauth === "required" && !isFresh(app, request.cookieSession.session)) throw await refusedNotFresh(app, request);
  }
}

/**
 * Whether a session was created by an authentication within the re-authentication window. Sessions are
 * replaced on every authentication (login, MFA step-up, factor enrolment, password change, re-authentication),
 * so created_at is the time of the last one (ASVS 7.5.1).
 */
export function isFresh(app: App, session: Pick<Session, "createdAt">): boolean {
  const age = app.clock.now() - session.createdAt;
  // A creation time further ahead than the servers' clocks may differ was written by a node whose clock runs ahead:
  // here its window would last that much longer, so it is not fresh. Re-authenticating on this node starts a window on
  // this node's clock. The bound is the sessions' own (policy.datedAheadToleranceMs, the skew a node may have and still
  // serve), not the 2 s beyond which a node only warns: validate keeps a session dated up to it ahead, and a narrower
  // bound here sent its owner round a re-authentication loop between two healthy nodes, each re-authentication on the
  // faster one not fresh on the other. What it gives is at most that tolerance on a window of minutes, as every
  // lifetime decided on a healthy node already is.
  return age >= -app.accounts.sessions.policy.datedAheadToleranceMs && age < app.config.http.reauthWindowMs;
}

/**
 * Appends a sampled audit event; a failure to write it is logged, never thrown: a refusal's own answer (a 401, a 403)
 * must stand (thrown, the append's error replaced it with a 500), and so must a token's request whose use is recorded.
 * Every refusal record goes through here (auth.csrf.refused, auth.reauth.required, api.token.refused, api.refused), and
 * api.token.used on SQLite (on PostgreSQL its wait is bounded shorter: recordTokenUse).
 */
export async function recordSampled(request: FastifyRequest, event: Parameters<App["audit"]["append"]>[0], app: App): Promise<boolean> {
  try {
    await app.audit.append(event);
    return true;
  } catch (failure) {
    // What the event would have said goes to the log instead: its data holds ids, addresses and routes, no secret.
    request.log.error({ err: failure, event: event.type, subject: event.subject, data: event.data }, "a sampled audit event could not be written");
    return false;
  }
}

/**
 * The 403 for a sensitive change asked with a session that is not fresh, recorded against the account first: a thief
 * on a stolen cookie past the re-authentication window, trying again and again to move the account to a mailbox of
 * theirs, left no trace for the owner or a responder (ASVS 16.3.2, 16.3.3). Sampled per account
 * (src/accounts/login/refusal-sampler.ts): the holder of the cookie can repeat it as fast as it is answered, so a few
 * events a window carry the count of the rest.
 */
export async function refusedNotFresh(app: App, request: FastifyRequest): Promise<Error> {
  const auth = request.auth;
  if (auth) {
    const sample = app.accounts.callerRefusals.take(`reauth-required:${auth.userId}`, app.clock.now());
    if (sample.record) {
      await recordSampled(request, {
        type: "auth.reauth.required", actor: auth.userId, subject: auth.userId, requestId: request.id,
        data: { route: routeOf(request), ip: clientIP(request), sessionId: auth.sessionId, ...unrecordedCounts(sample) },
      }, app);
    }
  }
  return httpAuthErrors.reauthRequired();
}

/** What the CSRF wall compares a request against; fixed at start-up, so worked out once per server, not per request. */
interface OriginPolicy {
  allowedOrigins: readonly string[];
  scheme: "https" | "http";
}

function originPolicyOf(app: App): OriginPolicy {
  const publicURL = new URL(app.config.http.publicURL);
  return {
    allowedOrigins: Object.freeze([app.config.http.publicURL, ...app.config.http.trustedOrigins]),
    scheme: publicURL.protocol === "https:" ? "https" : "http",
  };
}

/**
 * The 403 for a cookie-authenticated request the CSRF wall refused, recorded against the account first: a page on
 * another site riding the owner's browser (or a thief replaying the cookie without the token) tried to act as them,
 * and neither the owner nor a responder could see it (ASVS 16.3.3). Sampled per account like the re-authentication
 * refusals: the page can repeat the request as fast as the browser sends it. A pre-login refusal names no account.
 */
async function refusedCrossSite(app: App, request: FastifyRequest, reason: "cross-site" | "token", detail: string): Promise<Error> {
  const auth = request.auth;
  if (auth?.via === "session") {
    const sample = app.accounts.callerRefusals.take(`csrf-refused:${auth.userId}`, app.clock.now());
    if (sample.record) {
      const origin = request.headers.origin;
      await recordSampled(request, {
        type: "auth.csrf.refused", actor: auth.userId, subject: auth.userId, requestId: request.id,
        data: {
          route: routeOf(request), reason, ip: clientIP(request), sessionId: auth.sessionId,
          // What the page claimed to be: the foreign site is the lead a responder follows. Bounded, as it is the sender's text.
          ...(typeof origin === "string" ? { origin: origin.slice(0, 200) } : {}),
          ...unrecordedCounts(sample),
        },
      }, app);
    }
  }
  return csrfErrors.refused(detail);
}

/**
 * Where an unsafe request stands against the Origin / Sec-Fetch-Site half of the CSRF wall (ASVS 3.5.1); null when
 * the wall does not apply: a bearer token (exempt: browsers do not send one on their own), or a request without a
 * session on a route that is not a pre-login form. Reads headers only, never the body.
 */
function crossSiteOf(origins: OriginPolicy, request: FastifyRequest): CrossSiteVerdict | null {
  const auth = request.auth;
  if (auth?.via === "token") return null;
  const byCookie = auth?.via === "session";
  if (!byCookie && request.routeOptions.config.csrf !== "pre-login") return null;
  return crossSiteVerdict({
    method: request.method,
    origin: request.headers.origin,
    secFetchSite: request.headers["sec-fetch-site"] as string | undefined,
    host: request.headers.host,
    allowedOrigins: origins.allowedOrigins,
    scheme: origins.scheme,
    // A pre-login request carries no session: a client sending neither header (curl) is not a browser
    // being ridden, and there is nothing ambient to steal. Cookie-authenticated ones fail closed.
    cookieAuthenticated: byCookie,
  });
}

/**
 * The first half of the CSRF wall, in onRequest right after authentication: a request another site sent through the
 * owner's browser is refused as that, before the gate, the access guards (/auth's and /api/v1's), the freshness check
 * and the body parser answer it. Judged later, a sibling page's ride of an ordinary user's session to grant a role was
 * recorded as the user's own escalation attempt (api.refused), a ride of a stale session as a thief's
 * (auth.reauth.required), and a multipart or oversized body was refused (415, 413) with no trace at all
 * (test/http-edges-red-team.test.ts).
 */
async function refuseCrossSite(app: App, origins: OriginPolicy, request: FastifyRequest): Promise<void> {
  const verdict = crossSiteOf(origins, request);
  if (verdict !== null && !verdict.allow) throw await refusedCrossSite(app, request, "cross-site", `cross-site request (${verdict.reason})`);
}

/**
 * The second half, in preValidation (a form sends its token in the parsed body's `_csrf`): a cookie-authenticated unsafe
 * request carries a synchronizer token for its session (ASVS 3.5.1, 3.5.3). The origin is judged again, so this hook
 * alone still holds the whole wall; refuseCrossSite has already refused what it would.
 */
async function enforceCSRFToken(app: App, origins: OriginPolicy, request: FastifyRequest): Promise<void> {
  const verdict = crossSiteOf(origins, request);
  if (verdict === null) return;
  if (!verdict.allow) throw await refusedCrossSite(app, request, "cross-site", `cross-site request (${verdict.reason})`);
  if (request.auth?.via !== "session" || verdict.reason === "safe-method") return;
  const body = request.body as Record<string, unknown> | undefined;
  const presented = request.headers["x-csrf-token"] ?? (body && typeof body === "object" ? body["_csrf"] : undefined);
  if (!verifyCSRF(request.cookieSession?.secret ?? "", API_ACTION, presented)) {
    throw await refusedCrossSite(app, request, "token", "missing or invalid CSRF token (GET /auth/csrf gives one; send it as x-csrf-token or _csrf)");
  }
}

/**
 * Installs the account hooks on the root server, so they run for every route (including /api/v1) before
 * any route-level hook.
 */
export function registerAuthHooks(server: FastifyInstance, app: App): void {
  // Said once per server start: with `none`, a stolen password alone opens any account, administrators included.
  if (app.config.requireMFA === "none") {
    app.logger.warn("BULWARK_REQUIRE_MFA=none: no account, not even an administrator, is made to enrol a second factor; a password alone signs in (ASVS 6.3.3). Use administrative (the default) or all");
  }
  const origins = originPolicyOf(app);
  const tokenUseWait: TokenUseWait = { busy: false };
  server.decorateRequest("auth", null);
  server.decorateRequest("cookieSession", null);
  server.decorateRequest("sessionReplaced", false);
  server.addHook("onRequest", async (request, reply) => {
    await authenticate(app, request, reply, tokenUseWait);
    // Before anything refuses the request on its caller's behalf (the guards below and /api/v1's, which run after
    // these global hooks) and before the body is read: a cross-site ride is refused and recorded as one.
    await refuseCrossSite(app, origins, request);
    await guard(app, request);
  });
  // preValidation: after the body is parsed (the `_csrf` form field), before any handler or schema runs.
  server.addHook("preValidation", async (request) => {
    await enforceCSRFToken(app, origins, request);
  });
  server.addHook("onSend", async (request, reply, payload) => {
    // ASVS 14.3.2: nothing that depends on who is asking (or sets who is asking) is stored by caches.
    // The matched route, not only the raw URL: the router decodes the path, so /%61uth/session is /auth/session.
    const authRoute = request.routeOptions.url?.startsWith("/auth/") === true || request.url.startsWith("/auth/");
    if (request.auth !== null || reply.hasHeader("set-cookie") || authRoute) reply.header("cache-control", "no-store");
    return payload;
  });
}
