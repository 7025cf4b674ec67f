// Reset links by mail: a token row and its outbox message written in ONE transaction (the transactional
// outbox), for three callers — a user's reset request, self-registration, and a containment job that
// invalidates passwords (Drupal.org 2013, SourceLair 2014: every affected user gets a link).
// The public request path does the same statements whether or not the address has an account (ASVS 6.3.8),
// and mails a link only to the address the account has when its transaction runs, never to a locked account.
import type { Kysely } from "kysely";
import { newId } from "../../crypto/tokens.ts";
import { InputError } from "../../lib/errors.ts";
import type { RandomSource } from "../../lib/random.ts";
import { addressProblem, PRIORITY, type NewMessage, type Outbox } from "../../notify/index.ts";
import type { Database } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";
import { lockAccountLinks } from "./link-lock.ts";
import type { PasswordResetService } from "./reset-service.ts";
import { generateResetToken } from "./token.ts";

/** Why a link is sent: the mail's wording and kind, and (for containment) how long the link lives. */
export type ResetReason = "reset" | "register" | "containment";

/**
 * A containment link lives 24 hours (Drupal's one-time login links do too): a mass mail is read over a day,
 * not in 30 minutes. It is still single-use and superseded by any other redeem or password change.
 */
export const CONTAINMENT_LINK_LIFETIME_MS = 24 * 60 * 60_000;

export interface ResetMailContext {
  /** The account's address (the mail goes here and nowhere else). */
  email: string;
  /**
   * BULWARK_PUBLIC_URL: the link is built from configuration, never from a request's Host (link poisoning). The outbox
   * stores it without this origin and sends it on the one configured when the mail goes out (src/notify/outbox.ts).
   */
  publicURL: string;
  serviceName: string;
}

/**
 * What `issueInTransaction` needs: a containment link is keyed by its job (and the user's number in it, `seq`, when a
 * batch knows it: containmentResetKey), so a resumed batch sends once.
 */
export type IssueInTransactionOptions = ResetMailContext & ({ reason: "containment"; jobId: string; seq?: number } | { reason: "reset" | "register" });

/** A containment batch's users for `issueContainmentLinks`: `seq` is the user's number in the job (it orders the keys). */
export interface ContainmentRecipient {
  id: string;
  email: string;
  seq?: number;
}

export type IssueInTransactionResult =
  /** A new link: its token row and message were written through the caller's transaction. */
  | { queued: true; messageId: string; tokenId: string; expiresAt: number }
  /** This job already queued this user's mail (a resumed batch): nothing was written. */
  | { queued: false; reason: "already-queued"; messageId: string };

/**
 * What a public reset request did, for logs only (the answer is the same): `not-eligible` when the account, read
 * again inside the transaction, has moved to another address, is no longer active, or is locked.
 */
export type ResetRequestOutcome = "queued" | "rate-limited" | "no-account" | "address-refused" | "not-eligible";

export interface ResetMailer {
  /**
   * Issues a link for `userId` and queues its mail, both through `trx`: they commit or roll back with the
   * caller's change (e.g. the containment batch that invalidates the password). No per-account rate limit
   * applies to containment (the job bounds it); a containment mail is idempotent per (job, user).
   *
   * @example
   * await database.transaction(async (trx) => {
   *   await trx.updateTable("users").set({ password_invalidated_at: now }).where("id", "=", user.id).execute();
   *   await mailer.issueInTransaction(trx, user.id, { email: user.email, publicURL, serviceName, reason: "containment", jobId });
   * });
   */
  issueInTransaction(trx: Kysely<any>, userId: string, options: IssueInTransactionOptions): Promise<IssueInTransactionResult>;
  /**
   * What `issueInTransaction` with reason "containment" does for each of `users`, in multi-row inserts through `trx`:
   * the messages first (each keyed by job, number and user), then a token row for each message this call created. A
   * user whose mail the job queued already under that key (a batch run again) gets no second link and no token row.
   * Only the numbered key is looked under: a batch a release before it committed (keyed `<job>:<user>`) committed with
   * the job's progress, so the engine never gives its users to a batch again (test/contain-reset-keys.test.ts).
   * Returns how many links were queued and how many were queued already.
   *
   * @example
   * await mailer.issueContainmentLinks(trx, [{ id: user.id, email: user.email, seq: 42 }], { publicURL, serviceName, jobId });
   */
  issueContainmentLinks(trx: Kysely<Schema>, users: readonly ContainmentRecipient[], options: Omit<ResetMailContext, "email"> & { jobId: string }): Promise<{ queued: number; alreadyQueued: number }>;
  /**
   * The public reset request (and a registration for a taken address): for an account that is, when the
   * transaction reads it under the account's link lock, still active, unlocked and at the address `user` was
   * found with, and under its hourly limit, a link and its mail; otherwise the same number of statements, the
   * two writes being a throw-away outbox row inserted and deleted again before the commit. Everything is
   * committed before the caller answers, so a crash after the answer loses no mail. Returns what happened, for
   * logs only. `record` (the caller's audit event of the request) runs last in the same transaction, on every path: the
   * link and its mail commit with their record or not at all (a store busy in between no longer answers "try again"
   * with a link already queued and no event naming the request).
   */
  request(user: { id: string; email: string } | null, context: Omit<ResetMailContext, "email">, reason: "reset" | "register", record?: (trx: Kysely<Schema>) => Promise<unknown>): Promise<ResetRequestOutcome>;
}

