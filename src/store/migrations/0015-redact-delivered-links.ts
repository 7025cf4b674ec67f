// Migration 15: mail delivered before the outbox began emptying link mails on delivery keeps the single-use link in
// clear in outbox_messages (body_text, body_html), while the reset and email-change services store only its hash.
// Such a link may still be live (a containment link lives 24 hours), so a read of the database could redeem it.
// The bodies of every sent message of a link kind become the fixed text the outbox now writes itself (a link mail
// without an HTML body keeps none). Messages not yet sent (queued, retrying, dead) keep theirs: they must still be
// deliverable, `requeue-dead` included. The kinds and the text are written out here, not imported: a migration
// once released never changes, whatever later becomes of src/notify/link-kinds.ts.
import type { Migration } from "./types.ts";

const LINK_KINDS = ["account.password-reset-link", "account.registration-link", "account.containment-reset-link", "account.email-change-link"];
const TEXT = "The content of this message was removed after delivery because it held a single-use link.";

export const redactDeliveredLinks: Migration = {
  version: 15,
  name: "redact-delivered-links",
  async up(db) {
    const sentLinks = db.updateTable("outbox_messages").where("status", "=", "sent").where("kind", "in", LINK_KINDS);
    await sentLinks.set({ body_text: TEXT }).execute();
    await sentLinks.set({ body_html: `<p>${TEXT}</p>` }).where("body_html", "is not", null).execute();
  },
};
