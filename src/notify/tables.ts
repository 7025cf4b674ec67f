// Row type of the email outbox (migration 3); the store Schema owns it.
export type { OutboxMessagesTable } from "../store/schema.ts";
