// Breached-password lookup through the k-anonymity range protocol (Pwned Passwords API format):
// only the first 5 hex digits of the password's SHA-1 leave the process (ASVS 6.2.12).
import { PasswordPolicyConfigError } from "./errors.ts";
import { sha1Hex } from "./normalize.ts";
import { findSuffixCount } from "./range-response.ts";
import type { BreachChecker, BreachVerdict } from "./types.ts";

export interface RangeBreachCheckerOptions {
  /** Base URL of the range API, e.g. the Pwned Passwords API or a self-hosted mirror. */
  baseUrl: string;
  /** Injected fetch (tests, proxies). Default: the global fetch. */
  fetch?: typeof fetch;
  /** Time for the whole lookup, body included. Default 3000 ms; between 1 and 60,000. */
  timeoutMs?: number;
  /** Ask the server to pad the response (`Add-Padding: true`) so its size does not hint at the prefix. Default true. */
  padding?: boolean;
  /** What a failed lookup means: "closed" refuses the password (default), "open" accepts it. */
  onFailure?: "open" | "closed";
  /** Largest response body read. Default 1 MiB (a padded response is ~40 KB). */
  maxResponseBytes?: number;
  /** User-Agent header; the Pwned Passwords API refuses requests without one. */
  userAgent?: string;
}

export interface RangeBreachChecker extends BreachChecker {
  /** The URL requested for a given password's hash prefix (for logs and tests). */
  rangeUrl(prefix: string): string;
}

const LOOPBACK = /^(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])$/i;

/**
 * Creates a checker that sends `GET {baseUrl}/range/{first 5 hex digits of SHA-1, upper case}` and
 * looks for the other 35 digits in the answer. The full hash and the password never leave the
 * process. Network errors, timeouts, non-200 answers, oversized or malformed bodies are
 * "unavailable"; `onFailure` decides whether the policy then refuses or accepts the password.
 *
 * @example
 * const range = createRangeBreachChecker({ baseUrl: "https://api.pwnedpasswords.com", onFailure: "closed" });
 * await range.check("password"); // { status: "breached", count: ... }
 */
export function createRangeBreachChecker(options: RangeBreachCheckerOptions): RangeBreachChecker {
  const base = parseRangeBaseUrl(options.baseUrl);
  const timeoutMs = boundedInteger("timeoutMs", options.timeoutMs ?? 3000, 1, 60_000);
  const maxBytes = boundedInteger("maxResponseBytes", options.maxResponseBytes ?? 1024 * 1024, 1024, 64 * 1024 * 1024);
  if (options.onFailure !== undefined && options.onFailure !== "open" && options.onFailure !== "closed") {
    throw new PasswordPolicyConfigError(`onFailure must be "open" or "closed", got ${JSON.stringify(options.onFailure)}`);
  }
  // Fail-closed by default: an outage must not silently let breached passwords through.
  const failClosed = (options.onFailure ?? "closed") === "closed";
  const doFetch = options.fetch ?? globalThis.fetch;
  const headers: Record<string, string> = { "user-agent": options.userAgent ?? "bulwark-password-policy" };
  if (options.padding ?? true) headers["add-padding"] = "true";
  const rangeUrl = (prefix: string): string => `${base}/range/${prefix}`;

  async function lookup(prefix: string, suffix: string, signal: AbortSignal): Promise<BreachVerdict> {
    const response = await doFetch(rangeUrl(prefix), { method: "GET", headers, signal, redirect: "error" });
    if (response.status !== 200) {
      await response.body?.cancel().catch(() => undefined);
      return unavailable(`range API answered HTTP ${response.status}`);
    }
    const body = await readBounded(response, maxBytes);
    if (body === undefined) return unavailable(`range API response is larger than ${maxBytes} bytes`);
    const found = findSuffixCount(body, suffix);
    if (!found.ok) return unavailable(`range API ${found.reason}`);
    return found.count > 0 ? { status: "breached", count: found.count } : { status: "clean" };
  }

  function unavailable(reason: string): BreachVerdict {
    return { status: "unavailable", reason, failClosed };
  }

  return {
    name: "range",
    rangeUrl,
    async check(password: string): Promise<BreachVerdict> {
      const hash = sha1Hex(password);
      const controller = new AbortController();
      let timer: NodeJS.Timeout | undefined;
      // Raced against the lookup so even an injected fetch that ignores the signal cannot hold a
      // registration for longer than timeoutMs.
      const timeout = new Promise<BreachVerdict>((resolve) => {
        timer = setTimeout(() => {
          controller.abort();
          resolve(unavailable(`range API did not answer within ${timeoutMs} ms`));
        }, timeoutMs);
      });
      // Errors become verdicts here, so a lookup that loses the race cannot reject unobserved.
      const work = lookup(hash.slice(0, 5), hash.slice(5), controller.signal).catch((error: unknown) =>
        controller.signal.aborted
          ? unavailable(`range API did not answer within ${timeoutMs} ms`)
          : unavailable(`range API request failed: ${describeError(error)}`),
      );
      try {
        return await Promise.race([work, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  } satisfies RangeBreachChecker;
}

async function readBounded(response: Response, maxBytes: number): Promise<string | undefined> {
  const declared = Number(response.headers.get("content-length") ?? "0");
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => undefined);
    return undefined;
  }
  if (response.body === null) return "";
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    // Counted as it streams: a server that lies about (or omits) Content-Length still cannot make
    // us buffer more than maxBytes.
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}

/**
 * The range API's base URL, checked (https, or plain http to loopback; no credentials, query or fragment) and
 * without trailing slashes. Throws PasswordPolicyConfigError naming what is wrong.
 *
 * @example
 * parseRangeBaseUrl("https://api.pwnedpasswords.com/") // "https://api.pwnedpasswords.com"
 */
export function parseRangeBaseUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch (cause) {
    throw new PasswordPolicyConfigError(`baseUrl is not a valid URL: ${JSON.stringify(value)}`, { cause });
  }
  // Plain http only to this machine: on a network, an observer could tamper with answers and turn
  // every lookup into "clean"; https keeps the k-anonymity answer authentic.
  if (url.protocol !== "https:" && !(url.protocol === "http:" && LOOPBACK.test(url.hostname))) {
    throw new PasswordPolicyConfigError(`baseUrl must use https (plain http is allowed for loopback only), got ${url.protocol}//${url.host}`);
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    throw new PasswordPolicyConfigError("baseUrl must not contain credentials, a query or a fragment");
  }
  return url.href.replace(/\/+$/, "");
}

function boundedInteger(name: string, value: number, min: number, max: number): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new PasswordPolicyConfigError(`${name} must be an integer between ${min} and ${max}, got ${String(value)}`);
  }
  return value;
}

function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return `${error.message}${cause}`;
  }
  return String(error);
}
