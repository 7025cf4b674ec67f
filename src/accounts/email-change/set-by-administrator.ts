// An administrator sets an account's email address directly: the way back after a hijacker moved the account to a
// mailbox of theirs (the notice to the old address sends its owner to the administrators, who check who is asking out
// of band). In one transaction: the address changes, the password stops working (the hijacker may have set it, and
// knows the owner's address), every session ends, the open reset and email-change links die (they went to the
// hijacker's mailbox), a new reset link goes to the new address, the event is audited, and both addresses are told
// (ASVS 6.3.7) — the new one what happened, the old one only that it no longer belongs to the account (not where it went).
// An address held only by an unfinished sign-up (sign-up-shell.ts: anyone may start one, a hijacker for the address the
// account left) is given all the same: that sign-up is deleted in the transaction, and recorded.
// An old address the outbox cannot mail (the account store takes more, e.g. from an import) is not told: the answer,
// the dry run and the event say so, and EMAIL_SET_NOTICE_REFUSED records it in the change's commit (ASVS 16.3.1).
// Used by `POST /api/v1/users/:id/email` and `bulwark users set-email`; docs/http-auth.md has the recovery steps.
import type { Kysely } from "kysely";
import type { App } from "../../app/types.ts";
import { addressProblem, notifySecurityEvent } from "../../notify/index.ts";
import type { Schema } from "../../store/schema.ts";
import { accountErrors } from "../errors.ts";
import { lockAccountLinks } from "../password-reset/link-lock.ts";
import { spendResetLinks } from "../password-reset/reset-service.ts";
import { endUserSessions } from "../sessions/revocation.ts";
import { confusableSkeleton } from "../users/confusables.ts";
import { identifierKey, validateEmail } from "../users/normalise.ts";
import { collidedKey } from "../users/user-store.ts";
import { spendEmailChangeLinks } from "./email-change-service.ts";
import { emailChangeErrors } from "./errors.ts";
import { addressTag } from "./address-tag.ts";
import { addressHolders, removeUnfinishedSignUp } from "./sign-up-shell.ts";

/** The audit event of an address set by an administrator. */
export const EMAIL_SET_EVENT = "user.email-set";

/**
 * The audit event of an address change whose notice could not reach the old address (the outbox refuses it): the
 * owner heard nothing of the move, so whoever reviews the changes must see which owners to reach another way.
 */
export const EMAIL_SET_NOTICE_REFUSED = "user.email-set.notice.refused";

/**
 * The audit event of a containment job's hold on an account's reset links (users.reset_held_at) lifted by a set-email:
 * confirming the address the account has, or setting another (data.event: that change's user.email-set).
 */
export const RESET_HOLD_LIFTED_EVENT = "user.reset-hold-lifted";

export interface SetEmailRequest {
  userId: string;
  email: string;
  /** Who asks: a user id (the API caller) or the CLI's operator tag. */
  actor: string;
  via: "api" | "cli";
  requestId?: string;
  /** More for the audit event's data: the API adds the caller's address and how it authenticated. */
  detail?: Record<string, unknown>;
  /** Runs first in the change's transaction, after the account's link lock (the API checks the caller outranks the account). */
  within?: (trx: Kysely<Schema>) => Promise<void>;
}

/** What is left for the administrator to look at: a hijacker's tokens and factors outlive an address change. */
export interface AccountFootholds {
  /** Live API tokens (not revoked, not expired): a password reset does not end them. */
  apiTokens: number;
  /** Confirmed TOTP and WebAuthn credentials: a hijacker's own factor keeps the owner out after a reset. */
  secondFactors: number;
}

export interface SetEmailOutcome {
  changed: boolean;
  userId: string;
  oldEmail: string;
  newEmail: string;
  sessionsEnded: number;
  /** Unused reset and email-change links (expired ones too) that the change spent: SetEmailForecast.openLinks forecasts it. */
  linksSpent: number;
  /** The password stopped working (an account with one): only the reset link mailed to the new address sets another. */
  passwordInvalidated: boolean;
  /** The audit event, quoted as the reference in both notices; null when nothing changed. */
  eventId: string | null;
  /**
   * A containment job held the account's reset links (migration 27) and the request lifted the hold: confirming the
   * address the account has, so the public reset form mails it again, or setting another (the hold was on the old one).
   * Never silent: a "retry" re-opened the form unawares. Audited as RESET_HOLD_LIFTED_EVENT either way.
   */
  resetHoldLifted: boolean;
  /** The old address was told of the change (its notice queued); false when nothing changed, or the outbox refuses it. */
  oldAddressNotified: boolean;
  /** Why the outbox refused the old address (it cannot mail it), when it did: its owner must be reached another way. */
  oldAddressRefused: string | null;
  /**
   * The unfinished sign-up that held the new address (made by POST /auth/register, its link never followed) and was
   * deleted for it, audited as SIGN_UP_REMOVED_EVENT (sign-up-shell.ts); null when none did.
   */
  signUpRemoved: string | null;
  remaining: AccountFootholds;
}

