// invalidate-passwords: the old password stops working (the login core refuses accounts with
// password_invalidated_at) and a reset email is queued per user through the outbox (Drupal.org, SourceLair). What the
// password opened ends with it: the accounts' sessions up to the batch, API tokens minted since the job began, open
// reset and email-change links (the latter already when the job is created, so no change can move the reset mail).
// Whose password that is, is judged as of the job's time (targets): every account whose password was not invalidated
// then; the sessions and the tokens since the job end also when another hand invalidated the password first.
// The reset link is held back where it could not help the owner: from a disabled account (the link is refused), and
// from an address the account itself moved to within the exposure window (it may be the intruder's mailbox).
import { sql, type Expression, type ExpressionBuilder, type Kysely, type RawBuilder, type SelectQueryBuilder, type SqlBool } from "kysely";
import { EMAIL_SET_EVENT } from "../../accounts/email-change/set-by-administrator.ts";
import { lockManyAccountsLinks } from "../../accounts/password-reset/link-lock.ts";
import { isoOrNull } from "../../lib/calendar.ts";
import { addressProblem } from "../../notify/index.ts";
import type { DialectName } from "../../store/database.ts";
import { type LeverContext, type LeverEvent, type LeverOptions, type ScopeQuery, type UserLever } from "../lever.ts";
import { countOwnedRows, countUsers, DAY_MS, endSessions, inIds, recordedTargets, spendOpenLinks } from "./common.ts";
import { revokedBefore } from "../../accounts/sessions/revocation.ts";
import { raiseUserStamps } from "./stamps.ts";
import type { Schema } from "../../store/schema.ts";

/** Appended for each user whose address the outbox refuses: no reset email, so the operator must tell them. */
export const RESET_EMAIL_REFUSED = "contain.reset-email.refused";

/**
 * Appended for each user whose reset email is held back because the account itself moved its address within the
 * window (data: the change's audit event and time): the operator checks with the owner and restores the address.
 */
export const RESET_EMAIL_WITHHELD = "contain.reset-email.withheld";

/** The audit event of an address change the account made itself (POST /auth/email/confirm: src/http/auth/routes/email-routes.ts). */
const EMAIL_CHANGED = "auth.email.changed";

/** What the operator does about a held reset email; said in the dry run and the job's notes. */
export const WITHHELD_NEXT_STEP =
  "check each with the owner (not at that address) and restore the address with `bulwark users set-email`, which mails a link to the address it sets; " +
  "until then lock-accounts keeps the reset form from mailing the account's address";

/**
 * The default exposure window of the hold, in days: the breaches this comes from went unnoticed for days to weeks
 * (Drupal.org 2013, Miraheze), and an address the account itself moved in that time may be the intruder's.
 */
export const DEFAULT_EMAIL_CHANGE_WINDOW_DAYS = 30;

/**
 * The hold's window in days before the job from the job's options (0: none before it; changes after the job was created
 * hold whatever the window); a stored value of another shape holds for the default.
 */
export function emailChangeWindowDays(options: Partial<LeverOptions>): number {
  const days = options.emailChangedWithinDays;
  return typeof days === "number" && Number.isInteger(days) && days >= 0 ? days : DEFAULT_EMAIL_CHANGE_WINDOW_DAYS;
}

/**
 * Which address changes hold a reset email back, for a job acting at `at`: every change from the start of the window
 * before the job (the job's own time with 0 days), and every change the audit log orders after the job's creation
 * (`afterSeq`), whatever time it carries. 0 narrows the window to the job's own lifetime, it does not switch the hold
 * off: a change the account confirmed after the job was created (a session the job ends only when its batch comes)
 * would otherwise move the containment's reset link to the intruder's mailbox (ASVS 6.4.3). A responder sets 0 when
 * many owners legitimately moved their address before the incident, not to mail whoever moves it during the response.
 */
interface HoldRule {
  /** The earliest time of a change before the job that holds (the window, by the confirming node's clock). */
  since: number;
  /**
   * The audit seq of the job's creation (LeverContext.createdSeq): a change after it came after the job, and holds even
   * when the node that confirmed it dated it before the job (its clock behind the creating node's). Null in a dry run
   * (no job yet: every change is before it) and for a job recorded before the seq was: times alone decide there.
   */
  afterSeq: number | null;
}

