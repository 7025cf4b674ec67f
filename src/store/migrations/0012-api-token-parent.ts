// Migration 12: an API token minted by another token records its parent. Revoking a token then revokes what
// it minted, and a token whose parent is revoked is refused even if it was minted in the same instant as the
// revocation: a leaked token cannot leave live children behind.
import type { Migration } from "./types.ts";

export const apiTokenParent: Migration = {
  version: 12,
  name: "api-token-parent",
  async up(db) {
    await db.schema.alterTable("api_tokens").addColumn("parent_id", "text").execute();
    await db.schema.createIndex("api_tokens_parent").on("api_tokens").column("parent_id").execute();
  },
};
