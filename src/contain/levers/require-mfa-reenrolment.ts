// require-mfa-reenrolment: deletes the users' second factors (TOTP secret, recovery codes, WebAuthn
// credentials) and ends their sessions, so the next login has to enrol again — for when the factors
// themselves may have leaked (an encrypted TOTP column with its key, say). The session stamp is raised in the
// same transaction as the deletion: a session opened with a factor that is now gone dies with it, and a
// stolen session cannot enrol the attacker's own factor in the gap (ASVS 7.4.3). Their open reset and email-change links
// go too, for the same gap: a reset link a mailbox thief asked for while the factor stood would need no factor after.
// Whom it ends them for is judged as of the job's time (targets): the users holding a factor then, also when the
// factor is gone by the batch (removed by an intruder's session in between, which would otherwise be left alive).
// Not reversible: restoring a factor that may be in an attacker's hands would defeat the lever.
import type { Kysely } from "kysely";
import { forecastNotices, queueNotices, type LeverContext, type NoticeDue, type ScopeQuery, type UserLever } from "../lever.ts";
import type { MFAFactor } from "../../notify/index.ts";
import type { Schema } from "../../store/schema.ts";
import { containmentResetKeys } from "../../accounts/password-reset/reset-mail.ts";
import { countOpenLinks, countOwnedRows, endSessions, inIds, openLinkOwners, recordedTargets, spendOpenLinks, type LinksSpent } from "./common.ts";
import { lockManyAccountsLinks } from "../../accounts/password-reset/link-lock.ts";
import { revokedBefore } from "../../accounts/sessions/revocation.ts";
import { raiseUserStamps } from "./stamps.ts";

const FACTOR_TABLES = ["mfa_totp", "mfa_recovery_codes", "webauthn_credentials"] as const;
const FACTOR_OF: Record<(typeof FACTOR_TABLES)[number], MFAFactor> = { mfa_totp: "totp", webauthn_credentials: "webauthn", mfa_recovery_codes: "recovery-codes" };
// The order a user's notices are queued in: the factors first, then the codes that stood in for them.
const NOTICE_ORDER = ["mfa_totp", "webauthn_credentials", "mfa_recovery_codes"] as const;
// Users a dry run reads per page while looking for refused addresses: memory stays bounded at any scope size.
const PAGE = 5000;

/**
 * Of `userIds`, those whose reset link this job queued (invalidate-passwords, earlier in the same batch: it runs first):
 * that lever spent their open links just before, under the same link locks, so the one left is the job's own link to
 * the owner's mailbox — the way back it promises, which this lever must not take away. Read by the mail's outbox key.
 */
async function mailedByThisJob(trx: Kysely<Schema>, ctx: LeverContext, userIds: readonly string[], seqOf: ReadonlyMap<string, number> | undefined = ctx.seqOf): Promise<Set<string>> {
  // Under either key (containmentResetKeys): a batch of a release before the numbered key, in a job resumed by this one.
  const ownerOf = new Map(userIds.flatMap((id) => containmentResetKeys(ctx.jobId, id, seqOf?.get(id)).map((key) => [key, id] as const)));
  const rows = await trx.selectFrom("outbox_messages").select("idempotency_key").where(inIds(ctx.dialect, "idempotency_key", [...ownerOf.keys()])).execute();
  return new Set(rows.flatMap((r) => ownerOf.get(r.idempotency_key) ?? []));
}

// The batch events the job's closing check reads per step (up to this many batches' users, 5000 each at most).
const EVENTS_PER_STEP = 10;
const LEVER = "require-mfa-reenrolment";

/** The users holding any second factor now (what the dry run counts, and at the job's creation its targets). */
function factorHolders(db: Kysely<Schema>, scope: ScopeQuery | null) {
  const q = db.selectFrom("users")
    .where((eb) => eb.or(FACTOR_TABLES.map((t) => eb.exists(eb.selectFrom(t).select(`${t}.user_id`).whereRef(`${t}.user_id`, "=", "users.id")))));
  return scope === null ? q : q.where("users.id", "in", scope);
}

