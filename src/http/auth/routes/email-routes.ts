// POST /auth/email/change and /auth/email/confirm: changing the account's address. The request needs a fresh
// session (ASVS 7.5.1) and answers the same whether or not the address is registered; the link goes to the new
// address and a notice to the old one; confirming ends every session and mails both addresses (ASVS 6.3.7).
import type { FastifyInstance } from "fastify";
import type { Kysely } from "kysely";
import { clearSessionCookie, endUserSessions } from "../../../accounts/sessions/index.ts";
import type { App } from "../../../app/types.ts";
import { httpAuthErrors } from "../errors.ts";
import { actingContext, auditAndNotify, recordLinkRefusal, requestContext, requireSession, str, throttledAnswer } from "../helpers.ts";
import { addressTag, EmailChangeError, mailboxKey, type EmailChanged, type EmailChangeRequestOutcome } from "../../../accounts/email-change/index.ts";
import type { Schema } from "../../../store/schema.ts";

/** The one answer to every accepted change request, whether the address is free, taken, or over the limit. */
export const EMAIL_CHANGE_ACCEPTED = {
  status: "accepted",
  message: "If this address can be used, a message with a confirmation link is on its way to it. Your current address has been told of the request.",
} as const;

export function registerEmailRoutes(server: FastifyInstance, app: App): void {
  server.post<{ Body: { newEmail: string } }>(
    "/auth/email/change",
    {
      schema: { body: { type: "object", required: ["newEmail"], properties: { newEmail: str(1024), _csrf: str(200, 0) } } },
      // Fresh session only (ASVS 7.5.1): a stolen, idle cookie cannot move the account to the thief's mailbox.
      config: { access: "authenticated", reauth: "required" },
    },
    async (request, reply) => {
      const { auth } = requireSession(request);
      const ctx = requestContext(request);
      // Counted with the public requests that send mail (a reset, a sign-up), before anything else: this one names any
      // address too, and a client whose budget is spent could otherwise go on mailing through its accounts (ASVS 2.4.1).
      const rate = await app.accounts.mailRequests.countRequest(ctx.ip);
      if (!rate.allowed) return throttledAnswer(reply, rate, "BULWARK_ERR_THROTTLED", "requests that send mail from this address");
      const user = await app.accounts.users.getById(auth.userId);
      if (!user) throw httpAuthErrors.sessionRequired();
      // One mailbox (its spellings folded) gets at most as many of these an hour as one account may ask for, however many
      // accounts ask; past it no link goes out, the owner's current address is told why, and the answer is the usual 202
      // (the count says nothing of whether the address is registered). Taken first, atomically (concurrent requests cannot
      // all see room), and given back when no mail to it was queued: a request refused (an invalid address, the account's
      // own limit, concurrent ones past it) spends nothing of it.
      const newEmail = request.body.newEmail;
      const slot = await app.accounts.mailRecipients.takeFor(mailboxKey(newEmail));
      // The audit log keeps a keyed tag of the address, not the address: it names no other person's mailbox. It names
      // the session that asked (actingContext): a thief on the owner's network reads as the owner but for it. Written in
      // the request's transaction, with its link and mails or not at all: appended after their commit, a record that
      // failed (the audit head held past the store's wait bound) answered 503 with a live link mailed that no event
      // named, and the retry the answer asked for mailed a second (test/bounded-waits-c-red-team.test.ts).
      const record = async (trx: Kysely<Schema>, done: EmailChangeRequestOutcome): Promise<void> => {
        await app.audit.appendIn(trx, {
          type: "auth.email.change-requested", actor: user.id, subject: user.id, requestId: request.id,
          data: { outcome: done, newEmail: addressTag(app.keyring, request.body.newEmail), ...actingContext(request, user.id) },
        });
      };
      let outcome: EmailChangeRequestOutcome | null = null;
      try {
        // The session is checked again inside the request's transaction: a password reset may end it after the read above.
        outcome = await app.accounts.emailChanges.request(user, newEmail, { publicURL: app.config.http.publicURL, serviceName: app.config.serviceName }, { sessionId: auth.sessionId as string, withheld: slot === null, record });
      } finally {
        if (slot !== null && outcome !== "queued" && outcome !== "address-taken") await slot.refund();
      }
      if (outcome === "rate-limited") request.log.warn({ userId: user.id }, "email change not sent: hourly limit for the account reached");
      if (outcome === "recipient-limited") request.log.warn({ userId: user.id }, "email change not sent: hourly limit for the new address reached");
      // Same status and body whatever happened (ASVS 6.3.8): the form tells nobody whether an address is registered.
      return reply.status(202).send(EMAIL_CHANGE_ACCEPTED);
    },
  );

  server.post<{ Body: { token: string } }>(
    "/auth/email/confirm",
    {
      schema: { body: { type: "object", required: ["token"], properties: { token: str(200), _csrf: str(200, 0) } } },
      // Public: the link may be opened in another browser. Cross-site browser POSTs are refused (pre-login CSRF).
      config: { access: "public", csrf: "pre-login" },
    },
    async (request, reply) => {
      let ended = 0;
      let changed: EmailChanged;
      try {
        changed = await app.accounts.emailChanges.confirm(request.body.token, {
          within: async (trx, change) => {
            // Reset links already mailed to the old address die with the change: that mailbox no longer controls the account.
            // Under the account's link lock (confirm takes it first): a reset completing at the same time waits, then is refused.
            await app.accounts.passwordReset.revokeAll(change.userId, trx);
            // Every session ends (ASVS 7.4.3), and the stamp refuses any that a racing request might still create: a
            // hijacked session dies with the change; the owner signs in afresh with the new address. In the same commit
            // as the change, with its audit event and the notice to both addresses (ASVS 6.3.7).
            ended = await endUserSessions(trx, change.userId, app.clock.now());
            await auditAndNotify(app, request, {
              // Both addresses as keyed tags: the reference the old address is told to quote must let an administrator
              // check a claimant's address against the log (as user.email-set does), without the log holding either.
              type: "auth.email.changed", userId: change.userId, data: { sessionsEnded: ended, from: addressTag(app.keyring, change.oldEmail), to: addressTag(app.keyring, change.newEmail) },
              notice: { type: "email-changed", oldEmail: change.oldEmail, newEmail: change.newEmail },
            }, trx);
          },
        });
      } catch (error) {
        // A genuine link refused (used, expired, voided by a reset, a revocation or a lock): recorded against the account.
        await recordLinkRefusal(app, request, "auth.email.confirm-refused", error instanceof EmailChangeError ? error.genuine : undefined);
        throw error;
      }
      if (request.cookieSession?.session.userId === changed.userId) void reply.header("set-cookie", clearSessionCookie());
      return { status: "changed", sessionsEnded: ended };
    },
  );
}