/** The dry run's answer: what a change would do, from a read that changes nothing. */
export interface SetEmailForecast {
  changed: boolean;
  userId: string;
  oldEmail: string;
  newEmail: string;
  sessions: number;
  /** The unused reset and email-change links the change would spend, expired ones too (SetEmailOutcome.linksSpent). */
  openLinks: number;
  /** Whether the change would stop the password working (the account has one). */
  invalidatesPassword: boolean;
  /** The account's reset links are held: the request would lift the hold, with the address changed or not (SetEmailOutcome.resetHoldLifted). */
  liftsResetHold: boolean;
  /** The change would tell the old address (SetEmailOutcome.oldAddressNotified). */
  notifiesOldAddress: boolean;
  /** Why the outbox would refuse the old address, when it would: the change would tell its owner nothing. */
  oldAddressRefused: string | null;
  /** The unfinished sign-up holding the new address that the change would delete (SetEmailOutcome.signUpRemoved). */
  removesSignUp: string | null;
  remaining: AccountFootholds;
}

/** The address as it would be stored, refused with a named reason when it cannot be, or when the outbox could not mail it. */
function acceptableAddress(email: string): string {
  const address = validateEmail(email);
  // The point is to reach the owner again: an address the outbox refuses (the account store accepts more) reaches nobody.
  const problem = addressProblem(address);
  if (problem !== null) throw emailChangeErrors.undeliverable(problem);
  return address;
}

async function currentAccount(executor: Kysely<Schema>, userId: string): Promise<{ email: string; email_key: string; password_hash: string | null; reset_held_at: number | null }> {
  const row = await executor.selectFrom("users").select(["email", "email_key", "password_hash", "reset_held_at"]).where("id", "=", userId).executeTakeFirst();
  if (!row) throw accountErrors.notFound(`user ${userId.slice(0, 40)}`);
  return row;
}

/**
 * Refuses an address another account holds, or one that reads like it (confusables.ts), unless only unfinished
 * sign-ups hold it (sign-up-shell.ts): returns those, which the change removes.
 */
async function assertFree(executor: Kysely<Schema>, userId: string, address: string): Promise<string[]> {
  const holders = await addressHolders(executor, userId, address);
  if (!holders.free) throw holders.reason === "taken" ? accountErrors.emailTaken() : accountErrors.emailConfusable();
  return holders.signUps;
}

async function footholds(executor: Kysely<Schema>, userId: string, now: number): Promise<AccountFootholds> {
  const count = (n: { n: number | string | bigint } | undefined): number => Number(n?.n ?? 0);
  const tokens = await executor.selectFrom("api_tokens").select((eb) => eb.fn.countAll<number>().as("n"))
    .where("user_id", "=", userId).where("revoked_at", "is", null)
    .where((eb) => eb.or([eb("expires_at", "is", null), eb("expires_at", ">", now)])).executeTakeFirst();
  const totp = await executor.selectFrom("mfa_totp").select((eb) => eb.fn.countAll<number>().as("n"))
    .where("user_id", "=", userId).where("confirmed_at", "is not", null).executeTakeFirst();
  const keys = await executor.selectFrom("webauthn_credentials").select((eb) => eb.fn.countAll<number>().as("n"))
    .where("user_id", "=", userId).executeTakeFirst();
  return { apiTokens: count(tokens), secondFactors: count(totp) + count(keys) };
}

/**
 * The links a change spends (spendResetLinks, spendEmailChangeLinks: every unused one, expired or not), counted as the
 * change counts them: a dry run that left out an expired link forecast fewer than the change then reported ending.
 */
async function unusedLinks(executor: Kysely<Schema>, userId: string): Promise<number> {
  let n = 0;
  for (const table of ["password_reset_tokens", "email_change_tokens"] as const) {
    const row = await executor.selectFrom(table).select((eb) => eb.fn.countAll<number>().as("n")).where("user_id", "=", userId).where("used_at", "is", null).executeTakeFirst();
    n += Number(row?.n ?? 0);
  }
  return n;
}

/**
 * What setting `email` on `userId` would do, changing nothing: the same refusals as the change itself (an invalid,
 * undeliverable, taken or look-alike address; no such account), then the sessions and links it would end.
 */
