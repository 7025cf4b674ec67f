// Email-address changes over Kysely (SQLite and PostgreSQL alike): request (a single-use, 30-minute link to the
// new address, a notice to the old one, superseding earlier requests, 3 per hour), then confirm once — the
// token redeemed and the address changed in one transaction. The HTTP layer owns freshness and audit; a request
// re-checks the requesting session under the account's link lock (it may have ended since the route read it), and
// waits for a revocation in flight before its link can commit. An address held only by an unfinished sign-up is taken
// at confirmation, that sign-up deleted and recorded in the same transaction (sign-up-shell.ts).
import { sql, type Kysely, type Selectable } from "kysely";
import type { AuditLog } from "../../audit/audit-log.ts";
import type { Clock } from "../../lib/clock.ts";
import type { RandomSource } from "../../lib/random.ts";
import { addressProblem, checkAddress, type Outbox } from "../../notify/index.ts";
import type { Database } from "../../store/database.ts";
import type { Schema, UsersTable } from "../../store/schema.ts";
import { lockAccountLinks, withAccountLinks } from "../password-reset/link-lock.ts";
import { identifierKey, validateEmail } from "../users/normalise.ts";
import { confusableSkeleton } from "../users/confusables.ts";
import { addressHolders, removeUnfinishedSignUp } from "./sign-up-shell.ts";
import { collidedKey } from "../users/user-store.ts";
import { sessionErrors } from "../sessions/errors.ts";
import { currentEpoch, GLOBAL_SCOPE, holdSessionForNewCredential, readStamps, refusedBy, userScope } from "../sessions/revocation.ts";
import { composeAttemptMail, composeConfirmMail, composeRequestedNotice, type EmailChangeMailContext } from "./email-change-mail.ts";
import { emailChangeErrors } from "./errors.ts";
import { genuineOf, type LinkRefusal } from "../../crypto/link-token.ts";
import { DEFAULT_DATED_AHEAD_TOLERANCE_MS } from "../../store/clock-skew.ts";
import { checkEmailChangeRow, generateEmailChangeToken, parseEmailChangeToken } from "./token.ts";

/**
 * Marks every unused email-change link of `userId` used at `now`, with `executor` (a caller's transaction when the
 * spend must commit with another change). Returns how many. The service's `revokeAll` is this with its own clock;
 * an import that replaces a password calls it in its batch transaction.
 *
 * @example
 * await spendEmailChangeLinks(trx, userId, clock.now()); // in the transaction that replaces the password
 */
