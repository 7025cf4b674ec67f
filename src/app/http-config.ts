// Configuration of the HTTP account surface: public URL (reset links, origin checks, WebAuthn), mail
// (SMTP for the outbox sender), self-registration, session lifetimes and the MFA policy. Read from
// environment variables once at start-up; every error names the variable. SMTP credentials are never echoed.
import { isIP } from "node:net";
import { InputError } from "../lib/errors.ts";
import { checkMailConfig, tlsRequired, type MailConfig } from "../notify/config.ts";
import { addressProblem } from "../notify/validate.ts";

/**
 * Who must have a second factor before a password login opens a session (BULWARK_REQUIRE_MFA, ASVS 6.3.3):
 * - `all`: every account; one without a factor is held at enrolment after login;
 * - `administrative` (default): accounts whose roles hold an administrative permission (`holdsAdministrative`);
 * - `none`: nobody is held (accounts that enrolled a factor still use it). Logged as a warning at start-up.
 */
export type MFAPolicy = "all" | "administrative" | "none";

export const MFA_POLICIES: readonly MFAPolicy[] = ["all", "administrative", "none"];

export interface HTTPAuthConfig {
  /** The origin users reach the service at, e.g. https://bulwark.example.org (no path). */
  publicURL: string;
  /** Other origins allowed to make unsafe cookie-authenticated requests (a separate console origin). */
  trustedOrigins: string[];
  /** SMTP delivery for the outbox; null when not configured (messages queue, the server says so once). */
  mail: MailConfig | null;
  /** POST /auth/register is refused unless this is true (BULWARK_REGISTRATION=open). */
  registrationOpen: boolean;
  /** Who must enrol a second factor before anything else (BULWARK_REQUIRE_MFA, default `administrative`). */
  requireMFA: MFAPolicy;
  session: { idleTimeoutMs: number; absoluteTimeoutMs: number };
  /**
   * A session is "fresh" this long after the authentication that created it; past that, changing factors or
   * ending other sessions needs POST /auth/reauthenticate first (ASVS 7.5.1, 7.5.2). BULWARK_REAUTH_MINUTES.
   */
  reauthWindowMs: number;
  /**
   * Which reverse proxies to believe about the client's address (X-Forwarded-For), BULWARK_TRUST_PROXY: none
   * (default: the peer's address is the client's), or the addresses or CIDR ranges of the proxies. Never "every
   * hop": then any client writes its own address into flood control, the audit log and notices.
   */
  trustProxy: false | string[];
}

function configError(message: string): InputError {
  return new InputError("BULWARK_ERR_CONFIG", message);
}

/** Parses BULWARK_TRUST_PROXY: unset or empty → false; else a comma-separated list of proxy addresses or CIDR ranges. */
export function parseTrustProxy(raw: string | undefined): false | string[] {
  const text = raw?.trim() ?? "";
  if (text === "") return false;
  if (/^(true|yes|on|all|\*)$/i.test(text)) {
    throw configError(`BULWARK_TRUST_PROXY=${text.slice(0, 20)} would believe X-Forwarded-For from anyone (a client could pick the address flood control and the audit log see); give the proxy's address or CIDR range, e.g. 127.0.0.1 or 10.0.0.0/8`);
  }
  const entries = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const entry of entries) {
    const [address, bits, extra] = entry.split("/");
    const family = isIP(address ?? "");
    const okBits = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
    if (family === 0 || !okBits || extra !== undefined || (address ?? "").includes("%")) {
      throw configError(`BULWARK_TRUST_PROXY: "${entry.slice(0, 60)}" is not an IP address or CIDR range (e.g. 127.0.0.1, 10.0.0.0/8, ::1)`);
    }
  }
  return entries;
}

