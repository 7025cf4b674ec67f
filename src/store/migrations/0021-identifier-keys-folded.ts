// Migration 21: lookup keys of emails and usernames in their folded form. The key was trim → NFC → lower case; it is
// now NFC again after lower-casing, with the final sigma folded (src/accounts/users/normalise.ts identifierKey), so
// "J̌AN" finds "ǰan" and "ΟΔΟΣ" finds "οδοσ" instead of being second accounts beside them. Only keys holding a
// character beyond ASCII can change; they are read in pages and rewritten where the new form differs. A key whose
// new form another account holds already (two accounts that were look-alikes of each other) is left as it was: the
// account that holds it keeps the identifier, and the other one is found by its other identifier: such pairs are rare
// (they are what the new key prevents), and their rows are left for an operator, never merged or deleted.
import { sql, type Kysely } from "kysely";
import type { DialectName } from "../database.ts";
import type { Migration } from "./types.ts";

/** The key as this migration defines it (frozen here: a later change of identifierKey needs its own migration). */
function folded(key: string): string {
  return key.normalize("NFC").toLowerCase().normalize("NFC").replaceAll("\u03C2", "\u03C3");
}

const PAGE = 1000;

async function refold(db: Kysely<any>, dialect: DialectName, column: "email_key" | "username_key"): Promise<void> {
  const beyondAscii = dialect === "postgres" ? sql<boolean>`${sql.ref(column)} ~ '[^ -~]'` : sql<boolean>`${sql.ref(column)} GLOB '*[^ -~]*'`;
  let after = "";
  for (;;) {
    const rows = (await db.selectFrom("users").select(["id", column]).where(column, "is not", null).where(beyondAscii).where("id", ">", after)
      .orderBy("id").limit(PAGE).execute()) as Array<{ id: string } & Record<string, string>>;
    if (rows.length === 0) return;
    for (const row of rows) {
      const key = row[column] as string;
      const next = folded(key);
      if (next === key) continue;
      const taken = await db.selectFrom("users").select("id").where(column, "=", next).executeTakeFirst();
      if (taken) continue;
      await db.updateTable("users").set({ [column]: next }).where("id", "=", row.id).execute();
    }
    after = (rows[rows.length - 1] as { id: string }).id;
  }
}

export const identifierKeysFolded: Migration = {
  version: 21,
  name: "identifier-keys-folded",
  async up(db, dialect) {
    await refold(db, dialect, "email_key");
    await refold(db, dialect, "username_key");
  },
};
