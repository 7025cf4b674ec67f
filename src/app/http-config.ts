// Configuration of the HTTP account surface: public URL (reset links, origin checks, WebAuthn), mail
// (SMTP for the outbox sender), self-registration, session lifetimes and the MFA policy. Read from
// environment variables once at start-up; every error names the variable. SMTP credentials are never echoed.
import { isIP } from "node:net";
import { domainToUnicode } from "node:url";
import { mixedScriptProblem } from "../accounts/users/normalise.ts";
import { InputError } from "../lib/errors.ts";
import { ipv6Groups } from "../lib/ipv6.ts";
import { codePointOf, identifierHidesSomething } from "../lib/visible-text.ts";
import { checkMailConfig, tlsRequired, type MailConfig } from "../notify/config.ts";
import { addressProblem } from "../notify/validate.ts";
import { passwordPastHost } from "../store/database.ts";

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
  /**
   * Whether BULWARK_PUBLIC_URL was given (else publicURL is http://localhost:PORT). Commands that mail links from an
   * operator's shell refuse without it: a shell lacking the server's settings mailed every account a link to localhost.
   */
  publicURLGiven: boolean;
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
  /**
   * Public requests that send mail (a password reset, a sign-up) accepted per client address (an IPv6 /64) per hour,
   * whatever address they name: beyond it, 429 (ASVS 2.4.1). Each account's own hourly link limit applies as well.
   * BULWARK_MAIL_REQUESTS_PER_HOUR, default 20.
   */
  mailRequestsPerHour: number;
  /**
   * Requests that check or hash a password (login, password change, reset completion, re-authentication, user
   * creation) admitted at a time, in all; beyond it, or beyond a quarter of it from one client address, the answer
   * is 503 with Retry-After at once, before any work (accounts/passwords/work-gate.ts).
   * BULWARK_PASSWORD_CHECKS_IN_FLIGHT, default 8 per thread of the pool the hashes run on (UV_THREADPOOL_SIZE).
   */
  passwordChecksInFlight: number;
}

function configError(message: string): InputError {
  return new InputError("BULWARK_ERR_CONFIG", message);
}

function trustsAnyone(shown: string, why = ""): InputError {
  return configError(
    `BULWARK_TRUST_PROXY=${shown.length > 60 ? `${shown.slice(0, 60)}…` : shown} would believe X-Forwarded-For from anyone (a client could pick the address flood ` +
      `control and the audit log see)${why}; give the proxy's address or CIDR range, e.g. 127.0.0.1 or 10.0.0.0/8`,
  );
}

/**
 * How wide a trusted range may be. Proxies sit in private address space, or in a CDN's published ranges (IPv4
 * /12 to /22, IPv6 /29 to /32), and the widest private blocks are 10.0.0.0/8 (RFC 1918) and fc00::/7 (RFC 4193).
 * So IPv4 ranges must be /8 or narrower and IPv6 ranges /16 or narrower, except inside the blocks no client on
 * the Internet can send from, fc00::/7 and fe80::/10 (link-local), which may be trusted whole, like 10.0.0.0/8.
 * An IPv4-mapped range (::ffff:a.b.c.d/96 and longer) is an IPv4 range: the proxy library matches IPv4 clients
 * against it. A /0 or /1 is "*" written differently; many narrow ranges that add up to the whole space are
 * caught by coverEverything.
 */
const MIN_IPV4_PREFIX = 8;
const MIN_IPV6_PREFIX = 16;
const NON_ROUTABLE_IPV6 = [{ network: 0xfc00n << 112n, bits: 7 }, { network: 0xfe80n << 112n, bits: 10 }];

function ipv4Value(text: string): bigint {
  return text.split(".").reduce((n, part) => (n << 8n) | BigInt(Number(part)), 0n);
}

/** An IPv6 address (already valid per isIP, no zone) as a 128-bit number. */
function ipv6Value(text: string): bigint {
  return ipv6Groups(text).reduce((n, group) => (n << 16n) | BigInt(group), 0n);
}

interface TrustedRange {
  family: 4 | 6;
  start: bigint;
  end: bigint;
}

