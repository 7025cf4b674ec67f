// The email outbox: durable, idempotent, lease-based delivery over SMTP, and the security notices of ASVS 6.3.7.
export { Outbox, PRIORITY, type NewMessage, type OutboxMessage, type OutboxMessageSummary, type SetAsideMessage, type OutboxStatus, type EnqueueResult, type BulkEnqueueResult, type DeadPosition, type OutboxDeps } from "./outbox.ts";
export { OutboxSender, type SenderOptions, type SenderDeps, type RunReport } from "./sender.ts";
export { createSMTPTransport, classifyFailure, messageIdFor, type MailTransport, type DeliveryOutcome, type SendOptions } from "./transport.ts";
export { DEFAULT_RETRY, retryBudget, retryDelay, type RetryPolicy } from "./backoff.ts";
export { checkMailConfig, isLoopbackHost, tlsRequired, type MailConfig, type SMTPConfig, type DKIMConfig } from "./config.ts";
export { notifySecurityEvent, queueSecurityNotice, securityNoticeKey, securityMessages, type SecurityEvent, type SecurityNotice, type NoticeOptions, type MFAFactor } from "./security-notices.ts";
export { addressProblem, checkAddress, checkSubject } from "./validate.ts";
export { carriesSingleUseLink, SINGLE_USE_LINK_KINDS } from "./link-kinds.ts";
export { NotifyInputError, notifyErrors } from "./errors.ts";
export type { OutboxMessagesTable } from "./tables.ts";