function parsePublicURL(raw: string | undefined, port: number): string {
  if (raw === undefined || raw.trim() === "") return `http://localhost:${port}`;
  let url: URL;
  try {
    url = new URL(raw.trim());
  } catch {
    throw configError(`BULWARK_PUBLIC_URL is not a valid URL, got "${raw.trim().slice(0, 80)}"; expected e.g. https://bulwark.example.org`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw configError(`BULWARK_PUBLIC_URL must start with https:// (or http:// for local use), got "${url.protocol}"`);
  // Only the origin is used: reset links are built from it, never from the request's Host header (link poisoning).
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash || url.username || url.password) {
    throw configError("BULWARK_PUBLIC_URL must be an origin only (scheme, host, optional port), without path, query or credentials");
  }
  return url.origin;
}

function parseBoolean(name: string, raw: string | undefined, fallback: boolean, yes: string, no: string): boolean {
  if (raw === undefined || raw.trim() === "") return fallback;
  const v = raw.trim().toLowerCase();
  if (v === yes || v === "true" || v === "1") return true;
  if (v === no || v === "false" || v === "0") return false;
  throw configError(`${name} must be "${yes}" or "${no}", got "${raw.trim().slice(0, 20)}"`);
}

// The one query parameter BULWARK_SMTP_URL takes; its name is matched without regard to case.
const SMTP_PARAMETERS = ["requireTLS"] as const;

/** Reads `?requireTLS=` strictly: a value that is neither true nor false is an error, never "false". */
function parseRequireTLS(url: URL): boolean | undefined {
  let value: string | undefined;
  for (const [name, raw] of url.searchParams) {
    const known = SMTP_PARAMETERS.find((p) => p.toLowerCase() === name.toLowerCase());
    if (!known) throw configError(`BULWARK_SMTP_URL has an unknown parameter "${name.slice(0, 40)}"; the only one is requireTLS=true|false`);
    if (value !== undefined) throw configError("BULWARK_SMTP_URL gives requireTLS more than once");
    value = raw;
  }
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (v === "true" || v === "1" || v === "yes") return true;
  if (v === "false" || v === "0" || v === "no") return false;
  throw configError(`BULWARK_SMTP_URL parameter requireTLS must be true or false, got "${value.slice(0, 20)}"`);
}

/**
 * Parses BULWARK_SMTP_URL and BULWARK_MAIL_FROM into a MailConfig, or null when SMTP is not configured.
 * - `smtps://host:465`: TLS from the first byte.
 * - `smtp://user:pass@host:587`: STARTTLS is required; if the server does not offer it (or an attacker on the
 *   path strips it), nothing is sent — not the mail, not the password — and the mail waits for a retry.
 * - `smtp://…?requireTLS=false`: clear text allowed (STARTTLS still used when offered). Mail, reset links and
 *   the SMTP password can then be read and changed on the network: only for a relay on a trusted link.
 * - A loopback host (`localhost`, 127.0.0.0/8, `[::1]`) defaults to requireTLS=false: nothing leaves the
 *   machine, and local relays rarely hold a certificate for 127.0.0.1. `?requireTLS=true` still applies.
 */
export function parseMailConfig(env: NodeJS.ProcessEnv): MailConfig | null {
  const raw = env["BULWARK_SMTP_URL"]?.trim();
  if (!raw) return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw configError("BULWARK_SMTP_URL is not a valid URL; expected smtp://user:password@host:587 or smtps://host:465");
  }
  if (url.protocol !== "smtp:" && url.protocol !== "smtps:") throw configError(`BULWARK_SMTP_URL must start with smtp:// or smtps://, got "${url.protocol}//…"`);
  const secure = url.protocol === "smtps:";
  const port = url.port === "" ? (secure ? 465 : 587) : Number(url.port);
  const from = env["BULWARK_MAIL_FROM"]?.trim();
  if (!from) throw configError("BULWARK_SMTP_URL is set but BULWARK_MAIL_FROM is not; set the From address, e.g. security@example.org");
  // Checked here, not when the sender starts: a server must not start listening and then find it cannot send.
  const fromProblem = addressProblem(from);
  if (fromProblem !== null) {
    // JSON-quoted and cut short, so a line break in the value stays inert in logs and on the terminal.
    throw configError(`BULWARK_MAIL_FROM is not an acceptable email address (${fromProblem}), got ${JSON.stringify(from.slice(0, 80))}; give a plain address such as security@example.org, without a display name`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const explicit = parseRequireTLS(url);
  // smtps: TLS from the first byte, the parameter changes nothing (kept as given, as before).
  const requireTLS = secure ? (explicit ?? false) : tlsRequired({ host, secure, ...(explicit === undefined ? {} : { requireTLS: explicit }) });
  let user: string;
  let pass: string;
  try {
    user = decodeURIComponent(url.username);
    pass = decodeURIComponent(url.password);
  } catch {
    // Never echoed: it holds the password.
    throw configError("BULWARK_SMTP_URL: the user name or password is not valid percent-encoding (write % as %25)");
  }
  const config: MailConfig = {
    smtp: {
      host, port, secure, requireTLS, pool: true, maxConnections: 5,
      ...(user ? { auth: { user, pass } } : {}),
    },
    from,
  };
  // Anything else the sender would refuse at start (a port of 0, …) is refused now, naming the variable.
  try {
    checkMailConfig(config);
  } catch (cause) {
    throw new InputError("BULWARK_ERR_CONFIG", `BULWARK_SMTP_URL is not usable: ${(cause as Error).message}`, { cause });
  }
  return config;
}

/** Parses BULWARK_REQUIRE_MFA; unset or empty means `administrative`. */
function parseMFAPolicy(env: NodeJS.ProcessEnv): MFAPolicy {
  const raw = env["BULWARK_REQUIRE_MFA"];
  // The old boolean was replaced before any release; a leftover must not silently mean something else.
  if (env["BULWARK_REQUIRE_MFA_FOR_ADMINS"] !== undefined) throw configError("BULWARK_REQUIRE_MFA_FOR_ADMINS is no longer read; set BULWARK_REQUIRE_MFA=all|administrative|none instead (default administrative)");
  if (raw === undefined || raw.trim() === "") return "administrative";
  const v = raw.trim().toLowerCase();
  if ((MFA_POLICIES as readonly string[]).includes(v)) return v as MFAPolicy;
  throw configError(`BULWARK_REQUIRE_MFA must be one of ${MFA_POLICIES.join(", ")}, got "${raw.trim().slice(0, 20)}"`);
}

/** Reads the HTTP account configuration. */
export function loadHTTPAuthConfig(env: NodeJS.ProcessEnv, port: number): HTTPAuthConfig {
  const minutes = (name: string, fallback: number, min: number, max: number): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback * 60_000;
    const n = Number(raw.trim());
    if (!Number.isInteger(n) || n < min || n > max) throw configError(`${name} must be a whole number of minutes from ${min} to ${max}, got "${raw.trim().slice(0, 20)}"`);
    return n * 60_000;
  };
  const trustedOrigins = (env["BULWARK_TRUSTED_ORIGINS"] ?? "").split(",").map((s) => s.trim()).filter(Boolean).map((o) => parsePublicURL(o, port));
  const session = {
    // NIST SP 800-63B §4.2.3 (AAL2): 30 minutes idle, 12 hours absolute.
    idleTimeoutMs: minutes("BULWARK_SESSION_IDLE_MINUTES", 30, 2, 24 * 60),
    absoluteTimeoutMs: minutes("BULWARK_SESSION_ABSOLUTE_MINUTES", 12 * 60, 5, 30 * 24 * 60),
  };
  if (session.idleTimeoutMs > session.absoluteTimeoutMs) throw configError("BULWARK_SESSION_IDLE_MINUTES cannot exceed BULWARK_SESSION_ABSOLUTE_MINUTES");
  return {
    publicURL: parsePublicURL(env["BULWARK_PUBLIC_URL"], port),
    trustedOrigins,
    mail: parseMailConfig(env),
    registrationOpen: parseBoolean("BULWARK_REGISTRATION", env["BULWARK_REGISTRATION"], false, "open", "closed"),
    requireMFA: parseMFAPolicy(env),
    session,
    reauthWindowMs: minutes("BULWARK_REAUTH_MINUTES", 10, 1, 120),
    trustProxy: parseTrustProxy(env["BULWARK_TRUST_PROXY"]),
  };
}
