// Migration 37: the index the claim reads to tell a link mail that a newer one of its account replaced (Outbox.claim,
// stillGood): a containment run spends every open reset link of an account before it queues the account's new one, so
// an older reset, sign-up or containment link mail still queued would go out with a link the store refuses. The claim
// asks, once per claim and only for the accounts of the link mails it took, for the newest replacing mail of each: a
// range of this index per account, however long the queue. Partial: a campaign's mail (no account) is not in it.
// The condition is literal SQL, repeated word for word by the query (src/notify/outbox.ts), as migration 28's are.
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const outboxLinkReplaced: Migration = {
  version: 37,
  name: "outbox-link-replaced",
  async up(db) {
    await db.schema.createIndex("outbox_messages_by_account").on("outbox_messages").columns(["account_id", "kind", "created_at"])
      .where(sql<boolean>`"account_id" is not null`).execute();
  },
};
