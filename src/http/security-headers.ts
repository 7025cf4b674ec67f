// Security headers on every response (ASVS 3.4): no inline script, no framing, no sniffing, no referrer
// leaks; HSTS when the service is published over https (BULWARK_PUBLIC_URL: Bulwark itself listens on plain
// HTTP behind the TLS proxy, so the request it sees is never https) or the request arrived over TLS.
import type { FastifyReply, FastifyRequest } from "fastify";

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export function applySecurityHeaders(request: FastifyRequest, reply: FastifyReply, publishedOverHTTPS: boolean = false): void {
  reply.header("content-security-policy", CONTENT_SECURITY_POLICY);
  reply.header("x-content-type-options", "nosniff");
  reply.header("referrer-policy", "no-referrer");
  reply.header("x-frame-options", "DENY");
  reply.header("cross-origin-opener-policy", "same-origin");
  reply.header("cross-origin-resource-policy", "same-origin");
  reply.header("permissions-policy", "camera=(), microphone=(), geolocation=(), payment=()");
  if (publishedOverHTTPS || request.protocol === "https") reply.header("strict-transport-security", "max-age=31536000; includeSubDomains");
}
