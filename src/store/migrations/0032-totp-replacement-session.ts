// Migration 32: the session that began an authenticator app's replacement (migration 30). Only that session confirms
// it, within 30 minutes: one begun by an intruder at the owner's unlocked computer, who kept the seed and confirmed
// nothing, used to wait without end for any later fresh session to swap it in, and outlived the owner's "sign out
// everywhere" and password change (test/planted-persistence-red-team.test.ts). Null: none pending.
import type { Migration } from "./types.ts";

export const totpReplacementSession: Migration = {
  version: 32,
  name: "totp-replacement-session",
  async up(db) {
    await db.schema.alterTable("mfa_totp").addColumn("pending_session_id", "text").execute();
  },
};
