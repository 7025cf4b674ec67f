// POST /auth/reauthenticate and its WebAuthn options: "confirm it is you" before changes that affect how the
// account signs in (ASVS 7.5.1) or that end other sessions (ASVS 7.5.2). Full re-authentication: the password
// (throttled like a login) and, for a user with MFA, a second factor. Success replaces the session (new id and
// secret, created now: ASVS 7.2.4), which is what makes it "fresh" for the window (BULWARK_REAUTH_MINUTES).
import type { FastifyInstance } from "fastify";
import type { Kysely } from "kysely";
import { sessionChallengeContext, type FactorProof } from "../../../accounts/mfa/index.ts";
import type { Session } from "../../../accounts/sessions/index.ts";
import type { App } from "../../../app/types.ts";
import { isFresh } from "../authenticate.ts";
import { httpAuthErrors } from "../errors.ts";
import { actingContext, knownHolder, mfaThrottledAnswer, requestContext, requireSession, secret, setSessionCookie, str, suspiciousSignIn, throttledAnswer } from "../helpers.ts";
import { FACTOR_PROPERTIES, FactorSpentElsewhere, giveBackAttempt, lostSpend, multiFactorHeld, proveFactor, spentWithRotation, type FactorBody } from "../second-factor.ts";
import { unrecordedCounts } from "../../../accounts/login/refusal-sampler.ts";
import { withPasswordWork } from "../password-work.ts";
import type { Schema } from "../../../store/schema.ts";

/**
 * Reachable by a fully signed-in session, and by an administrator held at MFA enrolment (whose login can go
 * stale before the first factor is confirmed). Not in `mfa-verify`: there the second factor is due, not this.
 */
const REAUTH = { access: "authenticated", allowPending: ["mfa-enrol"] } as const;

