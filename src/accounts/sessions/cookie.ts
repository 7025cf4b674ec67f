// The session cookie: `__Host-bulwark-session`, Secure, HttpOnly, SameSite=Lax, Path=/, no Domain — the
// __Host- prefix makes browsers refuse it unless set that way, so a sibling subdomain cannot plant one.
import { sessionErrors } from "./errors.ts";

export const SESSION_COOKIE = "__Host-bulwark-session";

/** RFC 6265 cookie-octets we ever emit: our tokens are base32/base64url and a dot. No ';', no CR/LF. */
const SAFE_VALUE = /^[A-Za-z0-9._-]{1,200}$/;
/** Parsing stops after this many pairs: a hostile header cannot make us build a huge map. */
const MAX_PAIRS = 200;
const ATTRIBUTES = "Path=/; Secure; HttpOnly; SameSite=Lax";

export interface SessionCookieOptions {
  /**
   * Lifetime in seconds. Omitted: a browser-session cookie (gone when the browser closes); the server's
   * idle and absolute limits apply either way.
   */
  maxAgeSeconds?: number;
}

/**
 * The Set-Cookie value that installs a session token.
 *
 * @example
 * reply.header("set-cookie", sessionCookie(token)); // "__Host-bulwark-session=ses_….…; Path=/; Secure; HttpOnly; SameSite=Lax"
 */
export function sessionCookie(token: string, options: SessionCookieOptions = {}): string {
  // Refusing anything else prevents header injection through a crafted value.
  if (!SAFE_VALUE.test(token)) throw sessionErrors.badCookieValue();
  const maxAge = options.maxAgeSeconds;
  if (maxAge !== undefined && !(Number.isInteger(maxAge) && maxAge > 0)) throw sessionErrors.badPolicy("cookie max age must be a positive whole number of seconds");
  return `${SESSION_COOKIE}=${token}; ${ATTRIBUTES}${maxAge === undefined ? "" : `; Max-Age=${maxAge}`}`;
}

/**
 * The Set-Cookie value that removes the session cookie (logout, refused session). It repeats the same
 * attributes, which a __Host- cookie needs for the browser to accept the overwrite.
 *
 * @example
 * reply.header("set-cookie", clearSessionCookie());
 */
export function clearSessionCookie(): string {
  return `${SESSION_COOKIE}=; ${ATTRIBUTES}; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT`;
}

/**
 * `text` without the spaces and tabs around it: the only whitespace RFC 6265 lets a Cookie header put around a name or
 * a value. `String.prototype.trim` also strips the no-break space (byte 0xA0, which Node reads as U+00A0) and other
 * Unicode spaces, so a cookie a sibling subdomain set as "\u00a0__Host-bulwark-session" — no prefix for the browser,
 * so no prefix rules — was read as the session cookie: it swapped the victim into the attacker's session, or made the
 * real one ambiguous and cleared it (test/cookie-jar-red-team.test.ts).
 */
function withoutOWS(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text[start] === " " || text[start] === "\t")) start++;
  while (end > start && (text[end - 1] === " " || text[end - 1] === "\t")) end--;
  return text.slice(start, end);
}

/**
 * Parses a Cookie request header into name → values, tolerating junk: pairs without '=', empty names,
 * stray spaces and quotes are skipped or trimmed (spaces and tabs only: withoutOWS), never an exception. Values are
 * not percent-decoded.
 *
 * @example
 * parseCookieHeader("a=1; b=\"2\"; junk") // Map { "a" => ["1"], "b" => ["2"] }
 */
export function parseCookieHeader(header: string | undefined | null): Map<string, string[]> {
  const cookies = new Map<string, string[]>();
  if (typeof header !== "string" || header.length === 0) return cookies;
  let start = 0;
  let pairs = 0;
  while (start <= header.length && pairs < MAX_PAIRS) {
    let end = header.indexOf(";", start);
    if (end < 0) end = header.length;
    const part = header.slice(start, end);
    start = end + 1;
    pairs++;
    const eq = part.indexOf("=");
    if (eq < 0) continue;
    const name = withoutOWS(part.slice(0, eq));
    if (name.length === 0) continue;
    let value = withoutOWS(part.slice(eq + 1));
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    const list = cookies.get(name);
    if (list) list.push(value);
    else cookies.set(name, [value]);
  }
  return cookies;
}

/**
 * The session token from a Cookie header, or null. Two different values for our cookie are refused as
 * ambiguous: a __Host- cookie exists once per origin, so a second one means someone planted it.
 *
 * @example
 * readSessionCookie(request.headers.cookie) // "ses_….…" or null
 */
export function readSessionCookie(header: string | undefined | null): string | null {
  const values = parseCookieHeader(header).get(SESSION_COOKIE);
  if (!values || values.length === 0) return null;
  const first = values[0] ?? "";
  if (values.some((v) => v !== first)) return null;
  return SAFE_VALUE.test(first) ? first : null;
}