/** The hold of a job (or of a dry run, which has no creation seq) from its context. */
function holdRule(ctx: Pick<LeverContext, "options" | "at" | "createdSeq">): HoldRule {
  return { since: ctx.at - emailChangeWindowDays(ctx.options) * DAY_MS, afterSeq: ctx.createdSeq ?? null };
}

/** The address change that holds a user's reset email back: its audit event and time. */
interface HeldChange {
  eventId: string;
  at: number;
}

/**
 * Of `userIds`, those whose address the account itself changed (`auth.email.changed`, subject the user) within the
 * hold's window or after the job's creation (`rule`), with no administrator's set-email (`user.email-set`) after that
 * change: an intruder signed in with a cracked password and moved the account to their mailbox before the breach was
 * noticed, so a reset link mailed to the current address would hand them the account for good (ASVS 6.4.3). An
 * administrator's set-email is the way back, not a hijack: the address it set gets the link. No upper bound on time: a
 * change confirmed after the job was created (a session the job does not end asked for it) holds too, found by its
 * position in the log, since its time comes from whichever node confirmed it. Reads on the log's (type, at) and
 * (type, seq) indexes, whatever the log's size; the same statements on both dialects.
 */
async function heldByAddressChange(db: Kysely<Schema>, dialect: DialectName, userIds: readonly string[], rule: HoldRule): Promise<Map<string, HeldChange>> {
  const held = new Map<string, HeldChange & { seq: number }>();
  if (userIds.length === 0) return held;
  // Two reads rather than one OR, so that each keeps to its index on both dialects; a change both find counts once
  // (the later overwrites the earlier below, in seq order).
  const read = (from: { at: number } | { seq: number }) => {
    const q = db.selectFrom("audit_events").select(["id", "subject", "at", "seq"]).where("type", "=", EMAIL_CHANGED).where(inIds(dialect, "subject", userIds));
    return ("at" in from ? q.where("at", ">=", from.at) : q.where("seq", ">", from.seq)).execute();
  };
  const found = [...await read({ at: rule.since }), ...(rule.afterSeq === null ? [] : await read({ seq: rule.afterSeq }))]
    .sort((x, y) => Number(x.seq) - Number(y.seq));
  // The latest change per user: a restore must come after it to release the hold.
  for (const c of found) held.set(c.subject, { eventId: c.id, at: Number(c.at), seq: Number(c.seq) });
  if (held.size === 0) return held;
  const first = Math.min(...[...held.values()].map((h) => h.seq));
  const restores = await db.selectFrom("audit_events").select(["subject", "seq"])
    .where("type", "=", EMAIL_SET_EVENT).where("seq", ">", first).where(inIds(dialect, "subject", [...held.keys()])).execute();
  for (const r of restores) if (Number(r.seq) > (held.get(r.subject)?.seq ?? Infinity)) held.delete(r.subject);
  return held;
}

/**
 * The API tokens minted since the job was created, as SQL for a WHERE clause on api_tokens: issued at or after the
 * job's epoch (database order, docs/decisions/0009-revocation-epochs.md), whatever time the minting node's clock gave
 * them — a node five minutes behind dates a token minted after the job five minutes before it. The time test stays
 * beside it, as a stamp's does: a mint that read the counter just before the job took its epoch, on a node with the
 * right time, is still caught. A job recorded before migration 16 has no epoch (0) and works by time alone.
 */
function mintedSinceJob(ctx: Pick<LeverContext, "at" | "epoch">): RawBuilder<boolean> {
  if (ctx.epoch <= 0) return sql<boolean>`(created_at >= ${ctx.at})`;
  return sql<boolean>`(issued_epoch >= ${ctx.epoch} or created_at >= ${ctx.at})`;
}

/** Where a reset email goes, or why it does not: the same decision in the dry run and the real run, in this order. */
type MailOutcome = { kind: "queue" } | { kind: "disabled" } | { kind: "withheld"; change: HeldChange } | { kind: "refused"; reason: string };

function mailOutcome(user: { id: string; email: string; status: string }, held: ReadonlyMap<string, HeldChange>): MailOutcome {
  // A disabled account cannot redeem the link (the reset refuses it): "choose a new one to sign in again" would be
  // untrue, and counting it as queued overstates who can act. Its password is invalidated all the same, so that an
  // account enabled later does not come back with the cracked password. A locked account is mailed: its link works
  // once it is unlocked, and a containment lock with a reset is the usual pairing.
  if (user.status === "disabled") return { kind: "disabled" };
  const change = held.get(user.id);
  if (change !== undefined) return { kind: "withheld", change };
  const problem = addressProblem(user.email);
  return problem === null ? { kind: "queue" } : { kind: "refused", reason: problem };
}

