// How a request's body is to be read, said once and plainly, or the request is refused before any route reads it. A
// proxy, a log or a firewall in front of Bulwark must read the same bytes the route acts on: the reason a JSON key or a
// form field given twice is refused (docs/http-auth.md, "Request bodies"). Node applies no content or transfer coding
// but chunked, and keeps the first of two Content-Type lines without a word, so three shapes read otherwise here than
// in front (test/request-shapes-red-team.test.ts).
import type { IncomingMessage } from "node:http";

/** Why a request's framing is refused: its status, error code and message, and any header the answer adds. */
export interface FramingRefusal {
  status: 400 | 415 | 501;
  code: string;
  message: string;
  headers?: Record<string, string>;
}

/** True when every coding listed in a Content-Encoding value is `identity` (none applied). */
function identityOnly(value: string): boolean {
  for (const coding of value.split(",")) if (coding.trim().toLowerCase() !== "identity") return false;
  return true;
}

/** How many lines of `name` (lower case) the request head carried. */
function linesOf(raw: IncomingMessage, name: string): number {
  const headers = raw.rawHeaders;
  let n = 0;
  for (let i = 0; i < headers.length; i += 2) {
    const field = headers[i] as string;
    if (field.length === name.length && field.toLowerCase() === name) n++;
  }
  return n;
}

/**
 * The refusal for a request whose body is declared in a coding Bulwark does not decode — any Content-Encoding but
 * `identity` (415, RFC 9110 §15.5.16, with `Accept-Encoding: identity`), any Transfer-Encoding but `chunked` alone
 * (501, RFC 9112 §6.1) — or whose media type is given on two Content-Type lines (400, RFC 9110 §8.3: a single field),
 * or whose host on two Host lines (400, RFC 9112 §3.2); null for every other request. Reads headers only: runs in the first hook, before the body is read.
 *
 * @example
 * const refused = framingRefusal(request.raw);
 * if (refused) return reply.status(refused.status).send({ error: { code: refused.code, message: refused.message } });
 */
export function framingRefusal(raw: IncomingMessage): FramingRefusal | null {
  const headers = raw.headers;
  const contentEncoding = headers["content-encoding"];
  if (contentEncoding !== undefined && !identityOnly(contentEncoding)) {
    return {
      status: 415, code: "BULWARK_ERR_CONTENT_ENCODING", headers: { "accept-encoding": "identity" },
      message: `request bodies are read as sent: Content-Encoding ${JSON.stringify(contentEncoding.slice(0, 64))} is not accepted; send the body uncompressed`,
    };
  }
  const transferEncoding = headers["transfer-encoding"];
  if (transferEncoding !== undefined && transferEncoding.trim().toLowerCase() !== "chunked") {
    return {
      status: 501, code: "BULWARK_ERR_TRANSFER_ENCODING",
      message: `Transfer-Encoding ${JSON.stringify(transferEncoding.slice(0, 64))} is not implemented; send the body as it is, with Content-Length or chunked alone`,
    };
  }
  if (headers["content-type"] !== undefined && linesOf(raw, "content-type") > 1) {
    return { status: 400, code: "BULWARK_ERR_DUPLICATE_HEADER", message: "Content-Type is given on more than one line; give the body's media type once" };
  }
  // RFC 9112 §3.2: a request with more than one Host line is answered 400. Node keeps the first; a proxy or a log in
  // front that keeps the last names another host than the one this request is judged by (the CSRF wall's Host).
  if (linesOf(raw, "host") > 1) {
    return { status: 400, code: "BULWARK_ERR_DUPLICATE_HEADER", message: "Host is given on more than one line; name the request's host once" };
  }
  return null;
}