export async function spendEmailChangeLinks(executor: Kysely<Schema>, userId: string, now: number): Promise<number> {
  const result = await executor.updateTable("email_change_tokens").set({ used_at: now }).where("user_id", "=", userId).where("used_at", "is", null).executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export interface EmailChangePolicy {
  /** How long a link works: long enough to open a mail, short enough to limit a leaked link. */
  lifetimeMs: number;
  /** At most this many requests per account per window: the form must not become a mail cannon. */
  maxPerWindow: number;
  windowMs: number;
  /**
   * A link created more than this ahead of the judging node's clock is refused as "future-dated" and spent by
   * purgeExpired: the skew a node may have and still serve, as for reset links (PasswordResetPolicy).
   */
  datedAheadToleranceMs: number;
}

export const DEFAULT_EMAIL_CHANGE_POLICY: Readonly<EmailChangePolicy> = Object.freeze({ lifetimeMs: 30 * 60_000, maxPerWindow: 3, windowMs: 60 * 60_000, datedAheadToleranceMs: DEFAULT_DATED_AHEAD_TOLERANCE_MS });

/** Why a genuine, unspent link no longer confirms: the account's state since it was asked for (confirm, check). */
export type EmailChangeAccountRefusal = "account-locked" | "account-disabled" | "password-invalidated" | "password-changed-since" | "sessions-revoked-since";

export type EmailChangeRefusal = LinkRefusal | EmailChangeAccountRefusal;

/** The columns of a link's account that confirm and check read (accountRefusal). */
type LinkAccount = Pick<Selectable<UsersTable>, "email" | "email_key" | "status" | "locked_at" | "password_changed_at" | "password_invalidated_at">;

export type EmailChangeCheck =
  | { valid: true; tokenId: string; userId: string; newEmail: string; createdAt: number; expiresAt: number; issuedEpoch: number }
  /** `genuine`: the secret matched (a used or expired link of this account), with whose it is. */
  | { valid: false; reason: EmailChangeRefusal; genuine?: { userId: string; tokenId: string } };

/** check's verdict: a link confirm would take also carries its account's current address (the page names it). */
export type EmailChangeLinkCheck = (Extract<EmailChangeCheck, { valid: true }> & { accountEmail: string }) | Extract<EmailChangeCheck, { valid: false }>;

/** What a request did, for logs and audit only: the HTTP answer is the same for all three. */
export type EmailChangeRequestOutcome = "queued" | "address-taken" | "rate-limited" | "recipient-limited";

/**
 * The mailbox an address delivers to, as far as counting what one inbox receives goes: its lookup key without a
 * sub-address ("+tag", RFC 5233), which most hosts deliver to the plain address's inbox. A flood key, never an
 * identity: folding too much only counts more.
 *
 * @example
 * mailboxKey("Inbox+7@Victim.example") // "inbox@victim.example"
 * mailboxKey("b.ob+x@googlemail.com") // "bob@gmail.com"
 */
export function mailboxKey(address: string): string {
  const key = identifierKey(address);
  const at = key.lastIndexOf("@");
  if (at <= 0) return key;
  let local = key.slice(0, at);
  let domain = key.slice(at + 1);
  const plus = local.indexOf("+");
  if (plus > 0) local = local.slice(0, plus);
  // Gmail ignores dots in the local part and delivers googlemail.com to the same inbox.
  if (domain === "gmail.com" || domain === "googlemail.com") {
    domain = "gmail.com";
    local = local.replaceAll(".", "") || local;
  }
  return `${local}@${domain}`;
}

/** A completed change. */
export interface EmailChanged {
  userId: string;
  oldEmail: string;
  newEmail: string;
  /** The unfinished sign-up that held the new address and was deleted for it (sign-up-shell.ts), when one did. */
  signUpRemoved?: string;
}

/** Options of EmailChangeService.request. */
export interface EmailChangeRequestOptions {
  /** The requesting session: the request is refused, nothing written, when it no longer stands. */
  sessionId?: string;
  /** The new mailbox had too many such requests this hour: nothing goes to it. */
  withheld?: boolean;
  /** Runs last in the request's transaction, with its outcome (see request). */
  record?: (executor: Kysely<Schema>, outcome: EmailChangeRequestOutcome) => Promise<void>;
}

export interface EmailChangeService {
  readonly policy: Readonly<EmailChangePolicy>;
  /**
   * Records a request to move `user` to `newEmail` and queues its mails, all in one transaction (committed
   * before the caller answers). A free address gets the link; an address of another account gets a note with
   * no link; the old address is told in both cases. Earlier open links of the user are superseded. Past
   * `maxPerWindow` requests in `windowMs` nothing is written or sent. Throws on an invalid address or the
   * account's own. The old address is the one the account has when the transaction runs, not `user.email`.
   * With `sessionId` (the route passes the requesting session), throws BULWARK_ERR_SESSION_REVOKED, nothing
   * written, when that session no longer stands: ended or revoked (a password reset or change, an end of sessions)
   * after the caller read it, or its account disabled or locked; an end of sessions or a containment still in flight
   * is waited for, then refuses it too. With `withheld` (the new mailbox had too many such
   * requests this hour), no link or note goes to the new address: the request is recorded (it counts towards the
   * account's limit) and the old address is told that nothing was sent, and why ("recipient-limited"). An address
   * the outbox would not mail (addressProblem) throws BULWARK_ERR_MAIL_ADDRESS first, withheld or not. `record`
   * runs last in the transaction with the outcome, whatever it is (nothing written when "rate-limited"): the caller's
   * audit event commits with the link and its mails or not at all. It may use only the executor given; throwing rolls
   * everything back.
   */
  request(user: { id: string; email: string }, newEmail: string, context: EmailChangeMailContext, options?: EmailChangeRequestOptions): Promise<EmailChangeRequestOutcome>;

  /**
   * Checks a presented token without using it up, as confirm would judge it before the address itself: the link, then
   * its account's state (locked, disabled, its password invalidated or changed since, its sessions revoked since), so
   * a page never offers to confirm a link confirm would refuse. A valid answer carries the account's current address
   * (`accountEmail`), from the same read.
   */
  check(token: unknown): Promise<EmailChangeLinkCheck>;
  /**
   * Confirms a change: redeems the token (exactly one caller wins, even concurrently; the user's other open
   * links die with it) and changes the address, in one transaction with `within` (the caller's extra writes),
   * which holds the account's link lock (`lockAccountLinks`) from before its first write.
   * Throws `refused` for a bad, expired or used link, for an account no longer active or locked, and for a link older than
   * the account's last password change or session revocation; `taken` (nothing changes) when another account
   * took the address meanwhile. An address held only by an unfinished sign-up (sign-up-shell.ts) is not taken: the link
   * proved the mailbox that sign-up only named, and the sign-up is deleted and recorded in the transaction (with the
   * service's `audit`; without one it counts as taken).
   */
  confirm(token: unknown, options?: { within?: (trx: Kysely<Schema>, change: EmailChanged) => Promise<void> }): Promise<EmailChanged>;
  /**
   * Supersedes every open link of a user. Returns how many. Without an executor it runs in its own transaction
   * under the account's link lock; a caller's transaction that writes other link rows of the user takes that lock
   * itself, before its first write.
   */
  revokeAll(userId: string, executor?: Kysely<Schema>): Promise<number>;
  /**
   * Deletes the rows past their own expiry that are also older than the rate window (used or not), and spends the
   * unused ones dated more than policy.datedAheadToleranceMs ahead of this clock (the check's "future-dated"), on
   * `executor` when given (maintenance bounds its waits). Returns how many.
   */
  purgeExpired(executor?: Kysely<Schema>): Promise<number>;
}

/**
 * Builds the email-change service.
 *
 * @example
 * const changes = createEmailChangeService({ database, clock: systemClock, random: systemRandom, outbox });
 * await changes.request(user, "new@example.org", { publicURL, serviceName }); // mails queued
 * const changed = await changes.confirm(tokenFromTheLink);                  // { userId, oldEmail, newEmail }
 */
export function createEmailChangeService(deps: {
  database: Database; clock: Clock; random: RandomSource; outbox: Outbox; policy?: Partial<EmailChangePolicy>;
  /** Records an unfinished sign-up deleted at confirmation; without it such a sign-up keeps the address (taken). */
  audit?: Pick<AuditLog, "appendIn">;
}): EmailChangeService {
  const { database, clock, random, outbox, audit } = deps;
  const policy = Object.freeze({ ...DEFAULT_EMAIL_CHANGE_POLICY, ...deps.policy });
  for (const [name, value] of Object.entries(policy)) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new TypeError(`email change policy: ${name} must be a positive whole number, got ${String(value)}`);
  }
  const db = database.db;

  async function look(token: unknown, target: Kysely<Schema>): Promise<EmailChangeCheck> {
    const parsed = parseEmailChangeToken(token);
    if (!parsed) return { valid: false, reason: "malformed" };
    const found = await target.selectFrom("email_change_tokens").selectAll().where("id", "=", parsed.id).executeTakeFirst();
    // The secret before the state: knowing an id must reveal nothing about the row's state.
    const verdict = checkEmailChangeRow(parsed.secret, found, clock.now(), policy.datedAheadToleranceMs);
    // Past the secret check (used, expired): a genuine link, whose refusal the caller may record against its account.
    if ("reason" in verdict) return { valid: false, reason: verdict.reason, ...genuineOf(found, verdict.reason) };
    const { row } = verdict;
    return { valid: true, tokenId: row.id, userId: row.user_id, newEmail: row.new_email, createdAt: Number(row.created_at), expiresAt: Number(row.expires_at), issuedEpoch: Number(row.issued_epoch) };
  }

  /**
   * Why the account of a valid link `found` no longer lets it confirm, or null: disabled or locked; its password
   * invalidated by containment (the owner's way back is the reset link mailed to the current address: moving the address
   * now would hand a hijacker the account and cancel the owner's link); changed, or its sessions revoked, after the link
   * was asked for (the owner's remedy against a hijacker must cancel the hijacker's change too). `user`: its row
   * (linkAccount), undefined when it is gone.
   */
  async function accountRefusal(target: Kysely<Schema>, found: { userId: string; createdAt: number; issuedEpoch: number }, user: LinkAccount | undefined): Promise<EmailChangeAccountRefusal | null> {
    if (!user || user.status !== "active" || user.locked_at !== null) return user?.locked_at != null ? "account-locked" : "account-disabled";
    if (user.password_invalidated_at !== null) return "password-invalidated";
    if (user.password_changed_at !== null && Number(user.password_changed_at) > found.createdAt) return "password-changed-since";
    const stamps = await readStamps(target, [GLOBAL_SCOPE, userScope(found.userId)]);
    return refusedBy(stamps, found.createdAt, found.issuedEpoch) ? "sessions-revoked-since" : null;
  }

  /** The account of a link as accountRefusal judges it, with its address (confirm moves it). */
  function linkAccount(target: Kysely<Schema>, userId: string): Promise<LinkAccount | undefined> {
    return target.selectFrom("users").select(["email", "email_key", "status", "locked_at", "password_changed_at", "password_invalidated_at"]).where("id", "=", userId).executeTakeFirst();
  }

  function revokeAll(userId: string, executor?: Kysely<Schema>): Promise<number> {
    // On its own, under the account's link lock (see the reset service's revokeAll).
    return withAccountLinks(database, userId, executor, (trx) => spendEmailChangeLinks(trx, userId, clock.now()));
  }

  return {
    policy,
    async request(user, newEmail, context, options = {}) {
      const address = validateEmail(newEmail);
      // Refused before anything else, whatever the address's mailbox count or owner: the account store accepts more than
      // the outbox will mail ("x+https://evil.example/…@evil.test"). A free address was refused anyway (its link could not
      // be queued), but a withheld request queued no mail to it and quoted it verbatim in the owner's genuine notice: a
      // hijacker's link in a signed security mail. The same 400 BULWARK_ERR_MAIL_ADDRESS as the free case always gave.
      checkAddress("newEmail", address);
      const key = identifierKey(address);
      if (key === identifierKey(user.email)) throw emailChangeErrors.unchanged();
      // The outcome, once the caller's record (options.record) is written with it: last, so a record that takes the audit
      // log's head holds it only until the commit that follows.
      const recorded = async (trx: Kysely<Schema>, outcome: EmailChangeRequestOutcome): Promise<EmailChangeRequestOutcome> => {
        await options.record?.(trx, outcome);
        return outcome;
      };
      return database.transaction(async (trx): Promise<EmailChangeRequestOutcome> => {
        // Per account, the hourly count and the insert are serialised (PostgreSQL: concurrent requests each counted
        // below the limit, and each mailed a link and a notice), under the lock every link transaction takes first.
        await lockAccountLinks(database, trx, user.id);
        // The caller read the account and the session before this transaction. Read again under the lock, which a
        // password reset, a password change and an email confirmation hold while they end sessions and spend links:
        // one that committed meanwhile ended the requesting session (a hijacker's, perhaps) and would otherwise leave
        // this request a working link stamped after it; and a confirmation moved the address, so the notice goes to
        // the address the account has now, not to the one it left.
        const current = await trx.selectFrom("users").select(["email", "status", "locked_at"]).where("id", "=", user.id).executeTakeFirst();
        if (!current) throw sessionErrors.refused("account-disabled");
        if (options.sessionId !== undefined) {
          const session = await trx.selectFrom("sessions").select(["created_at", "issued_epoch"]).where("id", "=", options.sessionId).where("user_id", "=", user.id).executeTakeFirst();
          const stamps = await readStamps(trx, [GLOBAL_SCOPE, userScope(user.id)]);
          if (!session || refusedBy(stamps, Number(session.created_at), Number(session.issued_epoch))) throw sessionErrors.refused("revoked");
          if (current.status !== "active") throw sessionErrors.refused("account-disabled");
          if (current.locked_at !== null) throw sessionErrors.refused("account-locked");
        }
        if (key === identifierKey(current.email)) throw emailChangeErrors.unchanged();
        const now = clock.now();
        const recent = await trx
          .selectFrom("email_change_tokens").select((eb) => eb.fn.countAll<number>().as("n"))
          .where("user_id", "=", user.id).where("created_at", ">", now - policy.windowMs)
          .executeTakeFirstOrThrow();
        if (Number(recent.n) >= policy.maxPerWindow) return recorded(trx, "rate-limited");
        // Withheld (the new mailbox's hourly count is spent): nothing goes to the new address and open links stay; the
        // request is recorded born used, so it counts towards the account's limit, and the old address hears why.
        const withheld = options.withheld === true;
        // Otherwise both paths run the same statements (a lookup, a supersede, an insert, two messages), so the
        // time of the answer does not tell whether the address is registered either (ASVS 6.3.8).
        const owner = withheld ? undefined : await trx.selectFrom("users").select("id").where("email_key", "=", key).executeTakeFirst();
        if (!withheld) await revokeAll(user.id, trx);
        // Another account's link to the same mailbox (its spellings folded) that still works: the new mail says so, so the
        // mailbox's owner does not take one for the other (an outsider racing an employee's announced move, ASVS 6.3.7).
        // Open rows only, at most a link lifetime of requests; read on both paths, as the statements must not differ.
        const open = withheld ? [] : await trx.selectFrom("email_change_tokens").select("new_email")
          .where("user_id", "!=", user.id).where("used_at", "is", null).where("expires_at", ">", now).execute();
        const sharedWith = open.some((row) => mailboxKey(row.new_email) === mailboxKey(address));
        const fresh = generateEmailChangeToken(random);
        // A taken address gets no link: its row is born used, and counts towards the hourly limit all the same.
        await trx.insertInto("email_change_tokens").values({
          id: fresh.id, user_id: user.id, new_email: address, secret_hash: fresh.secretHash, created_at: now,
          expires_at: now + policy.lifetimeMs, used_at: owner || withheld ? now : null, issued_epoch: currentEpoch(),
        }).execute();
        // The read above sees only what has committed (PostgreSQL, READ COMMITTED). An end of the account's sessions
        // (a help desk's sessions/revoke) or a revoke-sessions job being created may have raised the user's stamp, and
        // deleted the session, without committing yet; the link would then carry the revocation's own epoch (a sequence,
        // not transactional) and a later time, and no stamp would refuse it at confirmation (ASVS 7.4.1). So the link
        // waits for them as a minted token does: the user's session turn (an end of sessions), the account's row FOR
        // SHARE (a job's creation), the global stamp's row (an --all job), then the session read again, refused with
        // the 401 of a revoked session (rolling the link and its mails back). After the link's row is written, as ADR
        // 0018 asks; the link lock, taken first, comes before the turn as in a reset or a confirmation.
        if (options.sessionId !== undefined) await holdSessionForNewCredential(trx, user.id, options.sessionId);
        if (!withheld) {
          await outbox.enqueue(owner
            ? composeAttemptMail(address, context, `account.email-change-attempt:${fresh.id}`)
            // Not sent once its link is used or superseded (NewMessage.linkId: the row inserted above).
            : { ...composeConfirmMail(address, fresh.token, { ...context, account: current.email, sharedWith }, policy.lifetimeMs, `account.email-change-link:${fresh.id}`), linkId: fresh.id }, trx);
        }
        // The old address hears of it at once: a hijacker moving the account away is noticed before the link is used.
        // Unless the outbox cannot mail it (the account store accepts more): then moving to a deliverable address is
        // exactly what the owner needs, and must not be refused for the sake of a notice that cannot go out.
        if (addressProblem(current.email) === null) {
          await outbox.enqueue(composeRequestedNotice(current.email, address, { ...context, at: now, withheld }, `security.email-change-requested:${fresh.id}`), trx);
        }
        return recorded(trx, withheld ? "recipient-limited" : owner ? "address-taken" : "queued");
      });
    },
    async check(token) {
      const found = await look(token, db);
      if (!found.valid) return found;
      const user = await linkAccount(db, found.userId);
      const reason = await accountRefusal(db, found, user);
      return reason === null && user ? { ...found, accountEmail: user.email } : { valid: false, reason: reason ?? "account-disabled", genuine: { userId: found.userId, tokenId: found.tokenId } };
    },
    async confirm(token, options = {}) {
      return database.transaction(async (trx) => {
        // A plain read first, only to learn whose link it is; its verdict is settled by the UPDATE below.
        const found = await look(token, trx);
        if (!found.valid) throw emailChangeErrors.refused(found.genuine ? { ...found.genuine, reason: found.reason } : undefined);
        const refused = (reason: string): Error => emailChangeErrors.refused({ userId: found.userId, tokenId: found.tokenId, reason });
        // Before any write: this transaction goes email link → user → reset links (the caller's `within`), a reset
        // completion reset link → user → email links. On PostgreSQL the two deadlocked, a 500 for one of them.
        await lockAccountLinks(database, trx, found.userId);
        const now = clock.now();
        // The conditional UPDATE is the single point of truth: of two concurrent confirms only one changes the row.
        // Run after the lock, it sees what a transaction that held the lock before committed (READ COMMITTED).
        const used = await trx.updateTable("email_change_tokens").set({ used_at: now })
          .where("id", "=", found.tokenId).where("used_at", "is", null).where("expires_at", ">", now)
          .executeTakeFirst();
        if (Number(used.numUpdatedRows) !== 1) throw refused("used");
        await revokeAll(found.userId, trx);
        // The account's state, as check judges it for the page (accountRefusal), from the one read of its row.
        const user = await linkAccount(trx, found.userId);
        const standing = await accountRefusal(trx, found, user);
        if (standing !== null || !user) throw refused(standing ?? "account-disabled");
        const key = identifierKey(found.newEmail);
        // Another account's address, or one that reads like it (the same letters in another script, confusables.ts):
        // either would show two accounts under one address.
        const skeleton = confusableSkeleton(found.newEmail);
        const taken = (): Error => emailChangeErrors.taken({ userId: found.userId, tokenId: found.tokenId, reason: "address-taken" });
        const holders = await addressHolders(trx, found.userId, found.newEmail);
        if (!holders.free) throw taken();
        // Unless only an unfinished sign-up holds it (an outsider's, started after the link was mailed): this link proved
        // the mailbox, which that sign-up only named. It goes before the update the unique index would refuse; one
        // finished meanwhile (a password now) is a real account and keeps the address. (At most one: sign-up takes plain
        // ASCII addresses only, whose skeleton is their lookup key.)
        for (const signUp of holders.signUps) {
          const removed = audit !== undefined && await removeUnfinishedSignUp(database, trx, audit, signUp, { actor: found.userId, for: found.userId, via: "email-confirm", detail: { link: found.tokenId } });
          if (!removed) throw taken();
        }
        try {
          // Compare-and-set on the old key: a concurrent change of the same account cannot be overwritten.
          // The password was proven (if at all) by a link to the old address, not to this one (migration 24): an
          // administrative role waits for a reset link mailed here. Else a help desk that moved an account it created to
          // its own mailbox, reset there and moved it back through the owner's click would pass for the owner.
          const changed = await trx.updateTable("users").set({ email: found.newEmail, email_key: key, email_skeleton: skeleton, email_lookalike: 0, updated_at: now, password_unproven: sql<number>`CASE WHEN password_hash IS NULL THEN 0 ELSE 1 END` })
            .where("id", "=", found.userId).where("email_key", "=", user.email_key).executeTakeFirst();
          if (Number(changed.numUpdatedRows) !== 1) throw refused("changed-meanwhile");
        } catch (cause) {
          // Another account took the address, or a look-alike, between the lookup and the update (the unique indexes decide).
          const collided = collidedKey(cause);
          if (collided === "email" || collided === "email-skeleton") throw taken();
          throw cause;
        }
        const change: EmailChanged = { userId: found.userId, oldEmail: user.email, newEmail: found.newEmail, ...(holders.signUps[0] ? { signUpRemoved: holders.signUps[0] } : {}) };
        if (options.within) await options.within(trx, change);
        return change;
      });
    },
    revokeAll,
    async purgeExpired(executor = db) {
      const now = clock.now();
      // A link dated ahead of this clock (a node whose clock runs fast issued it) is refused as "future-dated", but
      // once real time passes its date it would be judged by an expiry that much too late: spent now, as sessions dated
      // ahead are deleted, so a pass every maintenance interval bounds the stretch (the password reset's purge says more).
      // By the check's own tolerance, so the genuine links of a node the product lets serve are not spent for good.
      const spent = await executor.updateTable("email_change_tokens").set({ used_at: now })
        .where("used_at", "is", null).where("created_at", ">", now + policy.datedAheadToleranceMs).executeTakeFirst();
      // Each row by its own expiry, not by the lifetime set now (a link mailed under a longer setting lives its
      // time), and rows of the rate window stay even when expired or used: they are what the per-account limit counts.
      const result = await executor.deleteFrom("email_change_tokens").where("expires_at", "<=", now).where("created_at", "<=", now - policy.windowMs).executeTakeFirst();
      return Number(spent.numUpdatedRows) + Number(result.numDeletedRows);
    },
  } satisfies EmailChangeService;
}