/** The range an entry covers; an IPv4-mapped IPv6 range of /96 or longer counts as the IPv4 range it maps. */
function rangeOf(address: string, family: 4 | 6, bits: number | undefined): { range: TrustedRange; prefix: number } {
  let value = family === 4 ? ipv4Value(address) : ipv6Value(address);
  let size = family === 4 ? 32 : 128;
  let prefix = bits ?? size;
  if (family === 6 && value >> 32n === 0xffffn && prefix >= 96) {
    value &= 0xffffffffn;
    size = 32;
    prefix -= 96;
  }
  const hostBits = BigInt(size - prefix);
  const start = (value >> hostBits) << hostBits;
  return { range: { family: size === 32 ? 4 : 6, start, end: start + (1n << hostBits) - 1n }, prefix };
}

function tooWide(range: TrustedRange, prefix: number): boolean {
  if (range.family === 4) return prefix < MIN_IPV4_PREFIX;
  if (prefix >= MIN_IPV6_PREFIX) return false;
  return !NON_ROUTABLE_IPV6.some((block) => prefix >= block.bits && range.start >> BigInt(128 - block.bits) === block.network >> BigInt(128 - block.bits));
}

/** True when `ranges` (one family) together hold every address of it. */
function coverEverything(ranges: TrustedRange[], size: number): boolean {
  let next = 0n; // the lowest address not covered yet
  for (const range of [...ranges].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0))) {
    if (range.start > next) return false;
    if (range.end >= next) next = range.end + 1n;
  }
  return next === 1n << BigInt(size);
}

/**
 * Parses BULWARK_TRUST_PROXY: unset or empty → false; else a comma-separated list of proxy addresses or CIDR
 * ranges. Refuses, like "*", every value that trusts (nearly) every client: see MIN_IPV4_PREFIX. Whatever it
 * accepts, the proxy library (@fastify/proxy-addr) accepts too, so a bad value never gets as far as start-up.
 */
export function parseTrustProxy(raw: string | undefined): false | string[] {
  const text = raw?.trim() ?? "";
  if (text === "") return false;
  if (/^(true|yes|on|all|\*)$/i.test(text)) throw trustsAnyone(text);
  const entries = text.split(",").map((s) => s.trim()).filter(Boolean);
  const ranges: TrustedRange[] = [];
  for (const entry of entries) {
    const [address = "", bits, extra] = entry.split("/");
    const family = isIP(address);
    const okBits = bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 6 ? 128 : 32));
    if (family === 0 || !okBits || extra !== undefined || address.includes("%")) {
      throw configError(`BULWARK_TRUST_PROXY: "${entry.slice(0, 60)}" is not an IP address or CIDR range (e.g. 127.0.0.1, 10.0.0.0/8, ::1)`);
    }
    const { range, prefix } = rangeOf(address, family as 4 | 6, bits === undefined ? undefined : Number(bits));
    if (tooWide(range, prefix)) {
      throw trustsAnyone(entry, `: IPv4 ranges must be /${MIN_IPV4_PREFIX} or narrower, IPv6 ranges /${MIN_IPV6_PREFIX} or narrower (or inside fc00::/7 or fe80::/10)`);
    }
    ranges.push(range);
  }
  for (const [family, size] of [[4, 32], [6, 128]] as const) {
    if (coverEverything(ranges.filter((r) => r.family === family), size)) throw trustsAnyone(text, `: together, these ranges hold every IPv${family} address`);
  }
  return entries;
}

const LOCAL_ONLY = "localhost, 127.0.0.0/8 or [::1]";

/**
 * True for a host whose traffic never leaves this machine. The URL parser has already normalised the host
 * (lower case; 127.1 and 0x7f000001 become 127.0.0.1), so plain comparisons are exact.
 */
function isLoopbackHost(hostname: string): boolean {
  return hostname === "localhost" || hostname === "[::1]" || (isIP(hostname) === 4 && hostname.startsWith("127."));
}

