// Migration 18: each counted login failure also records the spelling it was typed with (`via`, a hash of the
// identifier as typed). A known account is counted under its email whatever names it, so its username and email
// share one window; an unknown identifier is counted under itself. Answering "429" from the account's window
// therefore told a username-and-email pair that belongs together (an account) from one that does not. With the
// spelling recorded, the 429 is decided by the spelling's own count, exactly as for an unknown identifier, while
// the account's shared window still decides whether the password is checked at all (docs/http-auth.md).
import type { Migration } from "./types.ts";

export const floodSpellings: Migration = {
  version: 18,
  name: "flood-spellings",
  async up(db) {
    // Events recorded before have no spelling (""): they count for the account's window and for no spelling's.
    await db.schema.alterTable("flood_events").addColumn("via", "text", (c) => c.notNull().defaultTo("")).execute();
  },
};
