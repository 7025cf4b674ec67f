// The accounts that read like another (the same letters in another script), stored before look-alikes were refused:
// migration 23 leaves such an account without a skeleton (docs/decisions/0013-confusable-skeletons.md). Listed for an
// operator to judge (rename one, disable one, or keep both knowingly); `claimFree` gives an account whose look-alike
// has since gone (renamed, its address changed) its skeleton back, so no new account can take its look-alike.
import type { Database } from "../../store/database.ts";
import { confusableSkeleton } from "./confusables.ts";

export interface AccountRef {
  id: string;
  email: string;
  username: string | null;
}

export interface StoredLookalike {
  account: AccountRef;
  /** Which identifier reads like another account's. */
  field: "email" | "username";
  /** The account holding that skeleton; null when none does any more (see claimed). */
  readsLike: AccountRef | null;
  /** With claimFree: the skeleton was free and is now this account's. */
  claimed: boolean;
}

const PAGE = 500;

/**
 * Every account with an email or username but no skeleton for it, with the account it reads like.
 *
 * @example
 * for (const l of await storedLookalikes(app.db)) console.log(l.account.email, "reads like", l.readsLike?.email);
 */
export async function storedLookalikes(database: Database, options: { claimFree?: boolean } = {}): Promise<StoredLookalike[]> {
  const { db } = database;
  const found: StoredLookalike[] = [];
  for (let after = ""; ;) {
    const rows = await db.selectFrom("users").select(["id", "email", "username", "email_skeleton", "username_skeleton"])
      .where((eb) => eb.or([eb("email_skeleton", "is", null), eb.and([eb("username", "is not", null), eb("username_skeleton", "is", null)])]))
      .where("id", ">", after).orderBy("id").limit(PAGE).execute();
    if (rows.length === 0) return found;
    for (const row of rows) {
      const account = { id: row.id, email: row.email, username: row.username };
      const missing: Array<["email" | "username", string]> = [];
      if (row.email_skeleton === null) missing.push(["email", row.email]);
      if (row.username !== null && row.username_skeleton === null) missing.push(["username", row.username]);
      for (const [field, shown] of missing) {
        const skeleton = confusableSkeleton(shown);
        const column = field === "email" ? "email_skeleton" : "username_skeleton";
        const holder = await db.selectFrom("users").select(["id", "email", "username"]).where(column, "=", skeleton).where("id", "!=", row.id).executeTakeFirst();
        let claimed = false;
        if (!holder && options.claimFree) {
          // Conditional: a writer that took the skeleton meanwhile keeps it (the unique index would refuse us anyway).
          try {
            const set = await db.updateTable("users").set({ [column]: skeleton }).where("id", "=", row.id).where(column, "is", null).executeTakeFirst();
            claimed = Number(set.numUpdatedRows) === 1;
          } catch {
            claimed = false;
          }
        }
        found.push({ account, field, readsLike: holder ? { id: holder.id, email: holder.email, username: holder.username } : null, claimed });
      }
    }
    after = (rows.at(-1) as { id: string }).id;
  }
}
