// Errors of the sessions module, each with a stable code. An invalid session presented by a client is an
// expected outcome (a value from validate); these errors are for the HTTP layer to throw and for misuse.
import { BulwarkError, InputError, type BulwarkErrorOptions } from "../../lib/errors.ts";

/** Why a presented session token was refused (validate's reason). */
export type SessionRefusal =
  | "malformed"
  | "unknown"
  /** Replaced by a rotation (login, step-up, re-authentication) in the last REPLACED_GRACE_MS: a request that raced it. */
  | "replaced"
  | "bad-secret"
  | "idle-expired"
  | "absolute-expired"
  /**
   * Dated further ahead than two serving nodes' clocks may differ (policy.datedAheadToleranceMs): written by a node whose clock ran
   * fast, or before this host's clock was stepped back. Its expiry and last-seen dates would keep it alive that long.
   */
  | "future-dated"
  | "revoked"
  | "account-disabled"
  | "account-locked";

export class SessionError extends BulwarkError {}

const REFUSAL_CODES: Record<SessionRefusal, string> = {
  malformed: "BULWARK_ERR_SESSION_INVALID",
  unknown: "BULWARK_ERR_SESSION_INVALID",
  replaced: "BULWARK_ERR_SESSION_REPLACED",
  "bad-secret": "BULWARK_ERR_SESSION_INVALID",
  "idle-expired": "BULWARK_ERR_SESSION_EXPIRED",
  "absolute-expired": "BULWARK_ERR_SESSION_EXPIRED",
  "future-dated": "BULWARK_ERR_SESSION_EXPIRED",
  revoked: "BULWARK_ERR_SESSION_REVOKED",
  "account-disabled": "BULWARK_ERR_SESSION_REVOKED",
  "account-locked": "BULWARK_ERR_SESSION_REVOKED",
};

const REFUSAL_MESSAGES: Record<string, string> = {
  BULWARK_ERR_SESSION_EXPIRED: "session expired, log in again",
  // Only the holder of the replaced session's own secret gets this (a guessed secret is "unknown"): a request that
  // raced a rotation, such as a double submit. The page reads its new session rather than showing "signed out". The
  // other request may also have come from a copy of the cookie elsewhere (a stolen one), so the message says both.
  BULWARK_ERR_SESSION_REPLACED:
    "this session was replaced a moment ago by another request (a sign-in, a second-factor step or a re-authentication); if this browser made it, it holds the new session cookie: read GET /auth/session and retry if still needed; if not, sign in again, change your password and end your other sessions",
};

export const sessionErrors = {
  /**
   * The 401 the HTTP layer throws for a refused session. Unknown and bad-secret share one code and
   * message so a client cannot tell a guessed id from a guessed secret; "replaced" has its own (see REFUSAL_MESSAGES).
   */
  refused: (reason: SessionRefusal): SessionError => new SessionError(REFUSAL_CODES[reason], "unauthorized", REFUSAL_MESSAGES[REFUSAL_CODES[reason]] ?? "no valid session, log in again"),
  userRequired: (): InputError =>
    new InputError("BULWARK_ERR_SESSION_USER_REQUIRED", "rotating a pre-login session needs the id of the user who logged in"),
  badPolicy: (what: string): InputError => new InputError("BULWARK_ERR_SESSION_POLICY", `session policy: ${what}`),
  futureStamp: (before: number, now: number): InputError =>
    new InputError("BULWARK_ERR_REVOCATION_FUTURE", `revocation time ${new Date(before).toISOString()} is in the future (now ${new Date(now).toISOString()}); a future stamp would refuse every new login until then`),
  badCookieValue: (): InputError => new InputError("BULWARK_ERR_COOKIE_VALUE", "a session cookie value may hold only letters, digits, '.', '_' and '-'"),
  /**
   * The password a login verified was changed (or invalidated) before its session could be stored: a reset or
   * change committed while the verify ran. No session; the HTTP layer answers like a wrong password.
   */
  passwordChanged: (): SessionError =>
    new SessionError("BULWARK_ERR_SESSION_PASSWORD_CHANGED", "unauthorized", "the password was changed while this login was being checked; log in again"),
  wrap: (message: string, options: BulwarkErrorOptions): SessionError => new SessionError("BULWARK_ERR_SESSION_STORE", "runtime", message, options),
};
