// Whether a security notice reached its relay, in the audit log: the events the sender appends with the outcome it
// records (sent, dead), in one transaction (OutboxSender, src/notify/sender.ts). Only security notices: link mails and
// campaigns are not audited per message.
import type { Kysely } from "kysely";
import type { Schema } from "../store/schema.ts";
import { withoutMailboxes, withoutSecretsOf } from "./delivery-errors.ts";
import type { OutboxMessage } from "./outbox.ts";

/** One delivery event, as AuditLog.appendIn takes it. */
export interface NoticeDeliveryEvent {
  type: string;
  actor: string;
  subject: string;
  data: Record<string, unknown>;
}

/**
 * What the sender needs to audit a security notice's delivery; AuditLog and the keyring fit it (the server's wiring,
 * src/http/mail-runner.ts).
 */
export interface NoticeDeliveryAudit {
  /** Appends `event` inside `trx`, the transaction recording the outcome (AuditLog.appendIn): both commit or neither. */
  appendIn(trx: Kysely<Schema>, event: NoticeDeliveryEvent): Promise<unknown>;
  /** How the audit log names an address without holding it: a keyed tag (`id:` and Keyring.identifierTag, addressTag). */
  recipientTag(address: string): string;
}

/** Appended when a security notice is recorded `sent`: its relay accepted it. */
export const NOTICE_SENT = "notify.security-notice.sent";
/** Appended when a security notice is recorded `dead`: refused for good, out of attempts, or given up after dead senders. */
export const NOTICE_DEAD = "notify.security-notice.dead";

/**
 * The mail whose delivery is audited: the security notices (src/notify/security-notices.ts, ASVS 6.3.7), a handful per
 * change to an account. Link mails (a reset, a sign-up, an email change) and campaigns are not: anyone can cause the
 * first by the thousand, and a campaign reaches 100,000 recipients; an event each would flood the hash-chained log.
 */
export function isSecurityNotice(kind: string): boolean {
  return kind.startsWith("security.");
}

// What a notice's idempotency key may name as its cause: ids and the `prefix:id:hour` keys the notices use, nothing
// that could hold a link, a mailbox or free text (a row written behind enqueue's checks may carry anything).
const CAUSE = /^[A-Za-z0-9_.:-]{1,128}$/;
// noticeKey's last part: 32 hex characters of SHA-256 of the recipient's address.
const RECIPIENT_DIGEST = /:[0-9a-f]{32}$/;
// A whole link token (src/crypto/link-token.ts: `<prefix>_<26 base32>.<43 base64url>`) anywhere in a cause. Not the
// relay answers' looser pattern (a token cut short at the end of the text): a key is never cut, and that pattern took
// a containment's references for tokens (`job_….usr_<26>.totp`, `job_….usr_<26>`: `<id>.<word>` at the end).
const WHOLE_LINK_TOKEN = /[A-Za-z0-9]+_[A-Za-z2-7]{26}\.[A-Za-z0-9_-]{43}/;

/**
 * The event a security notice is about, read from its idempotency key: `${kind}:${eventId}:${recipient digest}`
 * (noticeKey), or `${kind}:${cause}` (the notice of an email change requested, keyed by the request). Null when the key
 * has neither shape, or what it names is not a plain id (CAUSE) or looks like a link's token or a mailbox.
 *
 * @example
 * noticeEventId({ kind: "security.password-changed", idempotencyKey: `security.password-changed:evt_1:${"0".repeat(32)}`, to: "ana@example.org" }) // "evt_1"
 */
export function noticeEventId(message: Pick<OutboxMessage, "kind" | "idempotencyKey" | "to">): string | null {
  const prefix = `${message.kind}:`;
  if (!message.idempotencyKey.startsWith(prefix)) return null;
  const cause = message.idempotencyKey.slice(prefix.length).replace(RECIPIENT_DIGEST, "");
  // CAUSE admits no "@", so no mailbox can be in it.
  return CAUSE.test(cause) && !WHOLE_LINK_TOKEN.test(cause) ? cause : null;
}

/**
 * The audit event of a security notice recorded `sent` or `dead`. Actor `system`; subject the message's id, as
 * system events name what they acted on (a key, a job): the account is named by the event the notice is about
 * (`eventId`, whose subject it is). The recipient only as the audit log's keyed tag; for `dead`, the error as
 * last_error keeps it (a link's secrets already out: withoutSecretsOf) with every mailbox reduced to its domain
 * (withoutMailboxes), as the sender's log lines have it; the relay's queue id for `sent`, likewise cleaned.
 */
export function deliveryEvent(audit: NoticeDeliveryAudit, message: OutboxMessage, attempt: number, outcome: { providerMessageId: string | null } | { error: string }): NoticeDeliveryEvent {
  const clean = (text: string): string => withoutMailboxes(withoutSecretsOf(text, message), message.to).slice(0, 500);
  const data = { messageId: message.id, kind: message.kind, eventId: noticeEventId(message), attempt, recipient: audit.recipientTag(message.to) };
  return "error" in outcome
    ? { type: NOTICE_DEAD, actor: "system", subject: message.id, data: { ...data, error: clean(outcome.error) } }
    : { type: NOTICE_SENT, actor: "system", subject: message.id, data: { ...data, providerMessageId: outcome.providerMessageId === null ? null : clean(outcome.providerMessageId).slice(0, 200) } };
}
