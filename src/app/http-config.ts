// Configuration of the HTTP account surface: public URL (reset links, origin checks, WebAuthn), mail
// (SMTP for the outbox sender), self-registration, session lifetimes and the MFA policy. Read from
// environment variables once at start-up; every error names the variable. SMTP credentials are never echoed.
import { InputError } from "../lib/errors.ts";
import type { MailConfig } from "../notify/config.ts";

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
}

function configError(message: string): InputError {
  return new InputError("BULWARK_ERR_CONFIG", message);
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

/**
 * Parses BULWARK_SMTP_URL (`smtp://user:pass@host:587`, `smtps://…:465`; `?requireTLS=true` refuses to send
 * unless STARTTLS succeeds) and BULWARK_MAIL_FROM into a MailConfig, or null when SMTP is not configured.
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
  const requireTLS = url.searchParams.get("requireTLS") === "true";
  const user = decodeURIComponent(url.username);
  return {
    smtp: {
      host: url.hostname.replace(/^\[|\]$/g, ""), port, secure, requireTLS, pool: true, maxConnections: 5,
      ...(user ? { auth: { user, pass: decodeURIComponent(url.password) } } : {}),
    },
    from,
  };
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
  };
}