/**
 * Of `userIds`, the job's targets (recorded at its creation, ctx.targetsRecorded): those who held a factor at the
 * job's time. Judged by which rows the batch's DELETE removes, an intruder's session that removed the leaked
 * authenticator between the job's creation and its batch took the account out of the job: its session, counted by the
 * dry run, lived on, and it enrolled an app of its own. Empty for a job recorded before targets existed.
 */
async function targetsAmong(trx: Kysely<Schema>, userIds: readonly string[], ctx: LeverContext): Promise<string[]> {
  if (ctx.targetsRecorded !== true) return [];
  return (await recordedTargets(trx, LEVER, userIds, ctx).execute()).map((r) => r.user_id);
}

/**
 * The job's closing check, in steps after its last batch: spends the links that its earlier batches left open.
 * The previous release (d935f11 and earlier) deleted the factors and left the links alone, and a job it half ran is
 * finished by this code, whose batches spend only their own users' links: a reset link a mailbox
 * thief asked for while the app stood then resets a password with no factor asked, and the thief enrols its own (ASVS
 * 6.4.3, 7.4.3). Nothing on a batch tells which release ran it (a batch of this code that found no link counts 0
 * spent), so every batch of the job is looked at, through its `contain.job.batch` event (its users' seq range and its
 * time): a link of one of its users that is still open and unexpired, asked at or before the batch's time, of an
 * account that holds no factor now. A batch of this code spent such links itself, so this finds nothing there; a link
 * asked after the batch is the owner's (or the first sign-in's, as any after the lever) and stays. The job's own reset
 * link (invalidate-passwords in the same job) stays too, as in a batch. Idempotent: a spent link is not open, so a
 * crashed step and its resume count it once. `position` is the seq of the last event read (null: from the job's
 * creation); the next one, or null when every batch event was read.
 */
export async function spendLinksLeftOpen(trx: Kysely<Schema>, ctx: LeverContext, position: number | null): Promise<LinksSpent & { next: number | null }> {
  const spent = { resetLinks: 0, emailChangeLinks: 0 };
  const events = await trx.selectFrom("audit_events").select(["seq", "data", "at"]).where("type", "=", "contain.job.batch").where("subject", "=", ctx.jobId)
    .where("seq", ">", position ?? ctx.createdSeq ?? 0).orderBy("seq").limit(EVENTS_PER_STEP).execute();
  for (const event of events) {
    const range = batchRange(event.data);
    if (range === null) continue;
    const more = await spendLinksOfBatch(trx, ctx, range, Number(event.at));
    spent.resetLinks += more.resetLinks;
    spent.emailChangeLinks += more.emailChangeLinks;
  }
  const last = events.at(-1);
  return { ...spent, next: events.length === EVENTS_PER_STEP && last !== undefined ? Number(last.seq) : null };
}

/**
 * The users' seq range of a users-stage batch event in which this lever removed factors, else null: a batch that
 * removed none (its users held no factor, or a re-run) left no link needing a factor. A count the event lacks (a hand
 * edit) is taken as "removed some": looking costs a query, skipping could leave a link.
 */
function batchRange(data: string): { from: number; to: number } | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return null;
  }
  if (typeof parsed !== "object" || parsed === null) return null;
  const { stage, from, to, counts } = parsed as Record<string, unknown>;
  if (stage !== "users" || !Number.isSafeInteger(from) || !Number.isSafeInteger(to)) return null;
  const removed = typeof counts === "object" && counts !== null ? (counts as Record<string, unknown>)[`${LEVER}.users`] : undefined;
  if (typeof removed === "number" && removed <= 0) return null;
  return { from: from as number, to: to as number };
}

