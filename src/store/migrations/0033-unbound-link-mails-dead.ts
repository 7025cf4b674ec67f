// Migration 33: the upgrade to recipient-bound link mails (ADR 0020). Its version alone makes every node of the previous
// release refuse to start against the upgraded store (the migrator refuses a schema newer than its code): such a node
// kept sealing bodies without the binding, which today's outbox never sends, and opened bound ones without comparing
// the binding with the row, so a database writer's new recipient still got the owner's link there. And it marks dead
// the link mails waiting at the upgrade, with the reason, so that `bulwark outbox status` lists them at once, not when
// a sender claims one: every sealed body stored before this migration was sealed without the binding, and none can be
// sealed again here (a migration runs without the key). Their owners ask for a new link.
// The kinds, the marker and the reason are written out, not imported: a released migration never changes, whatever
// later becomes of src/notify/link-kinds.ts.
import { sql } from "kysely";
import type { Migration } from "./types.ts";

const LINK_KINDS = ["account.password-reset-link", "account.registration-link", "account.containment-reset-link", "account.email-change-link"];
const SEALED_MARKER = "sealed:";
const REASON = "sealed before the recipient was bound to it (ADR 0020): ask for a new link";

export const unboundLinkMailsDead: Migration = {
  version: 33,
  name: "unbound-link-mails-dead",
  async up(db) {
    // Waiting for a first or a next attempt. A message `sending` at the upgrade is its sender's: one of the previous
    // release may be delivering it now (its markSent would then miss, and the mail read dead though delivered); if that
    // sender died instead, today's claim takes it when its lease ends and records it dead for the same reason. Sent
    // mail holds no link (migration 15), and dead mail is already listed. The prefix is compared exactly (substr, not
    // LIKE: SQLite's LIKE ignores case), on the text body, which the outbox seals whenever it seals the HTML one.
    await db.updateTable("outbox_messages")
      .set({ status: "dead", last_error: REASON, claimed_by: null, claimed_until: null })
      .where("status", "in", ["queued", "failed"])
      .where("kind", "in", LINK_KINDS)
      .where(sql<boolean>`substr("body_text", 1, ${SEALED_MARKER.length}) = ${SEALED_MARKER}`)
      .execute();
  },
};
