// POST /auth/login, POST /auth/logout, GET /auth/session, GET/DELETE /auth/sessions[/:id], GET /auth/csrf.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { API_ACTION, csrfToken } from "../../../accounts/csrf/index.ts";
import { login, releaseQuietly } from "../../../accounts/login/index.ts";
import { factorKind } from "../../../accounts/mfa/index.ts";
import { clearSessionCookie, readDeviceCookie, readSessionCookie } from "../../../accounts/sessions/index.ts";
import type { App } from "../../../app/types.ts";
import { gateOf, mfaEnrolmentDue, tokenHeldForMFA } from "../authenticate.ts";
import { httpAuthErrors } from "../errors.ts";
import { actingContext, ANY_GATE, deviceTagger, knownBrowserOf, requestContext, requireSession, secret, setDeviceCookie, setSessionCookie, str, suspiciousSignIn, throttledAnswer } from "../helpers.ts";
import { InputError, isBulwarkError } from "../../../lib/errors.ts";
import { safeNext } from "../safe-redirect.ts";
import { ALL_PENDING } from "../state.ts";
import { freshUntil } from "./reauth-routes.ts";
import { multiFactorHeld } from "../second-factor.ts";
import { lockAccountLinks } from "../../../accounts/password-reset/index.ts";
import { withPasswordWork } from "../password-work.ts";

/** Reads a GET /auth/sessions cursor (`<lastSeenAt>.<session id>`, as nextCursor writes it); anything else is a 400. */
function readSessionCursor(text: string): { lastSeenAt: number; id: string } {
  const m = /^(\d{1,16})\.([A-Za-z0-9_-]{1,100})$/.exec(text);
  if (!m) throw new InputError("BULWARK_ERR_CURSOR", "cursor must be the nextCursor of an earlier answer");
  return { lastSeenAt: Number(m[1]), id: m[2] as string };
}

/** The most sessions GET /auth/sessions lists in one answer. */
export const MAX_LISTED_SESSIONS = 50;

/**
 * The one answer for every failed login — unknown account, wrong password, disabled, locked, no password —
 * sent as a fixed body (no request id) so that two failures are byte-identical (ASVS 6.3.8).
 */
export const LOGIN_FAILED_BODY = JSON.stringify({ error: { code: "BULWARK_ERR_LOGIN_FAILED", message: "wrong identifier or password" } });

const loginBody = {
  type: "object",
  required: ["identifier", "password"],
  properties: { identifier: str(1024), password: secret(4096), next: str(2048, 0), _csrf: str(200, 0) },
} as const;

/**
 * Undoes what a login with the right password made before an error stopped it (a store past its wait bound, any
 * failure before the cookie was sent): the answer is that error, so the session stored for it, which no browser
 * holds, is ended, and its flood attempt is taken back, neither a failure nor a success (LoginResult.release).
 * Before, the owner's retry read `failuresBefore` 1 (a guess that worked, ASVS 6.3.5) and the account listed a
 * session no `auth.login.succeeded` named (test/bounded-waits-red-team.test.ts). Each step on its own, best effort: a
 * store that fails these too is logged, and the caller rethrows the error that stopped the login. The notices already
 * queued stay (the right password was typed, from that browser), as does the login time recorded with the verify.
 */
async function abandonLogin(app: App, request: FastifyRequest, made: { userId: string; sessionId: string | null; release: () => Promise<void> }): Promise<void> {
  if (made.sessionId !== null) {
    try {
      await app.accounts.sessions.end(made.sessionId, made.userId);
    } catch (error) {
      request.log.error({ userId: made.userId, err: (error as Error).message }, "could not end the session of a login that failed before its cookie was sent");
    }
  }
  await releaseQuietly({ logger: request.log }, made.release, made.userId);
}

