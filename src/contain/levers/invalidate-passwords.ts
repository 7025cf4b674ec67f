// invalidate-passwords: the old password stops working (the login core refuses accounts with
// password_invalidated_at) and a reset email is queued per user through the outbox (Drupal.org, SourceLair).
import type { UserLever } from "../lever.ts";
import { countUsers, inIds } from "./common.ts";

export const invalidatePasswords = {
  kind: "user",
  name: "invalidate-passwords",
  description: "Make current passwords stop working and queue a reset email to each user",
  async dryRun(db, scope, ctx) {
    const { users, sample } = await countUsers(db, scope, (q) => q.where("password_invalidated_at", "is", null).where("password_hash", "is not", null));
    return { counts: { users, resetEmails: ctx.notifier ? users : 0 }, sample };
  },
  async apply(trx, userIds, ctx) {
    if (userIds.length === 0) return { counts: { users: 0, resetEmailsQueued: 0 }, changes: [] };
    const rows = await trx
      .updateTable("users")
      .set({ password_invalidated_at: ctx.at })
      .where(inIds(ctx.dialect, "id", userIds))
      .where("password_invalidated_at", "is", null)
      .where("password_hash", "is not", null)
      .returning(["id", "email"])
      .execute();
    let queued = 0;
    // In the same transaction as the change: the email is queued if and only if the password was invalidated.
    if (ctx.notifier) {
      for (const r of rows) {
        await ctx.notifier.enqueueReset(trx, { id: r.id, email: r.email }, ctx.jobId);
        queued++;
      }
    }
    return { counts: { users: rows.length, resetEmailsQueued: queued }, changes: [] };
  },
} satisfies UserLever;
