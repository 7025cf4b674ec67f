// Migration 5: second factors (TOTP, recovery codes, WebAuthn credentials and challenges) and API tokens.
// Secrets here are either encrypted by the keyring (TOTP) or stored only as hashes (codes, tokens).
import type { Migration } from "./types.ts";

export const mfa: Migration = {
  version: 5,
  name: "mfa",
  async up(db) {
    await db.schema
      .createTable("mfa_totp")
      .addColumn("user_id", "text", (c) => c.primaryKey().references("users.id").onDelete("cascade"))
      // Keyring ciphertext bound to (mfa_totp, secret_ct, user_id): a copied row does not decrypt elsewhere.
      .addColumn("secret_ct", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      // Null until the user proved possession with a code; an unconfirmed secret is not a factor.
      .addColumn("confirmed_at", "bigint")
      // The last accepted RFC 6238 time step: steps at or below it are refused (replay, ASVS 6.6.x).
      .addColumn("last_step", "bigint")
      .execute();

    await db.schema
      .createTable("mfa_recovery_codes")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
      // SHA-256 (hex) of the code: each code carries >= 112 random bits, so no offline guessing is feasible.
      .addColumn("code_hash", "text", (c) => c.notNull())
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("used_at", "bigint")
      .execute();
    await db.schema.createIndex("mfa_recovery_codes_user").on("mfa_recovery_codes").column("user_id").execute();

    await db.schema
      .createTable("webauthn_credentials")
      // The credential id as base64url (as the browser reports it).
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
      // COSE public key, base64url. Public by nature; no need to encrypt.
      .addColumn("public_key", "text", (c) => c.notNull())
      // Signature counter: a response whose counter does not grow reveals a cloned authenticator.
      .addColumn("counter", "bigint", (c) => c.notNull())
      .addColumn("transports", "text", (c) => c.notNull()) // JSON array
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("last_used_at", "bigint")
      .addColumn("name", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("webauthn_credentials_user").on("webauthn_credentials").column("user_id").execute();

    // Challenges live on the server, expire quickly and are deleted when consumed (single use).
    await db.schema
      .createTable("webauthn_challenges")
      .addColumn("challenge", "text", (c) => c.primaryKey())
      .addColumn("user_id", "text", (c) => c.references("users.id").onDelete("cascade"))
      .addColumn("purpose", "text", (c) => c.notNull()) // 'registration' | 'authentication'
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("webauthn_challenges_expires").on("webauthn_challenges").column("expires_at").execute();

    await db.schema
      .createTable("api_tokens")
      // "tok_" + 128 random bits: the public half of bwk_<id>_<secret>, used to find the row.
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("user_id", "text", (c) => c.notNull().references("users.id").onDelete("cascade"))
      .addColumn("name", "text", (c) => c.notNull())
      // SHA-256 (hex) of the 256-bit secret half: a database copy cannot be replayed as a token.
      .addColumn("secret_hash", "text", (c) => c.notNull())
      .addColumn("scopes", "text", (c) => c.notNull()) // JSON array of permission strings
      .addColumn("created_at", "bigint", (c) => c.notNull())
      .addColumn("expires_at", "bigint")
      .addColumn("last_used_at", "bigint")
      .addColumn("last_used_ip", "text")
      .addColumn("revoked_at", "bigint")
      .execute();
    await db.schema.createIndex("api_tokens_user").on("api_tokens").column("user_id").execute();
  },
};
