// Migration 39: migration 37's index, narrowed to the mail it is read for. The claim asks it one question (Outbox.claim,
// #replacedAt): when each account was last queued a containment reset link (REPLACING_KIND in src/notify/outbox.ts),
// the mail that replaces an older link mail of the account. Migration 37 indexed every mail about an account, so each
// security notice a containment queues (one per user per lever, 200,000 in a run over 200,000 accounts) also went into
// it: an entry at a random place of the index (keyed by the account's random id), one more B-tree page dirtied per notice
// and written at each batch's commit — about a sixth of the statements' time of such a run on SQLite, for entries no
// query reads. Now only the replacing mail is in it. The condition is literal SQL, repeated word for word by the query
// (a partial index is used only when the query's own condition states it; a bound parameter does not).
import { sql } from "kysely";
import type { Migration } from "./types.ts";

export const outboxReplacingIndex: Migration = {
  version: 39,
  name: "outbox-replacing-index",
  async up(db) {
    await db.schema.dropIndex("outbox_messages_by_account").execute();
    await db.schema.createIndex("outbox_messages_replacing").on("outbox_messages").columns(["account_id", "created_at"])
      .where(sql<boolean>`"kind" = 'account.containment-reset-link' and "account_id" is not null`).execute();
  },
};