// Users a dry run reads per page while deciding each one's reset email: memory stays bounded at any scope size.
const PAGE = 5000;
// Users a dry run names per kind of held-back email (refused, withheld): enough to act on, few enough to read.
const NAMED = 20;

function stillValid<O>(q: SelectQueryBuilder<Schema, "users", O>): SelectQueryBuilder<Schema, "users", O> {
  return q.where("users.password_invalidated_at", "is", null).where("users.password_hash", "is not", null);
}

/** A dry run's forecast of the reset emails: the run's counts, and the first users refused and withheld, with why. */
interface MailForecast {
  counts: { resetEmailsQueued: number; resetEmailsRefused: number; resetEmailsWithheld: number; resetEmailsSkippedDisabled: number };
  refused: string[];
  withheld: string[];
}

/**
 * What the run would do with each user's reset email, user by user as `apply` decides (mailOutcome, and the same
 * address-change read per page as per batch), so the dry run's counts are the run's.
 */
async function forecastMail(db: Kysely<Schema>, dialect: DialectName, scope: ScopeQuery, rule: HoldRule): Promise<MailForecast> {
  const f: MailForecast = { counts: { resetEmailsQueued: 0, resetEmailsRefused: 0, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 0 }, refused: [], withheld: [] };
  // Keyset pages over the users' primary key: each page reads its own rows only, whatever the scope's size.
  for (let after = ""; ;) {
    const page = await stillValid(scope.select(["users.email", "users.status"])).where("users.id", ">", after).orderBy("users.id").limit(PAGE).execute() as Array<{ id: string; email: string; status: string }>;
    const held = await heldByAddressChange(db, dialect, page.map((r) => r.id), rule);
    for (const r of page) {
      const outcome = mailOutcome(r, held);
      if (outcome.kind === "queue") f.counts.resetEmailsQueued++;
      else if (outcome.kind === "disabled") f.counts.resetEmailsSkippedDisabled++;
      else if (outcome.kind === "withheld") {
        f.counts.resetEmailsWithheld++;
        if (f.withheld.length < NAMED) f.withheld.push(`${r.id} (address changed ${isoOrNull(outcome.change.at) ?? outcome.change.at})`);
      } else {
        f.counts.resetEmailsRefused++;
        if (f.refused.length < NAMED) f.refused.push(`${r.id} (${outcome.reason})`);
      }
    }
    if (page.length < PAGE) return f;
    after = (page[page.length - 1] as { id: string }).id;
  }
}

/**
 * The email-change links `begin` spends when the job is created: every unused one of the scope's accounts. The dry run
 * counts the same rows (emailChangeLinksSpent, as the job's begun count names them): it said nothing of them.
 */
function unusedEmailChangeLinks(scope: ScopeQuery): (eb: ExpressionBuilder<Schema, "email_change_tokens">) => Expression<SqlBool> {
  return (eb: ExpressionBuilder<Schema, "email_change_tokens">) => eb.and([eb("user_id", "in", scope), eb("used_at", "is", null)]);
}

const NAME = "invalidate-passwords";

/**
 * Of `userIds`, the job's targets (recorded at its creation, ctx.targetsRecorded): the accounts whose password was not
 * invalidated at the job's time. Null for a job recorded before targets existed: it acts on every user of the batch.
 */
async function targetsAmong(trx: Kysely<Schema>, userIds: readonly string[], ctx: LeverContext): Promise<string[] | null> {
  if (ctx.targetsRecorded !== true) return null;
  return (await recordedTargets(trx, NAME, userIds, ctx).execute()).map((r) => r.user_id);
}

/** "a, b and 3 more": the named users, and how many the list leaves out. */
function named(list: readonly string[], count: number): string {
  return `${list.join(", ")}${count > list.length ? ` and ${count - list.length} more` : ""}`;
}