/** Spends the open links of one batch's users, asked by `batchAt` and unexpired, of the accounts with no factor now. */
async function spendLinksOfBatch(trx: Kysely<Schema>, ctx: LeverContext, range: { from: number; to: number }, batchAt: number): Promise<LinksSpent> {
  const users = await trx.selectFrom("contain_job_users").select(["contain_job_users.user_id", "contain_job_users.seq"]).where("contain_job_users.job_id", "=", ctx.jobId)
    .where("contain_job_users.seq", ">=", range.from).where("contain_job_users.seq", "<=", range.to)
    .where((eb) => eb.and(FACTOR_TABLES.map((t) => eb.not(eb.exists(eb.selectFrom(t).select(`${t}.user_id`).whereRef(`${t}.user_id`, "=", "contain_job_users.user_id"))))))
    .execute();
  // Asked by the batch's time and still usable: an expired link opens nothing, whoever kept it.
  const only = { askedBy: batchAt };
  const holders = await openLinkOwners(trx, ctx.dialect, users.map((u) => u.user_id), ctx.now, only);
  const mailed = await mailedByThisJob(trx, ctx, holders, new Map(users.map((u) => [u.user_id, Number(u.seq)])));
  const owners = holders.filter((id) => !mailed.has(id));
  if (owners.length === 0) return { resetLinks: 0, emailChangeLinks: 0 };
  // The accounts' link locks before the first write, as a batch takes them: a reset completed at the same moment either
  // commits first or waits and finds its link spent.
  await lockManyAccountsLinks(ctx.dialect, trx, owners);
  return spendOpenLinks(trx, ctx.dialect, owners, ctx.now, only);
}

