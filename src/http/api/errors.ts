// Errors of the /api/v1 layer, each with a stable code (never reused). The server's error handler maps their
// kind to a status: unauthorized 401, forbidden 403, input 400, not-found 404, conflict 409.
import { BulwarkError } from "../../lib/errors.ts";

export class APIError extends BulwarkError {}

export const apiErrors = {
  unauthenticated: (): APIError => new APIError("BULWARK_ERR_API_UNAUTHENTICATED", "unauthorized", "authentication required: send an API token (Authorization: Bearer bwk_…) or a session cookie with its CSRF token"),
  noAccessDeclared: (route: string): APIError =>
    // Fail closed: a route that forgot to say what it needs is refused to everyone, and the route walk test fails.
    new APIError("BULWARK_ERR_API_NO_ACCESS_DECLARED", "forbidden", `route ${route} declares no access rule; refused`),
  missingPermission: (permission: string): APIError => new APIError("BULWARK_ERR_API_FORBIDDEN", "forbidden", `this needs the "${permission}" permission, which your roles do not grant`),
  missingScope: (permission: string): APIError => new APIError("BULWARK_ERR_API_TOKEN_SCOPE", "forbidden", `this needs the "${permission}" permission, which this API token's scopes do not include`),
  gated: (gate: "mfa-verify" | "mfa-enrol" | "password-change"): APIError =>
    new APIError("BULWARK_ERR_API_SIGN_IN_INCOMPLETE", "forbidden", {
      "mfa-verify": "this session has not completed multi-factor authentication; finish it under /auth/mfa first",
      "mfa-enrol": "this server requires a second factor for your account (BULWARK_REQUIRE_MFA): enrol one under /auth/mfa before using the API with a session",
      "password-change": "you must change your password (POST /auth/password/change) before using the API",
    }[gate], { details: { gate } }),
  scopeTooWide: (scope: string): APIError =>
    new APIError("BULWARK_ERR_API_TOKEN_SCOPE_TOO_WIDE", "forbidden", `cannot grant scope "${scope}" to a token: you (or the token you are using) do not hold it`),
  outranked: (userId: string, permission: string): APIError =>
    new APIError("BULWARK_ERR_API_OUTRANKED", "forbidden", `user ${userId} holds "${permission}", which you do not; you cannot change that account`),
  outrankedJob: (jobId: string, permission: string, action: "cancel" | "undo" = "cancel"): APIError =>
    new APIError("BULWARK_ERR_API_OUTRANKED", "forbidden", `job ${jobId} was created by a caller holding "${permission}", which you do not; you cannot ${action} it`),
  badIdempotencyKey: (why: string): APIError => new APIError("BULWARK_ERR_API_IDEMPOTENCY_KEY", "input", `the Idempotency-Key header is not usable: ${why}`),
  idempotencyKeyReused: (key: string, jobId: string): APIError =>
    new APIError("BULWARK_ERR_API_IDEMPOTENCY_KEY_REUSED", "conflict", `Idempotency-Key "${key}" already created job ${jobId} for a different request; send a new key for a new request`),
  selfLock: (): APIError => new APIError("BULWARK_ERR_API_SELF_LOCK", "conflict", "you cannot lock your own account"),
  selfEmail: (): APIError =>
    new APIError("BULWARK_ERR_API_SELF_EMAIL", "conflict", "change your own address with POST /auth/email/change: its link proves the new mailbox is yours"),
  // 403, not 409 as the two above: nothing about the account's state stands in the way, the route is simply not the way
  // for one's own account; and a leaked token trying it is an attempt on the owner worth its api.refused record.
  selfSessions: (): APIError =>
    new APIError("BULWARK_ERR_API_SELF_SESSIONS", "forbidden", "end your own sessions with DELETE /auth/sessions (every other one) or DELETE /auth/sessions/:id, which ask you to sign in again first; POST /auth/logout ends this one"),
  selfPasswordChange: (): APIError =>
    new APIError("BULWARK_ERR_API_SELF_PASSWORD_CHANGE", "forbidden", "change your own password with POST /auth/password/change; another administrator or help desk can require it of you"),
  selfThrottles: (): APIError =>
    new APIError("BULWARK_ERR_API_SELF_THROTTLES", "forbidden", "you cannot clear your own account's throttles: another administrator or help desk lifts them, after checking who is asking"),
  // Fixed words, never the id asked for: an id is any 64 letters, digits, "_" and "-", so a link in a phishing mail to
  // /api/v1/users/Your_account_is_locked_Call_… had the genuine origin say the sentence to a signed-in administrator
  // (content spoofing, test/fixes-twentytwo-red-team.test.ts). The caller has the id it sent; the request id names the request.
  userNotFound: (_id: string): APIError => new APIError("BULWARK_ERR_API_USER_NOT_FOUND", "not-found", "no user with that id"),
  tokenNotFound: (_id: string): APIError => new APIError("BULWARK_ERR_API_TOKEN_NOT_FOUND", "not-found", "you have no API token with that id"),
  jobNotFound: (_id: string): APIError => new APIError("BULWARK_ERR_API_JOB_NOT_FOUND", "not-found", "no containment job with that id"),
  badCursor: (): APIError => new APIError("BULWARK_ERR_API_CURSOR", "input", "cursor is not one this server issued for this listing (tampered, truncated or from another query)"),
  /**
   * Names the undeclared fields as the caller spelled them only to an API token (`fields`, a script's author reading
   * its own mistake); to anyone else (`fields` null: a browser session, which a link in a phishing mail can lead to
   * `/api/v1/tokens?Your_account_is_locked._Call_…=1`) it lists the fields the route does accept: the genuine origin
   * never says the link's words (content spoofing, test/new-code-twentytwo-red-team.test.ts).
   */
  unknownFields: (where: string, fields: string[] | null, accepted: readonly string[] = []): APIError =>
    new APIError("BULWARK_ERR_API_UNKNOWN_FIELD", "input", fields === null
      ? `${where} has field(s) this route does not accept; it accepts ${accepted.length === 0 ? "none" : accepted.slice(0, 20).join(", ")}`
      : `${where} has field(s) this route does not accept: ${fields.slice(0, 5).map((f) => JSON.stringify(f.slice(0, 40))).join(", ")}`),
  badBody: (message: string): APIError => new APIError("BULWARK_ERR_VALIDATION", "input", message),
  // A blank string is not "none": Fastify's validator would coerce it to null (a token that never expires).
  blankField: (where: string, field: string): APIError =>
    new APIError("BULWARK_ERR_VALIDATION", "input", `${where} field ${JSON.stringify(field.slice(0, 40))} is an empty string: give a value, or null (or leave the field out) for none`),
  badTime: (field: string): APIError => new APIError("BULWARK_ERR_API_TIME", "input", `${field} must be an ISO 8601 date/time or epoch milliseconds`),
  tooManyTokens: (max: number): APIError => new APIError("BULWARK_ERR_API_TOKEN_LIMIT", "conflict", `you already have ${max} live API tokens; revoke some first`),
  expiryInPast: (): APIError => new APIError("BULWARK_ERR_API_TOKEN_EXPIRY", "input", "expiresAt must be in the future"),
};
