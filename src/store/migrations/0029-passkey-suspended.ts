// Migration 29: when a passkey was caught as cloned (a genuine signature whose counter did not grow past the stored one,
// WebAuthn L3 §6.1.1). From then on every assertion with it is refused until its owner removes it: which of the two
// copies of the private key signs next says nothing about which is the owner's, so a higher counter must not clear it
// (src/accounts/mfa/webauthn.ts). Null: not suspended.
import type { Migration } from "./types.ts";

export const passkeySuspended: Migration = {
  version: 29,
  name: "passkey-suspended",
  async up(db) {
    await db.schema.alterTable("webauthn_credentials").addColumn("suspended_at", "bigint").execute();
  },
};
