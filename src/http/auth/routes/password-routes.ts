// POST /auth/password/change, /auth/password/reset/request, /auth/password/reset/webauthn/options,
// /auth/password/reset/complete. Reset answers the same whether or not the account exists; completing it
// needs the user's second factor when they have one; both end sessions and send a notice (ASVS 6.3.7, 6.4.x).
import type { Kysely } from "kysely";
import type { Schema } from "../../../store/schema.ts";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { addressTag, isUnfinishedSignUpEvenly } from "../../../accounts/email-change/index.ts";
import { mfaErrors, resetChallengeContext, type FactorProof } from "../../../accounts/mfa/index.ts";
import { accountPasswordContext, throwIfRefused } from "../../../accounts/password-policy/index.ts";
import { lockAccountLinks, PasswordResetError, resetErrors } from "../../../accounts/password-reset/index.ts";
import { endUserSessions } from "../../../accounts/sessions/index.ts";
import type { User } from "../../../accounts/users/index.ts";
import type { App } from "../../../app/types.ts";
import { newId } from "../../../crypto/tokens.ts";
import { InputError } from "../../../lib/errors.ts";
import { isFresh, refusedNotFresh } from "../authenticate.ts";
import { httpAuthErrors } from "../errors.ts";
import { actingContext, auditAndNotify, knownHolder, recordReplacedSession, recordLinkRefusal, requestContext, requireSession, secret, rememberThisDevice, setSessionCookie, str, suspiciousSignIn, throttledAnswer } from "../helpers.ts";
import { FACTOR_PROPERTIES, FactorSpentElsewhere, giveBackAttempt, lostSpend, multiFactorHeld, proveFactor, refusalSampled, spendIn, type FactorBody, type FactorRefusal } from "../second-factor.ts";
import { RECORD, unrecordedCounts } from "../../../accounts/login/refusal-sampler.ts";
import { outsidePasswordWork, withPasswordWork } from "../password-work.ts";

type ResetCompleteBody = { token: string; newPassword: string } & FactorBody;

/** The one answer to every reset request (and registration): 202 and this body, account or not (ASVS 6.3.8). */
export const RESET_ACCEPTED = { status: "accepted", message: "If an account exists for this address, a message with a link is on its way." } as const;

/** The 400 for a new password that is the current one. */
function passwordUnchanged(): InputError {
  return new InputError("BULWARK_ERR_PASSWORD_UNCHANGED", "the new password is the current one: choose a different password");
}

/**
 * The 429 for a second factor throttled at a reset link. Its guesses count on the reset counter (FactorCounter), not on
 * the sign-in's, so this answer speaks of codes sent with reset links only: at the 100-failure stop those stay blocked
 * until an administrator clears them, while the owner's codes at sign-in still work. Like mfaThrottledAnswer, no
 * Retry-After at the stop, which no wait lifts.
 */
async function resetThrottledAnswer(app: App, reply: FastifyReply, userId: string): Promise<FastifyReply> {
  const { code, message } = mfaErrors.throttled();
  if (await app.accounts.mfa.stopped(userId, { counter: "reset" })) {
    return reply.status(429).send({
      error: {
        code,
        message: "too many wrong codes in a row with reset links: codes sent with a reset link stay blocked until an administrator clears the block (POST /api/v1/users/:id/throttles/clear); codes at sign-in are not affected",
      },
    });
  }
  return reply.status(429).header("retry-after", "300").send({ error: { code, message } });
}

/** Checks a new password against the policy; throws a 400 listing every reason. */
export async function checkNewPassword(app: App, password: string, user: Pick<User, "email" | "username" | "displayName">, request?: FastifyRequest): Promise<void> {
  // Out of the password-work gate while it runs (`request`'s slot): a breached-password lookup may wait on the network
  // for its timeout, and requests waiting so held every slot while logins, which look nothing up, were answered 503.
  const check = () => app.accounts.policy.check(password, accountPasswordContext(user, app.config.serviceName));
  throwIfRefused(request ? await outsidePasswordWork(app, request, check) : await check());
}

