// POST /auth/register (off unless BULWARK_REGISTRATION=open). Sign-up takes only an address and answers
// 202 with the reset request's body either way: a new address gets a link to choose a password (which
// also proves the mailbox), a taken one gets a reset link. So registration cannot enumerate accounts (ASVS 6.3.8).
import type { FastifyInstance } from "fastify";
import type { App } from "../../../app/types.ts";
import { addressTag, mailboxKey } from "../../../accounts/email-change/index.ts";
import { unrecordedCounts } from "../../../accounts/login/refusal-sampler.ts";
import { validateEmail } from "../../../accounts/users/normalise.ts";
import type { User } from "../../../accounts/users/user-store.ts";
import { InputError, isBulwarkError } from "../../../lib/errors.ts";
import { addressProblem } from "../../../notify/index.ts";
import { newId } from "../../../crypto/tokens.ts";
import { httpAuthErrors } from "../errors.ts";
import { requestContext, str, throttledAnswer } from "../helpers.ts";
import { RESET_ACCEPTED, sendResetMail } from "./password-routes.ts";

/** Thrown to roll back the throw-away account of a taken address (see below). */
const DECOY_DONE = Symbol("register decoy rolled back");

export function registerRegisterRoutes(server: FastifyInstance, app: App): void {
  server.post<{ Body: { email: string } }>(
    "/auth/register",
    { schema: { body: { type: "object", required: ["email"], properties: { email: str(1024), _csrf: str(200, 0) } } }, config: { access: "public", csrf: "pre-login" } },
    async (request, reply) => {
      if (!app.config.http.registrationOpen) throw httpAuthErrors.registrationClosed();
      const ctx = requestContext(request);
      // Checked before any lookup: a malformed address gets its 400 whether or not an account answers to it
      // (a username is not an address, so it must not find an account and answer 202 either).
      const email = validateEmail(request.body.email);
      // Registration works through a mailed link: an address the outbox cannot mail gets its 400 here, before the
      // lookup, whether or not an account has it (answering an existing one 202 would tell that it exists).
      const undeliverable = addressProblem(email);
      if (undeliverable !== null) throw new InputError("BULWARK_ERR_MAIL_ADDRESS", `this address cannot receive mail from this server (${undeliverable}); register with another one`);
      // Each sign-up mails an address the caller chose: counted per client address before any lookup, so the 429
      // is the same for a free and a taken address (ASVS 2.4.1, 6.3.8), and a script cannot make this server mail
      // thousands of strangers.
      const rate = await app.accounts.mailRequests.countRequest(ctx.ip);
      if (!rate.allowed) return throttledAnswer(reply, rate, "BULWARK_ERR_THROTTLED", "requests that send mail from this address");
      // And per mailbox, its spellings folded (inbox+1@, in.box@gmail.com): every spelling was a new account and a mail
      // to the same inbox, bounded only per client address, so a crowd of addresses could bury one inbox. Sign-ups have
      // a per-mailbox budget of their own (signupRecipients), not the email changes': shared, three anonymous sign-ups
      // an hour withheld the owner's own change to that mailbox for good. Taken before any lookup (a free and a taken
      // address spend it alike), given back when no mail went out. Past it: the usual 202, no account, no mail.
      const mailbox = mailboxKey(email);
      const slot = await app.accounts.signupRecipients.takeFor(mailbox);
      if (slot === null) {
        // Keyed by the mailbox's tag, never the mailbox: the maintenance pass writes this key out as the subject of
        // `auth.refusals.unrecorded`, and the audit log names addresses only by keyed tags (ASVS 16.2.5).
        const mailboxTag = addressTag(app.keyring, mailbox);
        const sample = app.accounts.refusals.take(`register-mailbox:${mailboxTag}`, app.clock.now());
        if (sample.record) {
          await app.audit.append({
            type: "auth.register.mailbox-limited", actor: "anonymous", subject: addressTag(app.keyring, email), requestId: request.id,
            data: { ip: ctx.ip, mailbox: mailboxTag, ...unrecordedCounts(sample) },
          });
        }
        return reply.status(202).send(RESET_ACCEPTED);
      }
      /**
       * The answer to an address that gets no account: the same 202, after the same work as a free one. The account a
       * free address gets costs a transaction with an insert into users and its indexes: this makes the same insert
       * for a throw-away account in a transaction rolled back, so the time of the answer does not tell which it was
       * (ASVS 6.3.8; compared in bench/http.ts). Never visible outside it. `owner` gets a reset link when active.
       */
      const noAccount = async (owner: User | null, audit: { type: string; subject: string }): Promise<unknown> => {
        await app.db.transaction(async (trx) => {
          await app.accounts.users.create({ email: `register-decoy-${newId("d", app.random).slice(2)}@bulwark.invalid` }, trx);
          throw DECOY_DONE;
        }).catch((error: unknown) => {
          if (error !== DECOY_DONE) throw error;
        });
        const mailed = owner !== null && owner.status === "active";
        if (!mailed) await slot.refund();
        // The record commits with the link and mail (or the decoy's work), as the reset request's does.
        await sendResetMail(app, request, mailed ? owner : null, "reset", (trx) => app.audit.appendIn(trx, { ...audit, actor: "anonymous", requestId: request.id, data: { ip: ctx.ip } }));
        return reply.status(202).send(RESET_ACCEPTED);
      };
      const existing = await app.accounts.users.findByIdentifier(email);
      if (existing) return noAccount(existing, { type: "auth.register.existing", subject: existing.id });
      let user;
      try {
        // No password yet: the account can be used only after its owner follows the mailed link. Its user.created event
        // (`via: register`, which makes it an unfinished sign-up: sign-up-shell.ts) commits with it or not at all. Written
        // after the commit, a record that failed (the audit head held past the store's wait bound) answered 503 and left an
        // account no event recorded, which no purge, no owner's change and no retry could tell from an invitation: the
        // retry found the address taken (test/bounded-waits-c-red-team.test.ts). Now the retry makes the account afresh.
        user = await app.db.transaction(async (trx) => {
          const made = await app.accounts.users.create({ email }, trx);
          await app.audit.appendIn(trx, { type: "user.created", actor: "anonymous", subject: made.id, requestId: request.id, data: { via: "register", ip: ctx.ip } });
          return made;
        });
      } catch (error) {
        // A concurrent sign-up for the same address lost the race: same answer as any taken address.
        if (isBulwarkError(error) && error.code === "BULWARK_ERR_EMAIL_TAKEN") {
          await slot.refund();
          return reply.status(202).send(RESET_ACCEPTED);
        }
        // The address reads like a stored account's (the same letters in another script, stored by an administrator or
        // an import): no account, no mail, and the answer and work of a taken address (docs/decisions/0013).
        if (isBulwarkError(error) && error.code === "BULWARK_ERR_EMAIL_CONFUSABLE") {
          return noAccount(null, { type: "auth.register.lookalike", subject: addressTag(app.keyring, email) });
        }
        throw error;
      }
      await sendResetMail(app, request, user, "register");
      return reply.status(202).send(RESET_ACCEPTED);
    },
  );
}
