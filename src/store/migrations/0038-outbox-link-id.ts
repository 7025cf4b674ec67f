// Migration 38: which link an outbox message carries, for the claim to send it only while that link still works
// (Outbox.claim, stillGood). `link_id`: the id of the link's row in its store (a reset link's in password_reset_tokens, an
// email-change link's in email_change_tokens), null for mail without a link. A link can stop working before its lifetime
// (not_after, migration 36): used, or spent by the use of another link of the account, a password change, an address
// change or a containment, or superseded by a newer email-change request; its mail, waiting out a relay's outage or
// requeued, went out all the same with a link the store refuses. The claim asks the link stores by these ids, once per
// claim and only when it took such mail: no index here (the stores are read by their primary keys). Rows queued before
// stay null and are judged as before.
import type { Migration } from "./types.ts";

export const outboxLinkId: Migration = {
  version: 38,
  name: "outbox-link-id",
  async up(db) {
    await db.schema.alterTable("outbox_messages").addColumn("link_id", "text").execute();
  },
};
