// Migration 23: the confusable skeleton of each account's email and username (src/accounts/users/confusables.ts), so
// that an identifier that reads like another account's — "ѕсоре" in Cyrillic beside "scope", "рау@example.org" beside
// "pay@example.org" — cannot be stored beside it. Every account gets its skeletons (indexed, for the writers' look);
// a unique index over those not marked as look-alikes makes the rule hold whatever writer races whom, on either
// dialect. Two accounts stored earlier that already read alike cannot both be under that index: the first filled
// (ASCII ones first, then in id order) is, and the other is marked (`email_lookalike` / `username_lookalike` = 1) —
// never merged or changed otherwise, and its skeleton still refuses any new look-alike, also after the first one's
// identifier changes. An identifier in plain ASCII has its lookup key as skeleton: those rows are filled by one
// statement; the others are read in pages. docs/decisions/0013-confusable-skeletons.md.
import { sql, type Kysely } from "kysely";
import { confusableSkeleton } from "../../accounts/users/confusables.ts";
import type { DialectName } from "../database.ts";
import type { Migration } from "./types.ts";

const PAGE = 1000;

type Field = { display: "email" | "username"; skeleton: "email_skeleton" | "username_skeleton"; lookalike: "email_lookalike" | "username_lookalike"; key: "email_key" | "username_key" };
const EMAIL: Field = { display: "email", skeleton: "email_skeleton", lookalike: "email_lookalike", key: "email_key" };
const USERNAME: Field = { display: "username", skeleton: "username_skeleton", lookalike: "username_lookalike", key: "username_key" };

async function fill(db: Kysely<any>, dialect: DialectName, f: Field): Promise<void> {
  const beyondAscii = dialect === "postgres" ? sql<boolean>`${sql.ref(f.display)} ~ '[^ -~]'` : sql<boolean>`${sql.ref(f.display)} GLOB '*[^ -~]*'`;
  await db.updateTable("users").set({ [f.skeleton]: sql.ref(f.key) }).where(f.display, "is not", null).where((eb) => eb.not(beyondAscii)).execute();
  let after = "";
  for (;;) {
    const rows = (await db.selectFrom("users").select(["id", f.display]).where(f.display, "is not", null).where(beyondAscii).where("id", ">", after)
      .orderBy("id").limit(PAGE).execute()) as Array<{ id: string } & Record<string, string>>;
    if (rows.length === 0) return;
    for (const row of rows) {
      const skeleton = confusableSkeleton(row[f.display] as string);
      const holder = await db.selectFrom("users").select("id").where(f.skeleton, "=", skeleton).where(f.lookalike, "=", 0).executeTakeFirst();
      await db.updateTable("users").set({ [f.skeleton]: skeleton, [f.lookalike]: holder ? 1 : 0 }).where("id", "=", row.id).execute();
    }
    after = (rows.at(-1) as { id: string }).id;
  }
}

export const identifierSkeletons: Migration = {
  version: 23,
  name: "identifier-skeletons",
  async up(db, dialect) {
    for (const f of [EMAIL, USERNAME]) {
      await db.schema.alterTable("users").addColumn(f.skeleton, "text").execute();
      await db.schema.alterTable("users").addColumn(f.lookalike, "integer", (c) => c.notNull().defaultTo(0)).execute();
    }
    for (const f of [EMAIL, USERNAME]) {
      // Indexed before the fill, which looks each computed skeleton up.
      await db.schema.createIndex(`users_${f.skeleton}`).on("users").column(f.skeleton).execute();
      await fill(db, dialect, f);
      // NULLs are distinct on both dialects (accounts without a username never collide).
      await db.schema.createIndex(`users_${f.skeleton}_key`).on("users").column(f.skeleton).unique().where(sql.ref(f.lookalike), "=", 0).execute();
    }
  },
};