export function registerSessionRoutes(server: FastifyInstance, app: App): void {
  const tagger = deviceTagger(app);
  server.post<{ Body: { identifier: string; password: string; next?: string } }>(
    "/auth/login",
    { schema: { body: loginBody }, config: { access: "public", csrf: "pre-login" } },
    withPasswordWork(app, async (request, reply) => {
      const ctx = requestContext(request);
      // The known-device cookie is read before the login decides: a browser that signed in to the account before is not
      // held by the account's 100-failure stop, which an outsider naming the account fills from anywhere, but by a
      // window of its own (LoginAttempt.knownBrowser, docs/password-policy.md). The device key in force first
      // (deviceKeyOf: a master key rotation replaces it), for every attempt alike, known identifier or not.
      const sent = readDeviceCookie(request.headers.cookie);
      await app.keyring.fresh();
      const result = await login(
        { users: app.accounts.users, passwords: app.accounts.passwords, flood: app.accounts.flood, audit: app.audit, logger: request.log, tag: (text) => app.keyring.identifierTag(text), refusals: app.accounts.refusals, now: () => app.clock.now() },
        {
          identifier: request.body.identifier, password: request.body.password, ip: ctx.ip, userAgent: ctx.userAgent, requestId: request.id, deferSettle: true,
          knownBrowser: (account) => knownBrowserOf(sent, account, tagger),
        },
      );
      if (result.outcome === "throttled") return throttledAnswer(reply, result, "BULWARK_ERR_LOGIN_THROTTLED", "failed logins");
      if (result.outcome === "invalid") return reply.status(401).type("application/json; charset=utf-8").send(LOGIN_FAILED_BODY);
      const user = result.user;
      // Everything from here to the cookie is undone if it fails (abandonLogin): the answer is then an error, and a
      // session no browser holds, or the right password counted as a failure, must not outlive it.
      let made: string | null = null;
      try {
        const hasMfa = await app.accounts.mfa.hasMfa(user.id);
        const enrol = !hasMfa && (await mfaEnrolmentDue(app, user.id));
        // A new id and secret on every login: a cookie planted before login is never promoted (ASVS 7.2.4).
        // Without a presented cookie there is nothing to replace: a plain insert, no transaction around it.
        const presented = readSessionCookie(request.headers.cookie);
        // Whether this browser signed in to the account before (the known-device cookie, device-cookie.ts), as the login
        // found it for flood control (knownBrowserOf, under the key made fresh above). The session records it
        // (Session.deviceTold), for the second-factor step to read.
        const account = { id: user.id, passwordChangedAt: user.passwordChangedAt };
        const known = result.knownBrowser;
        // Stored only if the password is still the one just verified: a reset or change that committed during the
        // verify ended every session, and must not be outlived by this one.
        const context = { aal: 1, ip: ctx.ip, userAgent: ctx.userAgent, verifiedPassword: { changedAt: user.passwordChangedAt }, deviceTold: known } as const;
        let issued: Awaited<ReturnType<typeof app.accounts.sessions.createSession>>;
        try {
          issued = presented === null ? await app.accounts.sessions.createSession(user.id, context) : await app.accounts.sessions.rotate(presented, { userId: user.id, ...context });
        } catch (error) {
          if (!(isBulwarkError(error) && error.code === "BULWARK_ERR_SESSION_PASSWORD_CHANGED")) throw error;
          await app.audit.append({ type: "auth.login.failed", actor: "anonymous", subject: user.id, requestId: request.id, data: { ip: ctx.ip, userAgent: ctx.userAgent, reason: "password-changed-meanwhile" } });
          return reply.status(401).type("application/json; charset=utf-8").send(LOGIN_FAILED_BODY);
        }
        const { token, session } = issued;
        made = session.id;
        // The right password after a run of failures may be a guess that finally worked: the owner is told (ASVS 6.3.5).
        await suspiciousSignIn.afterFailures(app, request, user.id, result.failuresBefore, session.id);
        // So is a sign-in from a browser that never signed in to the account since its password last changed (the
        // known-device cookie, device-cookie.ts), the account's first sign-in of all included: the owner who chose the
        // password through a mailed link did it in a browser that link's page remembers, so a first sign-in reaching
        // here is an imported or administrator-made account's, where a password reused elsewhere (a stuffing wave after a
        // migration) signed in told to nobody, and the browser was remembered. Such a browser is remembered once the
        // owner was told of it (not when this hour's notice went out already, for another one), and for an account with
        // a second factor only once that is passed (/auth/mfa/verify) — both, not either. The cookie is renewed on every
        // login, so a browser in use stays known.
        const told = known || (await suspiciousSignIn.newDevice(app, request, user.id, { first: user.lastLoginAt === null }));
        // The second-factor step remembers this browser only if the owner was told of it here: the session held at the
        // gate carries that, server-side, from this login. Without it a relay spent the hour's one notice on a throwaway
        // sign-in, then passed the victim's relayed code in its real browser and had that browser remembered, told to no
        // one (test/phishing-relay-red-team.test.ts). A known browser's session says so from its creation; a notice just
        // queued is written to it here, the one extra statement of a new browser's login to an account with a factor.
        if (hasMfa && told && !known) await app.accounts.sessions.markDeviceTold(session.id);
        const remember = told && !hasMfa;
        // The success's event names the session it made and says whether the browser was new, so a responder reading
        // the log after a wave can end exactly the intruder's sessions (ASVS 16.3.1). Written before the cookie is sent:
        // a session whose event failed never reaches the browser.
        await result.record({ sessionId: session.id, newDevice: !known });
        // Only now is the streak cleared: the session is stored, the notices it called for queued and the success
        // recorded (LoginAttempt.deferSettle).
        await result.settle();
        setSessionCookie(reply, token);
        setDeviceCookie(app, reply, sent, remember ? account : null);
        return {
          userId: user.id,
          sessionId: session.id,
          aal: 1,
          mfaRequired: hasMfa,
          mfaEnrolmentRequired: enrol,
          mustChangePassword: result.outcome === "must-change-password",
          next: safeNext(request.body.next),
        };
      } catch (error) {
        await abandonLogin(app, request, { userId: user.id, sessionId: made, release: result.release });
        throw error;
      }
    }),
  );

  server.post<{ Body: { next?: string } | undefined }>("/auth/logout", { config: ANY_GATE }, async (request, reply) => {
    const { auth } = requireSession(request);
    // The end and its record in one commit: apart, a record that failed (another process holding SQLite's write lock,
    // the audit head held past the store's bound) answered 503 "try again" about a sign-out that had happened and that
    // no event named, and the retry was refused 401 (test/cross-process-writes-red-team.test.ts). Now a failure leaves
    // the session as it was, and the retry signs out.
    await app.db.transaction(async (trx) => {
      await app.accounts.sessions.end(auth.sessionId as string, auth.userId, { executor: trx });
      await app.audit.appendIn(trx, { type: "auth.logout", actor: auth.userId, subject: auth.userId, requestId: request.id, data: actingContext(request, auth.userId) });
    });
    void reply.header("set-cookie", clearSessionCookie());
    const body = request.body;
    return { status: "signed-out", next: safeNext(body && typeof body === "object" ? body.next : undefined) };
  });

  server.get("/auth/session", { config: { access: "public", allowPending: ALL_PENDING } }, async (request) => {
    const auth = request.auth;
    // A poll that raced a login or step-up: not signed in with the cookie it sent, but the browser holds the new
    // one by now, so the page asks again instead of showing the sign-in form.
    if (!auth) return request.sessionReplaced ? { authenticated: false, sessionReplaced: true } : { authenticated: false };
    // A token the MFA policy holds (its owner has no factor) says so, as a session held at enrolment does: it is
    // refused everywhere else until the owner enrols one (tokenHeldForMFA).
    if (auth.via === "token") return { authenticated: true, via: "token", userId: auth.userId, tokenId: auth.tokenId, scopes: auth.scopes, mfaEnrolmentRequired: await tokenHeldForMFA(app, request) };
    const { cs } = requireSession(request);
    const gate = await gateOf(app, request);
    const s = cs.session;
    return {
      authenticated: true, via: "session", userId: auth.userId, sessionId: s.id, aal: s.aal,
      mfaRequired: gate === "mfa-verify", mfaEnrolmentRequired: gate === "mfa-enrol", mustChangePassword: gate === "password-change",
      createdAt: s.createdAt, expiresAt: s.expiresAt, idleTimeoutMs: app.accounts.sessions.policy.idleTimeoutMs,
      // Whether sensitive changes are allowed without POST /auth/reauthenticate, and until when.
      ...freshUntil(app, s.createdAt),
    };
  });

  server.get<{ Querystring: { cursor?: string } }>(
    "/auth/sessions",
    { schema: { querystring: { type: "object", properties: { cursor: str(120) } } }, config: { access: "authenticated" } },
    async (request) => {
      const { auth, cs } = requireSession(request);
      // A page of at most MAX_LISTED_SESSIONS, most recently used first, and a cursor to the next: an account holder
      // could otherwise make one answer as long as they liked by signing in again and again, and every session must
      // stay reachable (to be ended one by one, ASVS 7.5.2). The caller's own session heads the first page whatever
      // its last-seen time (written at most once a minute, so fifty others may look fresher) and no later one.
      const after = request.query.cursor === undefined ? null : readSessionCursor(request.query.cursor);
      const found = await app.accounts.sessions.list(auth.userId, { limit: MAX_LISTED_SESSIONS + 2, ...(after ? { before: after } : {}) });
      const others = found.filter((s) => s.id !== auth.sessionId);
      const room = after ? MAX_LISTED_SESSIONS : MAX_LISTED_SESSIONS - 1;
      const shown = others.slice(0, room);
      const last = shown.at(-1);
      const more = others.length > room && last !== undefined;
      const page = after ? shown : [cs.session, ...shown];
      // ASVS 7.5.2: created, last seen, IP and user agent of each, the current one marked.
      return {
        truncated: more,
        nextCursor: more ? `${last.lastSeenAt}.${last.id}` : null,
        sessions: page.map((s) => ({ id: s.id, createdAt: s.createdAt, lastSeenAt: s.lastSeenAt, expiresAt: s.expiresAt, ip: s.ip, userAgent: s.userAgent, aal: s.aal, secondFactor: factorKind(s.factor), current: s.id === auth.sessionId })),
      };
    },
  );

  server.delete<{ Params: { id: string } }>(
    "/auth/sessions/:id",
    // ASVS 7.5.2: ending sessions needs a recent authentication (a thief must not lock the owner out).
    { schema: { params: { type: "object", properties: { id: str(64) } } }, config: { access: "authenticated", reauth: "required" } },
    async (request, reply) => {
      const { auth } = requireSession(request);
      const other = request.params.id !== auth.sessionId;
      // The end, the email changes it kills and its record in one commit (as the logout above): a failure leaves it all
      // as it was, never a session ended that no event names.
      await app.db.transaction(async (trx) => {
        // The account's link lock first, as every transaction writing its links takes it.
        if (other) await lockAccountLinks(app.db, trx, auth.userId);
        // Scoped to the caller: another user's session id ends nothing and is answered like a missing one.
        if (!(await app.accounts.sessions.end(request.params.id, auth.userId, { executor: trx }))) throw httpAuthErrors.notFound("session");
        // Ending a session is how an owner throws a hijacker out: an email change the hijacker asked for dies too
        // (links carry no session; the owner asks again if the change was theirs).
        if (other) await app.accounts.emailChanges.revokeAll(auth.userId, trx);
        // Which session ended (`endedSessionId`), and which one ended it from where (`sessionId`, `ip`): the owner throwing
        // a thief out and a thief throwing the owner out read alike otherwise, and the acting session is the one a
        // responder ends next (ASVS 16.2.1, 7.5.2).
        await app.audit.appendIn(trx, {
          type: "auth.session.ended", actor: auth.userId, subject: auth.userId, requestId: request.id,
          data: { endedSessionId: request.params.id, ...actingContext(request, auth.userId) },
        });
      });
      if (request.params.id === auth.sessionId) void reply.header("set-cookie", clearSessionCookie());
      return { ended: 1 };
    },
  );

  server.delete("/auth/sessions", { config: { access: "authenticated", reauth: "required" } }, async (request, reply) => {
    const { auth, cs } = requireSession(request);
    // "Sign out everywhere else" ends the other sessions and replaces this one (same lifetime, so no fresher, same
    // assurance while a factor is held) in one commit: a thief riding a copy of this very cookie has no session of
    // its own in the list, and only a new cookie for this browser throws it out. As above, a pending email change
    // (perhaps the hijacker's) dies too; the account's link lock first, as every transaction writing its links takes it.
    // The session left standing records this request's address and browser, not the replaced one's: after a thief on a
    // copy of this cookie threw the owner out, the list shows the thief's (ASVS 7.5.2, 16.2.1).
    let ended = 0;
    const ctx = requestContext(request);
    const { token } = await app.accounts.sessions.rotate(cs.token, {
      aal: "kept", keepLifetime: true, ip: ctx.ip, userAgent: ctx.userAgent, ...multiFactorHeld(app, auth.userId),
      first: (trx) => lockAccountLinks(app.db, trx, auth.userId),
      within: async (trx) => {
        ended = await app.accounts.sessions.endAll(auth.userId, { executor: trx });
        await app.accounts.emailChanges.revokeAll(auth.userId, trx);
        // And a waiting replacement or enrolment of the authenticator app: begun in this session, it may be a thief's on a
        // copy of this cookie, who kept its seed (after the sessions, as a confirmation takes them: the turn, then the
        // app's row).
        await app.accounts.mfa.totp.cancelUnconfirmed(auth.userId, trx);
      },
      // The session that asked (`sessionId`, replaced now) and the one left standing (`newSessionId`): after a thief threw
      // the owner out, that is the one to end. In the rotation's commit: written after it, a record that failed (the
      // audit head held past the store's wait bound) answered 503 with the other sessions ended that no event named and
      // this browser's own session replaced by one never sent (test/bounded-waits-c-red-team.test.ts). Now a failure
      // leaves every session as it was, and the owner's retry works.
      record: async (trx, made) => {
        await app.audit.appendIn(trx, {
          type: "auth.session.ended-others", actor: auth.userId, subject: auth.userId, requestId: request.id,
          data: { ended, ...actingContext(request, auth.userId), newSessionId: made.id },
        });
      },
    });
    setSessionCookie(reply, token);
    return { ended };
  });

  server.get("/auth/csrf", { config: ANY_GATE }, async (request) => {
    const { cs } = requireSession(request);
    return { token: csrfToken(cs.secret, API_ACTION, app.random) };
  });
}