export async function forecastSetEmail(app: App, userId: string, email: string): Promise<SetEmailForecast> {
  const db = app.db.db;
  const address = acceptableAddress(email);
  const current = await currentAccount(db, userId);
  const changed = identifierKey(address) !== current.email_key;
  const signUps = changed ? await assertFree(db, userId, address) : [];
  const now = app.clock.now();
  const sessions = await db.selectFrom("sessions").select((eb) => eb.fn.countAll<number>().as("n")).where("user_id", "=", userId).executeTakeFirst();
  const refused = changed ? addressProblem(current.email) : null;
  return {
    changed, userId, oldEmail: current.email, newEmail: changed ? address : current.email,
    sessions: changed ? Number(sessions?.n ?? 0) : 0, openLinks: changed ? await unusedLinks(db, userId) : 0, invalidatesPassword: changed && current.password_hash !== null,
    // Whenever a hold stands: confirming the address lifts it, and so does a change (setEmailByAdministrator).
    liftsResetHold: current.reset_held_at !== null,
    notifiesOldAddress: changed && refused === null, oldAddressRefused: refused, removesSignUp: signUps[0] ?? null,
    remaining: await footholds(db, userId, now),
  };
}

/** The audit event of a containment hold on the account's reset links lifted by `request`, in its transaction. */
async function recordHoldLifted(app: App, trx: Kysely<Schema>, request: SetEmailRequest, data: Record<string, unknown>): Promise<void> {
  await app.audit.appendIn(trx, {
    type: RESET_HOLD_LIFTED_EVENT, actor: request.actor, subject: request.userId, ...(request.requestId ? { requestId: request.requestId } : {}),
    data: { ...request.detail, via: request.via, ...data },
  });
}

/**
 * Sets the account's address to `email` (see the file's head). An address the account has already (compared on its
 * lookup key) changes nothing and answers `changed: false`: a retried request is harmless. Throws for an invalid or
 * undeliverable address (400), one another account holds or reads like (409), and an account that does not exist.
 *
 * @example
 * const outcome = await setEmailByAdministrator(app, { userId, email: "owner@example.org", actor: cliActor(), via: "cli" });
 * // { changed: true, sessionsEnded: 2, linksSpent: 1, eventId: "evt_…", remaining: { apiTokens: 1, secondFactors: 1 } }
 */
