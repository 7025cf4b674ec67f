// Delivery through SMTP with nodemailer (pooling, TLS options, optional DKIM). The outbox's message id
// becomes the Message-ID header, identical on every retry, so receivers can drop a duplicate.
import type { Transporter } from "nodemailer";
import type { MailConfig } from "./config.ts";
import { checkMailConfig, fromDomain, tlsRequired } from "./config.ts";
import type { OutboxMessage } from "./outbox.ts";
import { checkAddress, checkSubject } from "./validate.ts";

export type DeliveryOutcome =
  | { ok: true; providerMessageId: string | null }
  /** permanent: the server refused the message for good (RFC 5321 5yz), so retrying cannot help. */
  | { ok: false; permanent: boolean; error: string };

export interface SendOptions {
  /**
   * Aborted when the delivery's deadline passes (the sender's lease is about to end): the transport must
   * then drop the SMTP transaction (close the connection before the final reply) and report a transient
   * failure, so that no sender that has lost its claim can still complete a delivery.
   */
  signal?: AbortSignal;
}

/** What the sender needs from a transport; tests and other providers can implement it. */
export interface MailTransport {
  send(message: OutboxMessage, options?: SendOptions): Promise<DeliveryOutcome>;
  close(): Promise<void>;
}

/** The Message-ID for an outbox message: stable across retries and senders. */
export function messageIdFor(message: Pick<OutboxMessage, "id">, domain: string): string {
  return `<${message.id}@${domain}>`;
}

interface NodemailerFailure {
  message?: string;
  code?: string;
  responseCode?: number;
  permanent?: boolean;
  response?: string;
}

// Failures of the connection or of our account at the relay rather than of the message, whatever reply code
// came with them: retrying this message later can succeed, and every other message would fail the same way.
// ETLS: STARTTLS was not offered, was refused (a 5xx to STARTTLS is what a stripping attacker sends) or its
// handshake failed. Were it permanent, an attacker on the path could make every queued notice dead at once;
// transient, the mail waits and goes out once TLS works again. EAUTH likewise: a wrong SMTP password is
// fixed by the operator, not by dropping the queue.
const CONNECTION_FAILURES = new Set(["ETLS", "EAUTH", "EABORT", "ECONNECTION", "ESOCKET", "ETIMEDOUT", "EDNS", "EPROXY"]);

/**
 * Sorts a nodemailer error into permanent (a 5xx reply to the message, except 503) or transient (4xx, 503,
 * network, timeout, TLS failure, an aborted delivery).
 */
export function classifyFailure(error: unknown): { permanent: boolean; error: string } {
  const e = (error ?? {}) as NodemailerFailure;
  const code = typeof e.responseCode === "number" ? e.responseCode : null;
  const connection = typeof e.code === "string" && CONNECTION_FAILURES.has(e.code);
  const permanent = connection ? false : typeof e.permanent === "boolean" ? e.permanent : code !== null && code >= 500 && code < 600 && code !== 503;
  // The server's reply and nodemailer's code, never the credentials: neither carries them.
  const text = [e.code, code, e.response ?? e.message].filter((p) => p !== undefined && p !== null).join(" ");
  return { permanent, error: text.replace(/[\r\n]+/g, " ").slice(0, 500) || "unknown delivery error" };
}

// "250 2.0.0 Ok: queued as 4XyZ" → "4XyZ"; otherwise the first 200 characters of the reply.
function providerId(response: unknown): string | null {
  if (typeof response !== "string" || response === "") return null;
  const match = /queued as\s+([^\s>]+)/i.exec(response);
  return (match?.[1] ?? response).slice(0, 200);
}

/**
 * An SMTP transport for the sender. nodemailer is loaded here, not at start-up.
 *
 * @example
 * const transport = await createSMTPTransport({ smtp: { host: "smtp.example.org", port: 587, secure: false, requireTLS: true, pool: true }, from: "security@example.org" });
 */
export async function createSMTPTransport(config: MailConfig): Promise<MailTransport> {
  checkMailConfig(config);
  const { createTransport } = await import("nodemailer");
  const { smtp } = config;
  const options = {
    host: smtp.host,
    port: smtp.port,
    secure: smtp.secure,
    // STARTTLS or nothing, unless the operator opted out or the relay is on loopback (config.ts tlsRequired).
    requireTLS: smtp.secure ? (smtp.requireTLS ?? false) : tlsRequired(smtp),
    ...(smtp.auth ? { auth: { user: smtp.auth.user, pass: smtp.auth.pass } } : {}),
    // Certificates are verified unless the operator explicitly turns it off.
    tls: { rejectUnauthorized: smtp.tls?.rejectUnauthorized ?? true, ...(smtp.tls?.ca ? { ca: smtp.tls.ca } : {}) },
    pool: smtp.pool ?? false,
    maxConnections: smtp.maxConnections ?? 5,
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    socketTimeout: smtp.socketTimeoutMs ?? 60_000,
    ...(config.dkim ? { dkim: { domainName: config.dkim.domainName, keySelector: config.dkim.keySelector, privateKey: config.dkim.privateKey } } : {}),
  };
  const transporter = createTransport(options as Parameters<typeof createTransport>[0]) as Transporter;
  const domain = fromDomain(config);
  return {
    async send(message: OutboxMessage, sendOptions: SendOptions = {}): Promise<DeliveryOutcome> {
      // Checked again at the last moment: a row written by anything but enqueue() must not inject headers either.
      try {
        checkAddress("to", message.to);
        checkSubject(message.subject);
      } catch (error) {
        return { ok: false, permanent: true, error: (error as Error).message };
      }
      const { signal } = sendOptions;
      if (signal?.aborted) return { ok: false, permanent: false, error: "delivery not started: its deadline had passed" };
      try {
        const info = await transporter.sendMail({
          from: config.from,
          to: message.to,
          envelope: { from: config.from, to: [message.to] },
          subject: message.subject,
          text: message.text,
          ...(message.html !== null ? { html: message.html } : {}),
          messageId: messageIdFor(message, domain),
          // RFC 3834: automatic mail; well-behaved auto-responders do not answer it.
          headers: { "Auto-Submitted": "auto-generated", "X-Bulwark-Kind": message.kind },
          // nodemailer closes the connection carrying this message when the signal aborts.
          ...(signal ? { signal } : {}),
        } as Parameters<Transporter["sendMail"]>[0]);
        const rejected = (info as { rejected?: unknown[] }).rejected ?? [];
        if (rejected.length > 0) return { ok: false, permanent: false, error: `recipient rejected: ${String((info as { response?: string }).response ?? "")}`.slice(0, 500) };
        return { ok: true, providerMessageId: providerId((info as { response?: string }).response) };
      } catch (error) {
        if (signal?.aborted) return { ok: false, permanent: false, error: "delivery aborted: its deadline passed before the server accepted the message" };
        return { ok: false, ...classifyFailure(error) };
      }
    },
    async close(): Promise<void> {
      transporter.close();
    },
  };
}
