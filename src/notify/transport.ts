// Delivery through SMTP with nodemailer (pooling, TLS options, optional DKIM). The outbox's message id
// becomes the Message-ID header, identical on every retry, so receivers can drop a duplicate.
import type { Transporter } from "nodemailer";
import type { MailConfig } from "./config.ts";
import { checkMailConfig, connectHost, fromDomain, tlsRequired } from "./config.ts";
import type { OutboxMessage } from "./outbox.ts";
import { checkAddress, checkSubject } from "./validate.ts";

export type DeliveryOutcome =
  | { ok: true; providerMessageId: string | null }
  /** permanent: the server refused the message for good (a 5yz reply to MAIL FROM, RCPT TO or DATA), so retrying cannot help. */
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
  /** The SMTP command whose reply (or local check) failed: "CONN" (greeting), "EHLO", "STARTTLS", "MAIL FROM", ... */
  command?: string;
  responseCode?: number;
  response?: string;
}

// Only a reply to the message itself can be permanent: to MAIL FROM, RCPT TO or DATA (and the end of DATA), which
// nodemailer reports with code EENVELOPE or EMESSAGE and the command it answered. Its own `permanent` flag is not
// used: it is set for any 5xx, including a 554 greeting or a 550 to EHLO/HELO (EPROTOCOL), which are about the
// session, not the message. The greeting and EHLO come before STARTTLS, so an attacker on the path could answer
// them with a 5xx and make every queued notice dead at once; and a relay that refuses our IP or our host name
// refuses every message alike. Everything else — the greeting, EHLO/HELO, STARTTLS (ETLS), AUTH (EAUTH),
// protocol errors, network errors, timeouts, an aborted delivery — is transient whatever its reply code: the
// mail waits and goes out once the session works again (docs/decisions/0004-email-outbox.md).
const MESSAGE_FAILURES = new Set(["EENVELOPE", "EMESSAGE"]);
const MESSAGE_COMMANDS = new Set(["MAIL FROM", "RCPT TO", "DATA"]);

// "530 5.7.0 Authentication required" (RFC 4954): the relay wants a login we did not give, a fault of our
// configuration that every message meets alike, not a refusal of this message.
function authenticationRequired(e: NodemailerFailure, code: number): boolean {
  if (code === 530) return true;
  const enhanced = typeof e.response === "string" ? /^\d{3}[ -](\d\.\d{1,3}\.\d{1,3})\b/.exec(e.response)?.[1] : undefined;
  return e.command === "MAIL FROM" && enhanced === "5.7.0";
}

/**
 * Sorts a nodemailer error into permanent (a 5xx reply to MAIL FROM, RCPT TO or DATA, except 503 and 530 /
 * 5.7.0 "authentication required") or transient (everything else: 4xx, a 5xx to the greeting, EHLO/HELO,
 * STARTTLS or AUTH, network, timeout, TLS failure, an aborted delivery).
 *
 * @example
 * classifyFailure({ code: "EENVELOPE", command: "RCPT TO", responseCode: 550, response: "550 5.1.1 no such user" }).permanent // true
 * classifyFailure({ code: "EPROTOCOL", command: "CONN", responseCode: 554, response: "554 go away" }).permanent // false
 */
export function classifyFailure(error: unknown): { permanent: boolean; error: string } {
  const e = (error ?? {}) as NodemailerFailure;
  const code = typeof e.responseCode === "number" ? e.responseCode : null;
  // nodemailer names the command; an error without one (another version) is judged by its code alone.
  const aboutMessage = typeof e.code === "string" && MESSAGE_FAILURES.has(e.code) && (e.command === undefined || MESSAGE_COMMANDS.has(e.command));
  const permanent = aboutMessage && code !== null && code >= 500 && code < 600 && code !== 503 && !authenticationRequired(e, code);
  // The server's reply and nodemailer's code, never the credentials: neither carries them.
  const text = [e.code, e.command, code, e.response ?? e.message].filter((p) => p !== undefined && p !== null).join(" ");
  return { permanent, error: text.replace(/[\r\n]+/g, " ").slice(0, 500) || "unknown delivery error" };
}

// "250 2.0.0 Ok: queued as 4XyZ" → "4XyZ"; otherwise the first 200 characters of the reply.
function providerId(response: unknown): string | null {
  if (typeof response !== "string" || response === "") return null;
  const match = /queued as\s+([^\s>]+)/i.exec(response);
  return (match?.[1] ?? response).slice(0, 200);
}

/**
 * The nodemailer options for a mail configuration (checked first; throws BULWARK_ERR_MAIL_CONFIG).
 *
 * @example
 * transportOptions({ smtp: { host: "localhost", port: 25, secure: false }, from: "security@example.org" }).host // "127.0.0.1"
 */
export function transportOptions(config: MailConfig): Record<string, unknown> & { host: string; requireTLS: boolean; tls: Record<string, unknown> } {
  checkMailConfig(config);
  const { smtp } = config;
  // `localhost` is connected to as 127.0.0.1, never looked up in DNS (config.ts connectHost); certificates and
  // SNI still name the configured host, so a relay's certificate for "localhost" is verified as before.
  const host = connectHost(smtp.host);
  const servername = smtp.host.toLowerCase() === "localhost" ? "localhost" : null;
  return {
    host,
    port: smtp.port,
    secure: smtp.secure,
    // STARTTLS or nothing, unless the operator opted out or the relay is on loopback (config.ts tlsRequired).
    requireTLS: smtp.secure ? (smtp.requireTLS ?? false) : tlsRequired(smtp),
    ...(smtp.auth ? { auth: { user: smtp.auth.user, pass: smtp.auth.pass } } : {}),
    // Certificates are verified unless the operator explicitly turns it off.
    tls: { rejectUnauthorized: smtp.tls?.rejectUnauthorized ?? true, ...(smtp.tls?.ca ? { ca: smtp.tls.ca } : {}), ...(servername ? { servername } : {}) },
    pool: smtp.pool ?? false,
    maxConnections: smtp.maxConnections ?? 5,
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    // RFC 5321 §4.5.3.2.6: 10 minutes for the reply to the end of the data (a relay may scan or hand the message on
    // before it answers). Giving up sooner on a relay that has the message makes it deliver one copy per retry; with
    // 60 s, a 250 after 61 s meant every attempt's copy and a row recorded dead. The sender's deadline (11 minutes,
    // sender.ts) bounds the whole delivery, so a relay slow at every step cannot stretch it past the lease.
    socketTimeout: smtp.socketTimeoutMs ?? 600_000,
    ...(config.dkim ? { dkim: { domainName: config.dkim.domainName, keySelector: config.dkim.keySelector, privateKey: config.dkim.privateKey } } : {}),
  };
}

/**
 * An SMTP transport for the sender. nodemailer is loaded here, not at start-up.
 *
 * @example
 * const transport = await createSMTPTransport({ smtp: { host: "smtp.example.org", port: 587, secure: false, requireTLS: true, pool: true }, from: "security@example.org" });
 */
export async function createSMTPTransport(config: MailConfig): Promise<MailTransport> {
  const options = transportOptions(config);
  const { createTransport } = await import("nodemailer");
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