/** The reset link: in the fragment, so it reaches neither server logs nor a Referer header. */
export function resetLink(publicURL: string, token: string): string {
  return `${publicURL}/reset-password#token=${token}`;
}

/** A job id as keys take it: what JobStore mints (`job_…`) and set-email passes (an audit event id, `evt_…`). */
const JOB_ID = /^[A-Za-z0-9_-]{1,100}$/;

// Digits of a user's number in a containment link's key: fixed, so that one job's keys sort as its batches run (up to
// ten billion users), as its notices' do (src/contain/service.ts).
const SEQ_DIGITS = 10;

/**
 * The idempotency key of a containment job's mail to one user. With `seq`, the user's number in the job's scope (a
 * batch knows it), it comes before the user: `…:job.0000000042:usr_…`, so a batch's keys go into the outbox's key index
 * one after the other instead of into a page of it each, at random. Without it (a job recorded before users were
 * numbered, an administrator's set-email) the key is `…:job:usr_…`, the only form before December 2026: a reader that
 * asks whether the job mailed a user looks for both (containmentResetKeys).
 */
export function containmentResetKey(jobId: string, userId: string, seq?: number): string {
  return seq === undefined ? `account.containment-reset:${jobId}:${userId}` : `account.containment-reset:${jobId}.${String(seq).padStart(SEQ_DIGITS, "0")}:${userId}`;
}

/**
 * Every key the job's mail to the user may have been queued under: with its number in the job and without (a batch run
 * by a release before the numbered key, in a job this release resumes).
 */
export function containmentResetKeys(jobId: string, userId: string, seq: number | undefined): string[] {
  return seq === undefined ? [containmentResetKey(jobId, userId)] : [containmentResetKey(jobId, userId, seq), containmentResetKey(jobId, userId)];
}

function lifetimeText(ms: number): string {
  return ms % (60 * 60_000) === 0 ? `${ms / (60 * 60_000)} hours` : `${Math.round(ms / 60_000)} minutes`;
}

/** The mail for a link (everything but the idempotency key). */
export function composeResetMail(token: string, context: ResetMailContext, reason: ResetReason, lifetimeMs: number): Omit<NewMessage, "idempotencyKey"> {
  const name = context.serviceName;
  const intro: Record<ResetReason, string> = {
    reset: `Someone (hopefully you) asked to reset the password of your ${name} account.`,
    register: `Welcome to ${name}. Choose your password to finish creating your account.`,
    containment: `As a security precaution, the password of your ${name} account no longer works. Choose a new one to sign in again.`,
  };
  const outro: Record<ResetReason, string> = {
    reset: "If you did not ask for this, ignore this message: your password stays as it is.",
    register: "If you did not sign up, ignore this message.",
    containment: "If the link has expired, ask for a new one on the sign-in page (\"forgot password\").",
  };
  const subject: Record<ResetReason, string> = {
    reset: `${name}: reset your password`,
    register: `${name}: finish creating your account`,
    containment: `${name}: choose a new password`,
  };
  const kind: Record<ResetReason, string> = {
    reset: "account.password-reset-link",
    register: "account.registration-link",
    containment: "account.containment-reset-link",
  };
  const text = [
    "Hello,", "", intro[reason],
    `Open this link within ${lifetimeText(lifetimeMs)} to choose a new password; it works once:`, "",
    resetLink(context.publicURL, token), "", outro[reason], "",
  ].join("\n");
  // A containment run mails every user in scope at once: behind one user's own reset request, not ahead of it. A
  // request's link (anyone can ask for one, for any address) waits behind the notices of real changes.
  const priority = reason === "containment" ? PRIORITY.normal : PRIORITY.link;
  // Its link's lifetime goes with it: the outbox does not send it once the link has stopped working (a requeue days on).
  return { to: context.email, subject: subject[reason], text, kind: kind[reason], priority, linkLifetimeMs: lifetimeMs };
}

