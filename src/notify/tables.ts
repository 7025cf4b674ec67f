// Table types of the email outbox (migration 3); the store's Schema owns them.
import type { OutboxMessagesTable } from "../store/schema.ts";

export type { OutboxMessagesTable };

export interface NotifyTables {
  outbox_messages: OutboxMessagesTable;
}
