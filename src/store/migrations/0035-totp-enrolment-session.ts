// Migration 35: the session that began a first authenticator app's enrolment, not confirmed yet (mfa_totp with
// confirmed_at null): only that session confirms it, within 30 minutes, as migration 32 bound an app's replacement. An
// enrolment begun by an intruder at the owner's unlocked computer, who kept the seed and confirmed nothing, used to wait
// without end, unlisted, through the owner's password reset, password change, sign-out everywhere and email change, for
// one request from any later fresh session to enrol the intruder's app (test/half-done-red-team.test.ts). Null once
// confirmed; null too on the enrolments begun before it, which no session confirms (begin again) and the maintenance
// pass drops.
import type { Migration } from "./types.ts";

export const totpEnrolmentSession: Migration = {
  version: 35,
  name: "totp-enrolment-session",
  async up(db) {
    await db.schema.alterTable("mfa_totp").addColumn("enrolment_session_id", "text").execute();
  },
};