export function registerReauthRoutes(server: FastifyInstance, app: App): void {
  server.post<{ Body: { password: string } & FactorBody }>(
    "/auth/reauthenticate",
    { schema: { body: { type: "object", required: ["password"], properties: { password: secret(4096), _csrf: str(200, 0), ...FACTOR_PROPERTIES } } }, config: REAUTH },
    withPasswordWork(app, async (request, reply) => {
      const { auth, cs } = requireSession(request);
      const ctx = requestContext(request);
      // Every record names the address and the session that asked (ASVS 16.2.1): a thief on a stolen cookie guessing the
      // password here, or passing it, reads as the owner otherwise, and the session is what a responder ends.
      const acting = actingContext(request, auth.userId);
      const audit = (type: string, data: Record<string, unknown>): Promise<unknown> =>
        app.audit.append({ type, actor: auth.userId, subject: auth.userId, requestId: request.id, data: { ...data, ...acting } });
      const user = await app.accounts.users.getById(auth.userId);
      if (!user) throw httpAuthErrors.reauthFailed();
      const hasMfa = await app.accounts.mfa.hasMfa(user.id);
      // Asked before the password is looked at: otherwise a thief holding the cookie could use this route as a
      // password oracle ("password right, now give a factor").
      if (hasMfa && request.body.totp === undefined && request.body.recoveryCode === undefined && request.body.webauthn === undefined) {
        return reply.status(401).send({
          error: { code: "BULWARK_ERR_MFA_REQUIRED", message: "this account uses multi-factor authentication: give your password and a code from your authenticator app, a recovery code or a security key" },
          factors: await app.accounts.mfa.factors(user.id),
        });
      }
      // Guessing the password through this route is throttled like a login, on the same counters (ASVS 6.3.1). A browser
      // known to the account, or a session at full assurance, is held by a window of its own rather than by the
      // account's 100-failure stop (knownHolder): an outsider's guesses at the address, which never touched this
      // session, kept the on-call administrator from re-authenticating to start containment (test/lockout-red-team.test.ts).
      const holder = await knownHolder(app, request, user, cs.session);
      const flooding = { identifier: user.email, ip: ctx.ip, ...(holder === null ? {} : { known: holder }) };
      // Counted as it starts (FloodControl.begin): parallel guesses count each other.
      const verdict = await app.accounts.flood.begin(flooding);
      if (!verdict.allowed) {
        // Sampled (refusal-sampler.ts): the session's holder can repeat it as fast as it is answered.
        const sample = app.accounts.refusals.take(`reauth:${user.id}`, app.clock.now());
        if (sample.record) await audit("auth.reauth.throttled", { reason: verdict.reason, ...unrecordedCounts(sample) });
        return throttledAnswer(reply, verdict, "BULWARK_ERR_THROTTLED", "wrong passwords");
      }
      // An invalidated password (containment) no longer proves anything, exactly as at login.
      const usable = user.passwordHash !== null && user.passwordInvalidatedAt === null;
      const passwordOK = usable ? await app.accounts.passwords.verify(request.body.password, user.passwordHash as string).catch(() => false) : false;
      if (!passwordOK) {
        await audit("auth.reauth.failed", { reason: usable ? "wrong-password" : "no-usable-password" });
        throw httpAuthErrors.reauthFailed();
      }
      // The password was right: its attempt is taken back (the factor has its own throttle); the account's earlier
      // failures are cleared only once the whole reauthentication succeeds.
      await app.accounts.flood.release(verdict.ticket);
      let factor: string | null = null;
      let proof: FactorProof | null = null;
      if (hasMfa) {
        // Only after the password: a wrong password never spends a TOTP step or a recovery code. Proven here,
        // spent with the rotation below: a request that loses the rotation race leaves the factor unspent.
        const outcome = await proveFactor(app, request, user.id, request.body, { webauthnContext: sessionChallengeContext(cs.session.id) });
        if (!outcome.ok) {
          await audit("auth.reauth.failed", { reason: `factor-${outcome.reason}`, ...(outcome.credentialId ? { credentialId: outcome.credentialId } : {}) });
          // The right password, a refused factor: told as at the sign-in's step-up (ASVS 6.3.5).
          await suspiciousSignIn.factorRefused(app, request, user.id);
          if (outcome.reason === "throttled") return mfaThrottledAnswer(app, reply, user.id);
          // The same answer as a wrong password: which of the two was wrong is not told.
          throw httpAuthErrors.reauthFailed();
        }
        factor = outcome.factor;
        proof = outcome.proof;
      }
      // A new session proves the new authentication: new id and secret, created now (ASVS 7.2.4). Multi-factor only
      // while a factor is held as it commits: the session read at the start may have been lowered since (the last
      // factor removed in another tab while the password was checked). It records this request's address and browser,
      // not the replaced session's: the session a thief on a copied cookie re-authenticated into is listed as the thief's,
      // not as the owner's (ASVS 7.5.2, 16.2.1).
      // `sessionId` the session that re-authenticated, `newSessionId` the fresh one that replaced it (the one now live),
      // as every rotating event names them. The record commits with the rotation (RotateOptions.record) or not at all, as
      // a step-up's does: a re-authentication answered with an error (the audit head held past the store's wait bound:
      // 503 BULWARK_ERR_DB_BUSY) leaves the session as it was and the factor unspent. Before, the rotation committed first
      // and the append failed after it: the browser was left holding a replaced session, signed out.
      const record = async (trx: Kysely<Schema>, made: Session): Promise<void> => {
        await app.audit.appendIn(trx, { type: "auth.reauthenticated", actor: auth.userId, subject: auth.userId, requestId: request.id, data: { factor: factor ?? "password", newSessionId: made.id, ...acting } });
      };
      let rotated: Awaited<ReturnType<typeof app.accounts.sessions.rotate>>;
      try {
        rotated = await app.accounts.sessions.rotate(cs.token, { aal: hasMfa ? 2 : "kept", ip: ctx.ip, userAgent: ctx.userAgent, ...spentWithRotation(proof), ...multiFactorHeld(app, user.id), record });
      } catch (error) {
        if (!(error instanceof FactorSpentElsewhere)) {
          // The factor was right and what followed it failed, its spend rolled back with the rotation: its attempt is given back.
          await giveBackAttempt(request, user.id, proof, "a re-authentication");
          throw error;
        }
        // A concurrent request spent the same code, step or assertion first: a replay (or a passkey's copy racing it),
        // answered like a wrong factor.
        const lost = await lostSpend(app, request, user.id, proof);
        await audit("auth.reauth.failed", { reason: `factor-${lost.reason}`, ...(lost.credentialId ? { credentialId: lost.credentialId } : {}) });
        throw httpAuthErrors.reauthFailed();
      }
      await app.accounts.flood.succeeded(verdict.ticket);
      await proof?.settle();
      const { token, session } = rotated;
      // A replacement or an enrolment of the authenticator app this session began goes on in the session that replaced
      // it: its confirmation needs a fresh session, and re-authenticating is how a session becomes fresh again.
      await app.accounts.mfa.totp.followSession(user.id, cs.session.id, session.id);
      setSessionCookie(reply, token);
      // The success clears the run of failures the login shares: what a login would tell, this tells (ASVS 6.3.5).
      await suspiciousSignIn.afterFailures(app, request, user.id, verdict.streak, session.id);
      if (factor === "recovery-code") await suspiciousSignIn.recoveryCodeUsed(app, request, user.id, await app.accounts.mfa.recovery.remaining(user.id), session.id);
      return { status: "reauthenticated", sessionId: session.id, aal: session.aal, freshUntil: session.createdAt + app.config.http.reauthWindowMs };
    }),
  );

  server.post("/auth/reauthenticate/webauthn/options", { config: REAUTH }, async (request) => {
    const { auth, cs } = requireSession(request);
    return app.accounts.mfa.webauthn.authenticationOptions(auth.userId, { context: sessionChallengeContext(cs.session.id) });
  });
}

/** Whether the caller's session may make a sensitive change now (for GET /auth/session). */
export function freshUntil(app: App, createdAt: number): { fresh: boolean; freshUntil: number } {
  const fresh = isFresh(app, { createdAt });
  const end = createdAt + app.config.http.reauthWindowMs;
  // Not fresh yet a window that ends later: a session dated in the future (a fast clock elsewhere). Its window is
  // over here, and the answer says so rather than promise a time a client would count down to.
  return { fresh, freshUntil: fresh ? end : Math.min(end, app.clock.now()) };
}