export const invalidatePasswords = {
  kind: "user",
  touchesLinks: true,
  mailsLinks: true,
  name: NAME,
  description: "Make current passwords stop working and queue a reset email to each user",
  async dryRun(db, scope, ctx) {
    const { users, sample } = await countUsers(db, scope, stillValid);
    // The sessions the run ends with the passwords (those opened before it reaches each user); tokens minted after
    // the job is created are revoked by the run, and none exists yet.
    // Open ones only, by the session policy in force, as the run counts them (endSessions).
    const open = await countOwnedRows(db, "sessions", stillValid(scope), { open: { now: ctx.now, limits: ctx.sessionPolicy } });
    // And the email-change links begin spends at the job's creation, under the name the job's begun record gives them;
    // present when there are any (as require-mfa-reenrolment's linksLeftOpenSpent): no batch count of the job matches it.
    const links = await db.selectFrom("email_change_tokens").where(unusedEmailChangeLinks(scope)).select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
    const linksSpent = Number(links?.n ?? 0);
    const ended = { sessions: open.rows, tokens: 0, ...(linksSpent > 0 ? { emailChangeLinksSpent: linksSpent } : {}) };
    const none = { resetEmailsQueued: 0, resetEmailsRefused: 0, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 0 };
    if (!ctx.notifier) return { counts: { users, ...none, ...ended }, sample };
    const days = emailChangeWindowDays(ctx.options);
    const f = await forecastMail(db, ctx.dialect, scope, holdRule(ctx));
    const { resetEmailsRefused: refused, resetEmailsWithheld: withheld, resetEmailsSkippedDisabled: disabled } = f.counts;
    const notes: string[] = [];
    if (withheld > 0) {
      notes.push(`the address of ${withheld} users was changed by the account itself (${EMAIL_CHANGED}) within the last ${days} days: their passwords will be invalidated ` +
        `but no reset email sent (it could reach whoever moved the account; --email-changed-within 0 sends it anyway, unless the change comes after the job is created): ${named(f.withheld, withheld)}. ` +
        `After the run, ${WITHHELD_NEXT_STEP}`);
    }
    if (refused > 0) notes.push(`the outbox refuses the address of ${refused} users: their passwords will be invalidated but no reset email queued (tell them another way): ${named(f.refused, refused)}`);
    if (disabled > 0) notes.push(`${disabled} disabled accounts: their passwords will be invalidated but no reset email sent (a disabled account cannot use the link)`);
    const counts = { users, ...f.counts, ...ended };
    return notes.length > 0 ? { counts, sample, notes } : { counts, sample };
  },
  // At the job's creation, before any batch: the scope's open email-change links are spent. A change confirmed while
  // earlier batches ran would move the account to the hijacker's address, and the batch would mail the reset link
  // there (email-change confirm also refuses an account once its password is invalidated, which is later).
  async begin(trx, scope, ctx) {
    const spent = await trx.updateTable("email_change_tokens").set({ used_at: ctx.at }).where(unusedEmailChangeLinks(scope)).executeTakeFirst();
    return { emailChangeLinksSpent: Number(spent.numUpdatedRows) };
  },
  // The accounts whose password was not invalidated at the job's time (a password, or none yet: a link holder could
  // set the first one before the batch): what the job was created to invalidate. An account invalidated already (an
  // earlier containment, an administrator's set-email) is left alone, also when its owner then chose a new password
  // through that reset link before this batch came: the new password is the owner's, not the one the job is about.
  targets(db) {
    return db.selectFrom("users").select("users.id").where("users.password_invalidated_at", "is", null);
  },
  async apply(trx, userIds, ctx) {
    const counts = { users: 0, resetEmailsQueued: 0, resetEmailsRefused: 0, resetEmailsWithheld: 0, resetEmailsSkippedDisabled: 0, sessions: 0, tokens: 0 };
    if (userIds.length === 0) return { counts, changes: [] };
    // The batch writes the accounts, then their links: their link locks first, so an email confirmation or a reset
    // of one of them (link lock → token → account) waits instead of deadlocking with it (PostgreSQL).
    await lockManyAccountsLinks(ctx.dialect, trx, userIds);
    const targets = await targetsAmong(trx, userIds, ctx);
    const rows = await trx
      .updateTable("users")
      .set({ password_invalidated_at: ctx.at })
      .where(inIds(ctx.dialect, "id", targets ?? userIds))
      .where("password_invalidated_at", "is", null)
      .where("password_hash", "is not", null)
      .returning(["id", "email", "status"])
      .execute();
    counts.users = rows.length;
    // Open email change links die too: a hijacker's pending change must not move the address the reset goes to.
    // And so do the reset links issued before this moment: one may sit in a queued mail in the outbox (in any copy
    // of the database), and whoever holds it would set a password of their own after the containment. Spent before
    // the job's own links are queued below, which are the only ones that then work.
    // An account with no password has its links spent too: a reset link held for it would set the first password.
    const passwordless = (await trx.selectFrom("users").select("id").where(inIds(ctx.dialect, "id", userIds)).where("password_hash", "is", null).execute()).map((r) => r.id);
    await spendOpenLinks(trx, ctx.dialect, [...rows.map((r) => r.id), ...passwordless], ctx.now);
    // The targets whose password another hand invalidated between the job's creation and this batch (another job over
    // the same accounts, run first; an administrator's set-email): no login since, but what the password opened in the
    // job's window ends all the same — that other hand ended only what came after its own start (a job's tokens) or
    // nothing of the tokens (set-email). Their password and links are left as they are (its reset link is the owner's
    // way back), and they are not counted in `users`: this batch invalidated nothing of theirs.
    const invalidatedHere = new Set(rows.map((r) => r.id));
    const others = (targets ?? []).filter((id) => !invalidatedHere.has(id));
    const invalidatedBefore = others.length === 0 ? [] : (await trx.selectFrom("users").select("id")
      .where(inIds(ctx.dialect, "id", others)).where("password_invalidated_at", "is not", null).execute()).map((r) => r.id);
    if (rows.length > 0 || invalidatedBefore.length > 0) {
      const ids = [...rows.map((r) => r.id), ...invalidatedBefore];
      // Every session of these accounts was opened with the password now invalidated, or an older one: they end with
      // it, up to this batch's time — also one the leaked password opened while earlier batches ran (ASVS 7.4.1).
      const epoch = await raiseUserStamps(trx, ids, ctx.now, "sessions");
      counts.sessions = (await endSessions(trx, ctx.dialect, ids, { before: revokedBefore(ctx.now), epoch }, { now: ctx.now, limits: ctx.sessionPolicy })).sessions;
      // And an API token minted after the job was created, before the batch reached the account: made by a session
      // the password no longer vouches for. Tokens from before the job are the revoke-tokens lever's to judge.
      const minted = await trx.updateTable("api_tokens").set({ revoked_at: ctx.now })
        .where(inIds(ctx.dialect, "user_id", ids)).where("revoked_at", "is", null).where(mintedSinceJob(ctx)).executeTakeFirst();
      counts.tokens = Number(minted.numUpdatedRows);
    }
    const events: LeverEvent[] = [];
    const held = await heldByAddressChange(trx, ctx.dialect, rows.map((r) => r.id), holdRule(ctx));
    // The public reset form holds too, until an administrator restores the address (users set-email clears it): the
    // intruder reads the account's current address and would ask the form for the link held back here.
    if (held.size > 0) await trx.updateTable("users").set({ reset_held_at: ctx.now }).where(inIds(ctx.dialect, "id", [...held.keys()])).execute();
    // In the same transaction as the change: the email is queued if and only if the password was invalidated.
    if (ctx.notifier) {
      const mailed: Array<{ id: string; email: string; seq?: number }> = [];
      for (const r of rows) {
        // The outbox's own rule is checked before enqueueing (mailOutcome): its refusal thrown here would roll the
        // whole batch back, and every resume would stop at the same user, so nobody after them would be contained.
        const outcome = mailOutcome(r, held);
        if (outcome.kind === "disabled") {
          counts.resetEmailsSkippedDisabled++;
        } else if (outcome.kind === "withheld") {
          counts.resetEmailsWithheld++;
          events.push({ type: RESET_EMAIL_WITHHELD, subject: r.id, data: { emailChangeEvent: outcome.change.eventId, emailChangedAt: outcome.change.at, withinDays: emailChangeWindowDays(ctx.options) } });
        } else if (outcome.kind === "refused") {
          counts.resetEmailsRefused++;
          events.push({ type: RESET_EMAIL_REFUSED, subject: r.id, data: { reason: outcome.reason } });
        } else {
          const seq = ctx.seqOf?.get(r.id);
          mailed.push({ id: r.id, email: r.email, ...(seq === undefined ? {} : { seq }) });
        }
      }
      // All at once when the notifier can (multi-row inserts, keys in the job's order), else one by one.
      if (ctx.notifier.enqueueResets) {
        if (mailed.length > 0) await ctx.notifier.enqueueResets(trx, mailed, ctx.jobId);
      } else {
        for (const u of mailed) await ctx.notifier.enqueueReset(trx, { id: u.id, email: u.email }, ctx.jobId, u.seq);
      }
      counts.resetEmailsQueued = mailed.length;
    }
    return { counts, changes: [], events };
  },
} satisfies UserLever;
