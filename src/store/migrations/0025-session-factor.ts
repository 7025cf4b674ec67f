// Migration 25: which second factor raised a session to aal 2: `totp`, `webauthn:<credential id>` or `recovery-code`
// (src/accounts/mfa/policy.ts, factorRef). Removing one factor while others remain lowers the sessions it stepped up
// (SessionManager.lowerAssurance with `factor`): before, only the removal of the last factor lowered sessions, so a
// session stepped up with a passkey the owner then removed — perhaps a hijacker's — kept aal 2 for as long as the owner
// held another factor. Existing rows are left NULL, "not known": any factor's removal lowers them.
import type { Migration } from "./types.ts";

export const sessionFactor: Migration = {
  version: 25,
  name: "session-factor",
  async up(db) {
    await db.schema.alterTable("sessions").addColumn("factor", "text").execute();
  },
};
