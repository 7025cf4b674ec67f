// Migration 30: an authenticator app's replacement waiting for its first code, beside the confirmed app it replaces
// (src/accounts/mfa/totp.ts, beginReplacement / confirmReplacement). Replacing an app used to mean removing it first,
// and between the removal and the new app's confirmation the account had no second factor: a password-only login was
// then fully signed in, could begin an app of its own and move the address. The pending secret is a keyring ciphertext
// bound to (mfa_totp, pending_secret_ct, user_id), re-encrypted by rotate-keys like secret_ct. Null: none pending.
import type { Migration } from "./types.ts";

export const totpReplacement: Migration = {
  version: 30,
  name: "totp-replacement",
  async up(db) {
    await db.schema.alterTable("mfa_totp").addColumn("pending_secret_ct", "text").execute();
    await db.schema.alterTable("mfa_totp").addColumn("pending_created_at", "bigint").execute();
  },
};
