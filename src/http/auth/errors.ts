// Errors the HTTP account surface throws, each with a stable code (statuses come from their kind).
import { BulwarkError } from "../../lib/errors.ts";

export class HTTPAuthError extends BulwarkError {}

export const httpAuthErrors = {
  signInRequired: (): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_AUTH_REQUIRED", "unauthorized", "sign in first: this needs a session or an API token"),
  sessionRequired: (): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_SESSION_REQUIRED", "unauthorized", "this needs a browser session (sign in at POST /auth/login)"),
  tokenInvalid: (): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_TOKEN_INVALID", "unauthorized", "the API token is invalid, expired or revoked"),
  forbidden: (permission: string): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_FORBIDDEN", "forbidden", `this needs the permission "${permission}"`),
  gated: (gate: string): HTTPAuthError => {
    const what: Record<string, string> = {
      "mfa-verify": "complete sign-in with your second factor first (POST /auth/mfa/verify)",
      "mfa-enrol": "multi-factor authentication is required for your account: enrol a factor first (POST /auth/mfa/totp or /auth/mfa/webauthn/register/options)",
      "password-change": "your password must be changed first (POST /auth/password/change)",
    };
    const codes: Record<string, string> = { "mfa-verify": "BULWARK_ERR_MFA_REQUIRED", "mfa-enrol": "BULWARK_ERR_MFA_ENROLMENT_REQUIRED", "password-change": "BULWARK_ERR_PASSWORD_CHANGE_REQUIRED" };
    return new HTTPAuthError(codes[gate] ?? "BULWARK_ERR_FORBIDDEN", "forbidden", what[gate] ?? "not allowed yet");
  },
  registrationClosed: (): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_REGISTRATION_CLOSED", "forbidden", "self-registration is turned off on this server"),
  reauthRequired: (): HTTPAuthError =>
    new HTTPAuthError("BULWARK_ERR_REAUTH_REQUIRED", "forbidden", "confirm it is you first: POST /auth/reauthenticate with your password (and a second factor if you use one)"),
  reauthFailed: (): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_REAUTH_FAILED", "unauthorized", "the password or the second factor is wrong"),
  passwordInvalidated: (): HTTPAuthError =>
    new HTTPAuthError("BULWARK_ERR_PASSWORD_INVALIDATED", "unauthorized", "this account's password was invalidated and proves nothing any more: set a new one through the link in the reset email (or ask for one at POST /auth/password/reset/request)"),
  wrongPassword: (): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_PASSWORD_WRONG", "unauthorized", "the current password is wrong"),
  throttled: (): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_THROTTLED", "forbidden", "too many attempts; wait and try again"),
  mfaInvalid: (): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_MFA_INVALID", "unauthorized", "the code or security key response is not valid"),
  mfaAlreadyVerified: (): HTTPAuthError =>
    new HTTPAuthError("BULWARK_ERR_MFA_ALREADY_VERIFIED", "conflict", "this session has already passed its second factor; to confirm a sensitive change, use /auth/reauthenticate"),
  mfaNotEnrolled: (): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_MFA_NOT_ENROLLED", "conflict", "no second factor is enrolled for this account"),
  recoveryCodesNeedFactor: (): HTTPAuthError =>
    new HTTPAuthError("BULWARK_ERR_MFA_NOT_ENROLLED", "conflict", "recovery codes stand in for an authenticator app or a security key: enrol one first (POST /auth/mfa/totp or /auth/mfa/webauthn/register/options)"),
  lastRequiredFactor: (): HTTPAuthError =>
    new HTTPAuthError("BULWARK_ERR_MFA_LAST_FACTOR", "conflict", "this is the account's last second factor and its role requires one: enrol another (an authenticator app or a security key) before removing this one"),
  notFound: (what: string): HTTPAuthError => new HTTPAuthError("BULWARK_ERR_NOT_FOUND", "not-found", `${what} not found`),
};
