// Migration 34: whether the owner knows the browser of a session a login made (`sessions.device_told`, 0/1): it was
// known to the account at the password step (the known-device cookie), or that login queued the new-device notice for
// it. The second-factor step remembers the browser only then (POST /auth/mfa/verify): it used to remember every
// browser that passed the factor, so a relay that spent the hour's one notice on a throwaway sign-in, then passed the
// victim's relayed code in its real browser, had that browser remembered with no notice ever naming it
// (test/phishing-relay-red-team.test.ts). Existing rows are left 0, "not told": a sign-in held at the second-factor
// gate across the upgrade is not remembered at its step, and counts as new at its next login (its notice, or, in the
// hour its own notice went out, the hour's follow-up: up to two more notices for the owner, once).
import type { Migration } from "./types.ts";

export const sessionDeviceTold: Migration = {
  version: 34,
  name: "session-device-told",
  async up(db) {
    await db.schema.alterTable("sessions").addColumn("device_told", "integer", (c) => c.notNull().defaultTo(0)).execute();
  },
};
