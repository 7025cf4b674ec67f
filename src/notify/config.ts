// The mail configuration: a plain object (the composition root fills it from env vars), checked once,
// with every problem named. SMTP credentials and the DKIM key are secrets: never logged.
import { notifyErrors } from "./errors.ts";
import { checkAddress } from "./validate.ts";

export interface SMTPConfig {
  host: string;
  port: number;
  /** true: TLS from the first byte (port 465). false: plain, upgraded with STARTTLS when offered. */
  secure: boolean;
  /** Refuse to send unless STARTTLS succeeds (only meaningful with secure: false). */
  requireTLS?: boolean;
  auth?: { user: string; pass: string };
  tls?: { rejectUnauthorized: boolean; ca?: string | string[] };
  /** Keep connections open and reuse them: what a 100,000-message campaign needs. */
  pool?: boolean;
  maxConnections?: number;
  /** Socket inactivity bound in ms; must stay well under the sender's lease (see docs/outbox.md). */
  socketTimeoutMs?: number;
}

export interface DKIMConfig {
  domainName: string;
  keySelector: string;
  /** PEM private key. */
  privateKey: string;
}

export interface MailConfig {
  smtp: SMTPConfig;
  /** The From address (also the envelope sender and the Message-ID domain). */
  from: string;
  dkim?: DKIMConfig;
}

const HOST = /^[A-Za-z0-9.:\-\[\]]{1,253}$/;
const SELECTOR = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})$/;

/**
 * Checks a mail configuration and returns it; throws BULWARK_ERR_MAIL_CONFIG naming the bad field.
 *
 * @example
 * checkMailConfig({ smtp: { host: "smtp.example.org", port: 587, secure: false }, from: "security@example.org" });
 */
export function checkMailConfig(config: MailConfig): MailConfig {
  const smtp = config?.smtp;
  if (!smtp || typeof smtp !== "object") throw notifyErrors.badConfig("smtp is missing");
  if (typeof smtp.host !== "string" || !HOST.test(smtp.host)) throw notifyErrors.badConfig(`smtp.host must be a host name or IP address, got ${JSON.stringify(smtp.host)}`);
  if (!Number.isInteger(smtp.port) || smtp.port < 1 || smtp.port > 65535) throw notifyErrors.badConfig(`smtp.port must be an integer between 1 and 65535, got ${JSON.stringify(smtp.port)}`);
  if (typeof smtp.secure !== "boolean") throw notifyErrors.badConfig("smtp.secure must be true or false");
  if (smtp.auth && (typeof smtp.auth.user !== "string" || typeof smtp.auth.pass !== "string")) throw notifyErrors.badConfig("smtp.auth needs a user and a pass");
  if (smtp.tls && typeof smtp.tls.rejectUnauthorized !== "boolean") throw notifyErrors.badConfig("smtp.tls.rejectUnauthorized must be true or false");
  if (smtp.maxConnections !== undefined && (!Number.isInteger(smtp.maxConnections) || smtp.maxConnections < 1 || smtp.maxConnections > 100)) {
    throw notifyErrors.badConfig("smtp.maxConnections must be an integer between 1 and 100");
  }
  try {
    checkAddress("from", config.from);
  } catch (cause) {
    throw notifyErrors.badConfig(`from: ${(cause as Error).message}`, { cause });
  }
  if (config.dkim) {
    const { domainName, keySelector, privateKey } = config.dkim;
    if (typeof domainName !== "string" || !/^[A-Za-z0-9.-]{1,253}$/.test(domainName)) throw notifyErrors.badConfig("dkim.domainName must be a domain name");
    if (typeof keySelector !== "string" || !SELECTOR.test(keySelector)) throw notifyErrors.badConfig("dkim.keySelector must be a DNS label such as \"mail2026\"");
    if (typeof privateKey !== "string" || !privateKey.includes("PRIVATE KEY")) throw notifyErrors.badConfig("dkim.privateKey must be a PEM private key");
  }
  return config;
}

/** The domain part of the From address: it names our Message-IDs. */
export function fromDomain(config: MailConfig): string {
  return config.from.slice(config.from.lastIndexOf("@") + 1).toLowerCase();
}
