// `next` / `destination` parameters: only same-origin paths are accepted (Drupal's drupal_goto lesson,
// ASVS 3.7.2 / 15.x open redirect). Anything else becomes the fallback, never an error page an attacker can use.

/**
 * Returns `value` when it is a path on this origin, otherwise `fallback`. Refused: absolute URLs
 * (`https://evil`), scheme-relative (`//evil`), backslash tricks (`/\evil`, which browsers treat as `//`),
 * control characters and whitespace (`/\tevil` is `//evil` after browsers strip tabs), and over-long values.
 *
 * @example
 * safeNext("/account?tab=2")  // "/account?tab=2"
 * safeNext("//evil.example")  // "/"
 */
export function safeNext(value: unknown, fallback: string = "/"): string {
  if (typeof value !== "string" || value.length === 0 || value.length > 2048 || offSite(value)) return fallback;
  // Final proof: resolved against a dummy origin, it must stay on that origin — and what resolution made of
  // it must pass the same checks, since dot segments collapse (`/..//evil`, `/%2e//evil` become `//evil`).
  try {
    const base = "https://bulwark.invalid";
    const url = new URL(value, base);
    if (url.origin !== base) return fallback;
    const path = url.pathname + url.search + url.hash;
    return offSite(path) ? fallback : path;
  } catch {
    return fallback;
  }
}

/** True for anything that is not plainly a path on this origin (see safeNext). */
function offSite(value: string): boolean {
  if (!value.startsWith("/") || value.startsWith("//")) return true;
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0020\u007f\\]/.test(value)) return true;
  // Percent-encoded slashes and backslashes can be decoded by a later hop into the forms refused above.
  return /%(2f|5c)/i.test(value.slice(0, 4));
}
