// The one per-account lock that every transaction writing an account's mailed links (reset, email change) takes
// first, so that two of them never lock the same rows in opposite orders (PostgreSQL: "deadlock detected", a 500).
import type { Kysely } from "kysely";
import { lockKeyOf, serialiseTransactions, serialiseTransactionsMany, type Database, type DialectName } from "../../store/database.ts";
import type { Schema } from "../../store/schema.ts";

/**
 * Serialises, until the end of `trx`, the link transactions of `userId`: a reset request, redeem or completion and
 * an email-change request or confirmation of one account run one after the other. Take it before the transaction's
 * first write (a plain SELECT of the token row may come first, to learn the user id): a redeem marks its row, then
 * supersedes the user's other rows, and a confirmation goes email link → user → reset links while a reset goes
 * reset link → user → email links. Under this lock whichever comes second sees the first one's commit and is
 * refused normally. A no-op on SQLite, where a write transaction already holds the database's one write lock.
 *
 * @example
 * await database.transaction(async (trx) => { await lockAccountLinks(database, trx, userId); … });
 */
export async function lockAccountLinks(database: Database, trx: Kysely<Schema>, userId: string): Promise<void> {
  await serialiseTransactions(database, trx, linkLockKey(userId));
}

function linkLockKey(userId: string): number {
  return lockKeyOf(`links:${userId}`);
}

/**
 * Runs `work` on `executor` when given (a caller's transaction, which took the link lock itself before its first
 * write), else in a transaction of its own under the account's link lock: how a service method that writes an
 * account's link rows (supersede every open link, say) runs whether or not it is part of a larger change.
 *
 * @example
 * const revokeAll = (userId, executor) => withAccountLinks(database, userId, executor, (t) => spendResetLinks(t, userId, clock.now()));
 */
export function withAccountLinks<T>(database: Database, userId: string, executor: Kysely<Schema> | undefined, work: (trx: Kysely<Schema>) => Promise<T>): Promise<T> {
  if (executor) return work(executor);
  return database.transaction(async (trx) => {
    await lockAccountLinks(database, trx, userId);
    return work(trx);
  });
}

/**
 * lockAccountLinks for many accounts at once, for a batch that writes the account rows and then their links (an
 * import replacing passwords, a containment batch invalidating them): taken before the batch's first write, in key
 * order, so such a batch and a single account's reset or email confirmation (link lock → token → user) never hold
 * rows in opposite orders. One statement on PostgreSQL (the keys sorted, locked as the ordered subquery yields
 * them), nothing on SQLite.
 *
 * @example
 * await lockManyAccountsLinks(database.dialect, trx, batch.map((u) => u.id)); // before the batch's first UPDATE
 */
export async function lockManyAccountsLinks(dialect: DialectName, trx: Kysely<Schema>, userIds: readonly string[]): Promise<void> {
  await serialiseTransactionsMany({ dialect }, trx, userIds.map(linkLockKey));
}
