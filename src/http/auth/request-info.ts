// What the HTTP layer tells the account core about a request: the client IP (as Fastify resolved it,
// honouring trustProxy only when configured) and a bounded User-Agent.
import type { FastifyRequest } from "fastify";
import { withoutPort } from "../../accounts/flood/index.ts";

/**
 * The client's IP address; Fastify applies the trustProxy setting, so a client cannot spoof it by default. A
 * trusted proxy's "a.b.c.d:port" or "[v6]:port" hop (Azure, IIS ARR) is the bare address, so that flood control,
 * the audit, a token's last-used address and notices see one client, not one per source port.
 */
export function clientIP(request: FastifyRequest): string | null {
  return typeof request.ip === "string" && request.ip.length > 0 ? withoutPort(request.ip).slice(0, 64) : null;
}

/** The User-Agent, cut to 512 characters (it is untrusted and only displayed). */
export function userAgent(request: FastifyRequest): string | null {
  const ua = request.headers["user-agent"];
  return typeof ua === "string" ? ua.slice(0, 512) : null;
}

/** The route a request matched, as audit events name it: its method and route pattern ("POST /api/v1/users/:id/lock"), never the URL with its values. */
export function routeOf(request: FastifyRequest): string {
  return `${request.method} ${request.routeOptions.url ?? ""}`;
}
