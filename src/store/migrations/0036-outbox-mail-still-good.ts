// Migration 36: what an outbox message needs for the claim to tell that it is no longer good to send. `not_after`: when
// the single-use link a message carries stops working (its queue time plus the link's lifetime), null for mail without
// one: a link mail requeued days after it died went out still saying "open this link within 30 minutes", the store
// refusing its link. `account_id`: the account whose current address the message is meant for (a notice, a reset
// link), null for mail meant for an address as such (the email-changed notice to the address the account left, a
// confirmation link to the address it moves to, a campaign): requeued, such mail went to the address the account had
// left, to whoever holds that mailbox now. Rows queued before stay null in both and are sent as before.
import type { Migration } from "./types.ts";

export const outboxMailStillGood: Migration = {
  version: 36,
  name: "outbox-mail-still-good",
  async up(db) {
    await db.schema.alterTable("outbox_messages").addColumn("not_after", "bigint").execute();
    await db.schema.alterTable("outbox_messages").addColumn("account_id", "text").execute();
  },
};
