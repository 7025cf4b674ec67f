// Migration 13: at most one current keyring key per purpose, enforced by the database. Two rotations at the
// same moment (two PostgreSQL nodes, or the CLI next to a server) could each retire the old key and insert
// their own as current; the unique index makes the second insert fail, and addCurrentKey then retries,
// retiring the winner's key in turn. Any duplicate left by that race before this migration is settled first:
// the newest current key of a purpose stays current (retired keys keep decrypting, so nothing is lost).
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const oneCurrentKey: Migration = {
  version: 13,
  name: "one-current-key",
  async up(db) {
    const current = await db.selectFrom("keyring_keys").select(["id", "purpose"]).where("status", "=", "current").orderBy("created_at", "desc").orderBy("id", "desc").execute();
    const kept = new Set<string>();
    for (const key of current) {
      if (kept.has(key.purpose)) await db.updateTable("keyring_keys").set({ status: "retired" }).where("id", "=", key.id).execute();
      else kept.add(key.purpose);
    }
    await sql`CREATE UNIQUE INDEX keyring_keys_one_current ON keyring_keys (purpose) WHERE status = 'current'`.execute(db);
  },
};
