// The contract between the authentication layer (which decides who is calling) and the routes (which decide
// what the caller may do). The authentication hook sets `request.auth` on every request before any route
// handler runs; routes declare what they need in their `config.access`, and a guard enforces it.
import type { Permission } from "../accounts/roles/index.ts";

/** Who made a request, as established by a session cookie or an API token; null when anonymous. */
export interface RequestAuth {
  userId: string;
  /** How the caller authenticated: a browser session (cookie, CSRF applies) or an API token (no CSRF). */
  via: "session" | "token";
  /** The session's id when via = session. */
  sessionId: string | null;
  /** The token's id when via = token. */
  tokenId: string | null;
  /** When the token expires (null: never, or a session). A token it mints may not outlive it. */
  tokenExpiresAt: number | null;
  /** The token's scopes when via = token (a token can never exceed its user's permissions); null for sessions. */
  scopes: readonly string[] | null;
  /** Authenticator assurance of the session: 1 password, 2 multi-factor. Tokens count as 1. */
  aal: 1 | 2;
  /** via = token: whether the token's owner held a second factor when it was verified (tokens.verify's ownerHasMFA). */
  ownerHasMFA?: boolean;
}

/**
 * What a route needs. Every route under /api/v1 declares one; a test walks every route and fails on a
 * route without it.
 * - `public`: anyone (login, reset request, health).
 * - `authenticated`: any signed-in user, acting on their own account (their sessions, their tokens).
 * - a permission: the caller's roles (and, for a token, its scopes) must allow it.
 */
export type RouteAccess = "public" | "authenticated" | Permission;

declare module "fastify" {
  interface FastifyRequest {
    auth: RequestAuth | null;
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}
