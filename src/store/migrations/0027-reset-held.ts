// Migration 27: when a containment job held back an account's reset link because the account's address had been changed
// by the account itself during the exposure window (invalidate-passwords, --email-changed-within): from then on the
// public reset form sends that account no link either — the address may be an intruder's, who would otherwise ask the
// form for the very link the job held back — until an administrator restores the address (`users set-email`), which
// clears it and mails a link to the address it sets. Null: no hold.
import type { Migration } from "./types.ts";

export const resetHeld: Migration = {
  version: 27,
  name: "reset-held",
  async up(db) {
    await db.schema.alterTable("users").addColumn("reset_held_at", "bigint").execute();
  },
};
