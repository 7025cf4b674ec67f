// A mail transport for tests that read what the sender delivered, in order, without an SMTP peer: it accepts every
// message, records it, and lets a test act on each delivery (the outbox's claim order, a message sent twice).
import type { OutboxMessage } from "../../src/notify/outbox.ts";
import type { DeliveryOutcome, MailTransport } from "../../src/notify/transport.ts";

/** What the transport was handed, per message. */
export interface SentMessage {
  id: string;
  kind: string;
  to: string;
  text: string;
}

/**
 * A transport that accepts everything and records each message in `sent`, in delivery order; `onSend` runs on each
 * delivery before it is answered.
 *
 * @example
 * const transport = recordingTransport();
 * await new OutboxSender({ outbox, transport, clock, random }, { name: "t" }).drain();
 * transport.sent.findIndex((m) => m.kind === "security.password-changed");
 */
export function recordingTransport(onSend?: (m: OutboxMessage) => Promise<void>): MailTransport & { sent: SentMessage[] } {
  const sent: SentMessage[] = [];
  return {
    sent,
    async send(m): Promise<DeliveryOutcome> {
      sent.push({ id: m.id, kind: m.kind, to: m.to, text: m.text });
      await onSend?.(m);
      return { ok: true, providerMessageId: null };
    },
    async close() {},
  };
}
