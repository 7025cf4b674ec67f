// The mail configuration: a plain object (the composition root fills it from env vars), checked once,
// with every problem named. SMTP credentials and the DKIM key are secrets: never logged.
import { BlockList, isIP } from "node:net";
import { notifyErrors } from "./errors.ts";
import { checkAddress } from "./validate.ts";

export interface SMTPConfig {
  host: string;
  port: number;
  /** true: TLS from the first byte (port 465). false: plain, upgraded with STARTTLS. */
  secure: boolean;
  /**
   * With secure: false, refuse to send (or to authenticate) unless STARTTLS succeeds. Unset means true,
   * except for a loopback host (see tlsRequired): an attacker on the path who strips STARTTLS from the
   * server's greeting must not get the mail, the reset links in it, or the SMTP password in clear.
   */
  requireTLS?: boolean;
  auth?: { user: string; pass: string };
  tls?: { rejectUnauthorized: boolean; ca?: string | string[] };
  /** Keep connections open and reuse them: what a 100,000-message campaign needs. */
  pool?: boolean;
  maxConnections?: number;
  /** Socket inactivity bound in ms. A whole delivery is also bounded by the sender's deadline (SenderOptions). */
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
  if (smtp.requireTLS !== undefined && typeof smtp.requireTLS !== "boolean") throw notifyErrors.badConfig("smtp.requireTLS must be true or false");
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

// 127.0.0.0/8 and ::1; BlockList also matches an IPv4-mapped IPv6 address (::ffff:127.0.0.1) against the IPv4 rule.
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/**
 * True for a host that names this machine's loopback interface: `localhost` (any case), or an IP literal in
 * 127.0.0.0/8 or ::1 (also IPv4-mapped; IPv6 with or without brackets). Only a literal Node itself reads as an
 * address (net.isIP) counts: `127.0.0.01`, `127.1` or `2130706433` look like loopback but are names to Node, so
 * nodemailer would ask DNS, and whatever the resolver answered would get the mail and the SMTP password in clear.
 * Only the configured text is looked at, never a DNS answer; the transport connects to `localhost` as 127.0.0.1
 * (connectHost), so no DNS answer is ever used for it either.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === "localhost") return true;
  // Brackets only around IPv6, as connectHost strips them: "[127.0.0.1]" is not a literal nodemailer connects to.
  const inner = /^\[(.*)\]$/.exec(h)?.[1];
  const literal = inner === undefined ? h : inner;
  const family = isIP(literal);
  if (family === 0 || (inner !== undefined && family !== 6)) return false;
  return LOOPBACK.check(literal, family === 6 ? "ipv6" : "ipv4");
}

/**
 * The address to connect to for a configured host. `localhost` (any case) becomes 127.0.0.1: nodemailer resolves a
 * host name with DNS queries (dns.Resolver), not with /etc/hosts, so "localhost" would be whatever the network's
 * resolver answers — and a loopback host is allowed clear text (tlsRequired). Connecting to 127.0.0.1 makes that
 * judgement true. A bracketed IPv6 literal ("[::1]") loses its brackets, so it is never looked up either. Any
 * other host is returned as given. (A relay listening on ::1 only: configure `[::1]`.)
 *
 * @example
 * connectHost("localhost") // "127.0.0.1"
 * connectHost("[::1]") // "::1"
 * connectHost("smtp.example.org") // "smtp.example.org"
 */
export function connectHost(host: string): string {
  if (host.toLowerCase() === "localhost") return "127.0.0.1";
  const inner = /^\[(.*)\]$/.exec(host)?.[1];
  return inner !== undefined && isIP(inner) === 6 ? inner : host;
}

/**
 * Whether a plain-text (secure: false) connection must be upgraded with STARTTLS before anything is sent.
 * An explicit `requireTLS` wins. Unset: required, except for a loopback host — traffic that never leaves
 * the machine cannot be read or stripped on the network, and local relays rarely hold a certificate for
 * 127.0.0.1 (docs/decisions/0004-email-outbox.md). With secure: true, TLS is there from the first byte.
 *
 * @example
 * tlsRequired({ host: "smtp.example.org", port: 587, secure: false }) // true
 * tlsRequired({ host: "127.0.0.1", port: 25, secure: false }) // false: a loopback relay
 */
export function tlsRequired(smtp: Pick<SMTPConfig, "host" | "secure" | "requireTLS">): boolean {
  if (smtp.secure) return true;
  return smtp.requireTLS ?? !isLoopbackHost(smtp.host);
}

/** The domain part of the From address: it names our Message-IDs. */
export function fromDomain(config: MailConfig): string {
  return config.from.slice(config.from.lastIndexOf("@") + 1).toLowerCase();
}
