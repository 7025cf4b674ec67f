// `next` / `destination` parameters: only same-origin paths are accepted (Drupal's drupal_goto lesson,
// ASVS 3.7.2 / 15.x open redirect). Anything else becomes the fallback, never an error page an attacker can use.

const BASE = "https://bulwark.invalid";

/**
 * Returns `value` when it is a path on this origin, otherwise `fallback`. Refused: absolute URLs
 * (`https://evil`), scheme-relative (`//evil`), backslash tricks (`/\evil`, which browsers treat as `//`),
 * control characters and whitespace (`/\tevil` is `//evil` after browsers strip tabs), over-long values, and
 * anything that becomes one of these after one percent-decoding (`/%09/evil`, `/%2f/evil`) or that cannot be decoded.
 *
 * @example
 * safeNext("/account?tab=2")  // "/account?tab=2"
 * safeNext("//evil.example")  // "/"
 * safeNext("/%09/evil.example")  // "/"
 */
export function safeNext(value: unknown, fallback: string = "/"): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 2048 || offSite(value)) return fallback;
  // Final proof: resolved against a dummy origin, it must stay on that origin — and what resolution made of
  // it must pass the same checks, since dot segments collapse (`/..//evil`, `/%2e//evil` become `//evil`).
  const path = resolved(value);
  if (path === null || offSite(path)) return fallback;
  // A later hop (a proxy, a framework's redirect helper, the page that reads `next`) may percent-decode what we
  // return once: `/%09/evil` then becomes `/<TAB>/evil`, which browsers read as `//evil`. The decoded form must pass
  // the same checks of how it starts, and resolve on this origin too. Only how it starts: an escape further on
  // (`/search?q=a%20b`, `/a/b%2Fc`) is ordinary and stays. A value that does not decode is refused, not guessed at.
  let decoded: string;
  try {
    decoded = decodeURIComponent(path);
  } catch {
    return fallback;
  }
  if (leavesSite(decoded)) return fallback;
  const decodedPath = resolved(decoded);
  return decodedPath === null || leavesSite(decodedPath) ? fallback : path;
}

/** Path, query and fragment of `value` resolved against a dummy origin; null when it resolves elsewhere or not at all. */
function resolved(value: string): string | null {
  try {
    const url = new URL(value, BASE);
    return url.origin === BASE ? url.pathname + url.search + url.hash : null;
  } catch {
    return null;
  }
}

/** True for anything that is not plainly a path on this origin (see safeNext). */
function offSite(value: string): boolean {
  // eslint-disable-next-line no-control-regex
  return leavesSite(value) || /[\u0000-\u0020\u007f\\]/.test(value);
}

/**
 * True when how `value` starts can take it off this origin: not a path, or a slash, backslash, control character or
 * space right after the first slash (browsers strip tabs and newlines, so `/<TAB>/evil` is `//evil`).
 */
function leavesSite(value: string): boolean {
  // eslint-disable-next-line no-control-regex
  if (!value.startsWith("/") || /^\/[/\\\u0000-\u0020\u007f]/.test(value)) return true;
  // Percent-encoded slashes and backslashes can be decoded by a later hop into the forms refused above.
  return /%(2f|5c)/i.test(value.slice(0, 4));
}
