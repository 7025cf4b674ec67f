// Migration 31: flood-control rows are keyed (HMAC-SHA256 under the keyring's flood key, Keyring.floodKey) instead of
// plain SHA-256 of the text typed. The rows written before match no key the server makes any more, so they count for
// nothing; but they still hold, for a copy of the database, the plain hash of whatever was typed as a login name — a
// password, often — and a failure streak is never pruned (only a success clears it, which a password typed as a
// login name never gets). Deleted here, once: windows and 100-failure streaks start again from zero at the upgrade,
// as they would have anyway (docs/password-policy.md, "Rows are keyed"; ASVS 14.2.4, 16.2.5).
import type { Migration } from "./types.ts";

export const floodKeysKeyed: Migration = {
  version: 31,
  name: "flood-keys-keyed",
  async up(db) {
    await db.deleteFrom("flood_events").execute();
    await db.deleteFrom("flood_streaks").execute();
  },
};