export async function setEmailByAdministrator(app: App, request: SetEmailRequest): Promise<SetEmailOutcome> {
  const address = acceptableAddress(request.email);
  const key = identifierKey(address);
  return app.db.transaction(async (trx) => {
    // First, as every transaction that writes the account's links does (link-lock.ts): a reset completing or an
    // email change confirming at this moment runs wholly before or after this one.
    await lockAccountLinks(app.db, trx, request.userId);
    if (request.within) await request.within(trx);
    const current = await currentAccount(trx, request.userId);
    const now = app.clock.now();
    if (key === current.email_key) {
      // The administrator confirms the address the account has: a containment job's hold on its reset links (migration
      // 27) is lifted, recorded with who asked and how (the API's caller context), and said in the answer; nothing
      // else changes.
      const held = current.reset_held_at !== null;
      if (held) {
        await trx.updateTable("users").set({ reset_held_at: null }).where("id", "=", request.userId).execute();
        await recordHoldLifted(app, trx, request, {});
      }
      return {
        changed: false, userId: request.userId, oldEmail: current.email, newEmail: current.email, sessionsEnded: 0, linksSpent: 0, passwordInvalidated: false,
        eventId: null, resetHoldLifted: held, oldAddressNotified: false, oldAddressRefused: null, signUpRemoved: null, remaining: await footholds(trx, request.userId, now),
      };
    }
    // An address held only by an unfinished sign-up (an outsider's, a hijacker's: anyone may start one for any address)
    // is the administrator's to give: the sign-up goes, recorded, before the update the unique index would refuse.
    const requestId = request.requestId ? { requestId: request.requestId } : {};
    // (At most one: a sign-up takes only plain ASCII addresses, whose skeleton is their lookup key.)
    const signUps = await assertFree(trx, request.userId, address);
    for (const signUp of signUps) {
      const removal = { actor: request.actor, for: request.userId, via: request.via, ...requestId, ...(request.detail ? { detail: request.detail } : {}) };
      // Finished by its link meanwhile: a password now, a real account, which keeps the address.
      if (!(await removeUnfinishedSignUp(app.db, trx, app.audit, signUp, removal))) throw accountErrors.emailTaken();
    }
    const invalidate = current.password_hash !== null;
    try {
      // Compare-and-set on the key read above, under the link lock: nothing else moves the address meanwhile.
      const updated = await trx.updateTable("users")
        .set({
          email: address, email_key: key, email_skeleton: confusableSkeleton(address), email_lookalike: 0, updated_at: now,
          // The restore a containment job's hold waits for (migration 27): the form may mail this address again.
          reset_held_at: null,
          // The password stops working: whoever held the account may have set it, and knows the owner's address (they
          // signed in with it before the move). Only the reset link queued below, to the new address, sets another.
          // And it is no longer proven the owner's (migration 24): no administrative role until that reset.
          ...(invalidate ? { password_invalidated_at: now, password_unproven: 1 } : {}),
        })
        .where("id", "=", request.userId).where("email_key", "=", current.email_key).executeTakeFirst();
      if (Number(updated.numUpdatedRows) !== 1) throw accountErrors.notFound(`user ${request.userId.slice(0, 40)}`);
    } catch (cause) {
      // Another account took the address, or a look-alike, after the lookup (the unique indexes decide).
      const collided = collidedKey(cause);
      if (collided === "email") throw accountErrors.emailTaken();
      if (collided === "email-skeleton") throw accountErrors.emailConfusable();
      throw cause;
    }
    // Links mailed to the old address would hand the account back to whoever reads it.
    const linksSpent = await spendResetLinks(trx, request.userId, now) + await spendEmailChangeLinks(trx, request.userId, now);
    // Every session ends, and the stamp refuses any a racing login creates from before (ASVS 7.4.3).
    const sessionsEnded = await endUserSessions(trx, request.userId, now);
    // Keyed tags, not the addresses (as auth.email.change-requested keeps them): the log can match them to a known
    // address without holding either.
    const tag = (a: string): string => addressTag(app.keyring, a);
    // The notice below leaves out an old address the outbox cannot mail (securityMessages): its owner hears nothing of
    // the move, which the event, its own record and the answer say — else a help desk moving such an account to a
    // mailbox of its own left no sign that the owner was never told (ASVS 6.3.7, 16.3.1).
    const refused = addressProblem(current.email);
    const event = await app.audit.appendIn(trx, {
      type: EMAIL_SET_EVENT, actor: request.actor, subject: request.userId, ...requestId,
      data: {
        ...request.detail, via: request.via, from: tag(current.email), to: tag(address), sessionsEnded, linksSpent, passwordInvalidated: invalidate,
        oldAddressNotified: refused === null, ...(refused !== null ? { oldAddressRefused: refused } : {}),
        ...(signUps.length > 0 ? { signUpRemoved: signUps[0] } : {}),
      },
    });
    if (refused !== null) {
      // As a refused security notice is recorded elsewhere (auth.notice.refused, contain.notice.refused), with the
      // change's actor: the record of who moved the account names the owners it left untold.
      await app.audit.appendIn(trx, {
        type: EMAIL_SET_NOTICE_REFUSED, actor: request.actor, subject: request.userId, ...requestId,
        data: { notice: "email-set-by-administrator", recipient: "previous", event: event.id, reason: refused },
      });
    }
    // The hold the update above cleared is recorded as a confirmation's is, naming the change that lifted it: only the
    // answer said so, and the log showed no lift of a hold the docs say is always recorded (ASVS 16.3.3).
    if (current.reset_held_at !== null) await recordHoldLifted(app, trx, request, { event: event.id });
    // The owner's way in: a link to the new address (keyed by the event, so it is queued once), as a containment's is.
    await app.accounts.resetMailer.issueInTransaction(trx, request.userId, { email: address, publicURL: app.config.http.publicURL, serviceName: app.config.serviceName, reason: "containment", jobId: event.id });
    // In the same commit: the change is never made without its notices queued. The administrator's own address is
    // left out of them (the old address may be a hijacker's); the event id is the reference both quote.
    await notifySecurityEvent(app.accounts.outbox, {
      eventId: event.id, to: address, at: now, event: { type: "email-set-by-administrator", oldEmail: current.email, newEmail: address },
    }, { appName: app.config.serviceName, executor: trx });
    return {
      changed: true, userId: request.userId, oldEmail: current.email, newEmail: address, sessionsEnded, linksSpent, passwordInvalidated: invalidate,
      // A hold on the old address's reset links ends with it: the new address is the administrator's choice.
      eventId: event.id, resetHoldLifted: current.reset_held_at !== null, oldAddressNotified: refused === null, oldAddressRefused: refused,
      signUpRemoved: signUps[0] ?? null, remaining: await footholds(trx, request.userId, now),
    };
  });
}
