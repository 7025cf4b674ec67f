// The accounts that read like another (the same letters in another script), stored before look-alikes were refused:
// migration 23 marks such an account (`email_lookalike` / `username_lookalike`), keeping it out of the unique index
// the other one is under (docs/decisions/0013-confusable-skeletons.md). Listed for an operator to judge (rename one,
// disable one, or keep both knowingly). Its skeleton refuses new look-alikes either way; `claimFree` puts an account
// whose look-alike has since gone (renamed, its address changed) back under the unique index, so that two writers
// racing to create a new look-alike of it are settled by the database too.
import type { Database } from "../../store/database.ts";
import { collidedKey } from "./user-store.ts";

export interface AccountRef {
  id: string;
  email: string;
  username: string | null;
}

export interface StoredLookalike {
  account: AccountRef;
  /** Which identifier reads like another account's. */
  field: "email" | "username";
  /** Another account with that skeleton (the one under the unique index first); null when none is left (see claimed). */
  readsLike: AccountRef | null;
  /** With claimFree: no other account reads like it any more, and it is under the unique index again. */
  claimed: boolean;
}

const PAGE = 500;

/**
 * Every account marked as reading like another, with the account it reads like.
 *
 * @example
 * for (const l of await storedLookalikes(app.db)) console.log(l.account.email, "reads like", l.readsLike?.email);
 */
export async function storedLookalikes(database: Database, options: { claimFree?: boolean } = {}): Promise<StoredLookalike[]> {
  const { db } = database;
  const found: StoredLookalike[] = [];
  for (let after = ""; ;) {
    const rows = await db.selectFrom("users").select(["id", "email", "username", "email_skeleton", "username_skeleton", "email_lookalike", "username_lookalike"])
      .where((eb) => eb.or([eb("email_lookalike", "=", 1), eb("username_lookalike", "=", 1)]))
      .where("id", ">", after).orderBy("id").limit(PAGE).execute();
    if (rows.length === 0) return found;
    for (const row of rows) {
      const account = { id: row.id, email: row.email, username: row.username };
      const marked: Array<["email" | "username", string | null]> = [];
      if (Number(row.email_lookalike) === 1) marked.push(["email", row.email_skeleton]);
      if (Number(row.username_lookalike) === 1) marked.push(["username", row.username_skeleton]);
      for (const [field, skeleton] of marked) {
        const column = field === "email" ? "email_skeleton" : "username_skeleton";
        const flag = field === "email" ? "email_lookalike" : "username_lookalike";
        const holder = skeleton === null ? undefined : await db.selectFrom("users").select(["id", "email", "username"])
          .where(column, "=", skeleton).where("id", "!=", row.id).orderBy(flag).orderBy("id").executeTakeFirst();
        let claimed = false;
        if (!holder && options.claimFree) {
          // Conditional, and the unique index decides: a writer that took the skeleton meanwhile keeps it (any other
          // failure is the operator's to see).
          try {
            const set = await db.updateTable("users").set({ [flag]: 0 }).where("id", "=", row.id).where(flag, "=", 1).executeTakeFirst();
            claimed = Number(set.numUpdatedRows) === 1;
          } catch (error) {
            if (collidedKey(error) !== `${field}-skeleton`) throw error;
          }
        }
        found.push({ account, field, readsLike: holder ? { id: holder.id, email: holder.email, username: holder.username } : null, claimed });
      }
    }
    after = (rows.at(-1) as { id: string }).id;
  }
}
