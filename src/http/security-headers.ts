// Security headers on every response (ASVS 3.4): no inline script, no framing, no sniffing, no referrer
// leaks; HSTS when the service is published over https (BULWARK_PUBLIC_URL: Bulwark itself listens on plain
// HTTP behind the TLS proxy, so the request it sees is never https) or the request arrived over TLS.
import type { FastifyReply, FastifyRequest } from "fastify";

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** The headers every answer carries (HSTS apart: see applySecurityHeaders). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
});

export const HSTS = "max-age=31536000; includeSubDomains";

export function applySecurityHeaders(request: FastifyRequest, reply: FastifyReply, publishedOverHTTPS: boolean = false): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) reply.header(name, value);
  if (publishedOverHTTPS || request.protocol === "https") reply.header("strict-transport-security", HSTS);
}