/**
 * Issues a reset (or "choose your password") link and queues its mail before the answer is sent, so a crash
 * after the 202 never loses it. `null` (no account, or not active) does the same statements on throw-away
 * rows: the answer's timing does not depend on the account (ASVS 6.3.8). The hourly limit applies silently.
 */
export async function sendResetMail(app: App, request: FastifyRequest, user: User | null, purpose: "reset" | "register", record?: (trx: Kysely<Schema>) => Promise<unknown>): Promise<void> {
  const outcome = await app.accounts.resetMailer.request(user, { publicURL: app.config.http.publicURL, serviceName: app.config.serviceName }, purpose, record);
  if (outcome === "rate-limited") request.log.warn({ userId: user?.id }, "password reset mail not sent: hourly limit for the account reached");
  if (outcome === "address-refused") request.log.warn({ userId: user?.id }, "password reset mail not sent: the outbox cannot mail the account's address (fix the address: bulwark users or the API)");
  if (outcome === "not-eligible") request.log.info({ userId: user?.id }, "password reset mail not sent: the account changed its address, was locked or disabled while the request ran");
}

/** The audit event of a refused use of a genuine reset link (recordLinkRefusal). */
const RESET_REFUSED = "auth.password.reset-refused";

export function registerPasswordRoutes(server: FastifyInstance, app: App): void {
  /**
   * Whether account `userId` (a throw-away id for none) is a sign-up that registration, closed now, leaves unfinished
   * (sign-up-shell.ts: made by POST /auth/register while it was open, its link never followed). Nothing finishes such a
   * sign-up while registration is closed: the operator closed it, and the link mailed before, or a new one asked for by
   * "forgot password", set a password on a password-less account like any other and let the outsider in
   * (test/tightened-config-red-team.test.ts). Judged at each request by the configuration in force: once registration
   * is open again, they can be finished. The same two reads for every account and for none (ASVS 6.3.8); none while
   * registration is open.
   */
  const closedSignUp = async (userId: string | null): Promise<boolean> =>
    !app.config.http.registrationOpen && (await isUnfinishedSignUpEvenly(app.db.db, userId ?? newId("usr", app.random)));

  server.post<{ Body: { currentPassword: string; newPassword: string } }>(
    "/auth/password/change",
    {
      schema: { body: { type: "object", required: ["currentPassword", "newPassword"], properties: { currentPassword: secret(4096), newPassword: secret(4096), _csrf: str(200, 0) } } },
      config: { access: "authenticated", allowPending: ["password-change"] },
    },
    withPasswordWork(app, async (request, reply) => {
      const { auth, cs } = requireSession(request);
      const ctx = requestContext(request);
      const user = await app.accounts.users.getById(auth.userId);
      if (!user || user.passwordHash === null) throw httpAuthErrors.wrongPassword();
      // An invalidated password (containment) proves nothing, as at login and reauthentication: only the reset
      // link mailed to the owner may set a new one. Otherwise whoever holds a session and the leaked password
      // would lift the invalidation and kill the owner's reset link.
      if (user.passwordInvalidatedAt !== null) throw httpAuthErrors.passwordInvalidated();
      // For an account with a second factor the current password is half an authentication: a session past the
      // re-authentication window re-authenticates with the factor first (ASVS 7.5.1), as for every other sensitive
      // change. A thief holding a stale copy of the cookie and the password otherwise changed it in a loop, each change
      // voiding the owner's reset links and keeping its own session alive, so the owner could neither sign in nor reset
      // (test/chained-takeover-second-red-team.test.ts). Refused before the password is looked at (no oracle either).
      // No exemption for an account that must change its password: the flag is the account's, not the session's, and a
      // help desk's require-password-change (or expire-passwords) leaves every session standing, a thief's stale copy
      // with them (test/last-hour-red-team.test.ts). The login that meets the gate has just signed in: it is fresh.
      if (!isFresh(app, cs.session) && (await app.accounts.mfa.hasMfa(user.id))) throw await refusedNotFresh(app, request);
      // Guessing the current password through this form is throttled like a login (ASVS 6.3.1); from a browser known to
      // the account or a full-assurance session, by a window of its own rather than the account's stop (knownHolder),
      // which an outsider fills by naming the account anywhere.
      const holder = await knownHolder(app, request, user, cs.session);
      const flooding = { identifier: user.email, ip: ctx.ip, ...(holder === null ? {} : { known: holder }) };
      // Failures are audited as at login and reauthentication: this form is where a stolen cookie guesses the password,
      // so they name the session that guessed (actingContext), the one to end.
      const audit = (type: string, data: Record<string, unknown>): Promise<unknown> =>
        app.audit.append({ type, actor: user.id, subject: user.id, requestId: request.id, data: { ...data, ...actingContext(request, user.id) } });
      const verdict = await app.accounts.flood.begin(flooding);
      if (!verdict.allowed) {
        // Sampled (refusal-sampler.ts), as at re-authentication, whatever window refused it: past its window the session's
        // holder can repeat the refusal as fast as it is answered, and one row each grew the hash-chained log, which
        // nothing prunes, without bound (30 refusals in a minute: 30 rows). The first of each minute per account is
        // kept, the next one kept says how many were left out, and the maintenance pass writes the rest as
        // auth.refusals.unrecorded (ASVS 16.3.1). A key of its own: the re-authentication's refusals do not hide these.
        const sample = app.accounts.refusals.take(`password-change:${user.id}`, app.clock.now());
        if (sample.record) await audit("auth.password.change-throttled", { reason: verdict.reason, ...unrecordedCounts(sample) });
        return throttledAnswer(reply, verdict, "BULWARK_ERR_THROTTLED", "wrong passwords");
      }
      // Counted as it started (a wrong one stays counted); the right one takes it back and clears the streak.
      if (!(await app.accounts.passwords.verify(request.body.currentPassword, user.passwordHash).catch(() => false))) {
        await audit("auth.password.change-failed", { reason: "wrong-password" });
        throw httpAuthErrors.wrongPassword();
      }
      await app.accounts.flood.succeeded(verdict.ticket);
      // The right current password clears the run of failures the login shares, whatever happens next (an unchanged or
      // refused new one): what a login would tell, this tells (ASVS 6.3.5).
      await suspiciousSignIn.afterFailures(app, request, user.id, verdict.streak, `change:${request.id}:${verdict.ticket.at}`);
      // The same password again is no change: it would lift a must-change flag and an initial password's expiry
      // (ASVS 6.4.1) while the password stays the one an administrator chose, or that containment expired.
      if (request.body.newPassword === request.body.currentPassword) throw passwordUnchanged();
      await checkNewPassword(app, request.body.newPassword, user, request);
      const hash = await app.accounts.passwords.hash(request.body.newPassword);
      const hasMfa = await app.accounts.mfa.hasMfa(user.id);
      // One commit: the new password, the open reset and email-change links spent (a pending email change may be a
      // hijacker's), every other session ended (ASVS 7.4.3), this one replaced by a new one (a privilege change), the
      // audit event and the owner's notice (ASVS 6.3.7). A failure anywhere leaves the old password with everything as
      // it was, never a change nobody was told about. The old session is replaced in the same commit: between a
      // password commit and a later rotation, every copy of this cookie (a thief's) stood, fresh, and could ask for an
      // email change dated after the password change, or confirm an authenticator app into a session of its own.
      // The account's link lock first, as every transaction that writes its links takes it (no deadlock with a reset).
      // For a user with a second factor, the password alone is not a full authentication: the new session keeps the
      // old one's lifetime, so it is no fresher than before (POST /auth/reauthenticate asks for the factor). It keeps
      // the old session's assurance as its row stands when replaced, and only while its factor is held as it commits:
      // a removal of that factor in another tab while the new password was hashed lowered the old row meanwhile.
      // The new session records this request's address and browser, not the old one's: after a thief's change on a
      // copied cookie, the one session left is listed as the thief's, not as the owner's (ASVS 7.5.2, 16.2.1).
      let ended = 0;
      const { token } = await app.accounts.sessions.rotate(cs.token, {
        aal: "kept", keepLifetime: hasMfa, ip: ctx.ip, userAgent: ctx.userAgent, ...multiFactorHeld(app, user.id),
        // The account row changes before the sessions turn is taken, as in every transaction that does both
        // (docs/sessions.md): a lock or an unlock that updated the row and waits for the turn cannot deadlock with it.
        first: async (trx) => {
          await lockAccountLinks(app.db, trx, user.id);
          if (!(await app.accounts.users.swapPasswordHash(user.id, user.passwordHash, { hash, scheme: app.accounts.passwords.defaultScheme, changed: true }, trx))) {
            throw new InputError("BULWARK_ERR_PASSWORD_CONFLICT", "the password was changed by another request meanwhile; sign in again");
          }
        },
        within: async (trx) => {
          await app.accounts.passwordReset.revokeAll(user.id, trx);
          await app.accounts.emailChanges.revokeAll(user.id, trx);
          // This session's row is gone already (the rotation took it): every other one ends here.
          ended = await app.accounts.sessions.endAll(user.id, { executor: trx });
          // A replacement or an enrolment of the authenticator app begun in a session that ended (by someone who kept its
          // seed) goes too. After the sessions, as a confirmation takes them: the user's session turn, then the app's row.
          await app.accounts.mfa.totp.cancelUnconfirmed(user.id, trx);
          await auditAndNotify(app, request, { type: "auth.password.changed", userId: user.id, data: { sessionsEnded: ended }, notice: { type: "password-changed" } }, trx);
        },
        // auth.password.changed named the session that changed it, written before the new one's id was drawn: this names
        // the one left standing, in the same commit, so the change and both records are made together or not at all.
        record: (trx, made) => recordReplacedSession(app, request, user.id, made.id, { reason: "password-changed" }, trx),
      });
      setSessionCookie(reply, token);
      // A new password makes every browser new again (device tags are bound to it) but this one.
      await rememberThisDevice(app, request, reply, user.id);
      return { status: "changed", sessionsEnded: ended };
    }),
  );

  server.post<{ Body: { email: string } }>(
    "/auth/password/reset/request",
    { schema: { body: { type: "object", required: ["email"], properties: { email: str(1024), _csrf: str(200, 0) } } }, config: { access: "public", csrf: "pre-login" } },
    async (request, reply) => {
      const ctx = requestContext(request);
      // Before any lookup, so the 429 is the same whatever address is asked about (ASVS 2.4.1, 6.3.8).
      const rate = await app.accounts.mailRequests.countRequest(ctx.ip);
      if (!rate.allowed) return throttledAnswer(reply, rate, "BULWARK_ERR_THROTTLED", "requests that send mail from this address");
      const email = request.body.email;
      const user = email.length > 254 ? null : await app.accounts.users.findByIdentifier(email);
      // An unfinished sign-up while registration is closed gets no link either: its completion would be refused.
      const signUp = await closedSignUp(user?.id ?? null);
      if (signUp) request.log.info({ userId: user?.id }, "password reset mail not sent: an unfinished sign-up, and registration is closed");
      // Only active, unlocked accounts get a link; the answer, and the work done before it, are the same in every
      // case. A lock means the account may be in hostile hands: nothing changes its credentials until an
      // administrator unlocks it (as /auth/email/confirm refuses it too). The mailer checks again in its transaction.
      // The request's record commits with its link and mail (ResetMailer.request's `record`), on every path alike.
      await sendResetMail(app, request, user && user.status === "active" && user.lockedAt === null && !signUp ? user : null, "reset", (trx) =>
        app.audit.appendIn(trx, {
          type: "auth.password.reset-requested", actor: "anonymous", subject: user ? user.id : addressTag(app.keyring, email),
          requestId: request.id, data: { ip: ctx.ip, known: user !== null, ...(signUp ? { unfinishedSignUp: true } : {}) },
        }));
      return reply.status(202).send(RESET_ACCEPTED);
    },
  );

  server.post<{ Body: { token: string } }>(
    "/auth/password/reset/webauthn/options",
    { schema: { body: { type: "object", required: ["token"], properties: { token: str(200) } } }, config: { access: "public", csrf: "pre-login" } },
    async (request) => {
      const check = await app.accounts.passwordReset.check(request.body.token);
      if (!check.valid) throw await refusedLink(request, check);
      // The completion's refusals, before any factor: a locked account's link handed out its passkeys' ids here and
      // answered 200 where the completion answers an invalid link, which told the link's holder of the lock.
      await accountOfLink(request, check);
      // Bound to this reset link (its id, not its secret): the challenge passes no login's or other link's gate.
      return app.accounts.mfa.webauthn.authenticationOptions(check.userId, { context: resetChallengeContext(check.tokenId) });
    },
  );

  /**
   * The refusal of a link that did not check out; a genuine one (its secret matched: used, expired) is recorded against
   * its account first (recordLinkRefusal), the answer the same.
   */
  const refusedLink = async (request: FastifyRequest, check: { reason: string; genuine?: { userId: string; tokenId: string } }): Promise<Error> => {
    await recordLinkRefusal(app, request, RESET_REFUSED, check.genuine && { ...check.genuine, reason: check.reason });
    return resetErrors.refused();
  };

  /**
   * The account a checked link may act for, or the refusal of an invalid link, the same before a passkey's options and
   * before a completion looks at the password or any factor; the link is not spent, so it works again once the reason
   * goes. A locked account: a lock means the account may be in hostile hands (containment's own links must survive a
   * containment lock, so they wait for the unlock). A sign-up left unfinished while registration is closed is not
   * finished through its link (closedSignUp; registration may reopen).
   */
  const accountOfLink = async (request: FastifyRequest, check: { userId: string; tokenId: string }): Promise<User> => {
    const user = await app.accounts.users.getById(check.userId);
    const genuine = { userId: check.userId, tokenId: check.tokenId };
    if (!user || user.status !== "active" || user.lockedAt !== null) throw await refusedLink(request, { reason: user ? "account-locked" : "account-gone", genuine });
    if (await closedSignUp(user.id)) throw await refusedLink(request, { reason: "registration-closed", genuine });
    return user;
  };

  /**
   * Whether `password` is the one `stored` holds (a hash the policy refuses holds none), for a reset that must not set
   * the same password again. A match upgrades a hash that needs it as a login does (verifyAndRehash), every flag kept
   * (`changed` false: the same password, which must still be changed). That answer leaves the link unspent, so its
   * holder, who knows the password, could replay it without limit, each replay the stored hash's whole derivation: a
   * legacy loop at the table's bound is seconds of event-loop CPU (test/hash-bounds-red-team.test.ts). Now the first
   * runs it and replaces it, and a replay costs one verify of the default argon2id, as a right password at the login.
   */
  const isCurrentPassword = async (request: FastifyRequest, userId: string, password: string, stored: string): Promise<boolean> => {
    const passwords = app.accounts.passwords;
    const result = await passwords.verifyAndRehash(password, stored).catch(() => ({ status: "invalid" }) as const);
    if (result.status === "invalid") return false;
    if ("newHash" in result) {
      // A swap lost to a change meanwhile (a login's rehash, a completed reset) stores nothing; the answer is the same.
      await app.accounts.users.swapPasswordHash(userId, stored, { hash: result.newHash, scheme: passwords.defaultScheme, changed: false }).catch((error: unknown) => {
        // The answer stands; the upgrade is tried again at the next match or login.
        request.log.error({ userId, err: (error as Error).message }, "could not store the rehashed password");
      });
    }
    return true;
  };

  /** Links (by token id) whose completion is running in this process. */
  const completing = new Set<string>();
  server.post<{ Body: ResetCompleteBody }>(
    "/auth/password/reset/complete",
    {
      schema: { body: { type: "object", required: ["token", "newPassword"], properties: { token: str(200), newPassword: secret(4096), _csrf: str(200, 0), ...FACTOR_PROPERTIES } } },
      config: { access: "public", csrf: "pre-login" },
    },
    withPasswordWork(app, async (request, reply) => {
      const resets = app.accounts.passwordReset;
      const check = await resets.check(request.body.token);
      if (!check.valid) throw await refusedLink(request, check);
      // One completion per link at a time in this process: the link is spent only in the transaction after the new
      // password is hashed, so parallel completions of one link each queued an argon2id hash (one link bought as many
      // as there were requests, ahead of every login). A second while the first runs gets, before any work, 409
      // BULWARK_ERR_RESET_BUSY, recorded as a refused use of the genuine link (reason in-progress). Not the refusal of
      // a spent link: the first may yet fail (a missing factor, a refused password) and leave the link usable.
      if (completing.has(check.tokenId)) {
        await recordLinkRefusal(app, request, RESET_REFUSED, { userId: check.userId, tokenId: check.tokenId, reason: "in-progress" });
        throw resetErrors.busy();
      }
      completing.add(check.tokenId);
      try {
        return await completeReset(request, reply, check);
      } finally {
        completing.delete(check.tokenId);
      }
    }),
  );

  async function completeReset(request: FastifyRequest<{ Body: ResetCompleteBody }>, reply: FastifyReply, check: { valid: true; userId: string; tokenId: string }): Promise<unknown> {
    const resets = app.accounts.passwordReset;
    const user = await accountOfLink(request, check);
    await checkNewPassword(app, request.body.newPassword, user, request);
    /** A factor refused, or spent first by a concurrent request: audited and answered with the factors to choose from. */
    const factorRefused = async (reason: FactorRefusal, credentialId?: string): Promise<unknown> => {
      // A wrong factor here is someone holding the link guessing the code: audited like one at /auth/mfa/verify.
      // The first request without a factor is the normal way to learn that one is needed, not a failure.
      // A throttled or an unthrottled one is sampled (refusalSampled): the link's holder can repeat it for as long as the link lives.
      const sample = refusalSampled(reason, request.body) ? app.accounts.refusals.take(`reset-factor:${user.id}`, app.clock.now()) : RECORD;
      if (reason !== "none-given" && sample.record) {
        await app.audit.append({
          type: "auth.password.reset-factor-failed", actor: "anonymous", subject: user.id, requestId: request.id,
          data: { ip: requestContext(request).ip, reason, ...(credentialId ? { credentialId } : {}), resetId: check.tokenId, ...unrecordedCounts(sample) },
        });
      }
      if (reason === "throttled") return resetThrottledAnswer(app, reply, user.id);
      const factors = await app.accounts.mfa.factors(user.id);
      return reply.status(401).send({
        error: { code: reason === "none-given" ? "BULWARK_ERR_MFA_REQUIRED" : "BULWARK_ERR_MFA_INVALID", message: "this account uses multi-factor authentication: give a code from your authenticator app, a recovery code or a security key" },
        factors,
      });
    };
    // A reset link proves control of the mailbox only: with MFA, the second factor is still required (ASVS 6.4.3).
    // Proven here, spent in the transaction that redeems the link: a completion that loses the race for the link
    // leaves the code unspent.
    let proof: FactorProof | null = null;
    let factorUsed: string | null = null;
    if (await app.accounts.mfa.hasMfa(user.id)) {
      // A passkey assertion must answer a challenge asked for with this very link. Codes count on the reset counter, apart
      // from the sign-in's (ASVS 6.3.1): whoever holds the link may hold only the mailbox, and a hundred wrong codes sent
      // with links (as many as the mailbox can ask for) stopped the owner's right codes at every sign-in. Per account,
      // not per link, so new links buy no new guesses.
      const factor = await proveFactor(app, request, user.id, request.body, { webauthnContext: resetChallengeContext(check.tokenId), counter: "reset" });
      if (!factor.ok) return factorRefused(factor.reason, factor.credentialId);
      proof = factor.proof;
      factorUsed = factor.factor;
    }
    // A password that must be changed (an initial one, or one containment expired) may not be "reset" to itself:
    // that would lift the flag and the expiry and keep it for good. One verify, for those accounts only, and only
    // once the link and any second factor are proven (no password oracle for a link alone).
    if (user.passwordMustChange && user.passwordHash !== null && (await isCurrentPassword(request, user.id, request.body.newPassword, user.passwordHash))) {
      // The factor beside it was right: the owner tries again with another password, and this attempt is given back.
      await giveBackAttempt(request, user.id, proof, "a reset completion");
      throw passwordUnchanged();
    }
    const hash = await app.accounts.passwords.hash(request.body.newPassword);
    let ended: number;
    try {
      ended = await app.db.transaction(async (trx) => {
        // Redeem and password change commit together: a crash never leaves a used link without a new password,
        // and a password changed meanwhile (throw → rollback) leaves the link unused.
        // First in the transaction: redeem takes the account's link lock before its first write, so a second link or
        // an email confirmation of the same account waits for this commit and is then refused (never a deadlock).
        const used = await resets.redeem(request.body.token, trx);
        if (!used.valid) throw resetErrors.refused(used.genuine && { ...used.genuine, reason: used.reason });
        if (used.userId !== user.id) throw resetErrors.refused();
        // Locked (or disabled) since the look above, e.g. while the password was hashed: refused, and the rollback
        // leaves the link unspent.
        const current = await trx.selectFrom("users").select(["status", "locked_at"]).where("id", "=", user.id).executeTakeFirst();
        if (!current || current.status !== "active" || current.locked_at !== null) throw resetErrors.refused({ userId: user.id, tokenId: check.tokenId, reason: "account-locked" });
        // Through the link mailed to the account's address: the owner's password from here on (passwordUnproven cleared).
        const swapped = await app.accounts.users.swapPasswordHash(user.id, user.passwordHash, { hash, scheme: app.accounts.passwords.defaultScheme, changed: true, byLink: true }, trx);
        if (!swapped) throw resetErrors.refused({ userId: user.id, tokenId: check.tokenId, reason: "password-changed-meanwhile" });
        // The owner's remedy against a hijacker cancels the hijacker's pending email change in the same commit,
        // not only by comparing times (a change asked for in the same millisecond, or on a node whose clock is ahead).
        await app.accounts.emailChanges.revokeAll(user.id, trx);
        // ASVS 7.4.3: every session ends, including any an attacker holds; the owner signs in afresh. The stamp first:
        // on PostgreSQL a session row a concurrent rotation (step-up, re-authentication) commits after the DELETE's
        // snapshot would escape it, but not the stamp, which refuses every session created up to now. In the same
        // commit as the new password, with the audit event and the owner's notice (ASVS 6.3.7).
        const count = await endUserSessions(trx, user.id, app.clock.now());
        // So does a waiting replacement or enrolment of the authenticator app, whose session just ended (after the
        // sessions, as a confirmation takes them: the user's session turn, then the app's row).
        await app.accounts.mfa.totp.cancelUnconfirmed(user.id, trx);
        // The factor last, after the sessions rows: a step-up racing with the same code locks its session row and
        // then the code's, so taking them in the same order here cannot deadlock on PostgreSQL.
        if (proof) await spendIn(trx, proof);
        // Which factor stood beside the link, and for a recovery code how many are left: the owner's notice says so
        // (a code spent with the mailbox is the same alarm as one spent with the password, ASVS 6.3.5).
        const codesLeft = factorUsed === "recovery-code" ? await app.accounts.mfa.recovery.remaining(user.id, trx) : null;
        await auditAndNotify(app, request, {
          type: "auth.password.reset", userId: user.id,
          data: { sessionsEnded: count, ...(factorUsed ? { factor: factorUsed } : {}), ...(codesLeft !== null ? { recoveryCodesLeft: codesLeft } : {}) },
          notice: { type: "password-reset", ...(codesLeft !== null ? { recoveryCodesLeft: codesLeft } : {}) },
        }, trx);
        return count;
      });
    } catch (error) {
      // A concurrent request spent the same code, step or assertion first: a replay; the link stays unused.
      if (error instanceof FactorSpentElsewhere) {
        const lost = await lostSpend(app, request, user.id, proof);
        return factorRefused(lost.reason, lost.credentialId);
      }
      // Rolled back: a genuine link refused in the transaction (spent by a racing completion, the account locked or its
      // password changed meanwhile) is recorded now, outside it.
      if (error instanceof PasswordResetError) await recordLinkRefusal(app, request, RESET_REFUSED, error.genuine);
      // The factor was right and what followed it failed (a store past its wait bound, a link refused in the transaction),
      // its spend rolled back with the link: its attempt is given back on the reset counter.
      await giveBackAttempt(request, user.id, proof, "a reset completion");
      throw error;
    }
    await proof?.settle();
    await app.accounts.flood.clearStreak(user.email);
    // The browser that completed the reset (the link from the mailbox, and the factor) is the one known to the account.
    await rememberThisDevice(app, request, reply, user.id);
    return { status: "reset", sessionsEnded: ended };
  }
}
