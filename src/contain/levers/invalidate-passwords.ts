// invalidate-passwords: the old password stops working (the login core refuses accounts with
// password_invalidated_at) and a reset email is queued per user through the outbox (Drupal.org, SourceLair). What the
// password opened ends with it: the accounts' sessions up to the batch, API tokens minted since the job began, open
// reset and email-change links (the latter already when the job is created, so no change can move the reset mail).
import type { SelectQueryBuilder } from "kysely";
import { lockManyAccountsLinks } from "../../accounts/password-reset/link-lock.ts";
import { addressProblem } from "../../notify/index.ts";
import type { LeverEvent, ScopeQuery, UserLever } from "../lever.ts";
import { countUsers, inIds } from "./common.ts";
import { issuedBefore, revokedBefore } from "../../accounts/sessions/revocation.ts";
import { raiseUserStamps } from "./stamps.ts";
import type { Schema } from "../../store/schema.ts";

/** Appended for each user whose address the outbox refuses: no reset email, so the operator must tell them. */
export const RESET_EMAIL_REFUSED = "contain.reset-email.refused";

// Users a dry run reads per page while looking for refused addresses: memory stays bounded at any scope size.
const PAGE = 5000;
// Refused addresses a dry run names: enough to act on, few enough to read.
const NAMED = 20;

function stillValid<O>(q: SelectQueryBuilder<Schema, "users", O>): SelectQueryBuilder<Schema, "users", O> {
  return q.where("users.password_invalidated_at", "is", null).where("users.password_hash", "is not", null);
}

/** The users of `scope` whose reset email the outbox would refuse: how many, and the first few with the reason. */
async function refusedAddresses(scope: ScopeQuery): Promise<{ count: number; named: string[] }> {
  let count = 0;
  const named: string[] = [];
  // Keyset pages over the users' primary key: each page reads its own rows only, whatever the scope's size.
  for (let after = ""; ;) {
    const page = await stillValid(scope.select("users.email")).where("users.id", ">", after).orderBy("users.id").limit(PAGE).execute();
    for (const r of page) {
      const problem = addressProblem(r.email);
      if (problem === null) continue;
      count++;
      if (named.length < NAMED) named.push(`${r.id} (${problem})`);
    }
    if (page.length < PAGE) return { count, named };
    after = (page[page.length - 1] as { id: string }).id;
  }
}

