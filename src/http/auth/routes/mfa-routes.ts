// The MFA routes: step-up (POST /auth/mfa/verify and WebAuthn assertion options), enrolment (TOTP begin,
// confirm, remove; WebAuthn register options, verify, list, delete; recovery codes), and the factor list.
// A successful step-up or enrolment replaces the session with an aal-2 one (ASVS 7.2.4); every factor change
// is audited and mailed to the user (ASVS 6.3.7), and the ones a session could repeat at will have an hourly budget per
// account (enrolments, app replacements, recovery-code sets: ASVS 2.4.1). Every change needs a fresh session (ASVS
// 7.5.1, see reauth-routes.ts): a stolen cookie cannot add, remove or replace a factor.
import type { RegistrationResponseJSON } from "@simplewebauthn/server";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { Kysely } from "kysely";
import { factorRef, MfaError, RECOVERY_CODE_COUNT, sessionChallengeContext, type FactorProof, type FactorRemovalOptions } from "../../../accounts/mfa/index.ts";
import { holdSessionForNewCredential, type RotateOptions, type Session } from "../../../accounts/sessions/index.ts";
import { takeUserSessionsTurn } from "../../../accounts/sessions/revocation.ts";
import type { App } from "../../../app/types.ts";
import { mfaEnrolmentDue } from "../authenticate.ts";
import { httpAuthErrors } from "../errors.ts";
import { actingContext, auditAndNotify, mfaThrottledAnswer, recordReplacedSession, rememberThisDevice, requestContext, requireSession, setSessionCookie, str, suspiciousSignIn } from "../helpers.ts";
import { FACTOR_PROPERTIES, FactorSpentElsewhere, giveBackAttempt, lostSpend, multiFactorHeld, proveFactor, refusalSampled, spentWithRotation, type FactorBody, type FactorRefusal } from "../second-factor.ts";
import type { CookieSession } from "../state.ts";
import { RECORD, unrecordedCounts } from "../../../accounts/login/refusal-sampler.ts";
import type { Schema } from "../../../store/schema.ts";
import type { FloodControl } from "../../../accounts/flood/flood.ts";

/** The factor list: reachable by a fully signed-in user, and by an administrator who must enrol first. */
const ENROL_READ = { access: "authenticated", allowPending: ["mfa-enrol"] } as const;
/**
 * Enrolment changes: the same reach, and a fresh session (ASVS 7.5.1). The first enrolment right after login
 * (an administrator's `mfa-enrol` gate) is fresh by design: the login has just created the session.
 */
const ENROL = { ...ENROL_READ, reauth: "required" } as const;
/** Removals: fully signed-in and fresh. */
const REMOVE = { access: "authenticated", reauth: "required" } as const;
/** Step-up routes: reachable while the second factor is due. */
const VERIFY = { access: "authenticated", allowPending: ["mfa-verify"] } as const;

/** Whether removing one factor of a user with these would leave none (the rule of the MFA policy's last factor). */
function isLastFactor(totp: boolean, passkeys: number): boolean {
  return (totp ? 1 : 0) + passkeys <= 1;
}

