// Migration 23: the confusable skeleton of each account's email and username (src/accounts/users/confusables.ts),
// under unique indexes, so that an identifier that reads like another account's — "ѕсоре" in Cyrillic beside
// "scope", "рау@example.org" beside "pay@example.org" — cannot be stored beside it, on either dialect and whatever
// writer races whom. An identifier in plain ASCII is its own skeleton's key: those rows are filled by one statement
// (the skeleton of ASCII text is its lower case, which is the lookup key). The others are read in pages and filled
// one by one. Two stored accounts that already read alike (stored before this migration) cannot both hold the
// skeleton: the first filled keeps it (ASCII ones first, then in id order) and the other keeps NULL — never merged or
// changed otherwise, and still protected, since any new look-alike meets the holder's skeleton. docs/decisions/0013.
import { sql, type Kysely } from "kysely";
import { confusableSkeleton } from "../../accounts/users/confusables.ts";
import type { DialectName } from "../database.ts";
import type { Migration } from "./types.ts";

const PAGE = 1000;

async function fill(db: Kysely<any>, dialect: DialectName, display: "email" | "username", column: "email_skeleton" | "username_skeleton", key: "email_key" | "username_key"): Promise<void> {
  const beyondAscii = dialect === "postgres" ? sql<boolean>`${sql.ref(display)} ~ '[^ -~]'` : sql<boolean>`${sql.ref(display)} GLOB '*[^ -~]*'`;
  await db.updateTable("users").set({ [column]: sql.ref(key) }).where(display, "is not", null).where((eb) => eb.not(beyondAscii)).execute();
  let after = "";
  for (;;) {
    const rows = (await db.selectFrom("users").select(["id", display]).where(display, "is not", null).where(beyondAscii).where("id", ">", after)
      .orderBy("id").limit(PAGE).execute()) as Array<{ id: string } & Record<string, string>>;
    if (rows.length === 0) return;
    for (const row of rows) {
      const skeleton = confusableSkeleton(row[display] as string);
      const holder = await db.selectFrom("users").select("id").where(column, "=", skeleton).executeTakeFirst();
      if (!holder) await db.updateTable("users").set({ [column]: skeleton }).where("id", "=", row.id).execute();
    }
    after = (rows.at(-1) as { id: string }).id;
  }
}

export const identifierSkeletons: Migration = {
  version: 23,
  name: "identifier-skeletons",
  async up(db, dialect) {
    await db.schema.alterTable("users").addColumn("email_skeleton", "text").execute();
    await db.schema.alterTable("users").addColumn("username_skeleton", "text").execute();
    await fill(db, dialect, "email", "email_skeleton", "email_key");
    await fill(db, dialect, "username", "username_skeleton", "username_key");
    // NULLs are distinct on both dialects: the accounts left without a skeleton never collide with each other.
    await db.schema.createIndex("users_email_skeleton_key").on("users").column("email_skeleton").unique().execute();
    await db.schema.createIndex("users_username_skeleton_key").on("users").column("username_skeleton").unique().execute();
  },
};
