// Per-request authentication state beyond the shared contract (../auth-context.ts): the session behind a
// cookie (its secret keys the CSRF token) and the "gate" a half-finished login is held at.
import type { Session } from "../../accounts/sessions/index.ts";

/**
 * Where a signed-in browser session stands:
 * - `open`: fully signed in;
 * - `mfa-verify`: password given, the user has MFA, the second factor is still due;
 * - `mfa-enrol`: the user has no second factor and the MFA policy (BULWARK_REQUIRE_MFA: every account, or
 *   those holding an administrative permission) requires one, so they must enrol first;
 * - `password-change`: the password must be changed before anything else.
 */
export type Gate = "open" | "mfa-verify" | "mfa-enrol" | "password-change";

/** The gates other than `open`, which a route lists when it stays reachable there. */
export type PendingGate = Exclude<Gate, "open">;

export const ALL_PENDING: readonly PendingGate[] = ["mfa-verify", "mfa-enrol", "password-change"];

export interface CookieSession {
  /** The session's secret half: the CSRF key is derived from it. Never logged. */
  secret: string;
  /** The token as presented, for rotation. */
  token: string;
  session: Session;
  /** Computed on first use (it costs queries), then cached for the request. */
  gate: Gate | null;
}

declare module "fastify" {
  interface FastifyRequest {
    /** The browser session behind the cookie, when request.auth.via is "session"; null otherwise. */
    cookieSession: CookieSession | null;
    /**
     * True when the presented cookie's session was replaced by a rotation (login, step-up, re-authentication) a
     * moment ago: this request raced it, and the browser should hold the new cookie by now.
     */
    sessionReplaced: boolean;
  }
  interface FastifyContextConfig {
    /** Pending gates in which this route stays reachable (default: none, so only fully signed-in sessions). */
    allowPending?: readonly PendingGate[];
    /**
     * "pre-login": an anonymous unsafe route (login, reset, register) that still refuses cross-site browser
     * requests by Origin / Sec-Fetch-Site (login CSRF).
     */
    csrf?: "pre-login";
    /**
     * "required": a change that affects authentication (factors, recovery codes, other sessions), or a highly
     * sensitive administrative operation under /api/v1 (role changes, API token minting, containment undo). A
     * browser session older than the re-authentication window is refused until POST /auth/reauthenticate
     * (ASVS 7.5.1, 7.5.2, 7.5.3). API tokens are not affected: a token is its own credential.
     */
    reauth?: "required";
  }
}