export function registerMfaRoutes(server: FastifyInstance, app: App): void {
  const mfa = app.accounts.mfa;

  /**
   * Replaces the session with an aal-2 one: a privilege change gets a new id and secret. It keeps the old
   * session's creation time and expiry: a factor alone never makes a session fresh or longer-lived. The new session
   * records the factor that earned it (`proof`'s, or `enrolled`: the one just enrolled), whose removal lowers it; aal 1
   * instead when that factor is gone by the time it commits (removed in another tab meanwhile). The caller sets the
   * cookie (setSessionCookie) once an event names the new session: one whose record failed never reaches the browser.
   * The new session records the address and browser of `request`, the one that made it, not the old session's: a thief
   * stepping a copied cookie up is listed as the thief (ASVS 7.5.2, 16.2.1). `record`, when given, runs last in the
   * rotation's transaction (RotateOptions.record): what names the new session commits with it or not at all.
   */
  async function stepUp(request: FastifyRequest, userId: string, cs: CookieSession, by: { proof: FactorProof } | { enrolled: string }, record?: RotateOptions["record"]): Promise<{ token: string; session: Session }> {
    // The factor that earned the step-up is spent in the rotation's transaction: a double submit whose other half
    // rotated first gets "replaced" and leaves its recovery code (or TOTP step) unspent.
    const { ip, userAgent } = requestContext(request);
    return app.accounts.sessions.rotate(cs.token, {
      aal: 2, keepLifetime: true, ip, userAgent, ...("proof" in by ? spentWithRotation(by.proof) : { factor: by.enrolled }), ...multiFactorHeld(app, userId),
      ...(record ? { record } : {}),
    });
  }

  /**
   * Audits and mails discarded recovery codes when any of them were unused; `reason` says why they went. With
   * `executor`, in that transaction.
   */
  async function reportDiscardedCodes(userId: string, unused: number, reason: string, request: Parameters<typeof auditAndNotify>[1], executor?: Parameters<typeof auditAndNotify>[3]): Promise<void> {
    if (unused === 0) return;
    await auditAndNotify(app, request, { type: "auth.mfa.removed", userId, data: { factor: "recovery-codes", unused, reason }, notice: { type: "mfa-factor-removed", factor: "recovery-codes" } }, executor);
  }

  /**
   * The options of a factor's removal: all of it commits in the removal's transaction or none of it does (ASVS
   * 6.3.7): the removal's record and notice, the multi-factor standing of the sessions the factor stepped up (of every
   * session, with the last factor gone) and, with the last factor gone, its recovery codes (and their notice). Gates are worked out only below aal 2, so an administrator's
   * session stepped up with the factor just removed would keep the admin API with no factor left; a removal that
   * failed half-way after its commit could not be retried (the factor was gone). The user's session turn is taken
   * first, before the factor's row, as a step-up takes them: rotations and removals of the user then run one after
   * the other, so of two removals racing the later sees no factor left, and a rotation to aal 2 either commits first
   * (its session is lowered here) or sees the factor gone (multiFactorHeld).
   */
  async function removal(userId: string, record: Parameters<typeof auditAndNotify>[2], request: Parameters<typeof auditAndNotify>[1], factor: { totp: true } | { passkey: string }): Promise<FactorRemovalOptions> {
    // Asked before the transaction: on SQLite a statement outside it would wait for it to end.
    const keepsOne = await mfaEnrolmentDue(app, userId);
    return {
      first: async (trx) => {
        await takeUserSessionsTurn(app.db.dialect, trx, userId);
        // The last-factor rule again, in the turn: the look before the transaction may predate another tab's removal
        // (two removals that each saw two factors left an administrator with none). Only when the factor to remove is
        // there: another user's passkey id stays a 404.
        if (!keepsOne) return;
        const now = await mfa.enrolledIn(trx, userId);
        const present = "totp" in factor ? now.totp : now.passkeys.includes(factor.passkey);
        if (present && isLastFactor(now.totp, now.passkeys.length)) throw httpAuthErrors.lastRequiredFactor();
      },
      within: async (trx) => {
        // The codes before the audit event, as a regeneration of them takes its locks (no deadlock on PostgreSQL).
        const unused = await mfa.discardRecoveryCodesIfNoFactor(userId, trx);
        // A session stepped up with another factor keeps its assurance; one stepped up with this one (perhaps a
        // hijacker's, with a passkey they registered) does not.
        const lastGone = !(await mfa.hasMfa(userId, trx));
        // The session removing it has just re-authenticated (REMOVE asks for a fresh one): it keeps its assurance while
        // a factor is left, so replacing the factor one signed in with needs no second step-up.
        const ref = "totp" in factor ? factorRef.totp : factorRef.passkey(factor.passkey);
        await app.accounts.sessions.lowerAssurance(userId, { executor: trx, ...(lastGone ? {} : { factor: ref, except: requireSession(request).cs.session.id }) });
        await auditAndNotify(app, request, record, trx);
        await reportDiscardedCodes(userId, unused, "no-factor-left", request, trx);
      },
    };
  }

  /**
   * In an enrolment's transaction, before its record: the session that asked for it is still live (not ended, not
   * refused by a stamp) and its account active and unlocked, in the user's session turn, after waiting for a
   * containment that holds the account (holdSessionForNewCredential). The route's check of the session came before the
   * slow part (a registration's verification, a code's check): a password reset or a lock that ended every session
   * meanwhile (the owner's remedy against the thief holding this cookie), or a require-mfa-reenrolment batch open at that
   * moment, must not leave the thief's factor on the account, where it would hold the owner at a second-factor gate only
   * the thief can pass. Throws (rolling the enrolment back) the 401 of a revoked session otherwise.
   */
  async function sessionStillLive(trx: Kysely<Schema>, userId: string, sessionId: string): Promise<void> {
    await holdSessionForNewCredential(trx, userId, sessionId);
  }

  /**
   * Checks the code that confirms an authenticator app (its enrolment or its replacement) with `confirm`: true when
   * the app's counter stopped it and the 429 was sent, a 401 thrown for a wrong code, false when it passed. (A boolean,
   * not the reply: a Fastify reply is a thenable, so a promise resolved with it waits for the send and loses it.)
   */
  async function appCodeRefused(reply: FastifyReply, userId: string, confirm: () => Promise<boolean>): Promise<boolean> {
    let confirmed: boolean;
    try {
      confirmed = await confirm();
    } catch (error) {
      if (!(error instanceof MfaError && error.code === "BULWARK_ERR_MFA_THROTTLED")) throw error;
      await mfaThrottledAnswer(app, reply, userId);
      return true;
    }
    if (!confirmed) throw httpAuthErrors.mfaInvalid();
    return false;
  }

  /** The hourly budgets per account of these routes, by the name their refusals' records give them. */
  const budgets = {
    enrolment: app.accounts.factorEnrolments,
    "app-replacement": app.accounts.appReplacements,
    "recovery-codes": app.accounts.recoveryCodeSets,
  } as const satisfies Record<string, FloodControl>;
  type BudgetName = keyof typeof budgets;

  /**
   * Runs `work` on one of the account's slots of `budget`, an hourly budget per account for a request that mails the
   * owner each time; the slot is given back when `work` fails. Past the budget it records and sends the 429 `refused`
   * names (budgetSpent), and resolves once it is sent: the route returns what this returns.
   */
  async function onHourlyBudget<T>(request: FastifyRequest, reply: FastifyReply, budget: BudgetName, userId: string, refused: (limit: number) => { code: string; message: string }, work: () => Promise<T>): Promise<T | FastifyReply> {
    const slot = await budgets[budget].takeFor(userId);
    if (slot === null) return budgetSpent(request, reply, budget, userId, refused);
    try {
      return await work();
    } catch (error) {
      await slot.refund();
      throw error;
    }
  }

  /**
   * The 429 of an hourly budget per account that is spent (onHourlyBudget, takeEnrolment): `refused` with its size, and
   * Retry-After. Recorded first as `auth.mfa.budget-refused`, naming the account, the budget, the code, the address and
   * the session (actingContext): an intruder at the owner's unlocked computer looping enrolments past the budget left
   * ten auth.mfa.added and no sign it went on trying (ASVS 16.3.3). Sampled (refusal-sampler.ts) per account and budget,
   * as a throttled re-authentication is: the session's holder can repeat the refusal as fast as it is answered, so
   * the first of each minute is kept, the next one kept says how many were left out, and the maintenance pass writes
   * the rest as auth.refusals.unrecorded (ASVS 16.3.1).
   */
  async function budgetSpent(request: FastifyRequest, reply: FastifyReply, budget: BudgetName, userId: string, refused: (limit: number) => { code: string; message: string }): Promise<FastifyReply> {
    const limit = budgets[budget].policy.ipLimit;
    const error = refused(limit);
    const sample = app.accounts.refusals.take(`mfa-budget:${budget}:${userId}`, app.clock.now());
    if (sample.record) {
      await app.audit.append({
        type: "auth.mfa.budget-refused", actor: userId, subject: userId, requestId: request.id,
        data: { budget, code: error.code, limit, ...unrecordedCounts(sample), ...actingContext(request, userId) },
      });
    }
    return reply.status(429).header("retry-after", "3600").send({ error });
  }

  /**
   * Takes one of the account's factor enrolments of the hour (FACTOR_ENROLMENTS_PER_HOUR, passkeys and apps together),
   * before the enrolment checks, writes or mails anything: each one mails the owner "a sign-in factor was added", and
   * the live cap (20 passkeys, one app) let a session add and remove in a loop, burying the notice that mattered among
   * dozens (ASVS 2.4.1, 6.3.7; test/notice-suppression-red-team.test.ts). Null once the 429 is sent: the route returns
   * the reply. The caller gives the place back (`refund`) when no factor was enrolled (a wrong code, a refused response).
   */
  async function takeEnrolment(request: FastifyRequest, reply: FastifyReply, userId: string): Promise<{ refund: () => Promise<void> } | null> {
    const slot = await budgets.enrolment.takeFor(userId);
    if (slot === null) {
      await budgetSpent(request, reply, "enrolment", userId, (limit) => ({
        code: "BULWARK_ERR_MFA_ENROL_RATE",
        message: `too many second factors (passkeys and authenticator apps) enrolled for this account in the last hour (${limit}); try again later`,
      }));
    }
    return slot;
  }

  /** A role that requires MFA keeps its last factor: the user enrols another first. */
  async function refuseLastRequiredFactor(userId: string, f: { totp: boolean; webauthn: number }): Promise<void> {
    if (isLastFactor(f.totp, f.webauthn) && (await mfaEnrolmentDue(app, userId))) throw httpAuthErrors.lastRequiredFactor();
  }

  /** When the user has no factor yet, the time just before this enrolment (codes created before it are discarded after it); else null. */
  async function firstEnrolment(userId: string): Promise<number | null> {
    return (await mfa.hasMfa(userId)) ? null : app.clock.now();
  }

  /** At a first enrolment, the codes made before any factor existed go. */
  async function discardCodesFromBefore(userId: string, at: number, request: Parameters<typeof auditAndNotify>[1]): Promise<void> {
    await reportDiscardedCodes(userId, await mfa.discardRecoveryCodesUpTo(userId, at), "made-before-any-factor", request);
  }

  server.post<{ Body: FactorBody }>(
    "/auth/mfa/verify",
    { schema: { body: { type: "object", properties: { ...FACTOR_PROPERTIES, _csrf: str(200, 0) } } }, config: VERIFY },
    async (request, reply) => {
      const { auth, cs } = requireSession(request);
      // Only a session held at the second-factor gate steps up. One that passed it already gains nothing
      // here, and must not spend (or let a cookie thief spend) a recovery code or a TOTP step on it.
      if (cs.session.aal === 2) throw httpAuthErrors.mfaAlreadyVerified();
      if (!(await mfa.hasMfa(auth.userId))) throw httpAuthErrors.mfaNotEnrolled();
      // A passkey assertion must answer a challenge this very session asked for (not another pending session's,
      // nor one asked for with a reset link).
      const outcome = await proveFactor(app, request, auth.userId, request.body ?? {}, { webauthnContext: sessionChallengeContext(cs.session.id) });
      // Both records name the address and the session held at the gate (the one the login made): the owner mistyping
      // a code at home and an intruder passing it with a phished one elsewhere read alike otherwise, and the step-up's
      // new session is the one a responder must end (ASVS 16.2.1, 7.5.2).
      const acting = actingContext(request, auth.userId);
      const auditFailure = async (reason: FactorRefusal, credentialId?: string): Promise<void> => {
        // A throttled or an unthrottled one is sampled (refusalSampled): the session's holder can repeat it as fast as it is answered.
        const sample = refusalSampled(reason, request.body ?? {}) ? app.accounts.refusals.take(`mfa-verify:${auth.userId}`, app.clock.now()) : RECORD;
        if (sample.record) await app.audit.append({ type: "auth.mfa.failed", actor: auth.userId, subject: auth.userId, requestId: request.id, data: { reason, ...(credentialId ? { credentialId } : {}), ...unrecordedCounts(sample), ...acting } });
        // Only the right password reaches this gate: a refused factor here is a partly successful sign-in, which the
        // owner is told of (ASVS 6.3.5), at most once an hour (suspiciousSignIn).
        await suspiciousSignIn.factorRefused(app, request, auth.userId);
      };
      if (!outcome.ok) {
        await auditFailure(outcome.reason, outcome.credentialId);
        if (outcome.reason === "throttled") return mfaThrottledAnswer(app, reply, auth.userId);
        // Replayed and wrong codes get the same answer: a replay tells an attacker nothing they can use.
        throw httpAuthErrors.mfaInvalid();
      }
      const data: Record<string, unknown> = { factor: outcome.factor };
      // The step-up's record, and for a recovery code the owner's notice, commit with its rotation (RotateOptions.record)
      // or not at all, whichever factor it was (an app's code, a passkey, a recovery code): a step-up answered with an
      // error (a store past its wait bound: 503 BULWARK_ERR_DB_BUSY) leaves the session held at the gate as it was and
      // the factor unspent, so the owner's retry with the same code works, and leaves no aal-2 session that no browser
      // holds and no event names. Before, the rotation committed first and the append failed after it: the step spent,
      // the retry refused as "replaced" (test/bounded-waits-b-red-team.test.ts). A replay after a success is refused.
      const record = async (trx: Kysely<Schema>, made: Session): Promise<void> => {
        if (outcome.factor === "recovery-code") data["recoveryCodesLeft"] = await mfa.recovery.remaining(auth.userId, trx);
        await app.audit.appendIn(trx, { type: "auth.mfa.verified", actor: auth.userId, subject: auth.userId, requestId: request.id, data: { ...data, ...acting, newSessionId: made.id } });
        // A recovery code stands in for a lost device, or was taken with the password: the owner is told (ASVS 6.3.5).
        if (outcome.factor === "recovery-code") await suspiciousSignIn.recoveryCodeUsed(app, request, auth.userId, data["recoveryCodesLeft"] as number, made.id, trx);
      };
      let token: string;
      let session: Session;
      try {
        ({ token, session } = await stepUp(request, auth.userId, cs, { proof: outcome.proof }, record));
      } catch (error) {
        if (!(error instanceof FactorSpentElsewhere)) {
          // The factor was right and what followed it failed, its spend rolled back with the rotation: its attempt is given back.
          await giveBackAttempt(request, auth.userId, outcome.proof, "a step-up");
          throw error;
        }
        // A concurrent request spent the same code, step or assertion first: a replay, or a passkey's copy racing it.
        const lost = await lostSpend(app, request, auth.userId, outcome.proof);
        await auditFailure(lost.reason, lost.credentialId);
        throw httpAuthErrors.mfaInvalid();
      }
      // Committed: from here the answer is the new session. The failure count's clearing is bookkeeping, logged if it
      // fails (a 503 now would strand the browser on the session just replaced).
      await outcome.proof.settle().catch((error: unknown) => {
        request.log.error({ userId: auth.userId, err: (error as Error).message }, "could not clear the second factor's failure count after a step-up");
      });
      // The whole sign-in is done: this browser becomes known to the account (the login left it out: a password alone
      // does not make a browser known to an account with a second factor) — only if the owner was told of it: known at
      // the password step, or named by that login's new-device notice (Session.deviceTold, written by the login to the
      // session held at this gate, which no request can set). A browser whose login found the hour's notice spent (a
      // relay that spent it on a throwaway sign-in first) stays new, and is told of at its next login. No notice here:
      // the login decided whether one went out.
      if (cs.session.deviceTold) await rememberThisDevice(app, request, reply, auth.userId);
      setSessionCookie(reply, token);
      return { status: "verified", aal: session.aal, sessionId: session.id, ...(outcome.factor === "recovery-code" ? { recoveryCodesLeft: data["recoveryCodesLeft"] } : {}) };
    },
  );

  server.post("/auth/mfa/webauthn/authenticate/options", { config: VERIFY }, async (request) => {
    const { auth, cs } = requireSession(request);
    return mfa.webauthn.authenticationOptions(auth.userId, { context: sessionChallengeContext(cs.session.id) });
  });

  server.get("/auth/mfa", { config: ENROL_READ }, async (request) => {
    const { auth } = requireSession(request);
    return mfa.factors(auth.userId);
  });

  // A first app: its seed waits for the first code in this session only, for 30 minutes, listed by GET /auth/mfa while
  // it waits; a password change or reset and signing out everywhere else drop it, as they drop a replacement. One begun
  // by someone at the owner's unlocked computer, who kept the seed, used to wait unseen through all of those for one
  // request from the owner's next fresh session (test/half-done-red-team.test.ts).
  server.post("/auth/mfa/totp", { config: ENROL }, async (request) => {
    const { auth, cs } = requireSession(request);
    const user = await app.accounts.users.getById(auth.userId);
    const { uri, secret } = await mfa.totp.begin(auth.userId, user?.email ?? auth.userId, { sessionId: cs.session.id });
    // Shown once, for the QR code; it is stored encrypted and never returned again.
    return { uri, secret };
  });

  server.post<{ Body: { code: string } }>(
    "/auth/mfa/totp/confirm",
    { schema: { body: { type: "object", required: ["code"], properties: { code: str(16), _csrf: str(200, 0) } } }, config: ENROL },
    async (request, reply) => {
      const { auth, cs } = requireSession(request);
      // Removing the app and enrolling it again mails two notices and spends no replacement: counted here, as a passkey's
      // registration is (takeEnrolment); the code is not looked at past the budget.
      const slot = await takeEnrolment(request, reply, auth.userId);
      if (slot === null) return reply;
      const first = await firstEnrolment(auth.userId);
      // The factor, its audit event and the owner's notice commit together (ASVS 6.3.7).
      const added = { type: "auth.mfa.added", userId: auth.userId, data: { factor: "totp" }, notice: { type: "mfa-factor-added", factor: "totp" } } as const;
      let throttled: boolean;
      try {
        throttled = await appCodeRefused(reply, auth.userId, () => mfa.totp.confirm(auth.userId, request.body.code, {
          sessionId: cs.session.id,
          // Before the pending app's row is marked: a batch deleting it waits for that row (FactorConfirmOptions).
          first: (trx) => sessionStillLive(trx, auth.userId, cs.session.id),
          within: (trx) => auditAndNotify(app, request, added, trx),
        }));
      } catch (error) {
        // A wrong code, a session ended meanwhile: nothing enrolled, nothing mailed.
        await slot.refund();
        throw error;
      }
      if (throttled) {
        await slot.refund();
        return reply;
      }
      if (first !== null) await discardCodesFromBefore(auth.userId, first, request);
      // The user just proved the new factor: this session now has two. auth.mfa.added named the session that enrolled
      // it (committed with the factor, before the new one existed); this names the aal-2 session that replaced it.
      // Recorded in the rotation's transaction: a record that cannot be written leaves this browser its session (the
      // app stays enrolled) rather than an aal-2 session no browser holds and no event names.
      const { token, session } = await stepUp(request, auth.userId, cs, { enrolled: factorRef.totp },
        (trx, made) => recordReplacedSession(app, request, auth.userId, made.id, { reason: "mfa-enrolled", factor: "totp" }, trx));
      setSessionCookie(reply, token);
      return { status: "enrolled", factor: "totp", aal: session.aal, sessionId: session.id };
    },
  );

  // Replacing the app (a lost or new phone) without removing it first: the new secret waits beside the confirmed app,
  // which keeps signing in until the new app's first code swaps them in one transaction. Removing first left the account
  // with no second factor until the new app was confirmed: a password-only login was then fully signed in and fresh,
  // and could enrol an app of its own and move the address (test/chained-takeover-red-team.test.ts). Fully signed in and
  // fresh, as a removal.
  // Only the session that began it confirms it, within 30 minutes; a password change or reset drops it. Its beginning is
  // recorded naming the session and mailed, and GET /auth/mfa shows it while it waits: one begun by someone at the
  // owner's unlocked computer, who kept the seed, is seen and dies with that session.
  server.post("/auth/mfa/totp/replace", { config: REMOVE }, async (request, reply) => {
    const { auth, cs } = requireSession(request);
    // Each begin mails the owner: a few an hour per account (APP_REPLACEMENTS_PER_HOUR), or a session — an intruder's
    // at the owner's unlocked computer — begins again and again and buries the owner's mailbox under notices, the one
    // about its own replacement among them (ASVS 2.4.1, 6.3.7). Counted as it starts; a begin that fails gives it back.
    const refused = (limit: number) => ({
      code: "BULWARK_ERR_MFA_REPLACE_RATE",
      message: `too many replacements of the authenticator app begun for this account in the last hour (${limit}); the last one begun can still be confirmed, or try again later`,
    });
    return onHourlyBudget(request, reply, "app-replacement", auth.userId, refused, async () => {
      const user = await app.accounts.users.getById(auth.userId);
      const { uri, secret, expiresAt } = await mfa.totp.beginReplacement(auth.userId, user?.email ?? auth.userId, {
        sessionId: cs.session.id,
        first: (trx) => sessionStillLive(trx, auth.userId, cs.session.id),
        within: (trx, until) => auditAndNotify(app, request, { type: "auth.mfa.replacement-begun", userId: auth.userId, data: { factor: "totp", expiresAt: until }, notice: { type: "mfa-replacement-begun", expiresAt: until } }, trx),
      });
      // Shown once, for the QR code; it is stored encrypted and never returned again.
      return { uri, secret, expiresAt };
    });
  });

  server.post<{ Body: { code: string } }>(
    "/auth/mfa/totp/replace/confirm",
    { schema: { body: { type: "object", required: ["code"], properties: { code: str(16), _csrf: str(200, 0) } } }, config: REMOVE },
    async (request, reply) => {
      const { auth, cs } = requireSession(request);
      const record = { type: "auth.mfa.replaced", userId: auth.userId, data: { factor: "totp" }, notice: { type: "mfa-factor-replaced", factor: "totp" } } as const;
      const throttled = await appCodeRefused(reply, auth.userId, () => mfa.totp.confirmReplacement(auth.userId, request.body.code, {
        sessionId: cs.session.id,
        first: (trx) => sessionStillLive(trx, auth.userId, cs.session.id),
        within: async (trx) => {
          // The sessions the old app stepped up lose aal 2 (whoever holds the lost phone may have one); this one keeps
          // its assurance: it has just re-authenticated and proved the new app.
          await app.accounts.sessions.lowerAssurance(auth.userId, { executor: trx, factor: factorRef.totp, except: cs.session.id });
          await auditAndNotify(app, request, record, trx);
        },
      }));
      if (throttled) return reply;
      return { status: "replaced", factor: "totp", aal: cs.session.aal, sessionId: cs.session.id };
    },
  );

  server.delete("/auth/mfa/totp", { config: REMOVE }, async (request) => {
    const { auth } = requireSession(request);
    let factors = await mfa.factors(auth.userId);
    if (!factors.totp) {
      // An enrolment never confirmed was no factor: cancelling it is audited, and mails no "factor removed" alarm; the
      // record commits with the cancellation (ASVS 6.3.7). Only an unconfirmed app is deleted: one another tab
      // confirmed since the look above is a factor, and is removed as one below.
      const cancelled = { type: "auth.mfa.enrolment-cancelled", userId: auth.userId, data: { factor: "totp" } };
      if (await mfa.totp.remove(auth.userId, { confirmed: false, within: (trx) => auditAndNotify(app, request, cancelled, trx) })) return { status: "removed", factor: "totp" };
      factors = await mfa.factors(auth.userId);
      if (!factors.totp) throw httpAuthErrors.notFound("authenticator app");
    }
    await refuseLastRequiredFactor(auth.userId, factors);
    const record = { type: "auth.mfa.removed", userId: auth.userId, data: { factor: "totp" }, notice: { type: "mfa-factor-removed", factor: "totp" } } as const;
    // Only a confirmed app: an enrolment begun anew since the look above is no factor to report removed.
    if (!(await mfa.totp.remove(auth.userId, { confirmed: true, ...(await removal(auth.userId, record, request, { totp: true })) }))) throw httpAuthErrors.notFound("authenticator app");
    return { status: "removed", factor: "totp" };
  });

  server.post("/auth/mfa/recovery-codes", { config: ENROL }, async (request, reply) => {
    const { auth, cs } = requireSession(request);
    // Codes stand in for a factor; made without one (at the mfa-enrol gate, with the password alone) they would
    // wait, unknown to the owner, and count as a second factor the day one is enrolled.
    if (!(await mfa.hasMfa(auth.userId))) throw httpAuthErrors.recoveryCodesNeedFactor();
    // Each set mails the owner, as a replacement's begin does: a few an hour per account (RECOVERY_CODE_SETS_PER_HOUR),
    // so a session cannot bury the owner's mailbox (ASVS 2.4.1, 6.3.7). Counted as it starts; a set not made gives it back.
    const refused = (limit: number) => ({
      code: "BULWARK_ERR_RECOVERY_CODES_RATE",
      message: `too many sets of recovery codes made for this account in the last hour (${limit}); the last set made is the one that works, or try again later`,
    });
    const record = { type: "auth.mfa.recovery-codes-generated", userId: auth.userId, data: { count: RECOVERY_CODE_COUNT }, notice: { type: "recovery-codes-regenerated" } } as const;
    // The session is read again first, in the account's turn (ADR 0018): codes a thief's session made while
    // require-mfa-reenrolment's batch was deleting the factors outlived the job that ended the session.
    return onHourlyBudget(request, reply, "recovery-codes", auth.userId, refused, async () => {
      const codes = await mfa.recovery.generate(auth.userId, {
        first: (trx) => sessionStillLive(trx, auth.userId, cs.session.id),
        within: (trx) => auditAndNotify(app, request, record, trx),
      });
      return { codes };
    });
  });

  server.post("/auth/mfa/webauthn/register/options", { config: ENROL }, async (request) => {
    const { auth, cs } = requireSession(request);
    const user = await app.accounts.users.getById(auth.userId);
    return mfa.webauthn.registrationOptions(auth.userId, user?.email ?? auth.userId, { context: sessionChallengeContext(cs.session.id) });
  });

  server.post<{ Body: { response: RegistrationResponseJSON; name?: string } }>(
    "/auth/mfa/webauthn/register",
    { schema: { body: { type: "object", required: ["response"], properties: { response: { type: "object" }, name: str(64), _csrf: str(200, 0) } } }, config: ENROL },
    async (request, reply) => {
      const { auth, cs } = requireSession(request);
      // Before the response is verified (its challenge spent) or anything written: past the hour's enrolments, 429.
      const slot = await takeEnrolment(request, reply, auth.userId);
      if (slot === null) return reply;
      const first = await firstEnrolment(auth.userId);
      // The factor, its audit event and the owner's notice commit together (ASVS 6.3.7).
      let credentialId: string;
      try {
        ({ credentialId } = await mfa.webauthn.verifyRegistration(auth.userId, request.body.response, request.body.name ?? "security key", {
          context: sessionChallengeContext(cs.session.id),
          within: async (trx, id) => {
            await sessionStillLive(trx, auth.userId, cs.session.id);
            await auditAndNotify(app, request, { type: "auth.mfa.added", userId: auth.userId, data: { factor: "webauthn", credentialId: id }, notice: { type: "mfa-factor-added", factor: "webauthn" } }, trx);
          },
        }));
      } catch (error) {
        // A refused response (a challenge not this session's, the cap, a bad attestation): no passkey, no notice.
        await slot.refund();
        throw error;
      }
      if (first !== null) await discardCodesFromBefore(auth.userId, first, request);
      // As for an authenticator app: the aal-2 session that replaced the enrolling one is named in the log.
      const { token, session } = await stepUp(request, auth.userId, cs, { enrolled: factorRef.passkey(credentialId) },
        (trx, made) => recordReplacedSession(app, request, auth.userId, made.id, { reason: "mfa-enrolled", factor: "webauthn", credentialId }, trx));
      // A replacement or an enrolment of the authenticator app this session began goes on in the new one. Only here among
      // the step-ups: a second-factor step starts at the gate, where none can have been begun, a first app's confirmation
      // ends its enrolment and starts with no app to replace, and a sign-in's step need not write for it.
      await mfa.totp.followSession(auth.userId, cs.session.id, session.id);
      setSessionCookie(reply, token);
      return { status: "enrolled", factor: "webauthn", credentialId, aal: session.aal, sessionId: session.id };
    },
  );

  // Each passkey with its `suspendedAt`: set once it was caught as cloned, when it proves nothing more and its owner
  // should remove it (and register a new one).
  server.get("/auth/mfa/webauthn", { config: { access: "authenticated" } }, async (request) => {
    const { auth } = requireSession(request);
    return { credentials: await mfa.webauthn.list(auth.userId) };
  });

  server.delete<{ Params: { id: string } }>(
    "/auth/mfa/webauthn/:id",
    // Up to what a request line can carry, not MAX_CREDENTIAL_ID_BYTES' 1364 base64url characters: a passkey stored before registration bounded
    // its id (over 1023 bytes) must stay removable by its owner.
    { schema: { params: { type: "object", properties: { id: str(16 * 1024) } } }, config: REMOVE },
    async (request) => {
      const { auth } = requireSession(request);
      if ((await mfa.webauthn.list(auth.userId)).some((c) => c.id === request.params.id)) await refuseLastRequiredFactor(auth.userId, await mfa.factors(auth.userId));
      const record = { type: "auth.mfa.removed", userId: auth.userId, data: { factor: "webauthn", credentialId: request.params.id }, notice: { type: "mfa-factor-removed", factor: "webauthn" } } as const;
      if (!(await mfa.webauthn.remove(auth.userId, request.params.id, await removal(auth.userId, record, request, { passkey: request.params.id })))) throw httpAuthErrors.notFound("passkey");
      return { status: "removed", factor: "webauthn" };
    },
  );
}