/** The host of an origin as written: after the scheme and its slashes, before a port, a path, a query or a fragment. */
function hostAsWritten(given: string): string {
  const rest = given.replace(/^[a-z][a-z0-9+.-]*:[\\/]*/i, "");
  const authority = rest.slice(0, rest.search(/[\\/?#]|$/));
  if (authority.startsWith("[")) return authority.slice(0, authority.indexOf("]") + 1);
  const colon = authority.lastIndexOf(":");
  return colon < 0 ? authority : authority.slice(0, colon);
}

// What the URL parser takes for the full stop between labels besides "." (UTS #46 §2.3): the ideographic, full-width
// and half-width ideographic full stops.
const OTHER_FULL_STOPS = /[\u3002\uFF0E\uFF61]/u;

/**
 * Why the host of a parsed origin is not plainly the one written (`written`, the text before parsing), or null.
 * The parser maps and drops characters (a U+3002 becomes ".", a "%2e" is decoded, full-width letters become ASCII):
 * `https://bulwark.example.org。evil.test` named a host under evil.test. So every ASCII label must come out as
 * written, and as many labels as were written; none may be empty (a trailing dot, `a..b`: another name for cookies
 * and the passkey RP ID); and no label may mix Latin, Cyrillic and Greek letters, as account names may not (a
 * Cyrillic а in "accounts" was punycoded into a homograph someone else can register); an `xn--` label must be a valid
 * A-label held to the same rules (aLabelProblem). IP addresses are compared by value (127.1 is 127.0.0.1), not here.
 */
function hostProblem(written: string, hostname: string): string | null {
  const stop = OTHER_FULL_STOPS.exec(written);
  if (stop !== null) return `holds ${codePointOf(stop[0])}, which the URL parser reads as a full stop ("${hostname.slice(0, 80)}"); write the host with "." only`;
  const labels = hostname.split(".");
  const writtenLabels = written.toLowerCase().split(".");
  if (labels.length !== writtenLabels.length || writtenLabels.some((w, i) => /^[\x21-\x7e]*$/.test(w) && w !== labels[i])) {
    return `is written ${JSON.stringify(written.slice(0, 80))} but the URL parser reads it as "${hostname.slice(0, 80)}"; write the host as it is meant`;
  }
  if (labels.includes("")) return `"${hostname.slice(0, 80)}" has an empty label (a trailing dot or two dots in a row), which names another origin than the site's; write the host without it`;
  for (const label of labels) {
    const problem = label.startsWith("xn--") ? aLabelProblem(label) : null;
    if (problem !== null) return problem;
    const mixed = mixedScriptProblem(domainToUnicode(label).normalize("NFC"));
    if (mixed !== null) return `${mixed} (it would become "${hostname.slice(0, 80)}", a homograph of the name it reads as)`;
  }
  return null;
}

/**
 * Why `label`, an `xn--` label of a parsed host, is no A-label a browser opens, or null. The URL parser keeps such a
 * label as written without looking at what it decodes to, and domainToUnicode hands an invalid one back unchanged, so
 * the rules a host written in Unicode is held to (hiddenAt, mixedScriptProblem) never saw `xn--bcher-kva1776c`, which
 * encodes "bü" + ZERO WIDTH SPACE + "cher"; browsers refuse it (UTS #46 validity criteria), so every mailed link and
 * passkey ceremony would point at a host nobody opens. The label must decode, what it decodes to must hold nothing
 * hidden, and it must map back to this very label (an NFD or upper-case letter, a soft hyphen, which IDNA maps, do not).
 */
function aLabelProblem(label: string): string | null {
  const decoded = domainToUnicode(label);
  if (decoded === "" || decoded === label) {
    return `has the label "${label.slice(0, 80)}", which decodes to no valid IDNA label (it encodes a hidden, upper-case or unnormalised character, or ` +
      `nothing but ASCII), so browsers refuse the host; write the host in Unicode or as the A-label your registrar shows`;
  }
  const chars = [...decoded];
  const hidden = hiddenAt(chars);
  if (hidden >= 0) {
    return `has the label "${label.slice(0, 80)}", which decodes to a text holding ${codePointOf(chars[hidden]!)} at position ${hidden + 1} (a control, ` +
      `formatting or invisible character), refused as it is in a host written in Unicode; write the host as it is meant`;
  }
  let back: string | null;
  try {
    back = new URL(`https://${decoded}`).hostname;
  } catch {
    back = null;
  }
  if (back !== label) {
    return `has the label "${label.slice(0, 80)}", which decodes to ${JSON.stringify(decoded.slice(0, 80))}, whose A-label is ` +
      `${back === null ? "none (the URL parser refuses it)" : `"${back.slice(0, 80)}"`}: no valid IDNA label, so browsers refuse the host; write the host as it is meant`;
  }
  return null;
}

/**
 * Where `chars` (an origin as written, or a decoded host label) holds a character that shows nothing: a control, space,
 * formatting or bidirectional character, a default-ignorable, what identifierHidesSomething finds in a character alone;
 * -1 when none. Combining marks are not among them: they belong to the letter before them (a Hindi host); nor is a
 * joiner the parser keeps in the host (joinerKept).
 */
function hiddenAt(chars: readonly string[]): number {
  return chars.findIndex((c, i) => !/\p{M}/u.test(c) && identifierHidesSomething(c) && !joinerKept(chars, i));
}

/**
 * Whether chars[i] is a ZERO WIDTH NON-JOINER or JOINER (U+200C, U+200D) in the host that the URL parser keeps: the host
 * parses, and differs from the one parsed without this joiner. IDNA2008 allows them in a label where they change how
 * it is written (RFC 5892 CONTEXTJ: after a virama, between joining letters; Persian "می‌خواهم"), and the parser keeps
 * them there, in the A-label: the origin is the text written, the host the site holds. Where IDNA2008 does not allow
 * one (`exa\u200Cmple.org`) the parser refuses the URL, and a joiner it would drop instead (transitional UTS #46
 * processing maps both to nothing) leaves the host unchanged: both stay refused as hidden characters.
 */
function joinerKept(chars: readonly string[], i: number): boolean {
  if (chars[i] !== "\u200C" && chars[i] !== "\u200D") return false;
  const given = chars.join("");
  const host = hostAsWritten(given);
  const start = given.indexOf(host);
  const at = chars.slice(0, i).join("").length;
  // In the host as written only: in a port, a userinfo or a path it is no part of a label.
  if (host === "" || at < start || at >= start + host.length) return false;
  // The host alone, so that another character refused elsewhere (in a port, say) is the one named, not this joiner.
  const cut = at - start;
  try {
    return new URL(`https://${host}`).hostname !== new URL(`https://${host.slice(0, cut)}${host.slice(cut + 1)}`).hostname;
  } catch {
    return false;
  }
}

/**
 * Parses one origin given in `variable` (BULWARK_PUBLIC_URL, or an entry of BULWARK_TRUSTED_ORIGINS). http:// is
 * accepted only for loopback: anywhere else reset and email-change links, whose token the page then posts back,
 * would cross the network in clear text, and HSTS (sent only for an https public URL) would never be sent. The
 * origin must be the text written: the URL parser drops tabs and line breaks anywhere and zero-width characters in a
 * host, and maps other characters, so a value pasted with one named another host (ASVS 13.2.4).
 */
function parseOrigin(variable: string, raw: string): string {
  const given = raw.trim();
  const shown = JSON.stringify(given.slice(0, 80));
  const chars = [...given];
  const hidden = hiddenAt(chars);
  if (hidden >= 0 && /[\u200C\u200D]/u.test(chars[hidden]!)) {
    throw configError(
      `${variable} contains the joiner ${codePointOf(chars[hidden]!)} at position ${hidden + 1} where no host label keeps one (IDNA2008 allows it only ` +
        `after a virama or between joining letters, RFC 5892), so the URL parser refuses or drops it; remove it, e.g. https://bulwark.example.org`,
    );
  }
  if (hidden >= 0) {
    throw configError(
      `${variable} contains the character ${codePointOf(chars[hidden]!)} at position ${hidden + 1} (a control, space, formatting or invisible character), which the URL ` +
        `parser drops or rewrites, so the origin would not be the one written; give it as plain text on one line, e.g. https://bulwark.example.org`,
    );
  }
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    throw configError(`${variable} is not a valid URL, got ${shown}; expected e.g. https://bulwark.example.org`);
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw configError(`${variable} must start with https:// (or http:// for ${LOCAL_ONLY}), got "${url.protocol}"`);
  // Only the origin is used: reset links are built from it, never from the request's Host header (link poisoning).
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash || url.username || url.password) {
    throw configError(`${variable} must be an origin only (scheme, host, optional port), without path, query or credentials`);
  }
  if (isIP(url.hostname) === 0 && !url.hostname.startsWith("[")) {
    const problem = hostProblem(hostAsWritten(given), url.hostname);
    if (problem !== null) throw configError(`${variable}'s host ${problem}`);
  }
  if (url.port === "0") throw configError(`${variable} names port 0, on which no server is reached; give the port the site is reached at, or none (443 for https://)`);
  if (url.protocol === "http:" && !isLoopbackHost(url.hostname)) {
    throw configError(
      `${variable} must use https:// for a host other than this machine, got ${shown}: over http:// reset links would travel in clear text and HSTS ` +
        `would never be sent; use https://${url.host} (http:// is only for ${LOCAL_ONLY})`,
    );
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
  // As for the database URL: an "@" after the host is a password cut short by a "/", "#" or "?" it holds, its rest read
  // as the query or fragment, which the checks below quoted ("unknown parameter …"). Refused without showing the URL.
  if (passwordPastHost(url)) {
    throw configError(`BULWARK_SMTP_URL has an "@" after its host: a password holding "/", "#" or "?" must be percent-encoded (%2F, %23, %3F); the URL is not shown, as it holds part of the password`);
  }
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

/**
 * The threads argon2 runs on: UV_THREADPOOL_SIZE as libuv reads it (4 when unset or not a number from 1 to 1024;
 * the CLI sets it from the CPU count before anything runs).
 */
function hashThreads(env: NodeJS.ProcessEnv): number {
  const n = Number(env["UV_THREADPOOL_SIZE"]);
  return Number.isInteger(n) && n >= 1 && n <= 1024 ? n : 4;
}

/**
 * The value of a whole-number variable written as plain decimal digits, or null. `Number()` alone took `0x48`, `1e2`,
 * `0b11` and `12.0`: a typo or a copied hex value became a limit nobody meant, without a word.
 *
 * @example
 * parseWholeNumber("120"); // 120
 * parseWholeNumber("1e2"); // null
 */
export function parseWholeNumber(raw: string): number | null {
  const text = raw.trim();
  return /^\d{1,15}$/.test(text) ? Number(text) : null;
}

/** Reads the HTTP account configuration. */
export function loadHTTPAuthConfig(env: NodeJS.ProcessEnv, port: number): HTTPAuthConfig {
  /** A whole number from `min` to `max` (in `unit`, named in the error), `fallback` when unset. */
  const wholeNumber = (name: string, fallback: number, min: number, max: number, unit?: string): number => {
    const raw = env[name];
    if (raw === undefined || raw.trim() === "") return fallback;
    const n = parseWholeNumber(raw);
    if (n === null || n < min || n > max) throw configError(`${name} must be a whole number${unit ? ` of ${unit}` : ""} from ${min} to ${max}, got "${raw.trim().slice(0, 20)}"`);
    return n;
  };
  const minutes = (name: string, fallback: number, min: number, max: number): number => wholeNumber(name, fallback, min, max, "minutes") * 60_000;
  const trustedOrigins = (env["BULWARK_TRUSTED_ORIGINS"] ?? "").split(",").map((s) => s.trim()).filter(Boolean).map((o) => parseOrigin("BULWARK_TRUSTED_ORIGINS", o));
  const publicURL = env["BULWARK_PUBLIC_URL"]?.trim() ? parseOrigin("BULWARK_PUBLIC_URL", env["BULWARK_PUBLIC_URL"]) : `http://localhost:${port}`;
  const session = {
    // NIST SP 800-63B §4.2.3 (AAL2): 30 minutes idle, 12 hours absolute.
    idleTimeoutMs: minutes("BULWARK_SESSION_IDLE_MINUTES", 30, 2, 24 * 60),
    absoluteTimeoutMs: minutes("BULWARK_SESSION_ABSOLUTE_MINUTES", 12 * 60, 5, 30 * 24 * 60),
  };
  if (session.idleTimeoutMs > session.absoluteTimeoutMs) throw configError("BULWARK_SESSION_IDLE_MINUTES cannot exceed BULWARK_SESSION_ABSOLUTE_MINUTES");
  return {
    publicURL,
    publicURLGiven: Boolean(env["BULWARK_PUBLIC_URL"]?.trim()),
    trustedOrigins,
    mail: parseMailConfig(env),
    registrationOpen: parseBoolean("BULWARK_REGISTRATION", env["BULWARK_REGISTRATION"], false, "open", "closed"),
    requireMFA: parseMFAPolicy(env),
    session,
    reauthWindowMs: minutes("BULWARK_REAUTH_MINUTES", 10, 1, 120),
    trustProxy: parseTrustProxy(env["BULWARK_TRUST_PROXY"]),
    mailRequestsPerHour: wholeNumber("BULWARK_MAIL_REQUESTS_PER_HOUR", 20, 1, 100_000),
    passwordChecksInFlight: wholeNumber("BULWARK_PASSWORD_CHECKS_IN_FLIGHT", 8 * hashThreads(env), 1, 100_000),
  };
}