export const requireMfaReenrolment = {
  kind: "user",
  // It spends the accounts' links: the batch takes their link locks before its first write, so a reset completed at the
  // same moment either commits first (and needed the factor) or waits and finds its link spent.
  touchesLinks: true,
  name: LEVER,
  description: "Delete TOTP secrets, recovery codes and WebAuthn credentials and end the sessions and open links of their users",
  async dryRun(db, scope, ctx) {
    const [totp, codes, webauthn] = await Promise.all(FACTOR_TABLES.map((t) => countOwnedRows(db, t, scope)));
    const holders = factorHolders(db, scope);
    const users = await holders.select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
    // The sessions the run would end: every open session of a user who holds a factor, by the session policy in force
    // (the same count the run reports).
    const sessions = await countOwnedRows(db, "sessions", holders.select("users.id"), { open: { now: ctx.now, limits: ctx.sessionPolicy } });
    // The links the run would spend: every open one of those users (as if the lever ran alone: with invalidate-passwords
    // in the job, that lever spends them first and this one reports only what is left).
    const links = await countOpenLinks(db, holders.select("users.id"));
    const sample = [...new Set([...(totp?.sample ?? []), ...(webauthn?.sample ?? []), ...(codes?.sample ?? [])])].sort().slice(0, 5);
    // One notice per kind of factor a user loses (ASVS 6.3.7), as the run queues them.
    const notices = await forecastNotices(ctx, PAGE, async (after) => {
      const rows = await holders.select((eb) => ["users.id", "users.email", ...FACTOR_TABLES.map((t) => eb.exists(eb.selectFrom(t).select(`${t}.user_id`).whereRef(`${t}.user_id`, "=", "users.id")).as(t))])
        .where("users.id", ">", after).orderBy("users.id").limit(PAGE).execute();
      return rows.map((r) => ({ id: r.id, email: r.email, notices: FACTOR_TABLES.filter((t) => Boolean((r as Record<string, unknown>)[t])).length }));
    });
    const counts = { users: Number(users?.n ?? 0), totp: totp?.rows ?? 0, recoveryCodes: codes?.rows ?? 0, webauthn: webauthn?.rows ?? 0, sessions: sessions.rows,
      resetLinksSpent: links.resetLinks, emailChangeLinksSpent: links.emailChangeLinks, ...notices.counts };
    return notices.notes.length > 0 ? { counts, sample, notes: notices.notes } : { counts, sample };
  },
  // The holders of a factor at the job's time, as the dry run counts them: every batch ends their sessions and links
  // whether or not the factor is still there when it comes.
  targets(db) {
    return factorHolders(db, null).select("users.id");
  },
  async apply(trx, userIds, ctx) {
    const counts = { users: 0, totp: 0, recoveryCodes: 0, webauthn: 0, sessions: 0, resetLinksSpent: 0, emailChangeLinksSpent: 0, noticesQueued: 0, noticesRefused: 0 };
    if (userIds.length === 0) return { counts, changes: [] };
    const affected = new Set<string>();
    const totp = await trx.deleteFrom("mfa_totp").where(inIds(ctx.dialect, "user_id", userIds)).returning("user_id").execute();
    const codes = await trx.deleteFrom("mfa_recovery_codes").where(inIds(ctx.dialect, "user_id", userIds)).returning("user_id").execute();
    const webauthn = await trx.deleteFrom("webauthn_credentials").where(inIds(ctx.dialect, "user_id", userIds)).returning("user_id").execute();
    for (const r of [...totp, ...codes, ...webauthn]) affected.add(r.user_id);
    // And the job's targets (a factor at the job's time), factor or not now: the factor removed in between (by the
    // intruder's own session) does not spare the sessions and links it opened. Deleting is idempotent; for a job
    // recorded before targets existed, only the users whose factors this batch deleted, as before (a re-run acts on
    // none).
    for (const id of await targetsAmong(trx, userIds, ctx)) affected.add(id);
    if (affected.size > 0) {
      const ids = [...affected];
      // A half-done enrolment (an open WebAuthn challenge) must not complete against the old state either.
      await trx.deleteFrom("webauthn_challenges").where(inIds(ctx.dialect, "user_id", ids)).execute();
      // Nor a link asked for while the factor stood: that reset asked for the factor, now it would ask for none, and
      // whoever read the mail (a stolen or forwarded mailbox) would set the password and enrol a factor of their own.
      // Up to the batch, as the sessions. Email-change links too, as invalidate-passwords and set-email spend them (the
      // stamp raised below refuses them already). Only the users whose factors this batch deleted, and the job's targets:
      // a batch commits with its progress, so none is applied twice.
      const mailed = await mailedByThisJob(trx, ctx, ids);
      const spent = await spendOpenLinks(trx, ctx.dialect, ids.filter((id) => !mailed.has(id)), ctx.now);
      counts.resetLinksSpent = spent.resetLinks;
      counts.emailChangeLinksSpent = spent.emailChangeLinks;
      // At the batch's time, not the job's: a session opened with the old factor after the job was created (the
      // attacker's, while earlier batches ran) dies with the factor too.
      const epoch = await raiseUserStamps(trx, ids, ctx.now, "sessions");
      counts.sessions = (await endSessions(trx, ctx.dialect, ids, { before: revokedBefore(ctx.now), epoch }, { now: ctx.now, limits: ctx.sessionPolicy })).sessions;
    }
    counts.users = affected.size;
    counts.totp = totp.length;
    counts.recoveryCodes = codes.length;
    counts.webauthn = webauthn.length;
    // Each owner is told which factors went (ASVS 6.3.7): with them gone a password alone signs in again, and the next
    // login enrols a factor — the owner must know in case that login is not theirs. In the batch's transaction, so the
    // notices exist if and only if the factors were deleted; a re-run deletes nothing and so queues nothing.
    if (affected.size === 0) return { counts, changes: [] };
    const removed: Record<string, ReadonlySet<string>> = {
      mfa_totp: new Set(totp.map((r) => r.user_id)), mfa_recovery_codes: new Set(codes.map((r) => r.user_id)), webauthn_credentials: new Set(webauthn.map((r) => r.user_id)),
    };
    const owners = await trx.selectFrom("users").select(["id", "email"]).where(inIds(ctx.dialect, "id", [...affected])).orderBy("id").execute();
    const due: NoticeDue[] = owners.map((u) => ({
      id: u.id, email: u.email,
      events: NOTICE_ORDER.filter((t) => removed[t]?.has(u.id)).map((t) => ({ type: "mfa-factor-removed" as const, factor: FACTOR_OF[t] })),
    }));
    const told = await queueNotices(trx, ctx, due);
    counts.noticesQueued = told.queued;
    counts.noticesRefused = told.refused;
    return { counts, changes: [], events: told.events };
  },
} satisfies UserLever;