export const invalidatePasswords = {
  kind: "user",
  touchesLinks: true,
  mailsLinks: true,
  name: "invalidate-passwords",
  description: "Make current passwords stop working and queue a reset email to each user",
  async dryRun(db, scope, ctx) {
    const { users, sample } = await countUsers(db, scope, stillValid);
    // The sessions the run ends with the passwords (those opened before it reaches each user); tokens minted after
    // the job is created are revoked by the run, and none exists yet.
    const open = await db.selectFrom("sessions").where("sessions.user_id", "in", stillValid(scope))
      .select((eb) => eb.fn.countAll<number>().as("n")).executeTakeFirst();
    const ended = { sessions: Number(open?.n ?? 0), tokens: 0 };
    if (!ctx.notifier) return { counts: { users, resetEmailsQueued: 0, resetEmailsRefused: 0, ...ended }, sample };
    const refused = await refusedAddresses(scope);
    const counts = { users, resetEmailsQueued: users - refused.count, resetEmailsRefused: refused.count, ...ended };
    if (refused.count === 0) return { counts, sample };
    const more = refused.count > refused.named.length ? ` and ${refused.count - refused.named.length} more` : "";
    return {
      counts, sample,
      notes: [`the outbox refuses the address of ${refused.count} users: their passwords will be invalidated but no reset email queued (tell them another way): ${refused.named.join(", ")}${more}`],
    };
  },
  // At the job's creation, before any batch: the scope's open email-change links are spent. A change confirmed while
  // earlier batches ran would move the account to the hijacker's address, and the batch would mail the reset link
  // there (email-change confirm also refuses an account once its password is invalidated, which is later).
  async begin(trx, scope, ctx) {
    const spent = await trx.updateTable("email_change_tokens").set({ used_at: ctx.at })
      .where("user_id", "in", scope).where("used_at", "is", null).executeTakeFirst();
    return { emailChangeLinksSpent: Number(spent.numUpdatedRows) };
  },
  async apply(trx, userIds, ctx) {
    const counts = { users: 0, resetEmailsQueued: 0, resetEmailsRefused: 0, sessions: 0, tokens: 0 };
    if (userIds.length === 0) return { counts, changes: [] };
    // The batch writes the accounts, then their links: their link locks first, so an email confirmation or a reset
    // of one of them (link lock → token → account) waits instead of deadlocking with it (PostgreSQL).
    await lockManyAccountsLinks(ctx.dialect, trx, userIds);
    const rows = await trx
      .updateTable("users")
      .set({ password_invalidated_at: ctx.at })
      .where(inIds(ctx.dialect, "id", userIds))
      .where("password_invalidated_at", "is", null)
      .where("password_hash", "is not", null)
      .returning(["id", "email"])
      .execute();
    counts.users = rows.length;
    // Open email change links die too: a hijacker's pending change must not move the address the reset goes to.
    // And so do the reset links issued before this moment: one may sit in a queued mail in the outbox (in any copy
    // of the database), and whoever holds it would set a password of their own after the containment. Spent before
    // the job's own links are queued below, which are the only ones that then work.
    // An account with no password has its links spent too: a reset link held for it would set the first password.
    const passwordless = (await trx.selectFrom("users").select("id").where(inIds(ctx.dialect, "id", userIds)).where("password_hash", "is", null).execute()).map((r) => r.id);
    const spend = [...rows.map((r) => r.id), ...passwordless];
    if (spend.length > 0) {
      await trx.updateTable("email_change_tokens").set({ used_at: ctx.now })
        .where(inIds(ctx.dialect, "user_id", spend)).where("used_at", "is", null).execute();
      await trx.updateTable("password_reset_tokens").set({ used_at: ctx.now })
        .where(inIds(ctx.dialect, "user_id", spend)).where("used_at", "is", null).execute();
    }
    if (rows.length > 0) {
      const ids = rows.map((r) => r.id);
      // Every session of these accounts was opened with the password now invalidated, or an older one: they end with
      // it, up to this batch's time — also one the leaked password opened while earlier batches ran (ASVS 7.4.1).
      const epoch = await raiseUserStamps(trx, ids, ctx.now, "sessions");
      const ended = await trx.deleteFrom("sessions").where(inIds(ctx.dialect, "user_id", ids)).where(issuedBefore(revokedBefore(ctx.now), epoch)).executeTakeFirst();
      counts.sessions = Number(ended.numDeletedRows);
      // And an API token minted after the job was created, before the batch reached the account: made by a session
      // the password no longer vouches for. Tokens from before the job are the revoke-tokens lever's to judge.
      const minted = await trx.updateTable("api_tokens").set({ revoked_at: ctx.now })
        .where(inIds(ctx.dialect, "user_id", ids)).where("revoked_at", "is", null).where("created_at", ">=", ctx.at).executeTakeFirst();
      counts.tokens = Number(minted.numUpdatedRows);
    }
    const events: LeverEvent[] = [];
    // In the same transaction as the change: the email is queued if and only if the password was invalidated.
    if (ctx.notifier) {
      for (const r of rows) {
        // The outbox's own rule, checked before enqueueing: its refusal thrown here would roll the whole batch
        // back, and every resume would stop at the same user, so nobody after them would ever be contained.
        const problem = addressProblem(r.email);
        if (problem !== null) {
          counts.resetEmailsRefused++;
          events.push({ type: RESET_EMAIL_REFUSED, subject: r.id, data: { reason: problem } });
          continue;
        }
        await ctx.notifier.enqueueReset(trx, { id: r.id, email: r.email }, ctx.jobId);
        counts.resetEmailsQueued++;
      }
    }
    return { counts, changes: [], events };
  },
} satisfies UserLever;
