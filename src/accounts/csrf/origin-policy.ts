// Cross-site request policy from Origin and Sec-Fetch-Site: unsafe requests that a browser marks as coming
// from another site are refused before any token is looked at — a second wall besides the CSRF token.
// Fail closed: a cookie-authenticated unsafe request carrying neither header is refused.

export interface CrossSiteRequest {
  /** The request method as received (HTTP methods are case-sensitive). */
  method: string;
  origin?: string | null | undefined;
  secFetchSite?: string | null | undefined;
  /** The Host header (host[:port]) the request was sent to. */
  host?: string | null | undefined;
  /** Other origins trusted to make unsafe requests, exactly as browsers send them: "https://console.example.org". */
  allowedOrigins?: readonly string[];
  /** The scheme the service is reached over (behind a TLS-terminating proxy this is still "https"). */
  scheme?: "https" | "http";
  /** False for requests authenticated otherwise (API token): nothing ambient for an attacker to ride on. */
  cookieAuthenticated?: boolean;
}

export type CrossSiteReason =
  | "safe-method"
  | "same-origin"
  | "user-initiated"
  | "allowed-origin"
  | "no-cookie"
  | "cross-site"
  | "same-site-other-origin"
  | "origin-mismatch"
  | "opaque-origin"
  | "unknown-fetch-site"
  | "no-origin-headers";

export type CrossSiteVerdict = { allow: true; reason: CrossSiteReason } | { allow: false; reason: CrossSiteReason };

/** RFC 9110 §9.2.1 safe methods. Anything else — including unknown or lower-case spellings — is unsafe. */
const SAFE_METHODS: ReadonlySet<string> = new Set(["GET", "HEAD", "OPTIONS"]);
/** A Host header is a name or bracketed IPv6 address and an optional port; nothing URL-ish ('@', '/'). */
const HOST_PATTERN = /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/;

function normaliseOrigin(value: string): string | null {
  if (value === "null") return null;
  try {
    const url = new URL(value);
    if (url.protocol !== "https:" && url.protocol !== "http:") return null;
    return url.origin.toLowerCase();
  } catch {
    return null;
  }
}

function originVerdict(origin: string, request: CrossSiteRequest): CrossSiteVerdict {
  const normalised = normaliseOrigin(origin);
  // "null" comes from sandboxed frames, data: URLs and some redirects: never trusted.
  if (normalised === null) return { allow: false, reason: "opaque-origin" };
  const host = request.host?.trim().toLowerCase();
  if (host && HOST_PATTERN.test(host) && normalised === normaliseOrigin(`${request.scheme ?? "https"}://${host}`)) return { allow: true, reason: "same-origin" };
  const allowed = (request.allowedOrigins ?? []).map((o) => normaliseOrigin(o)).filter((o): o is string => o !== null);
  if (allowed.includes(normalised)) return { allow: true, reason: "allowed-origin" };
  return { allow: false, reason: "origin-mismatch" };
}

/**
 * Decides whether a request may proceed as far as its site of origin goes.
 *
 * @example
 * const verdict = crossSiteVerdict({ method: "POST", origin: req.headers.origin, secFetchSite: req.headers["sec-fetch-site"], host: req.headers.host });
 * if (!verdict.allow) throw csrfErrors.refused(verdict.reason);
 */
export function crossSiteVerdict(request: CrossSiteRequest): CrossSiteVerdict {
  if (SAFE_METHODS.has(request.method)) return { allow: true, reason: "safe-method" };
  const site = request.secFetchSite?.trim().toLowerCase() || null;
  const origin = request.origin?.trim() || null;
  if (site !== null) {
    switch (site) {
      case "same-origin":
        // Browsers send a matching Origin with it; a contradicting one is refused rather than guessed at.
        return origin === null ? { allow: true, reason: "same-origin" } : originVerdict(origin, request);
      case "none":
        // A navigation the user started (address bar, bookmark): no other site is involved.
        return origin === null ? { allow: true, reason: "user-initiated" } : originVerdict(origin, request);
      case "same-site":
      case "cross-site": {
        // same-site is not same-origin: a sibling subdomain may belong to someone else.
        if (origin !== null) {
          const verdict = originVerdict(origin, request);
          if (verdict.allow && verdict.reason === "allowed-origin") return verdict;
        }
        return { allow: false, reason: site === "cross-site" ? "cross-site" : "same-site-other-origin" };
      }
      default:
        return { allow: false, reason: "unknown-fetch-site" };
    }
  }
  if (origin !== null) return originVerdict(origin, request);
  // Neither header: an old browser or a non-browser client. Only safe when no cookie authenticates it.
  if (request.cookieAuthenticated === false) return { allow: true, reason: "no-cookie" };
  return { allow: false, reason: "no-origin-headers" };
}