/**
 * The outbox message carrying `fresh`'s link to the account `accountId`, under `key`: for the account's address now (not
 * sent once the account has moved to another: NewMessage.accountId), and for that one token row (not sent once its link is
 * used or spent: NewMessage.linkId). Every link mail of this module is built here, so none names a token other than the
 * one it carries.
 */
function linkMessage(fresh: { id: string; token: string }, key: string, accountId: string, context: ResetMailContext, reason: ResetReason, lifetimeMs: number): NewMessage {
  return { idempotencyKey: key, ...composeResetMail(fresh.token, context, reason, lifetimeMs), accountId, linkId: fresh.id };
}

/** Keys per read when a containment batch looks for the mail it created (well inside either database's parameter limit). */
const KEYS_PER_READ = 1000;

/** An address no message is ever sent to: the throw-away rows of the even request path use it. */
const DECOY_ADDRESS = "reset-decoy@bulwark.invalid";

/**
 * Builds the reset mailer over the reset-token service and the outbox.
 *
 * @example
 * const mailer = createResetMailer({ database: app.db, resets: app.accounts.passwordReset, outbox: app.accounts.outbox, random: app.random });
 */
export function createResetMailer(deps: { database: Database; resets: PasswordResetService; outbox: Outbox; random: RandomSource }): ResetMailer {
  const { database, resets, outbox, random } = deps;

  const checkJobId = (jobId: unknown): void => {
    if (typeof jobId !== "string" || jobId.length === 0) {
      throw new InputError("BULWARK_ERR_RESET_JOB", "a containment reset link needs the job id (it keys the mail, so a resumed batch sends once)");
    }
    // "." and ":" are the key's separators: job "job_a.0000000001" would key a user's mail as job "job_a" keys its
    // first user's (containmentResetKey), and that job's batch would count another job's mail as its own.
    if (!JOB_ID.test(jobId)) {
      throw new InputError("BULWARK_ERR_RESET_JOB", `a containment reset link's job id must be 1 to 100 letters, digits, "_" or "-" (it keys the mail); got ${JSON.stringify(jobId.slice(0, 100))}`);
    }
  };

  const issueInTransaction: ResetMailer["issueInTransaction"] = async (trx, userId, options) => {
    if (options.reason === "containment") checkJobId(options.jobId);
    const executor = trx as Kysely<Schema>;
    const lifetimeMs = options.reason === "containment" ? CONTAINMENT_LINK_LIFETIME_MS : resets.policy.lifetimeMs;
    const fresh = generateResetToken(random);
    const key = options.reason === "containment" ? containmentResetKey(options.jobId, userId, options.seq) : `account.${options.reason}:${fresh.id}`;
    // The message first: when its key already exists (a batch that committed before a crash, run again),
    // no second token is stored either — the one in the queued mail stays the user's link.
    // For the account's address now, and for the token row stored below (linkMessage).
    const message = await outbox.enqueue(linkMessage(fresh, key, userId, options, options.reason, lifetimeMs), trx);
    if (!message.created) return { queued: false, reason: "already-queued", messageId: message.id };
    const { expiresAt } = await resets.store(fresh, userId, { executor, lifetimeMs });
    return { queued: true, messageId: message.id, tokenId: fresh.id, expiresAt };
  };

  const issueContainmentLinks: ResetMailer["issueContainmentLinks"] = async (trx, users, options) => {
    checkJobId(options.jobId);
    const seen = new Set<string>();
    for (const u of users) {
      if (seen.has(u.id)) throw new InputError("BULWARK_ERR_RESET_JOB", `user ${u.id} is listed twice: a containment batch mails each user once`);
      seen.add(u.id);
    }
    // In the job's order: the numbered keys then go into the key index one after the other.
    const ordered = [...users].sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
    // Time-ordered token ids (the wall clock: only their order matters): the batch's rows go into the token table's
    // primary key at its end (LinkTokenKind.generate).
    const at = Date.now();
    const links = ordered.map((u) => ({ user: u, fresh: generateResetToken(random, { orderedAt: at }), key: containmentResetKey(options.jobId, u.id, u.seq) }));
    const messages = links.map(({ user, fresh, key }) => linkMessage(fresh, key, user.id, { ...options, email: user.email }, "containment", CONTAINMENT_LINK_LIFETIME_MS));
    const { inserted } = await outbox.enqueueMany(messages, { executor: trx });
    // As one at a time: a token row only behind a message this call created. When every message went in (the usual
    // case) that is all of them; otherwise the stored rows tell which: a created one carries this call's link id.
    let created = links;
    if (inserted < links.length) {
      const ours = new Set<string>();
      for (let i = 0; i < links.length; i += KEYS_PER_READ) {
        const keys = links.slice(i, i + KEYS_PER_READ).map((l) => l.key);
        for (const r of await trx.selectFrom("outbox_messages").select("link_id").where("idempotency_key", "in", keys).execute()) if (r.link_id !== null) ours.add(r.link_id);
      }
      created = links.filter((l) => ours.has(l.fresh.id));
    }
    if (created.length > 0) await resets.storeMany(created.map((l) => ({ token: l.fresh, userId: l.user.id })), { executor: trx, lifetimeMs: CONTAINMENT_LINK_LIFETIME_MS });
    return { queued: created.length, alreadyQueued: links.length - created.length };
  };

  return {
    issueInTransaction,
    issueContainmentLinks,
    async request(user, context, reason, record) {
      // The same statements on every path, so the response time does not tell whether the address has an
      // account (ASVS 6.3.8): one transaction with a read of the account, a count, two writes to indexed rows, and a commit. A real
      // request inserts the message and the token row; any other inserts a throw-away message (same size, same
      // validation) and deletes it again — it is never visible outside the transaction, never sent.
      return database.transaction(async (trx): Promise<ResetRequestOutcome> => {
        const outcome = await decide(trx);
        if (record) await record(trx);
        return outcome;
      });
      async function decide(trx: Kysely<Schema>): Promise<ResetRequestOutcome> {
        const subject = user?.id ?? newId("usr", random);
        // Per account, count and insert are serialised (PostgreSQL: concurrent requests each counted below the hourly
        // limit and each mailed a link), under the lock an email confirmation takes too. A throw-away id takes the
        // same lock step, so timing tells nothing.
        await lockAccountLinks(database, trx, subject);
        // The caller found `user` before this transaction: an email confirmation may have committed since, and its
        // supersession of reset links ran before this one existed. Read again under the lock, so a link goes only to
        // the address the account has now. A locked account gets none: it may be in hostile hands, and nothing
        // changes its credentials until an administrator unlocks it. Every path runs this read (the throw-away id
        // finds nothing), so the statements stay the same (ASVS 6.3.8).
        // A containment job's hold (reset_held_at, migration 27) is read in the same statement: an account whose address
        // was changed by itself during an incident gets no link from the form either, until an administrator restores
        // the address; the hold's answer is the decoy's, as for a locked account.
        const current = await trx.selectFrom("users").select(["email", "status", "locked_at", "reset_held_at"]).where("id", "=", subject).executeTakeFirst();
        const recent = await resets.recentCount(subject, trx);
        const eligible = user !== null && current !== undefined && current.email === user.email && current.status === "active" && current.locked_at === null && current.reset_held_at === null;
        // An address the outbox cannot mail (the account store takes more, e.g. a non-ASCII local part from an
        // import) takes the decoy path too: refusing it with an error would tell that the account exists.
        const refused = user !== null && addressProblem(user.email) !== null;
        if (user && eligible && !refused && recent < resets.policy.maxPerWindow) {
          await issueInTransaction(trx, user.id, { ...context, email: user.email, reason });
          return "queued";
        }
        const fresh = generateResetToken(random);
        const key = `decoy:${fresh.id}`;
        await outbox.enqueue(linkMessage(fresh, key, subject, { ...context, email: DECOY_ADDRESS }, reason, resets.policy.lifetimeMs), trx);
        await trx.deleteFrom("outbox_messages").where("idempotency_key", "=", key).execute();
        if (!user) return "no-account";
        return !eligible ? "not-eligible" : refused ? "address-refused" : "rate-limited";
      }
    },
  } satisfies ResetMailer;
}
