// Migration 24: whether an account's password is still one its owner has not proven theirs. An initial password
// (POST /api/v1/users with a password, `users create --generate-password`) is known to whoever created the account,
// and so is every password changed from it at the first-login gate: whoever knew the first could choose the next. An
// administrator setting the account's address (set-by-administrator.ts) makes it so as well: a reset link mailed to
// the address held before proved nothing about the address now. Only a password set through a reset link mailed to
// the account's address clears it. While it is set, the API refuses to grant a role with an administrative permission
// (RoleStore.grant): a help desk that created an account and changed its password itself would otherwise sign in as
// the administrator it became. Existing rows: set where an initial password is in force (whether one was changed at
// the gate before this migration cannot be told).
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const passwordUnproven: Migration = {
  version: 24,
  name: "password-unproven",
  async up(db) {
    await db.schema.alterTable("users").addColumn("password_unproven", "integer", (c) => c.notNull().defaultTo(0)).execute();
    await sql`UPDATE users SET password_unproven = 1 WHERE password_initial_expires_at IS NOT NULL AND password_hash IS NOT NULL`.execute(db);
  },
};
